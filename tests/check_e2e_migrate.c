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
#include "zsim.h"

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

struct env {
	char *dir;
	struct zsim_pki *pki;
	struct zsim *src;
	struct zsim *dst;
	char *job;        /* job file path */
	char *db;         /* state DB path */
};

static struct env E;

/* Source: example.com (5 users incl. one empty + system accounts) and
 * example.org (3 users); target: the same users, empty, under
 * example.net / example.org. */
static const char *SRC_CFG =
	"{\"name\":\"src\",\"domains\":["
	"{\"name\":\"example.com\",\"system_accounts\":true,\"accounts\":["
	"{\"name\":\"alice@example.com\",\"items\":30,\"item_size\":[500,20000]},"
	"{\"name\":\"bob@example.com\",\"items\":12,\"item_size\":4000,\"folders\":[\"Inbox\",\"Sent\",\"Archive/2023\"]},"
	"{\"name\":\"carol@example.com\",\"sizes\":[100,300000,2000]},"
	"{\"name\":\"dave@example.com\",\"items\":5,\"item_size\":1000},"
	"{\"name\":\"empty@example.com\"}]},"
	"{\"name\":\"example.org\",\"accounts\":["
	"{\"name\":\"erin@example.org\",\"items\":8,\"item_size\":3000},"
	"{\"name\":\"frank@example.org\",\"items\":3,\"item_size\":100},"
	"{\"name\":\"grace@example.org\",\"items\":20,\"item_size\":[100,9000]}]}]}";

static const char *DST_CFG =
	"{\"name\":\"dst\",\"domains\":["
	"{\"name\":\"example.net\",\"accounts\":["
	"{\"name\":\"alice@example.net\"},{\"name\":\"bob@example.net\"},{\"name\":\"carol@example.net\"},"
	"{\"name\":\"dave@example.net\"},{\"name\":\"empty@example.net\"}]},"
	"{\"name\":\"example.org\",\"accounts\":["
	"{\"name\":\"erin@example.org\"},{\"name\":\"frank@example.org\"},{\"name\":\"grace@example.org\"}]}]}";

static const char *USERS[][2] = {
	{ "alice@example.com", "alice@example.net" }, { "bob@example.com", "bob@example.net" },
	{ "carol@example.com", "carol@example.net" }, { "dave@example.com", "dave@example.net" },
	{ "empty@example.com", "empty@example.net" }, { "erin@example.org", "erin@example.org" },
	{ "frank@example.org", "frank@example.org" }, { "grace@example.org", "grace@example.org" },
};
#define NUSERS (sizeof USERS / sizeof *USERS)

static void start_sims(const char *src_cfg, const char *dst_cfg)
{
	E.dir = tu_tmpdir("e2e");
	ck_assert_ptr_nonnull(E.dir);
	E.pki = zsim_pki_new(NULL);
	ck_assert_msg(E.pki != NULL, "cannot make test certificates");
	struct zsim_opts so = { .name = "src", .config_json = src_cfg, .pki = E.pki };
	struct zsim_opts dopt = { .name = "dst", .config_json = dst_cfg, .pki = E.pki };
	E.src = zsim_start(&so);
	ck_assert_msg(E.src != NULL, "source simulator did not start");
	E.dst = zsim_start(&dopt);
	ck_assert_msg(E.dst != NULL, "target simulator did not start");
	free(tu_write(E.dir, "src.pw", "test123\n", 0600));
	free(tu_write(E.dir, "dst.pw", "test123\n", 0600));
	if (asprintf(&E.db, "%s/state.db", E.dir) < 0)
		abort();
}

static void setup(void)
{
	memset(&E, 0, sizeof E);
	start_sims(SRC_CFG, DST_CFG);
}

static void teardown(void)
{
	zsim_stop(E.src);
	zsim_stop(E.dst);
	zsim_pki_free(E.pki);
	tu_rmrf(E.dir);
	free(E.dir);
	free(E.job);
	free(E.db);
	memset(&E, 0, sizeof E);
}

/* Write the native job file; `extra_mig` goes into the migration group. */
static void write_job(int threads, const char *extra_mig, const char *extra_top)
{
	char *text;
	if (asprintf(&text,
		     "job = \"e2e\";\n"
		     "source = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		     "  admin_password_file = \"%s/src.pw\"; ca_file = \"%s\"; };\n"
		     "target = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		     "  admin_password_file = \"%s/dst.pw\"; ca_file = \"%s\"; };\n"
		     "migration = {\n"
		     "  domains = [ \"example.com\", \"example.org\" ];\n"
		     "  domain_map = [ \"example.com=example.net\" ];\n"
		     "  threads = %d;\n"
		     "  working_dir = \"%s/work\"; success_dir = \"%s/success\"; failed_dir = \"%s/failed\";\n"
		     "  retry_backoff = \"1s\"; retry_backoff_max = \"2s\"; max_attempts = 4;\n"
		     "  %s\n"
		     "};\n"
		     "state = { db = \"%s\"; };\n"
		     "log = { dir = \"%s/log\"; level = \"debug\"; };\n"
		     "%s\n",
		     E.src->port, E.dir, E.pki->ca_file, E.dst->port, E.dir, E.pki->ca_file,
		     threads, E.dir, E.dir, E.dir, extra_mig ? extra_mig : "", E.db, E.dir,
		     extra_top ? extra_top : "") < 0)
		abort();
	free(E.job);
	E.job = tu_write(E.dir, "job.cfg", text, 0600);
	free(text);
}

/* Run bin/zmbatch with a NULL-terminated argument list. */
static int zmbatch(struct tu_proc *p, double timeout, ...)
{
	char *argv[16];
	int n = 0;
	va_list ap;
	argv[n++] = (char *)tu_zmbatch();
	va_start(ap, timeout);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && n < 15)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	int rc = tu_run(argv, NULL, timeout, p);
	if (rc != 0) {
		/* shown in the runner log (tests/out); assertion messages stay short */
		fprintf(stderr, "---- zmbatch %s exited %d\n---- stdout:\n%s\n---- stderr:\n%s\n",
			argv[1], rc, p->out, p->err);
	}
	return rc;
}

/* Number of regular files below E.dir/rel. */
static int count_files(const char *rel)
{
	char *cmd;
	int n = -1;
	if (asprintf(&cmd, "find '%s/%s' -type f 2>/dev/null | wc -l", E.dir, rel) < 0)
		abort();
	FILE *f = popen(cmd, "r");
	if (f) {
		if (fscanf(f, "%d", &n) != 1)
			n = -1;
		pclose(f);
	}
	free(cmd);
	return n;
}

static void assert_all_migrated(json_t *ss, json_t *ds)
{
	for (size_t i = 0; i < NUSERS; i++) {
		const char *a = zsim_fingerprint(ss, USERS[i][0]);
		const char *b = zsim_fingerprint(ds, USERS[i][1]);
		ck_assert_msg(a && b, "no fingerprint for %s / %s", USERS[i][0], USERS[i][1]);
		ck_assert_msg(strcmp(a, b) == 0, "content differs: %s -> %s", USERS[i][0], USERS[i][1]);
		ck_assert_int_eq(zsim_stat_acct(ds, "accounts", USERS[i][1], "duplicates"), 0);
	}
	ck_assert_int_eq(zsim_stat_int(ds, "duplicates"), 0);
	ck_assert_int_eq(zsim_stat_int(ss, "tokens_in_url"), 0);
	ck_assert_int_eq(zsim_stat_int(ds, "tokens_in_url"), 0);
}

static long long db_count(const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long n = -1;
	ck_assert_int_eq(sqlite3_open_v2(E.db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Does any file under the work tree or the log contain s? */
static bool tree_contains(const char *rel, const char *s)
{
	char *cmd;
	if (asprintf(&cmd, "grep -rqF -- '%s' '%s/%s' 2>/dev/null", s, E.dir, rel) < 0)
		abort();
	int r = system(cmd);
	free(cmd);
	return r == 0;
}

START_TEST(test_native_two_domains)
{
	struct tu_proc p;
	write_job(4, NULL, NULL);
	int rc = zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d (output above)", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	assert_all_migrated(ss, ds);
	/* system accounts are never exported */
	ck_assert_int_eq(zsim_stat_acct(ss, "exports", "galsync.x@example.com", "count"), 0);
	ck_assert_int_eq(db_count("SELECT count(*) FROM accounts"), (long long)NUSERS);
	ck_assert_int_eq(db_count("SELECT count(*) FROM accounts WHERE state='done'"), (long long)NUSERS);
	ck_assert_int_eq(db_count("SELECT count(*) FROM accounts WHERE account LIKE 'galsync%' "
				  "OR account LIKE 'spam%' OR account LIKE 'ham%' OR account LIKE 'virus%'"), 0);
	/* secrets stay secret: not in output, log, DB */
	ck_assert(!tu_contains(p.out, "test123") && !tu_contains(p.err, "test123"));
	ck_assert(!tree_contains("log", "test123"));
	ck_assert(!tree_contains("state.db", "test123"));
	ck_assert(!tree_contains("log", "0_"));  /* no token (0_<hex>_<hex>) in the log */
	/* spool files are gone (keep_success_files = false) */
	ck_assert_int_eq(count_files("work"), 0);
	/* a second run changes nothing and exports nothing again */
	long long exports_before = zsim_stat_acct(ss, "exports", "alice@example.com", "count");
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
	rc = zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
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
	int rc = zmbatch(&p, 120, "run", "-c", path, "--ca-file", E.pki->ca_file, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d (output above)", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	assert_all_migrated(ss, ds);
	json_decref(ss);
	json_decref(ds);
	/* KeepSuccessFiles=TRUE: archives kept in SuccessDirectory; the DB is in WorkingDirectory */
	ck_assert_int_eq(count_files("success"), (int)NUSERS); /* a full export of an empty mailbox still has folders */
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
	write_job(4, "transfer = \"stream\";", NULL);
	int rc = zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d (output above)", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	assert_all_migrated(ss, ds);
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_missing_target_fails_permanently)
{
	struct tu_proc p;
	zsim_post(E.dst, "/zsim/delete-account", "{\"name\":\"dave@example.net\"}");
	write_job(4, NULL, NULL);
	int rc = zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 1, "expected exit 1, got %d", rc);
	ck_assert_msg(tu_contains(p.err, "dave@example.net"), "error does not name the account");
	ck_assert_int_eq(db_count("SELECT count(*) FROM accounts WHERE state='failed' "
				  "AND account='dave@example.com' AND last_error LIKE '%does not exist%'"), 1);
	ck_assert_int_eq(db_count("SELECT count(*) FROM accounts WHERE state='done'"), (long long)NUSERS - 1);
	/* permanent: exactly one attempt, no retries */
	ck_assert_int_eq(db_count("SELECT attempts FROM accounts WHERE account='dave@example.com'"), 1);
	tu_proc_release(&p);
}
END_TEST

START_TEST(test_faults_recovered_by_retries)
{
	struct tu_proc p;
	zsim_post(E.src, "/zsim/knobs",
		  "{\"faults\":["
		  "{\"op\":\"export\",\"account\":\"alice@example.com\",\"action\":\"status\",\"status\":500,\"count\":1},"
		  "{\"op\":\"export\",\"account\":\"bob@example.com\",\"action\":\"status\",\"status\":503,\"count\":2},"
		  "{\"op\":\"export\",\"account\":\"carol@example.com\",\"action\":\"reset\",\"after_bytes\":20000,\"count\":1},"
		  "{\"op\":\"export\",\"account\":\"erin@example.org\",\"action\":\"truncate\",\"after_bytes\":2000,\"count\":1}]}");
	zsim_post(E.dst, "/zsim/knobs",
		  "{\"faults\":["
		  "{\"op\":\"import\",\"account\":\"grace@example.org\",\"action\":\"reset\",\"after_bytes\":5000,\"count\":1},"
		  "{\"op\":\"import\",\"account\":\"frank@example.org\",\"action\":\"status\",\"status\":500,\"count\":1}]}");
	write_job(4, NULL, NULL);
	int rc = zmbatch(&p, 180, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d (output above)", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	assert_all_migrated(ss, ds);
	ck_assert_int_ge(zsim_stat_acct(ss, "exports", "bob@example.com", "count"), 3);
	json_decref(ss);
	json_decref(ds);
	ck_assert_int_ge(db_count("SELECT retries FROM runs ORDER BY id DESC LIMIT 1"), 5);
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
	if (asprintf(&src_cfg, "{\"name\":\"src\",\"token_lifetime\":2,\"knobs\":{\"bandwidth\":200000},%s",
		     strstr(SRC_CFG, "\"domains\"")) < 0)
		abort();
	char *dst_cfg = NULL;
	if (asprintf(&dst_cfg, "{\"name\":\"dst\",\"token_lifetime\":2,%s", strstr(DST_CFG, "\"domains\"")) < 0)
		abort();
	start_sims(src_cfg, dst_cfg);
	write_job(2, NULL, "token = { refresh_margin = 1800; };");
	double t0 = (double)time(NULL);
	int rc = zmbatch(&p, 180, "run", "-c", E.job, (char *)NULL);
	double dt = (double)time(NULL) - t0;
	ck_assert_msg(rc == 0, "exit %d (output above)", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	assert_all_migrated(ss, ds);
	long long auth = zsim_stat_int(ss, "auth_requests/total");
	/* renewed before expiry: about one login per (lifetime - margin), never a storm */
	ck_assert_msg(dt >= 4, "run too short (%.0f s) to cross token expiry", dt);
	ck_assert_msg(auth >= 2 && auth <= 4 * dt + 6, "source AuthRequests %lld over %.0f s", auth, dt);
	ck_assert_int_eq(db_count("SELECT count(*) FROM accounts WHERE attempts > 1"), 0);
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
	write_job(2, NULL, NULL);
	zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":150000}");
	if (asprintf(&out, "%s/run1.out", E.dir) < 0 || asprintf(&errp, "%s/run1.err", E.dir) < 0)
		abort();
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job, NULL };
	pid_t pid = tu_spawn(argv, NULL, out, errp);
	ck_assert_int_gt(pid, 0);
	/* wait until some accounts are done, then kill -9 */
	for (int i = 0; i < 300; i++) {
		tu_sleep(0.1);
		if (access(E.db, F_OK) == 0 &&
		    db_count("SELECT count(*) FROM accounts WHERE state='done'") >= 2)
			break;
	}
	kill(pid, SIGKILL);
	tu_wait(pid, 10);
	long long done1 = db_count("SELECT count(*) FROM accounts WHERE state='done'");
	ck_assert_int_ge(done1, 1);
	ck_assert_int_lt(done1, (long long)NUSERS);
	json_t *ss = zsim_stats(E.src);
	/* remember how often each finished account was exported */
	sqlite3 *db;
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_open_v2(E.db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT account FROM accounts WHERE state='done'", -1, &st, NULL), SQLITE_OK);
	char *done_accts[NUSERS];
	long long exports[NUSERS];
	size_t nd = 0;
	while (sqlite3_step(st) == SQLITE_ROW && nd < NUSERS) {
		done_accts[nd] = strdup((const char *)sqlite3_column_text(st, 0));
		exports[nd] = zsim_stat_acct(ss, "exports", done_accts[nd], "count");
		nd++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	json_decref(ss);

	zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":0}");
	struct tu_proc p;
	int rc = zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "resume exit %d", rc);
	ss = zsim_stats(E.src);
	json_t *ds = zsim_stats(E.dst);
	assert_all_migrated(ss, ds);
	for (size_t i = 0; i < nd; i++) {
		ck_assert_msg(zsim_stat_acct(ss, "exports", done_accts[i], "count") == exports[i],
			      "%s was exported again after resume", done_accts[i]);
		free(done_accts[i]);
	}
	ck_assert(!tree_contains("work", ".part"));
	json_decref(ss);
	json_decref(ds);
	tu_proc_release(&p);
	free(out);
	free(errp);
}
END_TEST

START_TEST(test_delta_pass)
{
	struct tu_proc p;
	write_job(4, "delta_overlap = \"0s\";", NULL);
	int rc = zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	tu_proc_release(&p);
	tu_sleep(1.1);
	json_decref(zsim_post(E.src, "/zsim/add-items", "{\"account\":\"alice@example.com\",\"n\":4}"));
	json_decref(zsim_post(E.src, "/zsim/add-items", "{\"account\":\"erin@example.org\",\"n\":2}"));
	rc = zmbatch(&p, 120, "run", "-c", E.job, "--delta", (char *)NULL);
	ck_assert_msg(rc == 0, "delta exit %d", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	assert_all_migrated(ss, ds);
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
	json_decref(ss);
	json_decref(ds);
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
	tcase_add_test(tc, test_faults_recovered_by_retries);
	tcase_add_test(tc, test_token_refresh_short_lifetime);
	tcase_add_test(tc, test_kill9_resume);
	tcase_add_test(tc, test_delta_pass);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
