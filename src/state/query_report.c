/*
 * query_report.c - the named read-only queries of the report side (see
 * query_report.h for the contract).  Each stream prepares its statement,
 * binds it, and hands each row to the caller's callback as it is stepped.
 */
#include "query_report.h"

#include <stdlib.h>
#include <string.h>

/* Rows of `runs` that are runs (other writing commands may record rows too). */
#define RUNS_ONLY "(command = 'run' OR command LIKE 'run %')"

/* ---- helpers ---- */

static void set_dberr(sqlite3 *db, char **err, const char *what)
{
	if (err && !*err)
		*err = xasprintf("cannot read state database (%s): %s", what, sqlite3_errmsg(db));
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql, char **err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		set_dberr(db, err, "prepare");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	return s ? (const char *)s : NULL;
}

/* A time column: 0 when NULL. */
static double col_time(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_double(st, i);
}

/*
 * Step every row of st (prepared: NULL = failed) through row(st, ctx), then
 * finalize it.  A step error is reported as a read error of `what`.
 */
static enum zmb_rc each_row(sqlite3 *db, sqlite3_stmt *st, const char *what,
			    void (*row)(sqlite3_stmt *st, void *ctx), void *ctx, char **err)
{
	int r;
	if (!st)
		return ZMB_ESTATE;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		row(st, ctx);
	sqlite3_finalize(st);
	if (r != SQLITE_DONE) {
		set_dberr(db, err, what);
		return ZMB_ESTATE;
	}
	return ZMB_OK;
}

/* Step a one-row statement: ZMB_OK with a row, ZMB_ENOTFOUND without one. */
static enum zmb_rc one_row(sqlite3 *db, sqlite3_stmt *st, const char *what, char **err)
{
	if (!st)
		return ZMB_ESTATE;
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		return ZMB_OK;
	if (r == SQLITE_DONE)
		return ZMB_ENOTFOUND;
	set_dberr(db, err, what);
	return ZMB_ESTATE;
}

/* ---- the read transaction ---- */

enum zmb_rc qr_read_begin(sqlite3 *db, bool *own, char **err)
{
	*own = false;
	if (!sqlite3_get_autocommit(db))
		return ZMB_OK;          /* the caller's transaction already pins a snapshot */
	*own = true;
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		set_dberr(db, err, "begin");
		return ZMB_ESTATE;
	}
	return ZMB_OK;
}

void qr_read_end(sqlite3 *db, bool own)
{
	if (own)
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

/* Does the DB have the chunks of passes exported in pieces (schema 6)? */
static bool has_chunks(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('accounts') WHERE name = 'chunks_total'",
			       -1, &s, NULL) == SQLITE_OK)
		yes = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return yes;
}

/* ---- aggregates ---- */

static void state_totals_row(sqlite3_stmt *st, void *ctx)
{
	struct qr_state_totals *t = ctx;
	long long n = sqlite3_column_int64(st, 1);
	int i = acct_state_parse(col_text(st, 0));
	t->accounts += n;
	if (i < 0)
		return;
	t->count[i] = n;
	t->bytes[i] = sqlite3_column_int64(st, 2);
	t->size[i] = sqlite3_column_int64(st, 3);
	t->moved[i] = sqlite3_column_int64(st, 4);
}

enum zmb_rc qr_state_totals(sqlite3 *db, struct qr_state_totals *t, char **err)
{
	memset(t, 0, sizeof *t);
	/* one pass, grouped over the state index */
	return each_row(db, prep(db, has_chunks(db)
				 ? "SELECT state, count(*), coalesce(sum(bytes), 0), "
				   "coalesce(sum(coalesce(size, 0)), 0), coalesce(sum(CASE WHEN state"
				   " IN ('done', 'skipped') THEN 0 ELSE chunk_bytes END), 0)"
				   " FROM accounts GROUP BY state"
				 : "SELECT state, count(*), coalesce(sum(bytes), 0), "
				   "coalesce(sum(coalesce(size, 0)), 0), 0 FROM accounts GROUP BY state", err),
			"accounts", state_totals_row, t, err);
}

enum zmb_rc qr_run_totals(sqlite3 *db, struct qr_run_totals *t, char **err)
{
	sqlite3_stmt *st = prep(db, "SELECT count(*), coalesce(sum(token_refreshes), 0), "
				"coalesce(sum(retries), 0), coalesce(sum(bytes), 0) FROM runs WHERE " RUNS_ONLY, err);
	enum zmb_rc rc = one_row(db, st, "runs", err);

	memset(t, 0, sizeof *t);
	if (rc == ZMB_ENOTFOUND) {
		set_dberr(db, err, "runs");
		rc = ZMB_ESTATE;
	}
	if (rc == ZMB_OK) {
		t->runs = sqlite3_column_int64(st, 0);
		t->token_refreshes = sqlite3_column_int64(st, 1);
		t->retries = sqlite3_column_int64(st, 2);
		t->bytes = sqlite3_column_int64(st, 3);
	}
	sqlite3_finalize(st);
	return rc;
}

struct span_cb {
	void (*fn)(void *arg, const struct qr_run_span *row);
	void *arg;
};

static void span_row(sqlite3_stmt *st, void *ctx)
{
	struct span_cb *c = ctx;
	struct qr_run_span r = { col_time(st, 0), col_time(st, 1), col_text(st, 2), sqlite3_column_int64(st, 3),
				 sqlite3_column_int(st, 4) != 0 };
	c->fn(c->arg, &r);
}

enum zmb_rc qr_run_spans(sqlite3 *db, void (*fn)(void *arg, const struct qr_run_span *row), void *arg,
			 char **err)
{
	struct span_cb c = { fn, arg };
	/* a merged DB's run ids are offset per source DB: id >> 32 (state_merge.c) */
	return each_row(db, prep(db, "SELECT started_at, ended_at, host, pid, id = (SELECT max(r2.id) FROM "
				 "runs r2 WHERE (r2.command = 'run' OR r2.command LIKE 'run %') AND "
				 "(r2.id >> 32) = (runs.id >> 32)) FROM runs WHERE " RUNS_ONLY
				 " ORDER BY started_at, id", err), "runs", span_row, &c, err);
}

/*
 * sql with its one NEWEST replaced by the order of newest first: by id in
 * one DB (ids grow with time there); by time in a merged DB, whose ids are
 * offset per source DB (state_merge.c).  Prepared as prep().
 */
#define NEWEST "@newest@"
static sqlite3_stmt *prep_newest(sqlite3 *db, const char *sql, const char *time_col, const char *id_col,
				 char **err)
{
	const char *at = strstr(sql, NEWEST);
	char *q = xasprintf("%.*s%s%s%s DESC%s", (int)(at - sql), sql, qr_merged(db) ? time_col : "",
			    qr_merged(db) ? " DESC, " : "", id_col, at + strlen(NEWEST));
	sqlite3_stmt *st = prep(db, q, err);
	free(q);
	return st;
}

enum zmb_rc qr_last_success(sqlite3 *db, double *ended_at, char **err)
{
	sqlite3_stmt *st = prep_newest(db, "SELECT ended_at FROM runs WHERE " RUNS_ONLY " AND exit_status = 0 "
				       "AND ended_at IS NOT NULL ORDER BY " NEWEST " LIMIT 1", "started_at", "id", err);
	enum zmb_rc rc = one_row(db, st, "runs", err);

	*ended_at = rc == ZMB_OK ? col_time(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == ZMB_ENOTFOUND ? ZMB_OK : rc;
}

enum zmb_rc qr_last_run(sqlite3 *db, struct qr_run *r, char **err)
{
	sqlite3_stmt *st = prep_newest(db, "SELECT id, started_at, ended_at, pid, host, command, exit_status, "
				       "token_refreshes, retries, bytes FROM runs WHERE " RUNS_ONLY
				       " ORDER BY " NEWEST " LIMIT 1", "started_at", "id", err);
	enum zmb_rc rc = one_row(db, st, "runs", err);

	memset(r, 0, sizeof *r);
	if (rc == ZMB_OK) {
		r->present = true;
		r->id = sqlite3_column_int64(st, 0);
		r->started_at = col_time(st, 1);
		r->ended_at = col_time(st, 2);
		r->pid = sqlite3_column_int64(st, 3);
		r->host = xstrdup(col_text(st, 4));
		r->command = xstrdup(col_text(st, 5));
		r->has_exit = sqlite3_column_type(st, 6) != SQLITE_NULL;
		r->exit_status = sqlite3_column_int(st, 6);
		r->token_refreshes = sqlite3_column_int64(st, 7);
		r->retries = sqlite3_column_int64(st, 8);
		r->bytes = sqlite3_column_int64(st, 9);
	}
	sqlite3_finalize(st);
	return rc == ZMB_ENOTFOUND ? ZMB_OK : rc;
}

void qr_run_release(struct qr_run *r)
{
	if (!r)
		return;
	free(r->host);
	free(r->command);
	memset(r, 0, sizeof *r);
}

enum zmb_rc qr_job_name(sqlite3 *db, char **name, char **err)
{
	*name = NULL;
	sqlite3_stmt *st = prep(db, "SELECT key, value FROM meta WHERE key IN ('job_name', 'job_identity') "
				"ORDER BY key = 'job_name' DESC LIMIT 1", err);
	if (!st)
		return ZMB_ESTATE;
	/* a read error here leaves the name empty: the report still renders */
	int r = sqlite3_step(st);
	*name = xstrdup(r == SQLITE_ROW && col_text(st, 1) ? col_text(st, 1) : "");
	if (r == SQLITE_ROW && strcmp(col_text(st, 0), "job_identity") == 0)
		(*name)[strcspn(*name, "|")] = '\0';
	sqlite3_finalize(st);
	return ZMB_OK;
}

bool qr_has_servers(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, "servers", -1, SQLITE_STATIC);
		yes = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return yes;
}

enum zmb_rc qr_done_bytes_since(sqlite3 *db, double since, long long *bytes, char **err)
{
	/* a pass in steps counts each step when it is done, not the whole at the end */
	sqlite3_stmt *st = prep(db, has_chunks(db)
				? "SELECT (SELECT coalesce(sum(bytes), 0) FROM accounts WHERE state = 'done'"
				  " AND finished_at >= ?1 AND chunks_total = 0) + (SELECT coalesce(sum(bytes), 0)"
				  " FROM chunks WHERE done = 1 AND done_at >= ?1)"
				: "SELECT coalesce(sum(bytes), 0) FROM accounts "
				  "WHERE state = 'done' AND finished_at >= ?", err);
	*bytes = 0;
	if (st)
		sqlite3_bind_double(st, 1, since);
	enum zmb_rc rc = one_row(db, st, "accounts", err);
	if (rc == ZMB_ENOTFOUND) {
		set_dberr(db, err, "accounts");
		rc = ZMB_ESTATE;
	}
	if (rc == ZMB_OK)
		*bytes = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

/* ---- row streams ---- */

struct stage_cb { void (*fn)(void *, const struct qr_stage *); void *arg; };

static void stage_row(sqlite3_stmt *st, void *ctx)
{
	struct stage_cb *c = ctx;
	struct qr_stage r = {
		.name = col_text(st, 0), .type = col_text(st, 1), .state = col_text(st, 2),
		.attempts = sqlite3_column_int64(st, 3), .error = col_text(st, 4),
		.started_at = col_time(st, 5), .ended_at = col_time(st, 6), .output = col_text(st, 7),
	};
	c->fn(c->arg, &r);
}

enum zmb_rc qr_stages(sqlite3 *db, void (*fn)(void *arg, const struct qr_stage *row),
		      void *arg, char **err)
{
	struct stage_cb c = { fn, arg };
	return each_row(db, prep(db, "SELECT name, type, state, attempts, error, started_at, ended_at, "
				 "output FROM stages ORDER BY position, name", err),
			"stages", stage_row, &c, err);
}

struct server_cb { void (*fn)(void *, const struct qr_server *); void *arg; };

static void server_row(sqlite3_stmt *st, void *ctx)
{
	struct server_cb *c = ctx;
	struct qr_server r = {
		.role = col_text(st, 0), .host = col_text(st, 1),
		.auth_requests = sqlite3_column_int64(st, 2),
		.token_refreshes = sqlite3_column_int64(st, 3),
		.auth_failures = sqlite3_column_int64(st, 4),
		.last_auth_at = col_time(st, 5),
		.has_pace = sqlite3_column_type(st, 9) != SQLITE_NULL,
		.requests = sqlite3_column_int64(st, 6),
		.throttled = sqlite3_column_int64(st, 7),
		.throttle_wait_seconds = sqlite3_column_double(st, 8),
		.rate_limit = sqlite3_column_double(st, 9),
		.concurrency_limit = sqlite3_column_int64(st, 10),
	};
	c->fn(c->arg, &r);
}

/* Does `servers` have the pacing columns (schema 003)?  A read-only open never migrates. */
static bool has_server_pace(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('servers') WHERE name = 'throttled'",
			       -1, &st, NULL) == SQLITE_OK)
		yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

enum zmb_rc qr_servers(sqlite3 *db, void (*fn)(void *arg, const struct qr_server *row),
		       void *arg, char **err)
{
	struct server_cb c = { fn, arg };
	return each_row(db, prep(db, has_server_pace(db) ?
				 "SELECT role, host, auth_requests, token_refreshes, auth_failures, "
				 "last_auth_at, requests, throttled, throttle_wait_seconds, rate_limit, "
				 "concurrency_limit FROM servers ORDER BY role" :
				 "SELECT role, host, auth_requests, token_refreshes, auth_failures, "
				 "last_auth_at, 0, 0, 0, NULL, NULL FROM servers ORDER BY role", err),
			"servers", server_row, &c, err);
}

/* schema 004: the accounts' statuses and import warnings */
static bool has_account_status(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('accounts') WHERE name = 'warnings'",
			       -1, &st, NULL) == SQLITE_OK)
		yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

enum zmb_rc qr_warned(sqlite3 *db, long long *n, char **err)
{
	*n = 0;
	if (!has_account_status(db))
		return ZMB_OK;
	sqlite3_stmt *st = prep(db, "SELECT count(*) FROM accounts WHERE state = 'done' AND warnings > 0",
				err);
	if (!st)
		return ZMB_ESTATE;
	enum zmb_rc rc = ZMB_OK;
	if (sqlite3_step(st) == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	else {
		*err = xasprintf("cannot count accounts with warnings: %s", sqlite3_errmsg(db));
		rc = ZMB_ESTATE;
	}
	sqlite3_finalize(st);
	return rc;
}

struct account_cb { void (*fn)(void *, const struct qr_account *); void *arg; };

static void account_row(sqlite3_stmt *st, void *ctx)
{
	struct account_cb *c = ctx;
	struct qr_account r = {
		.account = col_text(st, 0), .target = col_text(st, 1), .state = col_text(st, 2),
		.attempts = sqlite3_column_int64(st, 3), .bytes = sqlite3_column_int64(st, 4),
		.has_seconds = sqlite3_column_type(st, 5) != SQLITE_NULL,
		.seconds = col_time(st, 5), .error = col_text(st, 6),
		.source_status = col_text(st, 7), .target_status = col_text(st, 8),
		.warnings = sqlite3_column_int64(st, 9),
		.source_host = col_text(st, 10), .target_host = col_text(st, 11),
		.chunks_done = sqlite3_column_int64(st, 12), .chunks_total = sqlite3_column_int64(st, 13),
		.verify = col_text(st, 14), .verify_detail = col_text(st, 15),
	};
	c->fn(c->arg, &r);
}

/* Does the DB have the accounts' mail hosts (schema 5)? */
static bool has_mail_hosts(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('accounts') WHERE name = 'source_host'",
			       -1, &s, NULL) == SQLITE_OK)
		yes = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return yes;
}

/* Does the DB have the accounts' verdicts (schema 7)? */
static bool has_verify(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('accounts') WHERE name = 'verify'",
			       -1, &s, NULL) == SQLITE_OK)
		yes = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return yes;
}

const char *const qr_verify_names[QR_VERIFY_N] = { "ok", "mismatch", "unverifiable", "none" };

static void verify_count_row(sqlite3_stmt *st, void *ctx)
{
	long long *v = ctx;
	const char *name = col_text(st, 0);
	for (int i = 0; i < QR_VERIFY_N; i++)
		if (name && !strcmp(name, qr_verify_names[i]))
			v[i] += sqlite3_column_int64(st, 1);
}

enum zmb_rc qr_verify_counts(sqlite3 *db, long long v[QR_VERIFY_N], char **err)
{
	memset(v, 0, QR_VERIFY_N * sizeof *v);
	return each_row(db, prep(db, has_verify(db)
				 ? "SELECT coalesce(verify, 'none'), count(*) FROM accounts GROUP BY 1"
				 : "SELECT 'none', count(*) FROM accounts", err),
			"accounts", verify_count_row, v, err);
}

/*
 * The account columns account_row() reads, then `tail` (a new string;
 * caller frees): the status columns (schema 4), mail hosts (schema 5),
 * steps (schema 6) and verdicts (schema 7) as NULL or 0 on an older DB.
 */
static char *account_sql(sqlite3 *db, const char *tail)
{
	return xasprintf("SELECT account, target, state, attempts, bytes, seconds, last_error, %s, %s, %s, "
			 "%s FROM accounts %s",
			 has_account_status(db) ? "source_status, target_status, warnings"
						: "NULL, NULL, 0",
			 has_mail_hosts(db) ? "source_host, target_host" : "NULL, NULL",
			 has_chunks(db) ? "chunks_done, chunks_total" : "0, 0",
			 has_verify(db) ? "verify, verify_detail" : "NULL, NULL", tail);
}

enum zmb_rc qr_accounts(sqlite3 *db, int state,
			void (*fn)(void *arg, const struct qr_account *row), void *arg, char **err)
{
	struct account_cb c = { fn, arg };
	sqlite3_stmt *st;
	if (state >= ACCT_NSTATES) {
		*err = xasprintf("unknown account state %d", state);
		return ZMB_EINTERNAL;
	}
	char *sql = account_sql(db, state >= 0 ? "WHERE state = ? ORDER BY seq, id" : "ORDER BY seq, id");
	st = prep(db, sql, err);
	free(sql);
	if (st && state >= 0)
		sqlite3_bind_text(st, 1, acct_state_name((enum acct_state)state), -1, SQLITE_STATIC);
	return each_row(db, st, "accounts", account_row, &c, err);
}

enum zmb_rc qr_slowest(sqlite3 *db, int limit,
		       void (*fn)(void *arg, const struct qr_account *row), void *arg, char **err)
{
	struct account_cb c = { fn, arg };
	/* one pass with a `limit`-row sorter */
	char *sql = account_sql(db, "WHERE seconds IS NOT NULL ORDER BY seconds DESC LIMIT ?");
	sqlite3_stmt *st = prep(db, sql, err);
	free(sql);
	if (st)
		sqlite3_bind_int(st, 1, limit);
	return each_row(db, st, "accounts", account_row, &c, err);
}

struct class_cb { void (*fn)(void *, const char *, long long); void *arg; };

static void class_row(sqlite3_stmt *st, void *ctx)
{
	struct class_cb *c = ctx;
	c->fn(c->arg, col_text(st, 0), sqlite3_column_int64(st, 1));
}

enum zmb_rc qr_failure_classes(sqlite3 *db,
			       void (*fn)(void *arg, const char *error_class, long long n),
			       void *arg, char **err)
{
	struct class_cb c = { fn, arg };
	return each_row(db, prep(db, "SELECT coalesce(nullif(error_class, ''), 'unknown'), count(*) FROM accounts "
				 "WHERE state = 'failed' GROUP BY 1 ORDER BY 2 DESC, 1", err),
			"accounts", class_row, &c, err);
}

struct failure_cb { void (*fn)(void *, const struct qr_failure *); void *arg; };

static void failure_row(sqlite3_stmt *st, void *ctx)
{
	struct failure_cb *c = ctx;
	struct qr_failure r = {
		.account = col_text(st, 0), .target = col_text(st, 1),
		.attempts = sqlite3_column_int64(st, 2),
		.error_class = col_text(st, 3), .error = col_text(st, 4),
	};
	c->fn(c->arg, &r);
}

enum zmb_rc qr_failures(sqlite3 *db, void (*fn)(void *arg, const struct qr_failure *row),
			void *arg, char **err)
{
	struct failure_cb c = { fn, arg };
	return each_row(db, prep(db, "SELECT account, target, attempts, error_class, last_error "
				 "FROM accounts WHERE state = 'failed' ORDER BY account", err),
			"accounts", failure_row, &c, err);
}

struct flight_cb { void (*fn)(void *, const struct qr_in_flight *); void *arg; };

static void flight_row(sqlite3_stmt *st, void *ctx)
{
	struct flight_cb *c = ctx;
	struct qr_in_flight r = {
		.account = col_text(st, 0), .state = col_text(st, 1),
		.attempts = sqlite3_column_int64(st, 2), .started_at = col_time(st, 3),
		.has_size = sqlite3_column_type(st, 4) != SQLITE_NULL,
		.size = sqlite3_column_int64(st, 4),
		.chunks_done = sqlite3_column_int64(st, 5), .chunks_total = sqlite3_column_int64(st, 6),
		.chunk_bytes = sqlite3_column_int64(st, 7),
	};
	c->fn(c->arg, &r);
}

enum zmb_rc qr_in_flight(sqlite3 *db, int limit,
			 void (*fn)(void *arg, const struct qr_in_flight *row), void *arg,
			 char **err)
{
	struct flight_cb c = { fn, arg };
	char *sql = xasprintf("SELECT account, state, attempts, started_at, size, %s FROM accounts "
			      "WHERE state IN ('exporting', 'importing') ORDER BY started_at, id "
			      "LIMIT ?", has_chunks(db) ? "chunks_done, chunks_total, chunk_bytes" : "0, 0, 0");
	sqlite3_stmt *st = prep(db, sql, err);
	free(sql);
	if (st)
		sqlite3_bind_int(st, 1, limit);
	return each_row(db, st, "accounts", flight_row, &c, err);
}

struct event_cb { void (*fn)(void *, const struct qr_event *); void *arg; };

/* Columns: at, run_id, level, who, message. */
static void event_row(sqlite3_stmt *st, void *ctx)
{
	struct event_cb *c = ctx;
	struct qr_event r = {
		.at = col_time(st, 0),
		.has_run = sqlite3_column_type(st, 1) != SQLITE_NULL,
		.run_id = sqlite3_column_int64(st, 1),
		.level = col_text(st, 2), .who = col_text(st, 3), .message = col_text(st, 4),
	};
	c->fn(c->arg, &r);
}

enum zmb_rc qr_last_problems(sqlite3 *db, int limit,
			     void (*fn)(void *arg, const struct qr_event *row), void *arg,
			     char **err)
{
	struct event_cb c = { fn, arg };
	sqlite3_stmt *st = prep_newest(db, "SELECT e.at, e.run_id, e.level, coalesce(a.account, e.stage, ''), "
				       "e.message FROM events e LEFT JOIN accounts a ON a.id = e.account_id "
				       "WHERE e.level IN ('error', 'warn') ORDER BY " NEWEST " LIMIT ?", "e.at", "e.id", err);
	if (st)
		sqlite3_bind_int(st, 1, limit);
	return each_row(db, st, "events", event_row, &c, err);
}

struct acct_err_cb { void (*fn)(void *, const struct qr_account_error *); void *arg; };

static void acct_err_row(sqlite3_stmt *st, void *ctx)
{
	struct acct_err_cb *c = ctx;
	struct qr_account_error r = {
		.at = col_time(st, 0), .account = col_text(st, 1), .state = col_text(st, 2),
		.error_class = col_text(st, 3), .error = col_text(st, 4),
	};
	c->fn(c->arg, &r);
}

enum zmb_rc qr_last_account_errors(sqlite3 *db, int limit,
				   void (*fn)(void *arg, const struct qr_account_error *row),
				   void *arg, char **err)
{
	struct acct_err_cb c = { fn, arg };
	sqlite3_stmt *st = prep(db, "SELECT coalesce(finished_at, updated_at), account, state, "
				"error_class, last_error FROM accounts "
				"WHERE last_error IS NOT NULL AND last_error <> '' "
				"ORDER BY updated_at DESC LIMIT ?", err);
	if (st)
		sqlite3_bind_int(st, 1, limit);
	return each_row(db, st, "accounts", acct_err_row, &c, err);
}

enum zmb_rc qr_account_history(sqlite3 *db, const char *account,
			       void (*fn)(void *arg, const struct qr_event *row), void *arg,
			       char **err)
{
	struct event_cb c = { fn, arg };
	sqlite3_stmt *st = prep(db, "SELECT id FROM accounts WHERE account = ?", err);
	if (st)
		sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	enum zmb_rc rc = one_row(db, st, "accounts", err);
	long long id = rc == ZMB_OK ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc == ZMB_ENOTFOUND)
		*err = xasprintf("no account '%s' in the state database", account);
	if (rc)
		return rc;
	st = prep(db, "SELECT at, run_id, level, stage, message FROM events WHERE account_id = ? "
		  "ORDER BY id", err);
	if (st)
		sqlite3_bind_int64(st, 1, id);
	return each_row(db, st, "events", event_row, &c, err);
}


/* ---- merged DBs (state_merge.c) ---- */

bool qr_merged(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
			       "name = 'merge_sources'", -1, &st, NULL) == SQLITE_OK)
		yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

struct merge_src_cb {
	void (*fn)(void *arg, const struct qr_merge_src *row);
	void *arg;
};

static void merge_src_row(sqlite3_stmt *st, void *ctx)
{
	struct merge_src_cb *c = ctx;
	struct qr_merge_src r = {
		.db = sqlite3_column_int64(st, 0), .path = col_text(st, 1), .shard = col_text(st, 2),
		.accounts = sqlite3_column_int64(st, 3), .planned_bytes = sqlite3_column_int64(st, 4),
		.bytes_moved = sqlite3_column_int64(st, 5), .shard_by = col_text(st, 6),
		.shard_servers = col_text(st, 7),
	};
	for (int i = 0; i < ACCT_NSTATES; i++)
		r.counts[i] = sqlite3_column_int64(st, 8 + i);
	c->fn(c->arg, &r);
}

enum zmb_rc qr_merge_sources(sqlite3 *db, void (*fn)(void *arg, const struct qr_merge_src *row),
			     void *arg, char **err)
{
	struct merge_src_cb c = { fn, arg };
	struct buf sql = BUF_INIT;
	buf_adds(&sql, "SELECT db, path, shard, accounts, planned_bytes, bytes_moved, shard_by, shard_servers");
	for (int i = 0; i < ACCT_NSTATES; i++)
		buf_addf(&sql, ", coalesce((SELECT accounts FROM merge_counts c WHERE c.db = s.db AND "
			 "c.state = '%s'), 0)", acct_state_name((enum acct_state)i));
	buf_adds(&sql, " FROM merge_sources s ORDER BY db");
	enum zmb_rc rc = each_row(db, prep(db, sql.s, err), "merge_sources", merge_src_row, &c, err);
	buf_release(&sql);
	return rc;
}

struct merge_dup_cb {
	void (*fn)(void *arg, const struct qr_merge_dup *row);
	void *arg;
};

static void merge_dup_row(sqlite3_stmt *st, void *ctx)
{
	struct merge_dup_cb *c = ctx;
	struct qr_merge_dup r = { col_text(st, 0), col_text(st, 1), col_text(st, 2) };
	c->fn(c->arg, &r);
}

enum zmb_rc qr_merge_dups(sqlite3 *db, void (*fn)(void *arg, const struct qr_merge_dup *row),
			  void *arg, char **err)
{
	struct merge_dup_cb c = { fn, arg };
	if (!qr_merged(db))
		return ZMB_OK;
	return each_row(db, prep(db, "SELECT account, db, also_in FROM merge_duplicates ORDER BY rowid", err),
			"merge_duplicates", merge_dup_row, &c, err);
}

enum zmb_rc qr_merge_dup_count(sqlite3 *db, long long *n, char **err)
{
	*n = 0;
	if (!qr_merged(db))
		return ZMB_OK;
	sqlite3_stmt *st = prep(db, "SELECT count(DISTINCT account) FROM merge_duplicates", err);
	enum zmb_rc rc = one_row(db, st, "merge_duplicates", err);
	if (rc == ZMB_OK)
		*n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

struct merge_untaken_cb {
	void (*fn)(void *arg, const struct qr_merge_untaken *row);
	void *arg;
};

static void merge_untaken_row(sqlite3_stmt *st, void *ctx)
{
	struct merge_untaken_cb *c = ctx;
	struct qr_merge_untaken r = { col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3),
				      sqlite3_column_double(st, 4) };
	c->fn(c->arg, &r);
}

enum zmb_rc qr_merge_untaken(sqlite3 *db, void (*fn)(void *arg, const struct qr_merge_untaken *row),
			     void *arg, char **err)
{
	struct merge_untaken_cb c = { fn, arg };
	if (!qr_merged(db))
		return ZMB_OK;
	return each_row(db, prep(db, "SELECT account, shard, home, listed_by, seen_at FROM merge_untaken "
				 "ORDER BY rowid", err), "merge_untaken", merge_untaken_row, &c, err);
}

enum zmb_rc qr_merge_untaken_count(sqlite3 *db, long long *n, char **err)
{
	*n = 0;
	if (!qr_merged(db))
		return ZMB_OK;
	sqlite3_stmt *st = prep(db, "SELECT count(*) FROM merge_untaken", err);
	enum zmb_rc rc = one_row(db, st, "merge_untaken", err);
	if (rc == ZMB_OK)
		*n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

/* ---- the HTML report's charts and bounded tables ---- */

enum zmb_rc qr_done_span(sqlite3 *db, struct qr_done_span *s, char **err)
{
	/* a time outside 1970..5138 (NULL, or an Inf a hand edit stored) is no time */
	sqlite3_stmt *st = prep(db, "SELECT count(t), min(t), max(t), count(*) - count(t) FROM "
				"(SELECT CASE WHEN finished_at BETWEEN 0 AND 1e11 THEN finished_at END AS t "
				"FROM accounts WHERE state = 'done')", err);
	enum zmb_rc rc = one_row(db, st, "accounts", err);

	memset(s, 0, sizeof *s);
	if (rc == ZMB_ENOTFOUND) {
		set_dberr(db, err, "accounts");
		rc = ZMB_ESTATE;
	}
	if (rc == ZMB_OK) {
		s->n = sqlite3_column_int64(st, 0);
		s->first = col_time(st, 1);
		s->last = col_time(st, 2);
		s->untimed = sqlite3_column_int64(st, 3);
	}
	sqlite3_finalize(st);
	return rc;
}

struct bucket_cb { void (*fn)(void *, int, long long, long long); void *arg; };

static void bucket_row(sqlite3_stmt *st, void *ctx)
{
	struct bucket_cb *c = ctx;
	c->fn(c->arg, sqlite3_column_int(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2));
}

enum zmb_rc qr_done_buckets(sqlite3 *db, double origin, double width, int n,
			    void (*fn)(void *arg, int bucket, long long accounts, long long bytes),
			    void *arg, char **err)
{
	struct bucket_cb c = { fn, arg };
	/* ?1 origin, ?2 width, ?3 n; the bucket computed once, the end clamped to the last bucket */
	sqlite3_stmt *st = prep(db, "SELECT min(CAST((finished_at - ?1) / ?2 AS INTEGER), ?3 - 1) AS b, "
				"count(*), coalesce(sum(bytes), 0) FROM accounts WHERE state = 'done' "
				"AND finished_at >= ?1 AND finished_at <= ?1 + ?2 * ?3 GROUP BY b ORDER BY b", err);
	if (st) {
		sqlite3_bind_double(st, 1, origin);
		sqlite3_bind_double(st, 2, width > 0 ? width : 1);
		sqlite3_bind_int(st, 3, n);
	}
	return each_row(db, st, "accounts", bucket_row, &c, err);
}

struct size_cb { void (*fn)(void *, int, const char *, long long, long long); void *arg; };

static void size_row(sqlite3_stmt *st, void *ctx)
{
	struct size_cb *c = ctx;
	c->fn(c->arg, sqlite3_column_int(st, 0), col_text(st, 1), sqlite3_column_int64(st, 2),
	      sqlite3_column_int64(st, 3));
}

enum zmb_rc qr_size_buckets(sqlite3 *db, const long long *edges, int nedges,
			    void (*fn)(void *arg, int bucket, const char *state, long long n,
				       long long size),
			    void *arg, char **err)
{
	struct size_cb c = { fn, arg };
	char cases[16 * 48] = "";
	size_t used = 0;
	if (nedges < 0 || nedges > 16) {
		*err = xasprintf("size buckets: %d edges", nedges);
		return ZMB_EINTERNAL;
	}
	for (int i = 0; i < nedges; i++)
		used += (size_t)snprintf(cases + used, sizeof cases - used, " WHEN size < %lld THEN %d",
					 edges[i], i);
	char *sql = xasprintf("SELECT CASE WHEN size IS NULL THEN -1%s ELSE %d END AS b, state, count(*), "
			      "coalesce(sum(size), 0) FROM accounts GROUP BY b, state ORDER BY b, state",
			      cases, nedges);
	sqlite3_stmt *st = prep(db, sql, err);
	free(sql);
	return each_row(db, st, "accounts", size_row, &c, err);
}

struct sized_cb { void (*fn)(void *, const struct qr_sized *); void *arg; };

static void sized_row(sqlite3_stmt *st, void *ctx)
{
	struct sized_cb *c = ctx;
	struct qr_sized r = {
		.account = col_text(st, 0), .target = col_text(st, 1), .state = col_text(st, 2),
		.size = sqlite3_column_int64(st, 3), .attempts = sqlite3_column_int64(st, 4),
	};
	c->fn(c->arg, &r);
}

enum zmb_rc qr_largest_left(sqlite3 *db, int limit,
			    void (*fn)(void *arg, const struct qr_sized *row), void *arg, char **err)
{
	struct sized_cb c = { fn, arg };
	sqlite3_stmt *st = prep(db, "SELECT account, target, state, size, attempts FROM accounts "
				"WHERE state IN ('pending', 'exporting', 'exported', 'importing') "
				"AND size IS NOT NULL ORDER BY size DESC, seq LIMIT ?", err);
	if (st)
		sqlite3_bind_int(st, 1, limit);
	return each_row(db, st, "accounts", sized_row, &c, err);
}

struct problem_cb { void (*fn)(void *, const struct qr_problem *); void *arg; };

static void problem_row(sqlite3_stmt *st, void *ctx)
{
	struct problem_cb *c = ctx;
	struct qr_problem r = {
		.account = col_text(st, 0), .target = col_text(st, 1), .state = col_text(st, 2),
		.attempts = sqlite3_column_int64(st, 3), .error_class = col_text(st, 4),
		.error = col_text(st, 5), .verify = col_text(st, 6), .verify_detail = col_text(st, 7),
	};
	c->fn(c->arg, &r);
}

enum zmb_rc qr_problems(sqlite3 *db, int limit, long long *total,
			void (*fn)(void *arg, const struct qr_problem *row), void *arg, char **err)
{
	struct problem_cb c = { fn, arg };
	bool v = has_verify(db);
	const char *where = v ? "WHERE state = 'failed' OR verify IN ('mismatch', 'unverifiable')"
			      : "WHERE state = 'failed'";
	char *sql = xasprintf("SELECT count(*) FROM accounts %s", where);
	sqlite3_stmt *st = prep(db, sql, err);
	free(sql);
	enum zmb_rc rc = one_row(db, st, "accounts", err);
	*total = rc == ZMB_OK ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc == ZMB_ENOTFOUND) {
		set_dberr(db, err, "accounts");
		rc = ZMB_ESTATE;
	}
	if (rc)
		return rc;
	sql = xasprintf("SELECT account, target, state, attempts, error_class, last_error, %s FROM accounts "
			"%s ORDER BY state <> 'failed', account LIMIT ?",
			v ? "verify, verify_detail" : "NULL, NULL", where);
	st = prep(db, sql, err);
	free(sql);
	if (st)
		sqlite3_bind_int(st, 1, limit);
	return each_row(db, st, "accounts", problem_row, &c, err);
}

struct runs_cb { void (*fn)(void *, const struct qr_run *); void *arg; };

static void runs_row(sqlite3_stmt *st, void *ctx)
{
	struct runs_cb *c = ctx;
	struct qr_run r = {
		.present = true, .id = sqlite3_column_int64(st, 0), .started_at = col_time(st, 1),
		.ended_at = col_time(st, 2), .pid = sqlite3_column_int64(st, 3),
		.host = (char *)col_text(st, 4), .command = (char *)col_text(st, 5),
		.has_exit = sqlite3_column_type(st, 6) != SQLITE_NULL,
		.exit_status = sqlite3_column_int(st, 6),
		.token_refreshes = sqlite3_column_int64(st, 7), .retries = sqlite3_column_int64(st, 8),
		.bytes = sqlite3_column_int64(st, 9),
	};
	c->fn(c->arg, &r);
}

enum zmb_rc qr_runs(sqlite3 *db, int limit, void (*fn)(void *arg, const struct qr_run *row),
		    void *arg, char **err)
{
	struct runs_cb c = { fn, arg };
	sqlite3_stmt *st = prep_newest(db, "SELECT id, started_at, ended_at, pid, host, command, exit_status, "
				       "token_refreshes, retries, bytes FROM runs WHERE " RUNS_ONLY
				       " ORDER BY " NEWEST " LIMIT ?", "started_at", "id", err);
	if (st)
		sqlite3_bind_int(st, 1, limit);
	return each_row(db, st, "runs", runs_row, &c, err);
}
