/*
 * query_migrate.c - named queries of the migrate stage (query_migrate.h).
 */
#include "query_migrate.h"

#include <sqlite3.h>

bool state_mig_spool_waits(struct state *st, const char *path)
{
	sqlite3_stmt *q = NULL;
	bool keep = false;
	if (sqlite3_prepare_v2(state_db(st),
			       "SELECT 1 FROM accounts WHERE spool_path = ?1 AND state = 'exported'",
			       -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
		keep = sqlite3_step(q) == SQLITE_ROW;
	}
	sqlite3_finalize(q);
	return keep;
}

enum zmb_rc state_mig_target_domains(struct state *st, int min_accounts, struct strlist *out)
{
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(state_db(st),
			       "SELECT lower(substr(target, instr(target, '@') + 1)) AS d FROM accounts"
			       " WHERE attempts = 0 AND instr(target, '@') > 0"
			       " AND state IN ('pending', 'exporting', 'exported', 'importing')"
			       " GROUP BY d HAVING count(*) >= ?1 ORDER BY d", -1, &q, NULL) != SQLITE_OK) {
		sqlite3_finalize(q);
		return ZMB_EINTERNAL;
	}
	sqlite3_bind_int(q, 1, min_accounts);
	while (sqlite3_step(q) == SQLITE_ROW)
		strlist_add(out, (const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	return ZMB_OK;
}

enum zmb_rc state_mig_bytes_left(struct state *st, long long *bytes)
{
	sqlite3_stmt *q = NULL;
	enum zmb_rc rc = ZMB_EINTERNAL;
	*bytes = 0;
	if (sqlite3_prepare_v2(state_db(st), "SELECT coalesce(sum(size), 0) FROM accounts"
			       " WHERE size > 0 AND state IN ('pending','exporting','exported','importing')",
			       -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
		*bytes = sqlite3_column_int64(q, 0);
		rc = ZMB_OK;
	}
	sqlite3_finalize(q);
	return rc;
}
