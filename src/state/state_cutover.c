/*
 * state_cutover.c - the cutover table (state_cutover.h, schema 009).
 */
#include "state_cutover.h"
#include "state_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const step_names[CUT_NSTEPS] = {
	"selected", "planned", "locked", "routed", "synced", "final", "done", "rolled_back",
	"failed", "skipped",
};

const char *cut_step_name(enum cut_step s)
{
	return s >= 0 && s < CUT_NSTEPS ? step_names[s] : "?";
}

int cut_step_parse(const char *s)
{
	for (int i = 0; s && i < CUT_NSTEPS; i++)
		if (!strcmp(step_names[i], s))
			return i;
	return -1;
}

void state_cutover_rows_free(struct cutover_row *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		struct cutover_row *r = &v[i];
		free(r->account);
		free(r->target);
		free(r->source_id);
		free(r->target_id);
		free(r->target_host);
		free(r->prev_source_status);
		free(r->prev_target_status);
		free(r->prev_source_transport);
		free(r->prev_target_transport);
		free(r->source_transport);
		free(r->target_transport);
		free(r->error);
		free(r->acct_target_host);
	}
	free(v);
}

#define ROW_COLS "c.account_id, a.account, a.target, c.batch, c.step, c.source_id, c.target_id, " \
	"c.target_host, c.prev_source_status, c.prev_target_status, c.prev_source_transport, " \
	"c.prev_target_transport, c.source_transport, c.target_transport, c.error, a.target_host"

static enum zmb_rc read_rows(struct state *st, const char *where, struct cutover_row **out,
			     size_t *n)
{
	enum zmb_rc rc;
	char *sql = xasprintf("SELECT " ROW_COLS " FROM cutover c JOIN accounts a ON a.id = c.account_id"
			      " WHERE %s ORDER BY c.batch, a.seq", where);
	sqlite3_stmt *s = st_prepare(st, sql, &rc);
	free(sql);
	*out = NULL;
	*n = 0;
	if (!s)
		return rc;
	size_t cap = 0;
	int src;
	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*out = xrealloc(*out, cap * sizeof **out);
		}
		struct cutover_row *r = &(*out)[(*n)++];
		memset(r, 0, sizeof *r);
		r->account_id = sqlite3_column_int64(s, 0);
		r->account = st_col_text(s, 1);
		r->target = st_col_text(s, 2);
		r->batch = sqlite3_column_int(s, 3);
		int k = cut_step_parse((const char *)sqlite3_column_text(s, 4));
		r->step = k < 0 ? CUT_SELECTED : (enum cut_step)k;
		r->source_id = st_col_text(s, 5);
		r->target_id = st_col_text(s, 6);
		r->target_host = st_col_text(s, 7);
		r->prev_source_status = st_col_text(s, 8);
		r->prev_target_status = st_col_text(s, 9);
		r->prev_source_transport = st_col_text(s, 10);
		r->prev_target_transport = st_col_text(s, 11);
		r->source_transport = st_col_text(s, 12);
		r->target_transport = st_col_text(s, 13);
		r->error = st_col_text(s, 14);
		r->acct_target_host = st_col_text(s, 15);
	}
	if (src != SQLITE_DONE) {
		rc = st_db_fail(st, src, "read cutover rows");
		state_cutover_rows_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	sqlite3_finalize(s);
	return rc;
}

enum zmb_rc state_cutover_open(struct state *st, struct cutover_row **out, size_t *n)
{
	return read_rows(st, "c.step NOT IN ('done', 'rolled_back', 'failed', 'skipped')", out, n);
}

enum zmb_rc state_cutover_to_roll_back(struct state *st, struct cutover_row **out, size_t *n)
{
	return read_rows(st, "c.step NOT IN ('selected', 'rolled_back', 'skipped')", out, n);
}

/* One statement with ?1 = now (and ?2.. bound by the caller's values), *changes added. */
static enum zmb_rc exec_now(struct state *st, const char *sql, const char *what, int *changes,
			    const char *const *texts, size_t ntexts)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_prepare(st, sql, &rc);
	if (!s)
		return rc;
	sqlite3_bind_double(s, 1, wall_now());
	for (size_t i = 0; i < ntexts; i++)
		st_bind_text(s, (int)i + 2, texts[i]);
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE && src != SQLITE_ROW)
		rc = st_db_fail(st, src, what);
	else if (changes)
		*changes += sqlite3_changes(st->db);
	sqlite3_finalize(s);
	return rc;
}

static enum zmb_rc query_ll(struct state *st, const char *sql, long long *v)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_prepare(st, sql, &rc);
	*v = 0;
	if (!s)
		return rc;
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		*v = sqlite3_column_int64(s, 0);
	else if (src != SQLITE_DONE)
		rc = st_db_fail(st, src, "cutover count");
	sqlite3_finalize(s);
	return rc;
}

#define ELIGIBLE "a.state = 'done' AND (a.verify IS NULL OR a.verify = 'ok')"

enum zmb_rc state_cutover_select(struct state *st, int64_t run_id, const char *stage,
				 long long limit, int *batch, int *n)
{
	bool own;
	long long b = 0;
	int changed = 0;
	enum zmb_rc rc = tx_begin(st, &own);
	*n = 0;
	*batch = 0;
	if (rc)
		return rc;
	rc = query_ll(st, "SELECT coalesce(max(batch), 0) + 1 FROM cutover", &b);
	if (rc == ZMB_OK) {
		char *sql = xasprintf("INSERT INTO cutover (account_id, batch, step, run_id, started_at,"
				      " updated_at) SELECT a.id, %lld, 'selected', nullif(%lld, 0), ?1, ?1"
				      " FROM accounts a WHERE " ELIGIBLE " AND NOT EXISTS (SELECT 1 FROM"
				      " cutover c WHERE c.account_id = a.id) ORDER BY a.seq LIMIT %lld",
				      b, (long long)run_id, limit);
		rc = exec_now(st, sql, "cutover select", &changed, NULL, 0);
		free(sql);
	}
	if (rc == ZMB_OK && changed > 0) {
		char *msg = xasprintf("cutover: batch %lld: %d account(s) selected", b, changed);
		rc = st_event_insert(st, run_id, 0, stage, "info", msg);
		free(msg);
	}
	rc = tx_end(st, own, rc, "cutover select");
	if (rc == ZMB_OK) {
		*n = changed;
		*batch = (int)b;
	}
	return rc;
}

enum zmb_rc state_cutover_leftover(struct state *st, long long *failed, long long *mismatch,
				   long long *waiting)
{
	enum zmb_rc rc = query_ll(st, "SELECT count(*) FROM accounts WHERE state IN ('failed', 'skipped')",
				  failed);
	if (rc == ZMB_OK)
		rc = query_ll(st, "SELECT count(*) FROM accounts WHERE state = 'done' AND verify IN"
			      " ('mismatch', 'unverifiable')", mismatch);
	if (rc == ZMB_OK)
		rc = query_ll(st, "SELECT count(*) FROM accounts a WHERE " ELIGIBLE " AND NOT EXISTS"
			      " (SELECT 1 FROM cutover c WHERE c.account_id = a.id)", waiting);
	return rc;
}

static enum zmb_rc event(struct state *st, int64_t run_id, int64_t account_id, const char *stage,
			 const char *level, const char *msg)
{
	return msg ? st_event_insert(st, run_id, account_id, stage, level, msg) : ZMB_OK;
}

enum zmb_rc state_cutover_planned(struct state *st, int64_t run_id, const char *stage,
				  const struct cutover_row *r)
{
	bool own;
	int changed = 0;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	const char *v[] = { r->source_id, r->target_id, r->target_host, r->prev_source_status,
			    r->prev_target_status, r->prev_source_transport, r->prev_target_transport };
	char *sql = xasprintf("UPDATE cutover SET step = 'planned', source_id = ?2, target_id = ?3,"
			      " target_host = ?4, prev_source_status = ?5, prev_target_status = ?6,"
			      " prev_source_transport = ?7, prev_target_transport = ?8, error = NULL,"
			      " run_id = nullif(%lld, 0), updated_at = ?1 WHERE account_id = %lld AND step = 'selected'",
			      (long long)run_id, (long long)r->account_id);
	rc = exec_now(st, sql, "cutover planned", &changed, v, 7);
	free(sql);
	if (rc == ZMB_OK && changed == 0) {
		st_set_err(st, xasprintf("cutover of %s: not at step 'selected'", r->account));
		rc = ZMB_ECONFLICT;
	}
	if (rc == ZMB_OK) {
		char *msg = xasprintf("cutover: planned; before: source status %s, transport '%s'; "
				      "target status %s, transport '%s'",
				      r->prev_source_status, r->prev_source_transport,
				      r->prev_target_status, r->prev_target_transport);
		rc = event(st, run_id, r->account_id, stage, "info", msg);
		free(msg);
	}
	return tx_end(st, own, rc, "cutover planned");
}

enum zmb_rc state_cutover_step(struct state *st, int64_t run_id, const char *stage,
			       int64_t account_id, enum cut_step from, enum cut_step to,
			       const char *source_transport, const char *target_transport,
			       const char *ev)
{
	bool own;
	int changed = 0;
	if (!(to == from + 1 || to == CUT_ROLLED_BACK || to == CUT_FAILED))
		return ZMB_EINTERNAL;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	const char *v[] = { cut_step_name(to), source_transport, target_transport,
			    cut_step_name(from) };
	char *sql = xasprintf("UPDATE cutover SET step = ?2, source_transport = coalesce(?3,"
			      " source_transport), target_transport = coalesce(?4, target_transport),"
			      " error = NULL, run_id = nullif(%lld, 0), updated_at = ?1,"
			      " done_at = CASE WHEN ?2 = 'done' THEN ?1 ELSE done_at END,"
			      " rolled_back_at = CASE WHEN ?2 = 'rolled_back' THEN ?1 ELSE NULL END"
			      " WHERE account_id = %lld AND step = ?5",
			      (long long)run_id, (long long)account_id);
	rc = exec_now(st, sql, "cutover step", &changed, v, 4);
	free(sql);
	if (rc == ZMB_OK && changed == 0) {
		st_set_err(st, xasprintf("cutover row %lld: not at step '%s'", (long long)account_id,
					 cut_step_name(from)));
		rc = ZMB_ECONFLICT;
	}
	if (rc == ZMB_OK)
		rc = event(st, run_id, account_id, stage, "info", ev);
	return tx_end(st, own, rc, "cutover step");
}

enum zmb_rc state_cutover_error(struct state *st, int64_t run_id, const char *stage,
				int64_t account_id, const char *error)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	const char *v[] = { error };
	char *sql = xasprintf("UPDATE cutover SET error = ?2, attempts = attempts + 1, updated_at = ?1"
			      " WHERE account_id = %lld", (long long)account_id);
	rc = exec_now(st, sql, "cutover error", NULL, v, 1);
	free(sql);
	if (rc == ZMB_OK) {
		char *msg = xasprintf("cutover: %s", error);
		rc = event(st, run_id, account_id, stage, "error", msg);
		free(msg);
	}
	return tx_end(st, own, rc, "cutover error");
}

#define QUEUED_OTHERS "SELECT count(*) FROM accounts WHERE state IN ('pending', 'exporting'," \
	" 'exported', 'importing') AND id NOT IN (SELECT account_id FROM cutover WHERE step IN" \
	" ('selected', 'planned', 'locked', 'routed', 'synced', 'final'))"

enum zmb_rc state_cutover_others_queued(struct state *st, long long *n)
{
	return query_ll(st, QUEUED_OTHERS, n);
}

enum zmb_rc state_cutover_routed(struct state *st, const char *account, bool *yes)
{
	enum zmb_rc rc;
	*yes = false;
	sqlite3_stmt *s = st_prepare(st, "SELECT count(*) FROM cutover c JOIN accounts a ON a.id = c.account_id"
				     " WHERE a.account = ?1 COLLATE NOCASE AND c.step IN ('routed', 'synced',"
				     " 'final', 'done')", &rc);
	if (!s)
		return rc;
	sqlite3_bind_text(s, 1, account, -1, SQLITE_TRANSIENT);
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		*yes = sqlite3_column_int64(s, 0) > 0;
	else if (src != SQLITE_DONE)
		rc = st_db_fail(st, src, "cutover of an account");
	sqlite3_finalize(s);
	return rc;
}

enum zmb_rc state_cutover_end(struct state *st, int64_t run_id, const char *stage,
			      int64_t account_id, enum cut_step to, const char *error)
{
	bool own;
	int changed = 0;
	if (to != CUT_FAILED && to != CUT_SKIPPED)
		return ZMB_EINTERNAL;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	const char *v[] = { cut_step_name(to), error };
	char *sql = xasprintf("UPDATE cutover SET step = ?2, error = ?3, attempts = attempts + 1,"
			      " run_id = nullif(%lld, 0), updated_at = ?1 WHERE account_id = %lld",
			      (long long)run_id, (long long)account_id);
	rc = exec_now(st, sql, "cutover end", &changed, v, 2);
	free(sql);
	if (rc == ZMB_OK && changed == 0) {
		st_set_err(st, xasprintf("cutover row %lld: none", (long long)account_id));
		rc = ZMB_ECONFLICT;
	}
	if (rc == ZMB_OK) {
		char *msg = xasprintf("cutover %s: %s", cut_step_name(to), error);
		rc = event(st, run_id, account_id, stage, to == CUT_FAILED ? "error" : "warn", msg);
		free(msg);
	}
	return tx_end(st, own, rc, "cutover end");
}

enum zmb_rc state_cutover_forget(struct state *st, int64_t account_id, int *n)
{
	char *sql = xasprintf("DELETE FROM cutover WHERE account_id = %lld AND step IN"
			      " ('rolled_back', 'failed', 'skipped')", (long long)account_id);
	*n = 0;
	enum zmb_rc rc = exec_now(st, sql, "cutover forget", n, NULL, 0);
	free(sql);
	return rc;
}

enum zmb_rc state_cutover_queue_delta(struct state *st, int64_t run_id, int *n, char **err)
{
	bool own;
	long long others = 0;
	int changed = 0;
	enum zmb_rc rc = tx_begin(st, &own);
	*n = 0;
	if (rc)
		return rc;
	rc = query_ll(st, QUEUED_OTHERS, &others);
	if (rc == ZMB_OK && others > 0) {
		*err = xasprintf("%lld account(s) outside the batch wait in the migration queue: run the "
				 "migrate stage to the end first", others);
		rc = ZMB_ECONFLICT;
	}
	if (rc == ZMB_OK)
		rc = exec_now(st, "UPDATE accounts SET state = 'pending', delta = 1, attempts = 0,"
			      " chunks_total = 0, chunks_done = 0, chunk_bytes = 0, next_try_at = 0,"
			      " finished_at = NULL, owner_run = NULL, updated_at = ?1 WHERE state = 'done'"
			      " AND id IN (SELECT account_id FROM cutover WHERE step = 'routed')",
			      "cutover queue delta", &changed, NULL, 0);
	if (rc == ZMB_OK && changed > 0) {
		char *msg = xasprintf("cutover: final delta pass: %d account(s) queued", changed);
		rc = st_event_insert(st, run_id, 0, NULL, "info", msg);
		free(msg);
	}
	rc = tx_end(st, own, rc, "cutover queue delta");
	if (rc == ZMB_OK)
		*n = changed;
	return rc;
}

enum zmb_rc state_cutover_delta_done(struct state *st, int64_t run_id, const char *stage,
				     int *synced, int *failed)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	*synced = *failed = 0;
	if (rc)
		return rc;
	const char *v[] = { stage };
	char *sql = xasprintf("INSERT INTO events (at, run_id, account_id, stage, level, message)"
			      " SELECT ?1, nullif(%lld, 0), c.account_id, ?2, 'info', 'cutover: final delta pass done'"
			      " FROM cutover c JOIN accounts a ON a.id = c.account_id"
			      " WHERE c.step = 'routed' AND " ELIGIBLE, (long long)run_id);
	rc = exec_now(st, sql, "cutover synced", NULL, v, 1);
	free(sql);
	if (rc == ZMB_OK)
		rc = exec_now(st, "UPDATE cutover SET step = 'synced', error = NULL, updated_at = ?1"
			      " WHERE step = 'routed' AND account_id IN (SELECT a.id FROM accounts a"
			      " WHERE " ELIGIBLE ")", "cutover synced", synced, NULL, 0);
	if (rc == ZMB_OK) {
		sql = xasprintf("INSERT INTO events (at, run_id, account_id, stage, level, message)"
				" SELECT ?1, nullif(%lld, 0), c.account_id, ?2, 'error', 'cutover: final delta pass: ' ||"
				" a.state || coalesce(': ' || a.last_error, '') || coalesce(' (verify ' ||"
				" a.verify || ')', '') FROM cutover c JOIN accounts a ON a.id = c.account_id"
				" WHERE c.step = 'routed'", (long long)run_id);
		rc = exec_now(st, sql, "cutover delta failed", NULL, v, 1);
		free(sql);
	}
	if (rc == ZMB_OK)
		rc = exec_now(st, "UPDATE cutover SET error = 'final delta pass: ' || (SELECT a.state ||"
			      " coalesce(': ' || a.last_error, '') || coalesce(' (verify ' || a.verify || ')',"
			      " '') FROM accounts a WHERE a.id = cutover.account_id), attempts = attempts + 1,"
			      " updated_at = ?1 WHERE step = 'routed'", "cutover delta failed", failed,
			      NULL, 0);
	return tx_end(st, own, rc, "cutover delta done");
}

enum zmb_rc state_cutover_counts(struct state *st, long long counts[CUT_NSTEPS],
				 long long *errors, long long *batches)
{
	enum zmb_rc rc;
	for (int i = 0; i < CUT_NSTEPS; i++)
		counts[i] = 0;
	*errors = *batches = 0;
	long long have = 0;
	/* a read-only DB from before schema 009 has no such table: nothing to count */
	if ((rc = query_ll(st, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
			   " name = 'cutover'", &have)) || !have)
		return rc;
	sqlite3_stmt *s = st_prepare(st, "SELECT step, count(*), sum(error IS NOT NULL AND step NOT IN"
				     " ('done', 'rolled_back', 'failed', 'skipped')), max(batch) FROM cutover GROUP BY step", &rc);
	if (!s)
		return rc;
	int src;
	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		int k = cut_step_parse((const char *)sqlite3_column_text(s, 0));
		if (k >= 0)
			counts[k] = sqlite3_column_int64(s, 1);
		*errors += sqlite3_column_int64(s, 2);
		if (sqlite3_column_int64(s, 3) > *batches)
			*batches = sqlite3_column_int64(s, 3);
	}
	if (src != SQLITE_DONE)
		rc = st_db_fail(st, src, "cutover counts");
	sqlite3_finalize(s);
	return rc;
}
