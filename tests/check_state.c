/*
 * check_state.c - the SQLite state database (src/state/state.c) on real files.
 *
 * Covers the account state machine (every pair), claim order and backoff,
 * claims from 8 threads with their own connections, the claim plan on 100k
 * rows, crash recovery after _exit()/SIGKILL of a child process, the
 * ZMBATCH_CRASH_AT hook, job identity, read-only opens, schema migration
 * 1 -> 2 and file modes.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state.h"
#include "state_prov.h"
#include "state_cutover.h"
#include "testutil.h"

extern const char *const zmb_schema[];
extern const char *const zmb_schema_names[];

#define IDENT "job1|src.example.com:7071|tgt.example.com:7071"

/* ---- helpers ---- */

static char *db_path(const char *dir)
{
	return xasprintf("%s/state.db", dir);
}

static struct state *open_rw(const char *path)
{
	struct state *st = NULL;
	char *err = NULL;
	enum zmb_rc rc = state_open(path, IDENT, STATE_WRITE, &st, &err);
	ck_assert_msg(rc == ZMB_OK, "state_open %s: %s", path, err ? err : "?");
	free(err);
	return st;
}

static long long q_int(struct state *st, const char *sql)
{
	sqlite3_stmt *s = NULL;
	long long v = -999;
	ck_assert_msg(sqlite3_prepare_v2(state_db(st), sql, -1, &s, NULL) == SQLITE_OK,
		      "prepare %s: %s", sql, sqlite3_errmsg(state_db(st)));
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_type(s, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static char *q_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	char *v = NULL;
	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK,
		      "prepare %s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		v = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return v;
}

static void exec_ok(struct state *st, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(state_db(st), sql, NULL, NULL, &msg);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
}

static const char *acct_state_of(struct state *st, const char *account)
{
	struct account_row r;
	enum zmb_rc rc = state_account_get(st, account, &r);
	ck_assert_msg(rc == ZMB_OK, "get %s: %s", account, state_errmsg(st));
	const char *n = acct_state_name(r.state);
	state_account_release(&r);
	return n;
}

/* Insert n accounts a0000@x ... with size = sizes[i % nsizes] (-1 = NULL). */
static void add_accounts(struct state *st, int n, const long long *sizes, int nsizes)
{
	ck_assert_int_eq(state_begin(st), ZMB_OK);
	for (int i = 0; i < n; i++) {
		char name[64];
		snprintf(name, sizeof name, "a%05d@x.test", i);
		ck_assert_int_eq(state_account_upsert(st, name, name, i,
						      sizes ? sizes[i % nsizes] : -1), ZMB_OK);
	}
	ck_assert_int_eq(state_commit(st), ZMB_OK);
}

/* ---- state machine ---- */

/* The diagram of state.h, written out independently of src/state/state.c. */
static bool expect_legal(int f, int t)
{
	static const char *const ok[] = {
		"pending>exporting", "pending>importing", "pending>skipped",
		"exporting>exported", "exporting>importing", "exporting>done", "exporting>pending",
		"exporting>failed",
		"exported>importing", "exported>pending",
		"importing>done", "importing>exported", "importing>pending", "importing>failed",
		"done>pending", "failed>pending", "skipped>pending", NULL,
	};
	char key[64];
	snprintf(key, sizeof key, "%s>%s", acct_state_name(f), acct_state_name(t));
	for (int i = 0; ok[i]; i++)
		if (strcmp(ok[i], key) == 0)
			return true;
	return false;
}

START_TEST(test_state_names)
{
	for (int i = 0; i < ACCT_NSTATES; i++)
		ck_assert_int_eq(acct_state_parse(acct_state_name(i)), i);
	ck_assert_int_eq(acct_state_parse("bogus"), -1);
	ck_assert_int_eq(acct_state_parse(NULL), -1);
	for (int i = STAGE_PENDING; i <= STAGE_FAILED; i++)
		ck_assert_int_eq(stage_state_parse(stage_state_name(i)), i);
	ck_assert_int_eq(stage_state_parse("x"), -1);
}
END_TEST

/* Every (from, to) pair on a real row: legal ones move it and write the
 * event, illegal ones are EINTERNAL and leave the row alone. */
START_TEST(test_transition_all_pairs)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	int64_t run;
	int nlegal = 0;

	ck_assert_int_eq(state_run_begin(st, "run", &run), ZMB_OK);
	add_accounts(st, 1, NULL, 0);
	int64_t id = q_int(st, "SELECT id FROM accounts");
	for (int f = 0; f < ACCT_NSTATES; f++) {
		for (int t = 0; t < ACCT_NSTATES; t++) {
			char *sql = xasprintf("UPDATE accounts SET state = '%s'", acct_state_name(f));
			exec_ok(st, sql);
			free(sql);
			long long ev0 = q_int(st, "SELECT count(*) FROM events");
			struct acct_update u = ACCT_UPDATE_INIT;
			u.event = "moved";
			bool want = expect_legal(f, t);
			ck_assert_msg(acct_transition_ok(f, t) == want, "table %s -> %s",
				      acct_state_name(f), acct_state_name(t));
			enum zmb_rc rc = state_transition(st, run, id, f, t, &u);
			const char *now = acct_state_of(st, "a00000@x.test");
			long long ev1 = q_int(st, "SELECT count(*) FROM events");
			if (want) {
				nlegal++;
				ck_assert_msg(rc == ZMB_OK, "%s -> %s: %s", acct_state_name(f),
					      acct_state_name(t), state_errmsg(st));
				ck_assert_str_eq(now, acct_state_name(t));
				ck_assert_int_eq(ev1, ev0 + 1);
			} else {
				ck_assert_msg(rc == ZMB_EINTERNAL, "%s -> %s accepted",
					      acct_state_name(f), acct_state_name(t));
				ck_assert_str_eq(now, acct_state_name(f));
				ck_assert_int_eq(ev1, ev0);
				ck_assert(tu_contains(state_errmsg(st), "illegal transition"));
			}
		}
	}
	ck_assert_int_eq(nlegal, 17);
	ck_assert(!acct_transition_ok(ACCT_NSTATES, ACCT_PENDING));
	ck_assert(!acct_transition_ok(ACCT_PENDING, (enum acct_state)-1));
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/* every SQL statement the connection runs, in order ("|"-separated) */
static int trace_stmt(unsigned type, void *ud, void *p, void *x)
{
	(void)type;
	(void)x;
	char *sql = sqlite3_expanded_sql(p);
	buf_addf(ud, "%s|", sql ? sql : "?");
	sqlite3_free(sql);
	return 0;
}

/*
 * README "Nothing lost": a move to done or failed is committed with
 * synchronous=FULL (its WAL frame fsynced before COMMIT returns), every other
 * step with NORMAL.  A power cut cannot be staged here, so the test watches the
 * statements: FULL is set before the final transition's UPDATE and NORMAL
 * after its COMMIT, and no intermediate step sets FULL.
 */
START_TEST(test_final_states_fsynced)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	struct account_row r;
	int64_t run;
	double wait;
	struct buf log = BUF_INIT;

	ck_assert_int_eq(state_run_begin(st, "run", &run), ZMB_OK);
	add_accounts(st, 2, NULL, 0);
	sqlite3_trace_v2(state_db(st), SQLITE_TRACE_STMT, trace_stmt, &log);
	for (int k = 0; k < 2; k++) {
		enum acct_state final = k ? ACCT_FAILED : ACCT_DONE;
		ck_assert_int_eq(state_claim(st, run, CLAIM_AS_LISTED, false, wall_now(), &r, &wait),
				 ZMB_OK);
		ck_assert_int_eq(state_transition(st, run, r.id, ACCT_EXPORTING, ACCT_EXPORTED, NULL),
				 ZMB_OK);
		ck_assert_int_eq(state_transition(st, run, r.id, ACCT_EXPORTED, ACCT_IMPORTING, NULL),
				 ZMB_OK);
		ck_assert_msg(!tu_contains(log.s, "synchronous = FULL"),
			      "an intermediate step was fsynced: %s", log.s);
		buf_reset(&log);
		ck_assert_int_eq(state_transition(st, run, r.id, ACCT_IMPORTING, final, NULL), ZMB_OK);
		const char *full = strstr(log.s, "PRAGMA synchronous = FULL|");
		ck_assert_msg(full != NULL, "the move to %s was not fsynced: %s",
			      acct_state_name(final), log.s);
		const char *upd = strstr(full, "UPDATE accounts");
		ck_assert_msg(upd != NULL, "FULL was not set before the UPDATE: %s", log.s);
		const char *commit = strstr(upd, "COMMIT");
		ck_assert_msg(commit != NULL, "%s", log.s);
		ck_assert_msg(strstr(commit, "PRAGMA synchronous = NORMAL|") != NULL,
			      "NORMAL not restored after the COMMIT: %s", log.s);
		buf_reset(&log);
		state_account_release(&r);
	}
	sqlite3_trace_v2(state_db(st), 0, NULL, NULL);
	buf_release(&log);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_transition_conflict_and_fields)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	struct account_row r;
	int64_t run;
	double wait;

	ck_assert_int_eq(state_run_begin(st, "run", &run), ZMB_OK);
	add_accounts(st, 1, NULL, 0);
	ck_assert_int_eq(state_claim(st, run, CLAIM_AS_LISTED, false, wall_now(), &r, &wait), ZMB_OK);
	ck_assert_int_eq(r.state, ACCT_EXPORTING);
	ck_assert_int_eq(r.attempts, 0);
	ck_assert(r.started_at > 0);
	ck_assert_int_eq(q_int(st, "SELECT owner_run FROM accounts"), run);

	/* someone else's view: the row is not 'pending' any more */
	ck_assert_int_eq(state_transition(st, run, r.id, ACCT_PENDING, ACCT_EXPORTING, NULL),
			 ZMB_ECONFLICT);
	ck_assert(tu_contains(state_errmsg(st), "not in state 'pending'"));

	/* temporary error: back to pending with a backoff, error recorded */
	struct acct_update u = ACCT_UPDATE_INIT;
	u.error = "connection reset";
	u.error_class = "temporary";
	u.add_attempt = true;
	u.next_try_at = wall_now() + 1000;
	u.spool_path = "";
	u.event = "export failed: connection reset";
	ck_assert_int_eq(state_transition(st, run, r.id, ACCT_EXPORTING, ACCT_PENDING, &u), ZMB_OK);
	state_account_release(&r);
	ck_assert_int_eq(state_account_get(st, "a00000@x.test", &r), ZMB_OK);
	ck_assert_int_eq(r.attempts, 1);
	ck_assert_str_eq(r.last_error, "connection reset");
	ck_assert_str_eq(r.error_class, "temporary");
	ck_assert(r.next_try_at > wall_now() + 900);
	ck_assert_ptr_null(r.spool_path);
	ck_assert_int_eq(q_int(st, "SELECT owner_run FROM accounts"), -1);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM events WHERE level = 'warn'"
			       " AND account_id IS NOT NULL AND run_id IS NOT NULL"), 1);
	int64_t id = r.id;
	state_account_release(&r);

	/* claim is blocked by the backoff; wait_s says how long */
	ck_assert_int_eq(state_claim(st, run, CLAIM_AS_LISTED, false, wall_now(), &r, &wait),
			 ZMB_ENOTFOUND);
	ck_assert(wait > 900 && wait <= 1000);

	/* stream mode succeeds later: done, with bytes/seconds/sync_mark */
	ck_assert_int_eq(state_claim(st, run, CLAIM_AS_LISTED, true, wall_now() + 2000, &r, &wait),
			 ZMB_OK);
	ck_assert_int_eq(r.state, ACCT_IMPORTING);
	ck_assert_int_eq(r.attempts, 1);      /* claim does not count attempts */
	state_account_release(&r);
	struct acct_update d = ACCT_UPDATE_INIT;
	d.error = "";
	d.error_class = "";
	d.bytes = 12345;
	d.seconds = 2.5;
	d.sync_mark = 1700000000000LL;
	d.add_attempt = true;
	ck_assert_int_eq(state_transition(st, run, id, ACCT_IMPORTING, ACCT_DONE, &d), ZMB_OK);
	ck_assert_int_eq(state_account_get(st, "a00000@x.test", &r), ZMB_OK);
	ck_assert_int_eq(r.state, ACCT_DONE);
	ck_assert_int_eq(r.attempts, 2);
	ck_assert_ptr_null(r.last_error);
	ck_assert_ptr_null(r.error_class);
	ck_assert_int_eq(r.bytes, 12345);
	ck_assert(r.seconds > 2.4 && r.seconds < 2.6);
	ck_assert_int_eq(r.sync_mark, 1700000000000LL);
	ck_assert(r.finished_at > 0);
	state_account_release(&r);

	/* --delta: done -> pending, delta = 1, attempts 0, sync_mark kept */
	int n = -1;
	ck_assert_int_eq(state_queue_delta(st, &n), ZMB_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(state_account_get(st, "a00000@x.test", &r), ZMB_OK);
	ck_assert_int_eq(r.state, ACCT_PENDING);
	ck_assert(r.delta);
	ck_assert_int_eq(r.attempts, 0);
	ck_assert_int_eq(r.sync_mark, 1700000000000LL);
	ck_assert(r.finished_at == 0);
	state_account_release(&r);

	/* unknown id */
	ck_assert_int_eq(state_transition(st, run, 999999, ACCT_PENDING, ACCT_SKIPPED, NULL),
			 ZMB_ECONFLICT);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/* ---- claim order ---- */

static void claim_expect(struct state *st, int64_t run, enum claim_order o, bool stream,
			 const char *want, enum acct_state want_state)
{
	struct account_row r;
	double wait;
	enum zmb_rc rc = state_claim(st, run, o, stream, wall_now(), &r, &wait);
	ck_assert_msg(rc == ZMB_OK, "claim: %s", state_errmsg(st));
	ck_assert_str_eq(r.account, want);
	ck_assert_int_eq(r.state, want_state);
	state_account_release(&r);
}

START_TEST(test_claim_largest_first)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	static const long long sizes[] = { -1, 10, 30, 20, 30 };
	int64_t run;

	ck_assert_int_eq(state_run_begin(st, "run", &run), ZMB_OK);
	add_accounts(st, 5, sizes, 5);
	/* size DESC, ties by seq, unknown size last */
	claim_expect(st, run, CLAIM_LARGEST_FIRST, false, "a00002@x.test", ACCT_EXPORTING);
	claim_expect(st, run, CLAIM_LARGEST_FIRST, false, "a00004@x.test", ACCT_EXPORTING);
	claim_expect(st, run, CLAIM_LARGEST_FIRST, false, "a00003@x.test", ACCT_EXPORTING);
	claim_expect(st, run, CLAIM_LARGEST_FIRST, true, "a00001@x.test", ACCT_IMPORTING);
	claim_expect(st, run, CLAIM_LARGEST_FIRST, false, "a00000@x.test", ACCT_EXPORTING);
	struct account_row r;
	double wait = 0;
	ck_assert_int_eq(state_claim(st, run, CLAIM_LARGEST_FIRST, false, wall_now(), &r, &wait),
			 ZMB_ENOTFOUND);
	ck_assert(wait == -1);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_claim_as_listed_exported_first)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	static const long long sizes[] = { 1, 50, 2, 3 };
	struct account_row r;
	int64_t run;
	double wait;

	ck_assert_int_eq(state_run_begin(st, "run", &run), ZMB_OK);
	add_accounts(st, 4, sizes, 4);
	claim_expect(st, run, CLAIM_AS_LISTED, false, "a00000@x.test", ACCT_EXPORTING);
	/* a00003 has its archive on disk already: it comes before everything */
	exec_ok(st, "UPDATE accounts SET state = 'exported', spool_path = '/nonexistent'"
		" WHERE account = 'a00003@x.test'");
	claim_expect(st, run, CLAIM_AS_LISTED, false, "a00003@x.test", ACCT_IMPORTING);
	/* also in largest-first order, and in stream mode */
	exec_ok(st, "UPDATE accounts SET state = 'exported' WHERE account = 'a00002@x.test'");
	claim_expect(st, run, CLAIM_LARGEST_FIRST, true, "a00002@x.test", ACCT_IMPORTING);
	/* an exported row in backoff waits like a pending one */
	exec_ok(st, "UPDATE accounts SET state = 'exported', next_try_at = 1e12"
		" WHERE account = 'a00003@x.test'");
	claim_expect(st, run, CLAIM_AS_LISTED, false, "a00001@x.test", ACCT_EXPORTING);
	ck_assert_int_eq(state_claim(st, run, CLAIM_AS_LISTED, false, 1e12 - 50, &r, &wait),
			 ZMB_ENOTFOUND);
	ck_assert(wait > 49.9 && wait < 50.1);
	ck_assert_int_eq(state_claim(st, run, CLAIM_AS_LISTED, false, 1e12, &r, &wait), ZMB_OK);
	ck_assert_str_eq(r.account, "a00003@x.test");
	ck_assert_int_eq(r.state, ACCT_IMPORTING);
	state_account_release(&r);
	ck_assert_int_eq(state_claim(st, run, CLAIM_AS_LISTED, false, 1e12, &r, &wait),
			 ZMB_ENOTFOUND);
	ck_assert(wait == -1);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_claim_backoff)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	struct account_row r;
	double wait = 0, now = 1e9;

	add_accounts(st, 3, NULL, 0);
	exec_ok(st, "UPDATE accounts SET next_try_at = 1e9 + 30 WHERE seq = 0");
	exec_ok(st, "UPDATE accounts SET next_try_at = 1e9 + 10 WHERE seq = 1");
	exec_ok(st, "UPDATE accounts SET next_try_at = 1e9 WHERE seq = 2");
	/* due now (next_try_at <= now) */
	ck_assert_int_eq(state_claim(st, 0, CLAIM_AS_LISTED, false, now, &r, &wait), ZMB_OK);
	ck_assert_str_eq(r.account, "a00002@x.test");
	state_account_release(&r);
	ck_assert_int_eq(state_claim(st, 0, CLAIM_AS_LISTED, false, now, &r, &wait), ZMB_ENOTFOUND);
	ck_assert(wait > 9.99 && wait < 10.01);
	ck_assert_ptr_null(r.account);
	ck_assert_int_eq(state_claim(st, 0, CLAIM_AS_LISTED, false, now + 10, &r, &wait), ZMB_OK);
	ck_assert_str_eq(r.account, "a00001@x.test");
	state_account_release(&r);
	ck_assert_int_eq(state_claim(st, 0, CLAIM_AS_LISTED, false, now + 10, &r, &wait), ZMB_ENOTFOUND);
	ck_assert(wait > 19.99 && wait < 20.01);
	/* a NULL wait_s pointer is fine */
	ck_assert_int_eq(state_claim(st, 0, CLAIM_AS_LISTED, false, now, &r, NULL), ZMB_ENOTFOUND);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/* ---- claim under concurrency ---- */

#define CONC_ACCOUNTS 2000
#define CONC_THREADS 8

struct conc {
	const char *path;
	pthread_mutex_t mu;
	pthread_barrier_t start;
	int seen[CONC_ACCOUNTS + 1];   /* by id */
	int per_thread[CONC_THREADS];
	int errors;
	char errmsg[256];
	bool use_wlock;                /* loop 1: connections share a write lock */
	struct state_wlock wlock;
};

struct conc_arg {
	struct conc *c;
	int idx;
};

static void *conc_worker(void *p)
{
	struct conc_arg *a = p;
	struct conc *c = a->c;
	struct state *st = NULL;
	char *err = NULL;
	enum zmb_rc rc = state_open(c->path, IDENT, STATE_WRITE, &st, &err);

	if (rc == ZMB_OK && c->use_wlock)
		state_set_write_lock(st, &c->wlock);
	pthread_barrier_wait(&c->start);     /* all connections open: go */
	while (rc == ZMB_OK) {
		struct account_row r;
		double wait;
		rc = state_claim(st, 0, a->idx % 2 ? CLAIM_AS_LISTED : CLAIM_LARGEST_FIRST,
				 a->idx % 3 == 0, wall_now(), &r, &wait);
		if (rc != ZMB_OK)
			break;
		pthread_mutex_lock(&c->mu);
		if (r.id >= 1 && r.id <= CONC_ACCOUNTS)
			c->seen[r.id]++;
		c->per_thread[a->idx]++;
		pthread_mutex_unlock(&c->mu);
		/* a worker transfers between claims (without it, one thread can
		 * re-take the write lock before the others' busy handler wakes) */
		tu_sleep(0.0003);
		/* finish some of them, as a worker would, to mix writers */
		if (r.id % 4 == 0) {
			struct acct_update u = ACCT_UPDATE_INIT;
			u.add_attempt = true;
			u.event = "done";
			rc = state_transition(st, 0, r.id, r.state, ACCT_DONE, &u);
		}
		state_account_release(&r);
	}
	if (rc != ZMB_ENOTFOUND) {
		pthread_mutex_lock(&c->mu);
		c->errors++;
		snprintf(c->errmsg, sizeof c->errmsg, "%s", err ? err : state_errmsg(st));
		pthread_mutex_unlock(&c->mu);
	}
	free(err);
	state_close(st);
	return NULL;
}

START_TEST(test_claim_concurrent)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	static const long long sizes[] = { 5, -1, 700, 12, 700 };
	struct conc *c = xcalloc(1, sizeof *c);
	struct conc_arg args[CONC_THREADS];
	pthread_t th[CONC_THREADS];

	add_accounts(st, CONC_ACCOUNTS, sizes, 5);
	ck_assert_int_eq(q_int(st, "SELECT max(id) FROM accounts"), CONC_ACCOUNTS);
	c->path = path;
	c->use_wlock = _i == 1;
	state_wlock_init(&c->wlock);
	pthread_mutex_init(&c->mu, NULL);
	pthread_barrier_init(&c->start, NULL, CONC_THREADS);
	for (int i = 0; i < CONC_THREADS; i++) {
		args[i].c = c;
		args[i].idx = i;
		ck_assert_int_eq(pthread_create(&th[i], NULL, conc_worker, &args[i]), 0);
	}
	for (int i = 0; i < CONC_THREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert_msg(c->errors == 0, "%d worker error(s): %s", c->errors, c->errmsg);
	for (int id = 1; id <= CONC_ACCOUNTS; id++)
		ck_assert_msg(c->seen[id] == 1, "account id %d handed out %d times", id, c->seen[id]);
	int busy = 0;
	for (int i = 0; i < CONC_THREADS; i++)
		busy += c->per_thread[i] > 0;
	ck_assert_msg(busy >= 2, "only %d thread(s) got work", busy);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM accounts WHERE state IN"
			       " ('exporting', 'importing', 'done')"), CONC_ACCOUNTS);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM accounts WHERE state = 'done'"),
			 CONC_ACCOUNTS / 4);
	long long counts[ACCT_NSTATES];
	ck_assert_int_eq(state_counts(st, counts), ZMB_OK);
	ck_assert_int_eq(counts[ACCT_DONE], CONC_ACCOUNTS / 4);
	ck_assert_int_eq(counts[ACCT_PENDING], 0);
	ck_assert_int_eq(counts[ACCT_EXPORTING] + counts[ACCT_IMPORTING], CONC_ACCOUNTS * 3 / 4);
	pthread_mutex_destroy(&c->mu);
	state_wlock_destroy(&c->wlock);
	pthread_barrier_destroy(&c->start);
	free(c);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/* 8 threads open (create, WAL switch, migrate, identity) one new DB at once. */
struct open_race {
	const char *path;
	pthread_barrier_t start;
	enum zmb_rc rc[CONC_THREADS];
	char *err[CONC_THREADS];
	int idx;
	pthread_mutex_t mu;
};

static void *open_racer(void *p)
{
	struct open_race *o = p;
	struct state *st = NULL;
	pthread_mutex_lock(&o->mu);
	int i = o->idx++;
	pthread_mutex_unlock(&o->mu);
	pthread_barrier_wait(&o->start);
	o->rc[i] = state_open(o->path, IDENT, STATE_WRITE, &st, &o->err[i]);
	if (o->rc[i] == ZMB_OK)
		o->rc[i] = state_account_upsert(st, "same@x.test", "same@x.test", i, 1);
	state_close(st);
	return NULL;
}

START_TEST(test_open_concurrent)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct open_race *o = xcalloc(1, sizeof *o);
	pthread_t th[CONC_THREADS];

	o->path = path;
	pthread_mutex_init(&o->mu, NULL);
	pthread_barrier_init(&o->start, NULL, CONC_THREADS);
	for (int i = 0; i < CONC_THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, open_racer, o), 0);
	for (int i = 0; i < CONC_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < CONC_THREADS; i++)
		ck_assert_msg(o->rc[i] == ZMB_OK, "thread %d: %s", i, o->err[i] ? o->err[i] : "?");
	struct state *st = open_rw(path);
	ck_assert_int_eq(q_int(st, "PRAGMA user_version"), state_schema_version());
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM accounts"), 1);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM meta WHERE key = 'job_identity'"), 1);
	state_close(st);
	pthread_barrier_destroy(&o->start);
	pthread_mutex_destroy(&o->mu);
	free(o);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/* ---- the claim plan on 100k rows ---- */

START_TEST(test_claim_uses_index)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	static const long long sizes[] = { 100, -1, 3000, 7, 123456 };
	struct account_row r;
	double wait;

	add_accounts(st, 100000, sizes, 5);
	exec_ok(st, "ANALYZE");
	/* every claim below also prepares the cached claim statements */
	double t0 = mono_now();
	for (int i = 0; i < 200; i++) {
		ck_assert_int_eq(state_claim(st, 0, i % 2 ? CLAIM_AS_LISTED : CLAIM_LARGEST_FIRST,
					     false, wall_now(), &r, &wait), ZMB_OK);
		if (i == 0)
			ck_assert_int_eq(r.size, 123456);
		state_account_release(&r);
	}
	double dt = mono_now() - t0;
	exec_ok(st, "UPDATE accounts SET state = 'exported' WHERE id IN (7, 8)");
	ck_assert_int_eq(state_claim(st, 0, CLAIM_AS_LISTED, false, wall_now(), &r, &wait), ZMB_OK);
	state_account_release(&r);
	ck_assert_int_eq(state_claim(st, 0, CLAIM_LARGEST_FIRST, false, wall_now(), &r, &wait), ZMB_OK);
	state_account_release(&r);
	exec_ok(st, "UPDATE accounts SET next_try_at = 1e12 WHERE state = 'pending'");
	ck_assert_int_eq(state_claim(st, 0, CLAIM_LARGEST_FIRST, false, wall_now(), &r, &wait),
			 ZMB_ENOTFOUND);
	exec_ok(st, "UPDATE accounts SET next_try_at = 0 WHERE state = 'pending'");

	/* the statements state.c really uses: EXPLAIN QUERY PLAN of each, and
	 * SQLite's own counters (no full scan step, no sort) */
	int nclaim = 0, nwait = 0;
	for (sqlite3_stmt *s = sqlite3_next_stmt(state_db(st), NULL); s;
	     s = sqlite3_next_stmt(state_db(st), s)) {
		const char *sql = sqlite3_sql(s);
		bool claim = tu_contains(sql, "INDEXED BY accounts_claim_");
		bool wait_q = tu_contains(sql, "INDEXED BY accounts_backoff");
		if (!claim && !wait_q)
			continue;
		nclaim += claim;
		nwait += wait_q;
		ck_assert_int_eq(sqlite3_stmt_status(s, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0), 0);
		ck_assert_int_eq(sqlite3_stmt_status(s, SQLITE_STMTSTATUS_SORT, 0), 0);
		ck_assert_int_eq(sqlite3_stmt_status(s, SQLITE_STMTSTATUS_AUTOINDEX, 0), 0);
		char *eqp = xasprintf("EXPLAIN QUERY PLAN %s", sql);
		sqlite3_stmt *p = NULL;
		ck_assert_int_eq(sqlite3_prepare_v2(state_db(st), eqp, -1, &p, NULL), SQLITE_OK);
		struct buf plan = BUF_INIT;
		for (int i = 1; i <= sqlite3_bind_parameter_count(p); i++)
			sqlite3_bind_double(p, i, 1e9);
		while (sqlite3_step(p) == SQLITE_ROW)
			buf_addf(&plan, "%s\n", sqlite3_column_text(p, 3));
		sqlite3_finalize(p);
		ck_assert_msg(tu_contains(plan.s, "SEARCH accounts USING "), "%s\n-> %s", sql, plan.s);
		ck_assert_msg(tu_contains(plan.s, claim ? "INDEX accounts_claim_" : "INDEX accounts_backoff"),
			      "%s\n-> %s", sql, plan.s);
		ck_assert_msg(tu_contains(plan.s, "(state=?)"), "%s\n-> %s", sql, plan.s);
		ck_assert_msg(!tu_contains(plan.s, "TEMP B-TREE") && !tu_contains(plan.s, "SCAN"),
			      "%s\n-> %s", sql, plan.s);
		buf_release(&plan);
		free(eqp);
	}
	ck_assert_int_eq(nclaim, 4);
	ck_assert_int_eq(nwait, 2);
	/* the query plans above are the guard (an index search, no scan, no
	 * sort); this bound only catches the pathological (a full scan per claim
	 * under TSan on a loaded 2-core machine is far beyond it).  Speed figures
	 * belong to make bench (tests/bench/dbscale.c). */
	ck_assert_msg(dt < 30.0, "200 claims on 100k rows took %.2f s", dt);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/* ---- crash recovery ---- */

static char *spool_file(const char *dir, const char *account, bool create)
{
	char *p = xasprintf("%s/%s.tgz", dir, account);
	if (create) {
		FILE *f = fopen(p, "w");
		if (f) {
			fputs("archive", f);
			fclose(f);
		}
	}
	return p;
}

/*
 * Child of test_recover_after_exit: leaves a0 exporting (with a partial
 * spool file), a1 importing with its archive on disk, a2 importing whose
 * archive vanished, a3 done, stage "ldap" running; then _exit()s without
 * closing anything.
 */
static void child_scenario(const char *path, const char *dir)
{
	struct state *st = NULL;
	struct account_row r;
	double wait;
	int64_t run;
	int code = 10;

	if (state_open(path, IDENT, STATE_WRITE, &st, NULL) || state_run_begin(st, "run", &run))
		_exit(code);
	for (int i = 0; i < 4; i++) {
		code = 20 + i;
		if (state_claim(st, run, CLAIM_AS_LISTED, false, wall_now(), &r, &wait) ||
		    r.seq != i)
			_exit(code);
		char *spool = spool_file(dir, r.account, true);
		struct acct_update u = ACCT_UPDATE_INIT;
		u.spool_path = spool;
		if (i == 0) {
			char *sql = xasprintf("UPDATE accounts SET spool_path = '%s' WHERE id = %lld",
					      spool, (long long)r.id);
			if (sqlite3_exec(state_db(st), sql, NULL, NULL, NULL) != SQLITE_OK)
				_exit(code);
			free(sql);
		} else if (i == 1 || i == 2) {
			if (state_transition(st, run, r.id, ACCT_EXPORTING, ACCT_EXPORTED, &u) ||
			    state_transition(st, run, r.id, ACCT_EXPORTED, ACCT_IMPORTING, NULL))
				_exit(code + 10);
			if (i == 2)
				unlink(spool);
		} else {
			u.spool_path = "";
			unlink(spool);
			if (state_transition(st, run, r.id, ACCT_EXPORTING, ACCT_DONE, &u))
				_exit(code + 10);
		}
		free(spool);
		state_account_release(&r);
	}
	if (state_stage_ensure(st, "ldap", "exec", 0) || state_stage_begin(st, "ldap", run))
		_exit(40);
	_exit(0);
}

static int wait_child(pid_t pid)
{
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

START_TEST(test_recover_after_exit)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	struct account_row r;
	struct stage_row sr;
	int n = -1;

	add_accounts(st, 6, NULL, 0);
	state_close(st);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child_scenario(path, dir);
	ck_assert_int_eq(wait_child(pid), 0);

	char *a0 = spool_file(dir, "a00000@x.test", false);
	char *a1 = spool_file(dir, "a00001@x.test", false);
	ck_assert_int_eq(access(a0, F_OK), 0);
	st = open_rw(path);
	ck_assert_str_eq(acct_state_of(st, "a00000@x.test"), "exporting");
	ck_assert_str_eq(acct_state_of(st, "a00001@x.test"), "importing");
	ck_assert_int_eq(state_recover(st, &n), ZMB_OK);
	ck_assert_int_eq(n, 4);       /* three accounts and one stage */
	ck_assert_int_eq(state_account_get(st, "a00000@x.test", &r), ZMB_OK);
	ck_assert_int_eq(r.state, ACCT_PENDING);
	ck_assert_ptr_null(r.spool_path);
	state_account_release(&r);
	ck_assert_int_ne(access(a0, F_OK), 0);            /* partial file removed */
	ck_assert_int_eq(state_account_get(st, "a00001@x.test", &r), ZMB_OK);
	ck_assert_int_eq(r.state, ACCT_EXPORTED);
	ck_assert_str_eq(r.spool_path, a1);
	state_account_release(&r);
	ck_assert_int_eq(access(a1, F_OK), 0);            /* complete archive kept */
	ck_assert_int_eq(state_account_get(st, "a00002@x.test", &r), ZMB_OK);
	ck_assert_int_eq(r.state, ACCT_PENDING);
	ck_assert_ptr_null(r.spool_path);
	state_account_release(&r);
	ck_assert_str_eq(acct_state_of(st, "a00003@x.test"), "done");
	ck_assert_str_eq(acct_state_of(st, "a00004@x.test"), "pending");
	ck_assert_int_eq(state_stage_get(st, "ldap", &sr), ZMB_OK);
	ck_assert_int_eq(sr.state, STAGE_PENDING);
	ck_assert_int_eq(sr.attempts, 1);
	state_stage_release(&sr);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM accounts WHERE owner_run IS NOT NULL"), 0);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM events WHERE message LIKE 'recovered%'"), 3);
	/* idempotent */
	ck_assert_int_eq(state_recover(st, &n), ZMB_OK);
	ck_assert_int_eq(n, 0);
	/* the exported one is claimed first, straight into import */
	ck_assert_int_eq(state_claim(st, 0, CLAIM_LARGEST_FIRST, false, wall_now(), &r, NULL), ZMB_OK);
	ck_assert_str_eq(r.account, "a00001@x.test");
	ck_assert_int_eq(r.state, ACCT_IMPORTING);
	state_account_release(&r);
	state_close(st);
	free(a0);
	free(a1);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/* Child of test_recover_after_sigkill: works until killed. */
static void child_forever(const char *path, const char *dir)
{
	struct state *st = NULL;
	struct account_row r;
	int64_t run;

	if (state_open(path, IDENT, STATE_WRITE, &st, NULL) || state_run_begin(st, "run", &run))
		_exit(10);
	for (;;) {
		if (state_claim(st, run, CLAIM_AS_LISTED, false, wall_now(), &r, NULL))
			_exit(11);
		struct acct_update u = ACCT_UPDATE_INIT;
		char *spool = spool_file(dir, r.account, r.seq % 3 != 0);
		u.spool_path = spool;
		if (r.seq % 3 == 1) {
			if (state_transition(st, run, r.id, ACCT_EXPORTING, ACCT_EXPORTED, &u) ||
			    state_transition(st, run, r.id, ACCT_EXPORTED, ACCT_IMPORTING, NULL))
				_exit(12);
		} else if (r.seq % 3 == 2) {
			if (state_transition(st, run, r.id, ACCT_EXPORTING, ACCT_EXPORTED, &u) ||
			    state_transition(st, run, r.id, ACCT_EXPORTED, ACCT_IMPORTING, NULL))
				_exit(13);
			u.spool_path = "";
			u.event = "imported";
			if (state_transition(st, run, r.id, ACCT_IMPORTING, ACCT_DONE, &u))
				_exit(14);
		}
		free(spool);
		state_account_release(&r);
	}
}

START_TEST(test_recover_after_sigkill)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	struct state *ro = NULL;
	int n = -1;

	add_accounts(st, 20000, NULL, 0);
	state_close(st);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child_forever(path, dir);
	/* watch it work through a read-only connection, then kill it mid-run */
	ck_assert_int_eq(state_open(path, IDENT, STATE_READONLY, &ro, NULL), ZMB_OK);
	double t0 = mono_now();
	long long busy = 0;
	while ((busy = q_int(ro, "SELECT count(*) FROM accounts WHERE state != 'pending'")) < 60 &&
	       mono_now() - t0 < 20)
		tu_sleep(0.005);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(wait_child(pid), 128 + SIGKILL);
	ck_assert_int_ge(busy, 60);
	state_close(ro);

	st = open_rw(path);
	char *ok = q_text(state_db(st), "PRAGMA integrity_check");
	ck_assert_str_eq(ok, "ok");
	free(ok);
	long long exporting = q_int(st, "SELECT count(*) FROM accounts WHERE state = 'exporting'");
	long long importing = q_int(st, "SELECT count(*) FROM accounts WHERE state = 'importing'");
	long long done = q_int(st, "SELECT count(*) FROM accounts WHERE state = 'done'");
	long long exported = q_int(st, "SELECT count(*) FROM accounts WHERE state = 'exported'");
	ck_assert_int_gt(exporting + importing, 0);
	ck_assert_int_eq(state_recover(st, &n), ZMB_OK);
	ck_assert_int_eq(n, exporting + importing);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM accounts WHERE state IN"
			       " ('exporting', 'importing')"), 0);
	/* importing rows whose archive exists are exported again, the others pending */
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM accounts WHERE state = 'exported'"),
			 exported + importing);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM accounts WHERE state = 'done'"), done);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM accounts WHERE state = 'exported'"
			       " AND spool_path IS NULL"), 0);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM accounts WHERE seq % 3 = 0"
			       " AND state NOT IN ('pending')"), 0);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/*
 * ZMBATCH_CRASH_AT=k: the k-th durable step _exit(99)s after its COMMIT, so
 * the change of step k is in the DB.  Steps: 1 claim, 2 exporting->exported,
 * 3 exported->importing.
 */
START_TEST(test_crashpoint_after_commit)
{
	static const char *const want[] = { NULL, "exporting", "exported", "importing" };
	static const char *const after[] = { NULL, "pending", "exported", "exported" };

	for (int k = 1; k <= 3; k++) {
		char *dir = tu_tmpdir("state");
		char *path = db_path(dir);
		char *steps = xasprintf("%s/steps", dir);
		struct state *st = open_rw(path);
		int n;

		add_accounts(st, 2, NULL, 0);
		state_close(st);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			char kk[16];
			struct account_row r;
			snprintf(kk, sizeof kk, "%d", k);
			setenv("ZMBATCH_CRASH_AT", kk, 1);
			setenv("ZMBATCH_STEP_LOG", steps, 1);
			/* the DB exists with this identity: opening is no durable step */
			if (state_open(path, IDENT, STATE_WRITE, &st, NULL) ||
			    state_claim(st, 0, CLAIM_AS_LISTED, false, wall_now(), &r, NULL))
				_exit(2);
			char *spool = spool_file(dir, r.account, true);
			struct acct_update u = ACCT_UPDATE_INIT;
			u.spool_path = spool;
			if (state_transition(st, 0, r.id, ACCT_EXPORTING, ACCT_EXPORTED, &u) ||
			    state_transition(st, 0, r.id, ACCT_EXPORTED, ACCT_IMPORTING, NULL))
				_exit(3);
			_exit(4);
		}
		ck_assert_int_eq(wait_child(pid), 99);
		char *log = tu_read(steps);
		ck_assert_ptr_nonnull(log);
		static const char *const lines[] = { "", "1 claim\n", "2 transition\n", "3 transition\n" };
		for (int i = 1; i <= 3; i++)
			ck_assert_msg(tu_contains(log, lines[i]) == (i <= k), "k=%d log:\n%s", k, log);
		free(log);
		st = open_rw(path);
		ck_assert_str_eq(acct_state_of(st, "a00000@x.test"), want[k]);
		ck_assert_str_eq(acct_state_of(st, "a00001@x.test"), "pending");
		ck_assert_int_eq(state_recover(st, &n), ZMB_OK);
		ck_assert_int_eq(n, k == 2 ? 0 : 1);
		ck_assert_str_eq(acct_state_of(st, "a00000@x.test"), after[k]);
		state_close(st);
		tu_rmrf(dir);
		free(steps);
		free(path);
		free(dir);
	}
}
END_TEST

/* ---- open: identity, read-only, schema, modes ---- */

START_TEST(test_job_identity_mismatch)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	char *err = NULL, *v = NULL;

	ck_assert_int_eq(state_meta_get(st, "job_identity", &v), ZMB_OK);
	ck_assert_str_eq(v, IDENT);
	free(v);
	state_close(st);
	st = NULL;
	ck_assert_int_eq(state_open(path, "other|a:7071|b:7071", STATE_WRITE, &st, &err), ZMB_ECONFIG);
	ck_assert_ptr_null(st);
	ck_assert_msg(tu_contains(err, path) && tu_contains(err, IDENT) &&
		      tu_contains(err, "other|a:7071|b:7071"), "%s", err);
	free(err);
	err = NULL;
	ck_assert_int_eq(state_open(path, "other", STATE_READONLY, &st, &err), ZMB_ECONFIG);
	free(err);
	/* NULL identity skips the check */
	ck_assert_int_eq(state_open(path, NULL, STATE_READONLY, &st, NULL), ZMB_OK);
	state_close(st);
	st = open_rw(path);     /* same job: fine, and stored only once */
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM meta WHERE key = 'job_identity'"), 1);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM meta WHERE key = 'created_at'"), 1);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_readonly)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = NULL, *ro = NULL;
	char *err = NULL;

	ck_assert_int_eq(state_open(path, IDENT, STATE_READONLY, &st, &err), ZMB_ENOTFOUND);
	ck_assert_ptr_null(st);
	char *want = xasprintf("no state database at %s: nothing has run yet", path);
	ck_assert_str_eq(err, want);
	free(want);
	free(err);
	ck_assert_int_ne(access(path, F_OK), 0);      /* not created */

	st = open_rw(path);
	add_accounts(st, 3, NULL, 0);
	ck_assert_int_eq(state_open(path, IDENT, STATE_READONLY, &ro, NULL), ZMB_OK);
	/* reads while the writer holds a write transaction (WAL) */
	ck_assert_int_eq(state_begin(st), ZMB_OK);
	ck_assert_int_eq(state_account_upsert(st, "new@x.test", "new@x.test", 9, 1), ZMB_OK);
	long long counts[ACCT_NSTATES];
	ck_assert_int_eq(state_counts(ro, counts), ZMB_OK);
	ck_assert_int_eq(counts[ACCT_PENDING], 3);
	ck_assert_int_eq(state_commit(st), ZMB_OK);
	ck_assert_int_eq(state_counts(ro, counts), ZMB_OK);
	ck_assert_int_eq(counts[ACCT_PENDING], 4);
	/* never writes */
	ck_assert_int_ne(state_event(ro, 0, 0, NULL, "info", "x"), ZMB_OK);
	ck_assert_int_ne(state_meta_set(ro, "k", "v"), ZMB_OK);
	ck_assert_int_ne(sqlite3_exec(state_db(ro), "DELETE FROM accounts", NULL, NULL, NULL), SQLITE_OK);
	state_close(ro);
	state_close(st);

	/* a file that is no state DB */
	char *junk = tu_write(dir, "junk.db", "", 0600);
	ck_assert_int_eq(state_open(junk, NULL, STATE_READONLY, &ro, &err), ZMB_ESTATE);
	ck_assert(tu_contains(err, "not a zmbatch state database"));
	free(err);
	free(junk);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/* A DB of schema 002 with a servers row gets 003's pacing columns, the row kept. */
START_TEST(test_migrate_2_to_3)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	sqlite3 *db = NULL;

	ck_assert_int_ge(state_schema_version(), 3);
	ck_assert_str_eq(zmb_schema_names[2], "003_server_pace.sql");
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, zmb_schema[0], NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, zmb_schema[1], NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db,
		"PRAGMA user_version = 2;"
		"INSERT INTO meta VALUES ('job_identity', '" IDENT "');"
		"INSERT INTO servers (role, host, auth_requests, updated_at) VALUES ('source', 's:1', 4, 1e9);",
		NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	struct state *st = open_rw(path);
	ck_assert_int_eq(q_int(st, "PRAGMA user_version"), state_schema_version());
	ck_assert_int_eq(q_int(st, "SELECT auth_requests * 1000 + requests * 100 + throttled * 10 +"
			       " (rate_limit IS NULL) FROM servers WHERE role = 'source'"), 4001);
	/* counters add up, limits are the last ones written; a new role makes its row */
	ck_assert_int_eq(state_server_pace(st, "source", "s:1", 10, 2, 1.5, 12.5, 4), ZMB_OK);
	ck_assert_int_eq(state_server_pace(st, "source", "s:1", 5, 1, 2.25, 6.25, 2), ZMB_OK);
	ck_assert_int_eq(state_server_pace(st, "target", "t:2", 3, 0, 0, 25, 8), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT requests * 100 + throttled FROM servers WHERE role = 'source'"), 1503);
	ck_assert_int_eq(q_int(st, "SELECT throttle_wait_seconds * 100 + rate_limit * 100 + concurrency_limit"
			       " FROM v_servers WHERE role = 'source'"), 375 + 625 + 2);
	ck_assert_int_eq(q_int(st, "SELECT auth_requests FROM servers WHERE role = 'source'"), 4);
	ck_assert_int_eq(q_int(st, "SELECT requests * 10 + concurrency_limit FROM servers WHERE role = 'target'"), 38);
	ck_assert_int_ne(state_server_pace(st, "bogus", "h", 1, 0, 0, 0, 1), ZMB_OK);
	state_close(st);
	tu_rmrf(dir);
	free(dir);
	free(path);
}
END_TEST

/* 011 rebuilds provision_objects (a CHECK cannot change): a version-10 DB keeps its
 * objects, their ids and events; 'resource' is a kind; the events still refer to it */
START_TEST(test_migrate_10_to_11)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	sqlite3 *db = NULL;

	ck_assert_int_ge(state_schema_version(), 11);
	ck_assert_str_eq(zmb_schema_names[10], "011_provision_resources.sql");
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < 10; i++)
		ck_assert_msg(sqlite3_exec(db, zmb_schema[i], NULL, NULL, NULL) == SQLITE_OK, "%s: %s",
			      zmb_schema_names[i], sqlite3_errmsg(db));
	ck_assert_int_eq(sqlite3_exec(db,
		"PRAGMA user_version = 10;"
		"INSERT INTO meta VALUES ('job_identity', '" IDENT "');"
		"INSERT INTO runs (id, started_at, pid, host, user, command) VALUES (1, 1e9, 42, 'h', 'u', 'run');"
		"INSERT INTO provision_objects (id, stage, kind, name, target, state, outcome, ours,"
		" attempts, target_id) VALUES (7, 'provision', 'list', 'l@x.test', 'l@y.test', 'done',"
		" 'created', 1, 1, 'tid');"
		"INSERT INTO provision_events (at, run_id, object_id, message) VALUES"
		" (1e9, 1, 7, 'creating'), (1e9, 1, 7, 'created');",
		NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	struct state *st = open_rw(path);
	ck_assert_int_eq(q_int(st, "PRAGMA user_version"), state_schema_version());
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM provision_objects WHERE id = 7 AND"
			       " kind = 'list' AND state = 'done' AND outcome = 'created' AND ours = 1"
			       " AND attempts = 1 AND target_id = 'tid'"), 1);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM provision_events WHERE object_id = 7"), 2);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM v_provision"), 1);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM sqlite_master WHERE name IN"
			       " ('provision_events_object', 'provision_objects_new',"
			       " 'provision_events_keep')"), 1);
	ck_assert_int_eq(state_prov_plan(st, "provision", "resource", "room@x.test", "room@y.test"),
			 ZMB_OK);
	struct prov_row pr;
	ck_assert_int_eq(state_prov_get(st, "provision", "resource", "room@x.test", &pr), ZMB_OK);
	ck_assert_int_eq(state_prov_creating(st, 1, pr.id, "creating room@y.test"), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM provision_events"), 3);
	state_prov_release(&pr);
	ck_assert_int_ne(state_prov_plan(st, "provision", "bogus", "x@x.test", "x@y.test"), ZMB_OK);
	/* the events' reference follows the rebuilt table */
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM pragma_foreign_key_list('provision_events')"
			       " WHERE \"table\" = 'provision_objects'"), 1);
	state_close(st);
	tu_rmrf(dir);
	free(dir);
	free(path);
}
END_TEST

START_TEST(test_migrate_1_to_2)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	sqlite3 *db = NULL;

	ck_assert_str_eq(zmb_schema_names[0], "001_init.sql");
	ck_assert_ptr_nonnull(zmb_schema[1]);
	ck_assert_int_ge(state_schema_version(), 2);
	/* a DB as written by a binary that knew only schema 001 */
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, zmb_schema[0], NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db,
		"PRAGMA user_version = 1;"
		"INSERT INTO meta VALUES ('job_identity', '" IDENT "');"
		"INSERT INTO runs (id, started_at, pid, host, user, command, token_refreshes)"
		" VALUES (1, 1e9, 42, 'h', 'u', 'run', 7);"
		"INSERT INTO accounts (account, target, seq, size, state, attempts, bytes, updated_at)"
		" VALUES ('old@x.test', 'old@y.test', 1, 100, 'done', 2, 555, 1e9),"
		"        ('wait@x.test', 'wait@y.test', 2, NULL, 'pending', 1, 0, 1e9);"
		"INSERT INTO events (at, run_id, account_id, message) VALUES (1e9, 1, 1, 'hello');",
		NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	struct state *st = open_rw(path);
	ck_assert_int_eq(q_int(st, "PRAGMA user_version"), state_schema_version());
	ck_assert_int_eq(q_int(st, "SELECT token_refreshes FROM runs WHERE id = 1"), 7);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM events WHERE message = 'hello'"), 1);
	struct account_row r;
	ck_assert_int_eq(state_account_get(st, "old@x.test", &r), ZMB_OK);
	ck_assert_str_eq(r.target, "old@y.test");
	ck_assert_int_eq(r.state, ACCT_DONE);
	ck_assert_int_eq(r.bytes, 555);
	ck_assert_int_eq(r.attempts, 2);
	/* the columns of 004..007 on an old row: unknown, 0 or none */
	ck_assert_ptr_null(r.source_status);
	ck_assert_int_eq(r.warnings, 0);
	ck_assert_int_eq(r.chunks_total, 0);
	ck_assert_int_eq(r.chunks_done, 0);
	ck_assert_int_eq(r.chunk_bytes, 0);
	ck_assert_ptr_null(r.verify_source);
	ck_assert(!r.verify_pending);
	int64_t old_id = r.id;
	state_account_release(&r);
	ck_assert_int_ge(state_schema_version(), 7);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM accounts WHERE source_status IS NULL AND"
			       " target_status IS NULL AND warnings = 0 AND source_host IS NULL AND"
			       " target_host IS NULL AND chunks_total = 0 AND chunks_done = 0 AND"
			       " chunk_bytes = 0 AND verify IS NULL AND verify_detail IS NULL AND"
			       " verified_at IS NULL AND verify_source IS NULL AND verify_pending = 0"), 2);
	/* 006: the chunks table, empty, usable on the old row */
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM chunks"), 0);
	struct chunk_row ch[2];
	memset(ch, 0, sizeof ch);
	ch[0].kind = CHUNK_TREE;
	ch[1].kind = CHUNK_WINDOW;
	ck_assert_int_eq(state_chunks_plan(st, 0, old_id, ch, 2, NULL), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT chunks_total * 10 + chunks_done FROM accounts WHERE id = 1"), 20);
	/* 007: a verdict on the old row, its data kept */
	ck_assert_int_eq(state_account_verdict(st, 0, old_id, "mismatch", "Inbox: 1 missing",
					       "verify: mismatch: Inbox: 1 missing"), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM accounts WHERE account = 'old@x.test' AND"
			       " verify = 'mismatch' AND verify_detail = 'Inbox: 1 missing' AND"
			       " verified_at > 0 AND state = 'done' AND bytes = 555"), 1);
	/* 008: the provision stage's objects, empty, usable on the upgraded DB */
	ck_assert_int_ge(state_schema_version(), 8);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM provision_objects"), 0);
	ck_assert_int_eq(state_prov_plan(st, "provision", "account", "old@x.test", "old@y.test"),
			 ZMB_OK);
	struct prov_row pr;
	ck_assert_int_eq(state_prov_get(st, "provision", "account", "old@x.test", &pr), ZMB_OK);
	ck_assert_str_eq(pr.state, "pending");
	ck_assert_int_eq(state_prov_creating(st, 1, pr.id, "creating old@y.test"), ZMB_OK);
	ck_assert_int_eq(state_prov_done(st, 1, pr.id, "created", "created old@y.test"), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM provision_objects WHERE state = 'done' AND"
			       " outcome = 'created' AND ours = 1"), 1);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM provision_events"), 2);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM v_provision"), 1);
	/* a done object keeps its target when planned again; the CHECKs hold */
	ck_assert_int_eq(state_prov_plan(st, "provision", "account", "old@x.test", "other@y.test"),
			 ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM provision_objects WHERE target = 'old@y.test'"), 1);
	ck_assert_int_ne(state_prov_done(st, 1, pr.id, "bogus", NULL), ZMB_OK);
	ck_assert_int_eq(state_prov_failed(st, 1, pr.id, "boom"), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT attempts FROM provision_objects"), 1);
	state_prov_release(&pr);
	ck_assert_int_eq(state_prov_get(st, "provision", "account", "nobody@x.test", &pr), ZMB_ENOTFOUND);
	/* 010: the target's own zimbraId of a provisioned object, on the upgraded table */
	ck_assert_int_ge(state_schema_version(), 10);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM pragma_table_info('provision_objects')"
			       " WHERE name = 'target_id'"), 1);
	/* 009: the cutover table on the old rows: a mismatched account is not taken, a verified one is */
	ck_assert_int_ge(state_schema_version(), 9);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM sqlite_master WHERE name IN"
			       " ('cutover', 'v_cutover', 'cutover_step')"), 3);
	int batch = 0, nsel = 0;
	enum zmb_rc crc = state_cutover_select(st, 0, "cutover", 200, &batch, &nsel);
	ck_assert_msg(crc == ZMB_OK, "%s", state_errmsg(st));
	ck_assert_int_eq(nsel, 0);
	ck_assert_int_eq(state_account_verdict(st, 0, old_id, "ok", "", "verify: ok"), ZMB_OK);
	ck_assert_int_eq(state_cutover_select(st, 0, "cutover", 200, &batch, &nsel), ZMB_OK);
	ck_assert_int_eq(nsel, 1);
	ck_assert_int_eq(batch, 1);
	struct cutover_row *cr = NULL;
	size_t ncr = 0;
	ck_assert_int_eq(state_cutover_open(st, &cr, &ncr), ZMB_OK);
	ck_assert_uint_eq(ncr, 1);
	ck_assert_str_eq(cr[0].account, "old@x.test");
	ck_assert_int_eq(cr[0].step, CUT_SELECTED);
	cr[0].source_id = xstrdup("sid");
	cr[0].target_id = xstrdup("tid");
	cr[0].target_host = xstrdup("mbox.y.test");
	cr[0].prev_source_status = xstrdup("active");
	cr[0].prev_target_status = xstrdup("locked");
	cr[0].prev_source_transport = xstrdup("");
	cr[0].prev_target_transport = xstrdup("smtp:old");
	ck_assert_int_eq(state_cutover_planned(st, 0, "cutover", &cr[0]), ZMB_OK);
	ck_assert_int_eq(state_cutover_planned(st, 0, "cutover", &cr[0]), ZMB_ECONFLICT);
	ck_assert_int_eq(state_cutover_step(st, 0, "cutover", old_id, CUT_PLANNED, CUT_LOCKED, NULL, NULL,
					    "locked"), ZMB_OK);
	ck_assert_int_eq(state_cutover_step(st, 0, "cutover", old_id, CUT_LOCKED, CUT_SYNCED, NULL, NULL,
					    "skip"), ZMB_EINTERNAL);
	ck_assert_int_eq(state_cutover_step(st, 0, "cutover", old_id, CUT_LOCKED, CUT_ROUTED, "lmtp:a",
					    "lmtp:b", "routed"), ZMB_OK);
	/* another account waits in the queue: the final delta pass would move it too */
	char *qerr = NULL;
	int nq = 0;
	ck_assert_int_eq(state_cutover_queue_delta(st, 0, &nq, &qerr), ZMB_ECONFLICT);
	ck_assert_ptr_nonnull(qerr);
	free(qerr);
	state_cutover_rows_free(cr, ncr);
	long long steps[CUT_NSTEPS], cerrs = 0, batches = 0;
	ck_assert_int_eq(state_cutover_counts(st, steps, &cerrs, &batches), ZMB_OK);
	ck_assert_int_eq(steps[CUT_ROUTED], 1);
	ck_assert_int_eq(batches, 1);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM v_cutover WHERE account = 'old@x.test' AND"
			       " step = 'routed' AND prev_target_transport = 'smtp:old'"), 1);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM events WHERE account_id = 1 AND stage = 'cutover'"),
			 3);
	ck_assert_int_eq(state_cutover_to_roll_back(st, &cr, &ncr), ZMB_OK);
	ck_assert_uint_eq(ncr, 1);
	ck_assert_str_eq(cr[0].prev_source_status, "active");
	ck_assert_str_eq(cr[0].source_transport, "lmtp:a");
	state_cutover_rows_free(cr, ncr);
	/* the same check before any change: the other queued account is counted */
	long long others = 0;
	ck_assert_int_eq(state_cutover_others_queued(st, &others), ZMB_OK);
	ck_assert_int_ge(others, 1);
	/* failed is terminal (not open, not selected again) until reset forgets it */
	ck_assert_int_eq(state_cutover_end(st, 0, "cutover", old_id, CUT_FAILED, "old@x.test: boom"),
			 ZMB_OK);
	ck_assert_int_eq(state_cutover_open(st, &cr, &ncr), ZMB_OK);
	ck_assert_uint_eq(ncr, 0);
	state_cutover_rows_free(cr, ncr);
	ck_assert_int_eq(state_cutover_select(st, 0, "cutover", 200, &batch, &nsel), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM cutover WHERE account_id = 1 AND step = 'failed'"),
			 1);
	int nforgot = 0;
	ck_assert_int_eq(state_cutover_forget(st, old_id, &nforgot), ZMB_OK);
	ck_assert_int_eq(nforgot, 1);
	/* what 002 brings: the servers table + view and the backoff index */
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM sqlite_master WHERE name IN"
			       " ('servers', 'v_servers', 'accounts_backoff')"), 3);
	ck_assert_int_eq(state_server_count(st, "source", "src.example.com", 1, 0, 0), ZMB_OK);
	ck_assert_int_eq(state_server_count(st, "source", "src.example.com", 0, 3, 1), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT auth_requests * 100 + token_refreshes * 10 + auth_failures"
			       " FROM servers WHERE role = 'source'"), 131);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM v_servers WHERE last_auth IS NOT NULL"), 1);
	ck_assert_int_ne(state_server_count(st, "bogus", "h", 1, 0, 0), ZMB_OK);
	/* the migrated DB claims */
	ck_assert_int_eq(state_claim(st, 0, CLAIM_LARGEST_FIRST, false, wall_now(), &r, NULL), ZMB_OK);
	ck_assert_str_eq(r.account, "wait@x.test");
	state_account_release(&r);
	state_close(st);

	/* a DB from a newer zmbatch is refused, both ways */
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	char *err = NULL;
	ck_assert_int_eq(state_open(path, IDENT, STATE_WRITE, &st, &err), ZMB_ESTATE);
	ck_assert_msg(tu_contains(err, "schema version 99") && tu_contains(err, path), "%s", err);
	free(err);
	err = NULL;
	ck_assert_int_eq(state_open(path, IDENT, STATE_READONLY, &st, &err), ZMB_ESTATE);
	ck_assert(tu_contains(err, "newer zmbatch"));
	free(err);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_file_mode_and_pragmas)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	mode_t old = umask(022);
	struct state *st = open_rw(path);
	struct stat sb;
	int64_t run;

	ck_assert_int_eq(state_run_begin(st, "run", &run), ZMB_OK);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	char *wal = xasprintf("%s-wal", path);
	ck_assert_int_eq(stat(wal, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	free(wal);
	umask(old);
	char *jm = q_text(state_db(st), "PRAGMA journal_mode");
	ck_assert_str_eq(jm, "wal");
	free(jm);
	ck_assert_int_eq(q_int(st, "PRAGMA foreign_keys"), 1);
	ck_assert_int_eq(q_int(st, "PRAGMA synchronous"), 1);    /* NORMAL; FULL for final states */
	ck_assert_int_eq(q_int(st, "PRAGMA busy_timeout"), 10000);
	/* foreign keys are enforced */
	ck_assert_int_ne(state_event(st, 12345, 0, NULL, "info", "no such run"), ZMB_OK);
	ck_assert(tu_contains(state_errmsg(st), "FOREIGN KEY"));
	state_close(st);

	/* an unwritable place is a clear error naming the path */
	char *bad = xasprintf("%s/no/such/dir/state.db", dir);
	char *err = NULL;
	ck_assert_int_eq(state_open(bad, IDENT, STATE_WRITE, &st, &err), ZMB_EIO);
	ck_assert(tu_contains(err, bad));
	free(err);
	free(bad);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/* ---- runs, stages, meta, reset, upsert, busy ---- */

START_TEST(test_runs_stages_meta)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	struct stage_row sr;
	int64_t run = 0;
	char *v = NULL;

	ck_assert_int_eq(state_run_begin(st, "run --delta", &run), ZMB_OK);
	ck_assert_int_gt(run, 0);
	ck_assert_int_eq(q_int(st, "SELECT pid FROM runs"), getpid());
	char *host = q_text(state_db(st), "SELECT host || '/' || user || '/' || command FROM runs");
	ck_assert(tu_contains(host, "/run --delta"));
	ck_assert(host[0] != '/');
	free(host);
	ck_assert_int_eq(state_run_count(st, run, 2, 3, 1000), ZMB_OK);
	ck_assert_int_eq(state_run_count(st, run, 1, 0, 24), ZMB_OK);
	ck_assert_int_eq(state_run_end(st, run, 1), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT token_refreshes * 10000 + retries * 1000 + bytes"
			       " FROM runs"), 3 * 10000 + 3 * 1000 + 1024);
	ck_assert_int_eq(q_int(st, "SELECT exit_status FROM runs WHERE ended_at > 0"), 1);
	ck_assert_int_eq(state_run_end(st, 777, 0), ZMB_ENOTFOUND);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM v_runs"), 1);

	ck_assert_int_eq(state_stage_get(st, "ldap", &sr), ZMB_ENOTFOUND);
	ck_assert_int_eq(state_stage_ensure(st, "ldap", "ldap-promote-mmr", 0), ZMB_OK);
	ck_assert_int_eq(state_stage_ensure(st, "migrate", "migrate", 1), ZMB_OK);
	ck_assert_int_eq(state_stage_ensure(st, "ldap", "ldap-promote-mmr", 0), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM stages"), 2);
	ck_assert_int_eq(state_stage_begin(st, "ldap", run), ZMB_OK);
	ck_assert_int_eq(state_stage_get(st, "ldap", &sr), ZMB_OK);
	ck_assert_int_eq(sr.state, STAGE_RUNNING);
	ck_assert_int_eq(sr.attempts, 1);
	ck_assert(sr.started_at > 0 && sr.ended_at == 0);
	state_stage_release(&sr);
	ck_assert_int_eq(state_stage_end(st, "ldap", false, "out", "slapd said no"), ZMB_OK);
	ck_assert_int_eq(state_stage_get(st, "ldap", &sr), ZMB_OK);
	ck_assert_int_eq(sr.state, STAGE_FAILED);
	ck_assert_str_eq(sr.output, "out");
	ck_assert_str_eq(sr.error, "slapd said no");
	ck_assert_str_eq(sr.type, "ldap-promote-mmr");
	ck_assert(sr.ended_at > 0);
	state_stage_release(&sr);
	ck_assert_int_eq(state_stage_begin(st, "ldap", run), ZMB_OK);
	ck_assert_int_eq(state_stage_end(st, "ldap", true, NULL, NULL), ZMB_OK);
	ck_assert_int_eq(state_stage_get(st, "ldap", &sr), ZMB_OK);
	ck_assert_int_eq(sr.state, STAGE_DONE);
	ck_assert_int_eq(sr.attempts, 2);
	ck_assert_ptr_null(sr.error);
	state_stage_release(&sr);
	ck_assert_int_eq(state_stage_reset(st, "ldap"), ZMB_OK);
	ck_assert_int_eq(state_stage_get(st, "ldap", &sr), ZMB_OK);
	ck_assert_int_eq(sr.state, STAGE_PENDING);
	state_stage_release(&sr);
	ck_assert_int_eq(state_stage_begin(st, "nope", run), ZMB_ENOTFOUND);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM events WHERE stage = 'ldap'"), 5);

	ck_assert_int_eq(state_meta_get(st, "k", &v), ZMB_ENOTFOUND);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(state_meta_set(st, "k", "1"), ZMB_OK);
	ck_assert_int_eq(state_meta_set(st, "k", "2"), ZMB_OK);
	ck_assert_int_eq(state_meta_get(st, "k", &v), ZMB_OK);
	ck_assert_str_eq(v, "2");
	free(v);
	ck_assert_int_eq(state_event(st, run, 0, "ldap", "warn", "note"), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM events WHERE level = 'warn'"
			       " AND run_id IS NOT NULL AND account_id IS NULL"), 1);
	/* rollback of a grouped write */
	ck_assert_int_eq(state_begin(st), ZMB_OK);
	ck_assert_int_eq(state_begin(st), ZMB_EINTERNAL);
	ck_assert_int_eq(state_meta_set(st, "k", "3"), ZMB_OK);
	ck_assert_int_eq(state_rollback(st), ZMB_OK);
	ck_assert_int_eq(state_meta_get(st, "k", &v), ZMB_OK);
	ck_assert_str_eq(v, "2");
	free(v);
	ck_assert_int_eq(state_rollback(st), ZMB_OK);
	state_close(st);
	state_close(NULL);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_reset_and_upsert)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	struct account_row r;
	int n = -1;

	add_accounts(st, 5, NULL, 0);
	/* rediscovery refreshes a row that has not started ... */
	ck_assert_int_eq(state_account_upsert(st, "a00000@x.test", "moved@y.test", 40, 99), ZMB_OK);
	ck_assert_int_eq(state_account_get(st, "a00000@x.test", &r), ZMB_OK);
	ck_assert_str_eq(r.target, "moved@y.test");
	ck_assert_int_eq(r.size, 99);
	ck_assert_int_eq(r.seq, 40);
	state_account_release(&r);
	/* ... but not one that has */
	exec_ok(st, "UPDATE accounts SET state = 'done' WHERE account = 'a00001@x.test'");
	ck_assert_int_eq(state_account_upsert(st, "a00001@x.test", "other@y.test", 41, 5), ZMB_OK);
	ck_assert_int_eq(state_account_get(st, "a00001@x.test", &r), ZMB_OK);
	ck_assert_str_eq(r.target, "a00001@x.test");
	ck_assert_int_eq(r.size, -1);
	state_account_release(&r);
	ck_assert_int_eq(state_account_get(st, "zz@x.test", &r), ZMB_ENOTFOUND);

	exec_ok(st, "UPDATE accounts SET state = 'failed', attempts = 3, last_error = 'boom',"
		" finished_at = 1 WHERE seq IN (2, 3)");
	exec_ok(st, "UPDATE accounts SET state = 'exporting' WHERE seq = 4");
	ck_assert_int_eq(state_reset_failed(st, &n), ZMB_OK);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM accounts WHERE state = 'pending'"
			       " AND attempts = 0 AND finished_at IS NULL AND seq IN (2, 3)"), 2);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM events WHERE message LIKE 'reset%'"), 2);
	ck_assert_int_eq(state_reset_failed(st, &n), ZMB_OK);
	ck_assert_int_eq(n, 0);

	ck_assert_int_eq(state_reset_account(st, "a00001@x.test", &n), ZMB_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(acct_state_of(st, "a00001@x.test"), "pending");
	ck_assert_int_eq(state_reset_account(st, "nobody@x.test", &n), ZMB_ENOTFOUND);
	ck_assert(tu_contains(state_errmsg(st), "nobody@x.test"));
	ck_assert_int_eq(state_reset_account(st, "a00004@x.test", &n), ZMB_ECONFLICT);
	ck_assert_str_eq(acct_state_of(st, "a00004@x.test"), "exporting");
	exec_ok(st, "UPDATE accounts SET state = 'exported', attempts = 2, next_try_at = 1e12"
		" WHERE seq = 4");
	ck_assert_int_eq(state_reset_account(st, "a00004@x.test", &n), ZMB_OK);
	ck_assert_int_eq(state_account_get(st, "a00004@x.test", &r), ZMB_OK);
	ck_assert_int_eq(r.state, ACCT_EXPORTED);
	ck_assert_int_eq(r.attempts, 0);
	ck_assert(r.next_try_at == 0);
	state_account_release(&r);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/* SQLITE_FULL (here: max_page_count reached) is ZMB_EIO "disk full". */
START_TEST(test_disk_full)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	char *big = xmalloc(200000);

	memset(big, 'x', 199999);
	big[199999] = '\0';
	long long pages = q_int(st, "PRAGMA page_count");
	char *sql = xasprintf("PRAGMA max_page_count = %lld", pages + 2);
	exec_ok(st, sql);
	free(sql);
	ck_assert_int_eq(state_event(st, 0, 0, NULL, "info", big), ZMB_EIO);
	ck_assert_msg(tu_contains(state_errmsg(st), "disk full") &&
		      tu_contains(state_errmsg(st), path), "%s", state_errmsg(st));
	ck_assert(sqlite3_get_autocommit(state_db(st)));     /* rolled back */
	ck_assert_int_eq(state_event(st, 0, 0, NULL, "info", "small"), ZMB_OK);
	free(big);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/*
 * Fork a process that takes SQLite's write lock on path (BEGIN IMMEDIATE)
 * and holds it for hold_ms (then commits and exits 0; -1: until killed).
 * Returns once the lock is held.
 */
static pid_t lock_holder(const char *path, int hold_ms)
{
	int pfd[2];
	char c = 'x';

	ck_assert_int_eq(pipe(pfd), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		sqlite3 *db = NULL;
		close(pfd[0]);
		if (sqlite3_open(path, &db) != SQLITE_OK ||
		    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			_exit(1);
		if (write(pfd[1], &c, 1) != 1)
			_exit(2);
		if (hold_ms < 0)
			pause();
		usleep((useconds_t)hold_ms * 1000);
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			_exit(3);
		sqlite3_close(db);
		_exit(0);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	return pid;
}

/* Another process holds the write lock longer than busy_timeout. */
START_TEST(test_busy)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);

	add_accounts(st, 1, NULL, 0);
	pid_t pid = lock_holder(path, -1);
	/* shorten the wait for the test; the message still says what happened */
	sqlite3_busy_timeout(state_db(st), 200);
	double t0 = mono_now();
	ck_assert_int_eq(state_meta_set(st, "k", "v"), ZMB_ESTATE);
	ck_assert(mono_now() - t0 >= 0.15);
	ck_assert_msg(tu_contains(state_errmsg(st), "locked by another process"), "%s",
		      state_errmsg(st));
	ck_assert(sqlite3_get_autocommit(state_db(st)));
	kill(pid, SIGKILL);
	wait_child(pid);
	ck_assert_int_eq(state_meta_set(st, "k", "v"), ZMB_OK);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/*
 * A brand-new file is still in rollback-journal mode.  Switching it to WAL
 * reads page 1 and then upgrades to a write lock; when another connection
 * holds that lock, SQLite answers SQLITE_BUSY at once without calling the
 * busy handler (it would deadlock otherwise).  Seen in CI: one of 8 threads
 * opening a new DB together failed "set WAL mode: database is locked".
 * Here another process holds the write lock for 2 s on the new file:
 * state_open must wait for it, not fail at once.
 */
START_TEST(test_open_while_new_file_locked)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);

	pid_t pid = lock_holder(path, 2000);
	double t0 = mono_now();
	struct state *st = NULL;
	char *err = NULL;
	enum zmb_rc rc = state_open(path, IDENT, STATE_WRITE, &st, &err);
	ck_assert_msg(rc == ZMB_OK, "state_open while another process writes: %s", err ? err : "?");
	ck_assert(mono_now() - t0 >= 0.2);
	ck_assert_int_eq(q_int(st, "PRAGMA user_version"), state_schema_version());
	ck_assert_int_eq(wait_child(pid), 0);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/* The DB's shard (meta "shard"): recorded by the first write, compared afterwards. */
START_TEST(test_shard_recorded_and_checked)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir), *other = xasprintf("%s/whole.db", dir), *v = NULL;
	struct state *st = open_rw(path);
	ck_assert_int_eq(state_check_shard(st, "1/4"), ZMB_OK);
	ck_assert_int_eq(state_meta_get(st, "shard", &v), ZMB_OK);
	ck_assert_str_eq(v, "1/4");
	free(v);
	ck_assert_int_eq(state_check_shard(st, "1/4"), ZMB_OK);
	ck_assert_int_eq(state_check_shard(st, "1/3"), ZMB_ECONFIG);
	ck_assert_msg(strstr(state_errmsg(st), "belongs to shard 1/4, not to shard 1/3"), "%s", state_errmsg(st));
	ck_assert_int_eq(state_check_shard(st, "2/4"), ZMB_ECONFIG);
	ck_assert_int_eq(state_check_shard(st, ""), ZMB_ECONFIG);   /* unsharded */
	ck_assert_msg(strstr(state_errmsg(st), "belongs to shard 1/4: give --shard 1/4"), "%s", state_errmsg(st));
	state_close(st);
	/* read-only: compared, never written */
	struct state *ro = NULL;
	char *err = NULL;
	ck_assert_int_eq(state_open(path, NULL, STATE_READONLY, &ro, &err), ZMB_OK);
	ck_assert_int_eq(state_check_shard(ro, "1/4"), ZMB_OK);
	ck_assert_int_eq(state_check_shard(ro, "0/4"), ZMB_ECONFIG);
	state_close(ro);
	/* an unsharded DB that holds accounts is no shard's; an empty one becomes one */
	st = open_rw(other);
	ck_assert_int_eq(state_check_shard(st, ""), ZMB_OK);
	ck_assert_int_eq(state_account_upsert(st, "a@x.test", "a@x.test", 0, 1), ZMB_OK);
	ck_assert_int_eq(state_check_shard(st, "0/2"), ZMB_ECONFIG);
	ck_assert_msg(strstr(state_errmsg(st), "not sharded and already holds 1 account"), "%s", state_errmsg(st));
	ck_assert_int_eq(state_meta_get(st, "shard", &v), ZMB_ENOTFOUND);
	ck_assert_int_eq(state_check_shard(st, ""), ZMB_OK);
	state_close(st);
	tu_rmrf(dir);
	free(other);
	free(path);
	free(dir);
}
END_TEST

/*
 * state_shard_deal: a run's listing replaces the last one (an account gone
 * from it goes); a NULL home is kept as NULL.
 */
START_TEST(test_shard_deal_replaced)
{
	char *dir = tu_tmpdir("state");
	char *path = db_path(dir);
	struct state *st = open_rw(path);
	struct shard_deal_item v[2] = {
		{ .account = "a@x.test", .home = "mbox2", .dealt = 1 },
		{ .account = "b@x.test", .home = NULL, .dealt = 0 },
	};
	ck_assert_int_eq(state_shard_deal(st, v, 2), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM shard_deal"), 2);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM shard_deal WHERE account = 'b@x.test' AND "
			       "home IS NULL AND shard = 0"), 1);
	/* a@ moved; b@ gone from the listing */
	v[0].home = "mbox1";
	v[0].dealt = 0;
	ck_assert_int_eq(state_shard_deal(st, v, 1), ZMB_OK);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM shard_deal"), 1);
	ck_assert_int_eq(q_int(st, "SELECT count(*) FROM shard_deal WHERE account = 'a@x.test' AND "
			       "home = 'mbox1' AND shard = 0 AND seen_at > 0"), 1);
	state_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}
END_TEST

/* ---- suite ---- */

static Suite *make_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("machine");
	tcase_add_test(tc, test_state_names);
	tcase_add_test(tc, test_shard_recorded_and_checked);
	tcase_add_test(tc, test_shard_deal_replaced);
	tcase_add_test(tc, test_transition_all_pairs);
	tcase_add_test(tc, test_transition_conflict_and_fields);
	tcase_add_test(tc, test_final_states_fsynced);
	suite_add_tcase(s, tc);

	tc = tcase_create("claim");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_claim_largest_first);
	tcase_add_test(tc, test_claim_as_listed_exported_first);
	tcase_add_test(tc, test_claim_backoff);
	tcase_add_loop_test(tc, test_claim_concurrent, 0, 2);
	tcase_add_loop_test(tc, test_open_concurrent, 0, 20);
	tcase_add_test(tc, test_claim_uses_index);
	suite_add_tcase(s, tc);

	tc = tcase_create("crash");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_recover_after_exit);
	tcase_add_test(tc, test_recover_after_sigkill);
	tcase_add_test(tc, test_crashpoint_after_commit);
	suite_add_tcase(s, tc);

	tc = tcase_create("open");
	tcase_add_test(tc, test_job_identity_mismatch);
	tcase_add_test(tc, test_readonly);
	tcase_add_test(tc, test_migrate_1_to_2);
	tcase_add_test(tc, test_migrate_10_to_11);
	tcase_add_test(tc, test_migrate_2_to_3);
	tcase_add_test(tc, test_file_mode_and_pragmas);
	tcase_add_test(tc, test_runs_stages_meta);
	tcase_add_test(tc, test_reset_and_upsert);
	tcase_add_test(tc, test_busy);
	tcase_add_test(tc, test_open_while_new_file_locked);
	tcase_add_test(tc, test_disk_full);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
