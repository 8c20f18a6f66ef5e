/*
 * report_csv.c - `report --format csv`: RFC 4180, CRLF line ends, one row
 * per account in listing order (header and quoting rules: report.h).
 */
#include "report_int.h"

#include <string.h>

static void csv_field(FILE *out, const char *s)
{
	if (!s)
		return;
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

static void csv_row(void *arg, const struct qr_account *r)
{
	FILE *out = arg;
	csv_field(out, r->account);
	fputc(',', out);
	csv_field(out, r->target);
	fputc(',', out);
	csv_field(out, r->state);
	fprintf(out, ",%lld,%lld,", r->attempts, r->bytes);
	if (r->has_seconds)
		fprintf(out, "%.3f", r->seconds);
	fputc(',', out);
	csv_field(out, r->error);
	/* appended (schema 5): earlier columns keep their places; empty when unknown */
	fputc(',', out);
	csv_field(out, r->source_host);
	fputc(',', out);
	csv_field(out, r->target_host);
	/* appended (schema 6): steps done / steps of the last pass (0,0 = one export) */
	fprintf(out, ",%lld,%lld", r->chunks_done, r->chunks_total);
	/* appended (schema 7): true = verified ok, false = mismatch/unverifiable, empty = never */
	fprintf(out, ",%s", !r->verify ? "" : !strcmp(r->verify, "ok") ? "true" : "false");
	fputs("\r\n", out);
}

enum zmb_rc report_csv(sqlite3 *db, FILE *out, char **err)
{
	fputs("account,target,state,attempts,bytes,seconds,error,source_host,target_host,"
	      "chunks_done,chunks_total,verified\r\n", out);
	enum zmb_rc rc = qr_accounts(db, -1, csv_row, out, err);
	if (rc == ZMB_OK && fmt_write_failed(out, err))
		rc = ZMB_EIO;
	return rc;
}
