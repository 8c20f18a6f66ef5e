/*
 * report_list.c - `accounts` (one tab-separated line per account) and
 * `accounts --history ACCOUNT` (its events in order); formats: report.h.
 */
#include "report_int.h"

#include <stdlib.h>

static void list_account(void *arg, const struct qr_account *r)
{
	FILE *out = arg;
	/* fmt_flat() turns tabs and other control characters into spaces */
	char *a = fmt_flat(r->account), *t = fmt_flat(r->target), *e = fmt_flat(r->error);
	/* the mail hosts come last (added in schema 5): earlier columns keep their places */
	if (r->source_host || r->target_host) {
		char *sh = fmt_flat(r->source_host), *th = fmt_flat(r->target_host);
		fprintf(out, "%s\t%s\t%s\t%d\t%lld\t%s\t%s\t%s\n", a, t, r->state, (int)r->attempts,
			r->bytes, e, sh, th);
		free(sh);
		free(th);
	} else {
		fprintf(out, "%s\t%s\t%s\t%d\t%lld\t%s\n", a, t, r->state, (int)r->attempts, r->bytes, e);
	}
	free(a);
	free(t);
	free(e);
}

enum zmb_rc report_accounts(sqlite3 *db, int state, FILE *out, char **err)
{
	enum zmb_rc rc = qr_accounts(db, state, list_account, out, err);
	if (rc == ZMB_OK && fmt_write_failed(out, err))
		rc = ZMB_EIO;
	return rc;
}

static void list_event(void *arg, const struct qr_event *r)
{
	FILE *out = arg;
	char t[32];
	char *m = fmt_flat(r->message), *stage = fmt_flat(r->who);
	fmt_time(r->at, t);
	if (!r->has_run)
		fprintf(out, "%s run -", t);
	else
		fprintf(out, "%s run %lld", t, r->run_id);
	fprintf(out, " %-5s %s%s%s\n", r->level, *stage ? stage : "", *stage ? ": " : "", m);
	free(m);
	free(stage);
}

enum zmb_rc report_history(sqlite3 *db, const char *account, FILE *out, char **err)
{
	enum zmb_rc rc = qr_account_history(db, account, list_event, out, err);
	if (rc == ZMB_OK && fmt_write_failed(out, err))
		rc = ZMB_EIO;
	return rc;
}
