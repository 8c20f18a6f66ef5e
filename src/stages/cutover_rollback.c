/*
 * cutover_rollback.c - `zmbatch run --rollback` for the cutover stage
 * (cutover.h), and the automatic rollback of one account whose cutover
 * failed (cutover.c roll_back_failed): the values recorded before the first
 * change (cutover.prev_*) are put back.
 *
 * The source first, then the target, each read and restored on its own: a
 * target that was deleted (or does not answer) does not leave the source
 * locked.  Only what a step that was reached could have changed is looked
 * at (a row at 'planned' may have had its source locked just before a
 * crash, so the source status from 'planned' on; the transports from
 * 'locked' on; the final source status from 'synced' on; the target's status
 * from 'final' on; a 'failed' row: all of them).
 *
 * A value is restored only while it still is what the cutover set (the
 * source: locked or the final status; the transports: the values of
 * source_transport / target_transport, recorded or from the templates; the
 * target: active): a value changed by hand since is left as it is and
 * reported as a conflict (account, server, attribute, both values).  A value
 * already back at the recorded one sends nothing, so a second rollback
 * sends nothing.  The row then becomes 'rolled_back' (terminal: the next
 * ordinary run does not cut it over again; `zmbatch reset ACCOUNT` does).
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
#include <strings.h>

struct rb {
	struct cut *c;
	const struct cutover_row *r;
	struct buf notes;   /* conflicts and vanished accounts, for the event / error */
	char *err;          /* the first server failure */
};

static void note(struct rb *b, const char *fmt, const char *a1, const char *a2, const char *a3,
		 const char *a4)
{
	char *m = xasprintf(fmt, a1, a2, a3, a4);
	stage_out(b->c->ctx, "%s: %s", b->r->account, m);
	buf_addf(&b->notes, "; %s", m);
	free(m);
}

/*
 * attr of id on conn: back to prev, if it is one of the values the cutover
 * set (set1, set2; NULL = none); already prev: nothing; else a conflict.
 */
static void restore(struct rb *b, struct xfer_conn *conn, const char *id, const char *attr,
		    const char *cur, const char *prev, const char *set1, const char *set2,
		    bool required)
{
	if (b->err || !prev || !strcmp(cur, prev))
		return;
	if (!(set1 && !strcmp(cur, set1)) && !(set2 && !strcmp(cur, set2))) {
		const struct server *s = conn->end->srv;
		char *srv = xasprintf("%s %s:%d", s->role, s->host, s->port);
		char *was = xasprintf("'%s', not what the cutover set ('%s')", cur, set1 ? set1 : "");
		note(b, "conflict on %s: %s is %s (changed by hand?): left as it is, not restored to '%s'",
		     srv, attr, was, prev);
		free(srv);
		free(was);
		b->c->conflicts++;
		return;
	}
	if (required && !*prev)
		return;
	char *e = NULL;
	if (cut_set(b->c, conn, conn == b->c->src ? b->r->account : b->r->target, id, attr, cur, prev,
		    &e)) {
		const struct server *s = conn->end->srv;
		b->err = xasprintf("rollback of %s on %s %s:%d: %s", attr, s->role, s->host, s->port,
				   e ? e : "failed");
	}
	free(e);
}

/* Read one side; ZMB_ENOACCOUNT noted (nothing to restore there), other failures in b->err. */
static bool read_side(struct rb *b, bool source, struct cut_cur *cur)
{
	char *e = NULL;
	struct xfer_conn *conn = source ? b->c->src : b->c->dst;
	enum zmb_rc rc = source ? cut_read_src(b->c, b->r, cur, &e) : cut_read_dst(b->c, b->r, cur, &e);
	if (rc == ZMB_ENOACCOUNT) {
		const struct server *s = conn->end->srv;
		char *srv = xasprintf("%s %s:%d", s->role, s->host, s->port);
		note(b, "the %s account %s is gone on %s%s: nothing restored there", source ? "source" : "target",
		     source ? b->r->account : b->r->target, srv, "");
		free(srv);
	} else if (rc) {
		const struct server *s = conn->end->srv;
		b->err = xasprintf("rollback: read on %s %s:%d: %s", s->role, s->host, s->port,
				   e ? e : zmb_rc_str(rc));
	}
	free(e);
	return rc == ZMB_OK;
}

enum zmb_rc cutover_roll_back_one(struct cut *c, struct cutover_row *r, enum cut_step to,
				  const char *why)
{
	struct stage_ctx *ctx = c->ctx;
	struct rb b = { c, r, BUF_INIT, NULL };
	struct cut_cur cur;
	char *sv = NULL, *tv = NULL;
	enum cut_step at = r->step;   /* CUT_FAILED (> done): every step may have been reached */
	cut_transports(c, r, &sv, &tv);
	memset(&cur, 0, sizeof cur);
	/* the source first: unlocked even when the target is gone */
	if (read_side(&b, true, &cur)) {
		restore(&b, c->src, cur.sid, "zimbraMailTransport", cur.s[1], r->prev_source_transport,
			at >= CUT_LOCKED ? sv : NULL, NULL, false);
		restore(&b, c->src, cur.sid, "zimbraAccountStatus", cur.s[0], r->prev_source_status,
			at >= CUT_PLANNED ? "locked" : NULL, at >= CUT_SYNCED ? c->k.source_status : NULL,
			true);
	}
	cut_cur_release(&cur);
	if (!b.err && read_side(&b, false, &cur)) {
		restore(&b, c->dst, cur.tid, "zimbraAccountStatus", cur.t[0], r->prev_target_status,
			at >= CUT_FINAL ? "active" : NULL, NULL, true);
		restore(&b, c->dst, cur.tid, "zimbraMailTransport", cur.t[1], r->prev_target_transport,
			at >= CUT_LOCKED ? tv : NULL, NULL, false);
	}
	cut_cur_release(&cur);
	free(sv);
	free(tv);
	enum zmb_rc rc = ZMB_OK;
	const char *notes = b.notes.s ? b.notes.s : "";
	if (to == CUT_FAILED) {
		char *msg = xasprintf("%s%s%s%s", why, notes, b.err ? "; rollback incomplete: " : "",
				      b.err ? b.err : "");
		stage_out(ctx, "%s: %s", r->account, msg);
		rc = state_cutover_end(ctx->st, ctx->run_id, ctx->sc->name, r->account_id, CUT_FAILED, msg);
		free(msg);
		c->failed++;
	} else if (b.err) {
		stage_out(ctx, "%s: %s", r->account, b.err);
		if (state_cutover_error(ctx->st, ctx->run_id, ctx->sc->name, r->account_id, b.err))
			log_warn(ctx->sc->name, "cannot record the error: %s", state_errmsg(ctx->st));
		c->failed++;
	} else {
		char *ev = xasprintf("cutover rolled back (from step %s): source status %s, transport '%s'; "
				     "target status %s, transport '%s'%s", cut_step_name(at),
				     r->prev_source_status, r->prev_source_transport,
				     at >= CUT_FINAL ? r->prev_target_status : "(unchanged)",
				     r->prev_target_transport, notes);
		rc = state_cutover_step(ctx->st, ctx->run_id, ctx->sc->name, r->account_id, at,
					CUT_ROLLED_BACK, NULL, NULL, ev);
		free(ev);
		if (rc == ZMB_OK)
			stage_out(ctx, "%s: rolled back", r->account);
	}
	buf_release(&b.notes);
	free(b.err);
	return rc;
}

/* --account ADDR...: only those source accounts (none given: every row) */
static bool selected(const struct cut *c, const struct cutover_row *r)
{
	for (int i = 0; i < c->ctx->naccounts; i++)
		if (!strcasecmp(c->ctx->accounts[i], r->account))
			return true;
	return c->ctx->naccounts == 0;
}

void cutover_rollback(struct cut *c, struct stage_result *res)
{
	struct cutover_row *rows = NULL;
	size_t n = 0;
	enum zmb_rc rc = state_cutover_to_roll_back(c->ctx->st, &rows, &n);
	/* the last batch first: the reverse of the cutover */
	size_t taken = 0;
	for (size_t i = n; rc == ZMB_OK && i > 0; i--) {
		if (!selected(c, &rows[i - 1]))
			continue;
		taken++;
		rc = cutover_roll_back_one(c, &rows[i - 1], CUT_ROLLED_BACK, NULL);
	}
	state_cutover_rows_free(rows, n);
	stage_out(c->ctx, "rollback: %zu account(s), %lld failed, %lld conflict(s) left as they are; "
		  "%lld ModifyAccountRequest(s)", taken, c->failed, c->conflicts, c->modifies);
	if (rc) {
		res->rc = rc;
		res->err = xasprintf("state DB: %s", state_errmsg(c->ctx->st));
	} else if (c->failed || c->conflicts) {
		/* a conflict is a value changed by hand since the cutover: the administrator decides */
		res->exit = EXIT_PARTIAL;
		res->err = xasprintf("%lld account(s) could not be rolled back, %lld value(s) changed "
				     "since the cutover were left as they are (see the output above)",
				     c->failed, c->conflicts);
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
	size_t taken = 0;
	for (size_t i = 0; i < n; i++)
		taken += selected(c, &rows[i]);
	stage_out(c->ctx, "dry run: rollback would restore %zu account(s)", taken);
	for (size_t i = n; i > 0; i--) {
		const struct cutover_row *r = &rows[i - 1];
		if (!selected(c, r))
			continue;
		stage_out(c->ctx, "dry run:   %s (step %s): source status %s, transport '%s'; target "
			  "status %s, transport '%s'", r->account, cut_step_name(r->step),
			  r->prev_source_status, r->prev_source_transport,
			  r->step >= CUT_FINAL ? r->prev_target_status : "(unchanged)",
			  r->prev_target_transport);
	}
	state_cutover_rows_free(rows, n);
}
