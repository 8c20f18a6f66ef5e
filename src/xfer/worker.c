/*
 * worker.c - the worker loop (xfer_int.h): one thread with its own state
 * connection, its own driver connections and gzip checker, claiming
 * accounts from the state database until nothing is left or a stop is
 * requested, and handing each to the run's strategy.  An account the
 * strategy handed to a verifier (verifier.c) stays in flight until the
 * verifier ends it; an idle worker waits for it, since a mismatch brings
 * it back.
 */
#include "log.h"
#include "xfer_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* consecutive failed claims (each after SQLite's busy wait) before a worker gives up */
#define MAX_CLAIM_FAILURES 5

/*
 * Nothing claimable now, but something is in backoff (it comes back in
 * wait_s seconds, < 0 = nothing waits), or in flight and may come back:
 * sleep until its backoff ends (at most 1 s, to notice stop requests), or
 * until another worker finishes an account.  false: nothing can come back.
 */
static bool wait_for_work(struct xfer *x, double wait)
{
	pthread_mutex_lock(&x->mu);
	if (wait < 0 && x->in_flight == 0) {
		pthread_mutex_unlock(&x->mu);
		return false;
	}
	double s = wait < 0 || wait > 1.0 ? 1.0 : wait;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	long long ns = ts.tv_nsec + (long long)(s * 1e9);
	ts.tv_sec += (time_t)(ns / 1000000000LL);
	ts.tv_nsec = (long)(ns % 1000000000LL);
	pthread_cond_timedwait(&x->cv, &x->mu, &ts);
	pthread_mutex_unlock(&x->mu);
	return true;
}

/* One claimed account, counted in flight while it is processed. */
static void run_account(struct xfer_worker *w, struct account_row *a)
{
	struct xfer *x = w->x;
	pthread_mutex_lock(&x->mu);
	x->in_flight++;
	pthread_mutex_unlock(&x->mu);
	snprintf(w->ctx, sizeof w->ctx, "account %s", a->account);
	w->handed_over = false;
	if (x->stream)
		xfer_stream_account(w, a);
	else
		xfer_spool_account(w, a);
	free(w->sstatus);
	free(w->tstatus);
	w->sstatus = w->tstatus = NULL;
	free(w->verdict_detail);
	free(w->source_figures_err);
	w->verdict = NULL;
	w->verdict_detail = w->source_figures_err = NULL;
	if (w->handed_over)
		return;     /* a verifier ends it (and counts it out of flight) */
	xfer_record_hosts(w, a);
	pthread_mutex_lock(&x->mu);
	x->in_flight--;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

static void claim_loop(struct xfer_worker *w)
{
	struct xfer *x = w->x;
	int claim_failures = 0;
	while (runctl_may_claim(x->ctl)) {
		struct account_row a;
		double wait = -1;
		memset(&a, 0, sizeof a);
		enum zmb_rc rc = state_claim(w->st, x->run_id, x->order, x->stream, wall_now(), &a, &wait);
		if (rc == ZMB_ENOTFOUND) {
			if (!wait_for_work(x, wait))
				break;          /* nothing pending, nothing that could come back */
			continue;
		}
		if (rc) {
			log_error(NULL, "worker %d: claim failed: %s", w->index, state_errmsg(w->st));
			/* busy is already waited for inside SQLite; a state DB that keeps
			 * failing (disk full, read-only, I/O error) must end the run, not
			 * spin forever: the accounts stay for the next run */
			if (++claim_failures >= MAX_CLAIM_FAILURES) {
				log_error(NULL, "worker %d: giving up after %d failed claims in a row", w->index,
					  claim_failures);
				/* the DB is unusable for everyone: stop claiming everywhere */
				runctl_request_stop(x->ctl, "state database errors", false);
				break;
			}
			struct timespec ts = { 1, 0 };
			nanosleep(&ts, NULL);
			continue;
		}
		claim_failures = 0;
		run_account(w, &a);
		state_account_release(&a);
	}
}

void *xfer_worker_main(void *arg)
{
	struct xfer_worker *w = arg;
	struct xfer *x = w->x;
	char *err = NULL;

	if (state_open(x->state_path, NULL, STATE_WRITE, &w->st, &err)) {
		log_error(NULL, "worker %d: cannot open state DB: %s", w->index, err ? err : "?");
		pthread_mutex_lock(&x->mu);
		x->fatal_workers++;
		pthread_mutex_unlock(&x->mu);
	} else {
		state_set_write_lock(w->st, &x->dbw);
		w->src = x->src->drv->conn_new(x->src);
		w->dst = x->dst->drv->conn_new(x->dst);
		w->gz = gz_check_new();
		claim_loop(w);
	}
	x->src->drv->conn_free(w->src);
	x->dst->drv->conn_free(w->dst);
	gz_check_free(w->gz);
	state_close(w->st);
	free(err);
	pthread_mutex_lock(&x->mu);
	x->exited++;
	pthread_cond_broadcast(&x->cv);
	pthread_cond_broadcast(&x->vcv);   /* the verifiers end after the last worker */
	pthread_mutex_unlock(&x->mu);
	return NULL;
}
