/*
 * migrate.c - the `migrate` stage: the glue between a job and the transfer
 * engine (src/xfer/).  Main thread only.
 *
 *   1. login: both servers must answer and accept the credentials before
 *      any account work; failure here is "unavailable";
 *   2. plan: discovery and sizes, one transaction (migrate_plan.c);
 *   3. spool housekeeping and the target directory read (xfer);
 *   4. pool start: N workers claim accounts from the DB until nothing is
 *      left or a stop is requested;
 *   5. watch: a progress line meanwhile, until every worker has left;
 *   6. verdict: every account terminal -> done (exit 0) or some failed
 *      (exit 1); work left after a stop -> exit 75;
 *   7. record: the login counters of both servers, for reports; their
 *      pacing (requests, throttled answers, pauses, current limits) also
 *      every few seconds while the workers run, for `status`.
 * A server that throttled the run past migration.max_throttle_wait stops it
 * with exit 75 and a message naming the server (the accounts wait, with no
 * attempt used up, for the next run).
 */
#include "log.h"
#include "migrate_plan.h"
#include "query_migrate.h"
#include "stage.h"
#include "state.h"
#include "xfer.h"
#include "zmb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int migrate_validate(const struct stage_conf *sc, const char *file, char **err)
{
	/* a migrate stage has no keys of its own: it uses the job's migration group */
	for (size_t i = 0; i < sc->settings.n; i++) {
		const struct cval *v = &sc->settings.items[i];
		if (v->name && strcmp(v->name, "name") && strcmp(v->name, "type")) {
			*err = xasprintf("%s:%d: stage '%s': unknown key '%s' (a migrate stage "
					 "takes its settings from the 'migration' group)",
					 file, v->line, sc->name, v->name);
			return -1;
		}
	}
	return 0;
}

/* Spool mode: working_dir, success_dir, failed_dir exist (a path to fix: ZMB_ECONFIG). */
static enum zmb_rc make_spool_dirs(const struct job *job, char **err)
{
	const char *dirs[3] = { job->mig.working_dir, job->mig.success_dir, job->mig.failed_dir };
	for (int i = 0; i < 3; i++) {
		if (dirs[i] && *dirs[i] && mkdir_p(dirs[i], 0700) < 0) {
			*err = xasprintf("cannot create directory '%s': %s", dirs[i], strerror(errno));
			return ZMB_ECONFIG;   /* a path to fix, not a state DB to wait for */
		}
	}
	return ZMB_OK;
}

/* Both servers answer and accept our credentials, source first (conn[0] source, conn[1] target). */
/*
 * Which product the target is (one GetVersionInfo): Carbonio's importer
 * drops tasks and Briefcase documents without a word (carbonio-mailbox
 * ArchiveFormatter.addItem has no TASK/DOCUMENT branch), so each account
 * gets a warning before its transfer (xfer_status_carbonio_note).  A server
 * that does not answer is taken for Zimbra.
 */
static void target_product(struct stage_ctx *ctx, struct xfer *x, struct xfer_conn *dst)
{
	char *product = NULL, *version = NULL, *e = NULL;
	if (!dst->end->drv->product || dst->end->drv->product(dst, &product, &version, &e)) {
		log_info(NULL, "target: product not known (%s); taken for Zimbra", e ? e : "no answer");
	} else {
		x->target_carbonio = strcmp(product, "carbonio") == 0;
		x->target_version = version;
		version = NULL;
		if (x->target_carbonio)
			stage_out(ctx, "target is Carbonio%s%s: tasks and Briefcase documents cannot be "
				  "imported there (each account is warned)",
				  x->target_version ? " " : "", x->target_version ? x->target_version : "");
	}
	free(product);
	free(version);
	free(e);
}

static enum zmb_rc login(struct stage_ctx *ctx, struct xfer_conn *conn[2], struct stage_result *res)
{
	for (int i = 0; i < 2; i++) {
		const struct server *s = conn[i]->end->srv;
		char *e = NULL;
		enum zmb_rc rc = conn[i]->end->drv->login(conn[i], &e);
		if (rc) {
			res->err = xasprintf("%s %s:%d: cannot log in as '%s': %s", s->role, s->host,
					     s->port, s->admin_user, e ? e : zmb_rc_str(rc));
			free(e);
			res->exit = EXIT_UNAVAILABLE;
			return rc;
		}
		stage_out(ctx, "%s %s:%d: logged in as %s", s->role, s->host, s->port, s->admin_user);
	}
	return ZMB_OK;
}

/* ---- pacing of the servers (servers table) ---- */

#define PACE_FLUSH_S 5.0   /* seconds between two writes of the pacing while the workers run */

/* What was written so far, so that each write adds only what is new. */
struct pace_rec {
	struct xfer_pace done[2];   /* source, target */
	double at;                  /* mono time of the last write */
};

static void record_pace(struct stage_ctx *ctx, struct xfer *x, struct pace_rec *pr)
{
	struct xfer_end *ends[2] = { x->src, x->dst };
	const char *roles[2] = { "source", "target" };
	pr->at = mono_now();
	for (int i = 0; i < 2; i++) {
		struct xfer_pace p, *d = &pr->done[i];
		memset(&p, 0, sizeof p);
		ends[i]->drv->pace(ends[i], &p, NULL);
		if (p.requests == d->requests && p.rate_limit == d->rate_limit &&
		    p.concurrency_limit == d->concurrency_limit)
			continue;   /* nothing new: no write */
		char *host = xasprintf("%s:%d", ends[i]->srv->host, ends[i]->srv->port);
		if (state_server_pace(ctx->st, roles[i], host, p.requests - d->requests,
				      p.throttled - d->throttled, p.wait_seconds - d->wait_seconds,
				      p.rate_limit, p.concurrency_limit))
			log_warn(NULL, "cannot record the pacing of the %s: %s", roles[i],
				 state_errmsg(ctx->st));
		else
			*d = p;
		free(host);
	}
}

/*
 * A server throttled the run past migration.max_throttle_wait: the stage
 * ends with work left (exit 75) and the driver's message, which names the
 * server, as its error; it is also an event, for `status`.
 */
static bool throttle_gave_up(struct stage_ctx *ctx, struct xfer *x, bool writes,
			     struct stage_result *res)
{
	struct xfer_end *ends[2] = { x->src, x->dst };
	for (int i = 0; i < 2; i++) {
		struct xfer_pace p;
		char *why = NULL;
		ends[i]->drv->pace(ends[i], &p, &why);
		if (!why)
			continue;
		if (writes && state_event(ctx->st, ctx->run_id, 0, ctx->sc ? ctx->sc->name : NULL,
					  "error", why))
			log_warn(NULL, "cannot record event: %s", state_errmsg(ctx->st));
		free(res->err);
		res->err = why;
		res->exit = EXIT_TEMPFAIL;
		runctl_request_stop(ctx->ctl, "throttling", false);
		return true;
	}
	return false;
}

/* ---- progress ---- */

/* What the progress line shows; counts are re-read from the DB at most once a second. */
struct progress {
	double t0;                  /* mono time the workers started */
	long long remaining0;       /* planned bytes not yet done when they started */
	long long c[ACCT_NSTATES];
	double counted_at;
};

static void progress_line(struct xfer *x, struct state *st, struct progress *pg, bool tty, bool log)
{
	double now = mono_now();
	if ((log || now - pg->counted_at >= 1.0) && state_counts(st, pg->c) == ZMB_OK)
		pg->counted_at = now;
	long long total = 0;
	for (int i = 0; i < ACCT_NSTATES; i++)
		total += pg->c[i];
	long long bytes;
	int inflight;
	xfer_totals(x, &bytes, &inflight);
	double el = now - pg->t0;
	double rate = el > 0 ? bytes / el : 0;
	long long left = pg->remaining0 - bytes;
	char eta[32] = "ETA --";
	if (left <= 0)
		snprintf(eta, sizeof eta, "ETA 0s");
	else if (rate > 0) {
		long long s = (long long)(left / rate);
		snprintf(eta, sizeof eta, "ETA %lldh%02lldm%02llds", s / 3600, s / 60 % 60, s % 60);
	}
	char *line = xasprintf("%lld/%lld done, %lld failed, %d in flight, %.2f GB moved, %.1f MB/s, %s",
			       pg->c[ACCT_DONE], total, pg->c[ACCT_FAILED], inflight, bytes / 1e9,
			       rate / 1e6, eta);
	if (tty) {
		fprintf(stderr, "\r\033[K%s", line);
		fflush(stderr);
	}
	if (log)
		log_info("progress", "%s", line);
	free(line);
}

static void tty_clear(void)
{
	fputs("\r\033[K", stderr);
}

/* Until every worker has left: a progress line on a tty, and in the log on request or every interval. */
static void watch(struct stage_ctx *ctx, struct xfer *x, struct xfer_pool *pool, struct progress *pg,
		  struct pace_rec *pr)
{
	const struct job *job = ctx->job;
	bool tty = isatty(2) && !ctx->quiet;
	if (tty)
		zlog_set_tty_hook(tty_clear);
	double last_log = pg->t0;
	double interval = job->progress_interval > 0 ? (double)job->progress_interval : 300;
	/* wake on a worker's exit at once; otherwise every 250 ms for progress */
	while (!xfer_pool_wait(x, pool, 0.25)) {
		bool log_now = atomic_exchange(&ctx->ctl->progress_request, 0) ||
			       (!tty && mono_now() - last_log >= interval);
		if (log_now)
			last_log = mono_now();
		if (tty || log_now)
			progress_line(x, ctx->st, pg, tty, log_now);
		if (mono_now() - pr->at >= PACE_FLUSH_S)
			record_pace(ctx, x, pr);
	}
	xfer_pool_join(pool);
	if (tty) {
		tty_clear();
		zlog_set_tty_hook(NULL);
	}
	progress_line(x, ctx->st, pg, false, true);
}

/* What is left in the DB decides: done, some failed (exit 1), work left (exit 75). */
static enum zmb_rc verdict(struct stage_ctx *ctx, const struct xfer *x, int started,
			   struct stage_result *res)
{
	long long c[ACCT_NSTATES];
	enum zmb_rc rc;
	if ((rc = state_counts(ctx->st, c))) {
		res->err = xasprintf("cannot count accounts: %s", state_errmsg(ctx->st));
		return rc;
	}
	long long left = c[ACCT_PENDING] + c[ACCT_EXPORTED] + c[ACCT_EXPORTING] + c[ACCT_IMPORTING];
	stage_out(ctx, "accounts: %lld done, %lld failed, %lld skipped, %lld left", c[ACCT_DONE],
		  c[ACCT_FAILED], c[ACCT_SKIPPED], left);
	if (started == 0 || x->fatal_workers == started) {
		res->err = xstrdup("no worker could start");
		return ZMB_EINTERNAL;
	} else if (left > 0) {
		res->exit = EXIT_TEMPFAIL;
	} else if (c[ACCT_FAILED] > 0) {
		res->exit = EXIT_PARTIAL;
		res->err = xasprintf("%lld account(s) failed permanently (see 'zmbatch report')", c[ACCT_FAILED]);
	}
	return ZMB_OK;
}

/* Per-server login counters for reports (servers table). */
static void record_logins(struct stage_ctx *ctx, struct xfer *x)
{
	struct xfer_end *ends[2] = { x->src, x->dst };
	const char *roles[2] = { "source", "target" };
	for (int i = 0; i < 2; i++) {
		long long req = 0, ok = 0;
		ends[i]->drv->login_counts(ends[i], &req, &ok);
		char *host = xasprintf("%s:%d", ends[i]->srv->host, ends[i]->srv->port);
		if (req > 0 && state_server_count(ctx->st, roles[i], host, req,
						  ok > 1 ? ok - 1 : 0, req - ok))
			log_warn(NULL, "cannot record login counters: %s", state_errmsg(ctx->st));
		free(host);
		log_debug(NULL, "%s: %lld AuthRequest(s), %lld ok", roles[i], req, ok);
	}
}

/* The plan as a dry run shows it: nothing is transferred. */
static void dry_run_summary(struct stage_ctx *ctx, const struct xfer *x, int nthreads, long long total)
{
	stage_out(ctx, "dry run: order %s, %d thread(s), transfer %s",
		  x->order == CLAIM_AS_LISTED ? "as-listed" : "largest-first", nthreads,
		  x->stream ? "stream" : "spool");
	if (!x->stream)
		stage_out(ctx, "dry run: spool space needed at most about %lld bytes in '%s' "
			  "(the largest %d archives at once)", total, ctx->job->mig.working_dir, nthreads);
}

static bool unavailable(enum zmb_rc rc)
{
	return rc == ZMB_EAUTH || rc == ZMB_ECONNECT || rc == ZMB_ETLS;
}

struct stage_result migrate_run(struct stage_ctx *ctx)
{
	struct stage_result res = { ZMB_OK, 0, NULL };
	const struct job *job = ctx->job;
	struct xfer x;
	struct xfer_conn *conn[2] = { NULL, NULL };   /* the main thread's: source, target */
	enum zmb_rc rc = ZMB_OK;
	int nthreads = job->mig.threads > 0 ? job->mig.threads : 1;
	bool writes = ctx->st && !ctx->dry_run;
	struct pace_rec pr;
	memset(&pr, 0, sizeof pr);
	pr.at = mono_now();

	/* the one driver there is today; a job setting would choose it per server */
	xfer_init(&x, &xfer_driver_zimbra, job, ctx->state_path, ctx->run_id, ctx->ctl);
	if (writes)
		state_set_write_lock(ctx->st, &x.dbw);
	if (!x.stream && !ctx->dry_run && (rc = make_spool_dirs(job, &res.err)))
		goto out;

	conn[0] = x.src->drv->conn_new(x.src);
	conn[1] = x.dst->drv->conn_new(x.dst);
	if ((rc = login(ctx, conn, &res)))
		goto out;
	long long total = 0;
	if ((rc = migrate_plan(&x, ctx, conn[0], &total, &res.exit, &res.err))) {
		if (unavailable(rc))
			res.exit = EXIT_UNAVAILABLE;
		goto out;
	}
	if (ctx->dry_run) {
		dry_run_summary(ctx, &x, nthreads, total);
		goto out;
	}
	if (!x.stream)
		xfer_spool_housekeeping(&x, ctx->st);
	xfer_tdir_build(&x, conn[1], ctx->st);
	target_product(ctx, &x, conn[1]);

	struct xfer_pool pool;
	int started = xfer_pool_start(&x, &pool, nthreads);
	struct progress pg;
	memset(&pg, 0, sizeof pg);
	pg.t0 = mono_now();
	state_mig_bytes_left(ctx->st, &pg.remaining0);   /* for the ETA (bytes-weighted, like `status`) */
	watch(ctx, &x, &pool, &pg, &pr);
	rc = verdict(ctx, &x, started, &res);
out:
	if (writes) {
		record_logins(ctx, &x);
		record_pace(ctx, &x, &pr);
	}
	if (throttle_gave_up(ctx, &x, writes, &res))
		rc = ZMB_OK;   /* work left, for the next run: exit 75, with the reason */
	for (int i = 0; i < 2; i++)
		if (conn[i])
			conn[i]->end->drv->conn_free(conn[i]);
	if (writes)
		state_set_write_lock(ctx->st, NULL);
	xfer_release(&x);
	res.rc = rc;
	return res;
}
