/*
 * state_runs.c - the log of a job in the state database: events, runs,
 * per-server authentication counters and stages (see state.h).
 * Every write is one transaction (tx_begin/tx_end, a crash point after the
 * COMMIT) or joins the caller's state_begin().
 */
#include "state_int.h"

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- events ---- */

/* Insert one event row with the cached statement (inside a transaction). */
enum zmb_rc st_event_insert(struct state *st, int64_t run_id, int64_t account_id,
			    const char *stage, const char *level, const char *msg)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_stmt_get(st, S_EVENT, &rc);
	if (!s)
		return rc;
	sqlite3_bind_double(s, 1, wall_now());
	st_bind_id(s, 2, run_id);
	st_bind_id(s, 3, account_id);
	st_bind_text(s, 4, stage);
	st_bind_text(s, 5, level ? level : "info");
	st_bind_text(s, 6, msg ? msg : "");
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE)
		rc = st_db_fail(st, src, "insert event");
	st_stmt_done(s);
	return rc;
}

enum zmb_rc state_event(struct state *st, int64_t run_id, int64_t account_id,
			const char *stage, const char *level, const char *msg)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	rc = st_event_insert(st, run_id, account_id, stage, level, msg);
	return tx_end(st, own, rc, "event");
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
		st_bind_text(s, 3, host);
		st_bind_text(s, 4, user);
		st_bind_text(s, 5, command ? command : "");
		src = sqlite3_step(s);
	}
	if (src == SQLITE_DONE)
		*run_id = sqlite3_last_insert_rowid(st->db);
	else
		rc = st_db_fail(st, src, "record run start");
	sqlite3_finalize(s);
	return tx_end(st, own, rc, "run begin");
}


enum zmb_rc state_run_end(struct state *st, int64_t run_id, int exit_status)
{
	sqlite3_stmt *s = NULL;
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	s = st_prepare(st, "UPDATE runs SET ended_at = ?2, exit_status = ?3 WHERE id = ?1", &rc);
	if (s) {
		sqlite3_bind_int64(s, 1, run_id);
		sqlite3_bind_double(s, 2, wall_now());
		sqlite3_bind_int(s, 3, exit_status);
		rc = st_update_one(st, s, "record run end");
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
	s = st_prepare(st, "UPDATE runs SET token_refreshes = token_refreshes + ?2,"
		       " retries = retries + ?3, bytes = bytes + ?4 WHERE id = ?1", &rc);
	if (s) {
		sqlite3_bind_int64(s, 1, run_id);
		sqlite3_bind_int64(s, 2, refreshes);
		sqlite3_bind_int64(s, 3, retries);
		sqlite3_bind_int64(s, 4, bytes);
		rc = st_update_one(st, s, "count run totals");
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
	s = st_prepare(st,
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
		st_bind_text(s, 1, role);
		st_bind_text(s, 2, host ? host : "");
		sqlite3_bind_int64(s, 3, auth_requests);
		sqlite3_bind_int64(s, 4, token_refreshes);
		sqlite3_bind_int64(s, 5, auth_failures);
		sqlite3_bind_double(s, 6, wall_now());
		rc = st_update_one(st, s, "count server authentications");
	}
	sqlite3_finalize(s);
	return tx_end(st, own, rc, "server count");
}

enum zmb_rc state_server_pace(struct state *st, const char *role, const char *host,
			      long long requests, long long throttled, double wait_seconds,
			      double rate_limit, int concurrency_limit)
{
	sqlite3_stmt *s = NULL;
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	s = st_prepare(st,
		"INSERT INTO servers (role, host, requests, throttled, throttle_wait_seconds,"
		" rate_limit, concurrency_limit, updated_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
		" ON CONFLICT (role) DO UPDATE SET host = excluded.host,"
		" requests = requests + excluded.requests,"
		" throttled = throttled + excluded.throttled,"
		" throttle_wait_seconds = throttle_wait_seconds + excluded.throttle_wait_seconds,"
		" rate_limit = excluded.rate_limit,"
		" concurrency_limit = excluded.concurrency_limit,"
		" updated_at = excluded.updated_at", &rc);
	if (s) {
		st_bind_text(s, 1, role);
		st_bind_text(s, 2, host ? host : "");
		sqlite3_bind_int64(s, 3, requests);
		sqlite3_bind_int64(s, 4, throttled);
		sqlite3_bind_double(s, 5, wait_seconds);
		sqlite3_bind_double(s, 6, rate_limit);
		sqlite3_bind_int(s, 7, concurrency_limit);
		sqlite3_bind_double(s, 8, wall_now());
		rc = st_update_one(st, s, "record server pace");
	}
	sqlite3_finalize(s);
	return tx_end(st, own, rc, "server pace");
}

/* ---- stages ---- */

enum zmb_rc state_stage_ensure(struct state *st, const char *name, const char *type, int position)
{
	sqlite3_stmt *s = NULL;
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	s = st_prepare(st, "INSERT INTO stages (name, type, position) VALUES (?1, ?2, ?3)"
		       " ON CONFLICT (name) DO UPDATE SET type = excluded.type,"
		       " position = excluded.position", &rc);
	if (s) {
		st_bind_text(s, 1, name);
		st_bind_text(s, 2, type);
		sqlite3_bind_int(s, 3, position);
		rc = st_update_one(st, s, "record stage");
	}
	sqlite3_finalize(s);
	return tx_end(st, own, rc, "stage ensure");
}

enum zmb_rc state_stage_get(struct state *st, const char *name, struct stage_row *row)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_prepare(st, "SELECT name, type, position, state, attempts, started_at,"
				     " ended_at, output, error FROM stages WHERE name = ?1", &rc);
	memset(row, 0, sizeof *row);
	if (!s)
		return rc;
	st_bind_text(s, 1, name);
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		row->name = st_col_text(s, 0);
		row->type = st_col_text(s, 1);
		row->position = sqlite3_column_int(s, 2);
		int ps = stage_state_parse((const char *)sqlite3_column_text(s, 3));
		row->state = ps < 0 ? STAGE_PENDING : (enum stage_state)ps;
		row->attempts = sqlite3_column_int(s, 4);
		row->started_at = st_col_double0(s, 5);
		row->ended_at = st_col_double0(s, 6);
		row->output = st_col_text(s, 7);
		row->error = st_col_text(s, 8);
	} else if (src == SQLITE_DONE) {
		st_set_err(st, xasprintf("%s: no stage '%s'", st->path, name));
		rc = ZMB_ENOTFOUND;
	} else {
		rc = st_db_fail(st, src, "read stage");
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
	s = st_prepare(st, sql, &rc);
	if (s) {
		st_bind_text(s, 1, name);
		sqlite3_bind_double(s, 2, wall_now());
		st_bind_id(s, 3, run_id);
		st_bind_text(s, 4, a);
		st_bind_text(s, 5, b);
		rc = st_update_one(st, s, what);
		if (rc == ZMB_ENOTFOUND)
			st_set_err(st, xasprintf("%s: %s: no stage '%s'", st->path, what, name));
	}
	sqlite3_finalize(s);
	if (rc == ZMB_OK)
		rc = st_event_insert(st, run_id, 0, name, level, msg);
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

