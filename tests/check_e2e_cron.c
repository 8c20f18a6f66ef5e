/*
 * check_e2e_cron.c - zmbatch as cron runs it (issue 5): the run lock, the
 * time window, signals, exit codes, `check`, `--dry-run`, `status` during a
 * run, reports through the command line, requeueing failed accounts.
 *
 * Each test gets its own pair of simulated servers (tests/e2e.h).  Runs
 * that must last a few seconds are slowed with the simulator's bandwidth
 * knob (bytes/s per connection), never with sleeps in zmbatch.
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zsim.h"

#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct e2e E;

static void setup(void)
{
	memset(&E, 0, sizeof E);
	e2e_start(&E, E2E_SRC_CFG, E2E_DST_CFG);
}

static void teardown(void)
{
	e2e_stop(&E);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Start `zmbatch run -c job [extra]` in the background; output to files in E.dir. */
static pid_t start_run(const char *extra, const char *tag)
{
	char *out, *err;
	if (asprintf(&out, "%s/%s.out", E.dir, tag) < 0 || asprintf(&err, "%s/%s.err", E.dir, tag) < 0)
		abort();
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job, (char *)extra, NULL };
	pid_t pid = tu_spawn(argv, NULL, out, err);
	ck_assert_int_gt(pid, 0);
	free(out);
	free(err);
	return pid;
}

static char *read_tag(const char *tag, const char *ext)
{
	char *path;
	if (asprintf(&path, "%s/%s.%s", E.dir, tag, ext) < 0)
		abort();
	char *s = tu_read(path);
	free(path);
	return s ? s : strdup("");
}

/* Wait until the run has claimed its first account (something in flight or done). */
static void wait_until_busy(void)
{
	for (int i = 0; i < 300; i++) {
		long long n = 0;
		if (e2e_db_try(&E, "SELECT count(*) FROM accounts WHERE state IN "
				   "('exporting','importing','done')", &n) && n > 0)
			return;
		tu_sleep(0.05);
	}
	ck_abort_msg("the run never started working");
}

static void slow_source(long bps)
{
	char body[64];
	snprintf(body, sizeof body, "{\"bandwidth\":%ld}", bps);
	json_decref(zsim_post(E.src, "/zsim/knobs", body));
}

START_TEST(test_lock_contention)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, NULL, NULL);
	slow_source(60000);
	pid_t pid = start_run(NULL, "first");
	wait_until_busy();
	long long runs = e2e_db_count(&E, "SELECT count(*) FROM runs");
	long long events = e2e_db_count(&E, "SELECT count(*) FROM events WHERE run_id = "
					    "(SELECT max(id) FROM runs)");
	double t0 = now();
	int rc = e2e_zmbatch(&p, 30, "run", "-c", E.job, (char *)NULL);
	double dt = now() - t0;
	ck_assert_int_eq(rc, 75);
	ck_assert_msg(dt < 1.5, "second run took %.2f s to give up", dt);
	char pidstr[32];
	snprintf(pidstr, sizeof pidstr, "pid %ld", (long)pid);
	ck_assert_msg(tu_contains(p.err, pidstr), "holder not named: %s", p.err);
	ck_assert(tu_contains(p.err, "host"));
	ck_assert(tu_contains(p.err, "started"));
	/* it changed nothing: no run row of its own */
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM runs"), runs);
	tu_proc_release(&p);
	/* reset is refused the same way while the run holds the lock */
	rc = e2e_zmbatch(&p, 30, "reset", "-c", E.job, "--failed", (char *)NULL);
	ck_assert_int_eq(rc, 75);
	tu_proc_release(&p);
	(void)events;
	slow_source(0);
	ck_assert_int_eq(tu_wait(pid, 120), 0);
}
END_TEST

START_TEST(test_sigterm_graceful_then_resume)
{
	struct tu_proc p;
	/* grace long enough for in-flight accounts to finish */
	e2e_write_job(&E, 2, NULL, "run = { grace = \"60s\"; };");
	slow_source(80000);
	pid_t pid = start_run(NULL, "term");
	wait_until_busy();
	/* a stray SIGUSR2 (zmbatch uses it internally) must not disarm SIGTERM */
	kill(pid, SIGUSR2);
	tu_sleep(0.2);
	kill(pid, SIGTERM);
	int rc = tu_wait(pid, 120);
	char *err = read_tag("term", "err");
	ck_assert_msg(rc == 75, "exit %d after SIGTERM: %s", rc, err);
	ck_assert(tu_contains(err, "SIGTERM"));
	free(err);
	/* nothing left in flight, some work left */
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state IN ('exporting','importing')"), 0);
	ck_assert_int_gt(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state != 'done'"), 0);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT exit_status FROM runs ORDER BY id DESC LIMIT 1"), 75);
	slow_source(0);
	rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_second_sigterm_aborts)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, NULL, "run = { grace = \"10m\"; };");
	slow_source(20000);
	pid_t pid = start_run(NULL, "abort");
	wait_until_busy();
	kill(pid, SIGTERM);
	tu_sleep(0.3);
	double t0 = now();
	kill(pid, SIGTERM);
	int rc = tu_wait(pid, 60);
	ck_assert_int_eq(rc, 75);
	ck_assert_msg(now() - t0 < 10, "abort took %.1f s", now() - t0);
	/* consistent: no row left in flight, no partial spool file */
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state IN ('exporting','importing')"), 0);
	slow_source(0);
	rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(e2e_count_files(&E, "work"), 0);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_window_end_then_next_run_finishes)
{
	struct tu_proc p;
	e2e_write_job(&E, 1, NULL, "run = { grace = \"1s\"; };");
	slow_source(50000);
	double t0 = now();
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, "--max-runtime", "2s", (char *)NULL);
	double dt = now() - t0;
	ck_assert_int_eq(rc, 75);
	ck_assert_msg(dt < 15, "window of 2 s + 1 s grace took %.1f s", dt);
	ck_assert(tu_contains(p.err, "window"));
	ck_assert_int_gt(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state != 'done'"), 0);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state IN ('exporting','importing')"), 0);
	tu_proc_release(&p);
	slow_source(0);
	rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_status_during_run_and_sigusr1)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, NULL, NULL);
	slow_source(60000);
	pid_t pid = start_run(NULL, "status");
	wait_until_busy();
	int rc = e2e_zmbatch(&p, 30, "status", "-c", E.job, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(tu_contains(p.out, "running"), "status does not show the run: %s", p.out);
	ck_assert(tu_contains(p.out, "in flight"));
	tu_proc_release(&p);
	kill(pid, SIGUSR1);
	tu_sleep(1.0);
	ck_assert(e2e_tree_contains(&E, "log", "[progress]"));
	slow_source(0);
	ck_assert_int_eq(tu_wait(pid, 120), 0);
}
END_TEST

START_TEST(test_dry_run_changes_nothing)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, NULL, NULL);
	json_decref(zsim_post(E.src, "/zsim/reset-stats", "{}"));
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	int rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, "--dry-run", (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert(tu_contains(p.out, "alice@example.com"));
	ck_assert(tu_contains(p.out, "planned"));
	ck_assert(access(E.db, F_OK) != 0);   /* no state DB written */
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	for (size_t i = 0; i < E2E_NUSERS; i++) {
		ck_assert_int_eq(zsim_stat_acct(ss, "exports", E2E_USERS[i][0], "count"), 0);
		ck_assert_int_eq(zsim_stat_acct(ds, "imports", E2E_USERS[i][1], "count"), 0);
	}
	ck_assert_int_eq(zsim_stat_int(ds, "soap/ModifyAccountRequest"), 0);
	ck_assert_int_eq(zsim_stat_int(ss, "soap/ModifyAccountRequest"), 0);
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_check_command)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, NULL, NULL);
	int rc = e2e_zmbatch(&p, 60, "check", "-c", E.job, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert(tu_contains(p.out, "source 127.0.0.1"));
	ck_assert(tu_contains(p.out, "check passed"));
	tu_proc_release(&p);
	/* wrong password: unreachable/refused = 69 */
	free(tu_write(E.dir, "dst.pw", "wrong-password\n", 0600));
	rc = e2e_zmbatch(&p, 60, "check", "-c", E.job, (char *)NULL);
	ck_assert_int_eq(rc, 69);
	ck_assert(tu_contains(p.out, "FAIL"));
	ck_assert(!tu_contains(p.out, "wrong-password") && !tu_contains(p.err, "wrong-password"));
	tu_proc_release(&p);
	/* the same for run: 69 before any work */
	rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_int_eq(rc, 69);
	tu_proc_release(&p);
	/* a config error: 78 naming file and line */
	char *bad = tu_write(E.dir, "bad.cfg", "job = \"x\";\nmigration = { threads = \"many\"; };\n", 0600);
	rc = e2e_zmbatch(&p, 30, "check", "-c", bad, (char *)NULL);
	ck_assert_int_eq(rc, 78);
	ck_assert(tu_contains(p.err, "bad.cfg:2"));
	free(bad);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_failed_then_retry_failed_exits_0)
{
	struct tu_proc p;
	json_decref(zsim_post(E.dst, "/zsim/delete-account", "{\"name\":\"frank@example.org\"}"));
	e2e_write_job(&E, 2, NULL, NULL);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_int_eq(rc, 1);
	tu_proc_release(&p);
	/* report through the command line, parsed by real parsers */
	rc = e2e_zmbatch(&p, 30, "report", "-c", E.job, "--format", "json", (char *)NULL);
	ck_assert_int_eq(rc, 0);
	json_error_t jerr;
	json_t *r = json_loads(p.out, 0, &jerr);
	ck_assert_msg(r != NULL, "report json does not parse: %s", jerr.text);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "counts"), "failed")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "counts"), "done")),
			 (long long)E2E_NUSERS - 1);
	json_decref(r);
	tu_proc_release(&p);
	char *prom;
	if (asprintf(&prom, "%s/metrics/zmbatch.prom", E.dir) < 0)
		abort();
	char *mdir;
	if (asprintf(&mdir, "%s/metrics", E.dir) < 0)
		abort();
	mkdir(mdir, 0755);
	rc = e2e_zmbatch(&p, 30, "report", "-c", E.job, "--format", "prom", "--output", prom, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	char *text = tu_read(prom);
	ck_assert_ptr_nonnull(text);
	ck_assert(tu_contains(text, "zmbatch_accounts{state=\"failed\"} 1"));
	ck_assert(tu_contains(text, "zmbatch_last_run_exit_code 1"));
	ck_assert(!tu_contains(text, "frank"));
	free(text);
	tu_proc_release(&p);
	/* the admin creates the account, then requeues the failures */
	json_decref(zsim_post(E.dst, "/zsim/add-account", "{\"name\":\"frank@example.org\"}"));
	rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, "--retry-failed", (char *)NULL);
	ck_assert_int_eq(rc, 0);
	tu_proc_release(&p);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	json_decref(ss);
	json_decref(ds);
	/* a run whose accounts all ended done exits 0 even though an earlier run failed */
	rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	tu_proc_release(&p);
	rc = e2e_zmbatch(&p, 30, "report", "-c", E.job, "--format", "prom", "--output", prom, (char *)NULL);
	text = tu_read(prom);
	ck_assert(tu_contains(text, "zmbatch_last_success_timestamp_seconds"));
	free(text);
	free(prom);
	free(mdir);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_spool_preflight_disk_space)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, NULL, NULL);
	/* 1.2 MB "free": alice and carol (~300 kB each) need 1.1 x size + 1 MiB of
	 * margin and can never fit; the others fit one at a time */
	char *argv[] = { (char *)tu_zmbatch_hooks(), (char *)"run", (char *)"-c", E.job, NULL };
	char *env[] = { (char *)"ZMBATCH_TEST_FREE_BYTES=1200000", NULL };
	int rc = tu_run(argv, env, 120, &p);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, p.err);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE account IN "
				      "('alice@example.com','carol@example.com') "
				      "AND state='failed' AND error_class='disk-space' "
				      "AND last_error LIKE '%not enough space%'"), 2);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state='done'"),
			 (long long)E2E_NUSERS - 2);
	json_t *ss = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_acct(ss, "exports", "carol@example.com", "count"), 0);
	ck_assert_int_eq(zsim_stat_acct(ss, "exports", "alice@example.com", "count"), 0);
	json_decref(ss);
	ck_assert_int_eq(e2e_count_files(&E, "work"), 0);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_tty_progress_line)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, NULL, NULL);
	slow_source(300000);
	/* a real terminal: script(1) runs zmbatch on a pseudo-tty */
	char *cmd;
	if (asprintf(&cmd, "%s run -c %s", tu_zmbatch(), E.job) < 0)
		abort();
	char *argv[] = { (char *)"script", (char *)"-qec", cmd, (char *)"/dev/null", NULL };
	int rc = tu_run(argv, NULL, 120, &p);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, p.out);
	/* the live line is redrawn in place (CR + erase line) and shows the ETA */
	ck_assert_msg(tu_contains(p.out, "\r\033[K"), "no live progress line on the terminal");
	ck_assert(tu_contains(p.out, " done, "));
	ck_assert(tu_contains(p.out, "ETA "));
	/* ...and it does not pollute the log file */
	ck_assert(!e2e_tree_contains(&E, "log", "\033[K"));
	free(cmd);
	tu_proc_release(&p);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_cron");
	TCase *tc = tcase_create("cron");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_lock_contention);
	tcase_add_test(tc, test_sigterm_graceful_then_resume);
	tcase_add_test(tc, test_second_sigterm_aborts);
	tcase_add_test(tc, test_window_end_then_next_run_finishes);
	tcase_add_test(tc, test_status_during_run_and_sigusr1);
	tcase_add_test(tc, test_dry_run_changes_nothing);
	tcase_add_test(tc, test_check_command);
	tcase_add_test(tc, test_failed_then_retry_failed_exits_0);
	tcase_add_test(tc, test_spool_preflight_disk_space);
	tcase_add_test(tc, test_tty_progress_line);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
