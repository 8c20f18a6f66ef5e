/*
 * report_json.c - `report --format json` (fields: report.h).  The head is
 * one JSON object built in memory (aggregates, stages, runs, servers); the
 * accounts array is streamed after it, one account per line.
 */
#include "report_int.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JFLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))

/* A JSON string of s; invalid UTF-8 bytes become '?' (never fails). */
static json_t *jstr(const char *s)
{
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	if (j)
		return j;
	char *c = xstrdup(s);
	unsigned char *p = (unsigned char *)c;
	while (*p) {
		/* validate one UTF-8 sequence; replace a bad lead byte */
		int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
		int ok = n > 0;
		for (int i = 1; ok && i < n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		if (!ok) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
	j = json_string(c);
	if (!j) {
		/* overlong or surrogate forms: fall back to ASCII only */
		for (p = (unsigned char *)c; *p; p++)
			if (*p >= 0x80)
				*p = '?';
		j = json_string(c);
	}
	free(c);
	return j ? j : json_string("");
}

static json_t *jtime(double t)
{
	char b[32];
	if (t <= 0)
		return json_null();
	iso8601_utc(t, b);
	return json_string(b);
}

static double round_ms(double s)
{
	return round(s * 1000) / 1000;
}

static void jrow_stage(void *arg, const struct qr_stage *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", jstr(r->name));
	json_object_set_new(o, "type", jstr(r->type));
	json_object_set_new(o, "state", jstr(r->state));
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	json_object_set_new(o, "error", r->error && *r->error ? jstr(r->error) : json_null());
	json_array_append_new(arg, o);
}

static void jrow_server(void *arg, const struct qr_server *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "role", jstr(r->role));
	json_object_set_new(o, "host", jstr(r->host));
	json_object_set_new(o, "auth_requests", json_integer(r->auth_requests));
	json_object_set_new(o, "token_refreshes", json_integer(r->token_refreshes));
	json_object_set_new(o, "auth_failures", json_integer(r->auth_failures));
	json_object_set_new(o, "last_auth_at", jtime(r->last_auth_at));
	if (r->has_pace) {
		json_object_set_new(o, "requests", json_integer(r->requests));
		json_object_set_new(o, "throttled", json_integer(r->throttled));
		json_object_set_new(o, "throttle_wait_seconds", json_real(round_ms(r->throttle_wait_seconds)));
		json_object_set_new(o, "rate_limit", json_real(round_ms(r->rate_limit)));
		json_object_set_new(o, "concurrency_limit", json_integer(r->concurrency_limit));
	}
	json_array_append_new(arg, o);
}

/* The "last" object of "runs", or null. */
static json_t *jlast_run(const struct last_run *last)
{
	const struct qr_run *l = &last->row;
	if (!l->present)
		return json_null();
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(l->id));
	json_object_set_new(o, "started_at", jtime(l->started_at));
	json_object_set_new(o, "ended_at", jtime(l->ended_at));
	json_object_set_new(o, "duration_seconds", json_real(round_ms(last->duration)));
	json_object_set_new(o, "host", jstr(l->host));
	json_object_set_new(o, "pid", json_integer(l->pid));
	json_object_set_new(o, "command", jstr(l->command));
	json_object_set_new(o, "exit_status", l->has_exit ? json_integer(l->exit_status) : json_null());
	json_object_set_new(o, "status", json_string(last->status));
	json_object_set_new(o, "token_refreshes", json_integer(l->token_refreshes));
	json_object_set_new(o, "retries", json_integer(l->retries));
	json_object_set_new(o, "bytes", json_integer(l->bytes));
	return o;
}

static json_t *jruns(const struct snapshot *s)
{
	json_t *runs = json_object();
	json_object_set_new(runs, "count", json_integer(s->runs));
	json_object_set_new(runs, "token_refreshes_total", json_integer(s->refreshes));
	json_object_set_new(runs, "retries_total", json_integer(s->retries));
	json_object_set_new(runs, "bytes_transferred_total", json_integer(s->transferred));
	json_object_set_new(runs, "seconds_total", json_real(round_ms(s->run_seconds)));
	json_object_set_new(runs, "throughput_bytes_per_second",
			    json_real(round_ms(snapshot_avg_rate(s))));
	json_object_set_new(runs, "last_success_at", jtime(s->last_success_at));
	json_object_set_new(runs, "last", jlast_run(&s->last));
	return runs;
}

/* report --merge: the source DBs and their figures, the duplicates */
static json_t *jmerge_counts(const long long *counts)
{
	json_t *c = json_object();
	for (int i = 0; i < ACCT_NSTATES; i++)
		json_object_set_new(c, acct_state_name((enum acct_state)i), json_integer(counts[i]));
	return c;
}

struct jmerge {
	json_t *dbs;
	long long accounts, planned, moved, counts[ACCT_NSTATES];
};

static void jrow_merge_src(void *arg, const struct qr_merge_src *r)
{
	struct jmerge *m = arg;
	json_array_append_new(m->dbs, json_pack("{s:o, s:o, s:I, s:o, s:I, s:I}", "path", jstr(r->path),
						"shard", jstr(r->shard), "accounts", (json_int_t)r->accounts,
						"counts", jmerge_counts(r->counts), "planned_bytes",
						(json_int_t)r->planned_bytes, "bytes_moved",
						(json_int_t)r->bytes_moved));
	m->accounts += r->accounts;
	m->planned += r->planned_bytes;
	m->moved += r->bytes_moved;
	for (int i = 0; i < ACCT_NSTATES; i++)
		m->counts[i] += r->counts[i];
}

static void jrow_merge_dup(void *arg, const struct qr_merge_dup *r)
{
	json_array_append_new((json_t *)arg, json_pack("{s:o, s:o, s:o}", "account", jstr(r->account),
						       "db", jstr(r->db), "also_in", jstr(r->also_in)));
}

static void jrow_merge_untaken(void *arg, const struct qr_merge_untaken *r)
{
	char ts[32];
	iso8601_utc(r->seen_at, ts);
	json_array_append_new((json_t *)arg, json_pack("{s:o, s:o, s:o, s:o, s:s}", "account",
						       jstr(r->account), "shard", jstr(r->shard), "home",
						       r->home ? jstr(r->home) : json_null(), "listed_by",
						       jstr(r->listed_by), "listed_at", ts));
}

static enum zmb_rc jmerge(sqlite3 *db, const struct snapshot *s, json_t *root, char **err)
{
	struct jmerge m;
	memset(&m, 0, sizeof m);
	m.dbs = json_array();
	json_t *dups = json_array(), *untaken = json_array();
	json_t *o = json_pack("{s:o, s:o, s:o}", "dbs", m.dbs, "duplicates", dups, "untaken", untaken);
	json_object_set_new(root, "merge", o);
	enum zmb_rc rc = qr_merge_sources(db, jrow_merge_src, &m, err);
	if (rc == ZMB_OK)
		rc = qr_merge_dups(db, jrow_merge_dup, dups, err);
	if (rc == ZMB_OK)
		rc = qr_merge_untaken(db, jrow_merge_untaken, untaken, err);
	json_object_set_new(o, "total", json_pack("{s:I, s:o, s:I, s:I}", "accounts", (json_int_t)m.accounts,
						  "counts", jmerge_counts(m.counts), "planned_bytes",
						  (json_int_t)m.planned, "bytes_moved", (json_int_t)m.moved));
	json_object_set_new(o, "ok", json_boolean(s->merge_dups == 0 && s->merge_untaken == 0));
	return rc;
}

/* Everything but the accounts, in the contract's order. */
static enum zmb_rc jhead(sqlite3 *db, const struct snapshot *s, json_t *root, char **err)
{
	json_t *counts = json_object(), *stages = json_array();
	enum zmb_rc rc;

	json_object_set_new(root, "job", jstr(s->job));
	json_object_set_new(root, "generated_at", jtime(s->now));
	for (int i = 0; i < ACCT_NSTATES; i++)
		json_object_set_new(counts, acct_state_name((enum acct_state)i),
				    json_integer(s->counts[i]));
	json_object_set_new(root, "counts", counts);
	/* additive: done accounts whose import left items out (also counted in
	 * counts.done, which stays keyed by state only) */
	json_object_set_new(root, "accounts_warned", json_integer(s->warned));
	/* additive (schema 7): accounts by verdict of their last verification; none = not verified */
	json_t *vc = json_object();
	for (int i = 0; i < QR_VERIFY_N; i++)
		json_object_set_new(vc, qr_verify_names[i], json_integer(s->verify[i]));
	json_object_set_new(root, "verify_counts", vc);
	/* additive (schema 9): accounts by cutover step, unfinished ones whose step failed */
	json_t *cut = json_object();
	for (int i = 0; i < CUT_NSTEPS; i++)
		json_object_set_new(cut, cut_step_name((enum cut_step)i), json_integer(s->cut.steps[i]));
	json_object_set_new(cut, "errors", json_integer(s->cut.errors));
	json_object_set_new(cut, "batches", json_integer(s->cut.batches));
	json_object_set_new(root, "cutover", cut);
	json_object_set_new(root, "total_accounts", json_integer(s->accounts));
	json_object_set_new(root, "bytes_done", json_integer(s->bytes_done));
	json_object_set_new(root, "bytes_total", json_integer(s->bytes_total));
	json_object_set_new(root, "bytes_remaining", json_integer(s->remaining));
	if ((rc = qr_stages(db, jrow_stage, stages, err)) != ZMB_OK) {
		json_decref(stages);
		return rc;
	}
	json_object_set_new(root, "stages", stages);
	json_object_set_new(root, "runs", jruns(s));
	if (s->has_servers) {
		json_t *srv = json_array();
		json_object_set_new(root, "servers", srv);
		rc = qr_servers(db, jrow_server, srv, err);
	}
	if (rc == ZMB_OK && s->merged)
		rc = jmerge(db, s, root, err);
	return rc;
}

struct jaccounts { FILE *out; bool first; };

static void jrow_prov_failed(void *arg, const struct qr_prov_failed *r)
{
	struct jaccounts *a = arg;
	json_t *o = json_object();
	json_object_set_new(o, "stage", jstr(r->stage));
	json_object_set_new(o, "kind", jstr(r->kind));
	json_object_set_new(o, "name", jstr(r->name));
	json_object_set_new(o, "target", jstr(r->target));
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	json_object_set_new(o, "error", r->error && *r->error ? jstr(r->error) : json_null());
	json_object_set_new(o, "updated_at", jtime(r->updated_at));
	fputs(a->first ? "\n" : ",\n", a->out);
	a->first = false;
	json_dumpf(o, a->out, JFLAGS);
	json_decref(o);
}

/*
 * additive (schema 8), after the head and before the accounts:
 * "provision": {"total": N, "counts": {KIND: {OUTCOME: N, ...}, ...},
 * "failed": [{stage, kind, name, target, attempts, error, updated_at}]},
 * every kind and outcome of query_prov.h, zeros included; the failed
 * objects streamed one per line.  Absent on a DB without the table.
 */
static enum zmb_rc jprovision(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	const struct qr_prov *c = &s->prov;
	if (!c->present)
		return ZMB_OK;
	json_t *o = json_object(), *counts = json_object();
	json_object_set_new(o, "total", json_integer(c->total));
	for (int k = 0; k < QP_NKINDS; k++) {
		json_t *kc = json_object();
		for (int i = 0; i < QP_NOUTCOMES; i++)
			json_object_set_new(kc, qp_outcome_names[i], json_integer(c->n[k][i]));
		json_object_set_new(counts, qp_kind_names[k], kc);
	}
	json_object_set_new(o, "counts", counts);
	char *head = json_dumps(o, JFLAGS);
	json_decref(o);
	if (!head) {
		*err = xasprintf("cannot encode report");
		return ZMB_EINTERNAL;
	}
	/* the object without its closing brace, then the failed objects streamed */
	fputs(",\"provision\":", out);
	fwrite(head, 1, strlen(head) - 1, out);
	free(head);
	fputs(",\"failed\":[", out);
	struct jaccounts a = { out, true };
	enum zmb_rc rc = qr_prov_failed(db, -1, jrow_prov_failed, &a, err);
	fputs("]}", out);
	return rc;
}

static void jrow_account(void *arg, const struct qr_account *r)
{
	struct jaccounts *a = arg;
	json_t *o = json_object();
	json_object_set_new(o, "account", jstr(r->account));
	json_object_set_new(o, "target", jstr(r->target));
	json_object_set_new(o, "state", jstr(r->state));
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	json_object_set_new(o, "bytes", json_integer(r->bytes));
	json_object_set_new(o, "seconds", json_real(round_ms(r->seconds)));
	json_object_set_new(o, "error", r->error && *r->error ? jstr(r->error) : json_null());
	json_object_set_new(o, "source_status", r->source_status ? jstr(r->source_status) : json_null());
	json_object_set_new(o, "target_status", r->target_status ? jstr(r->target_status) : json_null());
	json_object_set_new(o, "warnings", json_integer(r->warnings));
	/* additive (schema 5): the mailbox servers the account lives on, null when unknown */
	json_object_set_new(o, "source_host", r->source_host && *r->source_host ? jstr(r->source_host)
										: json_null());
	json_object_set_new(o, "target_host", r->target_host && *r->target_host ? jstr(r->target_host)
										: json_null());
	/* additive (schema 6): steps of the last pass done in pieces; 0 and 0 = one export */
	json_object_set_new(o, "chunks_done", json_integer(r->chunks_done));
	json_object_set_new(o, "chunks_total", json_integer(r->chunks_total));
	/* additive (schema 7): the last verification; verified is true for 'ok', false for
	 * 'mismatch'/'unverifiable', null when never verified */
	json_object_set_new(o, "verified", !r->verify ? json_null() : json_boolean(!strcmp(r->verify, "ok")));
	json_object_set_new(o, "verify", r->verify ? jstr(r->verify) : json_null());
	json_object_set_new(o, "verify_detail", r->verify_detail ? jstr(r->verify_detail) : json_null());
	fputs(a->first ? "\n" : ",\n", a->out);
	a->first = false;
	json_dumpf(o, a->out, JFLAGS);
	json_decref(o);
}

enum zmb_rc report_json(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	json_t *root = json_object();
	char *head = NULL;
	enum zmb_rc rc = jhead(db, s, root, err);
	if (rc)
		goto out;
	/* the head without its closing brace, then the accounts streamed */
	head = json_dumps(root, JFLAGS);
	if (!head) {
		*err = xasprintf("cannot encode report");
		rc = ZMB_EINTERNAL;
		goto out;
	}
	fwrite(head, 1, strlen(head) - 1, out);
	if ((rc = jprovision(db, s, out, err)) != ZMB_OK)
		goto out;
	fputs(",\"accounts\":[", out);
	struct jaccounts a = { out, true };
	if ((rc = qr_accounts(db, -1, jrow_account, &a, err)) != ZMB_OK)
		goto out;
	fputs("]}\n", out);
	rc = fmt_write_failed(out, err) ? ZMB_EIO : ZMB_OK;
out:
	free(head);
	json_decref(root);
	return rc;
}
