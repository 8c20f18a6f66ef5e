/*
 * check_e2e_verify.c - "Prove each mailbox arrived": `zmbatch verify`
 * against two simulated servers (tests/zsim: GetFolderRequest with per-folder
 * n/s for an admin acting on an account; /zsim/items, /zsim/delete-item).
 * None of these depends on the run verifying by itself: each calls `verify`
 * after the run.
 *
 *   mismatch         after a run every account verifies ok (exit 0); two items
 *                    deleted on one TARGET account: exit 1, that account is
 *                    mismatch naming the folder, the others ok (json report),
 *                    its state stays done, the verdict is in its history;
 *                    --reset-mismatched puts it (only it) back to pending
 *   stored_figures   the source's figures stored at export are what the target
 *                    is compared with (not the source now); an account
 *                    without them has the source asked now, and says so
 *   unverifiable     a target account that cannot be asked: unverifiable with
 *                    the reason, exit 1
 *   selection        --done (default) leaves out accounts not done; a named
 *                    unknown account: exit 1, nothing verified; ACCOUNT with
 *                    --all: usage (64); no state DB yet: exit 1; a run holds
 *                    the lock: 75; the target unreachable: 69, nothing recorded
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "lock.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NACCT 3

static struct e2e E;

static void setup(void)
{
	memset(&E, 0, sizeof E);
	char *s = xasprintf("{\"name\":\"src\",\"domains\":[{\"name\":\"example.com\",\"generate\":"
			    "{\"count\":%d,\"prefix\":\"user\",\"items\":[6,8],\"item_size\":[300,3000],"
			    "\"seed\":23}}]}", NACCT);
	char *d = xasprintf("{\"name\":\"dst\",\"domains\":[{\"name\":\"example.net\",\"generate\":"
			    "{\"count\":%d,\"prefix\":\"user\",\"items\":0}}]}", NACCT);
	e2e_start(&E, s, d);
	free(s);
	free(d);
}

static void teardown(void)
{
	e2e_stop(&E);
}

static void write_job(void)
{
	char *text = xasprintf(
		"job = \"verify\";\n"
		"source = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/src.pw\"; ca_file = \"%s\"; };\n"
		"target = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/dst.pw\"; ca_file = \"%s\"; };\n"
		"migration = {\n"
		"  domains = [ \"example.com\" ]; domain_map = [ \"example.com=example.net\" ];\n"
		"  threads = 2; working_dir = \"%s/work\";\n"
		"  retry_backoff = \"1s\"; retry_backoff_max = \"2s\"; max_attempts = 2;\n"
		"};\n"
		"state = { db = \"%s\"; };\n"
		"log = { dir = \"%s/log\"; level = \"debug\"; };\n",
		E.src->port, E.dir, E.pki->ca_file, E.dst->port, E.dir, E.pki->ca_file, E.dir, E.db,
		E.dir);
	free(E.job);
	E.job = tu_write(E.dir, "job.cfg", text, 0600);
	free(text);
}

static long long db(const char *sql)
{
	return e2e_db_count(&E, sql);
}

/* Change the state DB directly (what a run would have stored). */
static void db_exec(const char *sql)
{
	sqlite3 *h = NULL;
	char *msg = NULL;
	ck_assert_int_eq(sqlite3_open(E.db, &h), SQLITE_OK);
	sqlite3_busy_timeout(h, 10000);
	ck_assert_msg(sqlite3_exec(h, sql, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", sql,
		      msg ? msg : "");
	sqlite3_close(h);
}

static void migrate(void)
{
	struct tu_proc p;
	write_job();
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	tu_proc_release(&p);
	ck_assert_msg(rc == 0, "run exit %d", rc);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done'"), NACCT);
}

/* zmbatch verify -c job [a1 [a2]]: exit code, stdout in *out (caller frees). */
static int verify(char **out, const char *a1, const char *a2)
{
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 60, "verify", "-c", E.job, a1, a2, (char *)NULL);
	*out = xasprintf("%s%s", p.out ? p.out : "", p.err ? p.err : "");
	tu_proc_release(&p);
	return rc;
}

static json_t *report_json(void)
{
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 30, "report", "-c", E.job, "--format", "json", (char *)NULL);
	ck_assert_msg(rc == 0, "report exit %d", rc);
	json_error_t je;
	json_t *root = json_loads(p.out, 0, &je);
	ck_assert_msg(root != NULL, "json: %s\n%s", je.text, p.out);
	tu_proc_release(&p);
	return root;
}

static json_t *json_account(json_t *root, const char *name)
{
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(root, "accounts"), i, o) {
		const char *a = json_string_value(json_object_get(o, "account"));
		if (a && !strcmp(a, name))
			return o;
	}
	ck_abort_msg("no account %s in the report", name);
	return NULL;
}

static const char *jverify(json_t *root, const char *name)
{
	return json_string_value(json_object_get(json_account(root, name), "verify"));
}

/*
 * Delete two items of one folder of a target account (not Trash/Junk);
 * *folder gets the folder's path (caller frees).
 */
static void delete_two(const char *account, char **folder)
{
	json_t *root = zsim_items(E.dst, account);
	ck_assert(root != NULL);
	json_t *items = json_object_get(root, "items");
	size_t i, j;
	json_t *a, *b;
	*folder = NULL;
	json_array_foreach(items, i, a) {
		const char *fa = json_string_value(json_object_get(a, "folder"));
		if (!fa || !strncasecmp(fa, "Trash", 5) || !strncasecmp(fa, "Junk", 4))
			continue;
		json_array_foreach(items, j, b) {
			const char *fb = json_string_value(json_object_get(b, "folder"));
			if (j <= i || !fb || strcmp(fa, fb))
				continue;
			long long ids[2] = { json_integer_value(json_object_get(a, "id")),
					     json_integer_value(json_object_get(b, "id")) };
			for (int k = 0; k < 2; k++) {
				char *req = xasprintf("{\"account\":\"%s\",\"id\":%lld}", account, ids[k]);
				json_t *r = zsim_post(E.dst, "/zsim/delete-item", req);
				ck_assert_msg(r && json_integer_value(json_object_get(r, "deleted")) == ids[k],
					      "delete-item %lld", ids[k]);
				json_decref(r);
				free(req);
			}
			*folder = xstrdup(fa);
			json_decref(root);
			return;
		}
	}
	ck_abort_msg("no folder with two items on %s", account);
}

START_TEST(test_mismatch)
{
	char *out = NULL, *folder = NULL;
	migrate();
	int rc = verify(&out, NULL, NULL);
	ck_assert_msg(rc == 0, "verify after the run: exit %d\n%s", rc, out);
	ck_assert_msg(tu_contains(out, "verified 3 accounts: 3 ok, 0 mismatch, 0 unverifiable"), "%s", out);
	free(out);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE verify = 'ok' AND verified_at > 0"), NACCT);

	delete_two("user0002@example.net", &folder);
	rc = verify(&out, NULL, NULL);
	ck_assert_msg(rc == 1, "verify after two deletions: exit %d\n%s", rc, out);
	char *line = xasprintf("user0002@example.com  mismatch  %s: source ", folder);
	ck_assert_msg(tu_contains(out, line), "no '%s' in\n%s", line, out);
	ck_assert_msg(tu_contains(out, "(2 missing)"), "%s", out);
	ck_assert_msg(tu_contains(out, "user0001@example.com  ok  "), "%s", out);
	ck_assert_msg(tu_contains(out, "1 mismatch"), "%s", out);
	free(line);
	free(out);

	json_t *r = report_json();
	ck_assert_str_eq(jverify(r, "user0002@example.com"), "mismatch");
	ck_assert(json_is_false(json_object_get(json_account(r, "user0002@example.com"), "verified")));
	ck_assert_msg(tu_contains(json_string_value(json_object_get(json_account(r, "user0002@example.com"),
								    "verify_detail")), folder), "detail");
	ck_assert_str_eq(jverify(r, "user0001@example.com"), "ok");
	ck_assert_str_eq(jverify(r, "user0003@example.com"), "ok");
	ck_assert(json_is_true(json_object_get(json_account(r, "user0001@example.com"), "verified")));
	json_decref(r);
	/* no account's state changed */
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done'"), NACCT);

	struct tu_proc p;
	rc = e2e_zmbatch(&p, 30, "accounts", "-c", E.job, "--history", "user0002@example.com", (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(tu_contains(p.out, "verify: mismatch: "), "%s", p.out);
	ck_assert_msg(tu_contains(p.out, "verify: ok: "), "%s", p.out);
	tu_proc_release(&p);

	rc = verify(&out, "--reset-mismatched", NULL);
	ck_assert_msg(rc == 1, "exit %d\n%s", rc, out);
	ck_assert_msg(tu_contains(out, "user0002@example.com  reset to pending"), "%s", out);
	ck_assert_msg(tu_contains(out, "reset 1 mismatched account to pending"), "%s", out);
	free(out);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE account = 'user0002@example.com' AND "
			    "state = 'pending' AND attempts = 0"), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done'"), NACCT - 1);
	/* verify is not a run for the reports */
	ck_assert_int_eq(db("SELECT count(*) FROM runs WHERE command LIKE 'verify%'"), 3);
	free(folder);
}
END_TEST

START_TEST(test_stored_figures)
{
	char *out = NULL;
	migrate();
	/* what the export saw: more than the target holds (and more than the source now) */
	db_exec("UPDATE accounts SET verify_source = '[{\"path\":\"Inbox\",\"view\":\"message\","
		"\"n\":1000,\"s\":1}]' WHERE account = 'user0001@example.com'");
	db_exec("UPDATE accounts SET verify_source = NULL WHERE account = 'user0003@example.com'");
	int rc = verify(&out, "user0001@example.com", "user0003@example.com");
	ck_assert_msg(rc == 1, "exit %d\n%s", rc, out);
	ck_assert_msg(tu_contains(out, "user0001@example.com  mismatch  Inbox: source 1000 item(s)"), "%s",
		      out);
	ck_assert_msg(tu_contains(out, "user0003@example.com  ok  ") &&
		      tu_contains(out, "(source figures asked now: none stored from the export)"), "%s",
		      out);
	ck_assert_msg(tu_contains(out, "verified 2 accounts: 1 ok, 1 mismatch"), "%s", out);
	free(out);
	/* the two named ones got the command's verdict; user0002 keeps the run's own */
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE account = 'user0001@example.com' AND "
			    "verify = 'mismatch'"), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id WHERE "
			    "e.message LIKE 'verify: %' AND a.account = 'user0002@example.com'"), 0);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE account = 'user0002@example.com' AND "
			    "verify = 'ok'"), 1);
}
END_TEST

START_TEST(test_unverifiable)
{
	char *out = NULL;
	migrate();
	json_decref(zsim_post(E.dst, "/zsim/delete-account", "{\"name\":\"user0003@example.net\"}"));
	int rc = verify(&out, NULL, NULL);
	ck_assert_msg(rc == 1, "exit %d\n%s", rc, out);
	ck_assert_msg(tu_contains(out, "user0003@example.com  unverifiable  target 127.0.0.1:"), "%s", out);
	ck_assert_msg(tu_contains(out, "2 ok, 0 mismatch, 1 unverifiable"), "%s", out);
	free(out);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE account = 'user0003@example.com' AND "
			    "verify = 'unverifiable' AND verify_detail LIKE 'target 127.0.0.1:%GetFolderRequest%' AND state = 'done'"), 1);
	/* --reset-mismatched leaves an unverifiable account alone */
	rc = verify(&out, "--reset-mismatched", NULL);
	ck_assert_msg(rc == 1, "exit %d\n%s", rc, out);
	free(out);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done'"), NACCT);
}
END_TEST

START_TEST(test_selection)
{
	char *out = NULL;
	write_job();
	int rc = verify(&out, NULL, NULL);
	ck_assert_msg(rc == 1 && tu_contains(out, "nothing has run yet"), "exit %d\n%s", rc, out);
	free(out);
	migrate();
	db_exec("UPDATE accounts SET state = 'failed' WHERE account = 'user0001@example.com'");
	rc = verify(&out, NULL, NULL);
	ck_assert_msg(rc == 0 && tu_contains(out, "verified 2 accounts: 2 ok"), "exit %d\n%s", rc, out);
	ck_assert_msg(!tu_contains(out, "user0001@example.com"), "%s", out);
	free(out);
	/* --all: imported once (its figures stored, or done) */
	rc = verify(&out, "--all", NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	ck_assert_msg(tu_contains(out, db("SELECT count(*) FROM accounts WHERE verify_source IS NOT NULL")
				  ? "verified 3 accounts" : "verified 2 accounts"), "%s", out);
	free(out);
	rc = verify(&out, "nobody@example.com", NULL);
	ck_assert_msg(rc == 1 && tu_contains(out, "no account 'nobody@example.com'") &&
		      tu_contains(out, "nothing verified"), "exit %d\n%s", rc, out);
	free(out);
	rc = verify(&out, "--all", "user0002@example.com");
	ck_assert_msg(rc == 64, "exit %d\n%s", rc, out);
	free(out);

	/* a run holds the lock: 75, nothing verified */
	db_exec("UPDATE accounts SET verify = NULL, verify_detail = NULL, verified_at = NULL");
	struct run_lock *lk = NULL;
	char *err = NULL;
	ck_assert_int_eq(lock_acquire(E.db, "run", &lk, &err), ZMB_OK);
	rc = verify(&out, NULL, NULL);
	ck_assert_msg(rc == 75 && tu_contains(out, "another run holds the lock"), "exit %d\n%s", rc, out);
	free(out);
	lock_release(lk);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE verify IS NOT NULL"), 0);

	/* the target cannot be reached: 69 before any account, nothing recorded */
	zsim_stop(E.dst);
	E.dst = NULL;
	rc = verify(&out, NULL, NULL);
	ck_assert_msg(rc == 69 && tu_contains(out, "cannot log in"), "exit %d\n%s", rc, out);
	free(out);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE verify IS NOT NULL"), 0);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_verify");
	TCase *tc = tcase_create("verify");
	tcase_set_timeout(tc, 180);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_mismatch);
	tcase_add_test(tc, test_stored_figures);
	tcase_add_test(tc, test_unverifiable);
	tcase_add_test(tc, test_selection);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
