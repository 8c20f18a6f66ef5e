/*
 * check_e2e_shard.c - end-to-end: one job split over shards (run --shard
 * I/N, issue 16), several bin/zmbatch processes at once against the two
 * simulators (real TLS), each with its own state DB and lock.
 *
 *   - four shards run concurrently finish the job: every account exported
 *     exactly once, the four DBs together hold every account, none twice,
 *     each DB only the accounts that hash to it (shard.h);
 *   - a DB of one shard is refused to a run of another shard or an
 *     unsharded run (78, both shards named);
 *   - one shard killed with SIGKILL mid-run and rerun alone completes the job;
 *   - Kubernetes' and Slurm's variables select the same shard (and DB) as
 *     --shard; half-given or conflicting values are usage errors (64).
 *
 * --shard-by server (tcase by_server, three source mailbox servers, see there):
 *   - three shards at once: each takes one server's accounts (listed and
 *     looked up), every account exported once from its home, done, in the DB
 *     of its server's shard; a rerun changes nothing; status/report --shard
 *     and --merge read the DBs;
 *   - two shards (one takes two servers) and a spare shard (nothing to do,
 *     exit 0); Kubernetes' variables with --shard-by server;
 *   - refused: --shard-by without a shard or with another word (64), a hash
 *     DB run by server and back (78), a server added since the DB's first
 *     run (78, the difference named, nothing written);
 *   - an account with no home (no such account) is shard 0's and fails there;
 *   - a mailbox moved to another server stays in the DB that has it (warning)
 *     and the new server's shard takes it too: report --merge names it; moved
 *     the other way between the shards' runs, no DB holds it: report --merge
 *     names it (every DB records its listing) until its shard runs again.
 *
 * The job: the standard 8 users plus 24 generated ones in example.org.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "e2e.h"
#include "shard.h"
#include "zsim.h"
#include "zmb.h"

#include <check.h>
#include <stdarg.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NGEN 24
#define NSHARDS 4
#define NALL (8 + NGEN)

static struct e2e E;

static const char *const SRC_CFG =
	"{\"name\":\"src\",\"domains\":["
	"{\"name\":\"example.com\",\"system_accounts\":true,\"accounts\":["
	"{\"name\":\"alice@example.com\",\"items\":30,\"item_size\":[500,20000]},"
	"{\"name\":\"bob@example.com\",\"items\":12,\"item_size\":4000,\"folders\":[\"Inbox\",\"Sent\",\"Archive/2023\"]},"
	"{\"name\":\"carol@example.com\",\"sizes\":[100,300000,2000]},"
	"{\"name\":\"dave@example.com\",\"items\":5,\"item_size\":1000},"
	"{\"name\":\"empty@example.com\"}]},"
	"{\"name\":\"example.org\",\"accounts\":["
	"{\"name\":\"erin@example.org\",\"items\":8,\"item_size\":3000},"
	"{\"name\":\"frank@example.org\",\"items\":3,\"item_size\":100},"
	"{\"name\":\"grace@example.org\",\"items\":20,\"item_size\":[100,9000]}],"
	"\"generate\":{\"count\":24,\"prefix\":\"u\",\"items\":[2,5],\"item_size\":[20000,60000],\"seed\":7}}]}";

static const char *const DST_CFG =
	"{\"name\":\"dst\",\"domains\":["
	"{\"name\":\"example.net\",\"accounts\":["
	"{\"name\":\"alice@example.net\"},{\"name\":\"bob@example.net\"},{\"name\":\"carol@example.net\"},"
	"{\"name\":\"dave@example.net\"},{\"name\":\"empty@example.net\"}]},"
	"{\"name\":\"example.org\",\"accounts\":["
	"{\"name\":\"erin@example.org\"},{\"name\":\"frank@example.org\"},{\"name\":\"grace@example.org\"}],"
	"\"generate\":{\"count\":24,\"prefix\":\"u\",\"items\":0}}]}";

/* Every source account of the job. */
static char *ALL[NALL];

static void setup(void)
{
	memset(&E, 0, sizeof E);
	e2e_start(&E, SRC_CFG, DST_CFG);
	e2e_write_job(&E, 2, NULL, NULL);
	for (size_t i = 0; i < E2E_NUSERS; i++)
		ALL[i] = xstrdup(E2E_USERS[i][0]);
	for (int i = 0; i < NGEN; i++)
		ALL[8 + i] = xasprintf("u%04d@example.org", i + 1);
}

static void teardown(void)
{
	for (int i = 0; i < NALL; i++) {
		free(ALL[i]);
		ALL[i] = NULL;
	}
	e2e_stop(&E);
}

static char *shard_db(unsigned i, unsigned n)
{
	return xasprintf("%s/state.shard%u-of-%u.db", E.dir, i, n);
}

static bool exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

static pid_t spawn_shard(unsigned i, unsigned n, const char *tag)
{
	char *sh = xasprintf("%u/%u", i, n);
	char *out = xasprintf("%s/%s%u.out", E.dir, tag, i), *err = xasprintf("%s/%s%u.err", E.dir, tag, i);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job, (char *)"--shard", sh,
			 (char *)"--quiet", NULL };
	pid_t pid = tu_spawn(argv, NULL, out, err);
	ck_assert_int_gt(pid, 0);
	free(sh);
	free(out);
	free(err);
	return pid;
}

/* Print a shard's stderr to ours (the runner log) when it failed. */
static void show_err(unsigned i, const char *tag)
{
	char *path = xasprintf("%s/%s%u.err", E.dir, tag, i);
	char *text = tu_read(path);
	fprintf(stderr, "---- shard %u stderr:\n%s\n", i, text ? text : "(none)");
	free(text);
	free(path);
}

/* zmbatch with extra environment entries ("K=V", NULL-terminated). */
static int zmb_env(struct tu_proc *p, char *const env[], ...)
{
	char *argv[16];
	int n = 0;
	va_list ap;
	argv[n++] = (char *)tu_zmbatch();
	va_start(ap, env);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && n < 15)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	return tu_run(argv, env, 60, p);
}

/*
 * The accounts of one shard DB: each counted in seen[] (index into ALL),
 * each in its shard by the hash; returns how many, *done how many are done.
 */
static int db_accounts(unsigned i, unsigned n, int seen[NALL], int *done)
{
	char *path = shard_db(i, n);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int count = 0;
	*done = 0;
	ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT account, state FROM accounts", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *a = (const char *)sqlite3_column_text(st, 0);
		const char *s = (const char *)sqlite3_column_text(st, 1);
		ck_assert_msg(shard_of(a, n) == i, "%s is in the DB of shard %u/%u, hashes to %u", a, i, n,
			      shard_of(a, n));
		int k;
		for (k = 0; k < NALL && strcmp(ALL[k], a); k++)
			;
		ck_assert_msg(k < NALL, "unknown account %s in %s", a, path);
		seen[k]++;
		count++;
		*done += !strcmp(s, "done");
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(path);
	return count;
}

static long long total_exports(void)
{
	json_t *ss = zsim_stats(E.src);
	long long n = 0;
	for (int k = 0; k < NALL; k++)
		n += zsim_stat_acct(ss, "exports", ALL[k], "count");
	json_decref(ss);
	return n;
}

static char *db_meta(unsigned i, unsigned n, const char *key)
{
	char *path = shard_db(i, n);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *v = NULL;
	ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(path);
	return v;
}

/* The whole job is done over the N shard DBs: each account in exactly one, done. */
static void assert_union_complete(unsigned n)
{
	int seen[NALL] = { 0 }, total = 0, done_total = 0;
	for (unsigned i = 0; i < n; i++) {
		int done = 0;
		total += db_accounts(i, n, seen, &done);
		done_total += done;
		char *label = xasprintf("%u/%u", i, n), *m = db_meta(i, n, "shard");
		ck_assert_msg(m && !strcmp(m, label), "shard DB %u/%u records shard '%s'", i, n, m ? m : "(none)");
		free(m);
		free(label);
	}
	for (int k = 0; k < NALL; k++)
		ck_assert_msg(seen[k] == 1, "%s is in %d shard DBs", ALL[k], seen[k]);
	ck_assert_int_eq(total, NALL);
	ck_assert_int_eq(done_total, NALL);
	ck_assert(!exists(E.db));   /* the unsharded DB never appears */
}

/* One report (stdout) of the merged shard DBs, or of one DB. */
static char *report_of(const char *fmt, char **dbs, const char *whole)
{
	struct tu_proc p;
	int rc = whole ? e2e_zmbatch(&p, 30, "report", "--format", fmt, "--state", whole, (char *)NULL)
		       : e2e_zmbatch(&p, 30, "report", "--format", fmt, "--merge", dbs[0], dbs[1], dbs[2],
				     dbs[3], (char *)NULL);
	ck_assert_msg(rc == 0, "report --format %s %s: exit %d: %s", fmt, whole ? whole : "--merge", rc, p.err);
	char *out = xstrdup(p.out);
	tu_proc_release(&p);
	return out;
}

/* CSV rows without their seconds and target_host columns (the 6th and 9th:
 * the timing differs between runs, and so does target_host, see below). */
static char *csv_without_seconds(const char *csv)
{
	struct buf b = BUF_INIT;
	ck_assert_msg(!strchr(csv, '"'), "a quoted field in %s", csv);
	for (const char *line = csv; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line + 1) : strlen(line);
		int field = 0;
		for (size_t i = 0; i < len; i++) {
			if ((field != 5 && field != 8) || line[i] == ',')
				buf_add(&b, &line[i], 1);
			if (line[i] == ',')
				field++;
		}
		line += len;
	}
	return buf_detach(&b);
}

/* Two reports' texts, equal line by line (the first line that differs is shown). */
static void csv_assert_same(const char *a, const char *b)
{
	int line = 1;
	while (*a && *b) {
		size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
		ck_assert_msg(la == lb && !memcmp(a, b, la), "line %d differs:\n merged: %.*s\n whole:  %.*s",
			      line, (int)(la > 300 ? 300 : la), a, (int)(lb > 300 ? 300 : lb), b);
		a += la + (a[la] != 0);
		b += lb + (b[lb] != 0);
		line++;
	}
	ck_assert_msg(!*a && !*b, "one report has more lines (line %d): %.200s%.200s", line, a, b);
}

/* The lines of a Prometheus report that are about the accounts and bytes. */
static char *prom_accounts(const char *prom)
{
	struct buf b = BUF_INIT;
	static const char *const keep[] = { "zmbatch_accounts{", "zmbatch_done_bytes ", "zmbatch_planned_bytes ",
					    "zmbatch_remaining_bytes ", "zmbatch_accounts_verify{" };
	for (const char *line = prom; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line + 1) : strlen(line);
		for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++)
			if (!strncmp(line, keep[k], strlen(keep[k])))
				buf_add(&b, line, len);
		line += len;
	}
	return buf_detach(&b);
}

/*
 * The merged report of the four shard DBs equals the report of the same job
 * run unsharded: the same accounts in the same order, with the same states,
 * targets, attempts, bytes and verdicts, and the same totals (JSON, CSV
 * without the timing, the Prometheus account and byte families).
 */
static void assert_merged_equals_whole(char **d, const char *whole)
{
	char *mj = report_of("json", d, NULL), *wj = report_of("json", d, whole);
	json_error_t je;
	json_t *m = json_loads(mj, 0, &je), *w = json_loads(wj, 0, &je);
	ck_assert(m && w);
	static const char *const top[] = { "counts", "verify_counts", "total_accounts", "bytes_done",
					   "bytes_total", "bytes_remaining" };
	for (size_t k = 0; k < sizeof top / sizeof top[0]; k++)
		ck_assert_msg(json_equal(json_object_get(m, top[k]), json_object_get(w, top[k])),
			      "%s differs: merged %.300s, whole %.300s", top[k],
			      json_dumps(json_object_get(m, top[k]), JSON_COMPACT),
			      json_dumps(json_object_get(w, top[k]), JSON_COMPACT));
	json_t *ma = json_object_get(m, "accounts"), *wa = json_object_get(w, "accounts");
	ck_assert_int_eq((long long)json_array_size(ma), NALL);
	ck_assert_int_eq((long long)json_array_size(ma), (long long)json_array_size(wa));
	/* not target_host: the second run found the target mailboxes full and
	 * looked their homes up, the first did not need to */
	static const char *const keys[] = { "account", "target", "state", "attempts", "bytes", "error",
					    "verify", "source_host" };
	for (size_t i = 0; i < json_array_size(ma); i++)
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
			json_t *x = json_object_get(json_array_get(ma, i), keys[k]);
			json_t *y = json_object_get(json_array_get(wa, i), keys[k]);
			ck_assert_msg(json_equal(x, y) || (json_is_null(x) && json_is_null(y)),
				      "account %zu: %s differs (merged %.400s, whole %.400s)", i, keys[k],
				      json_dumps(json_array_get(ma, i), 0), json_dumps(json_array_get(wa, i), 0));
		}
	/* the stages combined: the migrate stage done, as in the whole run */
	json_t *ms = json_object_get(m, "stages"), *ws = json_object_get(w, "stages");
	ck_assert_int_eq((long long)json_array_size(ms), (long long)json_array_size(ws));
	for (size_t i = 0; i < json_array_size(ms); i++)
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ms, i), "state")),
				 json_string_value(json_object_get(json_array_get(ws, i), "state")));
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(m, "runs"), "count")), NSHARDS + 1);
	json_decref(m);
	json_decref(w);
	free(mj);
	free(wj);

	char *mc = report_of("csv", d, NULL), *wc = report_of("csv", d, whole);
	char *mc2 = csv_without_seconds(mc), *wc2 = csv_without_seconds(wc);
	csv_assert_same(mc2, wc2);
	char *mp = report_of("prom", d, NULL), *wp = report_of("prom", d, whole);
	char *mp2 = prom_accounts(mp), *wp2 = prom_accounts(wp);
	ck_assert_msg(tu_contains(mp2, "zmbatch_accounts{state=\"done\"} 32"), "%s", mp2);
	csv_assert_same(mp2, wp2);
	free(mc);
	free(wc);
	free(mc2);
	free(wc2);
	free(mp);
	free(wp);
	free(mp2);
	free(wp2);
}

START_TEST(test_four_shards_concurrently)
{
	pid_t pid[NSHARDS];
	for (unsigned i = 0; i < NSHARDS; i++)
		pid[i] = spawn_shard(i, NSHARDS, "run");
	for (unsigned i = 0; i < NSHARDS; i++) {
		int rc = tu_wait(pid[i], 90);
		if (rc != 0)
			show_err(i, "run");
		ck_assert_msg(rc == 0, "shard %u/%d exit %d", i, NSHARDS, rc);
	}
	assert_union_complete(NSHARDS);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	for (int k = 0; k < NALL; k++) {
		ck_assert_msg(zsim_stat_acct(ss, "exports", ALL[k], "count") == 1, "%s exported %lld times",
			      ALL[k], zsim_stat_acct(ss, "exports", ALL[k], "count"));
		if (k >= 8)
			ck_assert_str_eq(zsim_fingerprint(ss, ALL[k]), zsim_fingerprint(ds, ALL[k]));
	}
	json_decref(ss);
	json_decref(ds);

	/* the DB of shard 1/4 to a run of shard 1/3 (--state): refused, both named */
	struct tu_proc p;
	char *db1 = shard_db(1, NSHARDS);
	int rc = e2e_zmbatch(&p, 30, "run", "-c", E.job, "--shard", "1/3", "--state", db1, (char *)NULL);
	ck_assert_int_eq(rc, EXIT_CONFIG);
	ck_assert_msg(tu_contains(p.err, "shard 1/4") && tu_contains(p.err, "shard 1/3"), "%s", p.err);
	tu_proc_release(&p);
	/* ... and to an unsharded run */
	rc = e2e_zmbatch(&p, 30, "run", "-c", E.job, "--state", db1, (char *)NULL);
	ck_assert_int_eq(rc, EXIT_CONFIG);
	ck_assert_msg(tu_contains(p.err, "belongs to shard 1/4"), "%s", p.err);
	tu_proc_release(&p);
	/* the read and reset side compares too when a shard is named */
	rc = e2e_zmbatch(&p, 30, "reset", "-c", E.job, "--shard", "2/3", "--state", db1, "--failed",
			 (char *)NULL);
	ck_assert_int_eq(rc, EXIT_CONFIG);
	ck_assert_msg(tu_contains(p.err, "shard 1/4") && tu_contains(p.err, "shard 2/3"), "%s", p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "run", "-c", E.job, "--shard", "1/4", (char *)NULL), 0);
	tu_proc_release(&p);
	/* the read side finds the shard's DB by --shard */
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "status", "-c", E.job, "--shard", "1/4", (char *)NULL), 0);
	ck_assert_msg(tu_contains(p.out, "done"), "%s", p.out);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "-c", E.job, "--shard", "3/4", "--format", "json",
				     (char *)NULL), 0);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "status", "-c", E.job, (char *)NULL), 1);   /* no unsharded DB */
	tu_proc_release(&p);

	/* report --merge: the four DBs read together, counts adding up */
	char *d[NSHARDS];
	for (unsigned i = 0; i < NSHARDS; i++)
		d[i] = shard_db(i, NSHARDS);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--format", "json", "--merge", d[0], d[1], d[2], d[3],
				     (char *)NULL), 0);
	json_error_t je;
	json_t *doc = json_loads(p.out, 0, &je);
	ck_assert_msg(doc != NULL, "merged report is not JSON: %s", p.out);
	json_t *mg = json_object_get(doc, "merge");
	json_t *tot = json_object_get(mg, "total");
	ck_assert_int_eq(json_integer_value(json_object_get(tot, "accounts")), NALL);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(tot, "counts"), "done")), NALL);
	ck_assert_int_eq((long long)json_array_size(json_object_get(mg, "duplicates")), 0);
	ck_assert(json_is_true(json_object_get(mg, "ok")));
	long long sum = 0;
	for (unsigned i = 0; i < NSHARDS; i++) {
		json_t *one = json_array_get(json_object_get(mg, "dbs"), i);
		char *label = xasprintf("%u/%d", i, NSHARDS);
		ck_assert_str_eq(json_string_value(json_object_get(one, "shard")), label);
		sum += json_integer_value(json_object_get(one, "accounts"));
		free(label);
	}
	ck_assert_int_eq(sum, NALL);
	/* the whole report of the job: every account, in the job's order */
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "counts"), "done")), NALL);
	ck_assert_int_eq((long long)json_array_size(json_object_get(doc, "accounts")), NALL);
	json_decref(doc);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "status", "--merge", d[0], d[1], d[2], d[3], (char *)NULL), 0);
	ck_assert_msg(tu_contains(p.out, "merged: 4 state DB(s), 32 account(s)"), "%s", p.out);
	ck_assert_msg(tu_contains(p.out, "done 32"), "%s", p.out);
	tu_proc_release(&p);
	/* and the HTML page of the four, with its merge section */
	char *page = xasprintf("%s/merged.html", E.dir);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--format", "html", "--output", page, "--merge", d[0], d[1],
				     d[2], d[3], (char *)NULL), 0);
	tu_proc_release(&p);
	char *html = tu_read(page);
	ck_assert_ptr_nonnull(html);
	ck_assert_msg(tu_contains(html, "<section id=\"merge\">") && tu_contains(html, "<data value=\"32\">"),
		      "%.2000s", html);
	free(html);
	free(page);
	/* an account in two DBs is an error named in the report, in every format
	 * (a copy of shard 1's DB: the same file twice is refused as such) */
	char *copy = xasprintf("%s/copy-of-1.db", E.dir);
	char *cp = xasprintf("cp '%s' '%s'", d[1], copy);
	ck_assert_int_eq(system(cp), 0);
	free(cp);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--merge", d[0], d[1], copy, (char *)NULL), 1);
	ck_assert_msg(tu_contains(p.out, "ERROR: account ") && tu_contains(p.out, copy), "%s", p.out);
	ck_assert_msg(tu_contains(p.err, "warning: --merge: the 3 DBs are not the shards"), "%s", p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--format", "prom", "--merge", d[0], d[1], copy,
				     (char *)NULL), 1);
	ck_assert_msg(tu_contains(p.out, "zmbatch_merge_duplicate_accounts ") &&
		      !tu_contains(p.out, "zmbatch_merge_duplicate_accounts 0\n"), "%s", p.out);
	ck_assert_msg(tu_contains(p.err, "more than one state DB"), "%s", p.err);
	tu_proc_release(&p);
	/* usage: the same file twice, --output over an input, options after the DBs, -c */
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--merge", d[0], d[1], d[1], (char *)NULL), EXIT_USAGE);
	ck_assert_msg(tu_contains(p.err, "are the same file"), "%s", p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--output", copy, "--merge", d[0], copy, (char *)NULL),
			 EXIT_USAGE);
	ck_assert_msg(tu_contains(p.err, "is one of the DBs to merge"), "%s", p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--merge", d[0], "--format", "json", (char *)NULL),
			 EXIT_USAGE);
	ck_assert_msg(tu_contains(p.err, "options go first"), "%s", p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--merge", "-c", E.job, d[0], (char *)NULL), EXIT_USAGE);
	tu_proc_release(&p);
	/* a missing shard is warned about */
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "status", "--merge", d[0], d[1], d[3], (char *)NULL), 0);
	ck_assert_msg(tu_contains(p.err, "shard(s) 2/4 not given"), "%s", p.err);
	tu_proc_release(&p);
	free(copy);

	/* the same job run unsharded (its own DB) reports the same accounts,
	 * states and bytes as the merged shards, in every format */
	char *whole = xasprintf("%s/whole.db", E.dir);
	ck_assert_int_eq(e2e_zmbatch(&p, 120, "run", "-c", E.job, "--state", whole, (char *)NULL), 0);
	tu_proc_release(&p);
	assert_merged_equals_whole(d, whole);
	free(whole);
	for (unsigned i = 0; i < NSHARDS; i++)
		free(d[i]);
	free(db1);
}
END_TEST

START_TEST(test_kill_one_shard_then_rerun_it)
{
	/* the shard with the most accounts is the one killed */
	unsigned victim = 0, per[NSHARDS] = { 0 };
	for (int k = 0; k < NALL; k++)
		per[shard_of(ALL[k], NSHARDS)]++;
	for (unsigned i = 1; i < NSHARDS; i++)
		if (per[i] > per[victim])
			victim = i;
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":200000}"));
	pid_t pid[NSHARDS];
	for (unsigned i = 0; i < NSHARDS; i++)
		pid[i] = spawn_shard(i, NSHARDS, "run");
	char *vdb = shard_db(victim, NSHARDS);
	long long done = 0;
	for (int t = 0; t < 400; t++) {
		tu_sleep(0.05);
		if (exists(vdb) && e2e_db_int(vdb, "SELECT count(*) FROM sqlite_master WHERE name='accounts'") == 1 &&
		    (done = e2e_db_int(vdb, "SELECT count(*) FROM accounts WHERE state='done'")) >= 1)
			break;
	}
	kill(pid[victim], SIGKILL);
	ck_assert_int_eq(tu_wait(pid[victim], 10), 128 + SIGKILL);
	long long left = e2e_db_int(vdb, "SELECT count(*) FROM accounts WHERE state<>'done'");
	ck_assert_msg(done >= 1 && left >= 1, "shard %u killed with %lld done, %lld left", victim, done, left);
	for (unsigned i = 0; i < NSHARDS; i++) {
		if (i == victim)
			continue;
		int rc = tu_wait(pid[i], 90);
		if (rc != 0)
			show_err(i, "run");
		ck_assert_msg(rc == 0, "shard %u exit %d", i, rc);
	}
	json_t *ss = zsim_stats(E.src);
	long long exports_before[NALL];
	for (int k = 0; k < NALL; k++)
		exports_before[k] = zsim_stat_acct(ss, "exports", ALL[k], "count");
	json_decref(ss);

	/* only the killed shard again: it recovers and completes the job */
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":0}"));
	struct tu_proc p;
	char *sh = xasprintf("%u/%d", victim, NSHARDS);
	int rc = e2e_zmbatch(&p, 90, "run", "-c", E.job, "--shard", sh, (char *)NULL);
	ck_assert_msg(rc == 0, "rerun of shard %s exit %d", sh, rc);
	tu_proc_release(&p);
	assert_union_complete(NSHARDS);
	ss = zsim_stats(E.src);
	json_t *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	for (int k = 0; k < NALL; k++) {
		long long now = zsim_stat_acct(ss, "exports", ALL[k], "count");
		if (shard_of(ALL[k], NSHARDS) != victim)
			ck_assert_msg(now == 1 && exports_before[k] == 1, "%s exported %lld times", ALL[k], now);
		else   /* the rerun touches only what the killed run left unfinished */
			ck_assert_msg(now >= 1 && now <= exports_before[k] + 1, "%s: %lld exports, %lld before",
				      ALL[k], now, exports_before[k]);
	}
	json_decref(ss);
	json_decref(ds);
	free(sh);
	free(vdb);
}
END_TEST

START_TEST(test_engine_variables_select_the_same_shard)
{
	struct tu_proc p;
	/* Kubernetes Indexed Job: index 2, count from ZMBATCH_SHARD_COUNT */
	char *k8s[] = { (char *)"JOB_COMPLETION_INDEX=2", (char *)"ZMBATCH_SHARD_COUNT=4", NULL };
	int rc = zmb_env(&p, k8s, "run", "-c", E.job, (char *)NULL);
	if (rc)
		fprintf(stderr, "%s\n", p.err);
	ck_assert_int_eq(rc, 0);
	tu_proc_release(&p);
	char *db2 = shard_db(2, 4);
	ck_assert_msg(exists(db2), "JOB_COMPLETION_INDEX=2 did not use %s", db2);
	int seen[NALL] = { 0 }, done = 0, n2 = db_accounts(2, 4, seen, &done);
	int want = 0;
	for (int k = 0; k < NALL; k++)
		want += shard_of(ALL[k], 4) == 2;
	ck_assert_int_eq(n2, want);
	ck_assert_int_eq(done, want);
	long long exports = total_exports();
	ck_assert_int_eq(exports, want);
	/* the same with --shard-count instead of ZMBATCH_SHARD_COUNT: nothing left to do */
	char *k8s2[] = { (char *)"JOB_COMPLETION_INDEX=2", NULL };
	ck_assert_int_eq(zmb_env(&p, k8s2, "run", "-c", E.job, "--shard-count", "4", (char *)NULL), 0);
	tu_proc_release(&p);
	/* Slurm array --array=1-4: task 3 is shard 2/4, the same DB, nothing exported again */
	char *slurm[] = { (char *)"SLURM_ARRAY_TASK_ID=3", (char *)"SLURM_ARRAY_TASK_MIN=1",
			  (char *)"SLURM_ARRAY_TASK_MAX=4", (char *)"SLURM_ARRAY_TASK_COUNT=4",
			  (char *)"SLURM_ARRAY_TASK_STEP=1", NULL };
	ck_assert_int_eq(zmb_env(&p, slurm, "run", "-c", E.job, (char *)NULL), 0);
	tu_proc_release(&p);
	ck_assert_int_eq(total_exports(), exports);
	ck_assert_int_eq(zmb_env(&p, slurm, "accounts", "-c", E.job, (char *)NULL), 0);
	char *via_slurm = xstrdup(p.out);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "accounts", "-c", E.job, "--shard", "2/4", (char *)NULL), 0);
	ck_assert_str_eq(via_slurm, p.out);
	tu_proc_release(&p);
	free(via_slurm);
	/* explicit --shard wins over the variables */
	ck_assert_int_eq(zmb_env(&p, slurm, "status", "-c", E.job, "--shard", "1/4", (char *)NULL), 1);
	ck_assert_msg(tu_contains(p.err, "state.shard1-of-4.db"), "%s", p.err);
	tu_proc_release(&p);
	/* only shard 2's DB was ever made */
	for (unsigned i = 0; i < 4; i++) {
		char *d = shard_db(i, 4);
		ck_assert_msg(exists(d) == (i == 2), "%s", d);
		free(d);
	}
	ck_assert(!exists(E.db));

	/* half-given or conflicting: usage errors naming what is wrong */
	char *half[] = { (char *)"JOB_COMPLETION_INDEX=1", NULL };
	ck_assert_int_eq(zmb_env(&p, half, "run", "-c", E.job, (char *)NULL), EXIT_USAGE);
	ck_assert_msg(tu_contains(p.err, "JOB_COMPLETION_INDEX=1") && tu_contains(p.err, "ZMBATCH_SHARD_COUNT"),
		      "%s", p.err);
	tu_proc_release(&p);
	char *count_only[] = { (char *)"ZMBATCH_SHARD_COUNT=4", NULL };
	ck_assert_int_eq(zmb_env(&p, count_only, "status", "-c", E.job, (char *)NULL), EXIT_USAGE);
	tu_proc_release(&p);
	char *below_min[] = { (char *)"SLURM_ARRAY_TASK_ID=0", (char *)"SLURM_ARRAY_TASK_MIN=1",
			      (char *)"SLURM_ARRAY_TASK_COUNT=4", NULL };
	ck_assert_int_eq(zmb_env(&p, below_min, "run", "-c", E.job, (char *)NULL), EXIT_USAGE);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "run", "-c", E.job, "--shard", "1/4", "--shard-count", "3",
				     (char *)NULL), EXIT_USAGE);
	ck_assert_msg(tu_contains(p.err, "disagree"), "%s", p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "run", "-c", E.job, "--shard", "4/4", (char *)NULL), EXIT_USAGE);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "run", "-c", E.job, "--shard", "0/1025", (char *)NULL), EXIT_USAGE);
	tu_proc_release(&p);
	free(db2);
}
END_TEST

/* ---- run --shard-by server ------------------------------------------------
 *
 * Three source mailbox servers (simulators mbox1, the configured one, mbox2
 * and mbox3: one installation; mbox1 knows the others' addresses) and one
 * target.  example.com is listed (SearchDirectory gives each account's
 * zimbraMailHost); three accounts of example.org and one of example.com
 * come from accounts_file (their home looked up: GetAccountRequest).
 * Sorted servers mbox1, mbox2, mbox3: with N = 3 shard k takes mbox(k+1);
 * with N = 2 shard 0 takes mbox1 and mbox3, shard 1 mbox2.
 */

/* source name, source home; the first NLISTED are in example.com (listed), the rest in accounts_file */
static const char *const SB[][2] = {
	{ "a1@example.com", "mbox1" }, { "a2@example.com", "mbox1" }, { "a3@example.com", "mbox1" },
	{ "b1@example.com", "mbox2" }, { "b2@example.com", "mbox2" },
	{ "c1@example.com", "mbox3" }, { "c2@example.com", "mbox3" }, { "c3@example.com", "mbox3" },
	{ "c4@example.com", "mbox3" },
	{ "x1@example.org", "mbox2" }, { "y1@example.org", "mbox3" }, { "z1@example.org", "mbox1" },
};
#define NSB (sizeof SB / sizeof *SB)
#define NLISTED 9
static struct zsim *SRV[3];   /* mbox1 (= E.src), mbox2, mbox3 */

static char *sb_cfg(const char *self, bool target, int port2, int port3)
{
	struct buf b = BUF_INIT;
	if (target)
		buf_adds(&b, "{\"name\":\"dst\",\"domains\":[");
	else
		buf_addf(&b, "{\"name\":\"%s\",\"installation\":\"src\",\"mailhost\":\"%s\",", self, self);
	if (!target && port2)
		buf_addf(&b, "\"servers\":[{\"name\":\"mbox2\",\"host\":\"127.0.0.1\",\"port\":%d},"
			 "{\"name\":\"mbox3\",\"host\":\"127.0.0.1\",\"port\":%d}],", port2, port3);
	if (!target)
		buf_adds(&b, "\"domains\":[");
	const char *doms[] = { "example.com", "example.org" };
	for (int d = 0; d < 2; d++) {
		buf_addf(&b, "%s{\"name\":\"%s\",\"accounts\":[", d ? "," : "", doms[d]);
		bool first = true;
		for (size_t i = 0; i < NSB; i++) {
			if (!strstr(SB[i][0], doms[d]))
				continue;
			if (target)
				buf_addf(&b, "%s{\"name\":\"%s\"}", first ? "" : ",", SB[i][0]);
			else
				buf_addf(&b, "%s{\"name\":\"%s\",\"mailhost\":\"%s\",\"items\":3,\"item_size\":1500}",
					 first ? "" : ",", SB[i][0], SB[i][1]);
			first = false;
		}
		buf_adds(&b, "]}");
	}
	buf_adds(&b, "]}");
	return b.s;
}

static struct zsim *sb_start(const char *name, bool target, int port2, int port3)
{
	char *cfg = sb_cfg(name, target, port2, port3);
	struct zsim_opts o = { .name = name, .config_json = cfg, .pki = E.pki };
	struct zsim *z = zsim_start(&o);
	free(cfg);
	ck_assert_msg(z != NULL, "simulator %s did not start", name);
	return z;
}

static void sb_setup(void)
{
	memset(&E, 0, sizeof E);
	E.dir = tu_tmpdir("shardsrv");
	ck_assert_ptr_nonnull(E.dir);
	E.pki = zsim_pki_new(NULL);
	ck_assert_ptr_nonnull(E.pki);
	SRV[1] = sb_start("mbox2", false, 0, 0);
	SRV[2] = sb_start("mbox3", false, 0, 0);
	SRV[0] = E.src = sb_start("mbox1", false, SRV[1]->port, SRV[2]->port);
	E.dst = sb_start("dst", true, 0, 0);
	free(tu_write(E.dir, "src.pw", "test123\n", 0600));
	free(tu_write(E.dir, "dst.pw", "test123\n", 0600));
	/* a1 is listed in example.com too: its home comes from the listing */
	free(tu_write(E.dir, "accounts.txt", "x1@example.org\ny1@example.org\nZ1@example.org\na1@example.com\n",
		      0600));
	E.db = xasprintf("%s/state.db", E.dir);
	char *text = xasprintf(
		"job = \"shardsrv\";\n"
		"source = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/src.pw\"; ca_file = \"%s\"; };\n"
		"target = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/dst.pw\"; ca_file = \"%s\"; };\n"
		"migration = { domains = [ \"example.com\" ]; accounts_file = \"%s/accounts.txt\"; threads = 2;\n"
		"  working_dir = \"%s/work\"; retry_backoff = \"1s\"; retry_backoff_max = \"1s\"; max_attempts = 2; };\n"
		"state = { db = \"%s\"; };\n"
		"log = { dir = \"%s/log\"; level = \"debug\"; };\n",
		E.src->port, E.dir, E.pki->ca_file, E.dst->port, E.dir, E.pki->ca_file, E.dir, E.dir, E.db,
		E.dir);
	E.job = tu_write(E.dir, "job.cfg", text, 0600);
	free(text);
}

static void sb_teardown(void)
{
	zsim_stop(SRV[1]);
	zsim_stop(SRV[2]);
	SRV[0] = SRV[1] = SRV[2] = NULL;
	e2e_stop(&E);
}

static pid_t spawn_by_server(unsigned i, unsigned n)
{
	char *sh = xasprintf("%u/%u", i, n);
	char *out = xasprintf("%s/srv%u.out", E.dir, i), *err = xasprintf("%s/srv%u.err", E.dir, i);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job, (char *)"--shard", sh,
			 (char *)"--shard-by", (char *)"server", NULL };
	pid_t pid = tu_spawn(argv, NULL, out, err);
	ck_assert_int_gt(pid, 0);
	free(sh);
	free(out);
	free(err);
	return pid;
}

/* By-server shard I/N (process pid) ends with exit 0. */
static void wait_by_server(pid_t pid, unsigned i, unsigned n)
{
	int rc = tu_wait(pid, 90);
	if (rc != 0)
		show_err(i, "srv");
	ck_assert_msg(rc == 0, "shard %u/%u by server: exit %d", i, n, rc);
}

/* By-server shard I/N alone: it exits 0. */
static void run_one_by_server(unsigned i, unsigned n)
{
	wait_by_server(spawn_by_server(i, n), i, n);
}

/* N by-server shards at once: each exits 0. */
static void run_by_server(unsigned n)
{
	pid_t pid[4];
	for (unsigned i = 0; i < n; i++)
		pid[i] = spawn_by_server(i, n);
	for (unsigned i = 0; i < n; i++)
		wait_by_server(pid[i], i, n);
}

static unsigned sb_index(const char *account)
{
	for (unsigned k = 0; k < NSB; k++)
		if (!strcmp(SB[k][0], account))
			return k;
	ck_abort_msg("unknown account %s", account);
	return 0;
}

/*
 * The by-server shard DBs of N: each account in exactly one, done, in the
 * DB of the shard that owns its home (owner[server 1..3]), and exported once
 * from its home, by nobody else.
 */
static void assert_by_server(unsigned n, const unsigned owner[3])
{
	int seen[NSB] = { 0 };
	for (unsigned i = 0; i < n; i++) {
		char *path = shard_db(i, n);
		sqlite3 *db = NULL;
		sqlite3_stmt *st = NULL;
		ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
		ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT account, state FROM accounts", -1, &st, NULL),
				 SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *a = (const char *)sqlite3_column_text(st, 0);
			unsigned k = sb_index(a), srv = (unsigned)(SB[k][1][4] - '1');
			ck_assert_msg(owner[srv] == i, "%s (home %s) is in the DB of shard %u/%u", a, SB[k][1], i, n);
			ck_assert_str_eq((const char *)sqlite3_column_text(st, 1), "done");
			seen[k]++;
		}
		sqlite3_finalize(st);
		sqlite3_close(db);
		char *m = db_meta(i, n, "shard_by");
		ck_assert_str_eq(m ? m : "(none)", "server");
		free(m);
		m = db_meta(i, n, "shard_servers");
		ck_assert_str_eq(m ? m : "(none)", "mbox1,mbox2,mbox3");
		free(m);
		free(path);
	}
	for (unsigned k = 0; k < NSB; k++) {
		ck_assert_msg(seen[k] == 1, "%s is in %d shard DBs", SB[k][0], seen[k]);
		for (int s = 0; s < 3; s++) {
			json_t *ss = zsim_stats(SRV[s]);
			long long want = SB[k][1][4] - '1' == s ? 1 : 0;
			ck_assert_msg(zsim_stat_acct(ss, "exports", SB[k][0], "count") == want,
				      "%s exported %lld times from mbox%d", SB[k][0],
				      zsim_stat_acct(ss, "exports", SB[k][0], "count"), s + 1);
			ck_assert_int_eq(zsim_stat_int(ss, "misrouted/total"), 0);
			json_decref(ss);
		}
		json_t *ds = zsim_stats(E.dst);
		ck_assert_int_eq(zsim_stat_acct(ds, "imports", SB[k][0], "count"), 1);
		json_decref(ds);
	}
	ck_assert(!exists(E.db));
}

static bool out_has(unsigned i, const char *text)
{
	char *path = xasprintf("%s/srv%u.out", E.dir, i);
	char *t = tu_read(path);
	bool yes = t && strstr(t, text);
	if (!yes)
		fprintf(stderr, "---- %s lacks '%s':\n%s\n", path, text, t ? t : "(none)");
	free(t);
	free(path);
	return yes;
}

START_TEST(test_by_server_three_shards)
{
	run_by_server(3);
	const unsigned owner[3] = { 0, 1, 2 };
	assert_by_server(3, owner);
	ck_assert(out_has(0, "shard 0/3 by server: mbox1 4 account(s)"));
	ck_assert(out_has(1, "shard 1/3 by server: mbox2 3 account(s)"));
	ck_assert(out_has(2, "shard 2/3 by server: mbox3 5 account(s)"));
	/* the source's account listing and lookups: the accounts_file ones looked up by each shard */
	json_t *ss = zsim_stats(E.src);
	ck_assert_int_ge(zsim_stat_int(ss, "soap/GetAccountRequest"), 3 * 3);
	json_decref(ss);

	/* a rerun of each: nothing left, nothing exported again */
	run_by_server(3);
	assert_by_server(3, owner);
	/* the read side takes a by-server DB by --shard; --merge adds them up */
	struct tu_proc p;
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "status", "-c", E.job, "--shard", "1/3", (char *)NULL), 0);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "-c", E.job, "--shard", "2/3", "--format", "json",
				     (char *)NULL), 0);
	tu_proc_release(&p);
	char *d[3];
	for (unsigned i = 0; i < 3; i++)
		d[i] = shard_db(i, 3);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "status", "--merge", d[0], d[1], d[2], (char *)NULL), 0);
	ck_assert_msg(tu_contains(p.out, "merged: 3 state DB(s), 12 account(s)"), "%s", p.out);
	tu_proc_release(&p);
	for (unsigned i = 0; i < 3; i++)
		free(d[i]);
}
END_TEST

START_TEST(test_by_server_two_shards_and_a_spare)
{
	run_by_server(2);
	const unsigned owner[3] = { 0, 1, 0 };   /* mbox1, mbox3 -> 0; mbox2 -> 1 */
	assert_by_server(2, owner);
	ck_assert(out_has(0, "shard 0/2 by server: mbox1 4 account(s)"));
	ck_assert(out_has(0, "shard 0/2 by server: mbox3 5 account(s)"));
	ck_assert(out_has(1, "shard 1/2 by server: mbox2 3 account(s)"));
	/* more shards than servers: shard 3/4 has none, says so, succeeds */
	struct tu_proc p;
	ck_assert_int_eq(e2e_zmbatch(&p, 60, "run", "-c", E.job, "--shard", "3/4", "--shard-by", "server",
				     (char *)NULL), 0);
	ck_assert_msg(tu_contains(p.out, "none falls to this shard: nothing to do"), "%s\n%s", p.out, p.err);
	tu_proc_release(&p);
	char *d3 = shard_db(3, 4);
	ck_assert_int_eq(e2e_db_int(d3, "SELECT count(*) FROM accounts"), 0);
	free(d3);
	/* Kubernetes' variables select a by-server shard the same way */
	char *k8s[] = { (char *)"JOB_COMPLETION_INDEX=1", (char *)"ZMBATCH_SHARD_COUNT=2", NULL };
	ck_assert_int_eq(zmb_env(&p, k8s, "run", "-c", E.job, "--shard-by", "server", "--stage", "migrate",
				 (char *)NULL), 0);
	ck_assert_msg(tu_contains(p.out, "shard 1/2 by server: mbox2 3 account(s)"), "%s", p.out);
	tu_proc_release(&p);
	assert_by_server(2, owner);
}
END_TEST

START_TEST(test_by_server_refusals)
{
	struct tu_proc p;
	/* --shard-by needs a shard */
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "run", "-c", E.job, "--shard-by", "server", (char *)NULL),
			 EXIT_USAGE);
	ck_assert_msg(tu_contains(p.err, "--shard-by server needs a shard"), "%s", p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "run", "-c", E.job, "--shard", "0/2", "--shard-by", "name",
				     (char *)NULL), EXIT_USAGE);
	tu_proc_release(&p);
	ck_assert(!exists(E.db));

	/* a hash shard's DB to a by-server run, and back */
	ck_assert_int_eq(e2e_zmbatch(&p, 60, "run", "-c", E.job, "--shard", "0/3", (char *)NULL), 0);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 60, "run", "-c", E.job, "--shard", "0/3", "--shard-by", "server",
				     (char *)NULL), EXIT_CONFIG);
	ck_assert_msg(tu_contains(p.err, "split by hash, not by server"), "%s", p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 60, "run", "-c", E.job, "--shard", "0/3", "--shard-by", "server",
				     "--dry-run", (char *)NULL), EXIT_CONFIG);   /* a dry run compares too */
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 60, "run", "-c", E.job, "--shard", "1/2", "--shard-by", "server",
				     (char *)NULL), 0);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 60, "run", "-c", E.job, "--shard", "1/2", "--shard-by", "hash",
				     (char *)NULL), EXIT_CONFIG);
	ck_assert_msg(tu_contains(p.err, "split by server, not by hash"), "%s", p.err);
	tu_proc_release(&p);

	/* an account homed on "mbox4", which GetAllServersRequest does not list (a server added
	 * to the installation after the first run): the deal stays over the recorded servers,
	 * and the account is shard 0's in every shard (the stage is done: --stage migrate
	 * lists the accounts again) */
	json_decref(zsim_post(E.src, "/zsim/add-account",
			      "{\"name\":\"d1@example.com\",\"mailhost\":\"mbox4\",\"items\":1}"));
	char *d12 = shard_db(1, 2);
	long long before = e2e_db_int(d12, "SELECT count(*) FROM accounts");
	ck_assert_int_eq(e2e_zmbatch(&p, 60, "run", "-c", E.job, "--shard", "1/2", "--shard-by", "server",
				     "--stage", "migrate", (char *)NULL), 0);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_db_int(d12, "SELECT count(*) FROM accounts"), before);
	ck_assert_int_eq(e2e_db_int(d12, "SELECT count(*) FROM accounts WHERE account = 'd1@example.com'"), 0);
	free(d12);
	ck_assert_int_eq(e2e_zmbatch(&p, 60, "run", "-c", E.job, "--shard", "0/2", "--shard-by", "server",
				     "--stage", "migrate", "--dry-run", (char *)NULL), 0);
	ck_assert_msg(tu_contains(p.out, "d1@example.com") &&
		      tu_contains(p.out, "not one of the dealt mailbox servers"), "%s", p.out);
	tu_proc_release(&p);
	/* a DB made before the change would be dealt differently too: a fresh shard is fine */
	ck_assert_int_eq(e2e_zmbatch(&p, 60, "run", "-c", E.job, "--shard", "0/5", "--shard-by", "server",
				     "--dry-run", (char *)NULL), 0);
	tu_proc_release(&p);
}
END_TEST

/* An account whose home cannot be found (no such account) is shard 0's, where it fails as usual. */
START_TEST(test_by_server_unknown_home)
{
	free(tu_write(E.dir, "accounts.txt", "x1@example.org\ny1@example.org\nz1@example.org\nnosuch@example.org\n",
		      0600));
	struct tu_proc p;
	ck_assert_int_eq(e2e_zmbatch(&p, 60, "run", "-c", E.job, "--shard", "1/2", "--shard-by", "server",
				     (char *)NULL), 0);
	ck_assert_msg(!tu_contains(p.out, "nosuch"), "%s", p.out);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 60, "run", "-c", E.job, "--shard", "0/2", "--shard-by", "server",
				     (char *)NULL), EXIT_PARTIAL);
	ck_assert_msg(tu_contains(p.out, "shard 0/2 by server: 1 account(s) whose home server is unknown") &&
		      tu_contains(p.out, "shard 0/2: 10 of 13 account(s)"), "%s", p.out);
	tu_proc_release(&p);
	char *d0 = shard_db(0, 2), *d1 = shard_db(1, 2);
	ck_assert_int_eq(e2e_db_int(d0, "SELECT count(*) FROM accounts WHERE account = 'nosuch@example.org' "
				     "AND state = 'failed'"), 1);
	ck_assert_int_eq(e2e_db_int(d0, "SELECT count(*) FROM accounts WHERE state = 'done'"), 9);
	ck_assert_int_eq(e2e_db_int(d1, "SELECT count(*) FROM accounts"), 3);
	ck_assert_int_eq(e2e_db_int(d1, "SELECT count(*) FROM accounts WHERE state = 'done'"), 3);
	free(d0);
	free(d1);
}
END_TEST

/* Move b1@example.com (home mbox2, shard 1/2's) to mbox1 (shard 0/2's): zimbraMailHost. */
static void move_b1_to_mbox1(void)
{
	char *tok = zsim_login(E.src);
	ck_assert_ptr_nonnull(tok);
	json_t *st = zsim_stats(E.src);
	const char *id = json_string_value(json_object_get(json_object_get(json_object_get(st, "accounts"),
									   "b1@example.com"), "id"));
	ck_assert_ptr_nonnull(id);
	json_t *req = json_pack("{s:{s:s, s:s, s:[{s:s, s:s}]}}", "ModifyAccountRequest", "_jsns",
				"urn:zimbraAdmin", "id", id, "a", "n", "zimbraMailHost", "_content", "mbox1");
	json_t *reply = NULL;
	ck_assert_int_eq(zsim_soap(E.src, tok, req, &reply), 200);
	json_decref(reply);
	json_decref(st);
	free(tok);
}

/* run --shard I/2 --shard-by server --stage migrate: exit 0, its output in *p. */
static void rerun_by_server(unsigned i, struct tu_proc *p)
{
	char *sh = xasprintf("%u/2", i);
	ck_assert_int_eq(e2e_zmbatch(p, 60, "run", "-c", E.job, "--shard", sh, "--shard-by", "server",
				     "--stage", "migrate", (char *)NULL), 0);
	free(sh);
}

/*
 * A mailbox moved to another server after both shards ran (zimbraMailHost
 * changed, the server set the same): the shard whose DB holds it keeps it,
 * with a warning; the new server's shard cannot see that DB and takes it too,
 * rather than risk that nobody does: report --merge names the account in two
 * DBs.  Each DB recorded its whole listing (shard_deal).
 */
START_TEST(test_by_server_moved_account_taken_twice)
{
	run_by_server(2);
	char *d0 = shard_db(0, 2), *d1 = shard_db(1, 2);
	ck_assert_int_eq(e2e_db_int(d0, "SELECT count(*) FROM shard_deal"), NSB);
	ck_assert_int_eq(e2e_db_int(d1, "SELECT count(*) FROM shard_deal"), NSB);
	ck_assert_int_eq(e2e_db_int(d0, "SELECT shard FROM shard_deal WHERE account = 'b1@example.com' "
				    "AND home = 'mbox2'"), 1);
	move_b1_to_mbox1();

	struct tu_proc p;
	rerun_by_server(1, &p);
	ck_assert_msg(tu_contains(p.out, "warning: b1@example.com is in this shard's state DB but its home "
				  "server is now mbox1 (shard 0/2): it stays here"), "%s", p.out);
	ck_assert_msg(tu_contains(p.out, "shard 1/2 by server: mbox2 2 account(s)"), "%s", p.out);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_db_int(d1, "SELECT count(*) FROM accounts WHERE account = 'b1@example.com'"), 1);
	ck_assert_int_eq(e2e_db_int(d1, "SELECT shard FROM shard_deal WHERE account = 'b1@example.com' "
				    "AND home = 'mbox1'"), 0);
	rerun_by_server(0, &p);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_db_int(d0, "SELECT count(*) FROM accounts WHERE account = 'b1@example.com'"), 1);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--format", "json", "--merge", d0, d1, (char *)NULL), 1);
	json_t *j = json_loads(p.out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	json_t *m = json_object_get(j, "merge");
	ck_assert_int_eq(json_array_size(json_object_get(m, "duplicates")), 1);
	ck_assert_int_eq(json_array_size(json_object_get(m, "untaken")), 0);
	json_decref(j);
	tu_proc_release(&p);
	free(d0);
	free(d1);
}
END_TEST

/*
 * A mailbox moved between the shards' runs the other way: shard 0 saw b1 on
 * mbox2 (shard 1's) and left it, then b1 moved to mbox1 (shard 0's) before
 * shard 1's run, which left it too.  No DB holds it: report --merge names it
 * in every format, with the shard to run again (exit 1); a merge without
 * that shard's DB does not.  Shard 0 run again takes it, and the merge is
 * clean.
 */
START_TEST(test_by_server_moved_account_untaken)
{
	/* shard 0 by the test build, its durable steps logged: the listing is never one of its
	 * own (it commits with the plan's accounts, so a merge never sees it without them) */
	char *steps = xasprintf("%s/steps.log", E.dir), *out = xasprintf("%s/srv0.out", E.dir);
	char *err0 = xasprintf("%s/srv0.err", E.dir), *envs = xasprintf("ZMBATCH_STEP_LOG=%s", steps);
	char *argv[] = { (char *)tu_zmbatch_hooks(), (char *)"run", (char *)"-c", E.job, (char *)"--shard",
			 (char *)"0/2", (char *)"--shard-by", (char *)"server", NULL };
	char *env[] = { envs, NULL };
	pid_t pid = tu_spawn(argv, env, out, err0);
	ck_assert_int_eq(tu_wait(pid, 90), 0);
	char *log = tu_read(steps);
	ck_assert_msg(log && *log, "no step log");
	ck_assert_msg(!tu_contains(log, " shard_deal\n"), "the listing committed alone:\n%s", log);
	free(log);
	free(steps);
	free(out);
	free(err0);
	free(envs);
	move_b1_to_mbox1();
	run_one_by_server(1, 2);
	char *d0 = shard_db(0, 2), *d1 = shard_db(1, 2);
	ck_assert_int_eq(e2e_db_int(d0, "SELECT count(*) FROM accounts WHERE account = 'b1@example.com'"), 0);
	ck_assert_int_eq(e2e_db_int(d1, "SELECT count(*) FROM accounts WHERE account = 'b1@example.com'"), 0);

	struct tu_proc p;
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--merge", d0, d1, (char *)NULL), 1);
	char *want = xasprintf("ERROR: account b1@example.com is in no state DB: its home mbox1 deals it to "
			       "shard 0/2 (listed by %s at ", d1);
	ck_assert_msg(tu_contains(p.out, want), "%s", p.out);
	free(want);
	ck_assert_msg(tu_contains(p.out, "); run shard 0/2 again"), "%s", p.out);
	ck_assert_msg(tu_contains(p.err, "1 account(s) listed by a shard are in no state DB"), "%s", p.err);
	tu_proc_release(&p);
	/* the newest listing of b1 (shard 1's) counts, whichever DB is named last */
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--merge", d1, d0, (char *)NULL), 1);
	ck_assert_msg(tu_contains(p.out, "ERROR: account b1@example.com is in no state DB: its home mbox1 "
				  "deals it to shard 0/2"), "%s", p.out);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--format", "json", "--merge", d0, d1, (char *)NULL), 1);
	json_t *j = json_loads(p.out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	json_t *m = json_object_get(j, "merge"), *u = json_array_get(json_object_get(m, "untaken"), 0);
	ck_assert_int_eq(json_array_size(json_object_get(m, "untaken")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(u, "account")), "b1@example.com");
	ck_assert_str_eq(json_string_value(json_object_get(u, "shard")), "0/2");
	ck_assert_str_eq(json_string_value(json_object_get(u, "home")), "mbox1");
	ck_assert(json_is_false(json_object_get(m, "ok")));
	json_decref(j);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--format", "prom", "--merge", d0, d1, (char *)NULL), 1);
	ck_assert_msg(tu_contains(p.out, "\nzmbatch_merge_untaken_accounts 1\n"), "%s", p.out);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--format", "html", "--merge", d0, d1, (char *)NULL), 1);
	ck_assert_msg(tu_contains(p.out, "account <code>b1@example.com</code> is in no state DB: its home "
				  "<code>mbox1</code> deals it to shard <code>0/2</code>"), "%s", p.out);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "status", "--merge", d0, d1, (char *)NULL), 1);
	ck_assert_msg(tu_contains(p.out, "ERROR: account b1@example.com is in no state DB"), "%s", p.out);
	tu_proc_release(&p);
	/* shard 0/2 not given: its accounts are the missing shard's, not untaken */
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--format", "json", "--merge", d1, (char *)NULL), 0);
	j = json_loads(p.out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(json_array_size(json_object_get(json_object_get(j, "merge"), "untaken")), 0);
	json_decref(j);
	tu_proc_release(&p);

	rerun_by_server(0, &p);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_db_int(d0, "SELECT count(*) FROM accounts WHERE account = 'b1@example.com' "
				    "AND state = 'done'"), 1);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--merge", d0, d1, (char *)NULL), 0);
	ck_assert_msg(!tu_contains(p.out, "ERROR"), "%s", p.out);
	tu_proc_release(&p);
	free(d0);
	free(d1);
}
END_TEST

/*
 * An account shard 0 listed (x1, dealt to shard 1) that leaves the job before
 * shard 1 runs (taken out of accounts_file): shard 1's newer listing does not
 * have it, so the merge does not call it untaken.
 */
START_TEST(test_by_server_left_job_not_untaken)
{
	run_one_by_server(0, 2);
	free(tu_write(E.dir, "accounts.txt", "y1@example.org\nZ1@example.org\na1@example.com\n", 0600));
	run_one_by_server(1, 2);
	char *d0 = shard_db(0, 2), *d1 = shard_db(1, 2);
	ck_assert_int_eq(e2e_db_int(d0, "SELECT shard FROM shard_deal WHERE account = 'x1@example.org'"), 1);
	ck_assert_int_eq(e2e_db_int(d1, "SELECT count(*) FROM shard_deal WHERE account = 'x1@example.org'"), 0);
	struct tu_proc p;
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--merge", d0, d1, (char *)NULL), 0);
	ck_assert_msg(!tu_contains(p.out, "ERROR"), "%s", p.out);
	tu_proc_release(&p);
	free(d0);
	free(d1);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_shard");
	TCase *tc = tcase_create("shard");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_four_shards_concurrently);
	tcase_add_test(tc, test_kill_one_shard_then_rerun_it);
	tcase_add_test(tc, test_engine_variables_select_the_same_shard);
	suite_add_tcase(s, tc);
	TCase *sv = tcase_create("by_server");
	tcase_add_checked_fixture(sv, sb_setup, sb_teardown);
	tcase_set_timeout(sv, 180);
	tcase_add_test(sv, test_by_server_three_shards);
	tcase_add_test(sv, test_by_server_two_shards_and_a_spare);
	tcase_add_test(sv, test_by_server_refusals);
	tcase_add_test(sv, test_by_server_unknown_home);
	tcase_add_test(sv, test_by_server_moved_account_taken_twice);
	tcase_add_test(sv, test_by_server_moved_account_untaken);
	tcase_add_test(sv, test_by_server_left_job_not_untaken);
	suite_add_tcase(s, sv);
	return s;
}

#include "ckmain.h"
