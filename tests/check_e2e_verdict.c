/*
 * check_e2e_verdict.c - end-to-end: the verification inside a run (README
 * "Verification"): each account's folder figures, read from the source when
 * its archive is cut and from the target after its import (GetFolderRequest
 * with the admin token acting on the account), must agree (>= per folder)
 * before the account is done.
 *
 * The target simulator drops chosen items on import, silently (item_fail
 * without a code) or with a warning (item_fail with a code): both are real
 * behaviours of ArchiveFormatter (tests/zsim/README.md).
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <signal.h>
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

static int run(const char *extra_mig)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, extra_mig, NULL);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	tu_proc_release(&p);
	return rc;
}

static long long db(const char *sql)
{
	return e2e_db_count(&E, sql);
}

static void knobs(struct zsim *z, const char *json)
{
	json_decref(zsim_post(z, "/zsim/knobs", json));
}

/* Every account verified 'ok' (with its figures), none left pending verification. */
static void assert_all_verified(void)
{
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done' AND verify = 'ok'"
			    " AND verify_pending = 0 AND verified_at > 0 AND verify_source LIKE '[%'"),
			 (long long)E2E_NUSERS);
}

/*
 * A clean migration, spool and stream: every account verified, the source
 * and the target each asked one GetFolderRequest per account, contents equal.
 */
START_TEST(test_clean_run_verified)
{
	bool stream = _i == 1;
	ck_assert_int_eq(run(stream ? "transfer = \"stream\";" : NULL), 0);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	assert_all_verified();
	/* the source when each export begins, the target after its import: no mismatch, so the
	 * source is not asked again */
	ck_assert_int_eq(zsim_stat_int(ss, "soap/GetFolderRequest"), (long long)E2E_NUSERS);
	ck_assert_int_eq(zsim_stat_int(ds, "soap/GetFolderRequest"), (long long)E2E_NUSERS);
	json_decref(ss);
	json_decref(ds);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE verify_detail LIKE '%item(s) on the source%'"),
			 (long long)E2E_NUSERS);
}
END_TEST

/*
 * The target silently drops every 2nd item of bob's first import: the
 * verification sees Inbox short, the account is imported again (resolve=
 * skip, from the same archive) and then verified; no duplicate.
 */
START_TEST(test_silent_drop_caught_and_retried)
{
	knobs(E.dst, "{\"faults\":[{\"op\":\"import\",\"account\":\"bob@example.net\",\"action\":\"item_fail\","
	      "\"every\":2,\"count\":1}]}");
	ck_assert_int_eq(run(NULL), 0);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	ck_assert_int_eq(zsim_stat_acct(ds, "imports", "bob@example.net", "count"), 2);
	ck_assert_int_eq(zsim_stat_acct(ss, "exports", "bob@example.com", "count"), 1);
	json_decref(ss);
	json_decref(ds);
	assert_all_verified();
	ck_assert_int_eq(db("SELECT attempts FROM accounts WHERE account = 'bob@example.com'"), 2);
	ck_assert_int_eq(db("SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id WHERE"
			    " a.account = 'bob@example.com' AND e.message LIKE '%verify: % item(s), target %'"), 1);
}
END_TEST

/*
 * Every import of dave drops items with a warning: after max_attempts the
 * account fails, last_error "verify: <folder>: source N item(s), target M"
 * with the import's warnings named; the others are verified.
 */
START_TEST(test_persistent_loss_fails)
{
	knobs(E.dst, "{\"faults\":[{\"op\":\"import\",\"account\":\"dave@example.net\",\"action\":\"item_fail\","
	      "\"every\":2,\"code\":\"formatter.MISSING_BLOB\",\"reason\":\"missing blob\",\"count\":-1}]}");
	ck_assert_int_eq(run(NULL), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE account = 'dave@example.com' AND state = 'failed'"
			    " AND verify = 'mismatch' AND last_error LIKE 'verify: Inbox: source 5 item(s), target 3 %'"
			    " AND last_error LIKE '%the import reported % warning(s)%'"), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done' AND verify = 'ok'"),
			 (long long)E2E_NUSERS - 1);
}
END_TEST

/*
 * The run is killed right after alice's import was recorded and before it
 * was verified: the next run verifies it without importing it again.
 */
START_TEST(test_crash_before_verify_resumes_there)
{
	const char *mig = _i == 1 ? "order = \"as-listed\"; transfer = \"stream\";"
				  : "order = \"as-listed\";";
	char *steps = xasprintf("%s/steps", E.dir);
	e2e_write_job(&E, 1, mig, NULL);
	char *argv[] = { (char *)tu_zmbatch_hooks(), (char *)"run", (char *)"-c", E.job, NULL };
	char *env[2] = { NULL, NULL };
	if (asprintf(&env[0], "ZMBATCH_STEP_LOG=%s", steps) < 0)
		abort();
	struct tu_proc p;
	/* one run to learn the step number of the first "imported" (alice, listed first) */
	ck_assert_int_eq(tu_run(argv, env, 120, &p), 0);
	tu_proc_release(&p);
	char *log = tu_read(steps);
	ck_assert_ptr_nonnull(log);
	char *hit = strstr(log, " imported");
	ck_assert_msg(hit, "no 'imported' step:\n%s", log);
	while (hit > log && hit[-1] != '\n')
		hit--;
	long k = strtol(hit, NULL, 10);
	free(log);
	/* again from nothing, killed there */
	for (size_t i = 0; i < E2E_NUSERS; i++) {
		char *b = xasprintf("{\"name\":\"%s\"}", E2E_USERS[i][1]);
		json_decref(zsim_post(E.dst, "/zsim/delete-account", b));
		json_decref(zsim_post(E.dst, "/zsim/add-account", b));
		free(b);
	}
	unlink(E.db);
	free(env[0]);
	if (asprintf(&env[0], "ZMBATCH_CRASH_AT=%ld", k) < 0)
		abort();
	ck_assert_int_eq(tu_run(argv, env, 120, &p), 99);
	tu_proc_release(&p);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE verify_pending = 1"), 1);
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	json_decref(zsim_post(E.src, "/zsim/reset-stats", "{}"));
	ck_assert_int_eq(run(mig), 0);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	/* the recovered account: verified only, neither exported nor imported again */
	long long redone = 0;
	for (size_t i = 0; i < E2E_NUSERS; i++)
		if (zsim_stat_acct(ds, "imports", E2E_USERS[i][1], "count") == 0)
			redone++;
	ck_assert_int_eq(redone, 1);
	json_decref(ss);
	json_decref(ds);
	assert_all_verified();
	/* its pass ends with the mark of its export (before the crashed run ended), not the
	 * time the verification resumed: a later --delta misses nothing */
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE verify_mark > 0 AND sync_mark = verify_mark"
			    " AND sync_mark < 1000 * (SELECT max(started_at) FROM runs)"), 1);
	free(env[0]);
	free(steps);
}
END_TEST

/*
 * After the cutover users work on the target: two of bob's messages are
 * deleted there, then a --delta pass runs.  Its verification (totals) finds
 * the target short: recorded as a mismatch, not retried, the account done.
 */
START_TEST(test_delta_mismatch_recorded)
{
	ck_assert_int_eq(run(NULL), 0);
	json_t *j = zsim_items(E.dst, "bob@example.net");
	ck_assert(j != NULL);
	for (size_t i = 0; i < 2; i++) {
		char *b = xasprintf("{\"account\":\"bob@example.net\",\"id\":%lld}",
				    (long long)json_integer_value(json_object_get(
					    json_array_get(json_object_get(j, "items"), i), "id")));
		json_decref(zsim_post(E.dst, "/zsim/delete-item", b));
		free(b);
	}
	json_decref(j);
	struct tu_proc p;
	ck_assert_int_eq(e2e_zmbatch(&p, 120, "run", "-c", E.job, "--delta", (char *)NULL), 0);
	tu_proc_release(&p);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE account = 'bob@example.com' AND state = 'done'"
			    " AND verify = 'mismatch' AND attempts = 1"), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done' AND verify = 'ok'"),
			 (long long)E2E_NUSERS - 1);
}
END_TEST

/*
 * A live mailbox: one of bob's messages is deleted on the source after his
 * folders were read for the verification and before his export (held 6 s
 * by the simulator, room for a loaded machine) took its items.  The target is one short against those
 * figures; the source is asked again, the smaller figure counts, and bob is
 * verified at the first attempt, not imported again and failed.
 */
START_TEST(test_live_deletion_during_export)
{
	knobs(E.src, "{\"faults\":[{\"op\":\"export\",\"account\":\"bob@example.com\",\"action\":\"slow\","
	      "\"seconds\":6,\"count\":1}]}");
	e2e_write_job(&E, 2, NULL, NULL);
	char *out = xasprintf("%s/run.out", E.dir), *err = xasprintf("%s/run.err", E.dir);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job, NULL };
	pid_t pid = tu_spawn(argv, NULL, out, err);
	ck_assert_int_gt(pid, 0);
	/* his folders have been read: the export is being held */
	long long lists = 0;
	for (double t0 = mono_now(); lists < 1 && mono_now() - t0 < 60;) {
		json_t *ss = zsim_stats(E.src);
		lists = zsim_stat_int(ss, "mail/bob@example.com/folder_lists");
		json_decref(ss);
		if (lists < 1)
			tu_sleep(0.02);
	}
	ck_assert_msg(lists >= 1, "bob's folders were never read");
	json_t *j = zsim_items(E.src, "bob@example.com");
	ck_assert(j != NULL);
	char *del = xasprintf("{\"account\":\"bob@example.com\",\"id\":%lld}",
			      (long long)json_integer_value(json_object_get(
				      json_array_get(json_object_get(j, "items"), 0), "id")));
	json_decref(j);
	json_decref(zsim_post(E.src, "/zsim/delete-item", del));
	free(del);
	ck_assert_int_eq(tu_wait(pid, 120), 0);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE account = 'bob@example.com' AND state = 'done'"
			    " AND verify = 'ok' AND attempts = 1"), 1);
	json_t *ss = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_int(ss, "mail/bob@example.com/folder_lists"), 2);
	json_decref(ss);
	free(out);
	free(err);
}
END_TEST

/*
 * A run aborted (a second SIGTERM) while an account waits for its
 * verification: its import is recorded, the target's GetFolderRequest is
 * held by the simulator.  The verifier thread leaves it exported with
 * verify_pending (nothing in flight, no verdict); the next run verifies it
 * without exporting or importing it again.
 */
START_TEST(test_abort_leaves_verification_for_next_run)
{
	const char *mig = "order = \"as-listed\"; transfer = \"stream\";";
	knobs(E.dst, "{\"faults\":[{\"op\":\"soap\",\"request\":\"GetFolderRequest\","
	      "\"action\":\"slow\",\"seconds\":30,\"count\":1}]}");
	e2e_write_job(&E, 1, mig, "run = { grace = \"10m\"; };");
	char *out = xasprintf("%s/abort.out", E.dir), *err = xasprintf("%s/abort.err", E.dir);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job, NULL };
	pid_t pid = tu_spawn(argv, NULL, out, err);
	ck_assert_int_gt(pid, 0);
	/* the first account imported and recorded, its verification held */
	int i;
	for (i = 0; i < 1500; i++) {
		long long n = 0;
		if (e2e_db_try(&E, "SELECT count(*) FROM accounts WHERE verify_pending = 1", &n) && n >= 1)
			break;
		tu_sleep(0.02);
	}
	ck_assert_msg(i < 1500, "no import recorded for verification");
	kill(pid, SIGTERM);
	for (i = 0; i < 1500; i++) {
		char *e = tu_read(err);
		bool seen = e && strstr(e, "SIGTERM received");
		free(e);
		if (seen)
			break;
		tu_sleep(0.02);
	}
	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 60), 75);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state IN ('exporting', 'importing')"), 0);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'exported' AND verify_pending = 1"
			    " AND verify IS NULL AND verify_source LIKE '[%'"), 1);
	knobs(E.dst, "{\"faults\":[]}");
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	json_decref(zsim_post(E.src, "/zsim/reset-stats", "{}"));
	ck_assert_int_eq(run(mig), 0);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	/* the parked account: verified only, neither exported nor imported again */
	long long redone = 0;
	for (size_t k = 0; k < E2E_NUSERS; k++)
		if (zsim_stat_acct(ds, "imports", E2E_USERS[k][1], "count") == 0 &&
		    zsim_stat_acct(ss, "exports", E2E_USERS[k][0], "count") == 0)
			redone++;
	ck_assert_int_eq(redone, 1);
	json_decref(ss);
	json_decref(ds);
	assert_all_verified();
	free(out);
	free(err);
}
END_TEST

/* migration.verify = "off": no folder is asked, no verdict recorded. */
START_TEST(test_verify_off)
{
	ck_assert_int_eq(run("verify = \"off\";"), 0);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_int(ss, "soap/GetFolderRequest"), 0);
	ck_assert_int_eq(zsim_stat_int(ds, "soap/GetFolderRequest"), 0);
	json_decref(ss);
	json_decref(ds);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done' AND verify IS NULL"),
			 (long long)E2E_NUSERS);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_verdict");
	TCase *tc = tcase_create("verdict");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_loop_test(tc, test_clean_run_verified, 0, 2);
	tcase_add_test(tc, test_silent_drop_caught_and_retried);
	tcase_add_test(tc, test_persistent_loss_fails);
	tcase_add_loop_test(tc, test_crash_before_verify_resumes_there, 0, 2);
	tcase_add_test(tc, test_delta_mismatch_recorded);
	tcase_add_test(tc, test_live_deletion_during_export);
	tcase_add_test(tc, test_verify_off);
	tcase_add_test(tc, test_abort_leaves_verification_for_next_run);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
