/*
 * state_recover.c - crash recovery, run once by `run` before any worker
 * starts (see state_recover() in state.h): every account a dead run left
 * in flight returns to its last durable state, stages left running return
 * to pending, all in one transaction; partial spool files are removed only
 * after its COMMIT.
 */
#include "state_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Where one in-flight account goes back to: an import whose complete archive
 * is still on disk -> exported (*keep = its spool path); anything else ->
 * pending.  *lost: a spooled import whose archive is gone (its export's mark
 * is void).  The partial archive of an export is added to *partial.
 */
static const char *recover_target(const char *state, const char *spool, bool verify_pending,
				  const char **keep, bool *lost, struct strlist *partial)
{
	struct stat sb;
	bool spooled = spool && spool[0];

	*keep = NULL;
	*lost = false;
	/* imported, not verified: exported again, to be claimed for its verification only */
	if ((strcmp(state, "importing") == 0 || strcmp(state, "exporting") == 0) && verify_pending) {
		*keep = spooled && stat(spool, &sb) == 0 ? spool : NULL;
		return "exported";
	}
	if (strcmp(state, "importing") == 0 && spooled &&
	    stat(spool, &sb) == 0 && S_ISREG(sb.st_mode)) {
		*keep = spool;            /* complete archive still on disk */
		return "exported";
	}
	if (strcmp(state, "importing") == 0 && spooled)
		*lost = true;             /* spool import whose archive is gone */
	else if (strcmp(state, "exporting") == 0 && spooled)
		strlist_add(partial, spool);
	return "pending";
}

/* Move one in-flight account (row of `sel`) back with `upd`, with an event. */
static enum zmb_rc recover_account(struct state *st, sqlite3_stmt *sel, sqlite3_stmt *upd,
				   struct strlist *partial)
{
	int64_t id = sqlite3_column_int64(sel, 0);
	const char *state = (const char *)sqlite3_column_text(sel, 1);
	const char *spool = (const char *)sqlite3_column_text(sel, 2);
	const char *keep;
	bool lost;
	bool verify_pending = sqlite3_column_int(sel, 3) != 0;
	const char *to = recover_target(state, spool, verify_pending, &keep, &lost, partial);
	enum zmb_rc rc;

	char *msg = xasprintf("recovered after an interrupted run: %s -> %s", state, to);
	sqlite3_bind_int64(upd, 1, id);
	st_bind_text(upd, 2, to);
	st_bind_text(upd, 3, keep);
	sqlite3_bind_double(upd, 4, wall_now());
	sqlite3_bind_int(upd, 5, lost);
	int usrc = sqlite3_step(upd);
	sqlite3_reset(upd);
	if (usrc != SQLITE_DONE)
		rc = st_db_fail(st, usrc, "recover account");
	else
		rc = st_event_insert(st, 0, id, NULL, "warn", msg);
	free(msg);
	return rc;
}

/* Every account left exporting/importing; *count += rows repaired. */
static enum zmb_rc recover_accounts(struct state *st, struct strlist *partial, int *count)
{
	sqlite3_stmt *sel = NULL, *upd = NULL;
	enum zmb_rc rc;
	int src;

	sel = st_prepare(st, "SELECT id, state, spool_path, verify_pending FROM accounts"
			 " WHERE state IN ('exporting', 'importing')", &rc);
	if (!sel)
		goto out;
	/* ?5: the archive of an import is gone: its export's mark is void (export all again) */
	upd = st_prepare(st, "UPDATE accounts SET state = ?2, spool_path = ?3, owner_run = NULL,"
			 " updated_at = ?4, sync_mark = CASE WHEN ?5 THEN 0 ELSE sync_mark END"
			 " WHERE id = ?1", &rc);
	if (!upd)
		goto out;
	while ((src = sqlite3_step(sel)) == SQLITE_ROW) {
		if ((rc = recover_account(st, sel, upd, partial)) != ZMB_OK)
			goto out;
		(*count)++;
	}
	if (src != SQLITE_DONE)
		rc = st_db_fail(st, src, "find interrupted accounts");
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	return rc;
}

/* Stages left running -> pending; *count += rows changed. */
static enum zmb_rc recover_stages(struct state *st, int *count)
{
	int src = sqlite3_exec(st->db, "UPDATE stages SET state = 'pending' WHERE state = 'running'",
			       NULL, NULL, NULL);
	if (src != SQLITE_OK)
		return st_db_fail(st, src, "recover stages");
	*count += sqlite3_changes(st->db);
	return ZMB_OK;
}

/* After the COMMIT: a crash in between only leaves a stray file. */
static void remove_partials(struct state *st, const struct strlist *partial)
{
	for (size_t i = 0; i < partial->n; i++)
		if (unlink(partial->v[i]) < 0 && errno != ENOENT)
			st_set_err(st, xasprintf("cannot remove partial spool file %s: %s",
						 partial->v[i], strerror(errno)));
}

enum zmb_rc state_recover(struct state *st, int *n)
{
	struct strlist partial = STRLIST_INIT;
	bool own;
	int count = 0;
	enum zmb_rc rc;

	if (n)
		*n = 0;
	if ((rc = tx_begin(st, &own)) != ZMB_OK)
		return rc;
	rc = recover_accounts(st, &partial, &count);
	if (rc == ZMB_OK)
		rc = recover_stages(st, &count);
	rc = tx_end(st, own, rc, "recover");
	if (rc == ZMB_OK) {
		remove_partials(st, &partial);
		if (n)
			*n = count;
	}
	strlist_release(&partial);
	return rc;
}
