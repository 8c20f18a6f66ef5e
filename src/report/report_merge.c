/*
 * report_merge.c - what the text report and the `status` screen add for a
 * merged DB (report --merge, status --merge; state.h state_merge_open):
 * the table of its source DBs with their counts, and an ERROR line for
 * each account found in two of them (report_int.h: text_merge).
 */
#include "report_int.h"

#include <stdlib.h>
#include <string.h>

struct merge_text {
	FILE *out;
	long long n, accounts, bytes;
	long long counts[ACCT_NSTATES];
};

static void src_line(FILE *out, const char *label, const char *shard, long long accounts,
		     const long long *counts, long long bytes)
{
	fprintf(out, "  %-44s %-9s %8lld", label, shard, accounts);
	for (int i = 0; i < ACCT_NSTATES; i++)
		fprintf(out, " %9lld", counts[i]);
	fprintf(out, " %14lld\n", bytes);
}

static void src_row(void *arg, const struct qr_merge_src *r)
{
	struct merge_text *m = arg;
	if (m->out) {   /* NULL: the first pass, totals only */
		char *path = fmt_flat(r->path), *shard = fmt_flat(r->shard ? r->shard : "-");
		src_line(m->out, path, shard, r->accounts, r->counts, r->bytes_moved);
		free(path);
		free(shard);
	}
	m->n++;
	m->accounts += r->accounts;
	m->bytes += r->bytes_moved;
	for (int i = 0; i < ACCT_NSTATES; i++)
		m->counts[i] += r->counts[i];
}

static void dup_row(void *arg, const struct qr_merge_dup *r)
{
	char *a = fmt_flat(r->account), *d = fmt_flat(r->db), *e = fmt_flat(r->also_in);
	fprintf((FILE *)arg, "ERROR: account %s is in two state DBs: %s and %s\n", a, d, e);
	free(a);
	free(d);
	free(e);
}

static void untaken_row(void *arg, const struct qr_merge_untaken *r)
{
	char *a = fmt_flat(r->account), *sh = fmt_flat(r->shard), *h = fmt_flat(r->home ? r->home : "none");
	char *l = fmt_flat(r->listed_by), ts[32];
	iso8601_utc(r->seen_at, ts);
	fprintf((FILE *)arg, "ERROR: account %s is in no state DB: its home %s deals it to shard %s "
		"(listed by %s at %s); run shard %s again\n", a, h, sh, l, ts, sh);
	free(a);
	free(sh);
	free(h);
	free(l);
}

enum zmb_rc text_merge(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	struct merge_text m;
	enum zmb_rc rc;
	if (!s->merged)
		return ZMB_OK;
	memset(&m, 0, sizeof m);
	m.out = out;
	/* the header first needs the totals: a second pass is cheaper than buffering */
	struct merge_text count;
	memset(&count, 0, sizeof count);
	if ((rc = qr_merge_sources(db, src_row, &count, err)))
		return rc;
	fprintf(out, "merged: %lld state DB(s), %lld account(s)\n", count.n, count.accounts);
	fprintf(out, "  %-44s %-9s %8s", "DB", "shard", "accounts");
	for (int i = 0; i < ACCT_NSTATES; i++)
		fprintf(out, " %9s", acct_state_name((enum acct_state)i));
	fprintf(out, " %14s\n", "bytes moved");
	if ((rc = qr_merge_sources(db, src_row, &m, err)))
		return rc;
	src_line(out, "total", "", m.accounts, m.counts, m.bytes);
	if ((rc = qr_merge_dups(db, dup_row, out, err)))
		return rc;
	if (s->merge_dups)
		fprintf(out, "ERROR: %lld account(s) in more than one state DB: each is reported from "
			"the first DB named, and the table above counts it once per DB\n", s->merge_dups);
	if ((rc = qr_merge_untaken(db, untaken_row, out, err)))
		return rc;
	if (s->merge_untaken)
		fprintf(out, "ERROR: %lld account(s) listed by a shard are in no state DB: nothing has "
			"migrated them; run the shard named again\n", s->merge_untaken);
	return ZMB_OK;
}
