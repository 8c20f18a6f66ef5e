/*
 * state_chunks.c - the steps of a pass exported in pieces (schema 006,
 * state.h "chunks"): the plan, written once per pass, and each step marked
 * done in the transaction that counts its bytes.
 */
#include "state_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = { "tree", "calendar", "window" };

const char *chunk_kind_name(enum chunk_kind k)
{
	return (unsigned)k < sizeof kind_names / sizeof *kind_names ? kind_names[k] : "?";
}

static enum chunk_kind kind_parse(const char *s)
{
	for (size_t i = 0; s && i < sizeof kind_names / sizeof *kind_names; i++)
		if (!strcmp(s, kind_names[i]))
			return (enum chunk_kind)i;
	return CHUNK_WINDOW;
}

enum zmb_rc state_chunks_get(struct state *st, int64_t account_id, struct chunk_row **out,
			     size_t *n)
{
	enum zmb_rc rc = ZMB_OK;
	*out = NULL;
	*n = 0;
	sqlite3_stmt *s = st_prepare(st, "SELECT idx, kind, start_ms, end_ms, mark_ms, done, bytes, items,"
				     " warnings FROM chunks WHERE account_id = ?1 ORDER BY idx", &rc);
	if (!s)
		return rc;
	sqlite3_bind_int64(s, 1, account_id);
	size_t alloc = 0;
	int src;
	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			*out = xrealloc(*out, alloc * sizeof **out);
		}
		struct chunk_row *c = &(*out)[(*n)++];
		c->idx = sqlite3_column_int(s, 0);
		c->kind = kind_parse((const char *)sqlite3_column_text(s, 1));
		c->start_ms = sqlite3_column_int64(s, 2);
		c->end_ms = sqlite3_column_int64(s, 3);
		c->mark_ms = sqlite3_column_int64(s, 4);
		c->done = sqlite3_column_int(s, 5) != 0;
		c->bytes = sqlite3_column_int64(s, 6);
		c->items = sqlite3_column_int64(s, 7);
		c->warnings = sqlite3_column_int64(s, 8);
	}
	if (src != SQLITE_DONE) {
		rc = st_db_fail(st, src, "read chunks");
		free(*out);
		*out = NULL;
		*n = 0;
	}
	sqlite3_finalize(s);
	return rc;
}

enum zmb_rc state_chunks_plan(struct state *st, int64_t run_id, int64_t account_id,
			      const struct chunk_row *v, size_t n, const char *event)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	sqlite3_stmt *s = st_prepare(st, "DELETE FROM chunks WHERE account_id = ?1", &rc);
	if (s) {
		sqlite3_bind_int64(s, 1, account_id);
		int src = sqlite3_step(s);
		if (src != SQLITE_DONE)
			rc = st_db_fail(st, src, "clear chunks");
		sqlite3_finalize(s);
	}
	s = rc ? NULL : st_prepare(st, "INSERT INTO chunks (account_id, idx, kind, start_ms, end_ms,"
				   " mark_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &rc);
	for (size_t i = 0; s && !rc && i < n; i++) {
		sqlite3_bind_int64(s, 1, account_id);
		sqlite3_bind_int(s, 2, (int)i);
		st_bind_text(s, 3, chunk_kind_name(v[i].kind));
		if (v[i].kind == CHUNK_WINDOW)
			sqlite3_bind_int64(s, 4, v[i].start_ms);
		else
			sqlite3_bind_null(s, 4);
		if (v[i].kind == CHUNK_WINDOW && v[i].end_ms > 0)
			sqlite3_bind_int64(s, 5, v[i].end_ms);
		else
			sqlite3_bind_null(s, 5);
		sqlite3_bind_int64(s, 6, v[i].mark_ms);
		int src = sqlite3_step(s);
		if (src != SQLITE_DONE)
			rc = st_db_fail(st, src, "plan chunks");
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	if (!rc && (s = st_prepare(st, "UPDATE accounts SET chunks_total = ?2, chunks_done = 0,"
				   " chunk_bytes = 0, updated_at = ?3 WHERE id = ?1", &rc))) {
		sqlite3_bind_int64(s, 1, account_id);
		sqlite3_bind_int64(s, 2, (long long)n);
		sqlite3_bind_double(s, 3, wall_now());
		rc = st_update_one(st, s, "plan chunks");
		sqlite3_finalize(s);
	}
	if (!rc && event)
		rc = st_event_insert(st, run_id, account_id, NULL, "info", event);
	return tx_end(st, own, rc, "chunks planned");
}

enum zmb_rc state_chunk_done(struct state *st, int64_t run_id, int64_t account_id, int idx,
			     long long bytes, long long items, long long warnings, const char *event)
{
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	double now = wall_now();
	sqlite3_stmt *s = st_prepare(st, "UPDATE chunks SET done = 1, bytes = ?3, items = ?4,"
				     " warnings = ?5, done_at = ?6 WHERE account_id = ?1 AND idx = ?2"
				     " AND done = 0", &rc);
	if (s) {
		sqlite3_bind_int64(s, 1, account_id);
		sqlite3_bind_int(s, 2, idx);
		sqlite3_bind_int64(s, 3, bytes);
		sqlite3_bind_int64(s, 4, items);
		sqlite3_bind_int64(s, 5, warnings);
		sqlite3_bind_double(s, 6, now);
		rc = st_update_one(st, s, "chunk done");
		sqlite3_finalize(s);
	}
	if (!rc && (s = st_prepare(st, "UPDATE accounts SET chunks_done = chunks_done + 1,"
				   " chunk_bytes = chunk_bytes + ?2, updated_at = ?3 WHERE id = ?1", &rc))) {
		sqlite3_bind_int64(s, 1, account_id);
		sqlite3_bind_int64(s, 2, bytes);
		sqlite3_bind_double(s, 3, now);
		rc = st_update_one(st, s, "chunk done");
		sqlite3_finalize(s);
	}
	if (!rc && event)
		rc = st_event_insert(st, run_id, account_id, NULL, "info", event);
	return tx_end(st, own, rc, "chunk done");
}
