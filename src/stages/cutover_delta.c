/*
 * cutover_delta.c - the final delta pass of a cutover batch (cutover.h).
 *
 * The same machinery as `zmbatch run --delta` (state_queue_delta, the
 * worker pool of src/xfer, the verification after each import), restricted
 * to the batch: only the accounts of the rows at 'routed' are queued, and the
 * pass refuses to start while any other account waits in the queue (the pool
 * claims whatever is pending).  By now the source accounts are locked (an
 * admin still exports them) and their mail already goes to the target, so
 * this pass carries everything that reached the source since the last
 * migrate pass.  The pass runs with xfer.no_transport: migration.mail_transport
 * (set after each import by src/xfer/target.c xfer_set_transport) would undo
 * the target transport the cutover set at 'routed'.  A pass interrupted by a crash resumes like any other: the
 * accounts it left pending are claimed again by the next run's pool.
 */
#include "cutover.h"
#include "log.h"
#include "state_cutover.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static enum zmb_rc spool_dirs(const struct job *job, char **err)
{
	const char *dirs[3] = { job->mig.working_dir, job->mig.success_dir, job->mig.failed_dir };
	for (int i = 0; i < 3; i++) {
		if (dirs[i] && *dirs[i] && mkdir_p(dirs[i], 0700) < 0) {
			*err = xasprintf("cannot create directory '%s': %s", dirs[i], strerror(errno));
			return ZMB_ECONFIG;
		}
	}
	return ZMB_OK;
}

/*
 * Which product the target is, as the migrate stage asks it (migrate.c
 * target_product): the verification of a Carbonio target leaves out the task
 * and Briefcase folders its importer drops.  No answer: taken for Zimbra.
 */
static void target_product(struct cut *c)
{
	char *product = NULL, *version = NULL, *e = NULL;
	const struct xfer_driver *drv = c->dst->end->drv;
	if (!drv->product || drv->product(c->dst, &product, &version, &e)) {
		log_info(NULL, "target: product not known (%s); taken for Zimbra", e ? e : "no answer");
	} else {
		c->x.target_carbonio = strcmp(product, "carbonio") == 0;
		free(c->x.target_version);
		c->x.target_version = version;
		version = NULL;
	}
	free(product);
	free(version);
	free(e);
}

enum zmb_rc cutover_delta(struct cut *c, struct stage_result *res)
{
	struct stage_ctx *ctx = c->ctx;
	struct xfer *x = &c->x;
	int queued = 0;
	long long counts[ACCT_NSTATES];
	enum zmb_rc rc = state_cutover_queue_delta(ctx->st, ctx->run_id, &queued, &res->err);
	if (rc) {
		if (!res->err)
			res->err = xasprintf("cannot queue the final delta pass: %s", state_errmsg(ctx->st));
		return rc;
	}
	if ((rc = state_counts(ctx->st, counts))) {
		res->err = xasprintf("cannot count accounts: %s", state_errmsg(ctx->st));
		return rc;
	}
	long long waiting = counts[ACCT_PENDING] + counts[ACCT_EXPORTED];
	stage_out(ctx, "final delta pass: %lld account(s)", waiting);
	if (waiting > 0) {
		if (!x->stream && (rc = spool_dirs(ctx->job, &res->err)))
			return rc;
		if (!x->stream)
			xfer_spool_housekeeping(x, ctx->st);
		xfer_tdir_build(x, c->dst, ctx->st);
		target_product(c);
		struct xfer_pool pool;
		int nthreads = ctx->job->mig.threads > 0 ? ctx->job->mig.threads : 1;
		int started = xfer_pool_start(x, &pool, nthreads);
		while (!xfer_pool_wait(x, &pool, 0.25))
			;
		xfer_pool_join(&pool);
		if (started == 0 || x->fatal_workers == started) {
			res->err = xstrdup("final delta pass: no worker could start");
			return ZMB_EINTERNAL;
		}
		if ((rc = state_counts(ctx->st, counts))) {
			res->err = xasprintf("cannot count accounts: %s", state_errmsg(ctx->st));
			return rc;
		}
		if (counts[ACCT_PENDING] + counts[ACCT_EXPORTED] + counts[ACCT_EXPORTING] +
		    counts[ACCT_IMPORTING] > 0) {
			/* stopped (signal, end of the window, throttling): the next run goes on */
			res->exit = EXIT_TEMPFAIL;
			return ZMB_OK;
		}
	}
	int synced = 0, failed = 0;
	if ((rc = state_cutover_delta_done(ctx->st, ctx->run_id, ctx->sc->name, &synced, &failed))) {
		res->err = xasprintf("cannot record the final delta pass: %s", state_errmsg(ctx->st));
		return rc;
	}
	if (failed > 0)
		stage_out(ctx, "final delta pass: %d account(s) failed or did not verify: each is rolled "
			  "back and its cutover ends 'failed' (see 'zmbatch report'; `zmbatch reset "
			  "ACCOUNT` and a migrate pass, then a later run cuts it over)", failed);
	return ZMB_OK;
}
