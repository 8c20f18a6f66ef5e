/*
 * query_cutover.c - the cutover counts for the reports (query_cutover.h).
 */
#include "query_cutover.h"

#include <sqlite3.h>
#include <string.h>

enum zmb_rc qr_cutover(sqlite3 *db, struct qr_cutover *c, char **err)
{
	sqlite3_stmt *st = NULL;
	memset(c, 0, sizeof *c);
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
			       " name = 'cutover'", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return ZMB_OK;
	}
	sqlite3_finalize(st);
	st = NULL;
	int src = sqlite3_prepare_v2(db, "SELECT step, count(*), sum(error IS NOT NULL AND step NOT IN"
				     " ('done', 'rolled_back', 'failed', 'skipped')), max(batch) FROM cutover GROUP BY step",
				     -1, &st, NULL);
	while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
		int k = cut_step_parse((const char *)sqlite3_column_text(st, 0));
		if (k >= 0)
			c->steps[k] = sqlite3_column_int64(st, 1);
		c->errors += sqlite3_column_int64(st, 2);
		if (sqlite3_column_int64(st, 3) > c->batches)
			c->batches = sqlite3_column_int64(st, 3);
		c->present = true;
		src = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (src != SQLITE_DONE && src != SQLITE_OK) {
		*err = xasprintf("cannot read the cutover counts: %s", sqlite3_errstr(src));
		return ZMB_ESTATE;
	}
	return ZMB_OK;
}
