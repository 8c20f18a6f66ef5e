/*
 * check_unit_runctl.c - run control (src/core/runctl.h): stop requests,
 * the window deadline, the grace period, and what may_claim / must_abort /
 * stopped answer in each state.  Links the core layer only.
 */
#include "testutil.h"

#include "runctl.h"
#include "zmb.h"

#include <check.h>
#include <string.h>

/* The three answers at once, as "claim/abort/stopped" flags "CAS" or "-". */
static const char *answers(struct run_ctl *c)
{
	static char s[4];
	s[0] = runctl_may_claim(c) ? 'C' : '-';
	s[1] = runctl_must_abort(c) ? 'A' : '-';
	s[2] = runctl_stopped(c) ? 'S' : '-';
	s[3] = '\0';
	return s;
}

static const char *reason(struct run_ctl *c)
{
	return atomic_load(&c->stop_reason);
}

START_TEST(test_running)
{
	struct run_ctl c;
	runctl_init(&c, 0, 5);   /* no window */
	ck_assert_str_eq(answers(&c), "C--");
	ck_assert_int_eq(atomic_load(&c.stop), RUN_GO);
	ck_assert_ptr_null(reason(&c));
	ck_assert_int_eq(atomic_load(&c.token_refreshes), 0);
	ck_assert_int_eq(atomic_load(&c.retries), 0);
	ck_assert_int_eq(atomic_load(&c.bytes), 0);
	/* a window still open */
	runctl_init(&c, mono_now() + 60, 5);
	ck_assert_str_eq(answers(&c), "C--");
}
END_TEST

/* graceful: no new claims at once, in-flight work aborted only after the grace */
START_TEST(test_graceful_then_grace_over)
{
	struct run_ctl c;
	runctl_init(&c, 0, 1.0);    /* (1 s: the checks before the sleep stay inside it when loaded) */
	runctl_request_stop(&c, "SIGTERM", false);
	ck_assert_int_eq(atomic_load(&c.stop), RUN_STOP_GRACEFUL);
	ck_assert_str_eq(answers(&c), "--S");
	ck_assert_str_eq(reason(&c), "SIGTERM");
	tu_sleep(1.1);
	ck_assert_str_eq(answers(&c), "-AS");
	/* grace 0: abort at once */
	runctl_init(&c, 0, 0);
	runctl_request_stop(&c, "SIGTERM", false);
	ck_assert_str_eq(answers(&c), "-AS");
}
END_TEST

/* a second graceful request does not restart the grace period, nor change the reason */
START_TEST(test_graceful_twice)
{
	struct run_ctl c;
	runctl_init(&c, 0, 0.5);
	runctl_request_stop(&c, "SIGTERM", false);
	double since = atomic_load(&c.stop_since);
	ck_assert(since > 0);
	tu_sleep(0.3);
	runctl_request_stop(&c, "SIGINT", false);
	ck_assert(atomic_load(&c.stop_since) == since);
	ck_assert_str_eq(reason(&c), "SIGTERM");
	tu_sleep(0.3);   /* 0.6 s after the first request */
	ck_assert_str_eq(answers(&c), "-AS");
}
END_TEST

START_TEST(test_abort_and_escalation)
{
	struct run_ctl c;
	runctl_init(&c, 0, 60);
	runctl_request_stop(&c, "SIGTERM", true);
	ck_assert_int_eq(atomic_load(&c.stop), RUN_STOP_ABORT);
	ck_assert_str_eq(answers(&c), "-AS");
	/* an abort is never weakened to graceful */
	runctl_request_stop(&c, "SIGHUP", false);
	ck_assert_int_eq(atomic_load(&c.stop), RUN_STOP_ABORT);
	ck_assert_str_eq(reason(&c), "SIGTERM");
	/* graceful, then abort (the caller's second signal): aborts within the grace */
	runctl_init(&c, 0, 60);
	runctl_request_stop(&c, "SIGTERM", false);
	ck_assert_str_eq(answers(&c), "--S");
	runctl_request_stop(&c, "SIGTERM again", true);
	ck_assert_int_eq(atomic_load(&c.stop), RUN_STOP_ABORT);
	ck_assert_str_eq(answers(&c), "-AS");
	ck_assert_str_eq(reason(&c), "SIGTERM");
}
END_TEST

/* the window ends: a graceful stop whose grace counts from the deadline */
START_TEST(test_window_end)
{
	struct run_ctl c;
	runctl_init(&c, mono_now() + 1.0, 60);
	ck_assert_str_eq(answers(&c), "C--");
	ck_assert_ptr_null(reason(&c));
	tu_sleep(1.1);
	ck_assert_str_eq(answers(&c), "--S");
	ck_assert_int_eq(atomic_load(&c.stop), RUN_STOP_GRACEFUL);
	ck_assert_str_eq(reason(&c), "end of window");
	/* the grace runs from the deadline, not from when a worker first noticed */
	runctl_init(&c, mono_now() - 1.0, 0.5);
	ck_assert(runctl_must_abort(&c));
	ck_assert_str_eq(reason(&c), "end of window");
	/* each query notices the window: must_abort and stopped alone too */
	runctl_init(&c, mono_now() - 1.0, 60);
	ck_assert(!runctl_must_abort(&c));
	ck_assert_int_eq(atomic_load(&c.stop), RUN_STOP_GRACEFUL);
	runctl_init(&c, mono_now() - 1.0, 60);
	ck_assert(runctl_stopped(&c));
}
END_TEST

/* a signal before the window ends keeps its reason and its own start time */
START_TEST(test_signal_then_window)
{
	struct run_ctl c;
	runctl_init(&c, mono_now() + 0.1, 10);
	runctl_request_stop(&c, "SIGTERM", false);
	double since = atomic_load(&c.stop_since);
	tu_sleep(0.2);
	ck_assert_str_eq(answers(&c), "--S");
	ck_assert(atomic_load(&c.stop_since) == since);
	ck_assert_str_eq(reason(&c), "SIGTERM");
	/* an abort after the window ended: aborts, the reason stays */
	runctl_init(&c, mono_now() - 1.0, 60);
	ck_assert_str_eq(answers(&c), "--S");
	runctl_request_stop(&c, "SIGINT", true);
	ck_assert_str_eq(answers(&c), "-AS");
	ck_assert_str_eq(reason(&c), "end of window");
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("unit_runctl");
	TCase *tc = tcase_create("runctl");
	tcase_add_test(tc, test_running);
	tcase_add_test(tc, test_graceful_then_grace_over);
	tcase_add_test(tc, test_graceful_twice);
	tcase_add_test(tc, test_abort_and_escalation);
	tcase_add_test(tc, test_window_end);
	tcase_add_test(tc, test_signal_then_window);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
