/*
 * check_e2e_status.c - issue 13, "Account status" and "Import results":
 * bin/zmbatch against two simulated servers that gate REST on
 * zimbraAccountStatus and answer imports sent with callback= as the real
 * ones do (tests/zsim: UserServlet.checkTargetAccountStatus, sendError,
 * Formatter.updateClient, ArchiveFormatter.addError).
 *
 *   maintenance_waits    a target and a source account in maintenance wait
 *                        (no attempt used, no "authentication rejected"),
 *                        and are done once the status is active again
 *   maintenance_bound    migration.maintenance_wait ends the wait: failed
 *                        with a message naming "maintenance"
 *   status_report        locked / pending accounts are migrated and their
 *                        statuses reported (json); skip_status leaves a
 *                        closed source account out, with the reason
 *   import_warnings      per-item warnings of the target: done with
 *                        warnings, one event per item, counted in text,
 *                        json, prom and status; a Carbonio target warns
 *                        each account before its transfer
 *   import_fail          'fail' and a quota stop: failed with the fault's
 *                        code and reason
 *   not_admin_port       REST on a port that does not take the admin cookie:
 *                        the error names zimbraAdminPort
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NACCT 4

static struct e2e E;

static void start(const char *dst_extra)
{
	memset(&E, 0, sizeof E);
	char *s = xasprintf("{\"name\":\"src\",\"domains\":[{\"name\":\"example.com\",\"generate\":"
			    "{\"count\":%d,\"prefix\":\"user\",\"items\":[3,5],\"item_size\":[300,3000],"
			    "\"seed\":17}}]}", NACCT);
	char *d = xasprintf("{\"name\":\"dst\",%s\"domains\":[{\"name\":\"example.net\",\"generate\":"
			    "{\"count\":%d,\"prefix\":\"user\",\"items\":0}}]}",
			    dst_extra ? dst_extra : "", NACCT);
	e2e_start(&E, s, d);
	free(s);
	free(d);
}

static void setup_zimbra(void)
{
	start(NULL);
}

static void setup_carbonio(void)
{
	start("\"product\":\"carbonio\",");
}

static void teardown(void)
{
	e2e_stop(&E);
}

static void write_job(int max_attempts, const char *extra_mig, const char *extra_top)
{
	char *text = xasprintf(
		"job = \"status\";\n"
		"source = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/src.pw\"; ca_file = \"%s\"; };\n"
		"target = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/dst.pw\"; ca_file = \"%s\"; };\n"
		"migration = {\n"
		"  domains = [ \"example.com\" ]; domain_map = [ \"example.com=example.net\" ];\n"
		"  threads = 2; working_dir = \"%s/work\";\n"
		"  retry_backoff = \"1s\"; retry_backoff_max = \"2s\"; max_attempts = %d;\n"
		"  %s\n"
		"};\n"
		"state = { db = \"%s\"; };\n"
		"log = { dir = \"%s/log\"; level = \"debug\"; };\n%s",
		E.src->port, E.dir, E.pki->ca_file, E.dst->port, E.dir, E.pki->ca_file, E.dir,
		max_attempts, extra_mig ? extra_mig : "", E.db, E.dir, extra_top ? extra_top : "");
	free(E.job);
	E.job = tu_write(E.dir, "job.cfg", text, 0600);
	free(text);
}

static long long db(const char *sql)
{
	return e2e_db_count(&E, sql);
}

static void post(struct zsim *z, const char *path, const char *json)
{
	json_decref(zsim_post(z, path, json));
}

static void set_status(struct zsim *z, const char *name, const char *status)
{
	char *b = xasprintf("{\"name\":\"%s\",\"status\":\"%s\"}", name, status);
	post(z, "/zsim/set-status", b);
	free(b);
}

static int run(double timeout, char **err_out)
{
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, timeout, "run", "-c", E.job, (char *)NULL);
	if (err_out)
		*err_out = xstrdup(p.err ? p.err : "");
	tu_proc_release(&p);
	return rc;
}

static char *zmbatch_out(const char *a1, const char *a2, const char *a3)
{
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 30, a1, "-c", E.job, a2, a3, (char *)NULL);
	ck_assert_msg(rc == 0, "zmbatch %s exited %d", a1, rc);
	char *out = xstrdup(p.out);
	tu_proc_release(&p);
	return out;
}

/* The account object of `name` in a json report (borrowed from root). */
static json_t *json_account(json_t *root, const char *name)
{
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(root, "accounts"), i, o) {
		const char *a = json_string_value(json_object_get(o, "account"));
		if (a && !strcmp(a, name))
			return o;
	}
	return NULL;
}

static json_t *report_json(void)
{
	char *js = zmbatch_out("report", "--format", "json");
	json_error_t je;
	json_t *root = json_loads(js, 0, &je);
	ck_assert_msg(root != NULL, "json: %s\n%s", je.text, js);
	free(js);
	return root;
}

/*
 * The target of user0001 and the source of user0002 are in maintenance: the
 * real server answers 401 on the import and 404 on the export (cookie auth),
 * like for a missing account.  A run of 5 s: both wait (pending, attempts
 * 0, an event naming maintenance), the others are done.  Then the statuses
 * are active again and the next run completes them.
 */
START_TEST(test_maintenance_waits)
{
	set_status(E.dst, "user0001@example.net", "maintenance");
	set_status(E.src, "user0002@example.com", "maintenance");
	write_job(3, "maintenance_wait = \"1h\";", "run = { max_runtime = \"5s\"; };\n");
	int rc = run(60, NULL);
	ck_assert_msg(rc == 75, "exit %d (work left expected)", rc);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done'"), NACCT - 2);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'pending' AND attempts = 0 AND "
			    "status_wait_since > 0"), 2);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'failed'"), 0);
	ck_assert_int_eq(db("SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id WHERE "
			    "a.account = 'user0001@example.com' AND e.message LIKE "
			    "'%target account user0001@example.net is in maintenance%waiting, no attempt used%'"),
			 db("SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id WHERE "
			    "a.account = 'user0001@example.com' AND e.message LIKE '%maintenance%'"));
	ck_assert(db("SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id WHERE "
		     "a.account = 'user0002@example.com' AND e.message LIKE "
		     "'%source account user0002@example.com is in maintenance%'") >= 1);
	ck_assert_int_eq(db("SELECT count(*) FROM events WHERE message LIKE '%authentication rejected%' "
			    "OR message LIKE '%no such account%'"), 0);
	ck_assert_int_eq(db("SELECT sum(retries) FROM runs"), 0);

	set_status(E.dst, "user0001@example.net", "active");
	set_status(E.src, "user0002@example.com", "active");
	write_job(3, "maintenance_wait = \"1h\";", NULL);
	rc = run(60, NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done'"), NACCT);
	ck_assert_int_eq(db("SELECT max(attempts) FROM accounts"), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE status_wait_since IS NOT NULL"), 0);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	for (int i = 1; i <= NACCT; i++) {
		char *a = xasprintf("user%04d@example.com", i), *b = xasprintf("user%04d@example.net", i);
		const char *fa = zsim_fingerprint(ss, a), *fb = zsim_fingerprint(ds, b);
		ck_assert_msg(fa && fb && !strcmp(fa, fb), "content differs: %s -> %s", a, b);
		free(a);
		free(b);
	}
	json_decref(ss);
	json_decref(ds);
}
END_TEST

/* The bound: past migration.maintenance_wait the account fails, the message names the status. */
START_TEST(test_maintenance_bound)
{
	set_status(E.dst, "user0003@example.net", "maintenance");
	write_job(3, "maintenance_wait = \"3s\";", NULL);
	char *err = NULL;
	int rc = run(60, &err);
	ck_assert_msg(rc == 1, "exit %d", rc);
	free(err);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done'"), NACCT - 1);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE account = 'user0003@example.com' AND "
			    "state = 'failed' AND attempts = 0 AND error_class = 'maintenance' AND "
			    "last_error LIKE '%user0003@example.net is in maintenance (zimbraAccountStatus="
			    "maintenance%migration.maintenance_wait (3 s)%'"), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE last_error LIKE '%authentication%'"), 0);
	char *text = zmbatch_out("report", NULL, NULL);
	ck_assert_msg(tu_contains(text, "maintenance"), "report:\n%s", text);
	free(text);
}
END_TEST

/*
 * locked (target) and pending (source) do not stop an admin import: done,
 * with the statuses in the report.  A closed source account is skipped by
 * skip_status, with the reason; the report shows it.
 */
START_TEST(test_status_report)
{
	set_status(E.dst, "user0001@example.net", "locked");
	set_status(E.src, "user0002@example.com", "pending");
	set_status(E.src, "user0003@example.com", "closed");
	set_status(E.dst, "user0004@example.net", "closed");
	write_job(3, "skip_status = [ \"closed\" ];", NULL);
	int rc = run(60, NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done'"), NACCT - 1);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE account = 'user0003@example.com' AND "
			    "state = 'skipped' AND last_error LIKE '%zimbraAccountStatus is ''closed''%"
			    "skip_status%'"), 1);
	json_t *root = report_json();
	json_t *a1 = json_account(root, "user0001@example.com");
	json_t *a2 = json_account(root, "user0002@example.com");
	json_t *a3 = json_account(root, "user0003@example.com");
	json_t *a4 = json_account(root, "user0004@example.com");
	ck_assert(a1 && a2 && a3 && a4);
	ck_assert_str_eq(json_string_value(json_object_get(a1, "target_status")), "locked");
	ck_assert_str_eq(json_string_value(json_object_get(a1, "source_status")), "active");
	ck_assert_str_eq(json_string_value(json_object_get(a2, "source_status")), "pending");
	ck_assert_str_eq(json_string_value(json_object_get(a2, "state")), "done");
	ck_assert_str_eq(json_string_value(json_object_get(a3, "state")), "skipped");
	ck_assert_str_eq(json_string_value(json_object_get(a3, "source_status")), "closed");
	ck_assert_str_eq(json_string_value(json_object_get(a4, "target_status")), "closed");
	ck_assert_str_eq(json_string_value(json_object_get(a4, "state")), "done");
	json_decref(root);
	char *text = zmbatch_out("report", NULL, NULL);
	ck_assert_msg(tu_contains(text, "target locked") && tu_contains(text, "source closed"),
		      "report:\n%s", text);
	free(text);
}
END_TEST

/*
 * The target cannot import every 2nd item of user0001 (formatter.MISSING_BLOB):
 * with callback= it says so ('warn', one fault per item).  The account is
 * done with warnings: one event per item with its path and reason, counted
 * in every report format.  The target is Carbonio: an account with tasks or
 * Briefcase documents is warned before its transfer that they will not be
 * migrated there (naming which), an account without any is not.
 */
START_TEST(test_import_warnings)
{
	post(E.dst, "/zsim/knobs", "{\"faults\":[{\"op\":\"import\",\"account\":\"user0001@example.net\","
	     "\"action\":\"item_fail\",\"every\":2,\"code\":\"formatter.MISSING_BLOB\","
	     "\"reason\":\"missing blob for item\",\"count\":-1}]}");
	/* a task in user0002's mailbox, a document in user0003's, neither elsewhere */
	post(E.src, "/zsim/add-items", "{\"account\":\"user0002@example.com\",\"type\":\"task\",\"n\":1,"
	     "\"uid\":\"t1\",\"subject\":\"a task\"}");
	post(E.src, "/zsim/add-items", "{\"account\":\"user0003@example.com\",\"type\":\"document\","
	     "\"n\":1,\"name\":\"notes.txt\"}");
	/* the warnings as such: with the verification on, user0001's lossy import would fail
	 * instead (e2e_verdict:test_persistent_loss_fails) */
	write_job(3, "verify = \"off\";", NULL);
	int rc = run(60, NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done'"), NACCT);
	json_t *ds = zsim_stats(E.dst);
	long long failed = zsim_stat_acct(ds, "imports", "user0001@example.net", "failed");
	long long warned = zsim_stat_acct(ds, "imports", "user0001@example.net", "warnings");
	json_decref(ds);
	ck_assert_msg(failed >= 1 && warned == failed, "failed %lld warned %lld", failed, warned);
	ck_assert_int_eq(db("SELECT warnings FROM accounts WHERE account = 'user0001@example.com'"), failed);
	/* user0002's task and user0003's document: the Carbonio target cannot make them and says so
	 * per item (carbonio-mailbox MailItem.constructItem, ArchiveFormatter.addItem's catch) */
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE warnings > 0"), 3);
	ck_assert_int_eq(db("SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id WHERE "
			    "a.account IN ('user0002@example.com', 'user0003@example.com') AND e.level = 'warn'"
			    " AND e.message LIKE 'import warning: %formatter.UNKNOWN_ERROR%'"), 2);
	ck_assert_int_eq(db("SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id WHERE "
			    "a.account = 'user0001@example.com' AND e.level = 'warn' AND e.message LIKE "
			    "'import warning: %: formatter.MISSING_BLOB: missing blob for item'"), failed);
	/* the Carbonio note only where such items exist, naming them */
	ck_assert_int_eq(db("SELECT count(*) FROM events WHERE level = 'warn' AND message LIKE "
			    "'the target is Carbonio%'"), 2);
	ck_assert_int_eq(db("SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id WHERE "
			    "a.account = 'user0002@example.com' AND e.message LIKE "
			    "'the target is Carbonio%this account has tasks,%'"), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id WHERE "
			    "a.account = 'user0003@example.com' AND e.message LIKE "
			    "'the target is Carbonio%this account has Briefcase documents,%'"), 1);

	json_t *root = report_json();
	ck_assert_int_eq(json_integer_value(json_object_get(root, "accounts_warned")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(json_account(root, "user0001@example.com"),
							    "warnings")), failed);
	json_decref(root);
	char *prom = zmbatch_out("report", "--format", "prom");
	ck_assert_msg(tu_contains(prom, "\nzmbatch_accounts_warned 3\n"), "prom:\n%s", prom);
	free(prom);
	char *text = zmbatch_out("report", NULL, NULL);
	ck_assert_msg(tu_contains(text, "done with warnings: 3") && tu_contains(text, "user0001@example.com"),
		      "report:\n%s", text);
	free(text);
	char *st = zmbatch_out("status", NULL, NULL);
	ck_assert_msg(tu_contains(st, "done with warnings 3"), "status:\n%s", st);
	free(st);
}
END_TEST

/*
 * 'fail' (formatter.INVALID_FORMAT, a 200 with callback=) and a quota stop
 * (mail.QUOTA_EXCEEDED as a warning that ends the archive) are failures,
 * with the server's code and reason, never "done".
 */
START_TEST(test_import_fail)
{
	post(E.dst, "/zsim/knobs", "{\"faults\":["
	     "{\"op\":\"import\",\"account\":\"user0001@example.net\",\"action\":\"import_fail\","
	     "\"code\":\"formatter.INVALID_FORMAT\",\"reason\":\"invalid file format\",\"count\":-1},"
	     "{\"op\":\"import\",\"account\":\"user0002@example.net\",\"action\":\"item_fail\","
	     "\"every\":2,\"code\":\"mail.QUOTA_EXCEEDED\",\"reason\":\"mailbox exceeded quota of 5000 bytes\","
	     "\"count\":-1}]}");
	write_job(2, NULL, NULL);
	int rc = run(60, NULL);
	ck_assert_msg(rc == 1, "exit %d", rc);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done'"), NACCT - 2);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE account = 'user0001@example.com' AND "
			    "state = 'failed' AND last_error LIKE '%''fail''%formatter.INVALID_FORMAT: invalid "
			    "file format%'"), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE account = 'user0002@example.com' AND "
			    "state = 'failed' AND last_error LIKE '%quota%mail.QUOTA_EXCEEDED: mailbox exceeded "
			    "quota of 5000 bytes%'"), 1);
}
END_TEST

/*
 * REST on a port where the admin cookie does not count (AuthUtil.isAdminRequest:
 * only zimbraAdminPort): every call is 401.  The error says where to look.
 */
START_TEST(test_not_admin_port)
{
	post(E.dst, "/zsim/knobs", "{\"rest_not_admin_port\":true}");
	write_job(1, NULL, NULL);
	int rc = run(60, NULL);
	ck_assert_msg(rc == 1, "exit %d", rc);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'failed' AND last_error LIKE "
			    "'%http 401%admin port (zimbraAdminPort, default 7071)%is port%the admin port?%'"),
			 NACCT);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_status");
	TCase *tc = tcase_create("maintenance");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup_zimbra, teardown);
	tcase_add_test(tc, test_maintenance_waits);
	tcase_add_test(tc, test_maintenance_bound);
	suite_add_tcase(s, tc);
	tc = tcase_create("status");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup_zimbra, teardown);
	tcase_add_test(tc, test_status_report);
	tcase_add_test(tc, test_not_admin_port);
	tcase_add_test(tc, test_import_fail);
	suite_add_tcase(s, tc);
	tc = tcase_create("warnings");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup_carbonio, teardown);
	tcase_add_test(tc, test_import_warnings);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
