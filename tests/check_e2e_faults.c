/*
 * check_e2e_faults.c - end-to-end fault matrix (issue 7, "Faults from
 * outside"): bin/zmbatch against two simulated Zimbra servers (tests/zsim)
 * that misbehave on purpose, plus real disk-full (tmpfs) and read-only
 * filesystems under the working directory and the state DB, and another
 * process holding SQLite's write lock.
 *
 * Every test asserts the expected outcome (retried and done, or failed
 * with a reason in the state DB and in `zmbatch report`) and, always, that
 * no account the DB calls done has content on the target that differs from
 * the source (zsim fingerprints) or has duplicates.
 *
 * The tmpfs tests need mount(2) (root or CAP_SYS_ADMIN); where that is not
 * possible they report a skip (tu_skip), which fails `make check` unless
 * ALLOW_SKIP names them (tests/run-tests).
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAXMOUNTS 4

struct env {
	char *dir;
	struct zsim_pki *pki;
	struct zsim *src;
	struct zsim *dst;
	char *job;
	char *db;
	char *mounts[MAXMOUNTS];   /* tmpfs mount points to detach in teardown */
	int nmounts;
};

static struct env E;

/* ~650 KB in four mailboxes; same names on both sides (no domain map). */
static const char *SRC_CFG =
	"{\"name\":\"src\",\"domains\":[{\"name\":\"example.com\",\"accounts\":["
	"{\"name\":\"alice@example.com\",\"items\":30,\"item_size\":[500,20000]},"
	"{\"name\":\"bob@example.com\",\"items\":12,\"item_size\":4000,\"folders\":[\"Inbox\",\"Sent\"]},"
	"{\"name\":\"carol@example.com\",\"sizes\":[100,300000,2000]},"
	"{\"name\":\"dave@example.com\",\"items\":5,\"item_size\":1000}]}]}";
static const char *DST_CFG =
	"{\"name\":\"dst\",\"domains\":[{\"name\":\"example.com\",\"accounts\":["
	"{\"name\":\"alice@example.com\"},{\"name\":\"bob@example.com\"},"
	"{\"name\":\"carol@example.com\"},{\"name\":\"dave@example.com\"}]}]}";
static const char *const USERS[] = {
	"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com",
};
#define NUSERS (sizeof USERS / sizeof *USERS)
#define ACCOUNTS_LIST "accounts = [ \"alice@example.com\", \"bob@example.com\", " \
	"\"carol@example.com\", \"dave@example.com\" ];"

static void start_sims(const char *src_cfg, const char *dst_cfg)
{
	E.dir = tu_tmpdir("faults");
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
	E.db = xasprintf("%s/state.db", E.dir);
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
	for (int i = E.nmounts - 1; i >= 0; i--) {
		umount2(E.mounts[i], MNT_DETACH);
		free(E.mounts[i]);
	}
	if (E.dir)
		tu_rmrf(E.dir);
	free(E.dir);
	free(E.job);
	free(E.db);
	memset(&E, 0, sizeof E);
}

/* Mount a tmpfs of `size` (mount(8) syntax: "2m") at E.dir/rel; false (and the
 * test reported as skipped, under the calling test's name) if not permitted. */
#define mount_tmpfs(rel, size, ro) mount_tmpfs_for(__func__, rel, size, ro)
static bool mount_tmpfs_for(const char *test, const char *rel, const char *size, bool ro)
{
	/* a private mount namespace for this test process (and the zmbatch and
	 * simulators it starts): the mounts vanish with it even when a failed
	 * assertion skips the teardown */
	static bool unshared;
	if (!unshared && unshare(CLONE_NEWNS) == 0 &&
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
		unshared = true;
	char *p = xasprintf("%s/%s", E.dir, rel);
	char *opts = xasprintf("size=%s,mode=0700", size);
	mkdir(p, 0700);
	bool ok = mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0), opts) == 0;
	if (!ok) {
		tu_skip(test, "cannot mount a tmpfs on %s: %s", p, strerror(errno));
		free(p);
	} else {
		ck_assert_int_lt(E.nmounts, MAXMOUNTS);
		E.mounts[E.nmounts++] = p;
	}
	free(opts);
	return ok;
}

static void remount(const char *rel, const char *opts, bool ro)
{
	char *p = xasprintf("%s/%s", E.dir, rel);
	ck_assert_msg(mount("tmpfs", p, "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0),
			    opts) == 0, "remount %s: %s", p, strerror(errno));
	free(p);
}

/* Fill the filesystem holding `path` until ENOSPC, adding to the file. */
static void fill_disk(const char *path)
{
	static char block[16384];
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	size_t bs = sizeof block;
	while (bs >= 512) {
		if (write(fd, block, bs) < 0)
			bs /= 2;
	}
	close(fd);
}

/*
 * The native job file.  extra_mig goes into migration{}, extra_top at the
 * end; work/db may redirect working_dir and the state DB (NULL = default).
 */
static void write_job_ex(int threads, const char *extra_mig, const char *extra_top, const char *work)
{
	char *w = work ? xasprintf("%s", work) : xasprintf("%s/work", E.dir);
	char *text = xasprintf(
		"job = \"faults\";\n"
		"source = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/src.pw\"; ca_file = \"%s\"; };\n"
		"target = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/dst.pw\"; ca_file = \"%s\"; };\n"
		"migration = {\n"
		"  %s\n"
		"  threads = %d;\n"
		"  working_dir = \"%s\"; success_dir = \"%s/success\"; failed_dir = \"%s/failed\";\n"
		"  %s %s\n"
		"  %s\n"
		"};\n"
		"state = { db = \"%s\"; };\n"
		"log = { dir = \"%s/log\"; level = \"debug\"; };\n"
		"%s\n",
		E.src->port, E.dir, E.pki->ca_file, E.dst->port, E.dir, E.pki->ca_file,
		extra_mig && strstr(extra_mig, "accounts") ? "" : ACCOUNTS_LIST, threads, w, E.dir, E.dir,
		extra_mig && strstr(extra_mig, "retry_backoff") ? "" : "retry_backoff = \"1s\"; retry_backoff_max = \"2s\";",
		extra_mig && strstr(extra_mig, "max_attempts") ? "" : "max_attempts = 4;", extra_mig ? extra_mig : "", E.db, E.dir, extra_top ? extra_top : "");
	free(E.job);
	E.job = tu_write(E.dir, "job.cfg", text, 0600);
	free(text);
	free(w);
}

static void write_job(int threads, const char *extra_mig)
{
	write_job_ex(threads, extra_mig, NULL, NULL);
}

static int run_job(double timeout)
{
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, timeout, "run", "-c", E.job, (char *)NULL);
	tu_proc_release(&p);
	return rc;
}

/* Start `zmbatch run` in the background; output to E.dir/run.out|err. */
static pid_t spawn_run(void)
{
	char *out = xasprintf("%s/run.out", E.dir), *err = xasprintf("%s/run.err", E.dir);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job, NULL };
	pid_t pid = tu_spawn(argv, NULL, out, err);
	ck_assert_int_gt(pid, 0);
	free(out);
	free(err);
	return pid;
}

static int wait_run(pid_t pid, double timeout)
{
	int rc = tu_wait(pid, timeout);
	if (rc < 0) {
		kill(pid, SIGKILL);
		tu_wait(pid, 5);
	}
	char *ep = xasprintf("%s/run.err", E.dir);
	char *e = tu_read(ep);
	fprintf(stderr, "---- background zmbatch run exited %d\n---- stderr:\n%s\n", rc, e ? e : "");
	free(e);
	free(ep);
	return rc;
}

/* One integer from the state DB (read-only connection; -1 if no row / no DB). */
static long long db_int(const char *fmt, ...)
{
	va_list ap;
	char *sql = NULL;
	va_start(ap, fmt);
	if (vasprintf(&sql, fmt, ap) < 0)
		abort();
	va_end(ap);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long n = -1;
	if (sqlite3_open_v2(E.db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(sql);
	return n;
}

/* One text column of an account's row (malloc'd, NULL if none); col is a literal. */
static char *acct_text(const char *account, const char *col)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *r = NULL;
	char *sql = xasprintf("SELECT %s FROM accounts WHERE account = ?1", col);
	if (sqlite3_open_v2(E.db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
			r = strdup((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(sql);
	return r;
}

/* last_error of an account (malloc'd, NULL if none). */
static char *db_last_error(const char *account)
{
	return acct_text(account, "last_error");
}

static char *acct_state(const char *account)
{
	return acct_text(account, "state");
}

static bool state_is(const char *account, const char *state)
{
	char *s = acct_state(account);
	bool r = s && strcmp(s, state) == 0;
	free(s);
	return r;
}

/*
 * The invariant of the whole suite: an account the DB calls done has the
 * source's content on the target, once.  Returns how many are done.
 */
static int assert_truthful(void)
{
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	ck_assert_ptr_nonnull(ss);
	ck_assert_ptr_nonnull(ds);
	int done = 0;
	for (size_t i = 0; i < NUSERS; i++) {
		ck_assert_int_eq(zsim_stat_acct(ds, "accounts", USERS[i], "duplicates"), 0);
		if (!state_is(USERS[i], "done"))
			continue;
		done++;
		const char *a = zsim_fingerprint(ss, USERS[i]);
		const char *b = zsim_fingerprint(ds, USERS[i]);
		ck_assert_msg(a && b && strcmp(a, b) == 0, "%s reported done but its content differs", USERS[i]);
	}
	ck_assert_int_eq(zsim_stat_int(ds, "duplicates"), 0);
	ck_assert_int_eq(zsim_stat_int(ss, "tokens_in_url"), 0);
	ck_assert_int_eq(zsim_stat_int(ds, "tokens_in_url"), 0);
	json_decref(ss);
	json_decref(ds);
	return done;
}

static void assert_all_done(void)
{
	ck_assert_int_eq(assert_truthful(), (int)NUSERS);
}

/*
 * What moved, per account in USERS order: { exports min, max, imports min,
 * max } as the simulators counted the requests (one refused or cut by a
 * fault counts too).  An account no fault hit moves exactly once ({1,1,1,1});
 * one a fault hit, once plus one repeat per fault that can reach it.  Every
 * import asked for resolve=skip (the job's): the simulator dedups like
 * Zimbra in every resolve mode, so the duplicate count alone cannot tell a
 * repeat with another resolve, nor an account moved twice.
 */
static void assert_transfers(const int want[NUSERS][4])
{
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	ck_assert_ptr_nonnull(ss);
	ck_assert_ptr_nonnull(ds);
	for (size_t i = 0; i < NUSERS; i++) {
		long long ex = zsim_stat_acct(ss, "exports", USERS[i], "count");
		long long im = zsim_stat_acct(ds, "imports", USERS[i], "count");
		char *path = xasprintf("imports/%s/resolve/skip", USERS[i]);
		long long skip = zsim_stat_int(ds, path);
		free(path);
		fprintf(stderr, "%s: exported %lld, imported %lld (%lld with skip)\n", USERS[i], ex, im, skip);
		ck_assert_msg(ex >= want[i][0] && ex <= want[i][1], "%s exported %lld times, want %d..%d",
			      USERS[i], ex, want[i][0], want[i][1]);
		ck_assert_msg(im >= want[i][2] && im <= want[i][3], "%s imported %lld times, want %d..%d",
			      USERS[i], im, want[i][2], want[i][3]);
		ck_assert_msg(skip == im, "%lld of the %lld imports of %s not with resolve=skip", im - skip, im,
			      USERS[i]);
	}
	json_decref(ss);
	json_decref(ds);
}

#define ONCE { 1, 1, 1, 1 }

/* Account failed: state 'failed', a reason in the DB containing `why`
 * (NULL = any), and the same in `zmbatch report --format json`. */
static void assert_failed_with_reason(const char *account, const char *why)
{
	ck_assert_msg(state_is(account, "failed"), "%s is not failed", account);
	char *e = db_last_error(account);
	ck_assert_msg(e && *e, "%s failed without a reason in the DB", account);
	if (why)
		ck_assert_msg(strcasestr(e, why) != NULL, "%s: reason '%s' does not mention '%s'", account, e, why);
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 30, "report", "-c", E.job, "--format", "json", (char *)NULL);
	ck_assert_int_eq(rc, 0);
	json_error_t je;
	json_t *r = json_loads(p.out, 0, &je);
	ck_assert_msg(r != NULL, "report is not JSON: %s", je.text);
	json_t *accts = json_object_get(r, "accounts"), *a;
	size_t i;
	bool seen = false;
	json_array_foreach(accts, i, a) {
		if (strcmp(json_string_value(json_object_get(a, "account")), account) != 0)
			continue;
		seen = true;
		ck_assert_str_eq(json_string_value(json_object_get(a, "state")), "failed");
		const char *re = json_string_value(json_object_get(a, "error"));
		ck_assert_msg(re && *re, "report has no error for %s", account);
		if (why)
			ck_assert_msg(strcasestr(re, why) != NULL, "report error '%s' lacks '%s'", re, why);
	}
	ck_assert_msg(seen, "%s missing from the report", account);
	json_decref(r);
	free(e);
	tu_proc_release(&p);
}

static void knobs(struct zsim *z, const char *json)
{
	json_t *r = zsim_post(z, "/zsim/knobs", json);
	ck_assert_msg(r != NULL, "knobs rejected: %s", json);
	json_decref(r);
}

static long long exports_of(const char *account)
{
	json_t *ss = zsim_stats(E.src);
	long long n = zsim_stat_acct(ss, "exports", account, "count");
	json_decref(ss);
	return n;
}

/* Wait until cond_sql (a count) is >= 1, at most timeout seconds; each(arg),
 * when given, runs before every look. */
static bool wait_db_each(double timeout, const char *sql, void (*each)(const char *), const char *arg)
{
	for (double t = 0; t < timeout; t += 0.05) {
		if (each)
			each(arg);
		if (access(E.db, F_OK) == 0 && db_int("%s", sql) >= 1)
			return true;
		tu_sleep(0.05);
	}
	return false;
}

static bool wait_db(double timeout, const char *sql)
{
	return wait_db_each(timeout, sql, NULL, NULL);
}

/* ---- the spool fsync rule ---- */

/*
 * An archive imported at once by the worker that exported it is not
 * fsync()ed; one that something durable depends on is, before that is
 * recorded: an archive left 'exported' for a later run (a stop request), and
 * a delta export (its new mark is recorded with it).  The test build logs each
 * fsync as "k path" (ZMBATCH_FSYNC_LOG; k = durable steps completed before it)
 * beside the step log "k what" (ZMBATCH_STEP_LOG).
 */
struct fsync_logs {
	char *fsyncs, *steps;
};

static void fsync_logs_init(struct fsync_logs *l, const char *tag)
{
	l->fsyncs = xasprintf("%s/%s.fsyncs", E.dir, tag);
	l->steps = xasprintf("%s/%s.steps", E.dir, tag);
}

static void fsync_logs_release(struct fsync_logs *l)
{
	free(l->fsyncs);
	free(l->steps);
}

/* the test build, run -c E.job [extra], logging into l, in the background */
static pid_t spawn_logged_run(const struct fsync_logs *l, const char *extra)
{
	char *out = xasprintf("%s/run.out", E.dir), *err = xasprintf("%s/run.err", E.dir);
	char *fe = xasprintf("ZMBATCH_FSYNC_LOG=%s", l->fsyncs);
	char *se = xasprintf("ZMBATCH_STEP_LOG=%s", l->steps);
	char *env[] = { fe, se, NULL };
	char *argv[] = { (char *)tu_zmbatch_hooks(), (char *)"run", (char *)"-c", E.job,
			 (char *)extra, NULL };
	pid_t pid = tu_spawn(argv, env, out, err);
	ck_assert_int_gt(pid, 0);
	free(out);
	free(err);
	free(fe);
	free(se);
	return pid;
}

/* Does the "k what" log text (fsync or step log) have the line "k what"?
 * k < 0: any k; the k found goes to *found (may be NULL). */
static bool log_has_line(const char *log, long k, const char *what, long *found)
{
	for (const char *l = log; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *sp = strchr(l, ' ');
		if (!sp)
			break;
		size_t n = strcspn(sp + 1, "\n");
		if (n == strlen(what) && !strncmp(sp + 1, what, n) && (k < 0 || atol(l) == k)) {
			if (found)
				*found = atol(l);
			return true;
		}
	}
	return false;
}

/* the archive `final` (its .part) was fsync()ed, and so was working_dir, and
 * the very next durable step is the rename: nothing was recorded before it
 * was durable */
static void assert_fsynced_before_recorded(const struct fsync_logs *l, const char *final)
{
	char *fl = tu_read(l->fsyncs), *sl = tu_read(l->steps);
	char *part = xasprintf("%s.part", final), *work = xasprintf("%s/work", E.dir);
	long k = -1;
	ck_assert_msg(log_has_line(fl, -1, part, &k), "%s was not fsync()ed; fsyncs:\n%s", part,
		      fl ? fl : "(none)");
	ck_assert_msg(log_has_line(fl, k, work, NULL), "working_dir not fsync()ed right after %s:\n%s",
		      part, fl);
	ck_assert_msg(log_has_line(sl, k + 1, "spool renamed", NULL), "after the fsync of %s (step %ld) "
		      "the next durable step is not its rename:\n%s", part, k, sl ? sl : "(no steps)");
	free(work);
	free(part);
	free(fl);
	free(sl);
}

START_TEST(test_spool_fsync_kept_archive)
{
	/* carol (~300 kB, the largest: first) exports slowly; the stop comes during it */
	knobs(E.src, "{\"bandwidth\":150000}");
	write_job(1, NULL);
	struct fsync_logs l;
	fsync_logs_init(&l, "stopped");
	pid_t pid = spawn_logged_run(&l, NULL);
	ck_assert_msg(wait_db(60, "SELECT count(*) FROM accounts WHERE state = 'exporting'"),
		      "no export started");
	kill(pid, SIGTERM);
	ck_assert_int_eq(wait_run(pid, 120), 75);
	/* the export in flight finished within the grace period and was kept */
	ck_assert_int_eq(db_int("SELECT count(*) FROM accounts WHERE state = 'exported'"), 1);
	char *final = NULL;
	for (size_t i = 0; i < NUSERS && !final; i++)
		if (state_is(USERS[i], "exported"))
			final = acct_text(USERS[i], "spool_path");
	ck_assert_ptr_nonnull(final);
	assert_fsynced_before_recorded(&l, final);
	free(final);
	fsync_logs_release(&l);
	/* and the next run imports it */
	knobs(E.src, "{\"bandwidth\":0}");
	ck_assert_int_eq(run_job(120), 0);
	assert_all_done();
}
END_TEST

START_TEST(test_spool_fsync_delta)
{
	write_job(1, "delta_overlap = \"0s\";");   /* one worker: the steps in one order */
	struct fsync_logs full, delta;
	fsync_logs_init(&full, "full");
	fsync_logs_init(&delta, "delta");
	ck_assert_int_eq(wait_run(spawn_logged_run(&full, NULL), 120), 0);
	/* a full pass imports every archive at once: none is fsync()ed */
	char *fl = tu_read(full.fsyncs);
	ck_assert_msg(fl == NULL || !*fl, "a full pass fsync()ed:\n%s", fl);
	free(fl);
	tu_sleep(1.1);   /* the new items' dates must be after the first pass's mark */
	json_decref(zsim_post(E.src, "/zsim/add-items", "{\"account\":\"alice@example.com\",\"n\":3}"));
	json_decref(zsim_post(E.src, "/zsim/add-items", "{\"account\":\"bob@example.com\",\"n\":2}"));
	ck_assert_int_eq(wait_run(spawn_logged_run(&delta, "--delta"), 120), 0);
	assert_all_done();
	/*
	 * A delta pass runs in steps (src/xfer/chunk.c): each step's archive is
	 * imported at once and the new mark is recorded only when every step is
	 * done, so nothing depends on an archive surviving: none is fsync()ed,
	 * and the new items arrived (assert_all_done compares the contents).
	 */
	char *dl = tu_read(delta.fsyncs);
	ck_assert_msg(dl == NULL || !*dl, "a delta pass fsync()ed:\n%s", dl);
	free(dl);
	ck_assert_int_eq(db_int("SELECT count(*) FROM accounts WHERE chunks_total > 0 AND"
				" chunks_done = chunks_total"), (long long)NUSERS);
	fsync_logs_release(&full);
	fsync_logs_release(&delta);
}
END_TEST

/* ---- HTTP status faults ---- */

START_TEST(test_http_500_503_retried)
{
	knobs(E.src, "{\"faults\":["
	      "{\"op\":\"export\",\"account\":\"alice@example.com\",\"action\":\"status\",\"status\":500,\"count\":1},"
	      "{\"op\":\"export\",\"account\":\"bob@example.com\",\"action\":\"status\",\"status\":503,\"count\":3},"
	      "{\"op\":\"soap\",\"request\":\"GetQuotaUsageRequest\",\"action\":\"status\",\"status\":500,\"count\":1}]}");
	/* and a SOAP "system failure" (service.FAILURE, HTTP 500) on the target's GetAccount
	 * (carol's: her import retries look her up; bob's backoff is timed below):
	 * Zimbra's catch-all transient error, retried like any 500 */
	knobs(E.dst, "{\"faults\":["
	      "{\"op\":\"import\",\"account\":\"carol@example.com\",\"action\":\"status\",\"status\":500,\"count\":1},"
	      "{\"op\":\"import\",\"account\":\"dave@example.com\",\"action\":\"status\",\"status\":503,\"count\":1},"
	      "{\"op\":\"soap\",\"request\":\"GetAccountRequest\",\"account\":\"carol@example.com\","
	      "\"action\":\"status\",\"status\":500,\"count\":2}]}");
	/* backoff base 1 s: a 500 waits [0.5, 1] s, then [1, 2] s...; a 503 twice that:
	 * [1, 2] s, [2, 4] s, [4, 8] s (full jitter in [d/2, d], max 8 s) */
	write_job(2, "retry_backoff = \"1s\"; retry_backoff_max = \"8s\"; max_attempts = 8;");
	int rc = run_job(120);
	ck_assert_msg(rc == 0, "exit %d", rc);
	assert_all_done();
	ck_assert_int_eq(db_int("SELECT count(*) FROM events WHERE message LIKE '%%service.FAILURE%%'"), 2);
	ck_assert_int_ge(exports_of("bob@example.com"), 4);
	/*
	 * 503 backs off longer: the gaps between bob's export requests (source's
	 * request log, request start times) are at least the 503 backoff's
	 * minimum, 1, 2 and 4 s, the 500 backoff's maximum.  Only lower bounds: a
	 * busy worker or machine makes a gap longer, never shorter.  Were 503
	 * treated like 500 (gaps of [0.5, 1], [1, 2], [2, 4] s), all three would
	 * have to land in the top 3 % of their jitter to pass.
	 */
	json_t *ss = zsim_stats(E.src);
	json_t *log = json_object_get(ss, "requests"), *e;
	size_t i;
	double t[8];
	int n = 0;
	json_array_foreach(log, i, e) {
		const char *acct = json_string_value(json_object_get(e, "account"));
		const char *m = json_string_value(json_object_get(e, "method"));
		if (acct && m && !strcmp(acct, "bob@example.com") && !strcmp(m, "GET") && n < 8)
			t[n++] = json_real_value(json_object_get(e, "t"));
	}
	json_decref(ss);
	ck_assert_int_eq(n, 4);
	for (int k = 1; k < 4; k++) {
		double want = 0.97 * (double)(1 << (k - 1));
		fprintf(stderr, "bob: retry %d after a 503 came %.2f s later (503 minimum %.0f s)\n", k,
			t[k] - t[k - 1], (double)(1 << (k - 1)));
		ck_assert_msg(t[k] - t[k - 1] >= want, "bob's retry %d after a 503 came %.2f s later, want >= %.2f s",
			      k, t[k] - t[k - 1], want);
	}
	ck_assert_int_ge(db_int("SELECT attempts FROM accounts WHERE account='alice@example.com'"), 2);
	ck_assert_int_ge(db_int("SELECT attempts FROM accounts WHERE account='carol@example.com'"), 2);
	/* alice: export 500 once; bob: export 503 three times; carol, dave: import 500 / 503
	 * once (from the spool file: not exported again) */
	static const int want[NUSERS][4] = { { 2, 2, 1, 1 }, { 4, 4, 1, 1 }, { 1, 1, 2, 2 }, { 1, 1, 2, 2 } };
	assert_transfers(want);
}
END_TEST

START_TEST(test_http_500_forever_fails)
{
	knobs(E.src, "{\"faults\":[{\"op\":\"export\",\"account\":\"alice@example.com\","
	      "\"action\":\"status\",\"status\":500,\"count\":-1}]}");
	write_job(2, "max_attempts = 2;");
	int rc = run_job(120);
	ck_assert_msg(rc == 1, "expected exit 1, got %d", rc);
	ck_assert_int_eq(assert_truthful(), (int)NUSERS - 1);
	assert_failed_with_reason("alice@example.com", "500");
	ck_assert_int_eq(exports_of("alice@example.com"), 2);
	json_t *ds = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(ds, "accounts", "alice@example.com", "items"), 0);
	json_decref(ds);
	static const int want[NUSERS][4] = { { 2, 2, 0, 0 }, ONCE, ONCE, ONCE };
	assert_transfers(want);
}
END_TEST

/* ---- token revoked while the run is going on ---- */

START_TEST(test_token_revoked_mid_run)
{
	/* dave, the last, is held 5 s at the start of his export: the revocation
	 * after the first account is done still finds work to cut, however late the
	 * test gets to it on a loaded machine */
	knobs(E.src, "{\"bandwidth\":250000,\"faults\":[{\"op\":\"export\",\"account\":\"dave@example.com\","
	      "\"action\":\"slow\",\"seconds\":5,\"count\":1}]}");
	write_job(1, "order = \"as-listed\";");
	pid_t pid = spawn_run();
	ck_assert_msg(wait_db(60, "SELECT count(*) FROM accounts WHERE state='done'"), "nothing got done");
	json_decref(zsim_post(E.src, "/zsim/revoke", "{}"));
	json_decref(zsim_post(E.dst, "/zsim/revoke", "{}"));
	int rc = wait_run(pid, 120);
	ck_assert_msg(rc == 0, "exit %d", rc);
	assert_all_done();
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	/* the revoked token was noticed (401 or AUTH_EXPIRED) and replaced by a new login */
	long long seen = zsim_stat_int(ss, "rest_status/401") + zsim_stat_int(ss, "soap_faults/service.AUTH_EXPIRED") +
			 zsim_stat_int(ds, "rest_status/401") + zsim_stat_int(ds, "soap_faults/service.AUTH_EXPIRED");
	ck_assert_msg(seen >= 1, "no request ever met the revoked token");
	ck_assert_int_ge(zsim_stat_int(ss, "auth_requests/ok") + zsim_stat_int(ds, "auth_requests/ok"), 3);
	/* a revoked token is not a failure of the account */
	ck_assert_int_eq(db_int("SELECT count(*) FROM accounts WHERE state='failed'"), 0);
	json_decref(ss);
	json_decref(ds);
	/* one worker: the revocation can cut one account's export or import */
	static const int want[NUSERS][4] = { { 1, 2, 1, 2 }, { 1, 2, 1, 2 }, { 1, 2, 1, 2 }, { 1, 2, 1, 2 } };
	assert_transfers(want);
}
END_TEST

/* ---- connection resets, truncated gzip ---- */

static void resets(const char *transfer)
{
	knobs(E.src, "{\"faults\":["
	      "{\"op\":\"export\",\"account\":\"alice@example.com\",\"action\":\"reset\",\"after_bytes\":20000,\"count\":1},"
	      "{\"op\":\"export\",\"account\":\"carol@example.com\",\"action\":\"reset\",\"after_bytes\":150000,\"count\":1}]}");
	knobs(E.dst, "{\"faults\":["
	      "{\"op\":\"import\",\"account\":\"bob@example.com\",\"action\":\"reset\",\"after_bytes\":5000,\"count\":1},"
	      "{\"op\":\"import\",\"account\":\"carol@example.com\",\"action\":\"reset\",\"after_bytes\":100000,\"count\":1}]}");
	char *mig = xasprintf("transfer = \"%s\";", transfer);
	write_job(2, mig);
	free(mig);
	int rc = run_job(120);
	ck_assert_msg(rc == 0, "exit %d", rc);
	assert_all_done();
	ck_assert_int_ge(exports_of("alice@example.com"), 2);
	json_t *ds = zsim_stats(E.dst);
	ck_assert_int_ge(zsim_stat_acct(ds, "imports", "bob@example.com", "count"), 2);
	json_decref(ds);
	/* spool: a cut export is exported again, a cut import imported again from the file.
	 * stream: either cut breaks both, but the other half is counted only if it had
	 * begun and the simulator noticed the dead connection before the stats: the cut
	 * side is exact, the other one a range.  carol has one of each: usually her
	 * import's (at 100000 bytes) fires first and her export's on the retry, but
	 * the export may run ahead through the ring buffer and both cuts land in one
	 * attempt, whose import the simulator may not have counted yet: 1..3. */
	static const int spool[NUSERS][4] = { { 2, 2, 1, 1 }, { 1, 1, 2, 2 }, { 2, 2, 2, 2 }, ONCE };
	static const int stream[NUSERS][4] = { { 2, 2, 1, 2 }, { 1, 2, 2, 2 }, { 2, 3, 1, 3 }, ONCE };
	assert_transfers(strcmp(transfer, "stream") ? spool : stream);
}

START_TEST(test_reset_mid_export_import_spool)
{
	resets("spool");
}
END_TEST

START_TEST(test_reset_mid_export_import_stream)
{
	resets("stream");
}
END_TEST

START_TEST(test_truncated_gzip_spool)
{
	/* once for alice (exported again, then done); always for bob (fails, never imported) */
	knobs(E.src, "{\"faults\":["
	      "{\"op\":\"export\",\"account\":\"alice@example.com\",\"action\":\"truncate\",\"after_bytes\":3000,\"count\":1},"
	      "{\"op\":\"export\",\"account\":\"bob@example.com\",\"action\":\"truncate\",\"after_bytes\":3000,\"count\":-1}]}");
	write_job(2, "max_attempts = 2;");
	int rc = run_job(120);
	ck_assert_msg(rc == 1, "expected exit 1, got %d", rc);
	ck_assert_int_eq(assert_truthful(), (int)NUSERS - 1);
	ck_assert_int_ge(exports_of("alice@example.com"), 2);
	assert_failed_with_reason("bob@example.com", NULL);
	json_t *ds = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(ds, "imports", "bob@example.com", "count"), 0);
	json_decref(ds);
	static const int want[NUSERS][4] = { { 2, 2, 1, 1 }, { 2, 2, 0, 0 }, ONCE, ONCE };
	assert_transfers(want);
}
END_TEST

START_TEST(test_truncated_gzip_stream)
{
	knobs(E.src, "{\"faults\":["
	      "{\"op\":\"export\",\"account\":\"alice@example.com\",\"action\":\"truncate\",\"after_bytes\":3000,\"count\":1},"
	      "{\"op\":\"export\",\"account\":\"bob@example.com\",\"action\":\"truncate\",\"after_bytes\":3000,\"count\":-1}]}");
	write_job(2, "max_attempts = 2; transfer = \"stream\";");
	int rc = run_job(120);
	ck_assert_msg(rc == 1, "expected exit 1, got %d", rc);
	ck_assert_int_eq(assert_truthful(), (int)NUSERS - 1);
	assert_failed_with_reason("bob@example.com", NULL);
	/* a truncated stream reaches the target as a damaged archive: both counted */
	static const int want[NUSERS][4] = { { 2, 2, 2, 2 }, { 2, 2, 2, 2 }, ONCE, ONCE };
	assert_transfers(want);
}
END_TEST

/*
 * A close-delimited export (no chunking) whose connection closes right after
 * the headers: curl sees a clean 200 with no body.  Only 204 means "nothing
 * to export", so this is retried, never an account done with nothing moved.
 */
START_TEST(test_empty_200_stream)
{
	knobs(E.src, "{\"export_close_delimited\":true,\"faults\":["
	      "{\"op\":\"export\",\"account\":\"carol@example.com\",\"action\":\"truncate\","
	      "\"after_bytes\":0,\"count\":1}]}");
	write_job(2, "transfer = \"stream\";");
	int rc = run_job(120);
	ck_assert_msg(rc == 0, "exit %d", rc);
	assert_all_done();
	ck_assert_int_ge(db_int("SELECT attempts FROM accounts WHERE account='carol@example.com'"), 2);
	static const int want[NUSERS][4] = { ONCE, ONCE, { 2, 2, 1, 2 }, ONCE };
	assert_transfers(want);
}
END_TEST

/* ---- slow first byte, server down then back ---- */

START_TEST(test_slow_first_byte)
{
	knobs(E.src, "{\"faults\":[{\"op\":\"export\",\"account\":\"alice@example.com\","
	      "\"action\":\"slow\",\"seconds\":5,\"count\":1}]}");
	write_job(2, "low_speed_time = \"2s\"; low_speed_limit = 1;");
	time_t t0 = time(NULL);
	int rc = run_job(120);
	ck_assert_msg(rc == 0, "exit %d", rc);
	assert_all_done();
	/* the stalled request never got its headers, so zsim counts one export: count attempts */
	ck_assert_int_ge(db_int("SELECT attempts FROM accounts WHERE account='alice@example.com'"), 2);
	/* gave up on the stalled export instead of waiting the whole 5 s */
	ck_assert_msg(time(NULL) - t0 < 30, "run took %ld s", (long)(time(NULL) - t0));
}
END_TEST

START_TEST(test_server_down_then_back)
{
	/* the first export starts a 3 s outage of the source; later one of the target */
	knobs(E.src, "{\"faults\":[{\"op\":\"export\",\"action\":\"down\",\"seconds\":3,\"count\":1}]}");
	knobs(E.dst, "{\"faults\":[{\"op\":\"import\",\"account\":\"dave@example.com\","
	      "\"action\":\"down\",\"seconds\":2,\"count\":1}]}");
	/* backoff is 0.5-2 s here, so 6 attempts could all fall inside the two
	 * outages (3 s + 2 s) on a busy machine: allow enough to outlast them */
	write_job(2, "max_attempts = 12;");
	int rc = run_job(120);
	ck_assert_msg(rc == 0, "exit %d", rc);
	assert_all_done();
	ck_assert_int_ge(db_int("SELECT max(attempts) FROM accounts"), 2);
}
END_TEST

/* ---- target account deleted mid-run ---- */

START_TEST(test_target_deleted_mid_run)
{
	/* bob's export stalls 3 s (under the low-speed limit), the admin deletes his target meanwhile */
	knobs(E.src, "{\"faults\":[{\"op\":\"export\",\"account\":\"bob@example.com\","
	      "\"action\":\"slow\",\"seconds\":3,\"count\":1}]}");
	write_job(2, "max_attempts = 3;");
	pid_t pid = spawn_run();
	ck_assert_msg(wait_db(60, "SELECT count(*) FROM accounts WHERE account='bob@example.com' AND state='exporting'"),
		      "bob never started exporting");
	/* claimed; his target's check (a GetAccount, paced by max_requests_per_second)
	 * comes first: delete it once the target has answered that, not before (a
	 * fixed wait was once too short on a loaded machine) */
	bool asked = false;
	for (int i = 0; i < 1200 && !asked; i++) {
		json_t *ds = zsim_stats(E.dst), *r;
		size_t k;
		json_array_foreach(json_object_get(ds, "requests"), k, r) {
			const char *soap = json_string_value(json_object_get(r, "soap"));
			const char *about = json_string_value(json_object_get(r, "about"));
			asked |= soap && about && !strcmp(soap, "GetAccountRequest") &&
				 !strncmp(about, "bob@example.com ", 16);
		}
		json_decref(ds);
		if (!asked)
			tu_sleep(0.05);
	}
	ck_assert_msg(asked, "the target was never asked about bob");
	json_t *r = zsim_post(E.dst, "/zsim/delete-account", "{\"name\":\"bob@example.com\"}");
	ck_assert(json_is_true(json_object_get(r, "deleted")));
	json_decref(r);
	int rc = wait_run(pid, 120);
	ck_assert_msg(rc == 1, "expected exit 1, got %d", rc);
	ck_assert_int_eq(assert_truthful(), (int)NUSERS - 1);
	assert_failed_with_reason("bob@example.com", NULL);
	/* bob: up to max_attempts exports, never an import into a deleted account */
	static const int want[NUSERS][4] = { ONCE, { 1, 3, 0, 0 }, ONCE, ONCE };
	assert_transfers(want);
}
END_TEST

/* ---- spool archive damaged while the run was down (a power cut) ---- */

/*
 * An archive being imported is not fsync()ed (it normally never needs the
 * disk).  After a power cut it may be cut short; the next run must check it
 * before sending it, export again, and never import the damaged copy.
 * Here: the run is killed while alice's import hangs, her spool file is
 * truncated, and the next run re-exports her.  (A delta pass runs in steps
 * and never leaves an archive for a later run: e2e_chunks covers a pass in
 * steps interrupted and resumed.)
 */
START_TEST(test_damaged_spool_after_crash)
{
	bool delta = _i == 1;
	write_job(1, "order = \"as-listed\"; delta_overlap = \"0s\";");
	if (delta) {
		ck_assert_int_eq(run_job(120), 0);
		tu_sleep(1.1);
		json_decref(zsim_post(E.src, "/zsim/add-items", "{\"account\":\"alice@example.com\",\"n\":4}"));
	}
	knobs(E.dst, "{\"faults\":[{\"op\":\"import\",\"account\":\"alice@example.com\","
	      "\"action\":\"slow\",\"seconds\":30,\"count\":1}]}");
	char *out = xasprintf("%s/run.out", E.dir), *err = xasprintf("%s/run.err", E.dir);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job,
			 delta ? (char *)"--delta" : NULL, NULL };
	pid_t pid = tu_spawn(argv, NULL, out, err);
	ck_assert_int_gt(pid, 0);
	free(out);
	free(err);
	ck_assert_msg(wait_db(60, "SELECT count(*) FROM accounts WHERE account='alice@example.com' "
			      "AND state='importing'"), "alice never started importing");
	kill(pid, SIGKILL);
	wait_run(pid, 10);
	knobs(E.dst, "{\"faults\":[]}");

	char *spool = acct_text("alice@example.com", "spool_path");
	ck_assert_msg(spool && *spool, "no spool file recorded for alice");
	struct stat sb;
	ck_assert_int_eq(stat(spool, &sb), 0);
	ck_assert_int_gt(sb.st_size, 2000);
	ck_assert_int_eq(truncate(spool, sb.st_size / 2), 0);
	long long exports = exports_of("alice@example.com");

	int rc = run_job(120);
	ck_assert_msg(rc == 0, "exit %d", rc);
	assert_all_done();   /* in the delta case: the 4 new items arrived */
	ck_assert_int_eq(exports_of("alice@example.com"), exports + 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id "
				"WHERE a.account = 'alice@example.com' AND e.message LIKE '%%damaged%%'"), 1);
	free(spool);
}
END_TEST

/* Restart the simulators with an uncompressed source: archive size ~ mailbox
 * size, for tests that size a filesystem against it. */
static void restart_sims_uncompressed(void)
{
	teardown();
	memset(&E, 0, sizeof E);
	char *src_cfg = xasprintf("{\"name\":\"src\",\"knobs\":{\"gzip_level\":0},%s",
			     strstr(SRC_CFG, "\"domains\""));
	start_sims(src_cfg, DST_CFG);
	free(src_cfg);
}

/* ---- disk full in working_dir (a real tmpfs) ---- */

/*
 * Two accounts, a spool disk that holds one big archive plus a little: while
 * the big archive waits on disk for its (slow) import, the small account does
 * not fit yet, but it will once that import is done.  It must wait (no
 * attempt counted), not fail with "not enough space".
 */
START_TEST(test_spool_waits_for_import)
{
	restart_sims_uncompressed();
	json_decref(zsim_post(E.src, "/zsim/add-account",
			      "{\"name\":\"big@example.com\",\"items\":60,\"item_size\":20000}"));
	json_decref(zsim_post(E.src, "/zsim/add-account",
			      "{\"name\":\"small@example.com\",\"items\":20,\"item_size\":20000}"));
	json_decref(zsim_post(E.dst, "/zsim/add-account", "{\"name\":\"big@example.com\"}"));
	json_decref(zsim_post(E.dst, "/zsim/add-account", "{\"name\":\"small@example.com\"}"));
	knobs(E.dst, "{\"faults\":[{\"op\":\"import\",\"account\":\"big@example.com\","
	      "\"action\":\"slow\",\"seconds\":4,\"count\":1}]}");
	/* big: 1.2 MB (archive ~1.3 MB, needs 2.4 MB with margin); small: needs 1.5 MB */
	if (!mount_tmpfs("work", "2600k", false))
		return;
	char *work = xasprintf("%s/work", E.dir);
	write_job_ex(2, "max_attempts = 1; accounts = [ \"big@example.com\", \"small@example.com\" ];",
		     NULL, work);
	int rc = run_job(120);
	ck_assert_msg(rc == 0, "exit %d", rc);
	ck_assert(state_is("big@example.com", "done"));
	ck_assert(state_is("small@example.com", "done"));
	ck_assert_int_eq(db_int("SELECT attempts FROM accounts WHERE account='small@example.com'"), 1);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	ck_assert_str_eq(zsim_fingerprint(ss, "small@example.com"), zsim_fingerprint(ds, "small@example.com"));
	ck_assert_str_eq(zsim_fingerprint(ss, "big@example.com"), zsim_fingerprint(ds, "big@example.com"));
	json_decref(ss);
	json_decref(ds);
	free(work);
}
END_TEST

START_TEST(test_disk_full_working_dir)
{
	/* tiny: 1200 items of ~300 bytes: the estimate (size + 10% + 1 MiB) fits
	 * in 1.6 MB, the archive (two tar entries per item) does not */
	restart_sims_uncompressed();
	json_decref(zsim_post(E.src, "/zsim/add-account",
			      "{\"name\":\"tiny@example.com\",\"items\":1200,\"item_size\":300}"));
	json_decref(zsim_post(E.dst, "/zsim/add-account", "{\"name\":\"tiny@example.com\"}"));
	if (!mount_tmpfs("work", "1600k", false))
		return;
	char *work = xasprintf("%s/work", E.dir);
	write_job_ex(1, "max_attempts = 2; accounts = [ \"tiny@example.com\" ];", NULL, work);

	int rc = run_job(120);
	ck_assert_msg(rc == 1, "expected exit 1, got %d", rc);
	assert_failed_with_reason("tiny@example.com", "space");
	json_t *ds = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(ds, "imports", "tiny@example.com", "count"), 0);
	json_decref(ds);
	/* nothing left behind on the full disk */
	char *cmd = xasprintf("test -z \"$(ls -A '%s')\"", work);
	ck_assert_msg(system(cmd) == 0, "files left in the full working_dir");
	free(cmd);

	/* the admin grows the filesystem and retries the failed account */
	remount("work", "size=16m,mode=0700", false);
	struct tu_proc p;
	rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, "--retry-failed", (char *)NULL);
	tu_proc_release(&p);
	ck_assert_msg(rc == 0, "retry exit %d", rc);
	ck_assert(state_is("tiny@example.com", "done"));
	json_t *ss = zsim_stats(E.src);
	ds = zsim_stats(E.dst);
	ck_assert_str_eq(zsim_fingerprint(ss, "tiny@example.com"), zsim_fingerprint(ds, "tiny@example.com"));
	ck_assert_int_eq(zsim_stat_acct(ds, "accounts", "tiny@example.com", "duplicates"), 0);
	json_decref(ss);
	json_decref(ds);
	free(work);
}
END_TEST

START_TEST(test_disk_filled_during_export)
{
	/* another program fills the disk while carol's 300 KB export is being written;
	 * once the export has failed the space comes back and the retry succeeds */
	if (!mount_tmpfs("work", "3m", false))
		return;
	/* 100 kB/s: the export takes 3 s, time enough to fill the disk under it */
	knobs(E.src, "{\"bandwidth\":100000}");
	char *work = xasprintf("%s/work", E.dir);
	char *filler = xasprintf("%s/filler", work);
	write_job_ex(1, "order = \"largest-first\";", NULL, work);
	pid_t pid = spawn_run();
	char *part = xasprintf("%s/carol@example.com.tgz.part", work);
	bool seen = false;
	for (int i = 0; i < 600 && !seen; i++) {
		seen = access(part, F_OK) == 0;
		if (!seen)
			tu_sleep(0.02);
	}
	ck_assert_msg(seen, "carol's spool file never appeared");
	/* the filler keeps the disk full until carol's export has failed: space freed
	 * meanwhile (alice's archive, removed once imported while carol's export
	 * runs) is taken again, or carol's export could finish in it (seen on a
	 * loaded machine, the archive freed just after the first fill) */
	bool got = wait_db_each(60, "SELECT count(*) FROM accounts WHERE account='carol@example.com' "
				"AND last_error LIKE '%space%'", fill_disk, filler);
	if (!got)
		wait_run(pid, 0.1);   /* its log, to tell why */
	ck_assert_msg(got, "no disk-full error recorded for carol");
	/* and the export itself named it: not only a later attempt's preflight */
	ck_assert_int_ge(db_int("SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id "
				"WHERE a.account = 'carol@example.com' AND e.message LIKE "
				"'%%cannot write spool file: No space left on device%%'"), 1);
	unlink(filler);
	int rc = wait_run(pid, 120);
	ck_assert_msg(rc == 0, "exit %d", rc);
	assert_all_done();
	ck_assert_int_ge(exports_of("carol@example.com"), 2);
	free(part);
	free(filler);
	free(work);
}
END_TEST

/* ---- the state DB: read-only path, busy, full ---- */

START_TEST(test_state_db_readonly)
{
	if (!mount_tmpfs("ro", "1m", true))
		return;
	free(E.db);
	E.db = xasprintf("%s/ro/state.db", E.dir);
	write_job(2, NULL);
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc > 0 && rc < 128, "exit %d", rc);
	ck_assert_msg(tu_contains(p.err, "/ro/state.db"), "the error does not name the DB");
	tu_proc_release(&p);
	json_t *ss = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_int(ss, "rest_status/200"), 0);  /* nothing exported without a state DB */
	json_decref(ss);

	/* a DB that exists, then becomes read-only: refused cleanly, content intact */
	remount("ro", "size=1m,mode=0700", false);
	rc = run_job(120);
	ck_assert_msg(rc == 0, "exit %d", rc);
	assert_all_done();
	remount("ro", "size=1m,mode=0700", true);
	rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc > 0 && rc < 128, "run on a read-only DB: exit %d", rc);
	ck_assert_msg(tu_contains(p.err, "state.db"), "the error does not name the DB");
	tu_proc_release(&p);
	rc = e2e_zmbatch(&p, 60, "status", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc >= 0 && rc < 128, "status on a read-only DB crashed: %d", rc);
	tu_proc_release(&p);
}
END_TEST

/* Names of the finished archives (*.tgz) in dir, one per line (malloc'd). */
static char *archives_in(const char *dir)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n > 4 && !strcmp(de->d_name + n - 4, ".tgz"))
			fprintf(f, "%s\n", de->d_name);
	}
	if (d)
		closedir(d);
	fclose(f);
	return out;
}

/*
 * Another process holds SQLite's write lock mid-run, and holds it until a
 * worker has finished an export (its archive renamed to *.tgz) and so has a
 * state change to record, and 2 s more: the run must wait for the lock
 * (busy timeout 10 s) and carry on, not count an attempt or stop.  While the lock is held
 * the DB does not move (the holder really holds it); after, the run writes
 * again and ends with every account done, each moved once.
 */
START_TEST(test_sqlite_busy_other_process)
{
	knobs(E.src, "{\"bandwidth\":300000}");
	write_job(2, NULL);
	pid_t pid = spawn_run();
	ck_assert_msg(wait_db(60, "SELECT count(*) FROM accounts WHERE state IN ('exporting','importing')"),
		      "nothing started");
	int acq[2], rel[2];
	ck_assert_int_eq(pipe(acq), 0);
	ck_assert_int_eq(pipe(rel), 0);
	pid_t holder = fork();
	ck_assert_int_ge(holder, 0);
	if (holder == 0) {
		close(acq[0]);
		close(rel[1]);
		alarm(60);   /* the parent died or failed: let go */
		sqlite3 *db = NULL;
		int ok = sqlite3_open(E.db, &db) == SQLITE_OK;
		sqlite3_busy_timeout(db, 10000);
		ok = ok && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
		ok = ok && sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS zz_busy(x); INSERT INTO zz_busy VALUES(1)",
					NULL, NULL, NULL) == SQLITE_OK;
		char c = ok ? 'y' : 'n';
		ok = write(acq[1], &c, 1) == 1 && ok;
		ok = read(rel[0], &c, 1) == 1 && ok;   /* until the parent says so */
		ok = sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK && ok;
		sqlite3_close(db);
		_exit(ok ? 0 : 1);
	}
	close(acq[1]);
	close(rel[0]);
	char c = 0;
	ck_assert_int_eq(read(acq[0], &c, 1), 1);
	ck_assert_msg(c == 'y', "the holder could not take the write lock");
	long long ev0 = db_int("SELECT max(id) FROM events");
	char *work = xasprintf("%s/work", E.dir);
	char *before = archives_in(work), *now = NULL;
	bool fresh = false;
	for (int i = 0; i < 1200 && !fresh; i++) {
		free(now);
		now = archives_in(work);
		for (const char *l = now; *l && !fresh; l = strchr(l, '\n') + 1) {
			size_t n = (size_t)(strchr(l, '\n') - l);
			char *name = xasprintf("%.*s\n", (int)n, l);
			fresh = strstr(before, name) == NULL;
			free(name);
		}
		if (!fresh)
			tu_sleep(0.05);
	}
	ck_assert_msg(fresh, "no export finished while the lock was held");
	/* the fault itself: the worker with news to record is kept waiting 2 s more
	 * (not a wait for a condition: a shorter busy timeout would fail here) */
	tu_sleep(2.0);
	/* the DB stood still while the worker with news waited for it */
	ck_assert_int_eq(db_int("SELECT max(id) FROM events"), ev0);
	ck_assert_int_eq(write(rel[1], "x", 1), 1);
	close(rel[1]);
	close(acq[0]);
	ck_assert_int_eq(tu_wait(holder, 30), 0);
	int rc = wait_run(pid, 120);
	ck_assert_msg(rc == 0, "exit %d", rc);
	assert_all_done();
	ck_assert_int_gt(db_int("SELECT max(id) FROM events"), ev0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM accounts WHERE attempts > 1"), 0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM events WHERE level <> 'info'"), 0);
	static const int want[NUSERS][4] = { ONCE, ONCE, ONCE, ONCE };
	assert_transfers(want);
	free(before);
	free(now);
	free(work);
}
END_TEST

START_TEST(test_sqlite_full)
{
	/* the state DB's filesystem fills up during the run */
	if (!mount_tmpfs("dbfs", "2m", false))
		return;
	free(E.db);
	E.db = xasprintf("%s/dbfs/state.db", E.dir);
	char *filler = xasprintf("%s/dbfs/filler", E.dir);
	/* dave, the last, is held 5 s: the run is not over when the disk fills */
	knobs(E.src, "{\"bandwidth\":250000,\"faults\":[{\"op\":\"export\",\"account\":\"dave@example.com\","
	      "\"action\":\"slow\",\"seconds\":5,\"count\":1}]}");
	write_job(1, "order = \"as-listed\";");
	pid_t pid = spawn_run();
	ck_assert_msg(wait_db(60, "SELECT count(*) FROM accounts WHERE state='done'"), "nothing got done");
	fill_disk(filler);
	int rc = wait_run(pid, 120);
	ck_assert_msg(rc == 75, "exit %d with a full state DB, want 75 (-1: still running)", rc);
	char *ep = xasprintf("%s/run.err", E.dir);
	char *err = tu_read(ep);
	ck_assert_msg(tu_contains(err, "disk full") || tu_contains(err, "full"), "no disk-full message");
	free(err);
	free(ep);
	assert_truthful();
	/* space back: the next run finishes the job, nothing twice */
	unlink(filler);
	knobs(E.src, "{\"bandwidth\":0}");
	rc = run_job(120);
	ck_assert_msg(rc == 0, "exit %d after the disk was freed", rc);
	assert_all_done();
	/* one worker: at most the account in flight when the DB filled moves again */
	static const int want[NUSERS][4] = { { 1, 2, 1, 2 }, { 1, 2, 1, 2 }, { 1, 2, 1, 2 }, { 1, 2, 1, 2 } };
	assert_transfers(want);
	free(filler);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_faults");
	TCase *tc = tcase_create("faults");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	/* FAULTS_ONLY=test_name runs one test (debugging) */
	const char *only = getenv("FAULTS_ONLY");
#define ADD(t) do { if (!only || !strcmp(only, #t)) tcase_add_test(tc, t); } while (0)
	ADD(test_http_500_503_retried);
	ADD(test_http_500_forever_fails);
	ADD(test_token_revoked_mid_run);
	ADD(test_reset_mid_export_import_spool);
	ADD(test_reset_mid_export_import_stream);
	ADD(test_truncated_gzip_spool);
	ADD(test_truncated_gzip_stream);
	ADD(test_empty_200_stream);
	ADD(test_slow_first_byte);
	ADD(test_server_down_then_back);
	ADD(test_target_deleted_mid_run);
	if (!only || !strcmp(only, "test_damaged_spool_after_crash"))
		tcase_add_loop_test(tc, test_damaged_spool_after_crash, 0, 1);
	ADD(test_disk_full_working_dir);
	ADD(test_spool_waits_for_import);
	ADD(test_disk_filled_during_export);
	ADD(test_state_db_readonly);
	ADD(test_sqlite_busy_other_process);
	ADD(test_sqlite_full);
	ADD(test_spool_fsync_kept_archive);
	ADD(test_spool_fsync_delta);
#undef ADD
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
