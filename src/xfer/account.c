/*
 * account.c - how one account's attempt ends (xfer_int.h): a retry after a
 * backoff, failed for good, back where it was after a stop, or done; and the
 * request options of its pass.
 */
#include "log.h"
#include "xfer_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double backoff_seconds(const struct job *job, int attempts)
{
	double base = (double)(job->mig.retry_backoff > 0 ? job->mig.retry_backoff : 30);
	double max = (double)(job->mig.retry_backoff_max > 0 ? job->mig.retry_backoff_max : 900);
	double d = base * pow(2.0, attempts > 0 ? attempts - 1 : 0);
	if (d > max)
		d = max;
	/* full jitter in [d/2, d] so that throttled workers do not come back together */
	double j = (double)(rand64() % 1000) / 1000.0;
	return d / 2 + j * d / 2;
}

/* A stop request interrupted the step: back to `back`, no attempt counted. */
static void account_interrupted(struct xfer_worker *w, const struct account_row *a,
				enum acct_state from, enum acct_state back, const char *step)
{
	struct xfer *x = w->x;
	struct acct_update u = ACCT_UPDATE_INIT;
	char *ev = xasprintf("%s interrupted by %s; back to %s", step,
			     atomic_load(&x->ctl->stop_reason) ? atomic_load(&x->ctl->stop_reason) : "stop",
			     acct_state_name(back));
	u.event = ev;
	log_info(w->ctx, "%s", ev);
	if (state_transition(w->st, x->run_id, a->id, from, back, &u))
		log_error(w->ctx, "cannot record state: %s", state_errmsg(w->st));
	free(ev);
}

/*
 * The server kept throttling past migration.max_throttle_wait (the driver
 * sends a throttled request again by itself until then): not the account's
 * fault, so back to `back` with no attempt counted, and the run stops
 * claiming (every request to that server fails now) with the reason in the
 * log; the next run goes on.
 */
static void account_throttled(struct xfer_worker *w, const struct account_row *a,
			      enum acct_state from, enum acct_state back, const char *step,
			      const char *msg)
{
	struct xfer *x = w->x;
	struct acct_update u = ACCT_UPDATE_INIT;
	char *ev = xasprintf("%s: %s; back to %s, no attempt counted", step, msg ? msg : "throttled",
			     acct_state_name(back));
	u.event = ev;
	log_warn(w->ctx, "%s", ev);
	if (state_transition(w->st, x->run_id, a->id, from, back, &u))
		log_error(w->ctx, "cannot record state: %s", state_errmsg(w->st));
	runctl_request_stop(x->ctl, "throttling", false);
	free(ev);
}

void xfer_account_failed(struct xfer_worker *w, const struct account_row *a, enum acct_state from,
			 enum acct_state back, struct acct_update *u)
{
	struct xfer *x = w->x;
	/*
	 * The export recorded its new mark when its archive was complete; the
	 * import never happened.  A later --retry-failed or reset must not start
	 * after that mark: export everything again (skip).
	 */
	if (back == ACCT_EXPORTED)
		u->sync_mark = -1;
	log_error(w->ctx, "%s", u->event);
	if (state_transition(w->st, x->run_id, a->id, from, ACCT_FAILED, u))
		log_error(w->ctx, "cannot record state: %s", state_errmsg(w->st));
	else if (back == ACCT_EXPORTED && a->spool_path)
		xfer_spool_dispose(x->job, a->spool_path, false, w->ctx);
	pthread_mutex_lock(&x->mu);
	x->failed_now++;
	pthread_mutex_unlock(&x->mu);
}

void xfer_account_error(struct xfer_worker *w, const struct account_row *a, enum acct_state from,
			enum acct_state back, enum zmb_rc rc, const char *step, const char *msg)
{
	struct xfer *x = w->x;
	const struct job *job = x->job;
	struct acct_update u = ACCT_UPDATE_INIT;
	char *ev = NULL;
	enum zmb_retry cls = zmb_rc_class(rc);

	if (rc == ZMB_ECANCELED) {
		/* not the account's fault */
		account_interrupted(w, a, from, back, step);
		return;
	}
	if (rc == ZMB_EBUSY) {
		account_throttled(w, a, from, back, step, msg);
		return;
	}
	char *text = xasprintf("%s: %s", step, msg ? msg : zmb_rc_str(rc));
	u.verify_pending = -1;
	if (w->verdict) {
		u.verify = w->verdict;
		u.verify_detail = w->verdict_detail;
	}
	u.source_status = w->sstatus;
	u.target_status = w->tstatus;
	u.wait_since = -1;
	u.error = text;
	u.error_class = zmb_rc_class_name(rc);
	u.add_attempt = true;
	int attempts = a->attempts + 1;
	if (cls == ZMB_RETRY_NEVER || attempts >= job->mig.max_attempts) {
		ev = xasprintf("failed permanently after %d attempt(s): %s", attempts, text);
		u.event = ev;
		xfer_account_failed(w, a, from, back, &u);
	} else {
		double wait = backoff_seconds(job, attempts);
		u.next_try_at = wall_now() + wait;
		ev = xasprintf("attempt %d/%d failed (%s), retry in %.0f s: %s", attempts,
			       job->mig.max_attempts, zmb_rc_class_name(rc), wait, text);
		u.event = ev;
		log_warn(w->ctx, "%s", ev);
		atomic_fetch_add(&x->ctl->retries, 1);
		if (state_transition(w->st, x->run_id, a->id, from, back, &u))
			log_error(w->ctx, "cannot record state: %s", state_errmsg(w->st));
	}
	free(ev);
	free(text);
}

void xfer_account_done(struct xfer_worker *w, const struct account_row *a, enum acct_state from,
		       long long bytes, double seconds, long long mark_ms, const char *what,
		       const struct xfer_import_result *res, long long recorded_warnings)
{
	struct xfer *x = w->x;
	struct acct_update u = ACCT_UPDATE_INIT;
	size_t nwarn = (res ? res->total : 0) + (size_t)(recorded_warnings > 0 ? recorded_warnings : 0);
	for (size_t i = 0; res && i < res->n; i++) {
		char *wev = xasprintf("import warning: %s", res->warnings[i]);
		log_warn(w->ctx, "%s", wev);
		state_event(w->st, x->run_id, a->id, NULL, "warn", wev);
		free(wev);
	}
	if (res && res->total > res->n) {
		char *wev = xasprintf("import warning: %zu more not recorded", res->total - res->n);
		state_event(w->st, x->run_id, a->id, NULL, "warn", wev);
		free(wev);
	}
	char *ev = nwarn ? xasprintf("%s with %zu warning(s) (items the target did not import): %lld "
				     "bytes in %.1f s", what, nwarn, bytes, seconds)
			 : xasprintf("%s: %lld bytes in %.1f s", what, bytes, seconds);
	if (w->verdict) {
		/* the verdict in the account's history (zmbatch accounts --history) */
		char *e2 = xasprintf("%s; verify: %s: %s", ev, w->verdict,
				     w->verdict_detail ? w->verdict_detail : "");
		free(ev);
		ev = e2;
	}
	u.warnings = (long long)nwarn;
	u.verify_pending = -1;
	/* not verified this time (off, or nothing imported): no verdict of an earlier pass stays */
	u.verify = w->verdict ? w->verdict : "";
	u.verify_detail = w->verdict_detail;
	u.source_status = w->sstatus;
	u.target_status = w->tstatus;
	u.wait_since = -1;
	u.error = "";
	u.error_class = "";
	u.bytes = bytes;
	u.seconds = seconds;
	u.sync_mark = mark_ms;
	u.spool_path = "";
	u.add_attempt = true;
	u.event = ev;
	if (state_transition(w->st, x->run_id, a->id, from, ACCT_DONE, &u)) {
		log_error(w->ctx, "cannot record done: %s", state_errmsg(w->st));
	} else {
		log_info(w->ctx, "%s", ev);
		pthread_mutex_lock(&x->mu);
		x->done_now++;
		x->bytes_now += bytes;
		pthread_mutex_unlock(&x->mu);
		atomic_fetch_add(&x->ctl->bytes, bytes);
	}
	free(ev);
}

void xfer_hosts(struct xfer_worker *w, const struct account_row *a, char **sh, char **dh)
{
	struct xfer_end *se = w->src->end, *de = w->dst->end;
	*sh = se->drv->home ? se->drv->home(se, a->account) : NULL;
	*dh = de->drv->home ? de->drv->home(de, a->target) : NULL;
}

void xfer_record_hosts(struct xfer_worker *w, const struct account_row *a)
{
	char *sh, *dh;
	xfer_hosts(w, a, &sh, &dh);
	if ((sh || dh) && state_account_set_hosts(w->st, a->id, sh, dh))
		log_warn(w->ctx, "cannot record the mail hosts: %s", state_errmsg(w->st));
	free(sh);
	free(dh);
}

/*
 * A delta pass always imports with resolve=skip, whatever the job says: with
 * "reset" the target's folders would be emptied first (mail delivered there
 * since the first pass included) and only the delta put back; with
 * "replace"/"modify" the overlap window would rewrite items already there.
 */
const char *xfer_import_resolve(const struct job *job, const struct account_row *a)
{
	/* imported again after a verification mismatch: skip, so nothing doubles */
	if (a->last_error && !strncmp(a->last_error, "verify:", 7))
		return "skip";
	return a->delta ? "skip" : job->mig.resolve;
}

void xfer_export_opts(const struct xfer *x, const struct account_row *a, struct xfer_export_opts *o)
{
	memset(o, 0, sizeof *o);
	o->types = x->job->mig.types;
	if (a->delta && a->sync_mark > 0) {
		long long start = a->sync_mark - x->job->mig.delta_overlap * 1000;
		o->start_ms = start > 0 ? start : 1;
	}
}
