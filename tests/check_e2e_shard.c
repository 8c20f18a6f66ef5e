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
	/* an account in two DBs is an error named in the report, in every format */
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--merge", d[0], d[1], d[1], (char *)NULL), 1);
	ck_assert_msg(tu_contains(p.out, "ERROR: account ") && tu_contains(p.out, d[1]), "%s", p.out);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--format", "prom", "--merge", d[0], d[1], d[1],
				     (char *)NULL), 1);
	ck_assert_msg(tu_contains(p.out, "zmbatch_merge_duplicate_accounts ") &&
		      !tu_contains(p.out, "zmbatch_merge_duplicate_accounts 0\n"), "%s", p.out);
	ck_assert_msg(tu_contains(p.err, "more than one state DB"), "%s", p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "report", "--merge", "-c", E.job, d[0], (char *)NULL), EXIT_USAGE);
	tu_proc_release(&p);

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
	return s;
}

#include "ckmain.h"
