/*
 * verifier.c - the verification off the workers' path (xfer_int.h).
 *
 * A run that verifies has a few verifier threads (pool.c starts them before
 * the workers: xfer_verifier_threads, driver.h).  Each is a `struct
 * xfer_worker` with its own state connection and its own driver
 * connections, and serves two queues of `struct xfer_vjob` under x->mu:
 *
 *   fq  the source's figures a worker asks for as its export starts
 *       (xfer_vjob_start); taken first, the worker waits for them only when
 *       it records its pass (xfer_vjob_figures), normally long after;
 *   vq  accounts whose import is complete and recorded (verify_pending):
 *       the verifier reads the target's figures, compares, and ends the
 *       account exactly as the worker did before (done; a mismatch back for
 *       a new attempt with resolve=skip, or failed after max_attempts).
 *
 * vq holds at most vq_cap (= the workers) jobs: a worker waits for room, so
 * memory stays bounded.  An account handed over counts in x->in_flight
 * until its verifier ends it (a mismatch may bring it back: idle workers
 * wait for it).  The verifiers leave when every worker has left and both
 * queues are empty.  After an abort (second signal, grace over) a queued
 * account is not verified: it goes back to exported with verify_pending,
 * which the next run verifies without importing again (as after a crash).
 * Without verifier threads (x->verifiers == 0: verification off, or none
 * could start) the worker does all of it itself, in the same order.
 */
#include "log.h"
#include "testhooks.h"
#include "xfer_int.h"

#include <stdlib.h>
#include <string.h>

struct xfer_vjob {
	struct xfer_vjob *next;
	struct xfer_worker *owner;   /* the worker that made it (its `outstanding`) */
	/* the source's figures: taken by a verifier (fq), or given */
	char *account;               /* whose figures (fq only) */
	bool in_fq, taking, ready;
	bool dropped;                /* the owner gave up while a verifier read them */
	char *figures;               /* JSON, NULL when not read */
	char *figures_err;           /* why not */
	/* the pass to verify and end (vq), moved in by xfer_verify_pass */
	struct account_row a;
	struct xfer_vend e;
	char *what, *dispose;
	struct xfer_import_result res;
	char *sstatus, *tstatus;
};

static bool verify_on(const struct xfer *x)
{
	return x->job->mig.verify && x->dst->drv->folder_counts;
}

static void vjob_free(struct xfer_vjob *j)
{
	if (!j)
		return;
	free(j->account);
	free(j->figures);
	free(j->figures_err);
	state_account_release(&j->a);
	free(j->what);
	free(j->dispose);
	xfer_import_result_release(&j->res);
	free(j->sstatus);
	free(j->tstatus);
	free(j);
}

static struct xfer_vjob *vjob_ready(struct xfer_worker *w, const char *figures)
{
	struct xfer_vjob *j = xcalloc(1, sizeof *j);
	j->owner = w;
	j->ready = true;
	j->figures = figures ? xstrdup(figures) : NULL;
	return j;
}

struct xfer_vjob *xfer_vjob_start(struct xfer_worker *w, const struct account_row *a)
{
	struct xfer *x = w->x;
	if (!verify_on(x))
		return NULL;
	if (!x->src->drv->folder_counts)
		return vjob_ready(w, NULL);
	if (x->verifiers == 0) {
		struct xfer_vjob *j = vjob_ready(w, NULL);
		j->figures = xfer_source_figures(w, a);
		j->figures_err = w->source_figures_err;
		w->source_figures_err = NULL;
		return j;
	}
	struct xfer_vjob *j = xcalloc(1, sizeof *j);
	j->owner = w;
	j->account = xstrdup(a->account);
	j->in_fq = true;
	pthread_mutex_lock(&x->mu);
	if (x->fq_tail)
		x->fq_tail->next = j;
	else
		x->fq_head = j;
	x->fq_tail = j;
	pthread_cond_broadcast(&x->vcv);
	pthread_mutex_unlock(&x->mu);
	return j;
}

struct xfer_vjob *xfer_vjob_given(struct xfer_worker *w, const char *figures)
{
	return verify_on(w->x) ? vjob_ready(w, figures) : NULL;
}

/* Unlink j from fq (x->mu held). */
static void fq_remove(struct xfer *x, struct xfer_vjob *j)
{
	struct xfer_vjob **pp = &x->fq_head, *prev = NULL;
	while (*pp && *pp != j) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = j->next;
	if (x->fq_tail == j)
		x->fq_tail = prev;
	j->next = NULL;
	j->in_fq = false;
}

void xfer_vjob_drop(struct xfer *x, struct xfer_vjob *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&x->mu);
	if (j->taking && !j->ready) {
		j->dropped = true;          /* its verifier frees it */
		pthread_mutex_unlock(&x->mu);
		return;
	}
	if (j->in_fq)
		fq_remove(x, j);
	pthread_mutex_unlock(&x->mu);
	vjob_free(j);
}

const char *xfer_vjob_figures(struct xfer *x, struct xfer_vjob *j)
{
	if (!j)
		return NULL;
	pthread_mutex_lock(&x->mu);
	while (!j->ready)
		pthread_cond_wait(&x->vcv, &x->mu);
	pthread_mutex_unlock(&x->mu);
	return j->figures;
}

/* The source's figures for j (a verifier, j taken off fq). */
static void take_figures(struct xfer_worker *v, struct xfer_vjob *j)
{
	if (runctl_must_abort(v->x->ctl)) {
		j->figures_err = xstrdup("the run was stopped");
		return;
	}
	struct account_row a;
	memset(&a, 0, sizeof a);
	a.account = j->account;
	snprintf(v->ctx, sizeof v->ctx, "account %s", j->account);
	j->figures = xfer_source_figures(v, &a);
	j->figures_err = v->source_figures_err;
	v->source_figures_err = NULL;
}

/* An abort: the account goes back to exported, verify_pending kept, for the next run. */
static void park(struct xfer_worker *v, struct xfer_vjob *j)
{
	struct xfer *x = v->x;
	struct acct_update u = ACCT_UPDATE_INIT;
	const char *why = atomic_load(&x->ctl->stop_reason);
	char *ev = xasprintf("verification interrupted by %s; back to exported, to be verified by "
			     "the next run", why ? why : "stop");
	u.event = ev;
	log_info(v->ctx, "%s", ev);
	if (state_transition(v->st, x->run_id, j->a.id, j->e.from, ACCT_EXPORTED, &u))
		log_error(v->ctx, "cannot record state: %s", state_errmsg(v->st));
	free(ev);
}

/* Verify j's account and end it, in the thread owning v; j is freed. */
static void vjob_end(struct xfer_worker *v, struct xfer_vjob *j)
{
	struct xfer *x = v->x;
	const struct xfer_vend *e = &j->e;
	snprintf(v->ctx, sizeof v->ctx, "account %s", j->a.account);
	v->sstatus = j->sstatus;
	v->tstatus = j->tstatus;
	v->source_figures_err = j->figures_err;
	j->sstatus = j->tstatus = j->figures_err = NULL;
	enum xfer_vstep s = runctl_must_abort(x->ctl) ? XFER_V_PARK
			  : xfer_verify_judge(v, &j->a, e->from, e->back, j->figures, e->warnings);
	if (s == XFER_V_DONE) {
		xfer_account_done(v, &j->a, e->from, e->bytes, mono_now() - e->t0, e->mark_ms, e->what,
				  &j->res, e->recorded_warnings);
		if (j->dispose)
			xfer_spool_dispose(x->job, j->dispose, true, v->ctx);
	} else if (s == XFER_V_PARK) {
		park(v, j);
	}
	free(v->sstatus);
	free(v->tstatus);
	free(v->verdict_detail);
	free(v->source_figures_err);
	v->sstatus = v->tstatus = v->verdict_detail = v->source_figures_err = NULL;
	v->verdict = NULL;
	struct xfer_worker *owner = j->owner;
	long long held = e->held;
	vjob_free(j);
	pthread_mutex_lock(&x->mu);
	x->held_bytes -= held;
	x->in_flight--;
	owner->outstanding--;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

bool xfer_verify_pass(struct xfer_worker *w, struct account_row *a, struct xfer_vjob *j,
		      const struct xfer_vend *e)
{
	struct xfer *x = w->x;
	if (!verify_on(x)) {
		xfer_vjob_drop(x, j);
		return false;
	}
	/* a resumed verification uses the figures recorded with its import */
	if (!j)
		j = vjob_ready(w, e->resumed ? a->verify_source : NULL);
	const char *sj = xfer_vjob_figures(x, j);
	/* the import is complete: from here a crash resumes at the verification */
	if (e->resumed) {
		xfer_record_hosts(w, a);
	} else {
		char *sh, *dh;
		xfer_hosts(w, a, &sh, &dh);
		if (state_account_imported(w->st, x->run_id, a->id, sj, e->bytes, e->mark_ms, sh, dh))
			log_warn(w->ctx, "cannot record the import: %s", state_errmsg(w->st));
		free(sh);
		free(dh);
	}
	j->a = *a;
	memset(a, 0, sizeof *a);
	j->e = *e;
	j->what = xstrdup(e->what);
	j->e.what = j->what;
	j->dispose = e->dispose ? xstrdup(e->dispose) : NULL;
	j->e.dispose = j->dispose;
	if (e->res) {
		j->res = *e->res;
		memset(e->res, 0, sizeof *e->res);
	}
	j->e.res = &j->res;
	j->sstatus = w->sstatus;
	j->tstatus = w->tstatus;
	w->sstatus = w->tstatus = NULL;
	w->handed_over = true;
	pthread_mutex_lock(&x->mu);
	w->outstanding++;
	if (x->verifiers == 0) {
		pthread_mutex_unlock(&x->mu);
		vjob_end(w, j);
		return true;
	}
	while (x->vq_len >= x->vq_cap)
		pthread_cond_wait(&x->vcv, &x->mu);
	if (x->vq_tail)
		x->vq_tail->next = j;
	else
		x->vq_head = j;
	x->vq_tail = j;
	x->vq_len++;
	pthread_cond_broadcast(&x->vcv);
	/* the test build's crash enumeration needs one order of durable steps */
	while (testhook_serial_steps() && w->outstanding > 0)
		pthread_cond_wait(&x->cv, &x->mu);
	pthread_mutex_unlock(&x->mu);
	return true;
}

void *xfer_verifier_main(void *arg)
{
	struct xfer_worker *v = arg;
	struct xfer *x = v->x;
	v->src = x->src->drv->conn_new(x->src);
	v->dst = x->dst->drv->conn_new(x->dst);
	pthread_mutex_lock(&x->mu);
	for (;;) {
		struct xfer_vjob *j;
		if ((j = x->fq_head) != NULL) {
			x->fq_head = j->next;
			if (!x->fq_head)
				x->fq_tail = NULL;
			j->next = NULL;
			j->in_fq = false;
			j->taking = true;
			pthread_mutex_unlock(&x->mu);
			take_figures(v, j);
			pthread_mutex_lock(&x->mu);
			j->ready = true;
			pthread_cond_broadcast(&x->vcv);
			if (j->dropped) {
				pthread_mutex_unlock(&x->mu);
				vjob_free(j);
				pthread_mutex_lock(&x->mu);
			}
		} else if ((j = x->vq_head) != NULL) {
			x->vq_head = j->next;
			if (!x->vq_head)
				x->vq_tail = NULL;
			j->next = NULL;
			x->vq_len--;
			pthread_cond_broadcast(&x->vcv);   /* room for a waiting worker */
			pthread_mutex_unlock(&x->mu);
			vjob_end(v, j);
			pthread_mutex_lock(&x->mu);
		} else if (x->exited >= x->nworkers) {
			break;                 /* no worker left to hand anything over */
		} else {
			pthread_cond_wait(&x->vcv, &x->mu);
		}
	}
	x->vexited++;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	x->src->drv->conn_free(v->src);
	x->dst->drv->conn_free(v->dst);
	state_close(v->st);
	return NULL;
}
