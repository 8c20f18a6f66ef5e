/*
 * check_stage_exec.c - the exec stage with real processes.
 */
#include "e2e.h"
#include "slapd.h"
#include "testutil.h"
#include "zmb.h"

#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct res {
	enum zmb_rc rc;
	char *err;
	char *out;
};

static struct res run(struct cval *g)
{
	struct stage_run sr;
	struct res r = { 0, NULL, NULL };
	stage_run_init(&sr, "x", "exec", g);
	r.rc = stage_run_go(&sr, &r.err);
	r.out = xstrdup(sr.ctx.out.s ? sr.ctx.out.s : "");
	stage_run_release(&sr);
	return r;
}

static void res_release(struct res *r)
{
	free(r->err);
	free(r->out);
}

START_TEST(test_success_env_cwd)
{
	char *dir = tu_tmpdir("exec");
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "command", "sh", "-c", "echo hello $ZMB_X; pwd; echo to-stderr >&2", NULL);
	struct cval *env = tcv_group(g, "env");
	tcv_str(env, "ZMB_X", "world");
	tcv_str(g, "cwd", dir);
	struct res r = run(g);
	ck_assert_msg(r.rc == ZMB_OK, "%s", r.err);
	ck_assert_msg(tu_contains(r.out, "| hello world"), "%s", r.out);
	ck_assert(tu_contains(r.out, dir));
	ck_assert(tu_contains(r.out, "| to-stderr"));
	ck_assert(tu_contains(r.out, "exit status 0"));
	res_release(&r);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_failure_status)
{
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "command", "sh", "-c", "echo boom; exit 3", NULL);
	struct res r = run(g);
	ck_assert_int_eq(r.rc, ZMB_EPROTO);
	ck_assert_msg(tu_contains(r.err, "exit status 3") && tu_contains(r.err, "sh -c"), "%s",
		      r.err);
	ck_assert(tu_contains(r.out, "| boom"));
	res_release(&r);
}
END_TEST

START_TEST(test_not_found)
{
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "command", "/nonexistent/zmcontrol", "restart", NULL);
	struct res r = run(g);
	ck_assert_int_eq(r.rc, ZMB_ECONFIG);
	ck_assert(tu_contains(r.err, "/nonexistent/zmcontrol"));
	res_release(&r);
}
END_TEST

START_TEST(test_timeout_kills_group)
{
	char *dir = tu_tmpdir("exec");
	char *pidf = xasprintf("%s/child.pid", dir);
	char *script = xasprintf("sleep 30 & echo $! > %s; wait", pidf);
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "command", "sh", "-c", script, NULL);
	tcv_int(g, "timeout", 1);
	double t0 = mono_now();
	struct res r = run(g);
	double took = mono_now() - t0;
	ck_assert_int_eq(r.rc, ZMB_ETIMEOUT);
	/* the group's `sleep 30` would keep it 30 s: the 1 s timeout ends it
	 * long before (a generous bound, not a speed test) */
	ck_assert_msg(took < 15, "took %.1fs", took);
	ck_assert(tu_contains(r.err, "timed out"));
	char *pid = tu_read(pidf);
	ck_assert(pid != NULL);
	/* the grandchild goes: gone, or a zombie waiting for init to reap it */
	char *statf = xasprintf("/proc/%d/stat", atoi(pid));
	char *st = NULL;
	char state = '?';
	for (double t0w = mono_now(); mono_now() - t0w < 10; tu_sleep(0.02)) {
		free(st);
		st = tu_read(statf);
		state = st && strrchr(st, ')') ? strrchr(st, ')')[2] : 'X';
		if (state == 'Z' || state == 'X')
			break;
	}
	ck_assert_msg(state == 'Z' || state == 'X', "grandchild %s survived: %s", pid, st);
	free(st);
	free(statf);
	free(pid);
	res_release(&r);
	free(script);
	free(pidf);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/*
 * zmbatch run blocks SIGTERM & co. (its sigwait thread takes them) and
 * ignores SIGPIPE; the command must start with the defaults, or a timeout's
 * SIGTERM does nothing and daemons it starts cannot be stopped.
 */
START_TEST(test_child_signals_default)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	void (*prev)(int) = signal(SIGPIPE, SIG_IGN);
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "command", "sh", "-c", "grep -E '^Sig(Blk|Ign):' /proc/self/status", NULL);
	struct res r = run(g);
	signal(SIGPIPE, prev);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	ck_assert_msg(r.rc == ZMB_OK, "%s", r.err ? r.err : "");
	/* masks as /proc shows them: bit n-1 for signal n.  Only what the run
	 * changed is checked: signals the caller ignores (nohup...) stay ignored */
	const char *b = strstr(r.out, "SigBlk:"), *i = strstr(r.out, "SigIgn:");
	ck_assert_msg(b && i, "%s", r.out);
	unsigned long long blk = strtoull(b + 7, NULL, 16), ign = strtoull(i + 7, NULL, 16);
	unsigned long long ours = 1ULL << (SIGTERM - 1) | 1ULL << (SIGINT - 1) | 1ULL << (SIGHUP - 1);
	ck_assert_msg((blk & ours) == 0, "blocked in the child: %s", r.out);
	ck_assert_msg((ign & 1ULL << (SIGPIPE - 1)) == 0, "SIGPIPE ignored in the child: %s", r.out);
	res_release(&r);
}
END_TEST

START_TEST(test_tail_bounded)
{
	struct cval *g = tcv_group(NULL, NULL);
	/* ~1 MB of output: only the last lines are kept */
	tcv_strs(g, "command", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do "
		 "echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done", NULL);
	tcv_int(g, "tail_lines", 3);
	struct res r = run(g);
	ck_assert_msg(r.rc == ZMB_OK, "%s", r.err);
	ck_assert(tu_contains(r.out, "| line-19999-"));
	ck_assert(tu_contains(r.out, "| line-19997-"));
	ck_assert(!tu_contains(r.out, "| line-19996-"));
	ck_assert(strlen(r.out) < 1000);
	res_release(&r);
}
END_TEST

/* Lines in a file (0 if missing). */
static int count_lines(const char *path)
{
	char *t = tu_read(path);
	int n = 0;
	for (const char *c = t; c && *c; c++)
		n += *c == '\n';
	free(t);
	return n;
}

static int run_job(const char *job, const char *stage, struct tu_proc *p)
{
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", (char *)job,
			 stage ? (char *)"--stage" : NULL, (char *)stage, NULL };
	return tu_run(argv, NULL, 60, p);
}

/*
 * A rerun skips the stages already done (README "Job stages"): an exec stage
 * that appends a line to a file runs once, however often the job is run;
 * a failed stage runs again on the next run; `--stage NAME` runs a done
 * stage again.  Checked by the file, the stages table and the output.
 */
START_TEST(test_idempotent_rerun)
{
	char *dir = tu_tmpdir("exec");
	char *marks = xasprintf("%s/marks", dir), *ok = xasprintf("%s/ok", dir);
	char *db = xasprintf("%s/state.db", dir);
	char *job = xasprintf(
		"job = \"exec-rerun\";\n"
		"state = { db = \"%s\"; };\n"
		"stages = (\n"
		" { name = \"mark\"; type = \"exec\"; command = [ \"sh\", \"-c\", \"echo ran >> %s\" ]; },\n"
		" { name = \"gate\"; type = \"exec\"; command = [ \"test\", \"-e\", \"%s\" ]; }\n"
		");\n", db, marks, ok);
	char *jf = tu_write(dir, "job.cfg", job, 0600);
	struct tu_proc p;
	/* 1: mark runs, gate fails: exit 1 */
	int rc = run_job(jf, NULL, &p);
	ck_assert_msg(rc == 1, "first run: exit %d\n%s", rc, p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(count_lines(marks), 1);
	ck_assert_int_eq(e2e_db_int(db, "SELECT count(*) FROM stages WHERE name = 'mark' AND state = 'done'"
				    " AND attempts = 1"), 1);
	ck_assert_int_eq(e2e_db_int(db, "SELECT count(*) FROM stages WHERE name = 'gate' AND state = 'failed'"), 1);
	/* 2: mark is done and skipped; the failed gate runs again and passes */
	free(tu_write(dir, "ok", "", 0600));
	rc = run_job(jf, NULL, &p);
	ck_assert_msg(rc == 0, "second run: exit %d\n%s", rc, p.err);
	ck_assert_msg(tu_contains(p.err, "stage 'mark' already done, skipped"), "second run did not skip 'mark':\n%s", p.err);
	tu_proc_release(&p);
	ck_assert_msg(count_lines(marks) == 1, "a done stage ran again (%d lines)", count_lines(marks));
	ck_assert_int_eq(e2e_db_int(db, "SELECT attempts FROM stages WHERE name = 'mark'"), 1);
	ck_assert_int_eq(e2e_db_int(db, "SELECT count(*) FROM stages WHERE name = 'gate' AND state = 'done'"
				    " AND attempts = 2"), 1);
	/* 3: everything done: nothing runs */
	rc = run_job(jf, NULL, &p);
	ck_assert_msg(rc == 0, "third run: exit %d\n%s", rc, p.err);
	ck_assert(tu_contains(p.err, "stage 'gate' already done, skipped"));
	tu_proc_release(&p);
	ck_assert_int_eq(count_lines(marks), 1);
	ck_assert_int_eq(e2e_db_int(db, "SELECT count(*) FROM events WHERE message = 'stage started'"
				    " AND stage = 'mark'"), 1);
	/* 4: --stage mark runs it again, and only it */
	rc = run_job(jf, "mark", &p);
	ck_assert_msg(rc == 0, "--stage run: exit %d\n%s", rc, p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(count_lines(marks), 2);
	ck_assert_int_eq(e2e_db_int(db, "SELECT attempts FROM stages WHERE name = 'mark'"), 2);
	ck_assert_int_eq(e2e_db_int(db, "SELECT attempts FROM stages WHERE name = 'gate'"), 2);
	free(jf);
	free(job);
	free(db);
	free(ok);
	free(marks);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_validate)
{
	struct stage_run sr;
	char *err = NULL;
	struct cval *g = tcv_group(NULL, NULL);
	tcv_int(g, "timeout", 5);
	stage_run_init(&sr, "restart", "exec", g);
	ck_assert_int_eq(exec_validate(&sr.sc, "job.conf", &err), -1);
	ck_assert_msg(tu_contains(err, "job.conf:1: stage 'restart': key 'command'"), "%s", err);
	free(err);
	stage_run_release(&sr);
	g = tcv_group(NULL, NULL);
	tcv_strs(g, "command", "true", NULL);
	tcv_str(g, "timeout", "soon");
	stage_run_init(&sr, "restart", "exec", g);
	err = NULL;
	ck_assert_int_eq(exec_validate(&sr.sc, "job.conf", &err), -1);
	ck_assert_msg(tu_contains(err, "stage 'restart': key 'timeout'"), "%s", err);
	free(err);
	stage_run_release(&sr);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("stage_exec");
	TCase *tc = tcase_create("exec");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_success_env_cwd);
	tcase_add_test(tc, test_failure_status);
	tcase_add_test(tc, test_not_found);
	tcase_add_test(tc, test_timeout_kills_group);
	tcase_add_test(tc, test_child_signals_default);
	tcase_add_test(tc, test_tail_bounded);
	tcase_add_test(tc, test_idempotent_rerun);
	tcase_add_test(tc, test_validate);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
