/*
 * state_accounts.c - the accounts table: discovery upserts, atomic claims,
 * transitions of the state machine, resets and counts (see state.h).
 *
 * Durability: journal_mode=WAL.  The connection runs with synchronous=NORMAL
 * (every commit survives a crash of the process - the failure the crash
 * tests exercise - and the DB can never be corrupted), and a transition to a
 * final state (done, failed) is committed with synchronous=FULL: its WAL
 * fsync also makes every earlier commit durable.  So a power cut can at
 * worst lose claims and intermediate steps, which recovery redoes safely
 * (re-import with resolve=skip is idempotent), but never a finished
 * account: no mailbox is migrated twice.  This is one WAL fsync per account
 * instead of one per commit (benchmark 3, runner CPU per 1,000 accounts).
 */
#include "state_cutover.h"
#include "state_int.h"

#include <stdlib.h>
#include <string.h>

/* Fill *r from a row of ACCOUNT_COLS. */
static void read_account(sqlite3_stmt *s, struct account_row *r)
{
	memset(r, 0, sizeof *r);
	r->id = sqlite3_column_int64(s, 0);
	r->account = st_col_text(s, 1);
	r->target = st_col_text(s, 2);
	r->seq = sqlite3_column_int64(s, 3);
	r->size = sqlite3_column_type(s, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 4);
	int ps = acct_state_parse((const char *)sqlite3_column_text(s, 5));
	r->state = ps < 0 ? ACCT_PENDING : (enum acct_state)ps;
	r->attempts = sqlite3_column_int(s, 6);
	r->last_error = st_col_text(s, 7);
	r->error_class = st_col_text(s, 8);
	r->bytes = sqlite3_column_int64(s, 9);
	r->seconds = st_col_double0(s, 10);
	r->spool_path = st_col_text(s, 11);
	r->next_try_at = st_col_double0(s, 12);
	r->started_at = st_col_double0(s, 13);
	r->finished_at = st_col_double0(s, 14);
	r->sync_mark = sqlite3_column_int64(s, 15);
	r->delta = sqlite3_column_int(s, 16) != 0;
	r->source_status = st_col_text(s, 17);
	r->target_status = st_col_text(s, 18);
	r->warnings = sqlite3_column_int64(s, 19);
	r->status_wait_since = st_col_double0(s, 20);
	r->chunks_total = sqlite3_column_int(s, 21);
	r->chunks_done = sqlite3_column_int(s, 22);
	r->chunk_bytes = sqlite3_column_int64(s, 23);
	r->verify_source = st_col_text(s, 24);
	r->verify_pending = sqlite3_column_int(s, 25) != 0;
	r->verify_mark = sqlite3_column_int64(s, 26);
}

void state_account_release(struct account_row *r)
{
	if (!r)
		return;
	free(r->account);
	free(r->target);
	free(r->last_error);
	free(r->error_class);
	free(r->spool_path);
	free(r->source_status);
	free(r->target_status);
	free(r->verify_source);
	memset(r, 0, sizeof *r);
}


/* ---- accounts ---- */

enum zmb_rc state_account_upsert(struct state *st, const char *account, const char *target,
				 int64_t seq, long long size)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	sqlite3_stmt *s = st_stmt_get(st, S_UPSERT, &rc);
	if (s) {
		st_bind_text(s, 1, account);
		st_bind_text(s, 2, target);
		sqlite3_bind_int64(s, 3, seq);
		if (size >= 0)
			sqlite3_bind_int64(s, 4, size);
		else
			sqlite3_bind_null(s, 4);
		sqlite3_bind_double(s, 5, wall_now());
		int src = sqlite3_step(s);
		if (src != SQLITE_DONE)
			rc = st_db_fail(st, src, "record account");
		st_stmt_done(s);
	}
	return tx_end(st, own, rc, "account upsert");
}

enum zmb_rc state_account_source_status(struct state *st, const char *account, const char *status)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	sqlite3_stmt *s = st_prepare(st, "UPDATE accounts SET source_status = ?2 WHERE account = ?1", &rc);
	if (s) {
		st_bind_text(s, 1, account);
		st_bind_text(s, 2, status);
		int src = sqlite3_step(s);
		if (src != SQLITE_DONE)
			rc = st_db_fail(st, src, "record account status");
		sqlite3_finalize(s);
	}
	return tx_end(st, own, rc, "account status");
}

enum zmb_rc state_account_set_hosts(struct state *st, int64_t id, const char *source_host,
				    const char *target_host)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	sqlite3_stmt *s = st_stmt_get(st, S_SET_HOSTS, &rc);
	if (s) {
		sqlite3_bind_int64(s, 1, id);
		st_bind_text(s, 2, source_host);
		st_bind_text(s, 3, target_host);
		int src = sqlite3_step(s);
		if (src != SQLITE_DONE)
			rc = st_db_fail(st, src, "record mail hosts");
		st_stmt_done(s);
	}
	return tx_end(st, own, rc, "account mail hosts");
}

/* One ad-hoc UPDATE of account id with an event, in one transaction (what: crashpoint name). */
static enum zmb_rc account_note(struct state *st, int64_t run_id, int64_t id, const char *sql,
				const char *a2, const char *a3, const char *level, const char *event,
				const char *what)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	sqlite3_stmt *s = st_prepare(st, sql, &rc);
	if (s) {
		sqlite3_bind_int64(s, 1, id);
		st_bind_text(s, 2, a2);
		st_bind_text(s, 3, a3);
		sqlite3_bind_double(s, 4, wall_now());
		rc = st_update_one(st, s, what);
		sqlite3_finalize(s);
	}
	if (!rc && event)
		rc = st_event_insert(st, run_id, id, NULL, level, event);
	return tx_end(st, own, rc, what);
}

enum zmb_rc state_account_imported(struct state *st, int64_t run_id, int64_t id,
				   const char *verify_source, long long bytes, long long mark_ms,
				   const char *source_host, const char *target_host)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	sqlite3_stmt *s = st_stmt_get(st, S_IMPORTED, &rc);
	if (s) {
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 2, bytes);
		sqlite3_bind_int64(s, 3, mark_ms);
		st_bind_text(s, 4, verify_source);
		sqlite3_bind_double(s, 5, wall_now());
		st_bind_text(s, 6, source_host);
		st_bind_text(s, 7, target_host);
		rc = st_update_one(st, s, "imported");
		st_stmt_done(s);
	}
	(void)run_id;
	return tx_end(st, own, rc, "imported");
}

enum zmb_rc state_account_verdict(struct state *st, int64_t run_id, int64_t id, const char *verdict,
				  const char *detail, const char *event)
{
	return account_note(st, run_id, id,
			    "UPDATE accounts SET verify = ?2, verify_detail = ?3, verified_at = ?4,"
			    " updated_at = ?4 WHERE id = ?1",
			    verdict, detail, strcmp(verdict, "ok") ? "warn" : "info", event, "verdict");
}

static enum zmb_rc account_query(struct state *st, enum stmt_id id, int64_t key_id,
				 const char *key, struct account_row *out)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_stmt_get(st, id, &rc);
	memset(out, 0, sizeof *out);
	if (!s)
		return rc;
	if (key)
		st_bind_text(s, 1, key);
	else
		sqlite3_bind_int64(s, 1, key_id);
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		read_account(s, out);
	} else if (src == SQLITE_DONE) {
		if (key)
			st_set_err(st, xasprintf("%s: account '%s' is not in the state database",
						 st->path, key));
		else
			st_set_err(st, xasprintf("%s: no account with id %lld", st->path,
						 (long long)key_id));
		rc = ZMB_ENOTFOUND;
	} else {
		rc = st_db_fail(st, src, "read account");
	}
	st_stmt_done(s);
	return rc;
}

enum zmb_rc state_account_get(struct state *st, const char *account, struct account_row *out)
{
	return account_query(st, S_ACCT_BY_NAME, 0, account, out);
}

/* First id of a claim query, 0 if none. */
static enum zmb_rc claim_pick(struct state *st, enum stmt_id id, double now, int64_t *pick)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_stmt_get(st, id, &rc);
	*pick = 0;
	if (!s)
		return rc;
	sqlite3_bind_double(s, 1, now);
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		*pick = sqlite3_column_int64(s, 0);
	else if (src != SQLITE_DONE)
		rc = st_db_fail(st, src, "choose account to claim");
	st_stmt_done(s);
	return rc;
}

/* Earliest next_try_at of one state (cached statement), -1 if none. */
static enum zmb_rc min_next_try(struct state *st, enum stmt_id id, double *t)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_stmt_get(st, id, &rc);
	*t = -1;
	if (!s)
		return rc;
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) != SQLITE_NULL)
			*t = sqlite3_column_double(s, 0);
	} else {
		rc = st_db_fail(st, src, "read backoff");
	}
	st_stmt_done(s);
	return rc;
}

/*
 * Exported rows come first (their archive is already on disk), then pending
 * ones.  Both respect next_try_at: an import that failed temporarily waits
 * for its backoff like an export does.
 */
enum zmb_rc state_claim(struct state *st, int64_t run_id, enum claim_order order,
			bool stream, double now, struct account_row *out, double *wait_s)
{
	bool own;
	int64_t pick = 0;
	enum acct_state to = ACCT_IMPORTING;
	enum zmb_rc rc;

	memset(out, 0, sizeof *out);
	if (wait_s)
		*wait_s = -1;
	if ((rc = tx_begin(st, &own)) != ZMB_OK)
		return rc;
	rc = claim_pick(st, order == CLAIM_AS_LISTED ? S_CLAIM_SEQ_EXPORTED : S_CLAIM_SIZE_EXPORTED,
			now, &pick);
	if (rc == ZMB_OK && !pick) {
		rc = claim_pick(st, order == CLAIM_AS_LISTED ? S_CLAIM_SEQ_PENDING : S_CLAIM_SIZE_PENDING,
				now, &pick);
		to = stream ? ACCT_IMPORTING : ACCT_EXPORTING;
	}
	if (rc)
		goto out;
	if (!pick) {
		double tp = -1, te = -1;
		rc = min_next_try(st, S_WAIT_PENDING, &tp);
		if (rc == ZMB_OK)
			rc = min_next_try(st, S_WAIT_EXPORTED, &te);
		if (rc)
			goto out;
		if (te >= 0 && (tp < 0 || te < tp))
			tp = te;
		if (wait_s)
			*wait_s = tp < 0 ? -1 : (tp > now ? tp - now : 0);
		st_set_err(st, xasprintf("%s: no account claimable now", st->path));
		rc = ZMB_ENOTFOUND;
		goto out;
	}
	sqlite3_stmt *s = st_stmt_get(st, S_CLAIM_SET, &rc);
	if (!s)
		goto out;
	sqlite3_bind_int64(s, 1, pick);
	st_bind_text(s, 2, acct_state_name(to));
	st_bind_id(s, 3, run_id);
	sqlite3_bind_double(s, 4, wall_now());
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		read_account(s, out);
	else
		rc = st_db_fail(st, src, "claim account");
	st_stmt_done(s);
out:
	if (rc == ZMB_ENOTFOUND) {
		if (own)
			tx_rollback(st);     /* nothing changed: not a durable step */
		return rc;
	}
	rc = tx_end(st, own, rc, "claim");
	if (rc)
		state_account_release(out);
	return rc;
}

enum zmb_rc state_transition(struct state *st, int64_t run_id, int64_t id,
			     enum acct_state from, enum acct_state to,
			     const struct acct_update *u)
{
	static const struct acct_update none = ACCT_UPDATE_INIT;
	bool own;
	enum zmb_rc rc;

	if (!u)
		u = &none;
	if (!acct_transition_ok(from, to)) {
		st_set_err(st, xasprintf("%s: account id %lld: illegal transition %s -> %s",
					 st->path, (long long)id, acct_state_name(from),
					 acct_state_name(to)));
		return ZMB_EINTERNAL;
	}
	/* a final state is committed with a WAL fsync (see Durability above) */
	bool durable = (to == ACCT_DONE || to == ACCT_FAILED) && sqlite3_get_autocommit(st->db) &&
		       !st->sync_full;
	if (durable && (rc = st_exec_sql(st, "PRAGMA synchronous = FULL", "set synchronous")) != ZMB_OK)
		return rc;
	if ((rc = tx_begin(st, &own)) != ZMB_OK)
		goto sync_back;
	sqlite3_stmt *s = st_stmt_get(st, S_TRANSITION, &rc);
	if (!s)
		goto out;
	sqlite3_bind_int64(s, 1, id);
	st_bind_text(s, 2, acct_state_name(from));
	st_bind_text(s, 3, acct_state_name(to));
	st_bind_text(s, 4, u->error);
	st_bind_text(s, 5, u->error_class);
	sqlite3_bind_int64(s, 6, u->bytes);
	sqlite3_bind_double(s, 7, u->seconds);
	st_bind_text(s, 8, u->spool_path);
	sqlite3_bind_double(s, 9, u->next_try_at);
	sqlite3_bind_int64(s, 10, u->sync_mark);
	sqlite3_bind_int(s, 11, u->reset_attempts);
	sqlite3_bind_int(s, 12, u->add_attempt ? 1 : 0);
	sqlite3_bind_double(s, 13, wall_now());
	/* the claim holder: kept while in flight, cleared when leaving */
	st_bind_id(s, 14, acct_in_flight(to) ? run_id : 0);
	sqlite3_bind_int64(s, 15, u->warnings);
	sqlite3_bind_double(s, 16, u->wait_since);
	st_bind_text(s, 17, u->source_status);
	st_bind_text(s, 18, u->target_status);
	st_bind_text(s, 19, u->verify);
	st_bind_text(s, 20, u->verify_detail);
	st_bind_text(s, 21, u->verify_source);
	sqlite3_bind_int(s, 22, u->verify_pending);
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE) {
		rc = st_db_fail(st, src, "account transition");
	} else if (sqlite3_changes(st->db) == 0) {
		st_set_err(st, xasprintf("%s: account id %lld: not in state '%s' (moved by someone else?)",
					 st->path, (long long)id, acct_state_name(from)));
		rc = ZMB_ECONFLICT;
	}
	st_stmt_done(s);
	if (rc == ZMB_OK && u->event) {
		const char *level = to == ACCT_FAILED ? "error"
			: (u->error && u->error[0]) ? "warn" : "info";
		rc = st_event_insert(st, run_id, id, NULL, level, u->event);
	}
out:
	rc = tx_end(st, own, rc, "transition");
sync_back:
	if (durable) {
		enum zmb_rc r2 = st_exec_sql(st, "PRAGMA synchronous = NORMAL", "set synchronous");
		if (rc == ZMB_OK)
			rc = r2;
	}
	return rc;
}


/* Run one ad-hoc UPDATE binding ?1 = now and optional ?2 text; *n = changes. */
static enum zmb_rc bulk_update(struct state *st, const char *sql, const char *arg, int *n,
			       const char *what)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_prepare(st, sql, &rc);
	if (!s)
		return rc;
	sqlite3_bind_double(s, 1, wall_now());
	if (sqlite3_bind_parameter_count(s) >= 2)
		st_bind_text(s, 2, arg);
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE)
		rc = st_db_fail(st, src, what);
	else if (n)
		*n += sqlite3_changes(st->db);
	sqlite3_finalize(s);
	return rc;
}

/*
 * A named account not in flight goes back to the queue with attempts 0:
 * done/failed/skipped/pending -> pending; an exported one stays exported
 * (its archive is complete) but is retried at once.  In flight = ECONFLICT.
 */
enum zmb_rc state_reset_account(struct state *st, const char *account, int *n)
{
	struct account_row row;
	bool own;
	int changed = 0;
	enum zmb_rc rc;

	if (n)
		*n = 0;
	if ((rc = tx_begin(st, &own)) != ZMB_OK)
		return rc;
	if ((rc = state_account_get(st, account, &row)) != ZMB_OK)
		goto out;
	if (acct_in_flight(row.state)) {
		st_set_err(st, xasprintf("%s: account '%s' is %s: a run holds it (or died: "
					 "the next run recovers it)", st->path, account,
					 acct_state_name(row.state)));
		rc = ZMB_ECONFLICT;
		goto out;
	}
	/* back to pending = migrate it again, in full: a delta from an old mark would
	 * bring back nothing to a target that was emptied or made again (skip keeps
	 * what is already there); an exported one keeps its archive and its mark.
	 * A chunked pass in progress is forgotten (a new plan), unlike after
	 * --retry-failed, which resumes it at its first step not done */
	rc = bulk_update(st, "UPDATE accounts SET state = CASE WHEN state = 'exported'"
			 " THEN 'exported' ELSE 'pending' END, attempts = 0, next_try_at = 0,"
			 " delta = CASE WHEN state = 'exported' THEN delta ELSE 0 END,"
			 " sync_mark = CASE WHEN state = 'exported' THEN sync_mark ELSE NULL END,"
			 " chunks_total = 0, chunks_done = 0, chunk_bytes = 0,"
			 " last_error = CASE WHEN verify = 'mismatch' THEN 'verify: ' ||"
			 "   coalesce(verify_detail, 'mismatch') ELSE last_error END,"
			 " verify = NULL, verify_detail = NULL, verified_at = NULL, verify_pending = 0,"
			 " finished_at = NULL, owner_run = NULL, updated_at = ?1 WHERE account = ?2",
			 account, &changed, "reset account");
	if (rc == ZMB_OK) {
		char *msg = xasprintf("reset: %s -> %s", acct_state_name(row.state),
				      row.state == ACCT_EXPORTED ? "exported" : "pending");
		rc = st_event_insert(st, 0, row.id, NULL, "info", msg);
		free(msg);
	}
	int forgot = 0;
	/* a failed / rolled_back / skipped cutover row is terminal: reset lets a later run take it */
	if (rc == ZMB_OK && (rc = state_cutover_forget(st, row.id, &forgot)) == ZMB_OK && forgot)
		rc = st_event_insert(st, 0, row.id, NULL, "info", "reset: the cutover row cleared");
out:
	state_account_release(&row);
	rc = tx_end(st, own, rc, "reset account");
	if (rc == ZMB_OK && n)
		*n = changed;
	return rc;
}

/*
 * --delta / --retry-failed leave out the accounts whose cutover (schema 009)
 * reached 'routed' or later and was not rolled back: their mail is delivered
 * to the target, the source is locked; another pass would move nothing new.
 */
#define NOT_CUT_OVER " AND id NOT IN (SELECT account_id FROM cutover WHERE step IN" \
	" ('routed', 'synced', 'final', 'done'))"

enum zmb_rc state_reset_failed(struct state *st, int *n)
{
	bool own;
	int changed = 0;
	enum zmb_rc rc;

	if (n)
		*n = 0;
	if ((rc = tx_begin(st, &own)) != ZMB_OK)
		return rc;
	rc = bulk_update(st, "INSERT INTO events (at, account_id, level, message)"
			 " SELECT ?1, id, 'info', 'reset: failed -> pending' FROM accounts"
			 " WHERE state = 'failed'" NOT_CUT_OVER, NULL, NULL, "record reset events");
	if (rc == ZMB_OK)
		rc = bulk_update(st, "UPDATE accounts SET state = 'pending', attempts = 0,"
				 " next_try_at = 0, finished_at = NULL, owner_run = NULL,"
				 " updated_at = ?1 WHERE state = 'failed'" NOT_CUT_OVER, NULL, &changed,
				 "reset failed accounts");
	rc = tx_end(st, own, rc, "reset failed");
	if (rc == ZMB_OK && n)
		*n = changed;
	return rc;
}

enum zmb_rc state_queue_delta(struct state *st, int *n)
{
	bool own;
	int changed = 0;
	enum zmb_rc rc;

	if (n)
		*n = 0;
	if ((rc = tx_begin(st, &own)) != ZMB_OK)
		return rc;
	rc = bulk_update(st, "UPDATE accounts SET state = 'pending', delta = 1, attempts = 0,"
			 " chunks_total = 0, chunks_done = 0, chunk_bytes = 0,"
			 " next_try_at = 0, finished_at = NULL, owner_run = NULL,"
			 " updated_at = ?1 WHERE state = 'done'"
			 /* cut over (issue 15): its mail goes to the target now; a delta from the
			  * source would bring nothing and could only race the users' new mail */
			 NOT_CUT_OVER, NULL, &changed, "queue delta pass");
	if (rc == ZMB_OK && changed > 0) {
		char *msg = xasprintf("delta pass: %d done account(s) queued again", changed);
		rc = st_event_insert(st, 0, 0, NULL, "info", msg);
		free(msg);
	}
	rc = tx_end(st, own, rc, "queue delta");
	if (rc == ZMB_OK && n)
		*n = changed;
	return rc;
}

enum zmb_rc state_counts(struct state *st, long long counts[ACCT_NSTATES])
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_prepare(st, "SELECT state, count(*) FROM accounts GROUP BY state", &rc);
	int src;

	for (int i = 0; i < ACCT_NSTATES; i++)
		counts[i] = 0;
	if (!s)
		return rc;
	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		int i = acct_state_parse((const char *)sqlite3_column_text(s, 0));
		if (i >= 0)
			counts[i] = sqlite3_column_int64(s, 1);
	}
	if (src != SQLITE_DONE)
		rc = st_db_fail(st, src, "count accounts");
	sqlite3_finalize(s);
	return rc;
}

enum zmb_rc state_accounts_each(struct state *st, state_account_fn fn, void *ctx)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_prepare(st, "SELECT account, state, coalesce(size, -1), bytes FROM accounts"
				     " ORDER BY account", &rc);
	int src;
	if (!s)
		return rc;
	while ((src = sqlite3_step(s)) == SQLITE_ROW)
		fn(ctx, (const char *)sqlite3_column_text(s, 0),
		   acct_state_parse((const char *)sqlite3_column_text(s, 1)),
		   sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3));
	if (src != SQLITE_DONE)
		rc = st_db_fail(st, src, "list accounts");
	sqlite3_finalize(s);
	return rc;
}
