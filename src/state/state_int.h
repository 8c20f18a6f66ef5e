/*
 * state_int.h - the inside of src/state/: struct state and the helpers the
 * files of this folder share.  Only the files of src/state include it;
 * every other module sees struct state as opaque (state.h), and the report
 * side reads through the named queries (query_report.h).
 *
 * Who owns what: a struct state owns its connection, its cached statements
 * and its last error text; strings passed in are copied or only read during
 * the call.  Thread rule as in state.h: one thread at a time per struct state.
 *
 * The files (each uses only the ones above it in this list):
 *   state_machine.c   state names, the transition table (no SQL)
 *   state_conn.c      errors, the statement cache, tx_begin/tx_end, close
 *   state_runs.c      events, runs, servers, stages
 *   state_open.c      open, WAL, schema migration, job identity, meta
 *   state_accounts.c  accounts: discovery, claims, transitions, resets, counts
 *   state_chunks.c    the steps of a pass exported in pieces
 *   state_recover.c   crash recovery of a dead run's accounts and stages
 *   query_report.c    the named read-only queries of the reports
 */
#ifndef ZMB_STATE_INT_H
#define ZMB_STATE_INT_H

#include "state.h"

#define BUSY_TIMEOUT_MS 10000

#define ACCOUNT_COLS "id, account, target, seq, size, state, attempts, last_error, " \
	"error_class, bytes, seconds, spool_path, next_try_at, started_at, " \
	"finished_at, sync_mark, delta, source_status, target_status, warnings, " \
	"status_wait_since, chunks_total, chunks_done, chunk_bytes, verify_source, verify_pending, " \
	"verify_mark"

/* Cached statements.  The claim queries name the state as a literal: only
 * then can SQLite prove that the partial index applies. */
enum stmt_id {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_CLAIM_SIZE_EXPORTED, S_CLAIM_SIZE_PENDING,
	S_CLAIM_SEQ_EXPORTED, S_CLAIM_SEQ_PENDING,
	S_CLAIM_SET, S_WAIT_PENDING, S_WAIT_EXPORTED,
	S_TRANSITION, S_EVENT, S_ACCT_BY_ID, S_ACCT_BY_NAME, S_UPSERT,
	S_SET_HOSTS, S_IMPORTED,
	S_NSTMT
};

struct state {
	sqlite3 *db;
	char *path;                    /* owned */
	char *err;                     /* last error text, owned */
	bool readonly;
	sqlite3_stmt *stmt[S_NSTMT];   /* prepared on first use */
	struct state_wlock *wlock;     /* shared by the run's connections, or NULL */
	bool wlocked;                  /* this connection holds *wlock */
	bool sync_full;                /* every commit fsynced (state_sync_full) */
};


/* ---- errors (state_conn.c) ---- */

/* Replace the connection's last error text (takes msg). */
void st_set_err(struct state *st, char *msg);
/* Record the SQLite error `src` of `what` and map it to a result code. */
enum zmb_rc st_db_fail(struct state *st, int src, const char *what);

/* ---- statements (state_conn.c) ---- */

/* The cached statement `id`, prepared on first use (NULL + *rc on error). */
sqlite3_stmt *st_stmt_get(struct state *st, enum stmt_id id, enum zmb_rc *rc);
/* Reset a cached statement after use (keeps it prepared). */
void st_stmt_done(sqlite3_stmt *s);
/* Prepare an ad-hoc statement (caller finalizes), recording the error. */
sqlite3_stmt *st_prepare(struct state *st, const char *sql, enum zmb_rc *rc);
/* Bind text (NULL = SQL NULL) / an id (<= 0 = SQL NULL). */
int st_bind_text(sqlite3_stmt *s, int i, const char *v);
int st_bind_id(sqlite3_stmt *s, int i, int64_t v);
/* Run one cached statement without results (BEGIN/COMMIT/ROLLBACK). */
enum zmb_rc st_exec_cached(struct state *st, enum stmt_id id, const char *what);
/* Run SQL text (one or more statements, no results). */
enum zmb_rc st_exec_sql(struct state *st, const char *sql, const char *what);
/* Step one bound UPDATE/INSERT; exactly one row expected (else ENOTFOUND). */
enum zmb_rc st_update_one(struct state *st, sqlite3_stmt *s, const char *what);
/* Column i as a new string (NULL stays NULL) / as a double (NULL = 0). */
char *st_col_text(sqlite3_stmt *s, int i);
double st_col_double0(sqlite3_stmt *s, int i);

/* ---- transactions (state_conn.c) ---- */

/*
 * Start a write transaction (write lock, BEGIN IMMEDIATE) unless the caller
 * already holds one (state_begin()); *own tells tx_end() whether to COMMIT.
 */
enum zmb_rc tx_begin(struct state *st, bool *own);
/* Finish what tx_begin() started: COMMIT + crashpoint(what) when rc is
 * ZMB_OK, else ROLLBACK.  Returns the final code. */
enum zmb_rc tx_end(struct state *st, bool own, enum zmb_rc rc, const char *what);
/* ROLLBACK (keeping the error text) and release the write lock. */
void tx_rollback(struct state *st);

/* ---- schema (state_open.c) ---- */

/* Apply the schema scripts the DB has not seen (PRAGMA user_version). */
enum zmb_rc st_migrate(struct state *st);

/* ---- events (state_runs.c) ---- */

/* Insert one event row with the cached statement (inside a transaction). */
enum zmb_rc st_event_insert(struct state *st, int64_t run_id, int64_t account_id,
			    const char *stage, const char *level, const char *msg);

#endif
