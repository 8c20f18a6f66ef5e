/*
 * check_merge.c - state_merge_open (report --merge): several state DBs of
 * one job as one, read by the ordinary report renderers.
 *
 * Each test builds real state DBs with the state API (raw SQL only to pin
 * times and states) and merges them:
 *   - accounts keep the job's order (seq), each once; one found in two DBs
 *     is kept from the first and named in merge_duplicates;
 *   - events, chunks and cutover rows follow their account; runs are
 *     numbered by start, so the last run is the one started last;
 *   - stages combine (failed anywhere = failed), servers add up, provision
 *     objects (run whole by every shard) appear once, the latest;
 *   - the throughput's run time counts shards running side by side once;
 *   - an older schema DB merges with a current one; DBs of two jobs, or a
 *     file that is not a state DB, are refused naming the file.
 */
#define _GNU_SOURCE
#include "report.h"
#include "state.h"
#include "testutil.h"
#include "zmb.h"

#include <check.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IDENT "mergejob|src:7071|dst:7071"

extern const char *const zmb_schema[];

static char *dir;

static void setup(void)
{
	dir = tu_tmpdir("merge");
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	tu_rmrf(dir);
	free(dir);
	dir = NULL;
}

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
	sqlite3_free(e);
	free(q);
}

/* A shard DB: accounts names[i] at seq seqs[i], done with bytes 100*(seq+1);
 * one run [start, start + 100]; stage "mail" in stage_state. */
static char *shard_db(const char *name, const char *ident, const char *const *names, const int *seqs,
		      size_t n, double start, const char *stage_state)
{
	char *path = xasprintf("%s/%s", dir, name), *err = NULL;
	struct state *st = NULL;
	int64_t run = 0;
	ck_assert_msg(state_open(path, ident, STATE_WRITE, &st, &err) == ZMB_OK, "open: %s", err);
	ck_assert_int_eq(state_stage_ensure(st, "mail", "migrate", 0), ZMB_OK);
	ck_assert_int_eq(state_run_begin(st, "run --shard x", &run), ZMB_OK);
	ck_assert_int_eq(state_run_end(st, run, 0), ZMB_OK);
	sql(st, "UPDATE runs SET started_at = %f, ended_at = %f WHERE id = %lld", start, start + 100,
	    (long long)run);
	sql(st, "UPDATE stages SET state = '%s', attempts = 1, error = %s WHERE name = 'mail'", stage_state,
	    strcmp(stage_state, "failed") ? "NULL" : "'shard broke'");
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(state_account_upsert(st, names[i], names[i], seqs[i], 1000), ZMB_OK);
		sql(st, "UPDATE accounts SET state = 'done', bytes = %d, finished_at = %f, owner_run = %lld "
			"WHERE account = '%s'", 100 * (seqs[i] + 1), start + 50, (long long)run, names[i]);
		sql(st, "INSERT INTO events (at, run_id, account_id, stage, level, message) SELECT %f, %lld, id, "
			"'mail', 'info', 'moved ' || account FROM accounts WHERE account = '%s'",
		    start + 50, (long long)run, names[i]);
	}
	ck_assert_int_eq(state_server_count(st, "source", "src.example.com", 2, 1, 0), ZMB_OK);
	state_close(st);
	free(err);
	return path;
}

static struct state *merge(char **paths, size_t n)
{
	struct state *m = NULL;
	char *err = NULL;
	enum zmb_rc rc = state_merge_open((const char *const *)paths, n, &m, &err);
	ck_assert_msg(rc == ZMB_OK, "merge: %s", err ? err : "?");
	free(err);
	return m;
}

static json_t *json_of(struct state *m)
{
	char *buf = NULL, *err = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ck_assert_int_eq(report_render(state_db(m), NULL, REPORT_JSON, wall_now(), f, &err), ZMB_OK);
	fclose(f);
	json_t *j = json_loads(buf, 0, NULL);
	ck_assert_msg(j != NULL, "%s", buf);
	free(buf);
	return j;
}

static long long one_int(struct state *m, const char *q)
{
	sqlite3_stmt *s = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(state_db(m), q, -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	long long v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

START_TEST(test_order_runs_stages_servers)
{
	static const char *const a0[] = { "c@ex.com", "a@ex.com" };
	static const char *const a1[] = { "b@ex.com", "d@ex.com" };
	static const int s0[] = { 2, 0 }, s1[] = { 1, 3 };
	/* shard 1 ran first and later than shard 0 started: overlapping runs */
	char *p[2] = { shard_db("s0.db", IDENT, a0, s0, 2, 1000, "done"),
		       shard_db("s1.db", IDENT, a1, s1, 2, 950, "failed") };
	struct state *m = merge(p, 2);
	json_t *j = json_of(m);
	json_t *acc = json_object_get(j, "accounts");
	ck_assert_uint_eq(json_array_size(acc), 4);
	static const char *const order[] = { "a@ex.com", "b@ex.com", "c@ex.com", "d@ex.com" };
	for (size_t i = 0; i < 4; i++) {
		json_t *o = json_array_get(acc, i);
		ck_assert_str_eq(json_string_value(json_object_get(o, "account")), order[i]);
		ck_assert_int_eq(json_integer_value(json_object_get(o, "bytes")), 100 * (long long)(i + 1));
	}
	ck_assert_int_eq(json_integer_value(json_object_get(j, "bytes_done")), 1000);
	/* a stage failed in one shard is failed */
	json_t *st = json_array_get(json_object_get(j, "stages"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "failed");
	ck_assert_str_eq(json_string_value(json_object_get(st, "error")), "shard broke");
	/* runs: 2, the last the one started last (shard 0's, at 1000), and the
	 * run time is the union [950, 1100] = 150 s, not 200 */
	json_t *runs = json_object_get(j, "runs");
	ck_assert_int_eq(json_integer_value(json_object_get(runs, "count")), 2);
	ck_assert_double_eq_tol(json_real_value(json_object_get(runs, "seconds_total")), 150, 0.01);
	json_t *last = json_object_get(runs, "last");
	ck_assert_double_eq_tol(json_real_value(json_object_get(last, "duration_seconds")), 100, 0.01);
	ck_assert_msg(tu_contains(json_string_value(json_object_get(last, "started_at")), "T00:16:40"), "%s",
		      json_string_value(json_object_get(last, "started_at")));
	/* servers add up */
	json_t *srv = json_array_get(json_object_get(j, "servers"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(srv, "auth_requests")), 4);
	ck_assert_int_eq(json_integer_value(json_object_get(srv, "token_refreshes")), 2);
	/* events follow their account, and each names it */
	ck_assert_int_eq(one_int(m, "SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id "
				 "WHERE e.message = 'moved ' || a.account"), 4);
	ck_assert_int_eq(one_int(m, "SELECT count(*) FROM accounts a JOIN runs r ON r.id = a.owner_run "
				 "WHERE r.started_at = CASE WHEN a.account IN ('a@ex.com', 'c@ex.com') "
				 "THEN 1000 ELSE 950 END"), 4);
	/* the per-DB figures */
	json_t *mg = json_object_get(j, "merge");
	ck_assert(json_is_true(json_object_get(mg, "ok")));
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(mg, "dbs"), 1),
							    "bytes_moved")), 200 + 400);
	json_decref(j);
	state_close(m);
	free(p[0]);
	free(p[1]);
}
END_TEST

START_TEST(test_duplicate_kept_once_and_named)
{
	static const char *const a0[] = { "a@ex.com", "b@ex.com" };
	static const char *const a1[] = { "b@ex.com", "c@ex.com" };
	static const int s0[] = { 0, 1 }, s1[] = { 1, 2 };
	static const char *const a2[] = { "b@ex.com" };
	char *p[3] = { shard_db("s0.db", IDENT, a0, s0, 2, 1000, "done"),
		       shard_db("s1.db", IDENT, a1, s1, 2, 1000, "done"),
		       shard_db("s2.db", IDENT, a2, s1, 1, 1000, "done") };
	struct state *m = merge(p, 3);
	json_t *j = json_of(m);
	ck_assert_uint_eq(json_array_size(json_object_get(j, "accounts")), 3);
	json_t *mg = json_object_get(j, "merge");
	ck_assert(json_is_false(json_object_get(mg, "ok")));
	json_t *d = json_array_get(json_object_get(mg, "duplicates"), 0);
	/* one account, in three DBs: two rows, one account counted */
	ck_assert_uint_eq(json_array_size(json_object_get(mg, "duplicates")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "counts"), "done")), 3);
	ck_assert_str_eq(json_string_value(json_object_get(d, "account")), "b@ex.com");
	ck_assert_str_eq(json_string_value(json_object_get(d, "db")), p[0]);
	ck_assert_str_eq(json_string_value(json_object_get(d, "also_in")), p[1]);
	/* the kept copy's events only */
	ck_assert_int_eq(one_int(m, "SELECT count(*) FROM events"), 3);
	json_decref(j);
	/* the text names it */
	char *buf = NULL, *err = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ck_assert_int_eq(report_render(state_db(m), NULL, REPORT_TEXT, wall_now(), f, &err), ZMB_OK);
	fclose(f);
	ck_assert_msg(tu_contains(buf, "ERROR: account b@ex.com is in two state DBs"), "%s", buf);
	ck_assert_msg(tu_contains(buf, "merged: 3 state DB(s), 5 account(s)"), "%s", buf);
	ck_assert_msg(tu_contains(buf, "ERROR: 1 account(s) in more than one state DB"), "%s", buf);
	free(buf);
	/* the HTML page too: its merge section names the duplicate and both DBs */
	buf = NULL;
	f = open_memstream(&buf, &len);
	ck_assert_int_eq(report_render(state_db(m), NULL, REPORT_HTML, wall_now(), f, &err), ZMB_OK);
	fclose(f);
	ck_assert_msg(tu_contains(buf, "<section id=\"merge\">"), "%s", buf);
	ck_assert_msg(tu_contains(buf, "account <code>b@ex.com</code> is in two state DBs"), "%s", buf);
	ck_assert_msg(tu_contains(buf, "<data value=\"1\">1</data> account(s) in more than one state DB"),
		      "%s", buf);
	free(buf);
	state_close(m);
	free(p[0]);
	free(p[1]);
	free(p[2]);
}
END_TEST

START_TEST(test_provision_once_and_old_schema)
{
	static const char *const a0[] = { "a@ex.com" };
	static const int s0[] = { 0 };
	char *p[4];
	p[0] = shard_db("s0.db", IDENT, a0, s0, 1, 1000, "done");
	/* shard 1: the same provision object, updated later, and a chunked pass */
	static const char *const a1[] = { "b@ex.com" };
	static const int s1[] = { 1 };
	p[1] = shard_db("s1.db", IDENT, a1, s1, 1, 1000, "done");
	struct state *st = NULL;
	char *err = NULL;
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(state_open(p[i], IDENT, STATE_WRITE, &st, &err), ZMB_OK);
		sql(st, "INSERT INTO provision_objects (stage, kind, name, target, state, outcome, updated_at) "
			"VALUES ('prov', 'account', 'a@ex.com', 'a@ex.com', '%s', %s, %d)",
		    i ? "done" : "failed", i ? "'created'" : "NULL", 100 + i);
		sql(st, "INSERT INTO chunks (account_id, idx, kind, mark_ms, done) SELECT id, 0, 'tree', 1, 1 "
			"FROM accounts");
		state_close(st);
	}
	/* shard 2: schema 1 only, as an old zmbatch left it */
	p[2] = xasprintf("%s/old.db", dir);
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(p[2], &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, zmb_schema[0], NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 1;"
				      "INSERT INTO meta VALUES ('job_identity', '" IDENT "');"
				      "INSERT INTO accounts (account, target, seq, state, bytes, updated_at)"
				      " VALUES ('old@ex.com', 'old@ex.com', 2, 'failed', 10, 1e9);",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	/* shard 3: schema 2 (servers without the pacing columns of 003) */
	p[3] = xasprintf("%s/old2.db", dir);
	ck_assert_int_eq(sqlite3_open(p[3], &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, zmb_schema[0], NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, zmb_schema[1], NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 2;"
				      "INSERT INTO meta VALUES ('job_identity', '" IDENT "');"
				      "INSERT INTO servers (role, host, auth_requests, updated_at) "
				      " VALUES ('source', 'src.example.com', 5, 1e9);"
				      "INSERT INTO accounts (account, target, seq, state, bytes, updated_at)"
				      " VALUES ('old2@ex.com', 'old2@ex.com', 3, 'done', 10, 1e9);",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct state *m = merge(p, 4);
	json_t *j = json_of(m);
	ck_assert_uint_eq(json_array_size(json_object_get(j, "accounts")), 4);
	json_t *srv = json_array_get(json_object_get(j, "servers"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(srv, "auth_requests")), 2 + 2 + 5);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "counts"), "failed")), 1);
	json_t *prov = json_object_get(j, "provision");
	ck_assert_int_eq(json_integer_value(json_object_get(prov, "total")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(json_object_get(prov, "counts"),
									    "account"), "created")), 1);
	ck_assert_int_eq(one_int(m, "SELECT count(*) FROM chunks c JOIN accounts a ON a.id = c.account_id"), 2);
	json_decref(j);
	state_close(m);
	for (int i = 0; i < 4; i++)
		free(p[i]);
	free(err);
}
END_TEST

/* Shards still running: the run time is the union up to now, and the job is running. */
START_TEST(test_running_shards)
{
	static const char *const a0[] = { "a@ex.com" };
	static const char *const a1[] = { "b@ex.com" };
	static const int s0[] = { 0 }, s1[] = { 1 };
	double now = wall_now();
	char *p[2] = { shard_db("s0.db", IDENT, a0, s0, 1, now - 200, "done"),
		       shard_db("s1.db", IDENT, a1, s1, 1, now - 1000, "done") };
	/* shard 1: an old run that died (no end), then one running now (this process) */
	struct state *st = NULL;
	char *err = NULL, host[256];
	ck_assert_int_eq(gethostname(host, sizeof host), 0);
	host[sizeof host - 1] = '\0';
	ck_assert_int_eq(state_open(p[1], IDENT, STATE_WRITE, &st, &err), ZMB_OK);
	sql(st, "INSERT INTO runs (started_at, ended_at, pid, host, user, command) VALUES "
		"(%f, NULL, 999999, 'gone', 'u', 'run'), (%f, NULL, %d, '%s', 'u', 'run --shard 1/2')",
	    now - 5000, now - 300, (int)getpid(), host);
	sql(st, "INSERT INTO events (at, run_id, account_id, stage, level, message) VALUES "
		"(%f, NULL, NULL, 'mail', 'error', 'the older error'), "
		"(%f, NULL, NULL, 'mail', 'error', 'the newer error')", now - 4000, now - 3900);
	state_close(st);
	ck_assert_int_eq(state_open(p[0], IDENT, STATE_WRITE, &st, &err), ZMB_OK);
	sql(st, "INSERT INTO events (at, run_id, account_id, stage, level, message) VALUES "
		"(%f, NULL, NULL, 'mail', 'error', 'the newest error, in the first DB')", now - 10);
	state_close(st);
	struct state *m = merge(p, 2);
	json_t *j = json_of(m);
	json_t *runs = json_object_get(j, "runs");
	/* [now-1000, now-900] and [now-300, now]; [now-200, now-100] inside: 400 s */
	ck_assert_double_eq_tol(json_real_value(json_object_get(runs, "seconds_total")), 400, 5);
	json_decref(j);
	/* running: shard 1's run is in progress, though shard 0's started last */
	char *pb = NULL;
	size_t plen = 0;
	FILE *pf = open_memstream(&pb, &plen);
	ck_assert_int_eq(report_render(state_db(m), NULL, REPORT_PROM, wall_now(), pf, &err), ZMB_OK);
	fclose(pf);
	ck_assert_msg(tu_contains(pb, "\nzmbatch_last_run_running 1\n"), "%s", pb);
	free(pb);
	/* the status screen: the newest problems first, whichever DB has them */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ck_assert_int_eq(report_status(state_db(m), NULL, "(merged)", wall_now(), f, &err), ZMB_OK);
	fclose(f);
	char *newest = strstr(buf, "the newest error"), *older = strstr(buf, "the newer error");
	ck_assert_msg(newest && (!older || newest < older), "%s", buf);
	free(buf);
	state_close(m);
	free(p[0]);
	free(p[1]);
	free(err);
}
END_TEST

/* zmbatch --merge warns when the DBs are not one split: a shard missing, or two rules. */
START_TEST(test_cli_warns_about_the_split)
{
	static const char *const a0[] = { "a@ex.com" };
	static const char *const a1[] = { "b@ex.com" };
	static const int s0[] = { 0 }, s1[] = { 1 };
	char *p[2] = { shard_db("s0.db", IDENT, a0, s0, 1, 1000, "done"),
		       shard_db("s1.db", IDENT, a1, s1, 1, 1000, "done") };
	static const char *const meta[2][3] = { { "0/3", "server", "mbox1,mbox2" },
						{ "1/3", "server", "mbox1,mbox2,mbox3" } };
	for (int i = 0; i < 2; i++) {
		struct state *st = NULL;
		char *err = NULL;
		ck_assert_int_eq(state_open(p[i], IDENT, STATE_WRITE, &st, &err), ZMB_OK);
		sql(st, "INSERT INTO meta VALUES ('shard', '%s'), ('shard_by', '%s'), ('shard_servers', '%s')",
		    meta[i][0], meta[i][1], meta[i][2]);
		state_close(st);
		free(err);
	}
	struct tu_proc pr;
	char *argv[] = { (char *)tu_zmbatch(), (char *)"status", (char *)"--merge", p[0], p[1], NULL };
	ck_assert_int_eq(tu_run(argv, NULL, 30, &pr), 0);
	ck_assert_msg(tu_contains(pr.err, "not split by one rule"), "%s", pr.err);
	tu_proc_release(&pr);
	/* the same rule, shard 2/3 missing */
	struct state *st = NULL;
	char *err = NULL;
	ck_assert_int_eq(state_open(p[0], IDENT, STATE_WRITE, &st, &err), ZMB_OK);
	sql(st, "UPDATE meta SET value = 'mbox1,mbox2,mbox3' WHERE key = 'shard_servers'");
	state_close(st);
	ck_assert_int_eq(tu_run(argv, NULL, 30, &pr), 0);
	ck_assert_msg(tu_contains(pr.err, "shard(s) 2/3 not given") && !tu_contains(pr.err, "one rule"),
		      "%s", pr.err);
	tu_proc_release(&pr);
	free(err);
	free(p[0]);
	free(p[1]);
}
END_TEST

START_TEST(test_refusals)
{
	static const char *const a0[] = { "a@ex.com" };
	static const int s0[] = { 0 };
	char *p[2] = { shard_db("s0.db", IDENT, a0, s0, 1, 1000, "done"),
		       shard_db("other.db", "otherjob|x:1|y:2", a0, s0, 1, 1000, "done") };
	struct state *m = NULL;
	char *err = NULL;
	ck_assert_int_eq(state_merge_open((const char *const *)p, 2, &m, &err), ZMB_ECONFIG);
	ck_assert_ptr_null(m);
	ck_assert_msg(tu_contains(err, p[1]) && tu_contains(err, "otherjob") && tu_contains(err, IDENT), "%s", err);
	free(err);
	err = NULL;
	char *junk = xasprintf("%s/junk.db", dir);
	FILE *jf = fopen(junk, "w");
	ck_assert_ptr_nonnull(jf);
	fputs("this is not sqlite, it is a text file of some length......", jf);
	fclose(jf);
	free(p[1]);
	p[1] = junk;
	ck_assert_int_ne(state_merge_open((const char *const *)p, 2, &m, &err), ZMB_OK);
	ck_assert_msg(err && tu_contains(err, junk), "%s", err ? err : "(null)");
	free(err);
	free(p[0]);
	free(junk);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("merge");
	TCase *tc = tcase_create("merge");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_order_runs_stages_servers);
	tcase_add_test(tc, test_duplicate_kept_once_and_named);
	tcase_add_test(tc, test_provision_once_and_old_schema);
	tcase_add_test(tc, test_running_shards);
	tcase_add_test(tc, test_cli_warns_about_the_split);
	tcase_add_test(tc, test_refusals);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
