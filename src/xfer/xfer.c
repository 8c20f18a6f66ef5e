/*
 * xfer.c - a run of the transfer engine: its shared state (xfer.h).
 */
#include "xfer_int.h"

#include <stdlib.h>

#include <string.h>

void xfer_init(struct xfer *x, const struct xfer_driver *drv, const struct job *job,
	       const char *state_path, int64_t run_id, struct run_ctl *ctl)
{
	memset(x, 0, sizeof *x);
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	pthread_cond_init(&x->vcv, NULL);
	state_wlock_init(&x->dbw);
	x->job = job;
	x->state_path = state_path;
	x->run_id = run_id;
	x->ctl = ctl;
	x->stream = job->mig.transfer == TRANSFER_STREAM;
	x->order = job->mig.order == ORDER_AS_LISTED ? CLAIM_AS_LISTED : CLAIM_LARGEST_FIRST;
	x->src = drv->end_new(&job->source, job, ctl);
	x->dst = drv->end_new(&job->target, job, ctl);
}

void xfer_release(struct xfer *x)
{
	xfer_tdir_free(x);
	free(x->target_version);
	x->target_version = NULL;
	if (x->src)
		x->src->drv->end_free(x->src);
	if (x->dst)
		x->dst->drv->end_free(x->dst);
	x->src = x->dst = NULL;
	pthread_cond_destroy(&x->cv);
	pthread_cond_destroy(&x->vcv);
	state_wlock_destroy(&x->dbw);
	pthread_mutex_destroy(&x->mu);
}

void xfer_totals(struct xfer *x, long long *bytes, int *in_flight)
{
	pthread_mutex_lock(&x->mu);
	*bytes = x->bytes_now;
	*in_flight = x->in_flight;
	pthread_mutex_unlock(&x->mu);
}
