/*
 * cutover_rollback.c - `zmbatch run --rollback` for the cutover stage
 * (cutover.h): every account the cutover may have changed gets back the
 * values recorded before its first change (cutover.prev_*), in the reverse
 * order of the cutover: the target's status, both transports, the source's
 * status.  Only what a step that was reached could have changed is put back
 * (a row at 'planned' may have had its source locked just before a crash,
 * so the source status is restored from 'planned' on; the transports from
 * 'locked' on; the target's status from 'final' on).  Each value is read
 * first and written only when it differs, so a second rollback sends
 * nothing.  The row then becomes 'rolled_back', and a later cutover run
 * takes the account again as new.
 *
 * Not undone: the mail the final delta pass imported into the target, and
 * mail delivered to the target after the transports were switched (it is
 * on the target only; move it back with a migration the other way).
 * zimbraAccountStatus cannot be unset (zm-mailbox callback/AccountStatus.java
 * preModify: "is a required attribute"), so an empty recorded status is
 * left alone; an empty recorded transport is restored by unsetting it.
 */
#include "cutover.h"
#include "log.h"
#include "state_cutover.h"

#include <stdlib.h>
#include <string.h>

static enum zmb_rc restore(struct cut *c, struct xfer_conn *conn, const char *id, const char *attr,
			   const char *cur, const char *prev, bool reached, bool required, char **err)
{
	if (!reached || !prev || (required && !*prev))
		return ZMB_OK;
	return cut_set(c, conn, id, attr, cur, prev, err);
}

static enum zmb_rc roll_back_one(struct cut *c, struct cutover_row *r)
{
	struct stage_ctx *ctx = c->ctx;
	struct cut_cur cur;
	char *e = NULL;
	enum zmb_rc rc = cut_read(c, r, &cur, &e);
	const char *step = "read";
	if (rc == ZMB_OK) {
		step = "target status";
		rc = restore(c, c->dst, cur.tid, "zimbraAccountStatus", cur.t[0], r->prev_target_status,
			     r->step >= CUT_FINAL, true, &e);
	}
	if (rc == ZMB_OK) {
		step = "target transport";
		rc = restore(c, c->dst, cur.tid, "zimbraMailTransport", cur.t[1],
			     r->prev_target_transport, r->step >= CUT_LOCKED, false, &e);
	}
	if (rc == ZMB_OK) {
		step = "source transport";
		rc = restore(c, c->src, cur.sid, "zimbraMailTransport", cur.s[1],
			     r->prev_source_transport, r->step >= CUT_LOCKED, false, &e);
	}
	if (rc == ZMB_OK) {
		step = "source status";
		rc = restore(c, c->src, cur.sid, "zimbraAccountStatus", cur.s[0], r->prev_source_status,
			     r->step >= CUT_PLANNED, true, &e);
	}
	cut_cur_release(&cur);
	if (rc) {
		char *msg = xasprintf("rollback: %s: %s", step, e ? e : zmb_rc_str(rc));
		stage_out(ctx, "%s: %s", r->account, msg);
		if (state_cutover_error(ctx->st, ctx->run_id, ctx->sc->name, r->account_id, msg))
			log_warn(ctx->sc->name, "cannot record the error: %s", state_errmsg(ctx->st));
		free(msg);
		free(e);
		c->failed++;
		return ZMB_OK;
	}
	char *ev = xasprintf("cutover rolled back (from step %s): source status %s, transport '%s'; "
			     "target status %s, transport '%s'", cut_step_name(r->step),
			     r->prev_source_status, r->prev_source_transport,
			     r->step >= CUT_FINAL ? r->prev_target_status : "(unchanged)",
			     r->prev_target_transport);
	rc = state_cutover_step(ctx->st, ctx->run_id, ctx->sc->name, r->account_id, r->step,
				CUT_ROLLED_BACK, NULL, NULL, ev);
	free(ev);
	if (rc == ZMB_OK)
		stage_out(ctx, "%s: rolled back", r->account);
	return rc;
}

void cutover_rollback(struct cut *c, struct stage_result *res)
{
	struct cutover_row *rows = NULL;
	size_t n = 0;
	enum zmb_rc rc = state_cutover_to_roll_back(c->ctx->st, &rows, &n);
	/* the last batch first: the reverse of the cutover */
	for (size_t i = n; rc == ZMB_OK && i > 0; i--)
		rc = roll_back_one(c, &rows[i - 1]);
	state_cutover_rows_free(rows, n);
	stage_out(c->ctx, "rollback: %zu account(s), %lld failed; %lld ModifyAccountRequest(s)", n,
		  c->failed, c->modifies);
	if (rc) {
		res->rc = rc;
		res->err = xasprintf("state DB: %s", state_errmsg(c->ctx->st));
	} else if (c->failed) {
		res->exit = EXIT_PARTIAL;
		res->err = xasprintf("%lld account(s) could not be rolled back", c->failed);
	}
}

void cutover_rollback_plan(struct cut *c)
{
	struct cutover_row *rows = NULL;
	size_t n = 0;
	if (!c->ctx->st || state_cutover_to_roll_back(c->ctx->st, &rows, &n)) {
		stage_out(c->ctx, "dry run: rollback: nothing recorded");
		return;
	}
	stage_out(c->ctx, "dry run: rollback would restore %zu account(s)", n);
	for (size_t i = n; i > 0; i--) {
		const struct cutover_row *r = &rows[i - 1];
		stage_out(c->ctx, "dry run:   %s (step %s): source status %s, transport '%s'; target "
			  "status %s, transport '%s'", r->account, cut_step_name(r->step),
			  r->prev_source_status, r->prev_source_transport,
			  r->step >= CUT_FINAL ? r->prev_target_status : "(unchanged)",
			  r->prev_target_transport);
	}
	state_cutover_rows_free(rows, n);
}
