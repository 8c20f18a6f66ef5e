/*
 * check_e2e_migrate.c - end-to-end: two simulated Zimbra servers on
 * loopback (tests/zsim), bin/zmbatch driven as an administrator would.
 *
 * Each test starts its own pair of simulators in a checked fixture (inside
 * the forked test child), writes a job file, runs the real binary and checks
 * what arrived on the target through the simulators' stats: item digests
 * (fingerprints), export/import counts, AuthRequests, duplicates.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "e2e.h"
#include "zsim.h"
#include "zmb.h"

#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <time.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/*
 * The standard job without its `domains` line; extra_mig says what to
 * migrate instead (`accounts`, `domains`, `accounts_file`).
 */
static void write_job_no_domains(int threads, const char *extra_mig)
{
	e2e_write_job(&E, threads, extra_mig, NULL);
	char *job = tu_read(E.job);
	char *d = strstr(job, "  domains = [ \"example.com\", \"example.org\" ];");
	ck_assert_ptr_nonnull(d);
	d[0] = '#';
	free(tu_write(E.dir, "job.cfg", job, 0600));
	free(job);
}

START_TEST(test_native_two_domains)
{
	struct tu_proc p;
	e2e_write_job(&E, 4, NULL, NULL);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d (output above)", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	/* system accounts are never exported */
	ck_assert_int_eq(zsim_stat_acct(ss, "exports", "galsync.x@example.com", "count"), 0);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts"), (long long)E2E_NUSERS);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state='done'"), (long long)E2E_NUSERS);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE account LIKE 'galsync%' "
				  "OR account LIKE 'spam%' OR account LIKE 'ham%' OR account LIKE 'virus%'"), 0);
	/* secrets stay secret: not in output, log, DB */
	ck_assert(!tu_contains(p.out, "test123") && !tu_contains(p.err, "test123"));
	ck_assert(!e2e_tree_contains(&E, "log", "test123"));
	ck_assert(!e2e_tree_contains(&E, "state.db", "test123"));
	ck_assert(!e2e_tree_contains(&E, "log", "0_"));  /* no token (0_<hex>_<hex>) in the log */
	/* spool files are gone (keep_success_files = false) */
	ck_assert_int_eq(e2e_count_files(&E, "work"), 0);
	/* a second run changes nothing and exports nothing again */
	long long exports_before = zsim_stat_acct(ss, "exports", "alice@example.com", "count");
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
	rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "second run exit %d", rc);
	ss = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_acct(ss, "exports", "alice@example.com", "count"), exports_before);
	json_decref(ss);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_legacy_conf)
{
	struct tu_proc p;
	char *conf;
	/* an unchanged zmztozmig.conf; TLS trust comes from --ca-file */
	if (asprintf(&conf,
		     "# zmztozmig.conf as shipped, edited by an admin\n"
		     "SourceZCSServer=127.0.0.1\nSourceAdminUser=admin@example.com\nSourceAdminPwd=test123\n"
		     "SourceAdminPort=%d\n"
		     "TargetZCSServer=127.0.0.1\nTargetAdminUser=admin@example.com\nTargetAdminPwd=test123\n"
		     "TargetAdminPort=%d\n\n"
		     "Threads=3\nWorkingDirectory=%s/work/\nFailedDirectory=%s/failed/\n"
		     "SuccessDirectory=%s/success/\nLogDirectory=%s/log\nKeepSuccessFiles=TRUE\n"
		     "DomainMap=example.com example.net\n"
		     "Domains=example.com,example.org\nAccounts=all\n",
		     E.src->port, E.dst->port, E.dir, E.dir, E.dir, E.dir) < 0)
		abort();
	char *path = tu_write(E.dir, "zmztozmig.conf", conf, 0600);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", path, "--ca-file", E.pki->ca_file, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d (output above)", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	json_decref(ss);
	json_decref(ds);
	/* KeepSuccessFiles=TRUE: archives kept in SuccessDirectory; the DB is in WorkingDirectory */
	ck_assert_int_eq(e2e_count_files(&E, "success"), (int)E2E_NUSERS); /* a full export of an empty mailbox still has folders */
	char *db;
	if (asprintf(&db, "%s/work/zmbatch.db", E.dir) < 0)
		abort();
	struct stat sb;
	ck_assert_msg(stat(db, &sb) == 0, "legacy default state DB %s missing", db);
	ck_assert_int_eq(sb.st_mode & 0077, 0);
	free(db);
	free(path);
	free(conf);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_stream_mode)
{
	struct tu_proc p;
	e2e_write_job(&E, 4, "transfer = \"stream\";", NULL);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d (output above)", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_missing_target_fails_permanently)
{
	struct tu_proc p;
	json_decref(zsim_post(E.dst, "/zsim/delete-account", "{\"name\":\"dave@example.net\"}"));
	e2e_write_job(&E, 4, NULL, NULL);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 1, "expected exit 1, got %d", rc);
	ck_assert_msg(tu_contains(p.err, "dave@example.net"), "error does not name the account");
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state='failed' "
				  "AND account='dave@example.com' AND last_error LIKE '%does not exist%'"), 1);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state='done'"), (long long)E2E_NUSERS - 1);
	/* permanent: exactly one attempt, no retries */
	ck_assert_int_eq(e2e_db_count(&E, "SELECT attempts FROM accounts WHERE account='dave@example.com'"), 1);
	tu_proc_release(&p);
}
END_TEST

/*
 * The target's directory is read once at the start (SearchDirectory) for a
 * domain with enough accounts, instead of one GetAccount per account.  A
 * target deleted after that listing is still caught: its import is refused
 * (404), GetAccount confirms the account is gone, and it fails with that
 * reason after one attempt.
 */
START_TEST(test_target_directory)
{
	char body[160];
	for (int i = 0; i < 20; i++) {
		snprintf(body, sizeof body, "{\"name\":\"bulk%02d@example.com\",\"items\":2,\"item_size\":500}", i);
		json_decref(zsim_post(E.src, "/zsim/add-account", body));
		snprintf(body, sizeof body, "{\"name\":\"bulk%02d@example.net\"}", i);
		json_decref(zsim_post(E.dst, "/zsim/add-account", body));
	}
	/* alice (listed first) exports slowly; meanwhile the admin deletes dave's target */
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"faults\":[{\"op\":\"export\","
			      "\"account\":\"alice@example.com\",\"action\":\"slow\",\"seconds\":2,\"count\":1}]}"));
	e2e_write_job(&E, 1, "order = \"as-listed\";", NULL);
	char *out = xasprintf("%s/run.out", E.dir), *err = xasprintf("%s/run.err", E.dir);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job, NULL };
	pid_t pid = tu_spawn(argv, NULL, out, err);
	ck_assert_int_gt(pid, 0);
	bool seen = false;
	for (double t = 0; t < 60 && !seen; t += 0.05) {
		/* the file exists before its schema: poll without asserting */
		long long n = 0;
		seen = e2e_db_try(&E, "SELECT count(*) FROM accounts WHERE account = 'alice@example.com' "
				  "AND state = 'exporting'", &n) && n == 1;
		if (!seen)
			tu_sleep(0.05);
	}
	ck_assert_msg(seen, "alice never started exporting");
	json_t *r = zsim_post(E.dst, "/zsim/delete-account", "{\"name\":\"dave@example.net\"}");
	ck_assert(json_is_true(json_object_get(r, "deleted")));
	json_decref(r);
	int rc = tu_wait(pid, 120);
	if (rc != 1) {
		char *e = tu_read(err);
		fprintf(stderr, "run exited %d:\n%s\n", rc, e ? e : "");
		free(e);
	}
	ck_assert_msg(rc == 1, "expected exit 1, got %d", rc);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state = 'done'"),
			 (long long)E2E_NUSERS + 20 - 1);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE account = 'dave@example.com' "
				  "AND state = 'failed' AND attempts = 1 AND last_error LIKE '%does not exist%'"), 1);
	json_t *ds = zsim_stats(E.dst);
	ck_assert_int_ge(zsim_stat_int(ds, "soap/SearchDirectoryRequest"), 1);
	/* example.org (3 accounts) is checked account by account; example.net
	 * (25) comes from the directory; dave's refused import asks once more */
	ck_assert_int_eq(zsim_stat_int(ds, "soap/GetAccountRequest"), 3 + 1);
	ck_assert_int_eq(zsim_stat_acct(ds, "imports", "bulk07@example.net", "count"), 1);
	json_decref(ds);
	/* dave was exported (the directory said the target existed), once */
	json_t *ss = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_acct(ss, "exports", "dave@example.com", "count"), 1);
	json_decref(ss);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_faults_recovered_by_retries)
{
	struct tu_proc p;
	json_decref(zsim_post(E.src, "/zsim/knobs",
		  "{\"faults\":["
		  "{\"op\":\"export\",\"account\":\"alice@example.com\",\"action\":\"status\",\"status\":500,\"count\":1},"
		  "{\"op\":\"export\",\"account\":\"bob@example.com\",\"action\":\"status\",\"status\":503,\"count\":2},"
		  "{\"op\":\"export\",\"account\":\"carol@example.com\",\"action\":\"reset\",\"after_bytes\":20000,\"count\":1},"
		  "{\"op\":\"export\",\"account\":\"erin@example.org\",\"action\":\"truncate\",\"after_bytes\":2000,\"count\":1}]}"));
	json_decref(zsim_post(E.dst, "/zsim/knobs",
		  "{\"faults\":["
		  "{\"op\":\"import\",\"account\":\"grace@example.org\",\"action\":\"reset\",\"after_bytes\":5000,\"count\":1},"
		  "{\"op\":\"import\",\"account\":\"frank@example.org\",\"action\":\"status\",\"status\":500,\"count\":1}]}"));
	e2e_write_job(&E, 4, NULL, NULL);
	int rc = e2e_zmbatch(&p, 180, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d (output above)", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	ck_assert_int_ge(zsim_stat_acct(ss, "exports", "bob@example.com", "count"), 3);
	json_decref(ss);
	json_decref(ds);
	/* alice, carol, erin, frank at least (grace's cut import may be sent again by
	 * curl itself on a reused connection); bob's 503s are throttling: sent again
	 * after the server's pause, no retry and no attempt counted (issue 13) */
	ck_assert_int_ge(e2e_db_count(&E, "SELECT retries FROM runs ORDER BY id DESC LIMIT 1"), 4);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT attempts FROM accounts WHERE account = 'bob@example.com'"), 1);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT throttled FROM servers WHERE role = 'source'"), 2);
	tu_proc_release(&p);
}
END_TEST

/*
 * How many requests this simulator refused for their token (HTTP 401 on
 * REST, SOAP AUTH_EXPIRED / AUTH_REQUIRED), from its counters and its
 * request log; the first one is described in why.  A client that renews its
 * token only after a refusal, instead of before expiry, has some.
 */
static long long auth_refusals(json_t *st, char *why, size_t whylen)
{
	long long n = zsim_stat_int(st, "rest_status/401") +
		      zsim_stat_int(st, "soap_faults/service.AUTH_EXPIRED") +
		      zsim_stat_int(st, "soap_faults/service.AUTH_REQUIRED");
	json_t *reqs = json_object_get(st, "requests"), *r;
	size_t i;
	long long logged = 0;
	snprintf(why, whylen, "none");
	ck_assert_msg(json_array_size(reqs) > 0, "%s: no request log",
		      json_string_value(json_object_get(st, "name")));
	json_array_foreach(reqs, i, r) {
		const char *fault = json_string_value(json_object_get(r, "fault"));
		const char *soap = json_string_value(json_object_get(r, "soap"));
		bool refused = json_integer_value(json_object_get(r, "status")) == 401 ||
			       (fault && (!strcmp(fault, "service.AUTH_EXPIRED") ||
					  !strcmp(fault, "service.AUTH_REQUIRED")));
		if (refused && logged++ == 0)
			snprintf(why, whylen, "%s %s%s%s at %.2f s: %s",
				 json_string_value(json_object_get(r, "method")),
				 json_string_value(json_object_get(r, "path")), soap ? " " : "",
				 soap ? soap : "", json_number_value(json_object_get(r, "t")),
				 fault ? fault : "HTTP 401");
	}
	return n > logged ? n : logged;
}

/*
 * 6 s tokens on both servers over a run of several lifetimes: the token is
 * renewed before it expires (the margin is clamped to a third of the
 * lifetime, so 2 s before: room for a request's way to the server on a
 * loaded machine), so no server ever refuses one, and the logins stay about
 * one per (lifetime - margin).
 */
START_TEST(test_token_refresh_short_lifetime)
{
	struct tu_proc p;
	const double life = 6.0;
	teardown();
	memset(&E, 0, sizeof E);
	/* bandwidth-limited so the run takes several lifetimes */
	char *src_cfg = xasprintf("{\"name\":\"src\",\"token_lifetime\":%g,\"knobs\":{\"bandwidth\":35000},%s",
				  life, strstr(E2E_SRC_CFG, "\"domains\""));
	char *dst_cfg = xasprintf("{\"name\":\"dst\",\"token_lifetime\":%g,%s", life,
				  strstr(E2E_DST_CFG, "\"domains\""));
	e2e_start(&E, src_cfg, dst_cfg);
	e2e_write_job(&E, 2, NULL, "token = { refresh_margin = 1800; };");
	double t0 = mono_now();
	int rc = e2e_zmbatch(&p, 180, "run", "-c", E.job, (char *)NULL);
	double dt = mono_now() - t0;
	ck_assert_msg(rc == 0, "exit %d (output above)", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	ck_assert_msg(dt >= 2 * life, "run too short (%.1f s) to cross token expiry twice", dt);
	/* renewed in time: neither server saw an expired token */
	char why_s[256], why_d[256];
	long long ref_s = auth_refusals(ss, why_s, sizeof why_s);
	long long ref_d = auth_refusals(ds, why_d, sizeof why_d);
	ck_assert_msg(ref_s == 0 && ref_d == 0,
		      "token refused %lld time(s) by the source (first: %s), %lld by the target "
		      "(first: %s) in a %.1f s run", ref_s, why_s, ref_d, why_d, dt);
	/* about one login per (lifetime - lifetime/3); allow 50% plus the first
	 * login, never a storm.  A renewal happens only when a request needs a
	 * token, so an idle stretch only lowers the count. */
	double expect = dt / (life - life / 3.0);
	const char *names[] = { "source", "target" };
	json_t *sts[] = { ss, ds };
	for (int k = 0; k < 2; k++) {
		long long auth = zsim_stat_int(sts[k], "auth_requests/total");
		ck_assert_msg(auth >= 2 && auth <= expect * 1.5 + 3,
			      "%s AuthRequests %lld over %.1f s (about %.0f expected)", names[k], auth,
			      dt, expect);
	}
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE attempts > 1"), 0);
	json_decref(ss);
	json_decref(ds);
	free(src_cfg);
	free(dst_cfg);
	tu_proc_release(&p);
}
END_TEST

/*
 * kill -9 mid-run, then resume: finished accounts are not exported again,
 * and the resumed run asks nothing again (README "Round trips per
 * account"): the source is asked GetMailbox once per account and GetAccount
 * once per account listed without an id, over both runs together.
 * example.com comes from an `accounts` list (GetAccount + GetMailbox each),
 * example.org from `domains` (its SearchDirectory gives the ids).  The
 * source refuses GetQuotaUsage here (a server without it), so that the
 * per-account path is the one counted; it is tried once per domain, in the
 * first run only (check_e2e_sizes covers the listing itself).
 */
START_TEST(test_kill9_resume)
{
	char *out, *errp;
	write_job_no_domains(2, "domains = [ \"example.org\" ];\n  accounts = [ \"alice@example.com\", "
			     "\"bob@example.com\", \"carol@example.com\", \"dave@example.com\", "
			     "\"empty@example.com\" ];");
	/* frank's first export is held for 60 s, so that the run is not over when
	 * the kill lands, however late the test gets to it (on a loaded machine
	 * the other accounts may all finish in the meantime) */
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":150000,"
			      "\"quota_refuse\":\"service.UNKNOWN_DOCUMENT\","
			      "\"faults\":[{\"op\":\"export\",\"account\":\"frank@example.org\","
			      "\"action\":\"slow\",\"seconds\":60,\"count\":1}]}"));
	if (asprintf(&out, "%s/run1.out", E.dir) < 0 || asprintf(&errp, "%s/run1.err", E.dir) < 0)
		abort();
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job, NULL };
	pid_t pid = tu_spawn(argv, NULL, out, errp);
	ck_assert_int_gt(pid, 0);
	/* wait until some accounts are done, then kill -9 */
	for (int i = 0; i < 300; i++) {
		tu_sleep(0.1);
		long long n = 0;
		if (e2e_db_try(&E, "SELECT count(*) FROM accounts WHERE state='done'", &n) && n >= 2)
			break;
	}
	kill(pid, SIGKILL);
	tu_wait(pid, 10);
	long long done1 = e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state='done'");
	ck_assert_int_ge(done1, 1);
	ck_assert_int_lt(done1, (long long)E2E_NUSERS);
	json_t *ss = zsim_stats(E.src);
	/* remember how often each finished account was exported */
	sqlite3 *db;
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_open_v2(E.db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT account FROM accounts WHERE state='done'", -1, &st, NULL), SQLITE_OK);
	char *done_accts[16];
	long long exports[16];
	size_t nd = 0;
	while (sqlite3_step(st) == SQLITE_ROW && nd < E2E_NUSERS && nd < 16) {
		done_accts[nd] = strdup((const char *)sqlite3_column_text(st, 0));
		exports[nd] = zsim_stat_acct(ss, "exports", done_accts[nd], "count");
		nd++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	json_decref(ss);

	/* (frank's hold goes too: his export may not have started before the kill) */
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":0,\"faults\":[]}"));
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "resume exit %d", rc);
	ss = zsim_stats(E.src);
	json_t *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	for (size_t i = 0; i < nd; i++) {
		ck_assert_msg(zsim_stat_acct(ss, "exports", done_accts[i], "count") == exports[i],
			      "%s was exported again after resume", done_accts[i]);
		free(done_accts[i]);
	}
	/* nothing asked twice: one GetMailbox per account, one GetAccount per
	 * account listed by name, over both runs (every account needs its size
	 * once, so a total equal to the count means no account was asked again) */
	ck_assert_msg(zsim_stat_int(ss, "soap/GetMailboxRequest") == (long long)E2E_NUSERS,
		      "source GetMailbox %lld times for %zu accounts over the run and its resume",
		      zsim_stat_int(ss, "soap/GetMailboxRequest"), E2E_NUSERS);
	ck_assert_msg(zsim_stat_int(ss, "soap/GetAccountRequest") == 5,
		      "source GetAccount %lld times for the 5 accounts listed by name",
		      zsim_stat_int(ss, "soap/GetAccountRequest"));
	ck_assert_msg(zsim_stat_int(ss, "soap/GetQuotaUsageRequest") == 2,
		      "source GetQuotaUsage %lld times for 2 domains over the run and its resume",
		      zsim_stat_int(ss, "soap/GetQuotaUsageRequest"));
	/* the target is asked about an account on each attempt (small domains);
	 * only accounts in flight at the kill (at most 2 threads) are asked twice */
	ck_assert_int_le(zsim_stat_int(ds, "soap/GetAccountRequest"), (long long)E2E_NUSERS + 2);
	ck_assert(!e2e_tree_contains(&E, "work", ".part"));
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
	free(out);
	free(errp);
}
END_TEST

/* Every account migrated, and alice (who got new items) has all of them. */
static void assert_all_migrated_alice_whole(void)
{
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	ck_assert_int_eq(zsim_stat_acct(ds, "accounts", "alice@example.net", "items"),
			 zsim_stat_acct(ss, "accounts", "alice@example.com", "items"));
	json_decref(ss);
	json_decref(ds);
}

START_TEST(test_delta_pass)
{
	struct tu_proc p;
	/* resolve = "reset" for the first pass; the delta pass must still use skip,
	 * or the target's folders would be emptied and only the delta put back */
	e2e_write_job(&E, 4, "delta_overlap = \"0s\"; resolve = \"reset\";", NULL);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	tu_proc_release(&p);
	tu_sleep(1.1);
	json_decref(zsim_post(E.src, "/zsim/add-items", "{\"account\":\"alice@example.com\",\"n\":4}"));
	json_decref(zsim_post(E.src, "/zsim/add-items", "{\"account\":\"erin@example.org\",\"n\":2}"));
	rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, "--delta", (char *)NULL);
	ck_assert_msg(rc == 0, "delta exit %d", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	ck_assert_int_eq(zsim_stat_acct(ds, "accounts", "alice@example.net", "items"),
			 zsim_stat_acct(ss, "accounts", "alice@example.com", "items"));
	/* the delta export asked only for new items (start=) */
	bool saw_start = false;
	json_t *reqs = json_object_get(ss, "requests"), *r;
	size_t i;
	json_array_foreach(reqs, i, r) {
		const char *q = json_string_value(json_object_get(r, "query"));
		if (q && strstr(q, "start="))
			saw_start = true;
	}
	ck_assert(saw_start);
	/* the delta imports (the last two) asked for resolve=skip */
	int skips = 0;
	json_t *dreqs = json_object_get(ds, "requests");
	json_array_foreach(dreqs, i, r) {
		const char *q = json_string_value(json_object_get(r, "query"));
		if (q && strstr(q, "fmt=tgz") && strstr(q, "resolve=skip"))
			skips++;
		if (q && strstr(q, "resolve=") && !strstr(q, "resolve=skip") && !strstr(q, "resolve=reset"))
			ck_abort_msg("unexpected import query %s", q);
	}
	ck_assert_int_ge(skips, 2);
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
}
END_TEST

/*
 * After a delta pass the admin finds alice's target damaged, makes it again
 * (empty) and runs `reset alice` then `run`: the finished job must run its
 * migrate stage again, and alice must be migrated in full, not as a delta
 * from her old mark (which would bring back nothing).
 */
START_TEST(test_reset_after_delta_migrates_in_full)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, "delta_overlap = \"0s\";", NULL);
	ck_assert_int_eq(e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL), 0);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 120, "run", "-c", E.job, "--delta", (char *)NULL), 0);
	tu_proc_release(&p);
	json_t *r = zsim_post(E.dst, "/zsim/delete-account", "{\"name\":\"alice@example.net\"}");
	ck_assert(json_is_true(json_object_get(r, "deleted")));
	json_decref(r);
	json_decref(zsim_post(E.dst, "/zsim/add-account", "{\"name\":\"alice@example.net\"}"));
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "reset", "-c", E.job, "alice@example.com", (char *)NULL), 0);
	tu_proc_release(&p);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	ck_assert_msg(!tu_contains(p.err, "already done, skipped"), "migrate stage skipped:\n%s", p.err);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE account = 'alice@example.com'"
				  " AND state = 'done' AND delta = 0"), 1);
	assert_all_migrated_alice_whole();
}
END_TEST

/*
 * resolve = "replace" end to end: a first run, then alice and bob reset and
 * migrated again.  Zimbra's import with replace deletes every message it
 * finds again (same digest, same folder) and adds the new copy: the target
 * ends with exactly the source's content, every item of the second pass
 * counted replaced, none added twice.
 */
START_TEST(test_resolve_replace)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, "resolve = \"replace\";", NULL);
	ck_assert_int_eq(e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL), 0);
	tu_proc_release(&p);
	ck_assert_int_eq(e2e_zmbatch(&p, 30, "reset", "-c", E.job, "alice@example.com", "bob@example.com",
				     (char *)NULL), 0);
	tu_proc_release(&p);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	tu_proc_release(&p);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	static const char *const again[][2] = { { "alice@example.com", "alice@example.net" },
						 { "bob@example.com", "bob@example.net" } };
	for (size_t i = 0; i < 2; i++) {
		const char *t = again[i][1];
		long long n = zsim_stat_acct(ss, "accounts", again[i][0], "items");
		ck_assert_int_gt(n, 0);
		ck_assert_int_eq(zsim_stat_acct(ds, "accounts", t, "items"), n);
		ck_assert_int_eq(zsim_stat_acct(ds, "imports", t, "count"), 2);
		char *path = xasprintf("imports/%s/resolve/replace", t);
		ck_assert_int_eq(zsim_stat_int(ds, path), 2);
		free(path);
		ck_assert_int_eq(zsim_stat_acct(ds, "imports", t, "added"), n);
		ck_assert_int_eq(zsim_stat_acct(ds, "imports", t, "replaced"), n);
		ck_assert_int_eq(zsim_stat_acct(ds, "imports", t, "skipped"), 0);
	}
	/* the others were imported once, with replace too */
	ck_assert_int_eq(zsim_stat_acct(ds, "imports", "carol@example.net", "count"), 1);
	ck_assert_int_eq(zsim_stat_int(ds, "imports/carol@example.net/resolve/replace"), 1);
	json_decref(ss);
	json_decref(ds);
}
END_TEST

/*
 * A delta pass whose import keeps failing: alice ends failed, her export's
 * new mark already recorded.  `run --retry-failed` (after the target is
 * fixed) must bring the items that only that failed archive held: the
 * mark is dropped with the failure and the retry exports everything.
 */
START_TEST(test_delta_import_failed_then_retried)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, "delta_overlap = \"0s\";", NULL);
	ck_assert_int_eq(e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL), 0);
	tu_proc_release(&p);
	tu_sleep(1.1);
	json_decref(zsim_post(E.src, "/zsim/add-items", "{\"account\":\"alice@example.com\",\"n\":3}"));
	json_decref(zsim_post(E.dst, "/zsim/knobs", "{\"faults\":[{\"op\":\"import\","
			      "\"account\":\"alice@example.net\",\"action\":\"status\",\"status\":500,"
			      "\"count\":-1}]}"));
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, "--delta", (char *)NULL);
	tu_proc_release(&p);
	ck_assert_msg(rc == 1, "delta with a failing import: exit %d", rc);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE account = 'alice@example.com'"
				  " AND state = 'failed'"), 1);
	json_decref(zsim_post(E.dst, "/zsim/knobs", "{\"faults\":[]}"));
	tu_sleep(1.1);
	rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, "--retry-failed", (char *)NULL);
	tu_proc_release(&p);
	ck_assert_msg(rc == 0, "retry exit %d", rc);
	assert_all_migrated_alice_whole();
}
END_TEST

START_TEST(test_accounts_file_types_resolve_transport)
{
	struct tu_proc p;
	free(tu_write(E.dir, "accounts.txt",
		      "# the pilot group\n"
		      "bob@example.com\n\n"
		      "  erin@example.org   # trailing comment\n"
		      "Grace@Example.org\n", 0600));
	char *mig;
	if (asprintf(&mig, "accounts_file = \"%s/accounts.txt\"; types = \"message\"; resolve = \"modify\";\n"
		     "  mail_transport = \"smtp:mta.example.net\"; keep_success_files = true;", E.dir) < 0)
		abort();
	/* accounts_file replaces the domains of the default job */
	write_job_no_domains(2, mig);
	free(mig);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts"), 3);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	const char *pairs[][2] = { { "bob@example.com", "bob@example.net" },
				   { "erin@example.org", "erin@example.org" },
				   { "grace@example.org", "grace@example.org" } };
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(zsim_fingerprint(ss, pairs[i][0]), zsim_fingerprint(ds, pairs[i][1]));
		json_t *attrs = json_object_get(json_object_get(json_object_get(ds, "accounts"), pairs[i][1]), "attrs");
		ck_assert_str_eq(json_string_value(json_object_get(attrs, "zimbraMailTransport")),
				 "smtp:mta.example.net");
	}
	ck_assert_int_eq(zsim_stat_acct(ss, "exports", "alice@example.com", "count"), 0);
	/* types= on the export, resolve= on the import, never a token in the query */
	json_t *reqs = json_object_get(ss, "requests"), *r;
	size_t i;
	int exports = 0;
	json_array_foreach(reqs, i, r) {
		const char *q = json_string_value(json_object_get(r, "query"));
		const char *m = json_string_value(json_object_get(r, "method"));
		if (m && !strcmp(m, "GET") && q && strstr(q, "fmt=tgz")) {
			ck_assert_msg(strstr(q, "types=message") != NULL, "export query %s", q);
			exports++;
		}
	}
	ck_assert_int_eq(exports, 3);
	int imports = 0;
	json_array_foreach(json_object_get(ds, "requests"), i, r) {
		const char *q = json_string_value(json_object_get(r, "query"));
		const char *m = json_string_value(json_object_get(r, "method"));
		if (m && !strcmp(m, "POST") && q && strstr(q, "fmt=tgz")) {
			ck_assert_msg(strstr(q, "resolve=modify") != NULL, "import query %s", q);
			imports++;
		}
	}
	ck_assert_int_eq(imports, 3);
	/* keep_success_files: the three archives are kept */
	ck_assert_int_eq(e2e_count_files(&E, "success"), 3);
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_bandwidth_cap_total)
{
	struct tu_proc p;
	/* 150 kB/s for the whole run, shared by 2 threads: the ~0.9 MB of the job
	 * cannot move in much less than 6 s, while uncapped it takes about one
	 * (a lower bound, not a speed test) */
	e2e_write_job(&E, 2, "max_bytes_per_second_total = \"150k\";", NULL);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_eq(rc, 0);
	double dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	long long bytes = e2e_db_count(&E, "SELECT sum(bytes) FROM accounts");
	double floor_s = (double)bytes / (150.0 * 1024) * 0.7;
	ck_assert_msg(dt >= floor_s, "moved %lld bytes in %.2f s: the cap was not applied (>= %.2f s expected)",
		      bytes, dt, floor_s);
	tu_proc_release(&p);
}
END_TEST

/*
 * migration.max_bytes_per_second caps each transfer: two mailboxes of
 * ~350 kB, one thread, capped at 100 kB/s, each take at least about
 * 350 kB / 100 kB/s each way (uncapped: a fraction of a second).  libcurl
 * paces an upload (the import) closely but averages a download's rate over
 * seconds, so zmbatch paces the export itself (http_pace_download): the
 * source's own record of each export request must last as long too.
 * (Lower bounds with a wide margin, not a speed test.)
 */
START_TEST(test_bandwidth_cap_per_transfer)
{
	struct tu_proc p;
	json_decref(zsim_post(E.src, "/zsim/add-account",
			      "{\"name\":\"big@example.com\",\"items\":15,\"item_size\":20000}"));
	json_decref(zsim_post(E.dst, "/zsim/add-account", "{\"name\":\"big@example.net\"}"));
	write_job_no_domains(1, "accounts = [ \"big@example.com\", \"alice@example.com\" ];\n"
			     "  max_bytes_per_second = \"100k\";");
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	tu_proc_release(&p);
	const char *accts[] = { "big@example.com", "alice@example.com" };
	for (int i = 0; i < 2; i++) {
		char *q = xasprintf("SELECT bytes FROM accounts WHERE account = '%s' AND state = 'done'", accts[i]);
		long long bytes = e2e_db_count(&E, q);
		free(q);
		q = xasprintf("SELECT CAST(seconds * 1000 AS INTEGER) FROM accounts WHERE account = '%s'", accts[i]);
		double secs = (double)e2e_db_count(&E, q) / 1000.0;
		free(q);
		ck_assert_msg(bytes > 200000, "%s moved only %lld bytes", accts[i], bytes);
		double floor_s = 0.6 * (double)bytes / (100.0 * 1024);
		ck_assert_msg(secs >= floor_s, "%s: %lld bytes each way in %.2f s: the per-transfer cap "
			      "was not applied (>= %.2f s expected)", accts[i], bytes, secs, floor_s);
	}
	/* the export alone: the source's socket buffers take a body this small at
	 * once, so the source cannot see the pacing; what shows it is the time from
	 * the export request (source clock) to the import request (target clock),
	 * one thread in spool mode, both on this machine ("at": epoch seconds) */
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	for (int i = 0; i < 2; i++) {
		double get_at = -1, post_at = -1;
		long long out = 0;
		json_t *r;
		size_t k;
		json_array_foreach(json_object_get(ss, "requests"), k, r)
			if (!strcmp(json_string_value(json_object_get(r, "method")), "GET") &&
			    streq(json_string_value(json_object_get(r, "account")), accts[i])) {
				get_at = json_number_value(json_object_get(r, "at"));
				out = json_integer_value(json_object_get(r, "bytes_out"));
			}
		char *tgt = xasprintf("%.*s@example.net", (int)(strchr(accts[i], '@') - accts[i]), accts[i]);
		json_array_foreach(json_object_get(ds, "requests"), k, r)
			if (!strcmp(json_string_value(json_object_get(r, "method")), "POST") &&
			    streq(json_string_value(json_object_get(r, "account")), tgt))
				post_at = json_number_value(json_object_get(r, "at"));
		free(tgt);
		ck_assert_msg(get_at > 0 && post_at > 0 && out > 200000, "%s: export or import not seen",
			      accts[i]);
		double floor_s = 0.6 * (double)out / (100.0 * 1024);
		ck_assert_msg(post_at - get_at >= floor_s, "%s: export of %lld bytes took %.2f s: the cap "
			      "was not applied to the download (>= %.2f s expected)", accts[i], out,
			      post_at - get_at, floor_s);
	}
	json_decref(ss);
	json_decref(ds);
}
END_TEST

/*
 * `run --threads N` overrides the job's `threads`: a job of 1 thread run with
 * --threads 3 has three exports in flight at once at the source (its
 * active_streams, polled while the bandwidth-limited exports run), never
 * more.
 */
START_TEST(test_threads_option_overrides_job)
{
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":60000}"));
	e2e_write_job(&E, 1, NULL, NULL);
	char *out = xasprintf("%s/run.out", E.dir), *err = xasprintf("%s/run.err", E.dir);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job,
			 (char *)"--threads", (char *)"3", NULL };
	pid_t pid = tu_spawn(argv, NULL, out, err);
	ck_assert_int_gt(pid, 0);
	long long most = 0;
	long samples = 0;
	int rc = -1;
	for (double t0 = mono_now(); rc == -1 && mono_now() - t0 < 120; ) {
		char *body = NULL;
		if (zsim_http(E.src, "GET", "/zsim/stats?log=0&digests=0", NULL, NULL, 0, &body, NULL,
			      NULL) == 200) {
			json_t *st = json_loads(body, 0, NULL);
			long long n = zsim_stat_int(st, "active_streams");
			most = n > most ? n : most;
			samples++;
			json_decref(st);
		}
		free(body);
		rc = tu_wait(pid, 0.02);
	}
	if (rc == -1) {
		kill(pid, SIGKILL);
		tu_wait(pid, 10);
	}
	if (rc != 0) {
		char *e = tu_read(err);
		fprintf(stderr, "run exited %d:\n%s\n", rc, e ? e : "");
		free(e);
	}
	ck_assert_msg(rc == 0, "exit %d", rc);
	ck_assert_msg(most == 3, "at most %lld export(s) at once with --threads 3 over a job of 1 thread "
		      "(%ld samples)", most, samples);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	json_decref(ss);
	json_decref(ds);
	free(out);
	free(err);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_migrate");
	TCase *tc = tcase_create("migrate");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	/* MIGRATE_ONLY=test_name runs one test (debugging) */
	const char *only = getenv("MIGRATE_ONLY");
#define ADD(t) do { if (!only || !strcmp(only, #t)) tcase_add_test(tc, t); } while (0)
	ADD(test_native_two_domains);
	ADD(test_legacy_conf);
	ADD(test_stream_mode);
	ADD(test_missing_target_fails_permanently);
	ADD(test_target_directory);
	ADD(test_faults_recovered_by_retries);
	ADD(test_token_refresh_short_lifetime);
	ADD(test_kill9_resume);
	ADD(test_delta_pass);
	ADD(test_reset_after_delta_migrates_in_full);
	ADD(test_delta_import_failed_then_retried);
	ADD(test_accounts_file_types_resolve_transport);
	ADD(test_resolve_replace);
	ADD(test_bandwidth_cap_total);
	ADD(test_bandwidth_cap_per_transfer);
	ADD(test_threads_option_overrides_job);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
