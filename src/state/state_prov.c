/*
 * state_prov.c - the provision stage's objects (contract in state_prov.h).
 */
#include "state_int.h"
#include "state_prov.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

void state_prov_release(struct prov_row *r)
{
	if (!r)
		return;
	free(r->kind);
	free(r->name);
	free(r->target);
	free(r->state);
	free(r->outcome);
	free(r->last_error);
	free(r->target_id);
	memset(r, 0, sizeof *r);
}

enum zmb_rc state_prov_plan(struct state *st, const char *stage, const char *kind,
			    const char *name, const char *target)
{
	enum zmb_rc rc = ZMB_OK;
	sqlite3_stmt *s = st_prepare(st,
		"INSERT INTO provision_objects (stage, kind, name, target, updated_at) "
		"VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (stage, kind, name) DO UPDATE SET "
		"target = excluded.target WHERE state <> 'done' AND state <> 'creating'", &rc);
	if (!s)
		return rc;
	st_bind_text(s, 1, stage);
	st_bind_text(s, 2, kind);
	st_bind_text(s, 3, name);
	st_bind_text(s, 4, target);
	sqlite3_bind_double(s, 5, wall_now());
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE)
		rc = st_db_fail(st, src, "plan provision object");
	sqlite3_finalize(s);
	return rc;
}

enum zmb_rc state_prov_get(struct state *st, const char *stage, const char *kind,
			   const char *name, struct prov_row *out)
{
	enum zmb_rc rc = ZMB_OK;
	memset(out, 0, sizeof *out);
	sqlite3_stmt *s = st_prepare(st,
		"SELECT id, kind, name, target, state, outcome, ours, attempts, last_error, target_id "
		"FROM provision_objects WHERE stage = ?1 AND kind = ?2 AND name = ?3", &rc);
	if (!s)
		return rc;
	st_bind_text(s, 1, stage);
	st_bind_text(s, 2, kind);
	st_bind_text(s, 3, name);
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		out->id = sqlite3_column_int64(s, 0);
		out->kind = st_col_text(s, 1);
		out->name = st_col_text(s, 2);
		out->target = st_col_text(s, 3);
		out->state = st_col_text(s, 4);
		out->outcome = st_col_text(s, 5);
		out->ours = sqlite3_column_int(s, 6) != 0;
		out->attempts = sqlite3_column_int(s, 7);
		out->last_error = st_col_text(s, 8);
		out->target_id = st_col_text(s, 9);
	} else if (src == SQLITE_DONE) {
		st_set_err(st, xasprintf("no provision object %s '%s'", kind, name));
		rc = ZMB_ENOTFOUND;
	} else {
		rc = st_db_fail(st, src, "read provision object");
	}
	sqlite3_finalize(s);
	return rc;
}

static enum zmb_rc event_insert(struct state *st, int64_t run_id, int64_t id, const char *level,
				const char *msg)
{
	enum zmb_rc rc = ZMB_OK;
	if (!msg)
		return ZMB_OK;
	sqlite3_stmt *s = st_prepare(st,
		"INSERT INTO provision_events (at, run_id, object_id, level, message) "
		"VALUES (?1, ?2, ?3, ?4, ?5)", &rc);
	if (!s)
		return rc;
	sqlite3_bind_double(s, 1, wall_now());
	st_bind_id(s, 2, run_id);
	sqlite3_bind_int64(s, 3, id);
	st_bind_text(s, 4, level ? level : "info");
	st_bind_text(s, 5, msg);
	int src = sqlite3_step(s);
	if (src != SQLITE_DONE)
		rc = st_db_fail(st, src, "record provision event");
	sqlite3_finalize(s);
	return rc;
}

/* One UPDATE of the row + its event, in one transaction (a crashpoint). */
static enum zmb_rc set_row(struct state *st, int64_t run_id, int64_t id, const char *sql,
			   const char *text, const char *level, const char *event, const char *what)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	sqlite3_stmt *s = st_prepare(st, sql, &rc);
	if (s) {
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_double(s, 2, wall_now());
		st_bind_text(s, 3, text);
		rc = st_update_one(st, s, what);
		sqlite3_finalize(s);
	}
	if (rc == ZMB_OK)
		rc = event_insert(st, run_id, id, level, event);
	return tx_end(st, own, rc, what);
}

enum zmb_rc state_prov_creating(struct state *st, int64_t run_id, int64_t id, const char *event)
{
	return set_row(st, run_id, id,
		       "UPDATE provision_objects SET state = 'creating', ours = 1, updated_at = ?2, "
		       "last_error = coalesce(?3, last_error) WHERE id = ?1",
		       NULL, "info", event, "provision object creating");
}

enum zmb_rc state_prov_target_id(struct state *st, int64_t run_id, int64_t id,
				 const char *target_id, const char *event)
{
	return set_row(st, run_id, id,
		       "UPDATE provision_objects SET target_id = ?3, updated_at = ?2 WHERE id = ?1",
		       target_id, "warning", event, "provision object target id");
}

enum zmb_rc state_prov_done(struct state *st, int64_t run_id, int64_t id, const char *outcome,
			    const char *event)
{
	return set_row(st, run_id, id,
		       "UPDATE provision_objects SET state = 'done', outcome = ?3, last_error = NULL, "
		       "updated_at = ?2 WHERE id = ?1",
		       outcome, "info", event, "provision object done");
}

enum zmb_rc state_prov_failed(struct state *st, int64_t run_id, int64_t id, const char *error)
{
	/* a failed create keeps 'creating' out of the way: ours stays as it was */
	return set_row(st, run_id, id,
		       "UPDATE provision_objects SET state = 'failed', attempts = attempts + 1, "
		       "last_error = ?3, updated_at = ?2 WHERE id = ?1",
		       error, "error", error, "provision object failed");
}

enum zmb_rc state_prov_event(struct state *st, int64_t run_id, int64_t id, const char *level,
			     const char *msg)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	rc = event_insert(st, run_id, id, level, msg);
	return tx_end(st, own, rc, "provision event");
}
