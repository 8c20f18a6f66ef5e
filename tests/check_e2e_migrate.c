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
		seen = access(E.db, F_OK) == 0 &&
		       e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE account = 'alice@example.com' "
				    "AND state = 'exporting'") == 1;
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
	ck_assert_int_ge(e2e_db_count(&E, "SELECT retries FROM runs ORDER BY id DESC LIMIT 1"), 5);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_token_refresh_short_lifetime)
{
	struct tu_proc p;
	teardown();
	memset(&E, 0, sizeof E);
	/* 2 s tokens; bandwidth-limited so the run takes several lifetimes */
	char *src_cfg = NULL;
	if (asprintf(&src_cfg, "{\"name\":\"src\",\"token_lifetime\":2,\"knobs\":{\"bandwidth\":70000},%s",
		     strstr(E2E_SRC_CFG, "\"domains\"")) < 0)
		abort();
	char *dst_cfg = NULL;
	if (asprintf(&dst_cfg, "{\"name\":\"dst\",\"token_lifetime\":2,%s", strstr(E2E_DST_CFG, "\"domains\"")) < 0)
		abort();
	e2e_start(&E, src_cfg, dst_cfg);
	e2e_write_job(&E, 2, NULL, "token = { refresh_margin = 1800; };");
	struct timespec ta, tb;
	clock_gettime(CLOCK_MONOTONIC, &ta);
	int rc = e2e_zmbatch(&p, 180, "run", "-c", E.job, (char *)NULL);
	clock_gettime(CLOCK_MONOTONIC, &tb);
	double dt = (tb.tv_sec - ta.tv_sec) + (tb.tv_nsec - ta.tv_nsec) / 1e9;
	ck_assert_msg(rc == 0, "exit %d (output above)", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	long long auth = zsim_stat_int(ss, "auth_requests/total");
	/* renewed before expiry: about one login per (lifetime - margin), never a storm */
	ck_assert_msg(dt >= 4, "run too short (%.0f s) to cross token expiry", dt);
	/* refresh when 2/3 of the 2 s lifetime has passed (margin clamped to a
	 * third): about dt / 1.33 logins; allow 50% plus the first login */
	double expect = dt / (2.0 - 2.0 / 3.0);
	ck_assert_msg(auth >= 2 && auth <= expect * 1.5 + 3,
		      "source AuthRequests %lld over %.1f s (about %.0f expected)", auth, dt, expect);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE attempts > 1"), 0);
	json_decref(ss);
	json_decref(ds);
	free(src_cfg);
	free(dst_cfg);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_kill9_resume)
{
	char *out, *errp;
	e2e_write_job(&E, 2, NULL, NULL);
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":150000}"));
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

	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":0}"));
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
	e2e_write_job(&E, 2, mig, NULL);
	char *job = tu_read(E.job);
	char *d = strstr(job, "domains = [");
	ck_assert_ptr_nonnull(d);
	memcpy(d, "#", 1);  /* comment the domains line out */
	free(tu_write(E.dir, "job.cfg", job, 0600));
	free(job);
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

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_migrate");
	TCase *tc = tcase_create("migrate");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_native_two_domains);
	tcase_add_test(tc, test_legacy_conf);
	tcase_add_test(tc, test_stream_mode);
	tcase_add_test(tc, test_missing_target_fails_permanently);
	tcase_add_test(tc, test_target_directory);
	tcase_add_test(tc, test_faults_recovered_by_retries);
	tcase_add_test(tc, test_token_refresh_short_lifetime);
	tcase_add_test(tc, test_kill9_resume);
	tcase_add_test(tc, test_delta_pass);
	tcase_add_test(tc, test_reset_after_delta_migrates_in_full);
	tcase_add_test(tc, test_delta_import_failed_then_retried);
	tcase_add_test(tc, test_accounts_file_types_resolve_transport);
	tcase_add_test(tc, test_resolve_replace);
	tcase_add_test(tc, test_bandwidth_cap_total);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
