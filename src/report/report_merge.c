/*
 * report_merge.c - `report --merge DB...` / `status --merge DB...`: several
 * shard DBs read together (read-only), one summary whose counts add up; an
 * account found in two DBs is an error named in the output (report.h).
 */
#include "report.h"
#include "state.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct mrow {
	char *account;
	size_t db;
	int state;
	long long size, bytes;
};

struct mcollect {
	struct mrow *v;
	size_t n, cap, db;
};

static void collect(void *ctx, const char *account, int state, long long size, long long bytes)
{
	struct mcollect *c = ctx;
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 256;
		c->v = xrealloc(c->v, c->cap * sizeof *c->v);
	}
	c->v[c->n++] = (struct mrow){ xstrdup(account ? account : ""), c->db, state, size, bytes };
}

static int cmp_row(const void *a, const void *b)
{
	const struct mrow *x = a, *y = b;
	int c = strcmp(x->account, y->account);
	return c ? c : (x->db < y->db ? -1 : x->db > y->db);
}

struct msum {
	long long counts[ACCT_NSTATES];
	long long accounts, size, bytes;
};

static void add_row(struct msum *s, const struct mrow *r)
{
	if (r->state >= 0 && r->state < ACCT_NSTATES)
		s->counts[r->state]++;
	s->accounts++;
	if (r->size > 0)
		s->size += r->size;
	s->bytes += r->bytes;
}

static json_t *sum_json(const struct msum *s)
{
	json_t *c = json_object();
	for (int i = 0; i < ACCT_NSTATES; i++)
		json_object_set_new(c, acct_state_name((enum acct_state)i), json_integer(s->counts[i]));
	return json_pack("{s:I, s:o, s:I, s:I}", "accounts", (json_int_t)s->accounts, "counts", c,
			 "planned_bytes", (json_int_t)s->size, "bytes_moved", (json_int_t)s->bytes);
}

static void sum_text(FILE *out, const char *label, const char *shard, const struct msum *s)
{
	fprintf(out, "  %-44s %-9s %8lld", label, shard, s->accounts);
	for (int i = 0; i < ACCT_NSTATES; i++)
		fprintf(out, " %9lld", s->counts[i]);
	fprintf(out, " %14lld\n", s->bytes);
}

enum zmb_rc report_merge(struct merge_db *dbs, size_t n, bool json, FILE *out, int *duplicates,
			 char **err)
{
	struct mcollect c = { NULL, 0, 0, 0 };
	struct msum *per = xcalloc(n + 1, sizeof *per), *total = &per[n];
	enum zmb_rc rc = ZMB_OK;
	*duplicates = 0;
	for (size_t i = 0; i < n && rc == ZMB_OK; i++) {
		c.db = i;
		if ((rc = state_accounts_each(dbs[i].st, collect, &c)))
			*err = xasprintf("%s: %s", dbs[i].path, state_errmsg(dbs[i].st));
	}
	if (rc)
		goto out;
	qsort(c.v, c.n, sizeof *c.v, cmp_row);
	json_t *dups = json_array();
	for (size_t i = 0; i < c.n; i++) {
		add_row(&per[c.v[i].db], &c.v[i]);
		add_row(total, &c.v[i]);
		if (i > 0 && !strcmp(c.v[i].account, c.v[i - 1].account)) {
			(*duplicates)++;
			json_array_append_new(dups, json_pack("{s:s, s:s, s:s}", "account", c.v[i].account,
							      "db", dbs[c.v[i - 1].db].path, "also_in",
							      dbs[c.v[i].db].path));
		}
	}
	if (json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++) {
			json_t *o = sum_json(&per[i]);
			json_object_set_new(o, "path", json_string(dbs[i].path));
			json_object_set_new(o, "shard", dbs[i].shard[0] ? json_string(dbs[i].shard) : json_null());
			json_array_append_new(arr, o);
		}
		json_t *doc = json_pack("{s:o, s:o, s:o, s:b}", "dbs", arr, "total", sum_json(total),
					"duplicates", dups, "ok", *duplicates == 0);
		json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', out);
		json_decref(doc);
	} else {
		fprintf(out, "merged: %zu state DB(s), %lld account(s)\n", n, total->accounts);
		fprintf(out, "  %-44s %-9s %8s", "DB", "shard", "accounts");
		for (int i = 0; i < ACCT_NSTATES; i++)
			fprintf(out, " %9s", acct_state_name((enum acct_state)i));
		fprintf(out, " %14s\n", "bytes moved");
		for (size_t i = 0; i < n; i++)
			sum_text(out, dbs[i].path, dbs[i].shard[0] ? dbs[i].shard : "-", &per[i]);
		sum_text(out, "total", "", total);
		for (size_t k = 0; k < json_array_size(dups); k++) {
			const json_t *d = json_array_get(dups, k);
			fprintf(out, "ERROR: account %s is in two state DBs: %s and %s\n",
				json_string_value(json_object_get(d, "account")),
				json_string_value(json_object_get(d, "db")),
				json_string_value(json_object_get(d, "also_in")));
		}
		if (*duplicates)
			fprintf(out, "ERROR: %d account(s) in more than one state DB: the counts above "
				"include them more than once\n", *duplicates);
		json_decref(dups);
	}
out:
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i].account);
	free(c.v);
	free(per);
	return rc;
}
