/*
 * state_conn.c - one connection of the state database: errors, the
 * statement cache, the writers' ticket lock and the transactions (see
 * state.h for the contract, state_int.h for the helpers' list).
 *
 * The statements on the hot paths (claim, transition, event, BEGIN/COMMIT)
 * are prepared once per connection and cached in st->stmt[]; the rest are
 * prepared per call (they run a few times per run).
 *
 * Writers of one process: state_set_write_lock() gives the connections of
 * one run a shared ticket lock taken around every write transaction, so
 * worker threads queue on it in order instead of polling SQLite's busy
 * handler (which sleeps and is unfair: with 32 threads a claim could wait
 * beyond the busy timeout).  The busy timeout still covers other processes.
 *
 * Every change is one BEGIN IMMEDIATE ... COMMIT, followed by crashpoint()
 * after the COMMIT (so the change is durable when a crash test fires).
 * Inside state_begin()/state_commit() the single operations join the outer
 * transaction and only state_commit() is a durable step.
 */
#include "state_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char *const stmt_sql[S_NSTMT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_CLAIM_SIZE_EXPORTED] =
		"SELECT id FROM accounts INDEXED BY accounts_claim_size"
		" WHERE state = 'exported' AND next_try_at <= ?1"
		" ORDER BY size DESC, seq LIMIT 1",
	[S_CLAIM_SIZE_PENDING] =
		"SELECT id FROM accounts INDEXED BY accounts_claim_size"
		" WHERE state = 'pending' AND next_try_at <= ?1"
		" ORDER BY size DESC, seq LIMIT 1",
	[S_CLAIM_SEQ_EXPORTED] =
		"SELECT id FROM accounts INDEXED BY accounts_claim_seq"
		" WHERE state = 'exported' AND next_try_at <= ?1"
		" ORDER BY seq LIMIT 1",
	[S_CLAIM_SEQ_PENDING] =
		"SELECT id FROM accounts INDEXED BY accounts_claim_seq"
		" WHERE state = 'pending' AND next_try_at <= ?1"
		" ORDER BY seq LIMIT 1",
	[S_CLAIM_SET] =
		"UPDATE accounts SET state = ?2, owner_run = ?3, started_at = ?4,"
		" updated_at = ?4 WHERE id = ?1 RETURNING " ACCOUNT_COLS,
	[S_WAIT_PENDING] =
		"SELECT min(next_try_at) FROM accounts INDEXED BY accounts_backoff"
		" WHERE state = 'pending'",
	[S_WAIT_EXPORTED] =
		"SELECT min(next_try_at) FROM accounts INDEXED BY accounts_backoff"
		" WHERE state = 'exported'",
	[S_TRANSITION] =
		"UPDATE accounts SET state = ?3,"
		" last_error = CASE WHEN ?4 IS NULL THEN last_error WHEN ?4 = '' THEN NULL ELSE ?4 END,"
		" error_class = CASE WHEN ?5 IS NULL THEN error_class WHEN ?5 = '' THEN NULL ELSE ?5 END,"
		" bytes = CASE WHEN ?6 >= 0 THEN ?6 ELSE bytes END,"
		" seconds = CASE WHEN ?7 >= 0 THEN ?7 ELSE seconds END,"
		" spool_path = CASE WHEN ?8 IS NULL THEN spool_path WHEN ?8 = '' THEN NULL ELSE ?8 END,"
		" next_try_at = CASE WHEN ?9 > 0 THEN ?9 ELSE next_try_at END,"
		" sync_mark = CASE WHEN ?10 > 0 THEN ?10 WHEN ?10 < 0 THEN 0 ELSE sync_mark END,"
		" attempts = CASE WHEN ?11 THEN 0 ELSE attempts END + ?12,"
		" finished_at = CASE WHEN ?3 IN ('done', 'failed') THEN ?13"
		"   WHEN ?3 = 'pending' THEN NULL ELSE finished_at END,"
		" owner_run = ?14,"
		" warnings = CASE WHEN ?15 >= 0 THEN ?15 ELSE warnings END,"
		" status_wait_since = CASE WHEN ?16 > 0 THEN coalesce(status_wait_since, ?16)"
		"   WHEN ?16 < 0 THEN NULL ELSE status_wait_since END,"
		" source_status = coalesce(?17, source_status),"
		" target_status = coalesce(?18, target_status),"
		" verify = CASE WHEN ?19 IS NULL THEN verify WHEN ?19 = '' THEN NULL ELSE ?19 END,"
		" verify_detail = CASE WHEN ?19 IS NULL THEN verify_detail ELSE ?20 END,"
		" verified_at = CASE WHEN ?19 IS NULL THEN verified_at WHEN ?19 = '' THEN NULL ELSE ?13 END,"
		" verify_source = CASE WHEN ?21 IS NULL THEN verify_source WHEN ?21 = '' THEN NULL ELSE ?21 END,"
		" verify_pending = CASE WHEN ?22 > 0 THEN 1 WHEN ?22 < 0 THEN 0 ELSE verify_pending END,"
		" updated_at = ?13"
		" WHERE id = ?1 AND state = ?2",
	[S_EVENT] =
		"INSERT INTO events (at, run_id, account_id, stage, level, message)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_ACCT_BY_ID] = "SELECT " ACCOUNT_COLS " FROM accounts WHERE id = ?1",
	[S_ACCT_BY_NAME] = "SELECT " ACCOUNT_COLS " FROM accounts WHERE account = ?1",
	[S_UPSERT] =
		"INSERT INTO accounts (account, target, seq, size, updated_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5)"
		" ON CONFLICT (account) DO UPDATE SET target = excluded.target,"
		" seq = excluded.seq, size = excluded.size, updated_at = excluded.updated_at"
		" WHERE accounts.state = 'pending' AND accounts.attempts = 0",
	[S_SET_HOSTS] =
		"UPDATE accounts SET source_host = coalesce(?2, source_host),"
		" target_host = coalesce(?3, target_host) WHERE id = ?1",
	[S_IMPORTED] =
		"UPDATE accounts SET verify_pending = 1, bytes = ?2,"
		" verify_mark = ?3, verify_source = coalesce(?4, verify_source),"
		" source_host = coalesce(?6, source_host), target_host = coalesce(?7, target_host),"
		" updated_at = ?5 WHERE id = ?1 AND state IN ('importing', 'exporting')",
};

/* Ticket lock: writers get in in the order they asked. */
static void st_wlock_take(struct state *st)
{
	struct state_wlock *w = st->wlock;
	if (!w || st->wlocked)
		return;
	pthread_mutex_lock(&w->mu);
	unsigned long t = w->next++;
	while (t != w->serving)
		pthread_cond_wait(&w->cv[t % STATE_WLOCK_SLOTS], &w->mu);
	pthread_mutex_unlock(&w->mu);
	st->wlocked = true;
}

static void st_wlock_give(struct state *st)
{
	struct state_wlock *w = st->wlock;
	if (!st->wlocked)
		return;
	st->wlocked = false;
	pthread_mutex_lock(&w->mu);
	w->serving++;
	pthread_cond_broadcast(&w->cv[w->serving % STATE_WLOCK_SLOTS]);
	pthread_mutex_unlock(&w->mu);
}

void state_wlock_init(struct state_wlock *wl)
{
	memset(wl, 0, sizeof *wl);
	pthread_mutex_init(&wl->mu, NULL);
	for (int i = 0; i < STATE_WLOCK_SLOTS; i++)
		pthread_cond_init(&wl->cv[i], NULL);
}

void state_wlock_destroy(struct state_wlock *wl)
{
	for (int i = 0; i < STATE_WLOCK_SLOTS; i++)
		pthread_cond_destroy(&wl->cv[i]);
	pthread_mutex_destroy(&wl->mu);
}

void state_set_write_lock(struct state *st, struct state_wlock *wl)
{
	st->wlock = wl;
}

enum zmb_rc state_sync_full(struct state *st)
{
	enum zmb_rc rc = st_exec_sql(st, "PRAGMA synchronous = FULL", "set synchronous");
	st->sync_full = rc == ZMB_OK;
	return rc;
}

void st_set_err(struct state *st, char *msg)
{
	free(st->err);
	st->err = msg;
}

/* Record the SQLite error `src` of `what` and map it to a result code. */
enum zmb_rc st_db_fail(struct state *st, int src, const char *what)
{
	int prim = src & 0xff;
	enum zmb_rc rc = ZMB_ESTATE;

	if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED) {
		st_set_err(st, xasprintf("%s: %s: database is locked by another process "
					 "(still busy after %d s)", st->path, what,
					 BUSY_TIMEOUT_MS / 1000));
	} else if (prim == SQLITE_FULL) {
		rc = ZMB_EIO;
		st_set_err(st, xasprintf("%s: %s: disk full", st->path, what));
	} else {
		if (prim == SQLITE_IOERR || prim == SQLITE_CANTOPEN || prim == SQLITE_READONLY)
			rc = ZMB_EIO;
		st_set_err(st, xasprintf("%s: %s: %s", st->path, what,
					 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(src)));
	}
	return rc;
}

sqlite3_stmt *st_stmt_get(struct state *st, enum stmt_id id, enum zmb_rc *rc)
{
	sqlite3_stmt *s = st->stmt[id];
	if (!s) {
		int src = sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					     &s, NULL);
		if (src != SQLITE_OK) {
			*rc = st_db_fail(st, src, "prepare");
			return NULL;
		}
		st->stmt[id] = s;
	}
	*rc = ZMB_OK;
	return s;
}

/* Reset a cached statement after use (keeps it prepared). */
void st_stmt_done(sqlite3_stmt *s)
{
	if (s) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
}

int st_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);
}

int st_bind_id(sqlite3_stmt *s, int i, int64_t v)
{
	return v > 0 ? sqlite3_bind_int64(s, i, v) : sqlite3_bind_null(s, i);
}

/* Run one cached statement without results (BEGIN/COMMIT/ROLLBACK). */
enum zmb_rc st_exec_cached(struct state *st, enum stmt_id id, const char *what)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_stmt_get(st, id, &rc);
	if (!s)
		return rc;
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE && src != SQLITE_ROW)
		rc = st_db_fail(st, src, what);
	st_stmt_done(s);
	return rc;
}

/* Run SQL text (one or more statements, no results). */
enum zmb_rc st_exec_sql(struct state *st, const char *sql, const char *what)
{
	int src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	return src == SQLITE_OK ? ZMB_OK : st_db_fail(st, src, what);
}

/*
 * Start a write transaction unless the caller already holds one
 * (state_begin()).  *own tells tx_end() whether to COMMIT.
 */
enum zmb_rc tx_begin(struct state *st, bool *own)
{
	*own = false;
	if (st->readonly) {
		st_set_err(st, xasprintf("%s: opened read-only, cannot change it", st->path));
		return ZMB_EINTERNAL;
	}
	if (!sqlite3_get_autocommit(st->db))
		return ZMB_OK;
	st_wlock_take(st);
	enum zmb_rc rc = st_exec_cached(st, S_BEGIN, "begin transaction");
	if (rc == ZMB_OK)
		*own = true;
	else
		st_wlock_give(st);
	return rc;
}

void tx_rollback(struct state *st)
{
	if (!sqlite3_get_autocommit(st->db)) {
		char *keep = st->err;   /* ROLLBACK must not hide the real error */
		st->err = NULL;
		st_exec_cached(st, S_ROLLBACK, "rollback");
		free(st->err);
		st->err = keep;
	}
	st_wlock_give(st);   /* the transaction is over, whoever started it */
}

/* Finish what tx_begin() started: COMMIT + crashpoint on success, else ROLLBACK. */
enum zmb_rc tx_end(struct state *st, bool own, enum zmb_rc rc, const char *what)
{
	if (!own)
		return rc;
	if (rc == ZMB_OK) {
		rc = st_exec_cached(st, S_COMMIT, "commit");
		if (rc == ZMB_OK) {
			st_wlock_give(st);
			crashpoint(what);
			return ZMB_OK;
		}
	}
	tx_rollback(st);
	st_wlock_give(st);
	return rc;
}

char *st_col_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? xstrdup((const char *)t) : NULL;
}

double st_col_double0(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? 0 : sqlite3_column_double(s, i);
}


enum zmb_rc st_update_one(struct state *st, sqlite3_stmt *s, const char *what)
{
	enum zmb_rc rc = ZMB_OK;
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE) {
		rc = st_db_fail(st, src, what);
	} else if (sqlite3_changes(st->db) == 0) {
		st_set_err(st, xasprintf("%s: %s: no such row", st->path, what));
		rc = ZMB_ENOTFOUND;
	}
	return rc;
}

/* Prepare an ad-hoc statement, recording the error. */
sqlite3_stmt *st_prepare(struct state *st, const char *sql, enum zmb_rc *rc)
{
	sqlite3_stmt *s = NULL;
	int src = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	*rc = src == SQLITE_OK ? ZMB_OK : st_db_fail(st, src, "prepare");
	return src == SQLITE_OK ? s : NULL;
}


void state_close(struct state *st)
{
	if (!st)
		return;
	for (int i = 0; i < S_NSTMT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	free(st->path);
	free(st->err);
	free(st);
}

sqlite3 *state_db(struct state *st)
{
	return st ? st->db : NULL;
}

const char *state_errmsg(struct state *st)
{
	if (!st)
		return "no state database";
	return st->err ? st->err : "no error";
}

enum zmb_rc state_begin(struct state *st)
{
	if (st->readonly) {
		st_set_err(st, xasprintf("%s: opened read-only, cannot change it", st->path));
		return ZMB_EINTERNAL;
	}
	if (!sqlite3_get_autocommit(st->db)) {
		st_set_err(st, xasprintf("%s: state_begin inside a transaction", st->path));
		return ZMB_EINTERNAL;
	}
	st_wlock_take(st);
	enum zmb_rc rc = st_exec_cached(st, S_BEGIN, "begin transaction");
	if (rc)
		st_wlock_give(st);
	return rc;
}

enum zmb_rc state_commit(struct state *st)
{
	enum zmb_rc rc = st_exec_cached(st, S_COMMIT, "commit");
	if (rc == ZMB_OK) {
		st_wlock_give(st);
		crashpoint("commit");
	} else {
		tx_rollback(st);
		st_wlock_give(st);
	}
	return rc;
}

enum zmb_rc state_rollback(struct state *st)
{
	enum zmb_rc rc = ZMB_OK;
	if (!sqlite3_get_autocommit(st->db))
		rc = st_exec_cached(st, S_ROLLBACK, "rollback");
	st_wlock_give(st);
	return rc;
}

