/*
 * query_prov.c - the provision counts and failed objects for the reports
 * (query_prov.h).
 */
#include "query_prov.h"

#include <sqlite3.h>
#include <string.h>

const char *const qp_kind_names[QP_NKINDS] = { "account", "cos", "domain", "list", "resource" };
const char *const qp_outcome_names[QP_NOUTCOMES] = { "pending", "creating", "created", "updated",
						     "unchanged", "skipped", "failed" };

static int name_index(const char *const *names, int n, const char *s)
{
	for (int i = 0; s && i < n; i++)
		if (!strcmp(names[i], s))
			return i;
	return -1;
}

static bool has_table(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
			       " name = 'provision_objects'", -1, &st, NULL) == SQLITE_OK)
		yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

static enum zmb_rc read_fail(sqlite3 *db, const char *what, char **err)
{
	if (err && !*err)
		*err = xasprintf("cannot read state database (%s): %s", what, sqlite3_errmsg(db));
	return ZMB_ESTATE;
}

enum zmb_rc qr_prov_counts(sqlite3 *db, struct qr_prov *c, char **err)
{
	sqlite3_stmt *st = NULL;
	memset(c, 0, sizeof *c);
	if (!has_table(db))
		return ZMB_OK;
	c->present = true;
	/* the bucket: failed, pending and creating by state, a done object by its outcome */
	if (sqlite3_prepare_v2(db, "SELECT kind, CASE WHEN state = 'done' THEN coalesce(outcome, 'unchanged')"
			       " ELSE state END, count(*) FROM provision_objects GROUP BY 1, 2",
			       -1, &st, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return read_fail(db, "provision_objects", err);
	}
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		long long n = sqlite3_column_int64(st, 2);
		int k = name_index(qp_kind_names, QP_NKINDS, (const char *)sqlite3_column_text(st, 0));
		int o = name_index(qp_outcome_names, QP_NOUTCOMES, (const char *)sqlite3_column_text(st, 1));
		c->total += n;
		if (k < 0)
			continue;
		c->kind_total[k] += n;
		if (o >= 0)
			c->n[k][o] += n;
	}
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? ZMB_OK : read_fail(db, "provision_objects", err);
}

enum zmb_rc qr_prov_failed(sqlite3 *db, int limit,
			   void (*fn)(void *arg, const struct qr_prov_failed *row), void *arg,
			   char **err)
{
	sqlite3_stmt *st = NULL;
	if (!has_table(db))
		return ZMB_OK;
	if (sqlite3_prepare_v2(db, "SELECT stage, kind, name, target, attempts, last_error, updated_at"
			       " FROM provision_objects WHERE state = 'failed' ORDER BY stage, kind, name"
			       " LIMIT ?1", -1, &st, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return read_fail(db, "provision_objects", err);
	}
	sqlite3_bind_int(st, 1, limit);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		struct qr_prov_failed f = {
			.stage = (const char *)sqlite3_column_text(st, 0),
			.kind = (const char *)sqlite3_column_text(st, 1),
			.name = (const char *)sqlite3_column_text(st, 2),
			.target = (const char *)sqlite3_column_text(st, 3),
			.attempts = sqlite3_column_int64(st, 4),
			.error = (const char *)sqlite3_column_text(st, 5),
			.updated_at = sqlite3_column_type(st, 6) == SQLITE_NULL ? 0
				      : sqlite3_column_double(st, 6),
		};
		fn(arg, &f);
	}
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? ZMB_OK : read_fail(db, "provision_objects", err);
}
