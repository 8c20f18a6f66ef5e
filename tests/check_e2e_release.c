/*
 * check_e2e_release.c - the shipped binary is not the test binary.
 *
 * bin/zmbatch must obey no test hook: ZMBATCH_CRASH_AT, ZMBATCH_STEP_LOG and
 * ZMBATCH_TEST_FREE_BYTES change the behaviour only of the test build
 * ($ZMBATCH_HOOKS_BIN, src/core/testhooks.c compiled with -DZMBATCH_TESTING),
 * and that build says so loudly whenever a hook is in effect.  A server
 * reached over plain http is warned about on every run, as tls_verify =
 * false is.
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* run -c E.job with bin, the hook variables set; returns the exit code */
static int run_with_hooks(const char *bin, const char *steps, struct tu_proc *p)
{
	char *step_env = xasprintf("ZMBATCH_STEP_LOG=%s", steps);
	char *env[] = { (char *)"ZMBATCH_CRASH_AT=1", step_env,
			(char *)"ZMBATCH_TEST_FREE_BYTES=1", NULL };
	char *argv[] = { (char *)bin, (char *)"run", (char *)"-c", E.job, NULL };
	int rc = tu_run(argv, env, 120, p);
	free(step_env);
	return rc;
}

START_TEST(test_shipped_binary_ignores_test_hooks)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, NULL, NULL);
	char *steps = xasprintf("%s/steps", E.dir);
	/* with the hooks obeyed this would crash at the first step (exit 99) or
	 * refuse every account for want of disk space (exit 1) */
	int rc = run_with_hooks(tu_zmbatch(), steps, &p);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, p.err);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state='done'"),
			 (long long)E2E_NUSERS);
	ck_assert_msg(access(steps, F_OK) != 0, "the shipped binary wrote a step log");
	ck_assert(!tu_contains(p.err, "TEST BUILD") && !tu_contains(p.out, "TEST BUILD"));
	ck_assert(!e2e_tree_contains(&E, "log", "TEST BUILD"));
	tu_proc_release(&p);
	free(steps);
}
END_TEST

START_TEST(test_hooks_binary_obeys_and_warns)
{
	struct tu_proc p;
	e2e_write_job(&E, 1, NULL, NULL);
	char *steps = xasprintf("%s/steps", E.dir);
	int rc = run_with_hooks(tu_zmbatch_hooks(), steps, &p);
	ck_assert_msg(rc == 99, "the test build did not crash at step 1: exit %d", rc);
	char *log = tu_read(steps);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(!strncmp(log, "1 ", 2), "step log: %s", log);
	free(log);
	/* the warning is given before the first step, in the log file too */
	ck_assert(e2e_tree_contains(&E, "log", "TEST BUILD: test hook ZMBATCH_CRASH_AT"));
	ck_assert(e2e_tree_contains(&E, "log", "TEST BUILD: test hook ZMBATCH_STEP_LOG"));
	ck_assert(e2e_tree_contains(&E, "log", "TEST BUILD: test hook ZMBATCH_TEST_FREE_BYTES"));
	tu_proc_release(&p);
	free(steps);
}
END_TEST

/* scheme = "http": the password and token in clear text, said on every run */
START_TEST(test_scheme_http_warns_every_run)
{
	e2e_write_job(&E, 1, NULL, NULL);
	char *job = tu_read(E.job);
	ck_assert_ptr_nonnull(job);
	/* the target on plain http (to the simulator's TLS port, so the run fails
	 * after the warning: it comes before any request) */
	char *at = strstr(job, "target = { ");
	ck_assert_ptr_nonnull(at);
	char *text = xasprintf("%.*starget = { scheme = \"http\"; %s", (int)(at - job), job,
			       at + strlen("target = { "));
	char *path = tu_write(E.dir, "http.cfg", text, 0600);
	for (int i = 0; i < 2; i++) {
		struct tu_proc p;
		char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", path, NULL };
		int rc = tu_run(argv, NULL, 120, &p);
		ck_assert_msg(rc != 0, "run %d: plain http to a TLS port succeeded", i);
		ck_assert_msg(tu_contains(p.err, "scheme = \"http\"") &&
			      tu_contains(p.err, "clear text"),
			      "run %d gave no warning about plain http: %s", i, p.err);
		tu_proc_release(&p);
	}
	free(path);
	free(text);
	free(job);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_release");
	TCase *tc = tcase_create("release");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_shipped_binary_ignores_test_hooks);
	tcase_add_test(tc, test_hooks_binary_obeys_and_warns);
	tcase_add_test(tc, test_scheme_http_warns_every_run);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
