/*
 * check_e2e_crash.c - crash-point enumeration of a migration (issue 7).
 *
 * bin/zmbatch calls crashpoint() after every durable step (state COMMIT,
 * spool rename/move/removal).  With ZMBATCH_STEP_LOG=F it appends "k what"
 * per step, with ZMBATCH_CRASH_AT=k it _exit(99)s right after step k.
 *
 * For a small job (a mailbox with mail in two folders + an empty one) in
 * spool mode (archives kept in success_dir, and not) and in stream mode:
 *   1. an uninterrupted run counts the steps N and gives the reference DB;
 *   2. for every k in 1..N, on fresh target mailboxes and a fresh state DB
 *      and spool tree: run with a crash at k (exit 99), run again (exit 0),
 *      then assert the target equals the source (zsim fingerprints), no
 *      duplicates, each account exported and imported once plus at most
 *      one repeat per crash that left it in flight, every import with
 *      resolve=skip (assert_migrated), no stray spool file, the final DB equal to the
 *      reference modulo timestamps/run ids, and that one more run exports
 *      and imports nothing.
 *
 * "Equal DB": accounts (state, attempts, bytes, size, errors, spool_path
 * cleared, sync_mark set, no owner, no backoff), stages, meta keys, server
 * roles.  accounts.attempts is counted when an attempt ends, so a crash
 * does not count one; stages.attempts is counted when a stage starts, so a
 * stage the crash caught 'running' has exactly one start more than the
 * reference, which is what the comparison expects.  The crashed run itself
 * stays in `runs` without an exit status.
 *
 * One worker thread: with several, which durable step is "the k-th" depends
 * on thread scheduling, so a k would not name the same point from run to
 * run and some points could be missed; with one the step order is the same
 * in every run (the step names of the crashed run are checked against the
 * reference run's to prove it).
 *
 * test_crash_during_recovery crashes twice: first where an account is in
 * flight, then the run that recovers from it, at each of its steps up to
 * the one after its first claim (crash_during_recovery()).
 * test_two_workers_crash: threads = 2 after all, with a throttled source
 * that fixes the order of the few steps it crashes at, while both workers
 * are busy (two_workers()).
 *
 * The simulators are started once per test; between two k the target
 * mailboxes are deleted and created again (/zsim/delete-account +
 * /zsim/add-account: same zimbraId, empty) and both sims' counters reset.
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct env {
	char *dir;
	char *bin;        /* private copy of the binary under test */
	struct zsim_pki *pki;
	struct zsim *src;
	struct zsim *dst;
};

static struct env E;

/*
 * The smallest job that still has a mailbox with mail (in two folders) and
 * an empty one: every k costs three runs, the enumeration stays short.
 */
static const char *SRC_CFG =
	"{\"name\":\"src\",\"domains\":[{\"name\":\"example.com\",\"accounts\":["
	"{\"name\":\"alice@example.com\",\"items\":5,\"item_size\":[300,2000],"
	"\"folders\":[\"Inbox\",\"Sent\"]},"
	"{\"name\":\"empty@example.com\"}]}]}";

static const char *DST_CFG =
	"{\"name\":\"dst\",\"domains\":[{\"name\":\"example.net\",\"accounts\":["
	"{\"name\":\"alice@example.net\"},{\"name\":\"empty@example.net\"}]}]}";

static const char *USERS[][2] = {
	{ "alice@example.com", "alice@example.net" },
	{ "empty@example.com", "empty@example.net" },
};
#define NUSERS (sizeof USERS / sizeof *USERS)

static void setup(void)
{
	memset(&E, 0, sizeof E);
	E.dir = tu_tmpdir("crash");
	ck_assert_ptr_nonnull(E.dir);
	E.pki = zsim_pki_new(NULL);
	ck_assert_msg(E.pki != NULL, "cannot make test certificates");
	struct zsim_opts so = { .name = "src", .config_json = SRC_CFG, .pki = E.pki };
	struct zsim_opts dopt = { .name = "dst", .config_json = DST_CFG, .pki = E.pki };
	E.src = zsim_start(&so);
	ck_assert_msg(E.src != NULL, "source simulator did not start");
	E.dst = zsim_start(&dopt);
	ck_assert_msg(E.dst != NULL, "target simulator did not start");
	free(tu_write(E.dir, "src.pw", "test123\n", 0600));
	free(tu_write(E.dir, "dst.pw", "test123\n", 0600));
	/*
	 * A private copy: every run of the enumeration uses the same binary,
	 * even when the test build is relinked meanwhile (shared work trees).
	 */
	char *cmd;
	if (asprintf(&E.bin, "%s/zmbatch", E.dir) < 0 ||
	    asprintf(&cmd, "cp '%s' '%s'", tu_zmbatch_hooks(), E.bin) < 0)
		abort();
	ck_assert_msg(system(cmd) == 0, "cannot copy %s", tu_zmbatch_hooks());
	free(cmd);
}

static void teardown(void)
{
	zsim_stop(E.src);
	zsim_stop(E.dst);
	zsim_pki_free(E.pki);
	tu_rmrf(E.dir);
	free(E.dir);
	free(E.bin);
	memset(&E, 0, sizeof E);
}

/* One attempt's private tree: job file, DB, spool dirs, step log. */
struct trial {
	char *dir;
	char *job;
	char *db;
	char *steps;
};

static void trial_new(struct trial *t, const char *tag, bool stream, bool keep_success, int threads)
{
	memset(t, 0, sizeof *t);
	if (asprintf(&t->dir, "%s/%s", E.dir, tag) < 0)
		abort();
	tu_rmrf(t->dir);
	ck_assert_int_eq(mkdir(t->dir, 0700), 0);
	if (asprintf(&t->db, "%s/state.db", t->dir) < 0 || asprintf(&t->steps, "%s/steps", t->dir) < 0)
		abort();
	char *text;
	if (asprintf(&text,
		     "job = \"crash\";\n"
		     "source = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		     "  admin_password_file = \"%s/src.pw\"; ca_file = \"%s\"; };\n"
		     "target = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		     "  admin_password_file = \"%s/dst.pw\"; ca_file = \"%s\"; };\n"
		     "migration = {\n"
		     "  domains = [ \"example.com\" ];\n"
		     "  domain_map = [ \"example.com=example.net\" ];\n"
		     "  threads = %d;\n"
		     "  transfer = \"%s\";\n"
		     "  keep_success_files = %s;\n"
		     "  working_dir = \"%s/work\"; success_dir = \"%s/success\"; failed_dir = \"%s/failed\";\n"
		     "  retry_backoff = \"1s\"; retry_backoff_max = \"1s\"; max_attempts = 3;\n"
		     "};\n"
		     "state = { db = \"%s\"; };\n"
		     "log = { dir = \"%s/log\"; level = \"debug\"; };\n",
		     E.src->port, E.dir, E.pki->ca_file, E.dst->port, E.dir, E.pki->ca_file, threads,
		     stream ? "stream" : "spool", keep_success ? "true" : "false",
		     t->dir, t->dir, t->dir, t->db, t->dir) < 0)
		abort();
	t->job = tu_write(t->dir, "job.cfg", text, 0600);
	free(text);
}

static void trial_free(struct trial *t)
{
	if (t->dir && getenv("ZMB_KEEP_TMP") == NULL)
		tu_rmrf(t->dir);
	free(t->dir);
	free(t->job);
	free(t->db);
	free(t->steps);
	memset(t, 0, sizeof *t);
}

/* the test build's zmbatch run -c job, with ZMBATCH_CRASH_AT=k (k > 0) and/or a step log. */
static int run_job(const struct trial *t, long k, bool step_log, const char *what)
{
	char *argv[] = { E.bin, (char *)"run", (char *)"-c", t->job, NULL };
	char *env[3] = { NULL, NULL, NULL };
	int ne = 0;
	if (k > 0 && asprintf(&env[ne++], "ZMBATCH_CRASH_AT=%ld", k) < 0)
		abort();
	if (step_log && asprintf(&env[ne++], "ZMBATCH_STEP_LOG=%s", t->steps) < 0)
		abort();
	struct tu_proc p;
	int rc = tu_run(argv, env, 60, &p);
	if (rc != 0 && !(k > 0 && rc == 99))
		fprintf(stderr, "---- %s: zmbatch exited %d\n---- stdout:\n%s\n---- stderr:\n%s\n",
			what, rc, p.out, p.err);
	tu_proc_release(&p);
	for (int i = 0; i < ne; i++)
		free(env[i]);
	return rc;
}

/* bin/zmbatch run -c job a1 a2 (no crash, no step log). */
static int run_job_args(const struct trial *t, const char *what, const char *a1, const char *a2)
{
	char *argv[] = { E.bin, (char *)"run", (char *)"-c", t->job, (char *)a1,
			 (char *)a2, NULL };
	struct tu_proc p;
	int rc = tu_run(argv, NULL, 60, &p);
	if (rc != 0)
		fprintf(stderr, "---- %s: zmbatch %s %s exited %d\n---- stdout:\n%s\n---- stderr:\n%s\n",
			what, a1, a2, rc, p.out, p.err);
	tu_proc_release(&p);
	return rc;
}

/* Number of regular files below dir/rel (0 when it does not exist). */
static int count_files(const char *dir, const char *rel)
{
	char *cmd;
	int n = -1;
	if (asprintf(&cmd, "find '%s/%s' -type f 2>/dev/null | wc -l", dir, rel) < 0)
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

static char *read_steps(const struct trial *t)
{
	char *s = tu_read(t->steps);
	return s ? s : strdup("");
}

static long count_lines(const char *s)
{
	long n = 0;
	for (; s && *s; s++)
		if (*s == '\n')
			n++;
	return n;
}

/* The state DB in a canonical text form: what must not depend on crashes. */
static char *db_dump(const char *path)
{
	static const char *const queries[] = {
		"SELECT 'account', account, target, state, attempts, bytes, size,"
		" coalesce(error_class, ''), coalesce(last_error, ''), spool_path IS NULL OR spool_path = '',"
		" sync_mark IS NULL, delta, owner_run IS NULL, next_try_at FROM accounts ORDER BY account",
		"SELECT 'stage', name, type, position, state, attempts, coalesce(error, ''),"
		" coalesce(output, '') FROM stages ORDER BY position, name",
		"SELECT 'meta', key FROM meta ORDER BY key",
		"SELECT 'servers', role, host FROM servers ORDER BY role",
		NULL
	};
	sqlite3 *db = NULL;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	ck_assert_ptr_nonnull(f);
	ck_assert_msg(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK,
		      "cannot open %s", path);
	for (size_t q = 0; queries[q]; q++) {
		sqlite3_stmt *st = NULL;
		ck_assert_msg(sqlite3_prepare_v2(db, queries[q], -1, &st, NULL) == SQLITE_OK,
			      "%s: %s", queries[q], sqlite3_errmsg(db));
		while (sqlite3_step(st) == SQLITE_ROW) {
			for (int c = 0; c < sqlite3_column_count(st); c++) {
				const unsigned char *v = sqlite3_column_text(st, c);
				fprintf(f, "%s%s", c ? "|" : "", v ? (const char *)v : "NULL");
			}
			fputc('\n', f);
		}
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	fclose(f);
	return out;
}

/* Empty target mailboxes (same ids) and cleared counters on both sims. */
static void reset_sims(void)
{
	for (size_t i = 0; i < NUSERS; i++) {
		char *body;
		if (asprintf(&body, "{\"name\":\"%s\"}", USERS[i][1]) < 0)
			abort();
		json_t *r = zsim_post(E.dst, "/zsim/delete-account", body);
		ck_assert_msg(r != NULL, "delete-account %s", USERS[i][1]);
		json_decref(r);
		r = zsim_post(E.dst, "/zsim/add-account", body);
		ck_assert_msg(r != NULL && json_object_get(r, "id"), "add-account %s", USERS[i][1]);
		json_decref(r);
		free(body);
	}
	json_decref(zsim_post(E.src, "/zsim/reset-stats", "{}"));
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
}

/*
 * Target content equals source content, no duplicates.  What moved since
 * the last reset-stats: with extra NULL, nothing (no export, no import);
 * else every account exported and imported at least once and at most
 * 1 + extra[i] times, extra[i] being how many crashes left it in flight
 * (in_flight()): an account the crashes did not catch mid-transfer - done,
 * exported and waiting, or not started - moves exactly once.  Every import
 * asked for resolve=skip (the job's; the simulator dedups like Zimbra in
 * every mode, so this, not the duplicate count, is what tells a repeat with
 * another resolve).  One stats request per simulator (they hash every item).
 */
static void assert_migrated(const char *what, const int *extra)
{
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	ck_assert_msg(ss && ds, "%s: no simulator stats", what);
	for (size_t i = 0; i < NUSERS; i++) {
		const char *a = zsim_fingerprint(ss, USERS[i][0]);
		const char *b = zsim_fingerprint(ds, USERS[i][1]);
		ck_assert_msg(a && b, "%s: no fingerprint for %s / %s", what, USERS[i][0], USERS[i][1]);
		ck_assert_msg(strcmp(a, b) == 0, "%s: content differs: %s -> %s", what, USERS[i][0],
			      USERS[i][1]);
		ck_assert_msg(zsim_stat_acct(ds, "accounts", USERS[i][1], "duplicates") == 0,
			      "%s: duplicates in %s", what, USERS[i][1]);
		long long ex = zsim_stat_acct(ss, "exports", USERS[i][0], "count");
		long long im = zsim_stat_acct(ds, "imports", USERS[i][1], "count");
		if (!extra) {
			ck_assert_msg(ex == 0, "%s: %s exported again by a rerun", what, USERS[i][0]);
			ck_assert_msg(im == 0, "%s: %s imported again by a rerun", what, USERS[i][1]);
			continue;
		}
		ck_assert_msg(ex >= 1 && ex <= 1 + extra[i], "%s: %s exported %lld times, want 1..%d", what,
			      USERS[i][0], ex, 1 + extra[i]);
		ck_assert_msg(im >= 1 && im <= 1 + extra[i], "%s: %s imported %lld times, want 1..%d", what,
			      USERS[i][1], im, 1 + extra[i]);
		char *path = xasprintf("imports/%s/resolve/skip", USERS[i][1]);
		ck_assert_msg(zsim_stat_int(ds, path) == im, "%s: %lld of the %lld imports of %s not with resolve=skip",
			      what, im - zsim_stat_int(ds, path), im, USERS[i][1]);
		free(path);
	}
	ck_assert_msg(zsim_stat_int(ds, "duplicates") == 0, "%s: duplicates on the target", what);
	ck_assert_int_eq(zsim_stat_int(ss, "tokens_in_url"), 0);
	ck_assert_int_eq(zsim_stat_int(ds, "tokens_in_url"), 0);
	json_decref(ss);
	json_decref(ds);
}

/* After a crash: extra[i] += 1 for every account it left in flight (exporting/importing). */
static void in_flight(const char *db, int *extra)
{
	for (size_t i = 0; i < NUSERS; i++) {
		char *sql = xasprintf("SELECT count(*) FROM accounts WHERE account = '%s' "
				      "AND state IN ('exporting', 'importing')", USERS[i][0]);
		extra[i] += (int)e2e_db_int(db, sql);
		free(sql);
	}
}

static const int NO_EXTRA[NUSERS];

static void reset_stats(void)
{
	json_decref(zsim_post(E.src, "/zsim/reset-stats", "{}"));
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
}

static void assert_spool_clean(const struct trial *t, bool stream, bool keep_success, const char *what)
{
	ck_assert_msg(count_files(t->dir, "work") == 0, "%s: stray files in working_dir", what);
	ck_assert_msg(count_files(t->dir, "failed") == 0, "%s: files in failed_dir", what);
	/* a full export of an empty mailbox still has folder entries: one archive per account */
	int want = !stream && keep_success ? (int)NUSERS : 0;
	ck_assert_msg(count_files(t->dir, "success") == want, "%s: %d file(s) in success_dir, want %d",
		      what, count_files(t->dir, "success"), want);
}

/* The step names (without numbers) of a step log, in order. */
static char *step_names(const char *log)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	for (const char *p = log; p && *p;) {
		const char *nl = strchr(p, '\n');
		const char *sp = strchr(p, ' ');
		if (!nl)
			nl = p + strlen(p);
		if (sp && sp < nl)
			fprintf(f, "%.*s\n", (int)(nl - sp - 1), sp + 1);
		p = *nl ? nl + 1 : nl;
	}
	fclose(f);
	return out;
}

/* Number of the first step called name in a step log, 0 if none. */
static long step_no(const char *log, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = log; p && *p;) {
		const char *sp = strchr(p, ' ');
		const char *eol = strchr(p, '\n');
		if (!eol)
			eol = p + strlen(p);
		if (sp && sp < eol && (size_t)(eol - sp - 1) == nl && !strncmp(sp + 1, name, nl))
			return strtol(p, NULL, 10);
		p = *eol ? eol + 1 : eol;
	}
	return 0;
}

/*
 * The runs after crashed ones: rerun without crash (exit 0), then assert
 * target == source, no duplicates, clean spool, the final DB equal to the
 * reference ref_dump but for stages.attempts (extra_starts stage starts
 * were cut short by crashes), then one more run that moves nothing and
 * changes nothing, want_open runs left without exit status (the crashed
 * runs that got past "run begin" and not to "run end"), no run with a
 * non-zero exit status.
 */
static void check_resumed(const struct trial *t, bool stream, bool keep_success, const char *ref_dump,
			  long long extra_starts, long long want_open, const int *extra, const char *what)
{
	int rc = run_job(t, 0, false, what);
	ck_assert_msg(rc == 0, "%s: resumed run exited %d (output above)", what, rc);
	assert_migrated(what, extra);
	assert_spool_clean(t, stream, keep_success, what);

	char *dump = db_dump(t->db);
	char *want = NULL;
	if (extra_starts > 0) {
		/* stages.attempts counts starts: the crashed starts count */
		const char *p = strstr(ref_dump, "stage|");
		ck_assert_ptr_nonnull(p);
		/* stage|name|type|position|state|attempts|... : attempts of the reference + extra */
		const char *q = p;
		for (int i = 0; i < 5; i++)
			q = strchr(q, '|') + 1;
		long att = strtol(q, NULL, 10);
		const char *end = strchr(q, '|');
		if (asprintf(&want, "%.*s%lld%s", (int)(q - ref_dump), ref_dump, att + extra_starts, end) < 0)
			abort();
	} else {
		want = strdup(ref_dump);
	}
	ck_assert_msg(strcmp(dump, want) == 0, "%s: final DB differs from the uninterrupted run's:\n"
		      "---- got:\n%s---- want:\n%s", what, dump, want);

	/* one more run: nothing to do, nothing moved */
	reset_stats();
	rc = run_job(t, 0, false, what);
	ck_assert_msg(rc == 0, "%s: third run exited %d", what, rc);
	assert_migrated(what, NULL);
	assert_spool_clean(t, stream, keep_success, what);
	ck_assert_msg(e2e_db_int(t->db, "SELECT count(*) FROM runs WHERE exit_status IS NULL") == want_open,
		      "%s: %lld run(s) without exit status, want %lld", what,
		      e2e_db_int(t->db, "SELECT count(*) FROM runs WHERE exit_status IS NULL"), want_open);
	ck_assert_msg(e2e_db_int(t->db, "SELECT count(*) FROM runs WHERE exit_status <> 0") == 0,
		      "%s: a run recorded a non-zero exit status", what);
	char *dump2 = db_dump(t->db);
	ck_assert_msg(strcmp(dump2, dump) == 0, "%s: a rerun changed the DB:\n%s", what, dump2);
	free(dump2);
	free(dump);
	free(want);
}

/* What an uninterrupted run gives: the DB to compare with, the step log. */
struct ref {
	char *dump;
	char *log;
	char *names;
	long n;             /* durable steps */
	long run_begin, run_end;
};

/*
 * The reference: an uninterrupted run with a step log on fresh target
 * mailboxes, then two reruns (one with --stage migrate) that move nothing.
 */
static void reference_run(struct ref *r, bool stream, bool keep_success, int threads)
{
	const char *mode = stream ? "stream" : "spool";
	struct trial t;
	char what[128];

	memset(r, 0, sizeof *r);
	reset_sims();
	trial_new(&t, "ref", stream, keep_success, threads);
	snprintf(what, sizeof what, "%s reference run (%d thread(s))", mode, threads);
	ck_assert_msg(run_job(&t, 0, true, what) == 0, "%s: exit status (output above)", what);
	assert_migrated(what, NO_EXTRA);
	assert_spool_clean(&t, stream, keep_success, what);
	r->dump = db_dump(t.db);
	r->log = read_steps(&t);
	r->names = step_names(r->log);
	r->n = count_lines(r->log);
	r->run_begin = step_no(r->log, "run begin");
	r->run_end = step_no(r->log, "run end");
	ck_assert_msg(r->run_begin > 0 && r->run_end > r->run_begin, "%s: no run begin/end step", what);
	ck_assert_msg(r->n >= 10, "%s: only %ld durable steps:\n%s", what, r->n, r->log);
	ck_assert_int_eq(e2e_db_int(t.db, "SELECT count(*) FROM accounts WHERE state = 'done'"), NUSERS);
	reset_stats();
	ck_assert_msg(run_job(&t, 0, false, what) == 0, "%s: rerun exit status", what);
	assert_migrated(what, NULL);
	/* even the migrate stage forced to run again finds nothing to move */
	ck_assert_msg(run_job_args(&t, what, "--stage", "migrate") == 0, "%s: --stage migrate rerun", what);
	assert_migrated(what, NULL);
	assert_spool_clean(&t, stream, keep_success, what);
	fprintf(stderr, "%s: %ld durable steps\n%s", what, r->n, r->log);
	trial_free(&t);
}

static void ref_free(struct ref *r)
{
	free(r->dump);
	free(r->log);
	free(r->names);
	memset(r, 0, sizeof *r);
}

static void enumerate(bool stream, bool keep_success)
{
	const char *mode = stream ? "stream" : "spool";
	struct trial t;
	char what[128];
	struct ref ref;

	/* 1. the reference: an uninterrupted run, counting the steps */
	reference_run(&ref, stream, keep_success, 1);
	const char *ref_dump = ref.dump, *ref_names = ref.names;
	long n = ref.n, run_begin = ref.run_begin, run_end = ref.run_end;

	/* 2. crash after every step in turn */
	for (long k = 1; k <= n; k++) {
		char tag[32];
		snprintf(tag, sizeof tag, "k%ld", k);
		snprintf(what, sizeof what, "%s crash at step %ld/%ld", mode, k, n);
		reset_sims();
		trial_new(&t, tag, stream, keep_success, 1);

		int rc = run_job(&t, k, true, what);
		char *log = read_steps(&t);
		ck_assert_msg(rc == 99, "%s: first run exited %d, not 99; steps:\n%s", what, rc, log);
		ck_assert_msg(count_lines(log) == k, "%s: %ld steps logged before the crash", what,
			      count_lines(log));
		/* same order as the reference: the k-th step names the same point */
		char *names = step_names(log);
		ck_assert_msg(strncmp(names, ref_names, strlen(names)) == 0,
			      "%s: step order differs from the reference run:\n%s", what, log);
		/* a stage that the crash caught running has been started twice */
		long long stage_running = e2e_db_int(t.db, "SELECT count(*) FROM stages WHERE state = 'running'");
		/* the crashed run stays on record as unfinished (exit status NULL) */
		long long want_open = k >= run_begin && k < run_end ? 1 : 0;
		int extra[NUSERS] = { 0 };
		in_flight(t.db, extra);
		check_resumed(&t, stream, keep_success, ref_dump, stage_running, want_open, extra, what);

		free(names);
		free(log);
		trial_free(&t);
	}
	ref_free(&ref);
}

/* Log the next runs' steps to dir/name (each run of a trial its own log). */
static void trial_steps(struct trial *t, const char *name)
{
	free(t->steps);
	if (asprintf(&t->steps, "%s/%s", t->dir, name) < 0)
		abort();
}

/* A crashed run whose log has "stage begin" but no "stage end" started the stage once more. */
static long long cut_stage_starts(const char *log)
{
	return step_no(log, "stage begin") > 0 && step_no(log, "stage end") == 0 ? 1 : 0;
}

/* Run with a crash at k: exit 99, k steps logged, in the order of the uncrashed log want_names. */
static char *crash_run(const struct trial *t, long k, const char *want_names, const char *what)
{
	int rc = run_job(t, k, true, what);
	char *log = read_steps(t);
	ck_assert_msg(rc == 99, "%s: run exited %d, not 99; steps:\n%s", what, rc, log);
	ck_assert_msg(count_lines(log) == k, "%s: %ld steps logged before the crash, want %ld:\n%s", what,
		      count_lines(log), k, log);
	char *names = step_names(log);
	ck_assert_msg(strncmp(names, want_names, strlen(names)) == 0,
		      "%s: step order differs from the uncrashed run's:\n%s---- want:\n%s", what, names,
		      want_names);
	free(names);
	return log;
}

#define IN_FLIGHT "SELECT count(*) FROM accounts WHERE state IN ('exporting', 'importing')"

/*
 * A crash while recovering from a crash.  For every step k1 of the migrate
 * stage after which an account is left in flight (exporting/importing, with
 * or without its archive on disk):
 *   - probe: crash at k1, then an uncrashed rerun with a step log: the steps
 *     of a run that recovers from k1 (recovery, spool housekeeping, the
 *     redone claim...);
 *   - for every step k2 of that rerun from the first one to the one after
 *     its first claim: on a fresh trial crash at k1, crash the rerun at k2,
 *     then run again: same checks as after one crash (check_resumed), the
 *     stage started once more per crashed run that was inside it, both
 *     crashed runs left without exit status when they were past "run begin".
 * The k2 come from the probe's log, not from a list: when recovery gains
 * or loses durable steps they are still all covered.
 */
static void crash_during_recovery(bool stream, bool keep_success)
{
	const char *mode = stream ? "stream" : "spool";
	struct trial t;
	struct ref ref;
	char what[160];
	bool seen_exporting = false, seen_importing = false;
	int trials = 0;

	reference_run(&ref, stream, keep_success, 1);
	long sb = step_no(ref.log, "stage begin"), se = step_no(ref.log, "stage end");
	ck_assert_msg(sb > 0 && se > sb, "%s: no stage begin/end step in the reference", mode);

	for (long k1 = sb + 1; k1 < se; k1++) {
		/* probe: is an account in flight after k1, and which steps recover from it? */
		snprintf(what, sizeof what, "%s probe: crash at step %ld/%ld", mode, k1, ref.n);
		reset_sims();
		trial_new(&t, "probe", stream, keep_success, 1);
		char *log1 = crash_run(&t, k1, ref.names, what);
		free(log1);
		long long exporting = e2e_db_int(t.db, "SELECT count(*) FROM accounts WHERE state = 'exporting'");
		long long importing = e2e_db_int(t.db, "SELECT count(*) FROM accounts WHERE state = 'importing'");
		if (exporting + importing == 0) {
			trial_free(&t);
			continue;
		}
		seen_exporting |= exporting > 0;
		seen_importing |= importing > 0;
		trial_steps(&t, "steps2");
		int extra1[NUSERS] = { 0 };
		in_flight(t.db, extra1);
		ck_assert_msg(run_job(&t, 0, true, what) == 0, "%s: rerun exit status (output above)", what);
		assert_migrated(what, extra1);
		assert_spool_clean(&t, stream, keep_success, what);
		char *log2 = read_steps(&t);
		char *names2 = step_names(log2);
		long n2 = count_lines(log2);
		long rb2 = step_no(log2, "run begin"), re2 = step_no(log2, "run end");
		long rec2 = step_no(log2, "recover"), claim2 = step_no(log2, "claim");
		ck_assert_msg(rec2 > 0 && claim2 > rec2 && rb2 > 0 && re2 > rb2,
			      "%s: no recover, claim, run begin/end in the rerun's steps:\n%s", what, log2);
		long last = claim2 + 1 < n2 ? claim2 + 1 : n2;
		fprintf(stderr, "%s: %lld exporting, %lld importing; rerun crashed at steps 1..%ld of:\n%s",
			what, exporting, importing, last, log2);
		trial_free(&t);

		for (long k2 = 1; k2 <= last; k2++) {
			char tag[48];
			snprintf(tag, sizeof tag, "r%ld_%ld", k1, k2);
			snprintf(what, sizeof what, "%s crash at step %ld/%ld, then at step %ld/%ld of the rerun",
				 mode, k1, ref.n, k2, n2);
			reset_sims();
			trial_new(&t, tag, stream, keep_success, 1);
			log1 = crash_run(&t, k1, ref.names, what);
			ck_assert_msg(e2e_db_int(t.db, IN_FLIGHT) == exporting + importing,
				      "%s: not the probe's accounts in flight after the first crash", what);
			int extra[NUSERS] = { 0 };
			in_flight(t.db, extra);
			trial_steps(&t, "steps2");
			char *log = crash_run(&t, k2, names2, what);
			in_flight(t.db, extra);
			long long extra_starts = cut_stage_starts(log1) + cut_stage_starts(log);
			long long want_open = (k1 >= ref.run_begin && k1 < ref.run_end ? 1 : 0) +
					      (k2 >= rb2 && k2 < re2 ? 1 : 0);
			check_resumed(&t, stream, keep_success, ref.dump, extra_starts, want_open, extra, what);
			trials++;
			free(log);
			free(log1);
			trial_free(&t);
		}
		free(log2);
		free(names2);
	}
	/* the enumeration covered the in-flight states of this mode */
	ck_assert_msg(seen_importing, "%s: no crash point left an account importing", mode);
	ck_assert_msg(stream || seen_exporting, "%s: no crash point left an account exporting", mode);
	fprintf(stderr, "%s: %d double-crash trials\n", mode, trials);
	ref_free(&ref);
}

START_TEST(test_crash_during_recovery)
{
	/* _i = 0: spool, archives kept (their moves are durable steps); 1: stream */
	crash_during_recovery(_i == 1, _i == 0);
}
END_TEST

/*
 * Two workers: threads = 2 and a source that sends at most BANDWIDTH bytes/s
 * per connection, both mailboxes with mail, alice's much smaller: both
 * workers claim (two "claim" steps one after the other: alice's transfer
 * takes about a second), both exports run, alice's ends first.  The crash
 * points, named by their place after the first claim (the steps before it
 * are the main thread's, the same in every run):
 *   - the second claim: both accounts in flight;
 *   - the first end of a transfer (spool: alice's archive renamed; stream:
 *     alice done) while the other one is mid-transfer (spool: its .part
 *     file on disk; stream: part of its items already on the target).
 * The rerun is unthrottled; the same checks as after one crash.
 */
#define BANDWIDTH "12000"

/* A simulator's open REST transfers (stats without log and digests); -1 on error. */
static long long active_streams(struct zsim *z)
{
	char *body = NULL;
	long st = zsim_http(z, "GET", "/zsim/stats?log=0&digests=0", NULL, NULL, 0, &body, NULL, NULL);
	json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
	long long n = j ? zsim_stat_int(j, "active_streams") : -1;
	json_decref(j);
	free(body);
	return n;
}

/*
 * A transfer cut by the crash ends in the simulator only when it notices the
 * dead connection, and is counted then: wait for that before the reruns, so
 * that it is not counted as the no-op run's export or import.
 */
static void wait_transfers_ended(const char *what)
{
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		long long a = active_streams(E.src), b = active_streams(E.dst);
		if (a == 0 && b == 0)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		ck_assert_msg(now.tv_sec - t0.tv_sec < 30, "%s: transfers still open 30 s after the crash "
			      "(source %lld, target %lld)", what, a, b);
		tu_sleep(0.02);
	}
}

static void two_workers(bool stream)
{
	const char *mode = stream ? "stream" : "spool";
	struct trial t;
	struct ref ref;
	char what[160];

	/* "empty" gets mail, several times alice's: its export ends well after hers */
	json_t *r = zsim_post(E.src, "/zsim/add-items",
			      "{\"account\":\"empty@example.com\",\"n\":16,\"size\":4000}");
	ck_assert_msg(r != NULL, "add-items");
	json_decref(r);

	reference_run(&ref, stream, false, 2);
	long c1 = step_no(ref.log, "claim");
	ck_assert_msg(c1 > 0, "%s: no claim in the reference", mode);
	json_t *ss = zsim_stats(E.src);
	long long src_items = zsim_stat_acct(ss, "accounts", USERS[1][0], "items");
	json_decref(ss);

	for (int i = 0; i < 2; i++) {
		long k = c1 + 1 + i;
		char tag[32];
		snprintf(tag, sizeof tag, "w%d", i);
		snprintf(what, sizeof what, "%s, 2 workers, crash at step %ld (%s)", mode, k,
			 i == 0 ? "second claim" : "first transfer ended");
		reset_sims();
		trial_new(&t, tag, stream, false, 2);
		json_decref(zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":" BANDWIDTH "}"));
		int rc = run_job(&t, k, true, what);
		json_decref(zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":0}"));
		char *log = read_steps(&t);
		ck_assert_msg(rc == 99, "%s: run exited %d, not 99; steps:\n%s", what, rc, log);
		ck_assert_msg(count_lines(log) == k, "%s: %ld steps logged, want %ld:\n%s", what,
			      count_lines(log), k, log);
		/* the main thread's steps as in the reference, then both claims, then alice's end */
		char *names = step_names(log);
		char *want = NULL;
		const char *p = ref.names;
		for (long l = 1; l < c1; l++)
			p = strchr(p, '\n') + 1;
		if (asprintf(&want, "%.*sclaim\nclaim\n%s", (int)(p - ref.names), ref.names,
			     i == 0 ? "" : stream ? "imported\n" : "spool renamed\n") < 0)
			abort();
		ck_assert_msg(strcmp(names, want) == 0, "%s: steps:\n%s---- want:\n%s", what, names, want);

		if (i == 0) {
			ck_assert_int_eq(e2e_db_int(t.db, IN_FLIGHT), 2);
		} else if (!stream) {
			/* both exporting: alice's archive complete, the other one's still a .part */
			ck_assert_int_eq(e2e_db_int(t.db, "SELECT count(*) FROM accounts WHERE state = 'exporting'"), 2);
			char *cmd;
			if (asprintf(&cmd, "test $(find '%s/work' -name '*.tgz.part' -size +0c | wc -l) = 1 &&"
				     " test $(find '%s/work' -name '*.tgz' -size +0c | wc -l) = 1", t.dir, t.dir) < 0)
				abort();
			ck_assert_msg(system(cmd) == 0, "%s: not one complete archive and one partial one:\n%s",
				      what, log);
			free(cmd);
		} else {
			/* alice imported, her verification not begun; the other one cut off
			 * mid-stream: part of its items imported */
			ck_assert_int_eq(e2e_db_int(t.db, "SELECT count(*) FROM accounts WHERE state = 'importing'"), 2);
			ck_assert_int_eq(e2e_db_int(t.db, "SELECT count(*) FROM accounts WHERE verify_pending = 1"), 1);
			json_t *ds = zsim_stats(E.dst);
			long long got = zsim_stat_acct(ds, "accounts", USERS[1][1], "items");
			json_decref(ds);
			fprintf(stderr, "%s: %lld of %lld items of %s on the target at the crash\n", what, got,
				src_items, USERS[1][1]);
			ck_assert_msg(got < src_items, "%s: %s complete at the crash (%lld items)", what,
				      USERS[1][1], got);
		}
		wait_transfers_ended(what);
		int extra[NUSERS] = { 0 };
		in_flight(t.db, extra);
		check_resumed(&t, stream, false, ref.dump, 1, 1, extra, what);
		free(want);
		free(names);
		free(log);
		trial_free(&t);
	}
	ref_free(&ref);
}

START_TEST(test_two_workers_crash)
{
	/* _i = 0: spool, 1: stream */
	two_workers(_i == 1);
}
END_TEST

START_TEST(test_crash_every_step_spool)
{
	/* keep_success_files: the archives' final moves are durable steps too */
	enumerate(false, true);
}
END_TEST

START_TEST(test_crash_every_step_spool_nokeep)
{
	enumerate(false, false);
}
END_TEST

START_TEST(test_crash_every_step_stream)
{
	enumerate(true, false);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_crash");
	TCase *tc = tcase_create("crash");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_crash_every_step_spool);
	tcase_add_test(tc, test_crash_every_step_spool_nokeep);
	tcase_add_test(tc, test_crash_every_step_stream);
	suite_add_tcase(s, tc);
	/* own tcases: CK_RUN_CASE=recovery / workers runs one of them */
	tc = tcase_create("recovery");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_crash_during_recovery, 0, 2);
	suite_add_tcase(s, tc);
	tc = tcase_create("workers");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_two_workers_crash, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
