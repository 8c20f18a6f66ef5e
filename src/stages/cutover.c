/*
 * cutover.c - the `cutover` stage (issue 15): after the last migrate pass,
 * one batch of accounts per run is switched to the target, each step
 * recorded in the state DB (schema/009_cutover.sql) before the next one.
 * Main thread only (the final delta pass starts the worker pool of src/xfer
 * and joins it: cutover_delta.c).
 *
 * Per account, in this order.  Why this order (zm-mailbox 2b7f9787):
 *   - store/src/java/com/zimbra/cs/service/UserServlet.java:502-516
 *     checkTargetAccountStatus (called by doGet:385 and doPost:749): an
 *     account in maintenance is refused to everyone, admins too (507-508),
 *     so the final delta's export from a source in maintenance fails (404
 *     with the admin cookie) and its import into a target in maintenance
 *     fails (401); any other status lets an admin token through (511-514);
 *   - store/conf/attrs/zimbra-attrs.xml:356-361 zimbraAccountStatus:
 *     "locked - no login, mail delivery OK"; "maintenance - no login, no
 *     delivery (lmtp server returns 4.x.x)"; :1436 zimbraMailTransport
 *     (astring, max 320, single, on the account: "where to deliver parameter
 *     for use in postfix transport_maps").
 * So the source is `locked` (not maintenance) while the final pass reads it,
 * and the transports are switched *before* that pass: mail that arrives
 * during and after the pass goes to the target, and the pass carries what
 * reached the source before.  maintenance, if asked for, comes after.
 *   planned  read, on both servers, the values about to change and record
 *            them (GetAccountRequest), before any change;
 *   locked   source zimbraAccountStatus = locked: the user cannot log in or
 *            change the mailbox, mail is still delivered to it, and an admin
 *            token still exports it;
 *   routed   zimbraMailTransport of the source account = the target's LMTP
 *            (source_transport) and of the target account = itself
 *            (target_transport): from here on new mail is delivered to the
 *            target, so nothing lands on the source after the final pass;
 *   synced   the final delta pass of the batch (one migrate pass over the
 *            batch's accounts only: cutover_delta.c), verified;
 *   final    the source's final status (source_status: locked, or
 *            maintenance, which refuses everyone from now on);
 *   done     target zimbraAccountStatus = active.
 * ModifyAccountRequest (service/admin/ModifyAccount.java) names the account
 * by zimbraId only (89-97), hence the ids read at 'planned'; a status cannot
 * be unset (account/callback/AccountStatus.java:47-49).
 * Batches: one run cuts over at most one batch of `batch` accounts, the
 * next eligible ones (done, verified ok or verification off, never cut over)
 * in the order the migration listed them (accounts.seq: accounts_file order,
 * then discovery); the stage then ends with exit 75 and stays pending while
 * accounts wait, so a nightly cron job moves one batch a night, and listing a
 * department's accounts together (batch = its size) moves one department a
 * night.  Not "all batches within the window": a cutover is the step users
 * notice, and an administrator wants to decide how many go per night, not
 * find the whole company moved because the window was long.  A window
 * (--max-runtime/--until) that ends before the first source of the batch is
 * locked stops the run there; once one is locked the window no longer stops
 * the batch (run_batch): it is finished rather than left locked.  A signal
 * stops between accounts; the next run finishes that batch before it starts
 * another.  An account whose step or final pass fails is rolled back at
 * once and ends 'failed' (roll_back_failed), so the batch ends and the next
 * one is not held up.
 * Each change is read before it is written: a value already as wanted is not
 * sent again, so a resumed or repeated run sends no ModifyAccountRequest for
 * it.  `zmbatch run --rollback` puts back the recorded previous values of
 * every account the cutover may have changed (cutover_rollback).
 */
#include "cutover.h"
#include "log.h"
#include "state_cutover.h"

#include <stdlib.h>
#include <string.h>

/* ---- keys ---- */

static int cut_fail(const struct stage_conf *sc, const struct cval *v, const char *file,
		    const char *key, char **err, const char *msg)
{
	*err = xasprintf("%s:%d: stage '%s': key '%s': %s", file ? file : "?",
			 v && v->line ? v->line : sc->line, sc->name, key, msg);
	return -1;
}

/* A transport template: printable, no blank, at most 320 bytes (zimbra-attrs.xml id 247 max="320"). */
static bool transport_ok(const char *t)
{
	if (!t || !*t || strlen(t) > 320)
		return false;
	for (const char *p = t; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return false;
	return true;
}

int cutover_parse(const struct stage_conf *sc, const char *file, struct cut_conf *k, char **err)
{
	static const char *const known[] = { "name", "type", "batch", "source_status",
					     "source_transport", "target_transport", NULL };
	const struct cval *g = &sc->settings;
	memset(k, 0, sizeof *k);
	for (size_t i = 0; i < g->n; i++) {
		const struct cval *v = &g->items[i];
		bool ok = false;
		for (int j = 0; known[j] && v->name; j++)
			ok |= !strcmp(known[j], v->name);
		if (v->name && !ok)
			return cut_fail(sc, v, file, v->name, err,
					"unknown key (a cutover stage takes batch, source_status, "
					"source_transport, target_transport)");
	}
	if (cval_int(g, "batch", 200, &k->batch, file, err) ||
	    cval_str(g, "source_status", "maintenance", &k->source_status, file, err) ||
	    cval_str(g, "source_transport", CUT_DEFAULT_TRANSPORT, &k->source_transport, file, err) ||
	    cval_str(g, "target_transport", CUT_DEFAULT_TRANSPORT, &k->target_transport, file, err)) {
		char *p = strstr(*err, "key '");
		char *n = p ? xasprintf("%.*sstage '%s': %s", (int)(p - *err), *err, sc->name, p)
			    : xasprintf("stage '%s': %s", sc->name, *err);
		free(*err);
		*err = n;
		return -1;
	}
	if (k->batch < 1 || k->batch > 1000000)
		return cut_fail(sc, cval_get(g, "batch"), file, "batch", err,
				"expected 1..1000000 accounts per run");
	if (strcmp(k->source_status, "locked") && strcmp(k->source_status, "maintenance"))
		return cut_fail(sc, cval_get(g, "source_status"), file, "source_status", err,
				"expected \"locked\" or \"maintenance\"");
	if (!transport_ok(k->source_transport))
		return cut_fail(sc, cval_get(g, "source_transport"), file, "source_transport", err,
				"expected a zimbraMailTransport value such as \"lmtp:%h:%p\" "
				"(no blanks, at most 320 bytes; %h = the target's mail host, %p = its "
				"LMTP port)");
	if (!transport_ok(k->target_transport))
		return cut_fail(sc, cval_get(g, "target_transport"), file, "target_transport", err,
				"expected a zimbraMailTransport value such as \"lmtp:%h:%p\" "
				"(no blanks, at most 320 bytes; %h = the target's mail host, %p = its "
				"LMTP port)");
	return 0;
}

int cutover_validate(const struct stage_conf *sc, const char *file, char **err)
{
	struct cut_conf k;
	return cutover_parse(sc, file, &k, err);
}

/* ---- one account, before and after the delta pass ---- */

/* "source HOST:PORT" / "target HOST:PORT" (new) */
static char *server_label(const struct xfer_conn *conn)
{
	const struct server *s = conn->end->srv;
	return xasprintf("%s %s:%d", s->role, s->host, s->port);
}

/* Step `step` of r failed on conn's server: recorded on the row (account, server, step). */
static enum zmb_rc fail(struct cut *c, const struct cutover_row *r, const char *step,
			const struct xfer_conn *conn, char *e)
{
	char *srv = server_label(conn);
	char *msg = xasprintf("%s: step '%s' on %s: %s", r->account, step, srv, e ? e : "failed");
	free(srv);
	stage_out(c->ctx, "%s: cutover failed: %s", r->account, msg);
	if (state_cutover_error(c->ctx->st, c->ctx->run_id, c->ctx->sc->name, r->account_id, msg))
		log_warn(c->ctx->sc->name, "cannot record the error: %s", state_errmsg(c->ctx->st));
	free(msg);
	free(e);
	c->failed++;
	return ZMB_EPROTO;
}

static enum zmb_rc step(struct cut *c, struct cutover_row *r, enum cut_step to, const char *st_,
			const char *tt, const char *ev)
{
	enum zmb_rc rc = state_cutover_step(c->ctx->st, c->ctx->run_id, c->ctx->sc->name,
					    r->account_id, r->step, to, st_, tt, ev);
	if (rc == ZMB_OK)
		r->step = to;
	else
		log_error(c->ctx->sc->name, "%s: cannot record step '%s': %s", r->account,
			  cut_step_name(to), state_errmsg(c->ctx->st));
	return rc;
}

/* selected .. routed.  ZMB_EPROTO: this account failed (recorded); other codes: the DB. */
static enum zmb_rc before_delta(struct cut *c, struct cutover_row *r)
{
	struct cut_cur cur;
	char *e = NULL;
	enum zmb_rc rc;
	memset(&cur, 0, sizeof cur);
	if ((rc = cut_read_src(c, r, &cur, &e)))
		return cut_cur_release(&cur), fail(c, r, "read", c->src, e);
	if ((rc = cut_read_dst(c, r, &cur, &e)))
		return cut_cur_release(&cur), fail(c, r, "read", c->dst, e);
	if (r->step == CUT_SELECTED && strcmp(cur.s[0], "active") != 0) {
		/*
		 * A source that is not active before the cutover (closed, locked,
		 * pending, maintenance: zimbra-attrs.xml:356-361) is left alone:
		 * making its target active would open an account its owner could not
		 * use before.  Skipped with a warning, nothing changed on either
		 * side; terminal like rolled_back (reset ACCOUNT to take it again).
		 */
		char *msg = xasprintf("%s: not cut over: the source account's status is '%s', not "
				      "active: nothing changed on either server", r->account, cur.s[0]);
		stage_out(c->ctx, "warning: %s", msg);
		rc = state_cutover_end(c->ctx->st, c->ctx->run_id, c->ctx->sc->name, r->account_id,
				       CUT_SKIPPED, msg);
		free(msg);
		if (rc == ZMB_OK)
			r->step = CUT_SKIPPED;
		cut_cur_release(&cur);
		return rc;
	}
	if (r->step == CUT_SELECTED) {
		free(r->source_id);
		free(r->target_id);
		free(r->target_host);
		free(r->prev_source_status);
		free(r->prev_target_status);
		free(r->prev_source_transport);
		free(r->prev_target_transport);
		r->source_id = xstrdup(cur.sid);
		r->target_id = xstrdup(cur.tid);
		/* the target account's zimbraMailHost as the target says now (GetAccount just
		 * above), not as an earlier migrate pass recorded it (accounts.target_host):
		 * the account may have been moved to another mailbox server since */
		r->target_host = xstrdup(cur.t[2]);
		r->prev_source_status = xstrdup(cur.s[0]);
		r->prev_source_transport = xstrdup(cur.s[1]);
		r->prev_target_status = xstrdup(cur.t[0]);
		r->prev_target_transport = xstrdup(cur.t[1]);
		if (!*r->target_host) {
			cut_cur_release(&cur);
			return fail(c, r, "read", c->dst,
				    xasprintf("the target account %s has no zimbraMailHost", r->target));
		}
		if ((rc = state_cutover_planned(c->ctx->st, c->ctx->run_id, c->ctx->sc->name, r)))
			goto out;
		r->step = CUT_PLANNED;
	}
	if (r->step == CUT_PLANNED) {
		if ((rc = cut_set(c, c->src, r->account, r->source_id, "zimbraAccountStatus", cur.s[0],
				  "locked", &e))) {
			rc = fail(c, r, "lock the source", c->src, e);
			goto out;
		}
		if ((rc = step(c, r, CUT_LOCKED, NULL, NULL, "cutover: source account locked")))
			goto out;
	}
	if (r->step == CUT_LOCKED) {
		char *sv = NULL, *tv = NULL;
		cut_transports(c, r, &sv, &tv);
		rc = cut_set(c, c->src, r->account, r->source_id, "zimbraMailTransport", cur.s[1], sv, &e);
		if (rc) {
			rc = fail(c, r, "point the transports at the target", c->src, e);
		} else if ((rc = cut_set(c, c->dst, r->target, r->target_id, "zimbraMailTransport", cur.t[1], tv,
					 &e))) {
			rc = fail(c, r, "point the transports at the target", c->dst, e);
		} else {
			char *ev = xasprintf("cutover: zimbraMailTransport: source '%s', target '%s'", sv, tv);
			rc = step(c, r, CUT_ROUTED, sv, tv, ev);
			free(ev);
		}
		free(sv);
		free(tv);
	}
out:
	cut_cur_release(&cur);
	return rc;
}

/* synced .. done. */
static enum zmb_rc after_delta(struct cut *c, struct cutover_row *r)
{
	struct cut_cur cur;
	char *e = NULL;
	enum zmb_rc rc;
	memset(&cur, 0, sizeof cur);
	if ((rc = cut_read_src(c, r, &cur, &e)))
		return cut_cur_release(&cur), fail(c, r, "read", c->src, e);
	if ((rc = cut_read_dst(c, r, &cur, &e)))
		return cut_cur_release(&cur), fail(c, r, "read", c->dst, e);
	if (r->step == CUT_SYNCED || r->step == CUT_FINAL) {
		/*
		 * Both transports again, as recorded at 'routed': nothing between
		 * (the final delta pass runs with xfer.no_transport, but a hand or
		 * another tool may have) is to leave the mail going elsewhere.  A
		 * value already right sends nothing.
		 */
		char *sv = NULL, *tv = NULL;
		cut_transports(c, r, &sv, &tv);
		if (strcmp(cur.s[1], sv) || strcmp(cur.t[1], tv))
			log_warn(c->ctx->sc->name, "%s: zimbraMailTransport changed after 'routed' "
				 "(source '%s', target '%s'): set again", r->account, cur.s[1], cur.t[1]);
		rc = cut_set(c, c->src, r->account, r->source_id, "zimbraMailTransport", cur.s[1], sv, &e);
		if (rc)
			rc = fail(c, r, "check the transports", c->src, e);
		else if ((rc = cut_set(c, c->dst, r->target, r->target_id, "zimbraMailTransport", cur.t[1], tv, &e)))
			rc = fail(c, r, "check the transports", c->dst, e);
		free(sv);
		free(tv);
		if (rc)
			goto out;
	}
	if (r->step == CUT_SYNCED) {
		if ((rc = cut_set(c, c->src, r->account, r->source_id, "zimbraAccountStatus", cur.s[0],
				  c->k.source_status, &e))) {
			rc = fail(c, r, "final source status", c->src, e);
			goto out;
		}
		char *ev = xasprintf("cutover: source account %s", c->k.source_status);
		rc = step(c, r, CUT_FINAL, NULL, NULL, ev);
		free(ev);
		if (rc)
			goto out;
	}
	if (r->step == CUT_FINAL) {
		if ((rc = cut_set(c, c->dst, r->target, r->target_id, "zimbraAccountStatus", cur.t[0], "active", &e))) {
			rc = fail(c, r, "activate the target", c->dst, e);
			goto out;
		}
		if ((rc = step(c, r, CUT_DONE, NULL, NULL, "cutover: target account active; done")))
			goto out;
		stage_out(c->ctx, "%s -> %s: cut over", r->account, r->target);
	}
out:
	cut_cur_release(&cur);
	return rc;
}

/* ---- the stage ---- */

static enum zmb_rc login(struct cut *c, struct stage_result *res)
{
	struct xfer_conn *conn[2] = { c->src, c->dst };
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
	}
	return ZMB_OK;
}

static void leftover_report(struct cut *c)
{
	long long failed = 0, mismatch = 0, waiting = 0;
	if (state_cutover_leftover(c->ctx->st, &failed, &mismatch, &waiting))
		return;
	if (failed || mismatch)
		stage_out(c->ctx, "not cut over: %lld account(s) that failed migration, %lld that "
			  "failed verification (see 'zmbatch report')", failed, mismatch);
	c->waiting = waiting;
}

static void dry_run(struct cut *c)
{
	struct cutover_row *rows = NULL;
	size_t n = 0;
	long long failed = 0, mismatch = 0, waiting = 0;
	if (!c->ctx->st) {
		stage_out(c->ctx, "dry run: no state database yet: nothing migrated, nothing to cut over");
		return;
	}
	if (state_cutover_open(c->ctx->st, &rows, &n) == ZMB_OK && n > 0) {
		stage_out(c->ctx, "dry run: batch %d would be resumed: %zu account(s)", rows[0].batch, n);
		for (size_t i = 0; i < n; i++)
			stage_out(c->ctx, "dry run:   %s (at step %s)", rows[i].account,
				  cut_step_name(rows[i].step));
	} else if (state_cutover_leftover(c->ctx->st, &failed, &mismatch, &waiting) == ZMB_OK) {
		stage_out(c->ctx, "dry run: the next batch would cut over %lld of %lld waiting account(s): "
			  "source -> locked, transports -> '%s' / '%s', final delta pass, source -> %s, "
			  "target -> active", waiting < c->k.batch ? waiting : c->k.batch, waiting,
			  c->k.source_transport, c->k.target_transport, c->k.source_status);
		if (failed || mismatch)
			stage_out(c->ctx, "dry run: not cut over: %lld failed migration, %lld failed "
				  "verification", failed, mismatch);
	}
	state_cutover_rows_free(rows, n);
}

/*
 * The batch's rows: resumed, or a new batch selected.  *rows NULL/0: nothing
 * to do.  Before anything is sent to a server: the final delta pass queues
 * the batch's accounts and runs the worker pool, which claims whatever is
 * pending, so other accounts waiting in the migration queue would be moved
 * too (and their sources are not locked).  Then the run stops here with
 * exit 75 (EX_TEMPFAIL: the queue drains by itself when the migrate stage
 * runs to its end, and the next run cuts over), never after a lock.
 */
static enum zmb_rc batch_rows(struct cut *c, struct cutover_row **rows, size_t *n,
			      struct stage_result *res)
{
	long long others = 0;
	enum zmb_rc rc = state_cutover_others_queued(c->ctx->st, &others);
	if (rc)
		return rc;
	if (others > 0) {
		res->err = xasprintf("%lld account(s) wait in the migration queue: the final delta pass "
				     "would move them too; no account was changed: run the migrate "
				     "stage to its end, then the cutover", others);
		res->exit = EXIT_TEMPFAIL;
		return ZMB_OK;
	}
	rc = state_cutover_open(c->ctx->st, rows, n);
	if (rc || *n > 0) {
		if (*n > 0)
			stage_out(c->ctx, "batch %d: resuming %zu account(s)", (*rows)[0].batch, *n);
		return rc;
	}
	int batch = 0, got = 0;
	if ((rc = state_cutover_select(c->ctx->st, c->ctx->run_id, c->ctx->sc->name, c->k.batch,
				       &batch, &got)))
		return rc;
	if (got == 0)
		return ZMB_OK;
	stage_out(c->ctx, "batch %d: %d account(s)", batch, got);
	return state_cutover_open(c->ctx->st, rows, n);
}

/*
 * After the pass: every row of the batch that failed (a step, the final
 * delta pass or its verification, a vanished target) is rolled back at once
 * and ends 'failed', so its source does not stay locked and the batch ends:
 * the next batch is not held up by it.  `reset ACCOUNT` takes it again.
 */
static enum zmb_rc roll_back_failed(struct cut *c)
{
	struct cutover_row *rows = NULL;
	size_t n = 0;
	enum zmb_rc rc = state_cutover_open(c->ctx->st, &rows, &n);
	for (size_t i = 0; rc == ZMB_OK && i < n; i++) {
		struct cutover_row *r = &rows[i];
		if (!r->error)
			continue;
		/* the account, the server (in the step's error or the import's) and the step */
		size_t al = strlen(r->account);
		bool named = !strncmp(r->error, r->account, al) && r->error[al] == ':';
		char *why = xasprintf("%s%s%s (at step '%s'); rolled back", named ? "" : r->account,
				      named ? "" : ": ", r->error, cut_step_name(r->step));
		stage_out(c->ctx, "%s: cutover failed: rolling it back", r->account);
		rc = cutover_roll_back_one(c, r, CUT_FAILED, why);
		free(why);
	}
	state_cutover_rows_free(rows, n);
	return rc;
}

static void run_batch(struct cut *c, struct cutover_row *rows, size_t n, struct stage_result *res)
{
	enum zmb_rc rc = ZMB_OK;
	struct run_ctl *ctl = c->ctx->ctl;
	bool locked = false;
	for (size_t i = 0; i < n; i++)
		locked |= rows[i].step >= CUT_LOCKED;
	/* the steps before the final pass, account by account */
	for (size_t i = 0; i < n && rc != ZMB_ESTATE && rc != ZMB_EIO; i++) {
		/*
		 * Once a source of the batch is locked, the end of the time window
		 * (--until / --max-runtime) no longer stops the batch: it is
		 * finished (final delta pass included) rather than left locked and
		 * routed overnight.  A signal still stops it (the next run resumes).
		 */
		if (locked)
			ctl->deadline = 0;   /* main thread; no worker runs yet (runctl.h) */
		if (!runctl_may_claim(ctl)) {
			res->exit = EXIT_TEMPFAIL;
			return;
		}
		if (rows[i].step < CUT_ROUTED)
			rc = before_delta(c, &rows[i]);
		if (rc == ZMB_EPROTO)
			rc = ZMB_OK;   /* recorded: the other accounts go on */
		locked |= rows[i].step >= CUT_LOCKED && rows[i].step < CUT_ROLLED_BACK;
	}
	if (rc) {
		res->rc = rc;
		res->err = xasprintf("state DB: %s", state_errmsg(c->ctx->st));
		return;
	}
	bool any = false;
	for (size_t i = 0; i < n; i++)
		any |= rows[i].step == CUT_ROUTED && !rows[i].error;
	if (locked)
		ctl->deadline = 0;
	if (any && (rc = cutover_delta(c, res)) != ZMB_OK) {
		res->rc = rc;
		return;
	}
	if (res->exit == EXIT_TEMPFAIL)
		return;
	/* the delta pass moved rows to synced (or recorded why not): read them again */
	struct cutover_row *again = NULL;
	size_t m = 0;
	if ((rc = state_cutover_open(c->ctx->st, &again, &m))) {
		res->rc = rc;
		res->err = xasprintf("state DB: %s", state_errmsg(c->ctx->st));
		return;
	}
	for (size_t i = 0; i < m && rc != ZMB_ESTATE && rc != ZMB_EIO; i++) {
		if (again[i].step >= CUT_SYNCED && again[i].step < CUT_DONE)
			rc = after_delta(c, &again[i]);
		if (rc == ZMB_EPROTO)
			rc = ZMB_OK;
	}
	state_cutover_rows_free(again, m);
	if (rc == ZMB_OK)
		rc = roll_back_failed(c);
	if (rc) {
		res->rc = rc;
		res->err = xasprintf("state DB: %s", state_errmsg(c->ctx->st));
	}
}

/*
 * The stage's verdict.  Exit 1 (and the stage not done, so a later run
 * comes back to it) while an account that the migration left failed or
 * unverified is not cut over, or a cutover row failed (until `reset
 * ACCOUNT` and a new migrate pass make it eligible: the next run cuts it
 * over); 75 while eligible accounts wait for a later batch; 0 when every
 * migrated account is cut over (or deliberately rolled back or skipped).
 */
static void verdict(struct cut *c, struct stage_result *res)
{
	long long k[CUT_NSTEPS], errors = 0, batches = 0;
	long long failed_mig = 0, mismatch = 0, waiting = 0;
	if (state_cutover_counts(c->ctx->st, k, &errors, &batches) ||
	    state_cutover_leftover(c->ctx->st, &failed_mig, &mismatch, &waiting))
		return;
	long long open = 0;
	for (int i = CUT_SELECTED; i < CUT_DONE; i++)
		open += k[i];
	leftover_report(c);
	stage_out(c->ctx, "cutover: %lld account(s) cut over in %lld batch(es), %lld unfinished, "
		  "%lld failed (rolled back), %lld skipped, %lld waiting for a later batch; %lld "
		  "ModifyAccountRequest(s) this run", k[CUT_DONE], batches, open, k[CUT_FAILED],
		  k[CUT_SKIPPED], c->waiting, c->modifies);
	if (res->exit == EXIT_TEMPFAIL || res->rc)
		return;
	long long bad = open + k[CUT_FAILED] + failed_mig + mismatch;
	if (c->failed > 0 || bad > 0) {
		res->exit = EXIT_PARTIAL;
		res->err = xasprintf("not cut over: %lld unfinished, %lld failed cutover(s), %lld account(s) "
				     "that failed migration, %lld that failed verification%s (see 'zmbatch "
				     "report' and 'zmbatch accounts --history ACCOUNT')", open,
				     k[CUT_FAILED], failed_mig, mismatch,
				     c->waiting ? "; more wait for a later batch" : "");
	} else if (c->waiting > 0) {
		/* one batch per run: the stage stays pending, the next run takes the next batch */
		runctl_request_stop(c->ctx->ctl, "one cutover batch per run; the next run cuts over "
				    "the next batch", false);
		res->exit = EXIT_TEMPFAIL;
	}
}

struct stage_result cutover_run(struct stage_ctx *ctx)
{
	struct stage_result res = { ZMB_OK, 0, NULL };
	struct cut c;
	struct cutover_row *rows = NULL;
	size_t n = 0;
	memset(&c, 0, sizeof c);
	c.ctx = ctx;
	if (cutover_parse(ctx->sc, ctx->job->path, &c.k, &res.err)) {
		res.rc = ZMB_ECONFIG;
		return res;
	}
	if (ctx->dry_run) {
		if (ctx->rollback)
			cutover_rollback_plan(&c);
		else
			dry_run(&c);
		return res;
	}
	xfer_init(&c.x, &xfer_driver_zimbra, ctx->job, ctx->state_path, ctx->run_id, ctx->ctl);
	/* the cutover owns both transports: its final delta pass never sets migration.mail_transport */
	c.x.no_transport = true;
	state_set_write_lock(ctx->st, &c.x.dbw);
	c.src = c.x.src->drv->conn_new(c.x.src);
	c.dst = c.x.dst->drv->conn_new(c.x.dst);
	if ((res.rc = login(&c, &res)))
		goto out;
	if (ctx->rollback) {
		cutover_rollback(&c, &res);
		goto out;
	}
	if ((res.rc = batch_rows(&c, &rows, &n, &res))) {
		res.err = xasprintf("state DB: %s", state_errmsg(ctx->st));
		goto out;
	}
	if (res.exit == EXIT_TEMPFAIL)
		goto out;
	if (n > 0)
		run_batch(&c, rows, n, &res);
	verdict(&c, &res);
out:
	state_cutover_rows_free(rows, n);
	if (c.src)
		c.src->end->drv->conn_free(c.src);
	if (c.dst)
		c.dst->end->drv->conn_free(c.dst);
	state_set_write_lock(ctx->st, NULL);
	xfer_release(&c.x);
	for (size_t i = 0; i < c.nports; i++)
		free(c.ports[i].host);
	free(c.ports);
	return res;
}
