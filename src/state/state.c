/*
 * state.c - the SQLite state database (see state.h for the contract).
 *
 * One `struct state` = one connection, used by one thread at a time.  The
 * statements on the hot paths (claim, transition, event, BEGIN/COMMIT) are
 * prepared once per connection and cached in st->stmt[]; the rest are
 * prepared per call (they run a few times per run).
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
 *
 * Writers of one process: state_set_write_lock() gives the connections of
 * one run a shared mutex taken around every write transaction, so worker
 * threads queue on it in order instead of polling SQLite's busy handler
 * (which sleeps and is unfair: with 32 threads a claim could wait beyond
 * the busy timeout).  The busy timeout still covers other processes.
 *
 * Every change is one BEGIN IMMEDIATE ... COMMIT, followed by crashpoint()
 * after the COMMIT (so the change is durable when a crash test fires).
 * Inside state_begin()/state_commit() the single operations join the outer
 * transaction and only state_commit() is a durable step.
 */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern const char *const zmb_schema[];
extern const char *const zmb_schema_names[];

#define BUSY_TIMEOUT_MS 10000

/* ---- names and the state machine ---- */

static const char *const acct_names[ACCT_NSTATES] = {
	"pending", "exporting", "exported", "importing", "done", "failed", "skipped",
};

const char *acct_state_name(enum acct_state s)
{
	return (unsigned)s < ACCT_NSTATES ? acct_names[s] : "?";
}

int acct_state_parse(const char *s)
{
	for (int i = 0; s && i < ACCT_NSTATES; i++)
		if (strcmp(s, acct_names[i]) == 0)
			return i;
	return -1;
}

/*
 * legal[from][to].  Claims are pending->exporting|importing and
 * exported->importing; the worker then moves its account on:
 *   exporting -> exported (archive complete), importing (archive complete
 *                and the same worker imports it at once: spool_path is set
 *                in the same transaction, so recovery finds the archive),
 *                done (204: nothing to move),
 *                pending (temporary error), failed
 *   exported  -> importing (same worker goes on), pending (archive lost)
 *   importing -> done, exported (temporary error, archive kept),
 *                pending (temporary error, stream mode), failed
 *   pending   -> skipped (policy)
 *   done/failed/skipped -> pending (reset, --retry-failed, --delta)
 */
static const bool legal[ACCT_NSTATES][ACCT_NSTATES] = {
	[ACCT_PENDING] = { [ACCT_EXPORTING] = true, [ACCT_IMPORTING] = true,
			   [ACCT_SKIPPED] = true },
	[ACCT_EXPORTING] = { [ACCT_EXPORTED] = true, [ACCT_IMPORTING] = true, [ACCT_DONE] = true,
			     [ACCT_PENDING] = true, [ACCT_FAILED] = true },
	[ACCT_EXPORTED] = { [ACCT_IMPORTING] = true, [ACCT_PENDING] = true },
	[ACCT_IMPORTING] = { [ACCT_DONE] = true, [ACCT_EXPORTED] = true,
			     [ACCT_PENDING] = true, [ACCT_FAILED] = true },
	[ACCT_DONE] = { [ACCT_PENDING] = true },
	[ACCT_FAILED] = { [ACCT_PENDING] = true },
	[ACCT_SKIPPED] = { [ACCT_PENDING] = true },
};

bool acct_transition_ok(enum acct_state from, enum acct_state to)
{
	if ((unsigned)from >= ACCT_NSTATES || (unsigned)to >= ACCT_NSTATES)
		return false;
	return legal[from][to];
}

static bool in_flight(enum acct_state s)
{
	return s == ACCT_EXPORTING || s == ACCT_IMPORTING;
}

static const char *const stage_names[] = { "pending", "running", "done", "failed" };

const char *stage_state_name(enum stage_state s)
{
	return (unsigned)s <= STAGE_FAILED ? stage_names[s] : "?";
}

int stage_state_parse(const char *s)
{
	for (int i = 0; s && i <= STAGE_FAILED; i++)
		if (strcmp(s, stage_names[i]) == 0)
			return i;
	return -1;
}

/* ---- the connection ---- */

#define ACCOUNT_COLS "id, account, target, seq, size, state, attempts, last_error, " \
	"error_class, bytes, seconds, spool_path, next_try_at, started_at, " \
	"finished_at, sync_mark, delta"

/* Cached statements.  The claim queries name the state as a literal: only
 * then can SQLite prove that the partial index applies. */
enum stmt_id {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_CLAIM_SIZE_EXPORTED, S_CLAIM_SIZE_PENDING,
	S_CLAIM_SEQ_EXPORTED, S_CLAIM_SEQ_PENDING,
	S_CLAIM_SET, S_WAIT_PENDING, S_WAIT_EXPORTED,
	S_TRANSITION, S_EVENT, S_ACCT_BY_ID, S_ACCT_BY_NAME, S_UPSERT,
	S_NSTMT
};

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
};

struct state {
	sqlite3 *db;
	char *path;                    /* owned */
	char *err;                     /* last error text, owned */
	bool readonly;
	sqlite3_stmt *stmt[S_NSTMT];   /* prepared on first use */
	struct state_wlock *wlock;     /* shared by the run's connections, or NULL */
	bool wlocked;                  /* this connection holds *wlock */
};

/* Ticket lock: writers get in in the order they asked. */
static void wlock_take(struct state *st)
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

static void wlock_give(struct state *st)
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

static void set_err(struct state *st, char *msg)
{
	free(st->err);
	st->err = msg;
}

/* Record the SQLite error `src` of `what` and map it to a result code. */
static enum zmb_rc db_fail(struct state *st, int src, const char *what)
{
	int prim = src & 0xff;
	enum zmb_rc rc = ZMB_ESTATE;

	if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED) {
		set_err(st, xasprintf("%s: %s: database is locked by another process "
				      "(still busy after %d s)", st->path, what,
				      BUSY_TIMEOUT_MS / 1000));
	} else if (prim == SQLITE_FULL) {
		rc = ZMB_EIO;
		set_err(st, xasprintf("%s: %s: disk full", st->path, what));
	} else {
		if (prim == SQLITE_IOERR || prim == SQLITE_CANTOPEN || prim == SQLITE_READONLY)
			rc = ZMB_EIO;
		set_err(st, xasprintf("%s: %s: %s", st->path, what,
				      st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(src)));
	}
	return rc;
}

/*
 * Switch the database to WAL.  A new file starts in rollback-journal mode,
 * and the switch reads page 1 and then upgrades to a write lock: when another
 * connection (a thread or process creating the same file) holds that lock,
 * SQLite returns SQLITE_BUSY at once instead of calling the busy handler,
 * since waiting while holding the read lock could deadlock.  The statement
 * ends its read lock when it is reset, so retrying it here is safe; it is
 * retried with a short jittered sleep for as long as the busy timeout.
 */
static enum zmb_rc set_wal(struct state *st)
{
	sqlite3_stmt *s = NULL;
	enum zmb_rc rc = ZMB_OK;
	double deadline = mono_now() + BUSY_TIMEOUT_MS / 1000.0;
	unsigned seed = (unsigned)(uintptr_t)st ^ (unsigned)getpid();
	int src = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);

	while (src == SQLITE_OK) {
		src = sqlite3_step(s);
		if ((src & 0xff) != SQLITE_BUSY || mono_now() >= deadline)
			break;
		sqlite3_reset(s);
		src = SQLITE_OK;
		usleep(2000 + (unsigned)rand_r(&seed) % 8000);
	}
	if (src == SQLITE_ROW && sqlite3_stricmp((const char *)sqlite3_column_text(s, 0), "wal") != 0) {
		set_err(st, xasprintf("%s: cannot switch to WAL mode (journal mode is '%s')",
				      st->path, sqlite3_column_text(s, 0)));
		rc = ZMB_ESTATE;
	} else if (src != SQLITE_ROW) {
		rc = db_fail(st, src, "set WAL mode");
	}
	sqlite3_finalize(s);
	return rc;
}

static sqlite3_stmt *stmt_get(struct state *st, enum stmt_id id, enum zmb_rc *rc)
{
	sqlite3_stmt *s = st->stmt[id];
	if (!s) {
		int src = sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					     &s, NULL);
		if (src != SQLITE_OK) {
			*rc = db_fail(st, src, "prepare");
			return NULL;
		}
		st->stmt[id] = s;
	}
	*rc = ZMB_OK;
	return s;
}

/* Reset a cached statement after use (keeps it prepared). */
static void stmt_done(sqlite3_stmt *s)
{
	if (s) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
}

static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
	return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);
}

static int bind_id(sqlite3_stmt *s, int i, int64_t v)
{
	return v > 0 ? sqlite3_bind_int64(s, i, v) : sqlite3_bind_null(s, i);
}

/* Run one cached statement without results (BEGIN/COMMIT/ROLLBACK). */
static enum zmb_rc exec_cached(struct state *st, enum stmt_id id, const char *what)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = stmt_get(st, id, &rc);
	if (!s)
		return rc;
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE && src != SQLITE_ROW)
		rc = db_fail(st, src, what);
	stmt_done(s);
	return rc;
}

/* Run SQL text (one or more statements, no results). */
static enum zmb_rc exec_sql(struct state *st, const char *sql, const char *what)
{
	int src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	return src == SQLITE_OK ? ZMB_OK : db_fail(st, src, what);
}

/*
 * Start a write transaction unless the caller already holds one
 * (state_begin()).  *own tells tx_end() whether to COMMIT.
 */
static enum zmb_rc tx_begin(struct state *st, bool *own)
{
	*own = false;
	if (st->readonly) {
		set_err(st, xasprintf("%s: opened read-only, cannot change it", st->path));
		return ZMB_EINTERNAL;
	}
	if (!sqlite3_get_autocommit(st->db))
		return ZMB_OK;
	wlock_take(st);
	enum zmb_rc rc = exec_cached(st, S_BEGIN, "begin transaction");
	if (rc == ZMB_OK)
		*own = true;
	else
		wlock_give(st);
	return rc;
}

static void tx_rollback(struct state *st)
{
	if (!sqlite3_get_autocommit(st->db)) {
		char *keep = st->err;   /* ROLLBACK must not hide the real error */
		st->err = NULL;
		exec_cached(st, S_ROLLBACK, "rollback");
		free(st->err);
		st->err = keep;
	}
	wlock_give(st);   /* the transaction is over, whoever started it */
}

/* Finish what tx_begin() started: COMMIT + crashpoint on success, else ROLLBACK. */
static enum zmb_rc tx_end(struct state *st, bool own, enum zmb_rc rc, const char *what)
{
	if (!own)
		return rc;
	if (rc == ZMB_OK) {
		rc = exec_cached(st, S_COMMIT, "commit");
		if (rc == ZMB_OK) {
			wlock_give(st);
			crashpoint(what);
			return ZMB_OK;
		}
	}
	tx_rollback(st);
	wlock_give(st);
	return rc;
}

static char *col_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? xstrdup((const char *)t) : NULL;
}

static double col_double0(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? 0 : sqlite3_column_double(s, i);
}

/* Fill *r from a row of ACCOUNT_COLS. */
static void read_account(sqlite3_stmt *s, struct account_row *r)
{
	memset(r, 0, sizeof *r);
	r->id = sqlite3_column_int64(s, 0);
	r->account = col_text(s, 1);
	r->target = col_text(s, 2);
	r->seq = sqlite3_column_int64(s, 3);
	r->size = sqlite3_column_type(s, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 4);
	int ps = acct_state_parse((const char *)sqlite3_column_text(s, 5));
	r->state = ps < 0 ? ACCT_PENDING : (enum acct_state)ps;
	r->attempts = sqlite3_column_int(s, 6);
	r->last_error = col_text(s, 7);
	r->error_class = col_text(s, 8);
	r->bytes = sqlite3_column_int64(s, 9);
	r->seconds = col_double0(s, 10);
	r->spool_path = col_text(s, 11);
	r->next_try_at = col_double0(s, 12);
	r->started_at = col_double0(s, 13);
	r->finished_at = col_double0(s, 14);
	r->sync_mark = sqlite3_column_int64(s, 15);
	r->delta = sqlite3_column_int(s, 16) != 0;
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
	memset(r, 0, sizeof *r);
}

/* ---- schema ---- */

static int schema_number(const char *name)
{
	return name ? atoi(name) : 0;
}

int state_schema_version(void)
{
	int v = 0;
	for (int i = 0; zmb_schema_names[i]; i++)
		if (schema_number(zmb_schema_names[i]) > v)
			v = schema_number(zmb_schema_names[i]);
	return v;
}

static enum zmb_rc read_user_version(struct state *st, int *v)
{
	sqlite3_stmt *s = NULL;
	int src = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
	if (src == SQLITE_OK)
		src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		*v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return src == SQLITE_ROW ? ZMB_OK : db_fail(st, src, "read schema version");
}

static enum zmb_rc check_not_newer(struct state *st, int v)
{
	if (v <= state_schema_version())
		return ZMB_OK;
	set_err(st, xasprintf("%s: state database has schema version %d but this zmbatch %s "
			      "knows only up to %d: use a newer zmbatch", st->path, v,
			      ZMB_VERSION, state_schema_version()));
	return ZMB_ESTATE;
}

/*
 * Apply every script numbered above PRAGMA user_version, each in its own
 * transaction that also bumps user_version.  The version is re-read inside
 * the write transaction, so workers opening the same new DB at once apply
 * each script exactly once.
 */
static enum zmb_rc migrate(struct state *st)
{
	enum zmb_rc rc;
	int cur = 0;

	/* the common case, up to date: no write lock at all */
	if ((rc = read_user_version(st, &cur)) != ZMB_OK)
		return rc;
	if (cur >= state_schema_version())
		return check_not_newer(st, cur);
	for (int i = 0; zmb_schema[i] && rc == ZMB_OK; i++) {
		int n = schema_number(zmb_schema_names[i]), v = 0;
		bool own;
		if ((rc = tx_begin(st, &own)) != ZMB_OK)
			break;
		rc = read_user_version(st, &v);
		if (rc == ZMB_OK)
			rc = check_not_newer(st, v);
		if (rc == ZMB_OK && v < n) {
			char *what = xasprintf("apply schema %s", zmb_schema_names[i]);
			rc = exec_sql(st, zmb_schema[i], what);
			free(what);
			if (rc == ZMB_OK) {
				char *pragma = xasprintf("PRAGMA user_version = %d", n);
				rc = exec_sql(st, pragma, "set schema version");
				free(pragma);
			}
			rc = tx_end(st, own, rc, "schema migration");
		} else {
			tx_rollback(st);
		}
	}
	return rc;
}

/* Store the job identity on first write-open; compare it afterwards. */
static enum zmb_rc check_identity(struct state *st, const char *ident)
{
	enum zmb_rc rc;
	char *stored = NULL;
	bool own = false;

	rc = state_meta_get(st, "job_identity", &stored);
	if (rc == ZMB_ENOTFOUND && !st->readonly) {
		/* first writer wins; re-read inside the transaction */
		if ((rc = tx_begin(st, &own)) != ZMB_OK)
			goto out;
		rc = state_meta_get(st, "job_identity", &stored);
		if (rc == ZMB_ENOTFOUND) {
			char ts[32];
			iso8601_utc(wall_now(), ts);
			rc = state_meta_set(st, "job_identity", ident);
			if (rc == ZMB_OK)
				rc = state_meta_set(st, "created_at", ts);
			rc = tx_end(st, own, rc, "job identity");
			own = false;
			goto out;
		}
		rc = tx_end(st, own, rc, "job identity");
		own = false;
	}
	if (rc == ZMB_ENOTFOUND) {          /* read-only and never written */
		rc = ZMB_OK;
		goto out;
	}
	if (rc)
		goto out;
	if (strcmp(stored, ident) != 0) {
		set_err(st, xasprintf("state database %s belongs to job '%s', not to this job '%s': "
				      "use another state_db (or --state) for this job",
				      st->path, stored, ident));
		rc = ZMB_ECONFIG;
	}
out:
	if (own)
		tx_rollback(st);
	free(stored);
	return rc;
}

enum zmb_rc state_open(const char *path, const char *job_identity, int flags,
		       struct state **out, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	struct state *st = xcalloc(1, sizeof *st);
	int src;

	*out = NULL;
	st->path = xstrdup(path);
	st->readonly = (flags & STATE_READONLY) != 0;

	if (st->readonly) {
		struct stat sb;
		if (stat(path, &sb) < 0) {
			if (errno == ENOENT) {
				set_err(st, xasprintf("no state database at %s: nothing has run yet", path));
				rc = ZMB_ENOTFOUND;
			} else {
				set_err(st, xasprintf("cannot open state database %s: %s", path,
						      strerror(errno)));
				rc = ZMB_EIO;
			}
			goto out;
		}
		src = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	} else {
		/* create it 0600 ourselves: sqlite would use 0644 & ~umask; its
		 * -wal and -shm files copy the mode of the database file */
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			set_err(st, xasprintf("cannot create state database %s: %s", path,
					      strerror(errno)));
			rc = ZMB_EIO;
			goto out;
		}
		close(fd);
		src = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	}
	if (src != SQLITE_OK) {
		rc = db_fail(st, src, "open");
		goto out;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	if ((rc = exec_sql(st, "PRAGMA foreign_keys = ON", "enable foreign keys")) != ZMB_OK)
		goto out;
	if (!st->readonly) {
		if ((rc = set_wal(st)) != ZMB_OK)
			goto out;
		if ((rc = exec_sql(st, "PRAGMA synchronous = NORMAL", "set synchronous")) != ZMB_OK)
			goto out;
		if ((rc = migrate(st)) != ZMB_OK)
			goto out;
	} else {
		int v = 0;
		if ((rc = read_user_version(st, &v)) != ZMB_OK)
			goto out;
		if ((rc = check_not_newer(st, v)) != ZMB_OK)
			goto out;
		if (v == 0) {
			set_err(st, xasprintf("%s is not a zmbatch state database (schema version 0)", path));
			rc = ZMB_ESTATE;
			goto out;
		}
	}
	if (job_identity && (rc = check_identity(st, job_identity)) != ZMB_OK)
		goto out;
out:
	if (rc) {
		if (err)
			*err = xstrdup(st->err ? st->err : zmb_rc_str(rc));
		state_close(st);
		return rc;
	}
	*out = st;
	return ZMB_OK;
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
		set_err(st, xasprintf("%s: opened read-only, cannot change it", st->path));
		return ZMB_EINTERNAL;
	}
	if (!sqlite3_get_autocommit(st->db)) {
		set_err(st, xasprintf("%s: state_begin inside a transaction", st->path));
		return ZMB_EINTERNAL;
	}
	wlock_take(st);
	enum zmb_rc rc = exec_cached(st, S_BEGIN, "begin transaction");
	if (rc)
		wlock_give(st);
	return rc;
}

enum zmb_rc state_commit(struct state *st)
{
	enum zmb_rc rc = exec_cached(st, S_COMMIT, "commit");
	if (rc == ZMB_OK) {
		wlock_give(st);
		crashpoint("commit");
	} else {
		tx_rollback(st);
		wlock_give(st);
	}
	return rc;
}

enum zmb_rc state_rollback(struct state *st)
{
	enum zmb_rc rc = ZMB_OK;
	if (!sqlite3_get_autocommit(st->db))
		rc = exec_cached(st, S_ROLLBACK, "rollback");
	wlock_give(st);
	return rc;
}

/* ---- events ---- */

/* Insert one event row with the cached statement (inside a transaction). */
static enum zmb_rc event_insert(struct state *st, int64_t run_id, int64_t account_id,
				const char *stage, const char *level, const char *msg)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = stmt_get(st, S_EVENT, &rc);
	if (!s)
		return rc;
	sqlite3_bind_double(s, 1, wall_now());
	bind_id(s, 2, run_id);
	bind_id(s, 3, account_id);
	bind_text(s, 4, stage);
	bind_text(s, 5, level ? level : "info");
	bind_text(s, 6, msg ? msg : "");
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE)
		rc = db_fail(st, src, "insert event");
	stmt_done(s);
	return rc;
}

enum zmb_rc state_event(struct state *st, int64_t run_id, int64_t account_id,
			const char *stage, const char *level, const char *msg)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	rc = event_insert(st, run_id, account_id, stage, level, msg);
	return tx_end(st, own, rc, "event");
}

/* ---- meta ---- */

enum zmb_rc state_meta_get(struct state *st, const char *key, char **value)
{
	sqlite3_stmt *s = NULL;
	enum zmb_rc rc = ZMB_OK;
	int src = sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = ?1", -1, &s, NULL);

	*value = NULL;
	if (src == SQLITE_OK) {
		bind_text(s, 1, key);
		src = sqlite3_step(s);
	}
	if (src == SQLITE_ROW) {
		*value = col_text(s, 0);
	} else if (src == SQLITE_DONE) {
		set_err(st, xasprintf("%s: no meta key '%s'", st->path, key));
		rc = ZMB_ENOTFOUND;
	} else {
		rc = db_fail(st, src, "read meta");
	}
	sqlite3_finalize(s);
	return rc;
}

enum zmb_rc state_meta_set(struct state *st, const char *key, const char *value)
{
	sqlite3_stmt *s = NULL;
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	int src = sqlite3_prepare_v2(st->db, "INSERT INTO meta (key, value) VALUES (?1, ?2)"
				     " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
				     -1, &s, NULL);
	if (src == SQLITE_OK) {
		bind_text(s, 1, key);
		bind_text(s, 2, value ? value : "");
		src = sqlite3_step(s);
	}
	if (src != SQLITE_DONE)
		rc = db_fail(st, src, "write meta");
	sqlite3_finalize(s);
	return tx_end(st, own, rc, "meta");
}

/* ---- runs ---- */

enum zmb_rc state_run_begin(struct state *st, const char *command, int64_t *run_id)
{
	sqlite3_stmt *s = NULL;
	char host[256] = "";
	char user[64];
	char pwbuf[1024];
	struct passwd pw, *pwp = NULL;
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);

	*run_id = 0;
	if (rc)
		return rc;
	if (gethostname(host, sizeof host - 1) != 0 || !host[0])
		strcpy(host, "unknown");
	if (getpwuid_r(getuid(), &pw, pwbuf, sizeof pwbuf, &pwp) == 0 && pwp && pwp->pw_name)
		snprintf(user, sizeof user, "%s", pwp->pw_name);
	else
		snprintf(user, sizeof user, "uid %ld", (long)getuid());

	int src = sqlite3_prepare_v2(st->db,
		"INSERT INTO runs (started_at, pid, host, user, command) VALUES (?1, ?2, ?3, ?4, ?5)",
		-1, &s, NULL);
	if (src == SQLITE_OK) {
		sqlite3_bind_double(s, 1, wall_now());
		sqlite3_bind_int64(s, 2, (sqlite3_int64)getpid());
		bind_text(s, 3, host);
		bind_text(s, 4, user);
		bind_text(s, 5, command ? command : "");
		src = sqlite3_step(s);
	}
	if (src == SQLITE_DONE)
		*run_id = sqlite3_last_insert_rowid(st->db);
	else
		rc = db_fail(st, src, "record run start");
	sqlite3_finalize(s);
	return tx_end(st, own, rc, "run begin");
}

/* One UPDATE with bound values, exactly one row expected (else ENOTFOUND). */
static enum zmb_rc update_one(struct state *st, sqlite3_stmt *s, const char *what)
{
	enum zmb_rc rc = ZMB_OK;
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE) {
		rc = db_fail(st, src, what);
	} else if (sqlite3_changes(st->db) == 0) {
		set_err(st, xasprintf("%s: %s: no such row", st->path, what));
		rc = ZMB_ENOTFOUND;
	}
	return rc;
}

/* Prepare an ad-hoc statement, recording the error. */
static sqlite3_stmt *prepare(struct state *st, const char *sql, enum zmb_rc *rc)
{
	sqlite3_stmt *s = NULL;
	int src = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	*rc = src == SQLITE_OK ? ZMB_OK : db_fail(st, src, "prepare");
	return src == SQLITE_OK ? s : NULL;
}

enum zmb_rc state_run_end(struct state *st, int64_t run_id, int exit_status)
{
	sqlite3_stmt *s = NULL;
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	s = prepare(st, "UPDATE runs SET ended_at = ?2, exit_status = ?3 WHERE id = ?1", &rc);
	if (s) {
		sqlite3_bind_int64(s, 1, run_id);
		sqlite3_bind_double(s, 2, wall_now());
		sqlite3_bind_int(s, 3, exit_status);
		rc = update_one(st, s, "record run end");
	}
	sqlite3_finalize(s);
	return tx_end(st, own, rc, "run end");
}

enum zmb_rc state_run_count(struct state *st, int64_t run_id,
			    long long refreshes, long long retries, long long bytes)
{
	sqlite3_stmt *s = NULL;
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	s = prepare(st, "UPDATE runs SET token_refreshes = token_refreshes + ?2,"
		    " retries = retries + ?3, bytes = bytes + ?4 WHERE id = ?1", &rc);
	if (s) {
		sqlite3_bind_int64(s, 1, run_id);
		sqlite3_bind_int64(s, 2, refreshes);
		sqlite3_bind_int64(s, 3, retries);
		sqlite3_bind_int64(s, 4, bytes);
		rc = update_one(st, s, "count run totals");
	}
	sqlite3_finalize(s);
	return tx_end(st, own, rc, "run count");
}

/* ---- servers (schema 002) ---- */

enum zmb_rc state_server_count(struct state *st, const char *role, const char *host,
			       long long auth_requests, long long token_refreshes,
			       long long auth_failures)
{
	sqlite3_stmt *s = NULL;
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	s = prepare(st,
		"INSERT INTO servers (role, host, auth_requests, token_refreshes, auth_failures,"
		" last_auth_at, updated_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?3 > 0 THEN ?6 END, ?6)"
		" ON CONFLICT (role) DO UPDATE SET host = excluded.host,"
		" auth_requests = auth_requests + excluded.auth_requests,"
		" token_refreshes = token_refreshes + excluded.token_refreshes,"
		" auth_failures = auth_failures + excluded.auth_failures,"
		" last_auth_at = coalesce(excluded.last_auth_at, last_auth_at),"
		" updated_at = excluded.updated_at", &rc);
	if (s) {
		bind_text(s, 1, role);
		bind_text(s, 2, host ? host : "");
		sqlite3_bind_int64(s, 3, auth_requests);
		sqlite3_bind_int64(s, 4, token_refreshes);
		sqlite3_bind_int64(s, 5, auth_failures);
		sqlite3_bind_double(s, 6, wall_now());
		rc = update_one(st, s, "count server authentications");
	}
	sqlite3_finalize(s);
	return tx_end(st, own, rc, "server count");
}

/* ---- stages ---- */

enum zmb_rc state_stage_ensure(struct state *st, const char *name, const char *type, int position)
{
	sqlite3_stmt *s = NULL;
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	s = prepare(st, "INSERT INTO stages (name, type, position) VALUES (?1, ?2, ?3)"
		    " ON CONFLICT (name) DO UPDATE SET type = excluded.type,"
		    " position = excluded.position", &rc);
	if (s) {
		bind_text(s, 1, name);
		bind_text(s, 2, type);
		sqlite3_bind_int(s, 3, position);
		rc = update_one(st, s, "record stage");
	}
	sqlite3_finalize(s);
	return tx_end(st, own, rc, "stage ensure");
}

enum zmb_rc state_stage_get(struct state *st, const char *name, struct stage_row *row)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = prepare(st, "SELECT name, type, position, state, attempts, started_at,"
				  " ended_at, output, error FROM stages WHERE name = ?1", &rc);
	memset(row, 0, sizeof *row);
	if (!s)
		return rc;
	bind_text(s, 1, name);
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		row->name = col_text(s, 0);
		row->type = col_text(s, 1);
		row->position = sqlite3_column_int(s, 2);
		int ps = stage_state_parse((const char *)sqlite3_column_text(s, 3));
		row->state = ps < 0 ? STAGE_PENDING : (enum stage_state)ps;
		row->attempts = sqlite3_column_int(s, 4);
		row->started_at = col_double0(s, 5);
		row->ended_at = col_double0(s, 6);
		row->output = col_text(s, 7);
		row->error = col_text(s, 8);
	} else if (src == SQLITE_DONE) {
		set_err(st, xasprintf("%s: no stage '%s'", st->path, name));
		rc = ZMB_ENOTFOUND;
	} else {
		rc = db_fail(st, src, "read stage");
	}
	sqlite3_finalize(s);
	return rc;
}

void state_stage_release(struct stage_row *row)
{
	if (!row)
		return;
	free(row->name);
	free(row->type);
	free(row->output);
	free(row->error);
	memset(row, 0, sizeof *row);
}

/*
 * Stage update + event in one transaction.  Parameters: ?1 name, ?2 now,
 * ?3 run id, ?4 a, ?5 b; binding one the SQL does not use is harmless
 * (SQLITE_RANGE, ignored).
 */
static enum zmb_rc stage_update(struct state *st, const char *sql, const char *name,
				int64_t run_id, const char *a, const char *b,
				const char *level, const char *msg, const char *what)
{
	sqlite3_stmt *s = NULL;
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	s = prepare(st, sql, &rc);
	if (s) {
		bind_text(s, 1, name);
		sqlite3_bind_double(s, 2, wall_now());
		bind_id(s, 3, run_id);
		bind_text(s, 4, a);
		bind_text(s, 5, b);
		rc = update_one(st, s, what);
		if (rc == ZMB_ENOTFOUND)
			set_err(st, xasprintf("%s: %s: no stage '%s'", st->path, what, name));
	}
	sqlite3_finalize(s);
	if (rc == ZMB_OK)
		rc = event_insert(st, run_id, 0, name, level, msg);
	return tx_end(st, own, rc, what);
}

enum zmb_rc state_stage_begin(struct state *st, const char *name, int64_t run_id)
{
	return stage_update(st, "UPDATE stages SET state = 'running', attempts = attempts + 1,"
			    " started_at = ?2, ended_at = NULL, run_id = ?3, error = NULL"
			    " WHERE name = ?1",
			    name, run_id, NULL, NULL, "info", "stage started", "stage begin");
}

enum zmb_rc state_stage_end(struct state *st, const char *name, bool ok,
			    const char *output, const char *error)
{
	return stage_update(st, ok ?
			    "UPDATE stages SET state = 'done', ended_at = ?2, output = ?4, error = ?5"
			    " WHERE name = ?1" :
			    "UPDATE stages SET state = 'failed', ended_at = ?2, output = ?4, error = ?5"
			    " WHERE name = ?1",
			    name, 0, output, error, ok ? "info" : "error",
			    ok ? "stage done" : (error ? error : "stage failed"), "stage end");
}

enum zmb_rc state_stage_reset(struct state *st, const char *name)
{
	return stage_update(st, "UPDATE stages SET state = 'pending', ended_at = NULL, error = NULL"
			    " WHERE name = ?1",
			    name, 0, NULL, NULL, "info", "stage reset to pending", "stage reset");
}

/* ---- accounts ---- */

enum zmb_rc state_account_upsert(struct state *st, const char *account, const char *target,
				 int64_t seq, long long size)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	sqlite3_stmt *s = stmt_get(st, S_UPSERT, &rc);
	if (s) {
		bind_text(s, 1, account);
		bind_text(s, 2, target);
		sqlite3_bind_int64(s, 3, seq);
		if (size >= 0)
			sqlite3_bind_int64(s, 4, size);
		else
			sqlite3_bind_null(s, 4);
		sqlite3_bind_double(s, 5, wall_now());
		int src = sqlite3_step(s);
		if (src != SQLITE_DONE)
			rc = db_fail(st, src, "record account");
		stmt_done(s);
	}
	return tx_end(st, own, rc, "account upsert");
}

static enum zmb_rc account_query(struct state *st, enum stmt_id id, int64_t key_id,
				 const char *key, struct account_row *out)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = stmt_get(st, id, &rc);
	memset(out, 0, sizeof *out);
	if (!s)
		return rc;
	if (key)
		bind_text(s, 1, key);
	else
		sqlite3_bind_int64(s, 1, key_id);
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		read_account(s, out);
	} else if (src == SQLITE_DONE) {
		if (key)
			set_err(st, xasprintf("%s: account '%s' is not in the state database",
					      st->path, key));
		else
			set_err(st, xasprintf("%s: no account with id %lld", st->path,
					      (long long)key_id));
		rc = ZMB_ENOTFOUND;
	} else {
		rc = db_fail(st, src, "read account");
	}
	stmt_done(s);
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
	sqlite3_stmt *s = stmt_get(st, id, &rc);
	*pick = 0;
	if (!s)
		return rc;
	sqlite3_bind_double(s, 1, now);
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		*pick = sqlite3_column_int64(s, 0);
	else if (src != SQLITE_DONE)
		rc = db_fail(st, src, "choose account to claim");
	stmt_done(s);
	return rc;
}

/* Earliest next_try_at of one state (cached statement), -1 if none. */
static enum zmb_rc min_next_try(struct state *st, enum stmt_id id, double *t)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = stmt_get(st, id, &rc);
	*t = -1;
	if (!s)
		return rc;
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) != SQLITE_NULL)
			*t = sqlite3_column_double(s, 0);
	} else {
		rc = db_fail(st, src, "read backoff");
	}
	stmt_done(s);
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
		set_err(st, xasprintf("%s: no account claimable now", st->path));
		rc = ZMB_ENOTFOUND;
		goto out;
	}
	sqlite3_stmt *s = stmt_get(st, S_CLAIM_SET, &rc);
	if (!s)
		goto out;
	sqlite3_bind_int64(s, 1, pick);
	bind_text(s, 2, acct_state_name(to));
	bind_id(s, 3, run_id);
	sqlite3_bind_double(s, 4, wall_now());
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		read_account(s, out);
	else
		rc = db_fail(st, src, "claim account");
	stmt_done(s);
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
		set_err(st, xasprintf("%s: account id %lld: illegal transition %s -> %s",
				      st->path, (long long)id, acct_state_name(from),
				      acct_state_name(to)));
		return ZMB_EINTERNAL;
	}
	/* a final state is committed with a WAL fsync (see Durability above) */
	bool durable = (to == ACCT_DONE || to == ACCT_FAILED) && sqlite3_get_autocommit(st->db);
	if (durable && (rc = exec_sql(st, "PRAGMA synchronous = FULL", "set synchronous")) != ZMB_OK)
		return rc;
	if ((rc = tx_begin(st, &own)) != ZMB_OK)
		goto sync_back;
	sqlite3_stmt *s = stmt_get(st, S_TRANSITION, &rc);
	if (!s)
		goto out;
	sqlite3_bind_int64(s, 1, id);
	bind_text(s, 2, acct_state_name(from));
	bind_text(s, 3, acct_state_name(to));
	bind_text(s, 4, u->error);
	bind_text(s, 5, u->error_class);
	sqlite3_bind_int64(s, 6, u->bytes);
	sqlite3_bind_double(s, 7, u->seconds);
	bind_text(s, 8, u->spool_path);
	sqlite3_bind_double(s, 9, u->next_try_at);
	sqlite3_bind_int64(s, 10, u->sync_mark);
	sqlite3_bind_int(s, 11, u->reset_attempts);
	sqlite3_bind_int(s, 12, u->add_attempt ? 1 : 0);
	sqlite3_bind_double(s, 13, wall_now());
	/* the claim holder: kept while in flight, cleared when leaving */
	bind_id(s, 14, in_flight(to) ? run_id : 0);
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE) {
		rc = db_fail(st, src, "account transition");
	} else if (sqlite3_changes(st->db) == 0) {
		set_err(st, xasprintf("%s: account id %lld: not in state '%s' (moved by someone else?)",
				      st->path, (long long)id, acct_state_name(from)));
		rc = ZMB_ECONFLICT;
	}
	stmt_done(s);
	if (rc == ZMB_OK && u->event) {
		const char *level = to == ACCT_FAILED ? "error"
			: (u->error && u->error[0]) ? "warn" : "info";
		rc = event_insert(st, run_id, id, NULL, level, u->event);
	}
out:
	rc = tx_end(st, own, rc, "transition");
sync_back:
	if (durable) {
		enum zmb_rc r2 = exec_sql(st, "PRAGMA synchronous = NORMAL", "set synchronous");
		if (rc == ZMB_OK)
			rc = r2;
	}
	return rc;
}

enum zmb_rc state_recover(struct state *st, int *n)
{
	struct strlist partial = STRLIST_INIT;
	sqlite3_stmt *sel = NULL, *upd = NULL;
	bool own;
	int count = 0;
	enum zmb_rc rc;

	if (n)
		*n = 0;
	if ((rc = tx_begin(st, &own)) != ZMB_OK)
		return rc;
	sel = prepare(st, "SELECT id, state, spool_path FROM accounts"
		      " WHERE state IN ('exporting', 'importing')", &rc);
	if (!sel)
		goto out;
	/* ?5: the archive of an import is gone: its export's mark is void (export all again) */
	upd = prepare(st, "UPDATE accounts SET state = ?2, spool_path = ?3, owner_run = NULL,"
		      " updated_at = ?4, sync_mark = CASE WHEN ?5 THEN 0 ELSE sync_mark END"
		      " WHERE id = ?1", &rc);
	if (!upd)
		goto out;
	int src;
	while ((src = sqlite3_step(sel)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(sel, 0);
		const char *state = (const char *)sqlite3_column_text(sel, 1);
		const char *spool = (const char *)sqlite3_column_text(sel, 2);
		const char *to = "pending";
		const char *keep = NULL;
		struct stat sb;
		bool lost = false;

		if (strcmp(state, "importing") == 0 && spool && spool[0] &&
		    stat(spool, &sb) == 0 && S_ISREG(sb.st_mode)) {
			to = "exported";          /* complete archive still on disk */
			keep = spool;
		} else if (strcmp(state, "importing") == 0 && spool && spool[0]) {
			lost = true;              /* spool import whose archive is gone */
		} else if (strcmp(state, "exporting") == 0 && spool && spool[0]) {
			strlist_add(&partial, spool);
		}
		char *msg = xasprintf("recovered after an interrupted run: %s -> %s", state, to);
		sqlite3_bind_int64(upd, 1, id);
		bind_text(upd, 2, to);
		bind_text(upd, 3, keep);
		sqlite3_bind_double(upd, 4, wall_now());
		sqlite3_bind_int(upd, 5, lost);
		int usrc = sqlite3_step(upd);
		sqlite3_reset(upd);
		if (usrc != SQLITE_DONE) {
			free(msg);
			rc = db_fail(st, usrc, "recover account");
			goto out;
		}
		rc = event_insert(st, 0, id, NULL, "warn", msg);
		free(msg);
		if (rc)
			goto out;
		count++;
	}
	if (src != SQLITE_DONE) {
		rc = db_fail(st, src, "find interrupted accounts");
		goto out;
	}
	sqlite3_finalize(sel);
	sel = NULL;
	src = sqlite3_exec(st->db, "UPDATE stages SET state = 'pending' WHERE state = 'running'",
			   NULL, NULL, NULL);
	if (src != SQLITE_OK) {
		rc = db_fail(st, src, "recover stages");
		goto out;
	}
	count += sqlite3_changes(st->db);
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	rc = tx_end(st, own, rc, "recover");
	if (rc == ZMB_OK) {
		/* after the COMMIT: a crash in between only leaves a stray file */
		for (size_t i = 0; i < partial.n; i++)
			if (unlink(partial.v[i]) < 0 && errno != ENOENT)
				set_err(st, xasprintf("cannot remove partial spool file %s: %s",
						      partial.v[i], strerror(errno)));
		if (n)
			*n = count;
	}
	strlist_release(&partial);
	return rc;
}

/* Run one ad-hoc UPDATE binding ?1 = now and optional ?2 text; *n = changes. */
static enum zmb_rc bulk_update(struct state *st, const char *sql, const char *arg, int *n,
			       const char *what)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = prepare(st, sql, &rc);
	if (!s)
		return rc;
	sqlite3_bind_double(s, 1, wall_now());
	if (sqlite3_bind_parameter_count(s) >= 2)
		bind_text(s, 2, arg);
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE)
		rc = db_fail(st, src, what);
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
	if (in_flight(row.state)) {
		set_err(st, xasprintf("%s: account '%s' is %s: a run holds it (or died: "
				      "the next run recovers it)", st->path, account,
				      acct_state_name(row.state)));
		rc = ZMB_ECONFLICT;
		goto out;
	}
	/* back to pending = migrate it again, in full: a delta from an old mark would
	 * bring back nothing to a target that was emptied or made again (skip keeps
	 * what is already there); an exported one keeps its archive and its mark */
	rc = bulk_update(st, "UPDATE accounts SET state = CASE WHEN state = 'exported'"
			 " THEN 'exported' ELSE 'pending' END, attempts = 0, next_try_at = 0,"
			 " delta = CASE WHEN state = 'exported' THEN delta ELSE 0 END,"
			 " sync_mark = CASE WHEN state = 'exported' THEN sync_mark ELSE NULL END,"
			 " finished_at = NULL, owner_run = NULL, updated_at = ?1 WHERE account = ?2",
			 account, &changed, "reset account");
	if (rc == ZMB_OK) {
		char *msg = xasprintf("reset: %s -> %s", acct_state_name(row.state),
				      row.state == ACCT_EXPORTED ? "exported" : "pending");
		rc = event_insert(st, 0, row.id, NULL, "info", msg);
		free(msg);
	}
out:
	state_account_release(&row);
	rc = tx_end(st, own, rc, "reset account");
	if (rc == ZMB_OK && n)
		*n = changed;
	return rc;
}

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
			 " WHERE state = 'failed'", NULL, NULL, "record reset events");
	if (rc == ZMB_OK)
		rc = bulk_update(st, "UPDATE accounts SET state = 'pending', attempts = 0,"
				 " next_try_at = 0, finished_at = NULL, owner_run = NULL,"
				 " updated_at = ?1 WHERE state = 'failed'", NULL, &changed,
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
			 " next_try_at = 0, finished_at = NULL, owner_run = NULL,"
			 " updated_at = ?1 WHERE state = 'done'", NULL, &changed,
			 "queue delta pass");
	if (rc == ZMB_OK && changed > 0) {
		char *msg = xasprintf("delta pass: %d done account(s) queued again", changed);
		rc = event_insert(st, 0, 0, NULL, "info", msg);
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
	sqlite3_stmt *s = prepare(st, "SELECT state, count(*) FROM accounts GROUP BY state", &rc);
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
		rc = db_fail(st, src, "count accounts");
	sqlite3_finalize(s);
	return rc;
}
