/*
 * e2e.c - shared pieces of the end-to-end suites (see e2e.h).
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "zmb.h"

#include <check.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Source: example.com (5 users incl. one empty + system accounts) and
 * example.org (3 users); target: the same users, empty, under
 * example.net / example.org. */
const char *const E2E_SRC_CFG =
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

const char *const E2E_DST_CFG =
	"{\"name\":\"dst\",\"domains\":["
	"{\"name\":\"example.net\",\"accounts\":["
	"{\"name\":\"alice@example.net\"},{\"name\":\"bob@example.net\"},{\"name\":\"carol@example.net\"},"
	"{\"name\":\"dave@example.net\"},{\"name\":\"empty@example.net\"}]},"
	"{\"name\":\"example.org\",\"accounts\":["
	"{\"name\":\"erin@example.org\"},{\"name\":\"frank@example.org\"},{\"name\":\"grace@example.org\"}]}]}";

const char *const E2E_USERS[][2] = {
	{ "alice@example.com", "alice@example.net" }, { "bob@example.com", "bob@example.net" },
	{ "carol@example.com", "carol@example.net" }, { "dave@example.com", "dave@example.net" },
	{ "empty@example.com", "empty@example.net" }, { "erin@example.org", "erin@example.org" },
	{ "frank@example.org", "frank@example.org" }, { "grace@example.org", "grace@example.org" },
};
const size_t E2E_NUSERS = sizeof E2E_USERS / sizeof *E2E_USERS;

void e2e_start(struct e2e *e, const char *src_cfg, const char *dst_cfg)
{
	e->dir = tu_tmpdir("e2e");
	ck_assert_ptr_nonnull(e->dir);
	e->pki = zsim_pki_new(NULL);
	ck_assert_msg(e->pki != NULL, "cannot make test certificates");
	struct zsim_opts so = { .name = "src", .config_json = src_cfg, .pki = e->pki };
	struct zsim_opts dopt = { .name = "dst", .config_json = dst_cfg, .pki = e->pki };
	e->src = zsim_start(&so);
	ck_assert_msg(e->src != NULL, "source simulator did not start");
	e->dst = zsim_start(&dopt);
	ck_assert_msg(e->dst != NULL, "target simulator did not start");
	free(tu_write(e->dir, "src.pw", "test123\n", 0600));
	free(tu_write(e->dir, "dst.pw", "test123\n", 0600));
	if (asprintf(&e->db, "%s/state.db", e->dir) < 0)
		abort();
}

void e2e_stop(struct e2e *e)
{
	zsim_stop(e->src);
	zsim_stop(e->dst);
	zsim_pki_free(e->pki);
	tu_rmrf(e->dir);
	free(e->dir);
	free(e->job);
	free(e->db);
	memset(e, 0, sizeof *e);
}

/* Write the native job file; `extra_mig` goes into the migration group. */
void e2e_write_job(struct e2e *e, int threads, const char *extra_mig, const char *extra_top)
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
		     e->src->port, e->dir, e->pki->ca_file, e->dst->port, e->dir, e->pki->ca_file,
		     threads, e->dir, e->dir, e->dir, extra_mig ? extra_mig : "", e->db, e->dir,
		     extra_top ? extra_top : "") < 0)
		abort();
	free(e->job);
	e->job = tu_write(e->dir, "job.cfg", text, 0600);
	free(text);
}

/* Run bin/zmbatch with a NULL-terminated argument list. */
int e2e_zmbatch(struct tu_proc *p, double timeout, ...)
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

/* Number of regular files below e->dir/rel. */
int e2e_count_files(struct e2e *e, const char *rel)
{
	char *cmd;
	int n = -1;
	if (asprintf(&cmd, "find '%s/%s' -type f 2>/dev/null | wc -l", e->dir, rel) < 0)
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

void e2e_assert_all_migrated(json_t *ss, json_t *ds)
{
	for (size_t i = 0; i < E2E_NUSERS; i++) {
		const char *a = zsim_fingerprint(ss, E2E_USERS[i][0]);
		const char *b = zsim_fingerprint(ds, E2E_USERS[i][1]);
		ck_assert_msg(a && b, "no fingerprint for %s / %s", E2E_USERS[i][0], E2E_USERS[i][1]);
		ck_assert_msg(strcmp(a, b) == 0, "content differs: %s -> %s", E2E_USERS[i][0], E2E_USERS[i][1]);
		ck_assert_int_eq(zsim_stat_acct(ds, "accounts", E2E_USERS[i][1], "duplicates"), 0);
	}
	ck_assert_int_eq(zsim_stat_int(ds, "duplicates"), 0);
	ck_assert_int_eq(zsim_stat_int(ss, "tokens_in_url"), 0);
	ck_assert_int_eq(zsim_stat_int(ds, "tokens_in_url"), 0);
}

long long e2e_db_count(struct e2e *e, const char *sql)
{
	return e2e_db_int(e->db, sql);
}

long long e2e_db_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long n = -1;
	ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);   /* a run may be writing (WAL) */
	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

int e2e_hooks_run(struct e2e *e, long k, const char *steps, double timeout)
{
	char *argv[] = { (char *)tu_zmbatch_hooks(), (char *)"run", (char *)"-c", e->job, NULL };
	char *env[3] = { NULL, NULL, NULL };
	int ne = 0;
	if (k > 0)
		env[ne++] = xasprintf("ZMBATCH_CRASH_AT=%ld", k);
	if (steps)
		env[ne++] = xasprintf("ZMBATCH_STEP_LOG=%s", steps);
	struct tu_proc p;
	int rc = tu_run(argv, env, timeout, &p);
	if (rc != 0 && !(k > 0 && rc == 99))
		fprintf(stderr, "---- crash %ld: exit %d\n%s\n%s\n", k, rc, p.out, p.err);
	tu_proc_release(&p);
	for (int i = 0; i < ne; i++)
		free(env[i]);
	return rc;
}

long long e2e_soap_calls(struct zsim *z, const char *req)
{
	json_t *st = zsim_stats(z);
	char *k = xasprintf("soap/%s", req);
	long long n = zsim_stat_int(st, k);
	free(k);
	json_decref(st);
	return n;
}

/* Does any file under the work tree or the log contain s? */
bool e2e_tree_contains(struct e2e *e, const char *rel, const char *s)
{
	/* a negative grep of a folder that is not there would pass: it must exist */
	char *path = xasprintf("%s/%s", e->dir, rel);
	struct stat st;
	ck_assert_msg(stat(path, &st) == 0, "%s does not exist: nothing to search", path);
	char *cmd = xasprintf("grep -rqF -- '%s' '%s'", s, path);
	int r = system(cmd);
	ck_assert_msg(WIFEXITED(r) && WEXITSTATUS(r) <= 1, "%s failed (%d)", cmd, r);
	free(cmd);
	free(path);
	return WEXITSTATUS(r) == 0;
}


bool e2e_db_try(struct e2e *e, const char *sql, long long *out)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool ok = false;
	if (sqlite3_open_v2(e->db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, 2000);
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			ok = true;
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ok;
}
