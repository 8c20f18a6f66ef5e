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
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* Poll until the file at path contains needle (deadline timeout_s). */
static bool wait_file_contains(const char *path, const char *needle, double timeout_s)
{
	for (double t0 = now(); now() - t0 < timeout_s; tu_sleep(0.05)) {
		char *s = tu_read(path);
		bool found = tu_contains(s, needle);
		free(s);
		if (found)
			return true;
	}
	return false;
}

/* Poll until a query on the state DB answers more than 0 (deadline timeout_s). */
static bool wait_db(const char *sql, double timeout_s)
{
	for (double t0 = now(); now() - t0 < timeout_s; tu_sleep(0.05)) {
		long long n = 0;
		if (e2e_db_try(&E, sql, &n) && n > 0)
			return true;
	}
	return false;
}

/* Has pid not exited yet?  (does not reap it: tu_wait still can) */
static bool still_running(pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0;
}

/* The first column of every row of a query on the state DB, as ",a,b,c," */
static char *db_list(const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *out = strdup(",");
	ck_assert_int_eq(sqlite3_open_v2(E.db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
	while (sqlite3_step(st) == SQLITE_ROW) {
		char *next;
		if (asprintf(&next, "%s%s,", out, (const char *)sqlite3_column_text(st, 0)) < 0)
			abort();
		free(out);
		out = next;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return out;
}

static bool listed(const char *list, const char *acct)
{
	char *needle;
	if (asprintf(&needle, ",%s,", acct) < 0)
		abort();
	bool r = tu_contains(list, needle);
	free(needle);
	return r;
}

/* Exports the source simulator has answered, all accounts together, once no
 * export is streaming any more (it counts one when the transfer ends, also
 * after the client went away). */
static long long source_exports(void)
{
	json_t *ss = NULL;
	for (double t0 = now(); now() - t0 < 60; tu_sleep(0.05)) {
		ss = zsim_stats(E.src);
		if (zsim_stat_int(ss, "active_streams") == 0)
			break;
		json_decref(ss);
		ss = NULL;
	}
	ck_assert_msg(ss != NULL, "the source simulator still streams after 60 s");
	long long n = 0;
	for (size_t i = 0; i < E2E_NUSERS; i++)
		n += zsim_stat_acct(ss, "exports", E2E_USERS[i][0], "count");
	json_decref(ss);
	return n;
}

static char *tag_path(const char *tag, const char *ext)
{
	char *path;
	if (asprintf(&path, "%s/%s.%s", E.dir, tag, ext) < 0)
		abort();
	return path;
}

static char *log_path(const char *suffix)
{
	char *path;
	if (asprintf(&path, "%s/log/zmbatch.log%s", E.dir, suffix ? suffix : "") < 0)
		abort();
	return path;
}

START_TEST(test_lock_contention)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, NULL, NULL);
	slow_source(60000);
	pid_t pid = start_run(NULL, "first");
	wait_until_busy();
	const char *others_sql = "SELECT count(*) FROM events WHERE run_id IS NOT (SELECT max(id) FROM runs)";
	long long runs = e2e_db_count(&E, "SELECT count(*) FROM runs");
	long long others = e2e_db_count(&E, others_sql);
	double t0 = now();
	int rc = e2e_zmbatch(&p, 30, "run", "-c", E.job, (char *)NULL);
	double dt = now() - t0;
	ck_assert_int_eq(rc, 75);
	/* at once: it did not wait for the holder, which is still at work */
	ck_assert_msg(still_running(pid), "the second run waited for the first to end");
	ck_assert_msg(dt < 10, "second run took %.2f s to give up", dt);
	char pidstr[32];
	snprintf(pidstr, sizeof pidstr, "pid %ld", (long)pid);
	ck_assert_msg(tu_contains(p.err, pidstr), "holder not named: %s", p.err);
	ck_assert(tu_contains(p.err, "host"));
	ck_assert(tu_contains(p.err, "started"));
	/* it changed nothing: no run row of its own, no event outside the running run
	 * (a crash recovery over the holder's accounts would write some), and the
	 * lock file still names the holder */
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM runs"), runs);
	ck_assert_int_eq(e2e_db_count(&E, others_sql), others);
	char *lockp;
	if (asprintf(&lockp, "%s.lock", E.db) < 0)
		abort();
	char *holder = tu_read(lockp);
	ck_assert_msg(tu_contains(holder, pidstr), "lock file no longer names the holder: %s", holder);
	free(holder);
	free(lockp);
	tu_proc_release(&p);
	/* reset is refused the same way while the run holds the lock */
	rc = e2e_zmbatch(&p, 30, "reset", "-c", E.job, "--failed", (char *)NULL);
	ck_assert_int_eq(rc, 75);
	tu_proc_release(&p);
	slow_source(0);
	ck_assert_int_eq(tu_wait(pid, 120), 0);
}
END_TEST

/*
 * SIGTERM and SIGINT are the same graceful stop (README "Signals"): no new
 * account is claimed, the accounts in flight finish their step within
 * `grace` (done, or exported with the archive kept for the next run), exit
 * 75, and the next run converges.
 */
static void graceful_stop_then_resume(int sig, const char *name)
{
	struct tu_proc p;
	/* grace long enough for in-flight accounts to finish */
	e2e_write_job(&E, 2, NULL, "run = { grace = \"60s\"; };");
	slow_source(80000);
	pid_t pid = start_run(NULL, name);
	/* a stray SIGUSR2 (zmbatch uses it internally) must not disarm SIGTERM */
	wait_until_busy();
	kill(pid, SIGUSR2);
	tu_sleep(0.2);
	/* the accounts in flight just before the signal (one at least still exporting:
	 * the source is the slow side, and an export cut short would go back to pending) */
	char *inflight = NULL;
	for (double t0 = now(); !inflight && now() - t0 < 60; tu_sleep(0.02)) {
		inflight = db_list("SELECT account FROM accounts WHERE state IN ('exporting','importing')"
				   " AND EXISTS (SELECT 1 FROM accounts WHERE state = 'exporting')");
		if (!strcmp(inflight, ",")) {
			free(inflight);
			inflight = NULL;
		}
	}
	ck_assert_msg(inflight != NULL, "nothing in flight");
	kill(pid, sig);
	char *errp = tag_path(name, "err");
	char *said;
	if (asprintf(&said, "%s received", name) < 0)
		abort();
	ck_assert_msg(wait_file_contains(errp, said, 30), "no '%s' line", said);
	/* the stop flag is set before that line is logged: every account claimed
	 * so far is not pending any more, and no other may be claimed from now on */
	char *claimed = db_list("SELECT account FROM accounts WHERE state != 'pending'");
	int rc = tu_wait(pid, 120);
	char *err = read_tag(name, "err");
	ck_assert_msg(rc == 75, "exit %d after %s: %s", rc, name, err);
	free(err);
	/* nothing left in flight, some work left */
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state IN ('exporting','importing')"), 0);
	ck_assert_int_gt(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state != 'done'"), 0);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT exit_status FROM runs ORDER BY id DESC LIMIT 1"), 75);
	char *finished = db_list("SELECT account FROM accounts WHERE state IN ('done','exported')");
	json_t *ss = zsim_stats(E.src);
	for (size_t i = 0; i < E2E_NUSERS; i++) {
		const char *a = E2E_USERS[i][0];
		if (listed(inflight, a))
			ck_assert_msg(listed(finished, a), "%s was in flight at the %s and did not finish "
				      "its step within the grace period", a, name);
		if (zsim_stat_acct(ss, "exports", a, "count") > 0)
			ck_assert_msg(listed(claimed, a), "%s was claimed after the %s", a, name);
	}
	json_decref(ss);
	free(claimed);
	free(inflight);
	free(finished);
	free(said);
	free(errp);
	slow_source(0);
	rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ss = zsim_stats(E.src);
	json_t *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
}

START_TEST(test_sigterm_graceful_then_resume)
{
	graceful_stop_then_resume(SIGTERM, "SIGTERM");
}
END_TEST

START_TEST(test_sigint_graceful_then_resume)
{
	graceful_stop_then_resume(SIGINT, "SIGINT");
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
	char *errp = tag_path("abort", "err");
	ck_assert_msg(wait_file_contains(errp, "SIGTERM received", 30), "first SIGTERM not taken");
	free(errp);
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
	/* progress_interval is 5 min: the line comes from SIGUSR1, while the run
	 * is still going (the final line at the end of the stage does not count) */
	char *lp = log_path(NULL);
	ck_assert_msg(wait_file_contains(lp, "[progress]", 30), "no progress line after SIGUSR1");
	char *text = tu_read(lp);
	const char *q = strstr(text, "[progress] ");
	long long done = -1, total = -1;
	ck_assert(q && sscanf(q, "[progress] %lld/%lld done", &done, &total) == 2);
	ck_assert_msg(done < total, "the progress line came only at the end of the run: %.80s", q);
	free(text);
	free(lp);
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

/*
 * `--until HH:MM` on the command line (not in the job file).  The run's
 * local time zone is a fixed offset chosen so that the next local minute
 * begins about 8 s from now: the window ends then, whatever the wall clock
 * says, and no minute boundary can make it flaky.
 */
START_TEST(test_until_on_command_line)
{
	struct tu_proc p;
	e2e_write_job(&E, 1, NULL, "run = { grace = \"1s\"; };");
	/* ~790 kB at 20 kB/s: the whole job would take ~40 s */
	slow_source(20000);
	time_t end = time(NULL) + 8;
	int off = (int)((60 - end % 60) % 60);   /* local = UTC + off: `end` is hh:mm:00 local */
	time_t local_end = end + off;
	struct tm tm;
	gmtime_r(&local_end, &tm);
	char hhmm[8], tz[32];
	snprintf(hhmm, sizeof hhmm, "%02d:%02d", tm.tm_hour, tm.tm_min);
	snprintf(tz, sizeof tz, "TZ=ZMB-00:00:%02d", off);   /* POSIX: west is positive */
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job,
			 (char *)"--until", hhmm, NULL };
	char *env[] = { tz, NULL };
	double t0 = now();
	int rc = tu_run(argv, env, 120, &p);
	double dt = now() - t0;
	ck_assert_msg(rc == 75, "exit %d with --until %s (%s), after %.1f s: %s", rc, hhmm, tz, dt, p.err);
	ck_assert_msg(tu_contains(p.err, "end of window"), "no window message: %s", p.err);
	/* the window ended at that time, not at once and not at the end of the job */
	ck_assert_msg(dt > 4 && dt < 35, "--until %s ended the run after %.1f s (want ~8 s + grace)", hhmm, dt);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state IN ('exporting','importing')"), 0);
	ck_assert_int_gt(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state IN ('pending','exported')"), 0);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT exit_status FROM runs ORDER BY id DESC LIMIT 1"), 75);
	char *cmd = db_list("SELECT command FROM runs ORDER BY id DESC LIMIT 1");
	ck_assert_msg(tu_contains(cmd, "--until"), "run recorded as %s", cmd);
	free(cmd);
	/* a later run continues and finishes */
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

/* logrotate: the log file is renamed away, then SIGHUP; later lines go to a new file */
START_TEST(test_sighup_reopens_log)
{
	e2e_write_job(&E, 2, NULL, NULL);
	slow_source(60000);
	pid_t pid = start_run(NULL, "hup");
	wait_until_busy();
	char *lp = log_path(NULL), *rotated = log_path(".1");
	ck_assert_int_eq(rename(lp, rotated), 0);
	kill(pid, SIGHUP);
	ck_assert_msg(wait_file_contains(lp, "SIGHUP: log file reopened", 30),
		      "no new log file after SIGHUP");
	slow_source(0);
	int rc = tu_wait(pid, 120);
	ck_assert_int_eq(rc, 0);
	struct stat sb;
	ck_assert_int_eq(stat(lp, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	char *fresh = tu_read(lp), *old = tu_read(rotated);
	ck_assert_msg(tu_contains(fresh, "run finished, exit 0"), "new log: %s", fresh);
	ck_assert(tu_contains(old, "stage 'migrate' (migrate) starting"));
	ck_assert_msg(!tu_contains(old, "run finished") && !tu_contains(old, "SIGHUP"),
		      "lines after SIGHUP went to the renamed file");
	free(fresh);
	free(old);
	free(lp);
	free(rotated);
}
END_TEST

/*
 * README "Signals": a SIGTERM that arrives while the run takes its lock or
 * recovers from a crash is a graceful stop.  A run is killed mid-way; another
 * process holds the state DB's write lock, so the next run waits in its
 * crash recovery; SIGTERM then; the lock is let go.  The run must end 75 (not
 * die of the signal), with the recovery done and no account claimed.
 */
START_TEST(test_sigterm_during_recovery)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, NULL, NULL);
	slow_source(60000);
	pid_t pid = start_run(NULL, "crash");
	ck_assert_msg(wait_db("SELECT count(*) FROM accounts WHERE state IN ('exporting','importing')", 60),
		      "nothing in flight");
	kill(pid, SIGKILL);
	ck_assert_int_eq(tu_wait(pid, 30), 128 + SIGKILL);
	long long crashed = e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state IN ('exporting','importing')");
	ck_assert_int_gt(crashed, 0);

	/* the holder: takes the write lock, says so, lets go when told */
	int ready[2], go[2];
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid_t holder = fork();
	ck_assert_int_ge(holder, 0);
	if (holder == 0) {
		sqlite3 *db = NULL;
		char c = '0';
		int ok = sqlite3_open(E.db, &db) == SQLITE_OK;
		ok = ok && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
		if (ok)
			c = '1';
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			ok = 0;
		ok = ok && sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK;
		sqlite3_close(db);
		_exit(ok ? 0 : 1);
	}
	char c = 0;
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	ck_assert_msg(c == '1', "the holder could not take the write lock");
	long long exports = source_exports();

	pid = start_run(NULL, "rec");
	/* it holds the run lock (it wrote its pid there) and now waits for the DB */
	char *lockp, *pidstr;
	if (asprintf(&lockp, "%s.lock", E.db) < 0 || asprintf(&pidstr, "pid %ld ", (long)pid) < 0)
		abort();
	ck_assert_msg(wait_file_contains(lockp, pidstr, 30), "the run never took its lock");
	ck_assert(still_running(pid));
	kill(pid, SIGTERM);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(tu_wait(holder, 30), 0);
	int rc = tu_wait(pid, 60);
	char *err = read_tag("rec", "err");
	ck_assert_msg(rc == 75, "exit %d after SIGTERM during recovery (143 = killed by it): %s", rc, err);
	ck_assert_msg(tu_contains(err, "stopped mid-way"), "no crash recovery: %s", err);
	ck_assert(tu_contains(err, "SIGTERM"));
	free(err);
	/* recovered, consistent, nothing claimed */
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state IN ('exporting','importing')"), 0);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT exit_status FROM runs ORDER BY id DESC LIMIT 1"), 75);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE started_at >= "
				      "(SELECT started_at FROM runs ORDER BY id DESC LIMIT 1)"), 0);
	ck_assert_int_eq(source_exports(), exports);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
	free(lockp);
	free(pidstr);
	/* the next run finishes */
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

/*
 * --quiet (cron): nothing on stdout, and on stderr only warnings and errors;
 * the log file still has everything.  Without it, the same run talks.
 */
START_TEST(test_quiet)
{
	struct tu_proc p;
	/* frank has no target account: one error to show */
	json_decref(zsim_post(E.dst, "/zsim/delete-account", "{\"name\":\"frank@example.org\"}"));
	e2e_write_job(&E, 2, NULL, NULL);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, "--quiet", (char *)NULL);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(p.out[0] == '\0', "stdout under --quiet: %s", p.out);
	ck_assert_msg(!tu_contains(p.err, " INFO ") && !tu_contains(p.err, " DEBUG "),
		      "info lines on stderr under --quiet: %s", p.err);
	ck_assert_msg(tu_contains(p.err, "ERROR") && tu_contains(p.err, "frank@example.org"),
		      "the error is not on stderr: %s", p.err);
	tu_proc_release(&p);
	char *lp = log_path(NULL);
	char *logtext = tu_read(lp);
	ck_assert(tu_contains(logtext, "INFO  run finished, exit 1"));
	ck_assert(tu_contains(logtext, "DEBUG "));
	free(logtext);
	free(lp);
	/* the same command without --quiet prints the stage output and info lines */
	json_decref(zsim_post(E.dst, "/zsim/add-account", "{\"name\":\"frank@example.org\"}"));
	rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, "--retry-failed", (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(tu_contains(p.out, "accounts: "), "stdout: %s", p.out);
	ck_assert(tu_contains(p.err, " INFO "));
	tu_proc_release(&p);
}
END_TEST

/* Under cron (no terminal) a progress line is logged every run.progress_interval */
START_TEST(test_progress_interval)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, NULL, "run = { progress_interval = \"1s\"; };");
	slow_source(60000);   /* ~6-8 s */
	double t0 = now();
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	double dt = now() - t0;
	ck_assert_int_eq(rc, 0);
	tu_proc_release(&p);
	char *lp = log_path(NULL);
	char *text = tu_read(lp);
	int n = 0;
	for (const char *q = text; (q = strstr(q, "INFO  [progress] ")) != NULL; q++)
		n++;
	free(text);
	free(lp);
	/* one at the end of the stage, and one a second before (not more often) */
	ck_assert_msg(dt >= 4, "the run took only %.1f s; slow it down", dt);
	ck_assert_msg(n >= 3, "%d progress line(s) in %.1f s with progress_interval = 1s", n, dt);
	ck_assert_msg(n <= dt + 2, "%d progress lines in %.1f s: more than one a second", n, dt);
}
END_TEST

/*
 * Exit 70: a state DB or lock file that cannot be used (not a database, a
 * directory) is not a config error and not a server error.  Nothing is
 * asked of the servers.
 */
START_TEST(test_unusable_state_db_exits_70)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, NULL, NULL);
	json_decref(zsim_post(E.src, "/zsim/reset-stats", "{}"));
	/* the lock file is a directory */
	char *lockp;
	if (asprintf(&lockp, "%s.lock", E.db) < 0)
		abort();
	ck_assert_int_eq(mkdir(lockp, 0700), 0);
	int rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_int_eq(rc, 70);
	ck_assert_msg(tu_contains(p.err, "cannot open lock file") && tu_contains(p.err, lockp),
		      "%s", p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(rmdir(lockp), 0);
	/* the state DB is not a database */
	free(tu_write(E.dir, "state.db", "this is not an SQLite database, it is text\n", 0600));
	rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_int_eq(rc, 70);
	ck_assert_msg(tu_contains(p.err, E.db) && tu_contains(p.err, "not a database"), "%s", p.err);
	tu_proc_release(&p);
	char *text = tu_read(E.db);
	ck_assert(tu_contains(text, "it is text"));   /* left as it was */
	free(text);
	json_t *ss = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_int(ss, "soap/AuthRequest"), 0);
	json_decref(ss);
	free(lockp);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_cron");
	TCase *tc = tcase_create("cron");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	/* CRON_ONLY=test_name runs one test (debugging, make mutate) */
	const char *only = getenv("CRON_ONLY");
#define ADD(t) do { if (!only || !strcmp(only, #t)) tcase_add_test(tc, t); } while (0)
	ADD(test_lock_contention);
	ADD(test_sigterm_graceful_then_resume);
	ADD(test_sigint_graceful_then_resume);
	ADD(test_second_sigterm_aborts);
	ADD(test_window_end_then_next_run_finishes);
	ADD(test_status_during_run_and_sigusr1);
	ADD(test_dry_run_changes_nothing);
	ADD(test_check_command);
	ADD(test_failed_then_retry_failed_exits_0);
	ADD(test_spool_preflight_disk_space);
	ADD(test_tty_progress_line);
	ADD(test_until_on_command_line);
	ADD(test_sighup_reopens_log);
	ADD(test_sigterm_during_recovery);
	ADD(test_quiet);
	ADD(test_progress_interval);
	ADD(test_unusable_state_db_exits_70);
#undef ADD
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
