/*
 * pool.c - the worker and verifier threads of a run (xfer.h): started,
 * waited for and joined by the main thread.  A verifier's state connection
 * is opened here, before its thread starts, and used only by that thread.
 */
#include "log.h"
#include "xfer_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void verifiers_start(struct xfer *x, struct xfer_pool *pool, int n)
{
	/* two at least: one is free to read a source while the other ends an account */
	int nv = x->dst->drv->folder_counts ? xfer_verifier_threads(x->job) : 0;
	pool->v = nv ? xcalloc((size_t)nv, sizeof *pool->v) : NULL;
	pool->vstarted = 0;
	x->vq_cap = n;               /* memory bounded by the workers */
	for (int i = 0; i < nv; i++) {
		struct xfer_worker *v = &pool->v[i];
		char *err = NULL;
		v->x = x;
		v->index = -1 - i;
		if (state_open(x->state_path, NULL, STATE_WRITE, &v->st, &err)) {
			/* the workers verify their accounts themselves if no verifier runs */
			log_warn(NULL, "verifier %d: cannot open state DB: %s", i, err ? err : "?");
			free(err);
			break;
		}
		state_set_write_lock(v->st, &x->dbw);
		/* its writes are mostly final states, each fsynced anyway: no switch per commit */
		if (state_sync_full(v->st))
			log_warn(NULL, "verifier %d: %s", i, state_errmsg(v->st));
		if (pthread_create(&v->thread, NULL, xfer_verifier_main, v) != 0) {
			log_warn(NULL, "cannot start verifier thread %d: %s", i, strerror(errno));
			state_close(v->st);
			break;
		}
		pool->vstarted++;
	}
	x->verifiers = pool->vstarted;   /* read-only from here: the workers start after */
}

int xfer_pool_start(struct xfer *x, struct xfer_pool *pool, int n)
{
	pool->w = xcalloc((size_t)n, sizeof *pool->w);
	pool->started = 0;
	pthread_mutex_lock(&x->mu);
	x->nworkers = n;
	pthread_mutex_unlock(&x->mu);
	verifiers_start(x, pool, n);
	for (int i = 0; i < n; i++) {
		pool->w[i].x = x;
		pool->w[i].index = i;
		if (pthread_create(&pool->w[i].thread, NULL, xfer_worker_main, &pool->w[i]) != 0) {
			log_error(NULL, "cannot start worker thread %d: %s", i, strerror(errno));
			break;
		}
		pool->started++;
	}
	pthread_mutex_lock(&x->mu);
	x->nworkers = pool->started;
	pthread_cond_broadcast(&x->vcv);
	pthread_mutex_unlock(&x->mu);
	return pool->started;
}

bool xfer_pool_wait(struct xfer *x, struct xfer_pool *pool, double timeout_s)
{
	pthread_mutex_lock(&x->mu);
	if (x->exited < pool->started || x->vexited < pool->vstarted) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		long long ns = ts.tv_nsec + (long long)(timeout_s * 1e9);
		ts.tv_sec += (time_t)(ns / 1000000000LL);
		ts.tv_nsec = (long)(ns % 1000000000LL);
		pthread_cond_timedwait(&x->cv, &x->mu, &ts);
	}
	bool all_exited = x->exited >= pool->started && x->vexited >= pool->vstarted;
	pthread_mutex_unlock(&x->mu);
	return all_exited;
}

void xfer_pool_join(struct xfer_pool *pool)
{
	for (int i = 0; i < pool->started; i++)
		pthread_join(pool->w[i].thread, NULL);
	free(pool->w);
	pool->w = NULL;
	pool->started = 0;
	for (int i = 0; i < pool->vstarted; i++)
		pthread_join(pool->v[i].thread, NULL);
	free(pool->v);
	pool->v = NULL;
	pool->vstarted = 0;
}
