/*
 * check_report.c - report renderers, status, accounts, reset.
 *
 * Each test builds a real state DB (state_open + state API, raw SQL only to
 * pin timestamps and states), renders, and parses the output with real
 * parsers: jansson for JSON, an RFC 4180 reader written here for CSV, and a
 * line-by-line checker of the Prometheus text format.  The CLI tests run
 * bin/zmbatch on the same DBs.
 */
#define _GNU_SOURCE
#include "lock.h"
#include "report.h"
#include "state.h"
#include "state_prov.h"
#include "testutil.h"
#include "zmb.h"

#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define IDENT "testjob|zcs1.example.com:7071|zcs2.example.com:7071"

static const char *const ERR3 = "quota \"exceeded\", see: line1\nline2";
static const char *const ERR4 = "comma, here\r\nand \xc3\xbc" "n" "\xc3\xaf" "c" "\xc3\xb6" "d" "\xc3\xa9";
static const char *const STAGE3 = "we\"ird\\stage\nx";

struct fixture {
	char *dir;
	char *db;
	struct state *st;
	int64_t run1, run2;
	double now;
};

static void sql(struct state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sql(struct state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *q = xvasprintf(fmt, ap);
	va_end(ap);
	char *e = NULL;
	int rc = sqlite3_exec(state_db(st), q, NULL, NULL, &e);
	ck_assert_msg(rc == SQLITE_OK, "sql '%s': %s", q, e ? e : "?");
	free(q);
}

static int64_t acct_id(struct state *st, const char *account)
{
	struct account_row r;
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(state_account_get(st, account, &r), ZMB_OK);
	int64_t id = r.id;
	state_account_release(&r);
	return id;
}

static void set_acct(struct state *st, const char *account, const char *state, int attempts,
		     long long bytes, double seconds, const char *cls, const char *err,
		     double started, double finished)
{
	sqlite3_stmt *s = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(state_db(st),
		"UPDATE accounts SET state = ?2, attempts = ?3, bytes = ?4, seconds = ?5, "
		"error_class = ?6, last_error = ?7, started_at = ?8, finished_at = ?9 WHERE account = ?1",
		-1, &s, NULL), SQLITE_OK);
	sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, attempts);
	sqlite3_bind_int64(s, 4, bytes);
	if (seconds >= 0)
		sqlite3_bind_double(s, 5, seconds);
	if (cls)
		sqlite3_bind_text(s, 6, cls, -1, SQLITE_STATIC);
	if (err)
		sqlite3_bind_text(s, 7, err, -1, SQLITE_STATIC);
	if (started > 0)
		sqlite3_bind_double(s, 8, started);
	if (finished > 0)
		sqlite3_bind_double(s, 9, finished);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_DONE);
	ck_assert_int_eq(sqlite3_changes(state_db(st)), 1);
	sqlite3_finalize(s);
}

/*
 * 8 accounts: done 2 (6000 bytes), failed 2, pending 1, importing 1,
 * exported 1, skipped 1; 3 stages; run 1 exited 1, run 2 in progress (this
 * process), plus a 'reset' row that must not count as a run.
 */
static void fixture_open(struct fixture *f)
{
	char *err = NULL;
	memset(f, 0, sizeof *f);
	f->dir = tu_tmpdir("report");
	ck_assert_ptr_nonnull(f->dir);
	f->db = xasprintf("%s/state.db", f->dir);
	ck_assert_msg(state_open(f->db, IDENT, STATE_WRITE, &f->st, &err) == ZMB_OK, "open: %s", err);
	f->now = wall_now();
	struct state *st = f->st;

	ck_assert_int_eq(state_stage_ensure(st, "replcheck", "ldap-replcheck", 0), ZMB_OK);
	ck_assert_int_eq(state_stage_ensure(st, "mail", "migrate", 1), ZMB_OK);
	ck_assert_int_eq(state_stage_ensure(st, STAGE3, "exec", 2), ZMB_OK);

	ck_assert_int_eq(state_run_begin(st, "run", &f->run1), ZMB_OK);
	ck_assert_int_eq(state_run_count(st, f->run1, 2, 3, 4000), ZMB_OK);
	ck_assert_int_eq(state_run_end(st, f->run1, 1), ZMB_OK);
	sql(st, "UPDATE runs SET started_at = %f, ended_at = %f WHERE id = %lld",
	    f->now - 7200, f->now - 3600, (long long)f->run1);
	ck_assert_int_eq(state_stage_begin(st, "replcheck", f->run1), ZMB_OK);
	ck_assert_int_eq(state_stage_end(st, "replcheck", true, "ok", NULL), ZMB_OK);

	ck_assert_int_eq(state_run_begin(st, "run --delta", &f->run2), ZMB_OK);
	ck_assert_int_eq(state_run_count(st, f->run2, 1, 1, 2000), ZMB_OK);
	sql(st, "UPDATE runs SET started_at = %f WHERE id = %lld", f->now - 300, (long long)f->run2);
	ck_assert_int_eq(state_stage_begin(st, "mail", f->run2), ZMB_OK);
	sql(st, "INSERT INTO runs (started_at, ended_at, pid, host, user, command, exit_status) "
		"VALUES (%f, %f, 1, 'h', 'u', 'reset', 0)", f->now - 10, f->now - 9);

	static const struct { const char *a, *t; long long size; } acc[] = {
		{ "a1@ex.com", "b1@new.com", 1200 }, { "a2@ex.com", "a2@ex.com", 5000 },
		{ "a3@ex.com", "a3@ex.com", 700 },   { "a4@ex.com", "a4@ex.com", 300 },
		{ "a5@ex.com", "a5@ex.com", 2000 },  { "a6@ex.com", "a6@ex.com", 4000 },
		{ "a7@ex.com", "a7@ex.com", 9999 },  { "a8@ex.com", "a8@ex.com", 100 },
	};
	ck_assert_int_eq(state_begin(st), ZMB_OK);
	for (size_t i = 0; i < sizeof acc / sizeof *acc; i++)
		ck_assert_int_eq(state_account_upsert(st, acc[i].a, acc[i].t, (int64_t)i, acc[i].size), ZMB_OK);
	ck_assert_int_eq(state_commit(st), ZMB_OK);
	double n = f->now;
	set_acct(st, "a1@ex.com", "done", 1, 1000, 10.5, NULL, NULL, n - 200, n - 100);
	set_acct(st, "a2@ex.com", "done", 2, 5000, 50, "temporary", "old error", n - 4100, n - 4000);
	set_acct(st, "a3@ex.com", "failed", 3, 0, -1, "permanent", ERR3, n - 500, n - 400);
	set_acct(st, "a4@ex.com", "failed", 1, 0, -1, "temporary", ERR4, n - 500, n - 450);
	set_acct(st, "a6@ex.com", "importing", 0, 0, -1, NULL, NULL, n - 65, 0);
	set_acct(st, "a7@ex.com", "skipped", 0, 0, -1, NULL, NULL, 0, 0);
	set_acct(st, "a8@ex.com", "exported", 1, 0, -1, NULL, NULL, n - 30, 0);

	ck_assert_int_eq(state_event(st, f->run2, acct_id(st, "a3@ex.com"), NULL, "info",
				     "claimed"), ZMB_OK);
	ck_assert_int_eq(state_event(st, f->run2, acct_id(st, "a3@ex.com"), "mail", "error",
				     "export failed: HTTP 500"), ZMB_OK);
	ck_assert_int_eq(state_event(st, f->run2, acct_id(st, "a3@ex.com"), NULL, "info",
				     "gave up"), ZMB_OK);
	ck_assert_int_eq(state_server_count(st, "source", "zcs1.example.com", 4, 2, 1), ZMB_OK);
	free(err);
}

static void fixture_close(struct fixture *f)
{
	state_close(f->st);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f->db);
}

/* Render into a string (open_memstream), asserting success. */
static char *render(struct fixture *f, enum report_format fmt)
{
	char *buf = NULL, *err = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(m);
	enum zmb_rc rc = report_render(state_db(f->st), NULL, fmt, f->now, m, &err);
	fclose(m);
	ck_assert_msg(rc == ZMB_OK, "render %d: %s", (int)fmt, err ? err : "?");
	ck_assert_uint_eq(strlen(buf), len);
	free(err);
	return buf;
}

static char *render_status(struct fixture *f)
{
	char *buf = NULL, *err = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	enum zmb_rc rc = report_status(state_db(f->st), NULL, f->db, f->now, m, &err);
	fclose(m);
	ck_assert_msg(rc == ZMB_OK, "status: %s", err ? err : "?");
	free(err);
	return buf;
}

static bool matches(const char *re, const char *s)
{
	regex_t r;
	ck_assert_int_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	bool ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

/* ---- JSON ---- */

static json_t *jget(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	ck_assert_msg(v != NULL, "json: missing key '%s'", key);
	return v;
}

static long long jint(json_t *o, const char *key)
{
	json_t *v = jget(o, key);
	ck_assert_msg(json_is_integer(v), "json: '%s' is not an integer", key);
	return json_integer_value(v);
}

static const char *jstring(json_t *o, const char *key)
{
	json_t *v = jget(o, key);
	ck_assert_msg(json_is_string(v), "json: '%s' is not a string", key);
	return json_string_value(v);
}

static json_t *account_obj(json_t *accounts, const char *name)
{
	size_t i;
	json_t *a;
	json_array_foreach(accounts, i, a)
		if (strcmp(jstring(a, "account"), name) == 0)
			return a;
	ck_abort_msg("json: account %s missing", name);
	return NULL;
}

/* The mail hosts (schema 005): a1 both, a2 the target's only, the rest unknown. */
static void set_hosts(struct fixture *f)
{
	ck_assert_int_eq(state_account_set_hosts(f->st, acct_id(f->st, "a1@ex.com"), "mbox1.ex.com",
						 "mbox2.new.com"), ZMB_OK);
	ck_assert_int_eq(state_account_set_hosts(f->st, acct_id(f->st, "a2@ex.com"), NULL,
						 "mbox1.new.com"), ZMB_OK);
	/* a1's pass in 3 steps, 2 of them done (schema 006) */
	struct chunk_row v[3];
	memset(v, 0, sizeof v);
	v[0].kind = CHUNK_TREE;
	v[1].kind = CHUNK_WINDOW;
	v[1].start_ms = 1;
	v[2].kind = CHUNK_WINDOW;
	v[2].start_ms = 1000;
	int64_t a1 = acct_id(f->st, "a1@ex.com");
	ck_assert_int_eq(state_chunks_plan(f->st, 0, a1, v, 3, NULL), ZMB_OK);
	ck_assert_int_eq(state_chunk_done(f->st, 0, a1, 0, 10, 4, 0, NULL), ZMB_OK);
	ck_assert_int_eq(state_chunk_done(f->st, 0, a1, 1, 20, 0, 0, NULL), ZMB_OK);
	ck_assert_int_eq(state_chunk_done(f->st, 0, a1, 1, 20, 0, 0, NULL), ZMB_ENOTFOUND);   /* once */
}

/* Verdicts (schema 007): a1 ok, a2 mismatch, a3 unverifiable (a control character in
 * its detail), the rest never verified. */
#define A2_DETAIL "Inbox: source 5 item(s), target 3 (2 missing)"
static void set_verdicts(struct fixture *f)
{
	ck_assert_int_eq(state_account_verdict(f->st, 0, acct_id(f->st, "a1@ex.com"), "ok",
					       "2 folder(s), 9 item(s) on the source, 9 on the target",
					       "verify: ok: 2 folder(s)"), ZMB_OK);
	ck_assert_int_eq(state_account_verdict(f->st, f->run2, acct_id(f->st, "a2@ex.com"), "mismatch",
					       A2_DETAIL, "verify: mismatch: " A2_DETAIL), ZMB_OK);
	ck_assert_int_eq(state_account_verdict(f->st, 0, acct_id(f->st, "a3@ex.com"), "unverifiable",
					       "target zcs2:7071: GetFolderRequest:\nhttp 500", NULL), ZMB_OK);
}

START_TEST(test_json_contract)
{
	struct fixture f;
	fixture_open(&f);
	set_hosts(&f);
	set_verdicts(&f);
	char *out = render(&f, REPORT_JSON);
	json_error_t je;
	json_t *root = json_loads(out, JSON_REJECT_DUPLICATES, &je);
	ck_assert_msg(root != NULL, "invalid JSON at line %d: %s", je.line, je.text);
	ck_assert(json_is_object(root));

	ck_assert_str_eq(jstring(root, "job"), "testjob");
	ck_assert_msg(matches("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
			      jstring(root, "generated_at")), "generated_at %s", jstring(root, "generated_at"));

	json_t *counts = jget(root, "counts");
	ck_assert(json_is_object(counts));
	static const char *const states[] = { "pending", "exporting", "exported", "importing",
					      "done", "failed", "skipped" };
	static const long long want[] = { 1, 0, 1, 1, 2, 2, 1 };
	ck_assert_uint_eq(json_object_size(counts), 7);
	for (int i = 0; i < 7; i++)
		ck_assert_int_eq(jint(counts, states[i]), want[i]);
	ck_assert_int_eq(jint(root, "bytes_done"), 6000);
	ck_assert_int_eq(jint(root, "bytes_total"), 6000 + 700 + 300 + 2000 + 4000 + 100);

	json_t *stages = jget(root, "stages");
	ck_assert(json_is_array(stages));
	ck_assert_uint_eq(json_array_size(stages), 3);
	size_t i;
	json_t *s;
	json_array_foreach(stages, i, s) {
		jstring(s, "name");
		jstring(s, "type");
		jstring(s, "state");
		jint(s, "attempts");
		json_t *e = jget(s, "error");
		ck_assert(json_is_null(e) || json_is_string(e));
	}
	ck_assert_str_eq(jstring(json_array_get(stages, 0), "name"), "replcheck");
	ck_assert_str_eq(jstring(json_array_get(stages, 0), "state"), "done");
	ck_assert_str_eq(jstring(json_array_get(stages, 1), "state"), "running");
	ck_assert_str_eq(jstring(json_array_get(stages, 2), "name"), STAGE3);

	json_t *runs = jget(root, "runs");
	ck_assert(json_is_object(runs));
	ck_assert_int_eq(jint(runs, "count"), 2);          /* the 'reset' row is not a run */
	ck_assert_int_eq(jint(runs, "token_refreshes_total"), 3);
	ck_assert_int_eq(jint(runs, "retries_total"), 4);
	ck_assert(json_is_null(jget(runs, "last_success_at")));
	json_t *last = jget(runs, "last");
	ck_assert(json_is_object(last));
	ck_assert_int_eq(jint(last, "id"), f.run2);
	ck_assert_str_eq(jstring(last, "status"), "running");
	ck_assert_str_eq(jstring(last, "command"), "run --delta");
	ck_assert(json_is_null(jget(last, "exit_status")));
	ck_assert(json_is_null(jget(last, "ended_at")));
	ck_assert(json_is_real(jget(last, "duration_seconds")));

	json_t *servers = jget(root, "servers");
	ck_assert_uint_eq(json_array_size(servers), 1);
	ck_assert_int_eq(jint(json_array_get(servers, 0), "auth_requests"), 4);

	json_t *accounts = jget(root, "accounts");
	ck_assert(json_is_array(accounts));
	ck_assert_uint_eq(json_array_size(accounts), 8);
	json_t *a;
	json_array_foreach(accounts, i, a) {
		/* the contract's 7 keys, plus schema 004's, 005's, 006's and 007's (additive) */
		ck_assert_uint_eq(json_object_size(a), 17);
		json_t *vf = jget(a, "verified"), *vv = jget(a, "verify"), *vd = jget(a, "verify_detail");
		ck_assert(json_is_null(vf) || json_is_boolean(vf));
		ck_assert(json_is_null(vv) == json_is_null(vf) && json_is_null(vd) == json_is_null(vf));
		ck_assert(json_is_integer(json_object_get(a, "chunks_done")));
		ck_assert(json_is_integer(json_object_get(a, "chunks_total")));
		ck_assert(json_object_get(a, "source_status") && json_object_get(a, "target_status"));
		ck_assert(json_is_integer(json_object_get(a, "warnings")));
		for (int k = 0; k < 2; k++) {
			json_t *h = jget(a, k ? "target_host" : "source_host");
			ck_assert(json_is_null(h) || json_is_string(h));
		}
		jstring(a, "account");
		jstring(a, "target");
		const char *st = jstring(a, "state");
		bool known = false;
		for (int k = 0; k < 7; k++)
			known |= strcmp(st, states[k]) == 0;
		ck_assert_msg(known, "state %s", st);
		jint(a, "attempts");
		jint(a, "bytes");
		ck_assert_msg(json_is_real(jget(a, "seconds")), "seconds not a number");
		json_t *e = jget(a, "error");
		ck_assert(json_is_null(e) || json_is_string(e));
	}
	/* listing order */
	ck_assert_str_eq(jstring(json_array_get(accounts, 0), "account"), "a1@ex.com");
	ck_assert_str_eq(jstring(json_array_get(accounts, 7), "account"), "a8@ex.com");
	a = account_obj(accounts, "a1@ex.com");
	ck_assert_str_eq(jstring(a, "target"), "b1@new.com");
	ck_assert_str_eq(jstring(a, "state"), "done");
	ck_assert_int_eq(jint(a, "bytes"), 1000);
	ck_assert_double_eq_tol(json_real_value(jget(a, "seconds")), 10.5, 1e-9);
	ck_assert(json_is_null(jget(a, "error")));
	ck_assert_str_eq(jstring(a, "source_host"), "mbox1.ex.com");
	ck_assert_str_eq(jstring(a, "target_host"), "mbox2.new.com");
	a = account_obj(accounts, "a2@ex.com");
	ck_assert(json_is_null(jget(a, "source_host")));
	ck_assert_str_eq(jstring(a, "target_host"), "mbox1.new.com");
	a = account_obj(accounts, "a3@ex.com");
	ck_assert(json_is_null(jget(a, "source_host")) && json_is_null(jget(a, "target_host")));
	ck_assert_str_eq(jstring(a, "error"), ERR3);
	ck_assert_int_eq(jint(a, "attempts"), 3);
	ck_assert_str_eq(jstring(account_obj(accounts, "a4@ex.com"), "error"), ERR4);
	/* verification (schema 007) */
	a = account_obj(accounts, "a1@ex.com");
	ck_assert(json_is_true(jget(a, "verified")));
	ck_assert_str_eq(jstring(a, "verify"), "ok");
	ck_assert(tu_contains(jstring(a, "verify_detail"), "9 item(s) on the source"));
	a = account_obj(accounts, "a2@ex.com");
	ck_assert(json_is_false(jget(a, "verified")));
	ck_assert_str_eq(jstring(a, "verify"), "mismatch");
	ck_assert_str_eq(jstring(a, "verify_detail"), A2_DETAIL);
	a = account_obj(accounts, "a3@ex.com");
	ck_assert(json_is_false(jget(a, "verified")));
	ck_assert_str_eq(jstring(a, "verify"), "unverifiable");
	ck_assert_str_eq(jstring(a, "verify_detail"), "target zcs2:7071: GetFolderRequest:\nhttp 500");
	a = account_obj(accounts, "a4@ex.com");
	ck_assert(json_is_null(jget(a, "verified")) && json_is_null(jget(a, "verify")) &&
		  json_is_null(jget(a, "verify_detail")));
	json_t *vc = jget(root, "verify_counts");
	ck_assert_uint_eq(json_object_size(vc), 4);
	ck_assert_int_eq(jint(vc, "ok"), 1);
	ck_assert_int_eq(jint(vc, "mismatch"), 1);
	ck_assert_int_eq(jint(vc, "unverifiable"), 1);
	ck_assert_int_eq(jint(vc, "none"), 5);

	json_decref(root);
	free(out);
	fixture_close(&f);
}
END_TEST

/* Invalid UTF-8 in an error text still gives valid JSON. */
START_TEST(test_json_bad_utf8)
{
	struct fixture f;
	fixture_open(&f);
	set_acct(f.st, "a5@ex.com", "failed", 1, 0, -1, "permanent", "bad \xff\xfe bytes \xc3", 0, 0);
	char *out = render(&f, REPORT_JSON);
	json_error_t je;
	json_t *root = json_loads(out, 0, &je);
	ck_assert_msg(root != NULL, "invalid JSON: %s", je.text);
	const char *e = jstring(account_obj(jget(root, "accounts"), "a5@ex.com"), "error");
	ck_assert(strncmp(e, "bad ", 4) == 0 && strstr(e, " bytes ") != NULL);
	json_decref(root);
	free(out);
	fixture_close(&f);
}
END_TEST

/* ---- CSV: an RFC 4180 reader ---- */

struct csv {
	char ***rows;     /* rows[i][j] */
	size_t *nf;
	size_t n;
	bool crlf_only;   /* every record ended by CRLF */
};

static void csv_release(struct csv *c)
{
	for (size_t i = 0; i < c->n; i++) {
		for (size_t j = 0; j < c->nf[i]; j++)
			free(c->rows[i][j]);
		free(c->rows[i]);
	}
	free(c->rows);
	free(c->nf);
}

/* Strict: a quote in an unquoted field, or text after a closing quote, fails. */
static bool csv_parse(const char *p, struct csv *c)
{
	struct buf fld = BUF_INIT;
	char **row = NULL;
	size_t nf = 0;
	memset(c, 0, sizeof *c);
	c->crlf_only = true;
	while (*p) {
		for (;;) {
			buf_reset(&fld);
			buf_add(&fld, "", 0);
			if (*p == '"') {
				p++;
				for (;;) {
					if (!*p)
						goto fail;
					if (*p == '"' && p[1] == '"') {
						buf_add(&fld, "\"", 1);
						p += 2;
					} else if (*p == '"') {
						p++;
						break;
					} else {
						buf_add(&fld, p++, 1);
					}
				}
				if (*p && *p != ',' && *p != '\r' && *p != '\n')
					goto fail;
			} else {
				while (*p && *p != ',' && *p != '\r' && *p != '\n') {
					if (*p == '"')
						goto fail;
					buf_add(&fld, p++, 1);
				}
			}
			row = xrealloc(row, (nf + 1) * sizeof *row);
			row[nf++] = xstrdup(fld.s);
			if (*p == ',') {
				p++;
				continue;
			}
			if (*p == '\r' && p[1] == '\n')
				p += 2;
			else if (*p == '\n') {
				c->crlf_only = false;
				p++;
			} else if (*p) {
				goto fail;
			} else {
				c->crlf_only = false;   /* last record without line end */
			}
			break;
		}
		c->rows = xrealloc(c->rows, (c->n + 1) * sizeof *c->rows);
		c->nf = xrealloc(c->nf, (c->n + 1) * sizeof *c->nf);
		c->rows[c->n] = row;
		c->nf[c->n++] = nf;
		row = NULL;
		nf = 0;
	}
	buf_release(&fld);
	return true;
fail:
	for (size_t i = 0; i < nf; i++)
		free(row[i]);
	free(row);
	buf_release(&fld);
	return false;
}

START_TEST(test_csv_reader_selftest)
{
	struct csv c;
	ck_assert(csv_parse("a,\"b,\"\"c\"\"\r\nd\",\r\n", &c));
	ck_assert_uint_eq(c.n, 1);
	ck_assert_uint_eq(c.nf[0], 3);
	ck_assert_str_eq(c.rows[0][1], "b,\"c\"\r\nd");
	ck_assert_str_eq(c.rows[0][2], "");
	csv_release(&c);
	ck_assert(!csv_parse("a\"b,c\r\n", &c));
	csv_release(&c);
	ck_assert(!csv_parse("\"ab\"x,c\r\n", &c));
	csv_release(&c);
}
END_TEST

START_TEST(test_csv_rfc4180)
{
	struct fixture f;
	fixture_open(&f);
	set_hosts(&f);
	set_verdicts(&f);
	char *out = render(&f, REPORT_CSV);
	struct csv c;
	ck_assert_msg(csv_parse(out, &c), "not RFC 4180:\n%s", out);
	ck_assert(c.crlf_only);
	ck_assert_uint_eq(c.n, 9);
	/* the contract's 7 columns in place, the mail hosts (schema 005), steps (006) and
	 * the verdict (007) appended */
	static const char *const head[] = { "account", "target", "state", "attempts", "bytes",
					    "seconds", "error", "source_host", "target_host",
					    "chunks_done", "chunks_total", "verified" };
	for (size_t i = 0; i < c.n; i++)
		ck_assert_uint_eq(c.nf[i], 12);
	for (int j = 0; j < 12; j++)
		ck_assert_str_eq(c.rows[0][j], head[j]);
	ck_assert_str_eq(c.rows[1][11], "true");          /* a1 ok */
	ck_assert_str_eq(c.rows[2][11], "false");         /* a2 mismatch */
	ck_assert_str_eq(c.rows[3][11], "false");         /* a3 unverifiable */
	ck_assert_str_eq(c.rows[4][11], "");              /* a4 never verified */
	ck_assert_str_eq(c.rows[1][9], "2");
	ck_assert_str_eq(c.rows[1][10], "3");
	ck_assert_str_eq(c.rows[2][9], "0");
	ck_assert_str_eq(c.rows[2][10], "0");
	ck_assert_str_eq(c.rows[1][7], "mbox1.ex.com");
	ck_assert_str_eq(c.rows[1][8], "mbox2.new.com");
	ck_assert_str_eq(c.rows[2][7], "");               /* unknown host: empty */
	ck_assert_str_eq(c.rows[2][8], "mbox1.new.com");
	ck_assert_str_eq(c.rows[3][7], "");
	ck_assert_str_eq(c.rows[3][8], "");
	ck_assert_str_eq(c.rows[1][0], "a1@ex.com");
	ck_assert_str_eq(c.rows[1][1], "b1@new.com");
	ck_assert_str_eq(c.rows[1][2], "done");
	ck_assert_str_eq(c.rows[1][3], "1");
	ck_assert_str_eq(c.rows[1][4], "1000");
	ck_assert_double_eq_tol(strtod(c.rows[1][5], NULL), 10.5, 1e-9);
	ck_assert_str_eq(c.rows[1][6], "");
	ck_assert_str_eq(c.rows[3][0], "a3@ex.com");
	ck_assert_str_eq(c.rows[3][5], "");               /* unknown seconds: empty */
	ck_assert_str_eq(c.rows[3][6], ERR3);
	ck_assert_str_eq(c.rows[4][6], ERR4);
	csv_release(&c);
	free(out);
	fixture_close(&f);
}
END_TEST

/* ---- Prometheus text format ---- */

static bool name_ok(const char **pp)
{
	const char *p = *pp;
	if (!(*p == '_' || *p == ':' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
		return false;
	while (*p == '_' || *p == ':' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
	       (*p >= '0' && *p <= '9'))
		p++;
	*pp = p;
	return true;
}

/* Parse one sample line; name copied to out_name (caller frees). */
static bool prom_sample(const char *line, char **out_name, double *value)
{
	const char *p = line, *start = line;
	if (!name_ok(&p))
		return false;
	*out_name = xstrndup(start, (size_t)(p - start));
	if (*p == '{') {
		p++;
		for (;;) {
			const char *ls = p;
			if (!name_ok(&p) || p == ls || *p++ != '=' || *p++ != '"')
				return false;
			if (ls[0] == '_' && ls[1] == '_')
				return false;      /* reserved label names */
			while (*p != '"') {
				if (!*p || *p == '\n')
					return false;
				if (*p == '\\') {
					if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
						return false;
					p++;
				}
				p++;
			}
			p++;
			if (*p == ',') {
				p++;
				if (*p == '}')
					break;
				continue;
			}
			if (*p != '}')
				return false;
			break;
		}
		p++;
	}
	if (*p++ != ' ')
		return false;
	if (!strcmp(p, "NaN") || !strcmp(p, "+Inf") || !strcmp(p, "-Inf"))
		return true;
	char *end;
	*value = strtod(p, &end);
	return end != p && *end == '\0';
}

/* Check every line; return the value of the sample `want` (a full name{labels}). */
static void prom_check(const char *text, const char *const *forbidden)
{
	char *copy = xstrdup(text), *save = NULL;
	struct strlist typed = STRLIST_INIT, helped = STRLIST_INIT, seen_fam = STRLIST_INIT;
	char *cur_fam = NULL;
	ck_assert_msg(text[0] && text[strlen(text) - 1] == '\n', "must end with a newline");
	for (const char *const *f = forbidden; f && *f; f++)
		ck_assert_msg(strstr(text, *f) == NULL, "forbidden '%s' in metrics", *f);
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#') {
			char kind[8], name[200], rest[400];
			int n = sscanf(line, "# %7s %199s %399[^\n]", kind, name, rest);
			ck_assert_msg(n == 3, "bad comment line '%s'", line);
			const char *p = name;
			ck_assert_msg(name_ok(&p) && *p == '\0', "bad name in '%s'", line);
			if (!strcmp(kind, "HELP")) {
				ck_assert_msg(!strlist_has(&helped, name), "second HELP for %s", name);
				strlist_add(&helped, name);
			} else {
				ck_assert_str_eq(kind, "TYPE");
				ck_assert_msg(!strcmp(rest, "counter") || !strcmp(rest, "gauge"),
					      "type '%s'", rest);
				ck_assert_msg(!strlist_has(&typed, name), "second TYPE for %s", name);
				ck_assert_msg(!strlist_has(&seen_fam, name), "TYPE after samples of %s", name);
				size_t L = strlen(name);
				bool total = L > 6 && !strcmp(name + L - 6, "_total");
				ck_assert_msg(total == !strcmp(rest, "counter"),
					      "%s: _total iff counter", name);
				ck_assert_msg(strncmp(name, "zmbatch_", 8) == 0, "prefix: %s", name);
				strlist_add(&typed, name);
			}
			continue;
		}
		char *name = NULL;
		double v = 0;
		ck_assert_msg(prom_sample(line, &name, &v), "bad sample line '%s'", line);
		ck_assert_msg(strlist_has(&typed, name), "sample before TYPE: '%s'", line);
		ck_assert_msg(strlist_has(&helped, name), "sample without HELP: '%s'", line);
		if (!cur_fam || strcmp(cur_fam, name) != 0) {
			ck_assert_msg(!strlist_has(&seen_fam, name), "family %s not contiguous", name);
			strlist_add(&seen_fam, name);
			free(cur_fam);
			cur_fam = xstrdup(name);
		}
		free(name);
	}
	free(cur_fam);
	strlist_release(&typed);
	strlist_release(&helped);
	strlist_release(&seen_fam);
	free(copy);
}

/* Value of the exact sample `key` (name plus labels as printed); NAN if absent. */
static double prom_value(const char *text, const char *key)
{
	size_t k = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, k) && p[k] == ' ')
			return strtod(p + k + 1, NULL);
	return NAN;
}

static const char *const acct_names[] = { "a1@", "a2@", "a3@", "a4@", "a5@", "a6@", "a7@",
					  "a8@", "ex.com", "new.com", NULL };

START_TEST(test_prom_format)
{
	struct fixture f;
	fixture_open(&f);
	char *out = render(&f, REPORT_PROM);
	prom_check(out, acct_names);
	static const char *const states[] = { "pending", "exporting", "exported", "importing",
					      "done", "failed", "skipped" };
	static const double want[] = { 1, 0, 1, 1, 2, 2, 1 };
	for (int i = 0; i < 7; i++) {
		char *k = xasprintf("zmbatch_accounts{state=\"%s\"}", states[i]);
		ck_assert_double_eq(prom_value(out, k), want[i]);
		free(k);
	}
	ck_assert_double_eq(prom_value(out, "zmbatch_done_bytes"), 6000);
	ck_assert_double_eq(prom_value(out, "zmbatch_planned_bytes"), 13100);
	ck_assert_double_eq(prom_value(out, "zmbatch_remaining_bytes"), 6100);
	ck_assert_double_eq(prom_value(out, "zmbatch_transferred_bytes_total"), 6000);
	ck_assert_double_eq(prom_value(out, "zmbatch_token_refreshes_total"), 3);
	ck_assert_double_eq(prom_value(out, "zmbatch_retries_total"), 4);
	ck_assert_double_eq(prom_value(out, "zmbatch_runs_total"), 2);
	ck_assert_double_eq(prom_value(out, "zmbatch_last_run_running"), 1);
	ck_assert(isnan(prom_value(out, "zmbatch_last_run_exit_code")));
	ck_assert(isnan(prom_value(out, "zmbatch_last_success_timestamp_seconds")));
	double d = prom_value(out, "zmbatch_run_duration_seconds");
	ck_assert_msg(fabs(d - 300) < 1, "duration %f", d);
	ck_assert_double_eq_tol(prom_value(out, "zmbatch_last_run_timestamp_seconds"), f.now - 300, 0.01);
	ck_assert_double_eq(prom_value(out, "zmbatch_stage_state{stage=\"replcheck\",state=\"done\"}"), 1);
	ck_assert_double_eq(prom_value(out, "zmbatch_stage_state{stage=\"replcheck\",state=\"running\"}"), 0);
	ck_assert_double_eq(prom_value(out, "zmbatch_stage_state{stage=\"mail\",state=\"running\"}"), 1);
	ck_assert_double_eq(prom_value(out,
		"zmbatch_stage_state{stage=\"we\\\"ird\\\\stage\\nx\",state=\"pending\"}"), 1);
	ck_assert_double_eq(prom_value(out, "zmbatch_auth_requests_total{role=\"source\"}"), 4);
	ck_assert_double_eq(prom_value(out, "zmbatch_auth_failures_total{role=\"source\"}"), 1);
	free(out);

	/* the run ends well: exit code 0 and a last-success time appear */
	ck_assert_int_eq(state_run_end(f.st, f.run2, 0), ZMB_OK);
	out = render(&f, REPORT_PROM);
	prom_check(out, acct_names);
	ck_assert_double_eq(prom_value(out, "zmbatch_last_run_exit_code"), 0);
	ck_assert_double_eq(prom_value(out, "zmbatch_last_run_running"), 0);
	ck_assert(!isnan(prom_value(out, "zmbatch_last_success_timestamp_seconds")));
	free(out);
	fixture_close(&f);
}
END_TEST

/*
 * The pacing of the servers (schema 003) in every format; a row without it
 * (a run before 003, or only logins recorded) shows only its logins.
 */
START_TEST(test_server_pace)
{
	struct fixture f;
	fixture_open(&f);
	ck_assert_int_eq(state_server_pace(f.st, "source", "zcs1.example.com", 100, 5, 1.2, 12.5, 3), ZMB_OK);
	ck_assert_int_eq(state_server_pace(f.st, "source", "zcs1.example.com", 20, 2, 2.2, 12.5, 3), ZMB_OK);
	ck_assert_int_eq(state_server_count(f.st, "target", "zcs2.example.com", 1, 0, 0), ZMB_OK);

	char *out = render(&f, REPORT_PROM);
	prom_check(out, acct_names);
	ck_assert_double_eq(prom_value(out, "zmbatch_server_requests_total{role=\"source\"}"), 120);
	ck_assert_double_eq(prom_value(out, "zmbatch_server_throttled_total{role=\"source\"}"), 7);
	ck_assert_double_eq_tol(prom_value(out, "zmbatch_server_throttle_wait_seconds_total{role=\"source\"}"),
				3.4, 0.001);
	ck_assert_double_eq(prom_value(out, "zmbatch_server_rate_limit{role=\"source\"}"), 12.5);
	ck_assert_double_eq(prom_value(out, "zmbatch_server_concurrency_limit{role=\"source\"}"), 3);
	ck_assert(isnan(prom_value(out, "zmbatch_server_throttled_total{role=\"target\"}")));
	ck_assert_double_eq(prom_value(out, "zmbatch_auth_requests_total{role=\"target\"}"), 1);
	free(out);

	out = render(&f, REPORT_JSON);
	json_error_t je;
	json_t *root = json_loads(out, 0, &je);
	ck_assert_msg(root != NULL, "%s", je.text);
	json_t *srv = jget(root, "servers");
	ck_assert_uint_eq(json_array_size(srv), 2);
	json_t *so = json_array_get(srv, 0), *to = json_array_get(srv, 1);
	ck_assert_str_eq(jstring(so, "role"), "source");
	ck_assert_int_eq(jint(so, "requests"), 120);
	ck_assert_int_eq(jint(so, "throttled"), 7);
	ck_assert_int_eq(jint(so, "concurrency_limit"), 3);
	ck_assert_double_eq_tol(json_number_value(jget(so, "throttle_wait_seconds")), 3.4, 0.001);
	ck_assert_double_eq(json_number_value(jget(so, "rate_limit")), 12.5);
	ck_assert_int_eq(jint(so, "auth_requests"), 4);
	ck_assert_ptr_null(json_object_get(to, "throttled"));
	json_decref(root);
	free(out);

	out = render(&f, REPORT_TEXT);
	ck_assert_msg(tu_contains(out, "server source zcs1.example.com: 120 requests, 7 throttled (HTTP 429/503), "
				  "paused 3s; limits now 12.5 requests/s, 3 in flight"), "%s", out);
	ck_assert(!tu_contains(out, "server target zcs2.example.com: 0 requests"));
	free(out);
	out = render_status(&f);
	ck_assert_msg(tu_contains(out, "7 throttled (HTTP 429/503)"), "%s", out);
	free(out);
	fixture_close(&f);
}
END_TEST

/* A DB of schema 002 (read-only: never migrated) still renders, without pacing. */
extern const char *const zmb_schema[];   /* schema/NNN_*.sql, compiled in */

START_TEST(test_server_pace_old_db)
{
	char *dir = tu_tmpdir("report");
	char *path = xasprintf("%s/old.db", dir);
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, zmb_schema[0], NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, zmb_schema[1], NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 2;"
				      "INSERT INTO meta VALUES ('job_identity', '" IDENT "');"
				      "INSERT INTO servers (role, host, auth_requests, updated_at)"
				      " VALUES ('source', 'zcs1', 3, 1e9);", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct state *st = NULL;
	char *err = NULL;
	ck_assert_int_eq(state_open(path, NULL, STATE_READONLY, &st, &err), ZMB_OK);
	static const enum report_format fmts[] = { REPORT_TEXT, REPORT_JSON, REPORT_PROM };
	for (int i = 0; i < 3; i++) {
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);
		ck_assert_int_eq(report_render(state_db(st), NULL, fmts[i], wall_now(), m, &err), ZMB_OK);
		fclose(m);
		ck_assert_msg(tu_contains(buf, "zcs1") || tu_contains(buf, "auth_requests_total"), "%s", buf);
		ck_assert(!tu_contains(buf, "throttled"));
		free(buf);
	}
	state_close(st);
	tu_rmrf(dir);
	free(dir);
	free(path);
}
END_TEST

START_TEST(test_prom_checker_rejects)
{
	char *n = NULL;
	double v;
	ck_assert(prom_sample("zmbatch_x{a=\"b\\\"c\"} 1", &n, &v));
	free(n);
	n = NULL;
	ck_assert(!prom_sample("zmbatch_x{a=\"b\"c\"} 1", &n, &v));
	free(n);
	n = NULL;
	ck_assert(!prom_sample("zmbatch_x{a=\"b\\q\"} 1", &n, &v));
	free(n);
	n = NULL;
	ck_assert(!prom_sample("zmbatch_x 1 2 x", &n, &v));
	free(n);
}
END_TEST

/* ---- text, status, accounts, history ---- */

START_TEST(test_text_report)
{
	struct fixture f;
	fixture_open(&f);
	char *out = render(&f, REPORT_TEXT);
	ck_assert_msg(tu_contains(out, "job 'testjob'"), "%s", out);
	ck_assert(matches("done +2\n", out));
	ck_assert(matches("failed +2\n", out));
	ck_assert(tu_contains(out, "failures: 2"));
	ck_assert(tu_contains(out, "[permanent] quota \"exceeded\", see: line1 line2"));
	ck_assert(tu_contains(out, "by class: permanent 1, temporary 1"));
	ck_assert(tu_contains(out, "ETA:"));
	ck_assert(tu_contains(out, "throughput:"));
	/* slowest: a2 (50 s) before a1 (10.5 s) */
	const char *s = strstr(out, "slowest accounts:");
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(strstr(s, "a2@ex.com"));
	ck_assert(strstr(s, "a2@ex.com") < strstr(s, "a1@ex.com"));
	/* no raw control characters from error texts */
	for (const char *p = out; *p; p++)
		ck_assert_msg(*p == '\n' || (unsigned char)*p >= 0x20, "control char in text");
	free(out);
	fixture_close(&f);
}
END_TEST

START_TEST(test_status_running_and_died)
{
	struct fixture f;
	fixture_open(&f);
	/* a6 and a1 finished in the window: rate counts a1 only (a2 long ago) */
	char *out = render_status(&f);
	ck_assert_msg(tu_contains(out, "running for"), "%s", out);
	ck_assert(tu_contains(out, f.db));
	ck_assert(tu_contains(out, "in flight:  1"));
	ck_assert(matches("a6@ex.com +importing +1m0[0-9]s", out));
	ck_assert(tu_contains(out, "export failed: HTTP 500"));
	ck_assert(tu_contains(out, "a3@ex.com: export failed"));
	ck_assert(tu_contains(out, "mail (migrate) running"));
	ck_assert(tu_contains(out, "done 2"));
	/* 1000 bytes over the 300 s since the run started */
	ck_assert_msg(tu_contains(out, "rate:       3 B/s"), "%s", out);
	free(out);

	/* the run's process is gone without an end: "died" */
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	sql(f.st, "UPDATE runs SET pid = %ld WHERE id = %lld", (long)p, (long long)f.run2);
	out = render_status(&f);
	ck_assert_msg(tu_contains(out, "died"), "%s", out);
	ck_assert(tu_contains(out, "no run in progress"));
	free(out);
	fixture_close(&f);
}
END_TEST

/*
 * A pass in steps (schema 006): a6 (importing, 4000 bytes) has 2 of 4 steps
 * done, 1500 bytes each, just now.  status shows the step and what it moved;
 * the rate counts the steps' bytes when they were done (a1's 1000 + 3000
 * over the run's 300 s); what they moved is no longer remaining; the text
 * report lists the account's steps.
 */
START_TEST(test_status_chunk_progress)
{
	struct fixture f;
	fixture_open(&f);
	int64_t a6 = acct_id(f.st, "a6@ex.com");
	struct chunk_row v[4];
	memset(v, 0, sizeof v);
	v[0].kind = CHUNK_TREE;
	v[1].kind = CHUNK_CALENDAR;
	v[2].kind = CHUNK_WINDOW;
	v[3].kind = CHUNK_WINDOW;
	ck_assert_int_eq(state_chunks_plan(f.st, f.run2, a6, v, 4, "plan"), ZMB_OK);
	ck_assert_int_eq(state_chunk_done(f.st, f.run2, a6, 0, 1500, 3, 0, NULL), ZMB_OK);
	ck_assert_int_eq(state_chunk_done(f.st, f.run2, a6, 1, 1500, 0, 0, NULL), ZMB_OK);
	char *out = render_status(&f);
	ck_assert_msg(matches("a6@ex.com +importing .*step 3/4, [^\n]* moved", out), "%s", out);
	ck_assert_msg(tu_contains(out, "rate:       13 B/s"), "%s", out);
	free(out);
	/* pending/in flight sizes: a5 2000 + a6 4000 - 3000 moved + a8 100 (was 6100) */
	out = render(&f, REPORT_PROM);
	ck_assert_double_eq(prom_value(out, "zmbatch_remaining_bytes"), 3100);
	free(out);
	out = render(&f, REPORT_TEXT);
	ck_assert_msg(matches("accounts whose last pass ran in steps:\n +a6@ex.com +importing +steps 2/4 done", out),
		      "%s", out);
	free(out);
	fixture_close(&f);
}
END_TEST

START_TEST(test_accounts_and_history)
{
	struct fixture f;
	fixture_open(&f);
	char *buf = NULL, *err = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	ck_assert_int_eq(report_accounts(state_db(f.st), ACCT_FAILED, m, &err), ZMB_OK);
	fclose(m);
	ck_assert_str_eq(buf, "a3@ex.com\ta3@ex.com\tfailed\t3\t0\tquota \"exceeded\", see: line1 line2\n"
			      "a4@ex.com\ta4@ex.com\tfailed\t1\t0\tcomma, here  and \xc3\xbc" "n" "\xc3\xaf" "c" "\xc3\xb6" "d" "\xc3\xa9\n");
	free(buf);

	m = open_memstream(&buf, &len);
	ck_assert_int_eq(report_accounts(state_db(f.st), -1, m, &err), ZMB_OK);
	fclose(m);
	int lines = 0;
	for (char *p = buf; *p; p++)
		lines += *p == '\n';
	ck_assert_int_eq(lines, 8);
	ck_assert(strncmp(buf, "a1@ex.com\tb1@new.com\tdone\t1\t1000\t\n", 33) == 0);
	free(buf);

	m = open_memstream(&buf, &len);
	ck_assert_int_eq(report_history(state_db(f.st), "a3@ex.com", m, &err), ZMB_OK);
	fclose(m);
	const char *c = strstr(buf, "claimed"), *e = strstr(buf, "mail: export failed: HTTP 500");
	const char *g = strstr(buf, "gave up");
	ck_assert_msg(c && e && g && c < e && e < g, "%s", buf);
	char *want = xasprintf(" run %lld error mail: export failed", (long long)f.run2);
	ck_assert_msg(tu_contains(buf, want), "%s", buf);
	free(want);
	free(buf);

	m = open_memstream(&buf, &len);
	ck_assert_int_eq(report_history(state_db(f.st), "nobody@ex.com", m, &err), ZMB_ENOTFOUND);
	fclose(m);
	ck_assert(tu_contains(err, "nobody@ex.com"));
	free(err);
	free(buf);
	fixture_close(&f);
}
END_TEST

/*
 * Verification (schema 007) in prom (counts by verdict, no account in a
 * label), the text report (a section listing mismatched and unverifiable
 * accounts with their detail), status (one line of counts) and an account's
 * history (the verdict's event).
 */
START_TEST(test_verify_reports)
{
	struct fixture f;
	fixture_open(&f);
	char *out = render(&f, REPORT_PROM);
	ck_assert_double_eq(prom_value(out, "zmbatch_accounts_verify{verdict=\"none\"}"), 8);
	ck_assert_double_eq(prom_value(out, "zmbatch_accounts_verify{verdict=\"ok\"}"), 0);
	free(out);
	out = render(&f, REPORT_TEXT);
	ck_assert_msg(tu_contains(out, "verification: ok 0, mismatch 0, unverifiable 0, not verified 8\n"
				  "  no mismatch\n"), "%s", out);
	free(out);

	set_verdicts(&f);
	out = render(&f, REPORT_PROM);
	prom_check(out, acct_names);
	static const char *const names[] = { "ok", "mismatch", "unverifiable", "none" };
	static const double want[] = { 1, 1, 1, 5 };
	for (int i = 0; i < 4; i++) {
		char *k = xasprintf("zmbatch_accounts_verify{verdict=\"%s\"}", names[i]);
		ck_assert_double_eq(prom_value(out, k), want[i]);
		free(k);
	}
	ck_assert(tu_contains(out, "# TYPE zmbatch_accounts_verify gauge\n"));
	free(out);

	out = render(&f, REPORT_TEXT);
	const char *v = strstr(out, "\nverification: ok 1, mismatch 1, unverifiable 1, not verified 5\n");
	ck_assert_msg(v != NULL, "%s", out);
	ck_assert_msg(matches("\n  a2@ex.com +done +mismatch +Inbox: source 5 item\\(s\\), target 3 "
			      "\\(2 missing\\)\n", v), "%s", v);
	ck_assert_msg(matches("\n  a3@ex.com +failed +unverifiable +target zcs2:7071: GetFolderRequest: "
			      "http 500\n", v), "%s", v);
	ck_assert_msg(!tu_contains(v, "a1@ex.com"), "ok accounts are not listed:\n%s", v);
	for (const char *p = out; *p; p++)
		ck_assert_msg(*p == '\n' || (unsigned char)*p >= 0x20, "control char in text");
	free(out);

	out = render_status(&f);
	ck_assert_msg(tu_contains(out, "verified:   ok 1, mismatch 1, unverifiable 1, none 5\n"), "%s", out);
	free(out);

	char *buf = NULL, *err = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	ck_assert_int_eq(report_history(state_db(f.st), "a2@ex.com", m, &err), ZMB_OK);
	fclose(m);
	char *want_line = xasprintf(" run %lld warn  verify: mismatch: " A2_DETAIL "\n", (long long)f.run2);
	ck_assert_msg(tu_contains(buf, want_line), "%s", buf);
	free(want_line);
	free(buf);
	fixture_close(&f);
}
END_TEST

/*
 * A DB of schema 006 (before the verdicts), opened read-only (never
 * migrated): every format renders, its accounts never verified.
 */
START_TEST(test_verify_old_db)
{
	char *dir = tu_tmpdir("report"), *path = xasprintf("%s/old6.db", dir), *err = NULL;
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(sqlite3_exec(db, zmb_schema[i], NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 6;"
				      "INSERT INTO meta VALUES ('job_identity', '" IDENT "');"
				      "INSERT INTO accounts (account, target, seq, state, bytes, updated_at)"
				      " VALUES ('old@ex.com', 'old@ex.com', 0, 'done', 10, 1e9);",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct state *st = NULL;
	ck_assert_int_eq(state_open(path, NULL, STATE_READONLY, &st, &err), ZMB_OK);
	for (int fmt = REPORT_TEXT; fmt <= REPORT_PROM; fmt++) {
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);
		ck_assert_int_eq(report_render(state_db(st), NULL, (enum report_format)fmt, wall_now(), m,
					       &err), ZMB_OK);
		fclose(m);
		if (fmt == REPORT_JSON) {
			json_t *r = json_loads(buf, 0, NULL);
			ck_assert_ptr_nonnull(r);
			json_t *a = json_array_get(json_object_get(r, "accounts"), 0);
			ck_assert(json_is_null(json_object_get(a, "verified")) &&
				  json_is_null(json_object_get(a, "verify")));
			ck_assert_int_eq(jint(jget(r, "verify_counts"), "none"), 1);
			json_decref(r);
		} else if (fmt == REPORT_CSV) {
			ck_assert_msg(tu_contains(buf, ",chunks_total,verified\r\nold@ex.com,old@ex.com,done,0,10,,"
						  ",,,0,0,\r\n"), "%s", buf);
		} else if (fmt == REPORT_PROM) {
			ck_assert_double_eq(prom_value(buf, "zmbatch_accounts_verify{verdict=\"none\"}"), 1);
		} else {
			ck_assert_msg(tu_contains(buf, "not verified 1"), "%s", buf);
		}
		free(buf);
	}
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	ck_assert_int_eq(report_status(state_db(st), NULL, path, wall_now(), m, &err), ZMB_OK);
	fclose(m);
	ck_assert_msg(tu_contains(buf, "verified:   ok 0, mismatch 0, unverifiable 0, none 1"), "%s", buf);
	free(buf);
	state_close(st);
	tu_rmrf(dir);
	free(dir);
	free(path);
}
END_TEST

/* ---- the provision stage's objects (schema 008) ---- */

#define PERR1 "account.NO_SUCH_COS: no such cos: bronze\nsecond line"
#define PERR2 "CreateDomainRequest: service.PERM_DENIED"

/* One object of stage `stage` through the state API: planned, then what the stage did:
 * "pending", "creating", "failed" (error), or an outcome (done). */
static void prov_obj(struct fixture *f, const char *stage, const char *kind, const char *name,
		     const char *target, const char *what, const char *error)
{
	struct prov_row r;
	ck_assert_int_eq(state_prov_plan(f->st, stage, kind, name, target), ZMB_OK);
	ck_assert_int_eq(state_prov_get(f->st, stage, kind, name, &r), ZMB_OK);
	int64_t id = r.id;
	state_prov_release(&r);
	if (!strcmp(what, "pending"))
		return;
	if (!strcmp(what, "creating") || !strcmp(what, "created"))
		ck_assert_int_eq(state_prov_creating(f->st, f->run2, id, "create"), ZMB_OK);
	if (!strcmp(what, "failed"))
		ck_assert_int_eq(state_prov_failed(f->st, f->run2, id, error), ZMB_OK);
	else if (strcmp(what, "creating"))
		ck_assert_int_eq(state_prov_done(f->st, f->run2, id, what, NULL), ZMB_OK);
}

/*
 * Stage "prov": accounts p1 created, p2 created, p3 updated, p4 unchanged, p5 skipped,
 * p6 failed (done by an earlier run, then failed: counted failed, once), p7 failed
 * twice, p8 pending, p9 creating; COS gold created; domain new.org failed.  Stage
 * "prov2": account q1 unchanged.
 */
static void set_prov(struct fixture *f)
{
	prov_obj(f, "prov", "account", "p1@ex.com", "p1@new.com", "created", NULL);
	prov_obj(f, "prov", "account", "p2@ex.com", "p2@new.com", "created", NULL);
	prov_obj(f, "prov", "account", "p3@ex.com", "p3@new.com", "updated", NULL);
	prov_obj(f, "prov", "account", "p4@ex.com", "p4@new.com", "unchanged", NULL);
	prov_obj(f, "prov", "account", "p5@ex.com", "p5@new.com", "skipped", NULL);
	prov_obj(f, "prov", "account", "p6@ex.com", "p6@new.com", "created", NULL);
	prov_obj(f, "prov", "account", "p6@ex.com", "p6@new.com", "failed", PERR1);
	prov_obj(f, "prov", "account", "p7@ex.com", "p7@ex.com", "failed", "first");
	prov_obj(f, "prov", "account", "p7@ex.com", "p7@ex.com", "failed", "quota, \"exceeded\"");
	prov_obj(f, "prov", "account", "p8@ex.com", "p8@new.com", "pending", NULL);
	prov_obj(f, "prov", "account", "p9@ex.com", "p9@new.com", "creating", NULL);
	prov_obj(f, "prov", "cos", "gold", "gold", "created", NULL);
	prov_obj(f, "prov", "domain", "new.org", "new.org", "failed", PERR2);
	prov_obj(f, "prov2", "account", "q1@ex.com", "q1@new.com", "unchanged", NULL);
}

static json_t *render_json(struct fixture *f)
{
	char *out = render(f, REPORT_JSON);
	json_error_t je;
	json_t *root = json_loads(out, JSON_REJECT_DUPLICATES, &je);
	ck_assert_msg(root != NULL, "invalid JSON at line %d: %s\n%s", je.line, je.text, out);
	free(out);
	return root;
}

/*
 * JSON: "provision" {total, counts {kind: {outcome: n}} with every kind and outcome,
 * failed [...]} between the head and the accounts (whose contract is unchanged); a
 * schema-8 DB without objects has it with zeros and an empty list.
 */
START_TEST(test_provision_json)
{
	struct fixture f;
	fixture_open(&f);
	json_t *root = render_json(&f);
	json_t *pv = jget(root, "provision");
	ck_assert_int_eq(jint(pv, "total"), 0);
	ck_assert_uint_eq(json_array_size(jget(pv, "failed")), 0);
	ck_assert_int_eq(jint(jget(jget(pv, "counts"), "account"), "failed"), 0);
	json_decref(root);

	set_prov(&f);
	root = render_json(&f);
	pv = jget(root, "provision");
	ck_assert_uint_eq(json_object_size(pv), 3);
	ck_assert_int_eq(jint(pv, "total"), 12);
	json_t *counts = jget(pv, "counts");
	static const char *const kinds[] = { "account", "cos", "domain", "list", "resource" };
	static const char *const outcomes[] = { "pending", "creating", "created", "updated",
						"unchanged", "skipped", "failed" };
	static const long long want[5][7] = { { 1, 1, 2, 1, 2, 1, 2 }, { 0, 0, 1, 0, 0, 0, 0 },
					      { 0, 0, 0, 0, 0, 0, 1 }, { 0 }, { 0 } };
	ck_assert_uint_eq(json_object_size(counts), 5);
	for (int k = 0; k < 5; k++) {
		json_t *kc = jget(counts, kinds[k]);
		ck_assert_uint_eq(json_object_size(kc), 7);
		for (int i = 0; i < 7; i++)
			ck_assert_msg(jint(kc, outcomes[i]) == want[k][i], "%s %s: %lld, want %lld",
				      kinds[k], outcomes[i], jint(kc, outcomes[i]), want[k][i]);
	}
	json_t *failed = jget(pv, "failed");
	ck_assert_uint_eq(json_array_size(failed), 3);
	json_t *o = json_array_get(failed, 0);    /* by stage, kind, name */
	ck_assert_str_eq(jstring(o, "stage"), "prov");
	ck_assert_str_eq(jstring(o, "kind"), "account");
	ck_assert_str_eq(jstring(o, "name"), "p6@ex.com");
	ck_assert_str_eq(jstring(o, "target"), "p6@new.com");
	ck_assert_int_eq(jint(o, "attempts"), 1);
	ck_assert_str_eq(jstring(o, "error"), PERR1);
	ck_assert_msg(matches("^[0-9]{4}-[0-9]{2}-[0-9]{2}T", jstring(o, "updated_at")), "updated_at");
	o = json_array_get(failed, 1);
	ck_assert_str_eq(jstring(o, "name"), "p7@ex.com");
	ck_assert_int_eq(jint(o, "attempts"), 2);
	ck_assert_str_eq(jstring(o, "error"), "quota, \"exceeded\"");
	o = json_array_get(failed, 2);
	ck_assert_str_eq(jstring(o, "kind"), "domain");
	ck_assert_str_eq(jstring(o, "error"), PERR2);
	/* the rest of the contract is untouched: the accounts come last, as before */
	ck_assert_uint_eq(json_array_size(jget(root, "accounts")), 8);
	const char *key, *last = NULL, *before = NULL;
	json_t *v;
	json_object_foreach(root, key, v) {
		before = last;
		last = key;
	}
	ck_assert_str_eq(last, "accounts");
	ck_assert_str_eq(before, "provision");
	json_decref(root);
	fixture_close(&f);
}
END_TEST

/* Prometheus: zmbatch_provision_objects{kind,state}, every pair, no object name. */
START_TEST(test_provision_prom)
{
	struct fixture f;
	fixture_open(&f);
	set_prov(&f);
	char *out = render(&f, REPORT_PROM);
	static const char *const forbidden[] = { "p1@", "p6@", "new.org", "gold\"", "q1@", NULL };
	prom_check(out, forbidden);
	prom_check(out, acct_names);
	ck_assert(tu_contains(out, "# TYPE zmbatch_provision_objects gauge\n"));
	static const struct { const char *k; double v; } want[] = {
		{ "kind=\"account\",state=\"created\"", 2 }, { "kind=\"account\",state=\"updated\"", 1 },
		{ "kind=\"account\",state=\"unchanged\"", 2 }, { "kind=\"account\",state=\"skipped\"", 1 },
		{ "kind=\"account\",state=\"failed\"", 2 }, { "kind=\"account\",state=\"pending\"", 1 },
		{ "kind=\"account\",state=\"creating\"", 1 }, { "kind=\"cos\",state=\"created\"", 1 },
		{ "kind=\"domain\",state=\"failed\"", 1 }, { "kind=\"domain\",state=\"created\"", 0 },
		{ "kind=\"list\",state=\"failed\"", 0 },
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		char *k = xasprintf("zmbatch_provision_objects{%s}", want[i].k);
		ck_assert_msg(prom_value(out, k) == want[i].v, "%s = %f", k, prom_value(out, k));
		free(k);
	}
	int samples = 0;
	for (const char *p = out; (p = strstr(p, "\nzmbatch_provision_objects{")); p++)
		samples++;
	ck_assert_int_eq(samples, 5 * 7);   /* kinds x outcomes */
	free(out);
	fixture_close(&f);
}
END_TEST

/* text report and status: "provision:" per kind, the failed objects with their last error. */
START_TEST(test_provision_text)
{
	struct fixture f;
	fixture_open(&f);
	char *out = render(&f, REPORT_TEXT);
	ck_assert_msg(!tu_contains(out, "provision:"), "no objects, no section:\n%s", out);
	free(out);
	set_prov(&f);
	out = render(&f, REPORT_TEXT);
	const char *p = strstr(out, "\nprovision:  12 object(s)\n");
	ck_assert_msg(p != NULL, "%s", out);
	ck_assert_msg(tu_contains(p, "\n  account   created 2, updated 1, unchanged 2, skipped 1, failed 2, "
				  "pending 1, creating 1\n"
				  "  cos       created 1, updated 0, unchanged 0, skipped 0, failed 0\n"
				  "  domain    created 0, updated 0, unchanged 0, skipped 0, failed 1\n"
				  "  failed objects (last error; the next run tries them again):\n"
				  "    account p6@ex.com -> p6@new.com  (stage 'prov', attempts 1): "
				  "account.NO_SUCH_COS: no such cos: bronze second line\n"
				  "    account p7@ex.com  (stage 'prov', attempts 2): quota, \"exceeded\"\n"
				  "    domain  new.org  (stage 'prov', attempts 1): " PERR2 "\n"), "%s", p);
	ck_assert(!tu_contains(p, "  list "));
	ck_assert(!tu_contains(p, "p1@ex.com"));
	for (const char *c = out; *c; c++)
		ck_assert_msg(*c == '\n' || (unsigned char)*c >= 0x20, "control char in text");
	free(out);

	/* status: the same lines, at most 5 failed objects */
	for (int i = 0; i < 4; i++) {
		char *n = xasprintf("z%d@ex.com", i);
		prov_obj(&f, "prov", "account", n, n, "failed", "boom");
		free(n);
	}
	out = render_status(&f);
	ck_assert_msg(tu_contains(out, "\nprovision:  16 object(s)\n  account   created 2, updated 1, "
				  "unchanged 2, skipped 1, failed 6, pending 1, creating 1\n"), "%s", out);
	ck_assert_msg(tu_contains(out, "    account p6@ex.com -> p6@new.com  (stage 'prov', attempts 1): "
				  "account.NO_SUCH_COS"), "%s", out);
	ck_assert_msg(tu_contains(out, "    ... and 2 more ('zmbatch report' lists them all)\n"), "%s", out);
	ck_assert(!tu_contains(out, "new.org"));
	free(out);
	fixture_close(&f);
}
END_TEST

/*
 * A DB of schema 007 (before the provision stage), opened read-only (never
 * migrated): every format and status render, without any provision section.
 */
START_TEST(test_provision_old_db)
{
	char *dir = tu_tmpdir("report"), *path = xasprintf("%s/old7.db", dir), *err = NULL;
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	for (int i = 0; i < 7; i++)
		ck_assert_int_eq(sqlite3_exec(db, zmb_schema[i], NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 7;"
				      "INSERT INTO meta VALUES ('job_identity', '" IDENT "');"
				      "INSERT INTO accounts (account, target, seq, state, bytes, updated_at)"
				      " VALUES ('old@ex.com', 'old@ex.com', 0, 'failed', 10, 1e9);",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct state *st = NULL;
	ck_assert_int_eq(state_open(path, NULL, STATE_READONLY, &st, &err), ZMB_OK);
	for (int fmt = REPORT_TEXT; fmt <= REPORT_PROM; fmt++) {
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);
		enum zmb_rc rc = report_render(state_db(st), NULL, (enum report_format)fmt, wall_now(), m, &err);
		fclose(m);
		ck_assert_msg(rc == ZMB_OK, "format %d: %s", fmt, err ? err : "?");
		ck_assert_msg(!tu_contains(buf, "provision"), "%s", buf);
		if (fmt == REPORT_JSON) {
			json_t *r = json_loads(buf, 0, NULL);
			ck_assert_ptr_nonnull(r);
			ck_assert_uint_eq(json_array_size(jget(r, "accounts")), 1);
			json_decref(r);
		} else if (fmt == REPORT_PROM) {
			prom_check(buf, NULL);
			ck_assert_double_eq(prom_value(buf, "zmbatch_accounts{state=\"failed\"}"), 1);
		}
		free(buf);
	}
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	ck_assert_int_eq(report_status(state_db(st), NULL, path, wall_now(), m, &err), ZMB_OK);
	fclose(m);
	ck_assert_msg(tu_contains(buf, "failed 1") && !tu_contains(buf, "provision"), "%s", buf);
	free(buf);
	free(err);
	state_close(st);
	tu_rmrf(dir);
	free(dir);
	free(path);
}
END_TEST

/* ---- --output: atomic, mode ---- */

static int count_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)) != NULL)
		n += strstr(e->d_name, ".tmp.") != NULL;
	closedir(d);
	return n;
}

START_TEST(test_output_file)
{
	struct fixture f;
	fixture_open(&f);
	char *err = NULL, *path = xasprintf("%s/zmbatch.prom", f.dir);
	struct stat sb;
	umask(077);
	ck_assert_int_eq(report_render_file(state_db(f.st), NULL, REPORT_PROM, f.now, path, &err), ZMB_OK);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0644);
	char *a = tu_read(path), *b = render(&f, REPORT_PROM);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	ck_assert_int_eq(count_tmp(f.dir), 0);

	char *csv = xasprintf("%s/r.csv", f.dir);
	ck_assert_int_eq(report_render_file(state_db(f.st), NULL, REPORT_CSV, f.now, csv, &err), ZMB_OK);
	ck_assert_int_eq(stat(csv, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);

	char *bad = xasprintf("%s/missing/dir/x.prom", f.dir);
	ck_assert_int_eq(report_render_file(state_db(f.st), NULL, REPORT_PROM, f.now, bad, &err), ZMB_EIO);
	ck_assert(tu_contains(err, "missing/dir"));
	ck_assert_int_eq(count_tmp(f.dir), 0);
	free(err);
	free(bad);
	free(csv);
	free(path);
	fixture_close(&f);
}
END_TEST

/* An empty DB (nothing discovered yet) renders everything with zeros. */
START_TEST(test_empty_db)
{
	char *dir = tu_tmpdir("report-empty"), *db = xasprintf("%s/s.db", dir), *err = NULL;
	struct state *st = NULL;
	ck_assert_int_eq(state_open(db, IDENT, STATE_WRITE, &st, &err), ZMB_OK);
	for (int fmt = REPORT_TEXT; fmt <= REPORT_PROM; fmt++) {
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);
		ck_assert_int_eq(report_render(state_db(st), "j", (enum report_format)fmt, wall_now(), m, &err),
				 ZMB_OK);
		fclose(m);
		if (fmt == REPORT_JSON) {
			json_t *r = json_loads(buf, 0, NULL);
			ck_assert_ptr_nonnull(r);
			ck_assert_uint_eq(json_array_size(json_object_get(r, "accounts")), 0);
			ck_assert(json_is_null(json_object_get(json_object_get(r, "runs"), "last")));
			json_decref(r);
		}
		if (fmt == REPORT_PROM) {
			prom_check(buf, NULL);
			ck_assert_double_eq(prom_value(buf, "zmbatch_accounts{state=\"pending\"}"), 0);
		}
		free(buf);
	}
	state_close(st);
	tu_rmrf(dir);
	free(dir);
	free(db);
}
END_TEST

/* ---- HTML (report_html.c) ---- */

/* The HTML of a fixture, also kept as DIR/report.html (ZMBATCH_HTML_KEEP=DIR) to look at. */
static char *render_html_db(sqlite3 *db, const char *job, const char *keep_as)
{
	char *buf = NULL, *err = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(m);
	enum zmb_rc rc = report_render(db, job, REPORT_HTML, wall_now(), m, &err);
	fclose(m);
	ck_assert_msg(rc == ZMB_OK, "render html: %s", err ? err : "?");
	ck_assert_uint_eq(strlen(buf), len);
	free(err);
	const char *dir = getenv("ZMBATCH_HTML_KEEP");
	if (dir && keep_as) {
		char *p = xasprintf("%s/%s.html", dir, keep_as);
		FILE *o = fopen(p, "w");
		if (o) {
			fputs(buf, o);
			fclose(o);
		}
		free(p);
	}
	return buf;
}

static int count_of(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static const char *const html_sections[] = { "summary", "progress", "throughput", "failures", "sizes",
					     "slowest", "servers", "stages", "runs" };

/* Every section once, one page, nothing that runs or loads anything. */
static void html_check_page(const char *h)
{
	ck_assert_msg(!strncmp(h, "<!DOCTYPE html>\n<html lang=\"en\">", 31), "%.80s", h);
	ck_assert(tu_contains(h, "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
	ck_assert(tu_contains(h, "@media print"));
	ck_assert_msg(tu_contains(h, "</body>\n</html>\n"), "truncated page");
	for (size_t i = 0; i < sizeof html_sections / sizeof *html_sections; i++) {
		char *id = xasprintf("<section id=\"%s\">", html_sections[i]);
		ck_assert_msg(count_of(h, id) == 1, "%s: %d times", id, count_of(h, id));
		free(id);
	}
	ck_assert_int_eq(count_of(h, "<section"), count_of(h, "</section>"));
	ck_assert_int_eq(count_of(h, "<svg"), count_of(h, "</svg>"));
	ck_assert_int_eq(count_of(h, "<table"), count_of(h, "</table>"));
	ck_assert_msg(!strstr(h, "<script") && !strstr(h, "<link") && !strstr(h, "<img") &&
		      !strstr(h, "<iframe") && !strstr(h, "@import"), "active content");
	ck_assert_msg(!matches("<[a-zA-Z][^>]*[ \t\n/]on[a-zA-Z]+=", h), "an event handler attribute");
}

/* The same page with no data text in it: no URL of any kind. */
static void html_check_no_url(const char *h)
{
	static const char *const bad[] = { "http://", "https://", "src=", "url(", "href=", "//" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(!strstr(h, bad[i]), "'%s' in the page: %.80s", bad[i], strstr(h, bad[i]));
}

/* The integer of <data value="N"> right after the marker (which must occur once). */
static long long html_value(const char *h, const char *marker)
{
	ck_assert_msg(count_of(h, marker) == 1, "%s: %d times", marker, count_of(h, marker));
	const char *p = strstr(h, marker) + strlen(marker);
	const char *d = strstr(p, "<data value=\"");
	ck_assert_ptr_nonnull(d);
	ck_assert_msg(d - p < 80, "no value after %s", marker);
	return strtoll(d + 13, NULL, 10);
}

/*
 * The fixture's page: every section and chart, and the figures equal to the
 * JSON report's for the same DB (counts of every state, bytes, verdicts).
 */
START_TEST(test_html_sections)
{
	struct fixture f;
	fixture_open(&f);
	set_hosts(&f);
	set_verdicts(&f);
	ck_assert_int_eq(state_server_pace(f.st, "source", "zcs1.example.com", 90, 3, 4.5, 20, 4), ZMB_OK);
	char *h = render_html_db(state_db(f.st), NULL, "fixture");
	json_t *j = render_json(&f);
	html_check_page(h);
	html_check_no_url(h);
	ck_assert(tu_contains(h, "<title>zmbatch report: testjob</title>"));
	/* the four charts, each with a title and its figures as text */
	static const char *const figs[] = { "progress", "throughput", "failures", "sizes" };
	for (size_t i = 0; i < 4; i++) {
		char *fig = xasprintf("<figure id=\"fig-%s\"><svg viewBox=", figs[i]);
		char *t = xasprintf("<title id=\"t-%s\">", figs[i]);
		ck_assert_msg(tu_contains(h, fig) && tu_contains(h, t), "%s", figs[i]);
		free(fig);
		free(t);
	}
	/* counts and bytes: the JSON's */
	json_t *counts = jget(j, "counts");
	const char *k;
	json_t *v;
	int states = 0;
	json_object_foreach(counts, k, v) {
		char *m = xasprintf("<tr id=\"count-%s\">", k);
		ck_assert_int_eq(html_value(h, m), json_integer_value(v));
		free(m);
		states++;
	}
	ck_assert_int_eq(states, 7);
	ck_assert_int_eq(html_value(h, "id=\"k-done\""), jint(counts, "done"));
	ck_assert_int_eq(html_value(h, "id=\"k-failed\""), jint(counts, "failed"));
	ck_assert_int_eq(html_value(h, "id=\"k-pending\""), jint(counts, "pending"));
	ck_assert_int_eq(html_value(h, "id=\"k-flight\""),
			 jint(counts, "exporting") + jint(counts, "exported") + jint(counts, "importing"));
	ck_assert_int_eq(html_value(h, "id=\"k-accounts\""), 8);
	ck_assert_int_eq(html_value(h, "<span id=\"bytes-done\">"), jint(j, "bytes_done"));
	ck_assert_int_eq(html_value(h, "<span id=\"bytes-total\">"), jint(j, "bytes_total"));
	ck_assert_int_eq(html_value(h, "id=\"k-verified\""), jint(jget(j, "verify_counts"), "ok"));
	ck_assert_int_eq(html_value(h, "id=\"k-mismatch\""), jint(jget(j, "verify_counts"), "mismatch"));
	ck_assert_int_eq(html_value(h, "id=\"k-unverifiable\""),
			 jint(jget(j, "verify_counts"), "unverifiable"));
	/* the progress chart's total: the done accounts and their bytes (all have a finish time) */
	ck_assert_int_eq(html_value(h, "<span id=\"progress-total\">"), jint(counts, "done"));
	ck_assert(tu_contains(h, "<data value=\"6000\">5.9 KiB</data></span> done between"));
	ck_assert_int_eq(html_value(h, "<span id=\"throughput-total\">"), 6000);
	/* a band per run (2 runs; the 'reset' row is not one), a bar per class */
	ck_assert_int_eq(count_of(h, "<rect class=\"run\""), 2);
	ck_assert(tu_contains(h, "<title>permanent: 1 failed</title>"));
	ck_assert(tu_contains(h, "<title>temporary: 1 failed</title>"));
	/* failures and mismatches with what to do: a3 and a4 failed, a2 mismatch (a3 also unverifiable) */
	ck_assert_int_eq(count_of(h, "<tr class=\"problem\">"), 3);
	ck_assert(tu_contains(h, "quota &quot;exceeded&quot;, see: line1\nline2"));
	ck_assert(tu_contains(h, A2_DETAIL));
	ck_assert(tu_contains(h, "<code>zmbatch verify --reset-mismatched</code>"));
	ck_assert(tu_contains(h, "<code>zmbatch reset ACCOUNT</code>"));
	ck_assert(tu_contains(h, "<code>zmbatch run --retry-failed</code>"));
	/* largest still to migrate: a6 (4000, importing), a5 (2000), a8 (100), largest first */
	const char *lg = strstr(h, "<table id=\"largest\">");
	ck_assert_ptr_nonnull(lg);
	const char *a6 = strstr(lg, "a6@ex.com"), *a5 = strstr(lg, "a5@ex.com"), *a8 = strstr(lg, "a8@ex.com");
	ck_assert_msg(a6 && a5 && a8 && a6 < a5 && a5 < a8 && a8 < strstr(lg, "</table>"), "largest order");
	/* slowest: a2 (50 s) before a1 (10.5 s); servers; the stages; runs */
	const char *sl = strstr(h, "<section id=\"slowest\">");
	ck_assert(strstr(sl, "a2@ex.com") < strstr(sl, "a1@ex.com"));
	ck_assert(tu_contains(h, "<data value=\"50.000\">50s</data>"));
	ck_assert(tu_contains(h, "<td class=\"acct\">zcs1.example.com</td><td class=\"n\">4</td>"
			      "<td class=\"n\">2</td><td class=\"n\">1</td>"));
	ck_assert(tu_contains(h, "<td class=\"n\">90</td><td class=\"n\">3</td>"));
	ck_assert(tu_contains(h, "<td>replcheck</td><td>ldap-replcheck</td><td class=\"st-done\">done</td>"));
	ck_assert(tu_contains(h, "we&quot;ird\\stage\nx"));
	ck_assert(tu_contains(h, "<code>run --delta</code>"));
	ck_assert(!tu_contains(h, "<code>reset</code>"));

	/* --output: mode 0600 (account names), the same page */
	char *err = NULL, *path = xasprintf("%s/report.html", f.dir);
	struct stat sb;
	umask(022);
	ck_assert_int_eq(report_render_file(state_db(f.st), NULL, REPORT_HTML, f.now, path, &err), ZMB_OK);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	char *a = tu_read(path), *b = render(&f, REPORT_HTML);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	free(path);
	free(err);
	json_decref(j);
	free(h);
	fixture_close(&f);
}
END_TEST

#define EVIL_ACCT "<script>alert(1)</script>@x"
#define EVIL_ERR "\"><img src=x onerror=alert(1)>"

/* Text from the servers and the DB renders as text, wherever it appears. */
START_TEST(test_html_escaping)
{
	struct fixture f;
	fixture_open(&f);
	struct state *st = f.st;
	ck_assert_int_eq(state_account_upsert(st, EVIL_ACCT, EVIL_ACCT "'t", 20, 3000), ZMB_OK);
	set_acct(st, EVIL_ACCT, "failed", 2, 0, -1, "<em>cls", EVIL_ERR, f.now - 50, f.now - 40);
	ck_assert_int_eq(state_account_upsert(st, "<i>slow</i>@x", "<i>slow</i>@x", 21, 70000), ZMB_OK);
	set_acct(st, "<i>slow</i>@x", "done", 1, 70000, 999, NULL, NULL, f.now - 1100, f.now - 100);
	ck_assert_int_eq(state_account_upsert(st, "<u>big</u>@x", "<u>big</u>@x", 22, 1LL << 40), ZMB_OK);
	ck_assert_int_eq(state_server_count(st, "target", "<iframe><svg onload=alert(1)>", 1, 0, 0), ZMB_OK);
	ck_assert_int_eq(state_stage_ensure(st, "<object>", "exec", 3), ZMB_OK);
	ck_assert_int_eq(state_stage_begin(st, "<object>", f.run2), ZMB_OK);
	ck_assert_int_eq(state_stage_end(st, "<object>", false, "<marquee>out", "<embed src=x>"), ZMB_OK);
	/* bytes that are not UTF-8 (5000 stray continuation bytes), a C1 control
	 * and a right-to-left override: U+FFFD, bounded, and blanks */
	char *junk = xcalloc(1, 5000 + 64);
	memset(junk, 0x80, 5000);
	ck_assert_int_eq(state_account_upsert(st, "rtl\xe2\x80\xaegpj.exe@x", "rtl@x", 23, 10), ZMB_OK);
	set_acct(st, "rtl\xe2\x80\xaegpj.exe@x", "failed", 1, 0, -1, "junk\xc2\x85", junk, f.now - 30, f.now - 20);
	free(junk);
	char *h = render_html_db(state_db(st), "<h1>job</h1>", "escaping");
	html_check_page(h);
	ck_assert_msg(tu_contains(h, "&#xFFFD;&#xFFFD;") && !strchr(h, '\x80'), "stray bytes copied raw");
	ck_assert_msg(!tu_contains(h, "&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;"
				   "&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;"
				   "&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;"
				   "&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;") ||
		      strlen(h) < 200000, "the invalid bytes were not cut");
	ck_assert_msg(tu_contains(h, "rtl gpj.exe@x") && !tu_contains(h, "\xe2\x80\xae"), "bidi override kept");
	ck_assert_msg(tu_contains(h, "junk ") && !tu_contains(h, "\xc2\x85"), "C1 control kept");
	static const char *const raw[] = { "<script", "<img", "<em", "<i>", "<u>", "<svg onload", "<iframe",
					   "<object", "<embed", "<h1>job", "<marquee" };
	for (size_t i = 0; i < sizeof raw / sizeof *raw; i++)
		ck_assert_msg(!strstr(h, raw[i]), "raw '%s' in the page", raw[i]);
	static const char *const esc[] = {
		"<td class=\"acct\">&lt;script&gt;alert(1)&lt;/script&gt;@x <span class=\"dim\">&rarr; "
		"&lt;script&gt;alert(1)&lt;/script&gt;@x&#39;t</span></td>",
		"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;", "&lt;em&gt;cls", "<title>&lt;em&gt;cls: 1 failed</title>",
		"&lt;i&gt;slow&lt;/i&gt;@x", "&lt;u&gt;big&lt;/u&gt;@x", "&lt;svg onload=alert(1)&gt;",
		"&lt;iframe&gt;", "&lt;object&gt;", "&lt;embed src=x&gt;", "&lt;marquee&gt;out",
		"<title>zmbatch report: &lt;h1&gt;job&lt;/h1&gt;</title>",
	};
	for (size_t i = 0; i < sizeof esc / sizeof *esc; i++)
		ck_assert_msg(tu_contains(h, esc[i]), "'%s' not in the page", esc[i]);
	free(h);
	fixture_close(&f);
}
END_TEST

/* 3000 accounts, 1000 failed with long errors: the lists stop at their bounds, the page stays small. */
START_TEST(test_html_bounded)
{
	char *dir = tu_tmpdir("report-html"), *db = xasprintf("%s/s.db", dir), *err = NULL;
	struct state *st = NULL;
	ck_assert_int_eq(state_open(db, IDENT, STATE_WRITE, &st, &err), ZMB_OK);
	ck_assert_int_eq(state_begin(st), ZMB_OK);
	for (int i = 0; i < 3000; i++) {
		char a[64];
		snprintf(a, sizeof a, "user%05d@example.com", i);
		ck_assert_int_eq(state_account_upsert(st, a, a, i, (long long)(i % 700) << 20), ZMB_OK);
	}
	ck_assert_int_eq(state_commit(st), ZMB_OK);
	double now = wall_now();
	int64_t run = 0;
	ck_assert_int_eq(state_run_begin(st, "run", &run), ZMB_OK);
	for (int i = 0; i < 30; i++)
		sql(st, "INSERT INTO runs (started_at, ended_at, pid, host, user, command, exit_status) "
			"VALUES (%f, %f, 1, 'h', 'u', 'run', 0)", now - 90000 + i * 2000, now - 89000 + i * 2000);
	sql(st, "UPDATE accounts SET state = CASE id %% 3 WHEN 0 THEN 'failed' WHEN 1 THEN 'pending' "
		"ELSE 'done' END, bytes = coalesce(size, 0), seconds = (id %% 97) + 0.5, "
		"finished_at = %f - (id * 50), error_class = CASE id %% 3 WHEN 0 THEN 'c' || (id %% 20) END, "
		"last_error = CASE id %% 3 WHEN 0 THEN printf('%%.2000c', 'e') END", now);
	char *h = render_html_db(state_db(st), NULL, "bounded");
	html_check_page(h);
	ck_assert_int_eq(count_of(h, "<tr class=\"problem\">"), 50);
	ck_assert(tu_contains(h, "id=\"problems-more\">The first 50 of 1000;"));
	const char *lg = strstr(h, "<table id=\"largest\">");
	ck_assert_int_eq(count_of(lg, "<tr>") - count_of(strstr(lg, "</table>"), "<tr>"), 11);   /* + header */
	ck_assert(tu_contains(h, "<p class=\"dim\">The newest 20 of 31 runs.</p>"));
	/* 20 classes: the 12 most frequent drawn, the rest as "other" */
	ck_assert_int_eq(count_of(h, "<g class=\"class\">"), 13);
	ck_assert(tu_contains(h, "<title>other: "));
	/* an error text is cut at 400 bytes */
	ck_assert(tu_contains(h, "eeee..."));
	char longest[402];
	memset(longest, 'e', 401);
	longest[401] = '\0';
	ck_assert(!tu_contains(h, longest));
	longest[400] = '\0';
	ck_assert(tu_contains(h, longest));
	size_t len = strlen(h);
	ck_assert_msg(len < 150 * 1024, "page of %zu bytes", len);
	ck_assert_int_eq(html_value(h, "id=\"k-failed\""), 1000);
	ck_assert_int_eq(html_value(h, "<span id=\"progress-total\">"), 1000);
	free(h);
	state_close(st);
	tu_rmrf(dir);
	free(dir);
	free(db);
}
END_TEST

/* Nothing discovered yet; only LDAP stages; a schema-1 DB: each renders every section. */
START_TEST(test_html_empty_old_ldap)
{
	char *dir = tu_tmpdir("report-html"), *db = xasprintf("%s/s.db", dir), *err = NULL;
	struct state *st = NULL;
	ck_assert_int_eq(state_open(db, IDENT, STATE_WRITE, &st, &err), ZMB_OK);
	char *h = render_html_db(state_db(st), "j", "empty");
	html_check_page(h);
	html_check_no_url(h);
	ck_assert(tu_contains(h, "<p id=\"progress-none\">No account done yet.</p>"));
	ck_assert(tu_contains(h, "<span id=\"last-run\">none yet</span>"));
	ck_assert_int_eq(html_value(h, "id=\"k-accounts\""), 0);
	ck_assert_int_eq(count_of(h, "<svg"), 0);
	free(h);

	/* an LDAP-only job: two stages, one failed with its error, one run */
	int64_t run = 0;
	ck_assert_int_eq(state_stage_ensure(st, "replcheck", "ldap-replcheck", 0), ZMB_OK);
	ck_assert_int_eq(state_stage_ensure(st, "promote", "ldap-promote-mmr", 1), ZMB_OK);
	ck_assert_int_eq(state_run_begin(st, "run", &run), ZMB_OK);
	ck_assert_int_eq(state_stage_begin(st, "replcheck", run), ZMB_OK);
	ck_assert_int_eq(state_stage_end(st, "replcheck", true, "in sync", NULL), ZMB_OK);
	ck_assert_int_eq(state_stage_begin(st, "promote", run), ZMB_OK);
	ck_assert_int_eq(state_stage_end(st, "promote", false, NULL, "ldap_modify: Insufficient access (50)"),
			 ZMB_OK);
	ck_assert_int_eq(state_run_end(st, run, 1), ZMB_OK);
	h = render_html_db(state_db(st), "j", "ldap");
	html_check_page(h);
	ck_assert(tu_contains(h, "<td>replcheck</td><td>ldap-replcheck</td><td class=\"st-done\">done</td>"));
	ck_assert(tu_contains(h, "<td>promote</td><td>ldap-promote-mmr</td><td class=\"st-failed\">failed</td>"
			      "<td class=\"n\">1</td>"));
	ck_assert(tu_contains(h, "ldap_modify: Insufficient access (50)"));
	ck_assert(tu_contains(h, "<td class=\"err\"></td><td class=\"err\">in sync</td></tr>"));
	ck_assert(tu_contains(h, "<b>exit 1</b>"));
	free(h);
	state_close(st);

	/* schema 1 (no servers, no verdicts, no provision): read-only, never migrated */
	char *old = xasprintf("%s/old1.db", dir);
	sqlite3 *o = NULL;
	ck_assert_int_eq(sqlite3_open(old, &o), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(o, zmb_schema[0], NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(o, "PRAGMA user_version = 1;"
				      "INSERT INTO meta VALUES ('job_identity', '" IDENT "');"
				      "INSERT INTO accounts (account, target, seq, state, bytes, size, seconds, "
				      "finished_at, updated_at) VALUES ('old@ex.com', 'old@ex.com', 0, 'done', 10, 10, "
				      "1, 1e9, 1e9), ('bad@ex.com', 'bad@ex.com', 1, 'failed', 0, 5, NULL, 1e9, 1e9);",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(o);
	ck_assert_int_eq(state_open(old, NULL, STATE_READONLY, &st, &err), ZMB_OK);
	h = render_html_db(state_db(st), NULL, "old");
	html_check_page(h);
	ck_assert(tu_contains(h, "<title>zmbatch report: testjob</title>"));
	ck_assert_int_eq(html_value(h, "id=\"k-done\""), 1);
	ck_assert_int_eq(html_value(h, "id=\"k-failed\""), 1);
	ck_assert(tu_contains(h, "<p>No server counters recorded.</p>"));
	free(h);
	state_close(st);
	tu_rmrf(dir);
	free(old);
	free(dir);
	free(db);
}
END_TEST

/* ---- scale: 100,000 accounts ---- */

static double time_render(sqlite3 *db, int what, const char *path)
{
	char *err = NULL;
	FILE *o = fopen(path, "w");
	ck_assert_ptr_nonnull(o);
	double t0 = mono_now();
	enum zmb_rc rc = what < 0 ? report_status(db, NULL, "db", wall_now(), o, &err)
		       : what == 9 ? report_accounts(db, -1, o, &err)
				   : report_render(db, NULL, (enum report_format)what, wall_now(), o, &err);
	double t = mono_now() - t0;
	fclose(o);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "?");
	return t;
}

START_TEST(test_scale_100k)
{
	char *dir = tu_tmpdir("report-100k"), *db = xasprintf("%s/s.db", dir), *err = NULL;
	char *out = xasprintf("%s/out", dir);
	struct state *st = NULL;
	ck_assert_int_eq(state_open(db, IDENT, STATE_WRITE, &st, &err), ZMB_OK);
	double t0 = mono_now();
	ck_assert_int_eq(state_begin(st), ZMB_OK);
	for (int i = 0; i < 100000; i++) {
		char a[64];
		snprintf(a, sizeof a, "user%06d@example.com", i);
		ck_assert_int_eq(state_account_upsert(st, a, a, i, (long long)(i % 1000) * 1024), ZMB_OK);
	}
	ck_assert_int_eq(state_commit(st), ZMB_OK);
	double now = wall_now();
	sql(st, "UPDATE accounts SET state = CASE id %% 10 WHEN 0 THEN 'failed' WHEN 1 THEN 'pending' "
		"WHEN 2 THEN 'importing' ELSE 'done' END, bytes = coalesce(size, 0), seconds = (id %% 97) + 0.5, "
		"finished_at = %f - (id %% 3600), started_at = %f - (id %% 3600) - 60, "
		"last_error = CASE id %% 10 WHEN 0 THEN 'mailbox \"x\", gone' END, "
		"error_class = CASE id %% 10 WHEN 0 THEN 'permanent' END", now, now);
	int64_t run = 0;
	ck_assert_int_eq(state_run_begin(st, "run", &run), ZMB_OK);
	sql(st, "INSERT INTO events (at, run_id, account_id, level, message) "
		"SELECT %f, %lld, id, CASE WHEN id %% 10 = 0 THEN 'error' ELSE 'info' END, 'step' "
		"FROM accounts", now, (long long)run);
	sql(st, "INSERT INTO events (at, run_id, account_id, level, message) "
		"SELECT %f, %lld, id, 'info', 'done' FROM accounts", now, (long long)run);
	printf("100k: building the DB took %.2f s\n", mono_now() - t0);
	state_close(st);

	/* a fresh read-only connection, as the commands use */
	ck_assert_int_eq(state_open(db, NULL, STATE_READONLY, &st, &err), ZMB_OK);
	static const char *const names[] = { "text", "csv", "json", "prom", "html" };
	for (int fmt = 0; fmt < 5; fmt++) {
		double t = time_render(state_db(st), fmt, out);
		printf("100k: report --format %s: %.3f s\n", names[fmt], t);
		ck_assert_msg(t < 10, "report %s took %.1f s", names[fmt], t);
		struct stat sb;
		ck_assert_int_eq(stat(out, &sb), 0);
		if (fmt == REPORT_HTML)      /* its lists are bounded: the page does not grow with the accounts */
			ck_assert_msg(sb.st_size < 150 * 1024, "html of %lld bytes", (long long)sb.st_size);
	}
	double t = time_render(state_db(st), -1, out);
	printf("100k: status: %.3f s\n", t);
	ck_assert_msg(t < 10, "status took %.1f s", t);
	t = time_render(state_db(st), 9, out);
	printf("100k: accounts: %.3f s\n", t);
	ck_assert_msg(t < 10, "accounts took %.1f s", t);

	/* the JSON is still complete and valid */
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	ck_assert_int_eq(report_render(state_db(st), NULL, REPORT_JSON, wall_now(), m, &err), ZMB_OK);
	fclose(m);
	json_t *r = json_loads(buf, 0, NULL);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(json_array_size(json_object_get(r, "accounts")), 100000);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "counts"), "failed")), 10000);
	json_decref(r);
	free(buf);
	state_close(st);
	tu_rmrf(dir);
	free(dir);
	free(db);
	free(out);
}
END_TEST

/* ---- the commands, through bin/zmbatch ---- */

static int zmb(struct tu_proc *p, const char *a1, const char *a2, const char *a3, const char *a4,
	       const char *a5, const char *a6)
{
	char *argv[] = { (char *)tu_zmbatch(), (char *)a1, (char *)a2, (char *)a3, (char *)a4,
			 (char *)a5, (char *)a6, NULL };
	memset(p, 0, sizeof *p);
	return tu_run(argv, NULL, 30, p);
}

START_TEST(test_cli_read_commands)
{
	struct fixture f;
	struct tu_proc p;
	fixture_open(&f);

	zmb(&p, "report", "--state", f.db, "--format", "json", NULL);
	ck_assert_msg(p.status == 0, "exit %d: %s", p.status, p.err);
	json_t *r = json_loads(p.out, 0, NULL);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(json_string_value(json_object_get(r, "job")), "testjob");
	json_decref(r);
	tu_proc_release(&p);

	/* --format html without --output: the page on stdout; an unknown format names html */
	zmb(&p, "report", "--state", f.db, "--format", "html", NULL);
	ck_assert_msg(p.status == 0, "exit %d: %s", p.status, p.err);
	html_check_page(p.out);
	ck_assert(tu_contains(p.out, "<title>zmbatch report: testjob</title>"));
	tu_proc_release(&p);
	zmb(&p, "report", "--state", f.db, "--format", "pdf", NULL);
	ck_assert_int_eq(p.status, 64);
	ck_assert_msg(tu_contains(p.err, "text, csv, json, prom or html"), "%s", p.err);
	tu_proc_release(&p);

	char *prom = xasprintf("%s/node/zmbatch.prom", f.dir);
	char *nd = xasprintf("%s/node", f.dir);
	mkdir(nd, 0755);
	zmb(&p, "report", "--state", f.db, "--format", "prom", "--output");
	ck_assert_int_eq(p.status, 64);      /* --output without a value */
	tu_proc_release(&p);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"report", (char *)"--state", f.db,
			 (char *)"--format", (char *)"prom", (char *)"--output", prom, NULL };
	memset(&p, 0, sizeof p);
	tu_run(argv, NULL, 30, &p);
	ck_assert_msg(p.status == 0, "exit %d: %s", p.status, p.err);
	ck_assert_str_eq(p.out, "");
	struct stat sb;
	ck_assert_int_eq(stat(prom, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0644);     /* despite zmbatch's umask 077 */
	char *txt = tu_read(prom);
	prom_check(txt, acct_names);
	free(txt);
	ck_assert_int_eq(count_tmp(nd), 0);
	tu_proc_release(&p);

	zmb(&p, "report", "--state", f.db, "--format", "csv", NULL);
	ck_assert_int_eq(p.status, 0);
	struct csv c;
	ck_assert(csv_parse(p.out, &c));
	ck_assert_uint_eq(c.n, 9);
	csv_release(&c);
	tu_proc_release(&p);

	zmb(&p, "report", "--state", f.db, NULL, NULL, NULL);
	ck_assert_int_eq(p.status, 0);
	ck_assert(tu_contains(p.out, "failures: 2"));
	tu_proc_release(&p);

	zmb(&p, "status", "--state", f.db, NULL, NULL, NULL);
	ck_assert_msg(p.status == 0, "exit %d: %s", p.status, p.err);
	ck_assert(tu_contains(p.out, "a6@ex.com"));
	tu_proc_release(&p);

	zmb(&p, "accounts", "--state", f.db, "--state-filter", "failed", NULL);
	ck_assert_int_eq(p.status, 0);
	ck_assert(tu_contains(p.out, "a3@ex.com\t") && tu_contains(p.out, "a4@ex.com\t"));
	ck_assert(!tu_contains(p.out, "a1@ex.com"));
	tu_proc_release(&p);

	zmb(&p, "accounts", "--state", f.db, "--state-filter", "bogus", NULL);
	ck_assert_int_eq(p.status, 64);
	ck_assert_msg(tu_contains(p.err, "bogus") && tu_contains(p.err, "pending") &&
		      tu_contains(p.err, "skipped"), "%s", p.err);
	tu_proc_release(&p);

	zmb(&p, "accounts", "--state", f.db, "--history", "a3@ex.com", NULL);
	ck_assert_int_eq(p.status, 0);
	ck_assert(tu_contains(p.out, "export failed: HTTP 500"));
	tu_proc_release(&p);

	zmb(&p, "accounts", "--state", f.db, "--history", "nobody@ex.com", NULL);
	ck_assert_int_eq(p.status, 1);
	ck_assert(tu_contains(p.err, "nobody@ex.com"));
	tu_proc_release(&p);

	char *missing = xasprintf("%s/none.db", f.dir);
	for (int i = 0; i < 3; i++) {
		static const char *const cmd[] = { "status", "report", "accounts" };
		zmb(&p, cmd[i], "--state", missing, NULL, NULL, NULL);
		ck_assert_int_eq(p.status, 1);
		ck_assert_msg(tu_contains(p.err, "nothing has run yet"), "%s", p.err);
		tu_proc_release(&p);
		ck_assert_int_ne(access(missing, F_OK), 0);   /* not created */
	}
	free(missing);
	free(prom);
	free(nd);
	fixture_close(&f);
}
END_TEST

START_TEST(test_cli_reset)
{
	struct fixture f;
	struct tu_proc p;
	struct account_row row;
	fixture_open(&f);
	state_close(f.st);
	f.st = NULL;
	char *err = NULL;

	/* an unknown name: nothing changes, the name is given */
	zmb(&p, "reset", "--state", f.db, "a3@ex.com", "nobody@ex.com", NULL);
	ck_assert_int_eq(p.status, 1);
	ck_assert(tu_contains(p.err, "nobody@ex.com"));
	tu_proc_release(&p);

	/* a run holds the lock: 75, nothing changes */
	struct run_lock *lk = NULL;
	ck_assert_int_eq(lock_acquire(f.db, "run", &lk, &err), ZMB_OK);
	zmb(&p, "reset", "--state", f.db, "--failed", NULL, NULL);
	ck_assert_int_eq(p.status, 75);
	ck_assert_msg(tu_contains(p.err, "lock"), "%s", p.err);
	tu_proc_release(&p);
	lock_release(lk);

	ck_assert_int_eq(state_open(f.db, NULL, STATE_READONLY, &f.st, &err), ZMB_OK);
	memset(&row, 0, sizeof row);
	ck_assert_int_eq(state_account_get(f.st, "a3@ex.com", &row), ZMB_OK);
	ck_assert_int_eq(row.state, ACCT_FAILED);
	state_account_release(&row);
	state_close(f.st);
	f.st = NULL;

	zmb(&p, "reset", "--state", f.db, "a3@ex.com", NULL, NULL);
	ck_assert_msg(p.status == 0, "exit %d: %s", p.status, p.err);
	ck_assert_str_eq(p.out, "requeued 1 account\n");
	tu_proc_release(&p);

	zmb(&p, "reset", "--state", f.db, "--failed", NULL, NULL);
	ck_assert_msg(p.status == 0, "exit %d: %s", p.status, p.err);
	ck_assert_str_eq(p.out, "requeued 1 account\n");    /* a4 only, a3 already pending */
	tu_proc_release(&p);

	zmb(&p, "accounts", "--state", f.db, "--state-filter", "failed", NULL);
	ck_assert_int_eq(p.status, 0);
	ck_assert_str_eq(p.out, "");
	tu_proc_release(&p);

	ck_assert_int_eq(state_open(f.db, NULL, STATE_READONLY, &f.st, &err), ZMB_OK);
	memset(&row, 0, sizeof row);
	ck_assert_int_eq(state_account_get(f.st, "a3@ex.com", &row), ZMB_OK);
	ck_assert_int_eq(row.state, ACCT_PENDING);
	ck_assert_int_eq(row.attempts, 0);
	state_account_release(&row);

	zmb(&p, "reset", "--state", f.db, NULL, NULL, NULL);
	ck_assert_int_eq(p.status, 64);
	tu_proc_release(&p);
	free(err);
	fixture_close(&f);
}
END_TEST

/* With -c: the DB path comes from the job, reset checks the job identity. */
START_TEST(test_cli_job_file)
{
	struct fixture f;
	struct tu_proc p;
	fixture_open(&f);
	state_close(f.st);
	f.st = NULL;
	static const char *const tmpl =
		"job = \"%s\";\n"
		"source = { host = \"zcs1.example.com\"; admin_user = \"admin@example.com\";"
		" admin_password_file = \"src.pw\"; };\n"
		"target = { host = \"zcs2.example.com\"; admin_user = \"admin@example.com\";"
		" admin_password_file = \"tgt.pw\"; };\n"
		"migration = { accounts = [ \"a1@ex.com\" ]; working_dir = \"work\"; };\n"
		"state = { db = \"%s\"; };\n";
	char *text = xasprintf(tmpl, "testjob", f.db);
	char *job = tu_write(f.dir, "job.cfg", text, 0600);
	free(text);
	text = xasprintf(tmpl, "otherjob", f.db);
	char *other = tu_write(f.dir, "other.cfg", text, 0600);
	free(text);
	char *bad = tu_write(f.dir, "bad.cfg", "job = ;\n", 0600);

	zmb(&p, "status", "-c", job, NULL, NULL, NULL);
	ck_assert_msg(p.status == 0, "exit %d: %s", p.status, p.err);
	ck_assert(tu_contains(p.out, "job:        testjob"));
	ck_assert(tu_contains(p.out, f.db));
	tu_proc_release(&p);

	zmb(&p, "report", "-c", bad, "--format", "json", NULL);
	ck_assert_int_eq(p.status, 78);
	ck_assert_msg(tu_contains(p.err, "bad.cfg:1"), "%s", p.err);
	tu_proc_release(&p);

	/* the DB belongs to testjob: reset with another job's file changes nothing */
	zmb(&p, "reset", "-c", other, "--failed", NULL, NULL);
	ck_assert_int_eq(p.status, 78);
	ck_assert_msg(tu_contains(p.err, "testjob"), "%s", p.err);
	tu_proc_release(&p);
	zmb(&p, "accounts", "--state", f.db, "--state-filter", "failed", NULL);
	ck_assert(tu_contains(p.out, "a3@ex.com"));
	tu_proc_release(&p);

	zmb(&p, "reset", "-c", job, "--failed", NULL, NULL);
	ck_assert_msg(p.status == 0, "exit %d: %s", p.status, p.err);
	ck_assert_str_eq(p.out, "requeued 2 accounts\n");
	tu_proc_release(&p);
	free(job);
	free(other);
	free(bad);
	fixture_close(&f);
}
END_TEST

/* A run holding a write transaction does not block status/report (WAL). */
START_TEST(test_cli_while_writing)
{
	struct fixture f;
	struct tu_proc p;
	fixture_open(&f);
	sql(f.st, "BEGIN IMMEDIATE");
	sql(f.st, "UPDATE accounts SET state = 'done', bytes = 1 WHERE account = 'a5@ex.com'");
	double t0 = mono_now();
	zmb(&p, "status", "--state", f.db, NULL, NULL, NULL);
	ck_assert_msg(p.status == 0, "exit %d: %s", p.status, p.err);
	ck_assert(tu_contains(p.out, "done 2"));          /* the uncommitted change is not seen */
	tu_proc_release(&p);
	zmb(&p, "report", "--state", f.db, "--format", "prom", NULL);
	ck_assert_int_eq(p.status, 0);
	ck_assert_double_eq(prom_value(p.out, "zmbatch_accounts{state=\"done\"}"), 2);
	tu_proc_release(&p);
	double t = mono_now() - t0;
	/* a reader that waited for the writer would sit out the whole busy timeout
	 * (10 s) and then fail; the bound is well below that, well above noise */
	ck_assert_msg(t < 8, "readers waited %.1f s for the writer", t);
	sql(f.st, "COMMIT");
	zmb(&p, "report", "--state", f.db, "--format", "prom", NULL);
	ck_assert_double_eq(prom_value(p.out, "zmbatch_accounts{state=\"done\"}"), 3);
	tu_proc_release(&p);
	fixture_close(&f);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("report");
	TCase *tc = tcase_create("render");
	tcase_add_test(tc, test_json_contract);
	tcase_add_test(tc, test_json_bad_utf8);
	tcase_add_test(tc, test_csv_reader_selftest);
	tcase_add_test(tc, test_csv_rfc4180);
	tcase_add_test(tc, test_prom_checker_rejects);
	tcase_add_test(tc, test_prom_format);
	tcase_add_test(tc, test_server_pace);
	tcase_add_test(tc, test_server_pace_old_db);
	tcase_add_test(tc, test_text_report);
	tcase_add_test(tc, test_status_running_and_died);
	tcase_add_test(tc, test_status_chunk_progress);
	tcase_add_test(tc, test_accounts_and_history);
	tcase_add_test(tc, test_verify_reports);
	tcase_add_test(tc, test_verify_old_db);
	tcase_add_test(tc, test_provision_json);
	tcase_add_test(tc, test_provision_prom);
	tcase_add_test(tc, test_provision_text);
	tcase_add_test(tc, test_provision_old_db);
	tcase_add_test(tc, test_output_file);
	tcase_add_test(tc, test_empty_db);
	tcase_add_test(tc, test_html_sections);
	tcase_add_test(tc, test_html_escaping);
	tcase_add_test(tc, test_html_bounded);
	tcase_add_test(tc, test_html_empty_old_ldap);
	suite_add_tcase(s, tc);

	tc = tcase_create("scale");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_scale_100k);
	suite_add_tcase(s, tc);

	tc = tcase_create("cli");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_cli_read_commands);
	tcase_add_test(tc, test_cli_reset);
	tcase_add_test(tc, test_cli_job_file);
	tcase_add_test(tc, test_cli_while_writing);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
