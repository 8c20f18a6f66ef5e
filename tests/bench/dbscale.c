/*
 * tests/bench/dbscale.c - state DB scale benchmark (issue 6, figure 4).
 *
 *   dbscale DB N THREADS CLAIM_SECONDS
 *
 * Creates DB (must not exist) with the job identity "bench|127.0.0.1:1|127.0.0.1:2",
 * upserts N accounts (one transaction, state_account_upsert, sizes heavy-tailed),
 * records run --shard-by server's listing of them twice (state_shard_deal:
 * a first run's, then a later run's replacing it), then THREADS threads,
 * each with its own connection (state_open) and, as the workers of a run, one shared write lock (state_set_write_lock), claim
 * largest-first until nothing is claimable or CLAIM_SECONDS have passed.
 * Finally the rows get a realistic mix of states (done/failed/pending, with
 * bytes, seconds and error texts) in one SQL transaction, so that `zmbatch
 * report`/`status` run against a full-size DB (timed by tests/bench/bench.py).
 *
 * Output: one "key=value" line per figure (parsed by bench.py).
 * Single-threaded except the claim phase; each claim thread owns its
 * struct state and its counters; the main thread only reads them after join.
 */
#include "state.h"
#include "zmb.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct claimer {
	pthread_t thread;
	const char *path;
	int64_t run_id;
	double deadline;
	long long claims;
	long long errors;
	double max_latency;
	struct state_wlock *wlock;   /* shared write lock, as migrate.c gives its workers */
};

static void *claim_main(void *arg)
{
	struct claimer *c = arg;
	struct state *st = NULL;
	char *err = NULL;

	if (state_open(c->path, NULL, STATE_WRITE, &st, &err)) {
		fprintf(stderr, "dbscale: claim thread: cannot open '%s': %s\n", c->path, err ? err : "?");
		c->errors++;
		goto out;
	}
	state_set_write_lock(st, c->wlock);
	while (mono_now() < c->deadline) {
		struct account_row a;
		double wait = -1, t = mono_now();
		memset(&a, 0, sizeof a);
		enum zmb_rc rc = state_claim(st, c->run_id, CLAIM_LARGEST_FIRST, false, wall_now(), &a, &wait);
		double lat = mono_now() - t;
		if (rc == ZMB_ENOTFOUND)
			break;
		if (rc) {
			if (c->errors++ == 0)
				fprintf(stderr, "dbscale: claim failed after %.1f s: %s\n", lat, state_errmsg(st));
			continue;
		}
		if (lat > c->max_latency)
			c->max_latency = lat;
		c->claims++;
		state_account_release(&a);
	}
out:
	state_close(st);
	free(err);
	return NULL;
}

static int exec_sql(struct state *st, const char *sql)
{
	char *e = NULL;
	if (sqlite3_exec(state_db(st), sql, NULL, NULL, &e) != SQLITE_OK) {
		fprintf(stderr, "dbscale: %s: %s\n", sql, e ? e : "?");
		sqlite3_free(e);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct state *st = NULL;
	struct claimer *cl = NULL;
	char *err = NULL;
	int ret = 1;

	if (argc != 5) {
		fprintf(stderr, "usage: dbscale DB N THREADS CLAIM_SECONDS\n");
		return 64;
	}
	const char *path = argv[1];
	long n = strtol(argv[2], NULL, 10);
	int threads = atoi(argv[3]);
	double claim_s = atof(argv[4]);
	if (n <= 0 || threads <= 0 || claim_s <= 0) {
		fprintf(stderr, "dbscale: bad arguments\n");
		return 64;
	}

	double t0 = mono_now();
	if (state_open(path, "bench|127.0.0.1:1|127.0.0.1:2", STATE_WRITE, &st, &err)) {
		fprintf(stderr, "dbscale: cannot open '%s': %s\n", path, err ? err : "?");
		goto out;
	}
	printf("open_s=%.3f\n", mono_now() - t0);

	/* 1. discovery upsert, one transaction */
	unsigned long long x = 88172645463325252ULL;   /* xorshift: deterministic sizes */
	t0 = mono_now();
	if (state_begin(st))
		goto dberr;
	for (long i = 0; i < n; i++) {
		char acct[64], tgt[64];
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		long long size = (i % 10 == 0) ? 0 : (long long)(4096.0 / (((double)(x % 1000000) + 1) / 1e6));
		snprintf(acct, sizeof acct, "user%06ld@example.com", i);
		snprintf(tgt, sizeof tgt, "user%06ld@example.net", i);
		if (state_account_upsert(st, acct, tgt, i, size))
			goto dberr;
	}
	if (state_commit(st))
		goto dberr;
	double up = mono_now() - t0;
	printf("upsert_accounts=%ld\nupsert_s=%.3f\nupsert_per_s=%.0f\n", n, up, n / up);

	/* 1b. run --shard-by server's record of its listing (state_shard_deal): into an
	 * empty table on the first run, replacing the last listing on each later one */
	struct shard_deal_item *deal = xcalloc((size_t)n, sizeof *deal);
	char (*names)[48] = xcalloc((size_t)n, sizeof *names);
	for (long i = 0; i < n; i++) {
		snprintf(names[i], sizeof names[i], "user%06ld@example.com", i);
		deal[i].account = names[i];
		deal[i].home = i % 3 ? "mbox1.example.com" : "mbox2.example.com";
		deal[i].dealt = (unsigned)(i % 3 != 0);
	}
	for (int pass = 0; pass < 2; pass++) {
		t0 = mono_now();
		enum zmb_rc drc = state_shard_deal(st, deal, (size_t)n);
		double ds = mono_now() - t0;
		if (drc) {
			free(deal);
			free(names);
			goto dberr;
		}
		printf("deal_%s_s=%.3f\n", pass ? "again" : "first", ds);
	}
	free(deal);
	free(names);

	/* 2. claims, THREADS connections */
	int64_t run_id = 0;
	if (state_run_begin(st, "bench dbscale", &run_id))
		goto dberr;
	cl = xcalloc((size_t)threads, sizeof *cl);
	static struct state_wlock wlock;
	state_wlock_init(&wlock);
	t0 = mono_now();
	int started = 0;
	for (int i = 0; i < threads; i++) {
		cl[i].path = path;
		cl[i].wlock = &wlock;
		cl[i].run_id = run_id;
		cl[i].deadline = t0 + claim_s;
		if (pthread_create(&cl[i].thread, NULL, claim_main, &cl[i]) != 0)
			break;
		started++;
	}
	long long claims = 0, errors = 0;
	double maxlat = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(cl[i].thread, NULL);
		claims += cl[i].claims;
		errors += cl[i].errors;
		if (cl[i].max_latency > maxlat)
			maxlat = cl[i].max_latency;
	}
	double cs = mono_now() - t0;
	printf("claim_threads=%d\nclaims=%lld\nclaim_errors=%lld\nclaim_s=%.3f\nclaims_per_s=%.0f\n"
	       "claim_max_latency_ms=%.1f\n", started, claims, errors, cs, claims / cs, maxlat * 1000);

	/* 3. a realistic end state for report/status: 70% done, 3% failed, rest pending */
	t0 = mono_now();
	if (exec_sql(st, "BEGIN IMMEDIATE") ||
	    exec_sql(st, "UPDATE accounts SET state = 'done', bytes = COALESCE(size, 0), "
			 "seconds = 1.0 + (id % 97) / 10.0, started_at = 1700000000 + id, "
			 "finished_at = 1700000002 + id, owner_run = NULL WHERE id % 100 < 70") ||
	    exec_sql(st, "UPDATE accounts SET state = 'failed', attempts = 3, "
			 "last_error = 'target account ' || target || ' does not exist', "
			 "error_class = 'permanent', finished_at = 1700000003 + id, owner_run = NULL "
			 "WHERE id % 100 BETWEEN 70 AND 72") ||
	    exec_sql(st, "UPDATE accounts SET state = 'pending', owner_run = NULL "
			 "WHERE id % 100 > 72") ||
	    exec_sql(st, "COMMIT"))
		goto out;
	printf("mix_s=%.3f\n", mono_now() - t0);
	if (state_run_end(st, run_id, 0))
		goto dberr;
	ret = 0;
	goto out;
dberr:
	fprintf(stderr, "dbscale: '%s': %s\n", path, state_errmsg(st));
out:
	free(cl);
	free(err);
	state_close(st);
	return ret;
}
