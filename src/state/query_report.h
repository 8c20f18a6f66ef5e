/*
 * query_report.h - the named read-only queries behind `report`, `status` and
 * `accounts`: the only SQL the report side runs.
 *
 * Each query takes a plain sqlite3 connection (state_db() of a
 * STATE_READONLY state, or any connection in tests) and either fills a
 * plain struct or calls a row callback once per row, in the order named.
 * Strings inside a row passed to a callback are borrowed: valid only during
 * that call (copy what you keep); a SQL NULL is a NULL pointer.  Structs
 * filled for the caller own their strings (release functions below).
 *
 * Every query is an aggregate, an indexed lookup, or a stream that hands
 * out each row as it comes: nothing here grows with the number of accounts.
 * Wrap several queries in qr_read_begin()/qr_read_end() to see one
 * consistent snapshot while a run writes (WAL).
 *
 * Errors: ZMB_ESTATE with *err = "cannot read state database (WHAT): MSG"
 * (WHAT is "prepare" or the table read; *err is set only when still NULL;
 * the caller frees it).  Main thread only (commands); a connection must not
 * be used by another thread while a query runs.
 */
#ifndef ZMB_QUERY_REPORT_H
#define ZMB_QUERY_REPORT_H

#include "state.h"

/* ---- the read transaction ---- */

/* BEGIN a read transaction unless the caller already has one (*own = false). */
enum zmb_rc qr_read_begin(sqlite3 *db, bool *own, char **err);
void qr_read_end(sqlite3 *db, bool own);      /* COMMIT when own */

/* ---- aggregates ---- */

/* Accounts by state: one grouped pass (index = enum acct_state). */
struct qr_state_totals {
	long long count[ACCT_NSTATES];
	long long bytes[ACCT_NSTATES];   /* sum of `bytes` */
	long long size[ACCT_NSTATES];    /* sum of `size`, unknown = 0 */
	long long moved[ACCT_NSTATES];   /* bytes of the steps done of passes not finished (schema 6) */
	long long accounts;              /* every row, states unknown to this binary too */
};
enum zmb_rc qr_state_totals(sqlite3 *db, struct qr_state_totals *t, char **err);

/*
 * The rows of `runs` that are runs: command "run" or "run ..." (other
 * writing commands, e.g. reset, record rows too and are ignored).
 */
struct qr_run_totals {
	long long runs, token_refreshes, retries, bytes;
};
enum zmb_rc qr_run_totals(sqlite3 *db, struct qr_run_totals *t, char **err);

/* Every run (as qr_run_totals counts them) by start: its span, and whose it is. */
struct qr_run_span {
	double started_at, ended_at;   /* ended_at 0: NULL (running, or died) */
	const char *host;
	long long pid;
	bool last;                     /* the newest run of its DB (of its shard's, merged) */
};
enum zmb_rc qr_run_spans(sqlite3 *db, void (*fn)(void *arg, const struct qr_run_span *row), void *arg,
			 char **err);

/* End of the last run that exited 0; 0 when none. */
enum zmb_rc qr_last_success(sqlite3 *db, double *ended_at, char **err);

/* The run with the highest id (present = false when none). */
struct qr_run {
	bool present;
	long long id;
	double started_at;
	double ended_at;        /* 0 = NULL (still running, or died) */
	long long pid;
	char *host;             /* owned */
	char *command;          /* owned */
	bool has_exit;
	int exit_status;
	long long token_refreshes, retries, bytes;
};
enum zmb_rc qr_last_run(sqlite3 *db, struct qr_run *r, char **err);
void qr_run_release(struct qr_run *r);       /* NULL-safe */

/* The job's name from meta: job_name, else the first field of job_identity,
 * else "" (*name owned by the caller). */
enum zmb_rc qr_job_name(sqlite3 *db, char **name, char **err);

/* Does the DB have the per-server counters (schema 002 and later)? */
bool qr_has_servers(sqlite3 *db);

/* Sum of `bytes` of accounts in state done that finished at or after `since`. */
enum zmb_rc qr_done_bytes_since(sqlite3 *db, double since, long long *bytes, char **err);

/* ---- row streams ---- */

/* Stages in job order (position, name). */
struct qr_stage {
	const char *name, *type, *state;
	long long attempts;
	const char *error;
	double started_at, ended_at;    /* 0 = NULL */
	const char *output;             /* the stage's output lines (its results), NULL = none */
};
enum zmb_rc qr_stages(sqlite3 *db, void (*fn)(void *arg, const struct qr_stage *row),
		      void *arg, char **err);

/* Per-server counters by role (needs qr_has_servers()). */
struct qr_server {
	const char *role, *host;
	long long auth_requests, token_refreshes, auth_failures;
	double last_auth_at;            /* 0 = NULL */
	/* pacing (schema 003); has_pace false: not recorded (an older DB or run) */
	bool has_pace;
	long long requests, throttled;  /* answers; of them HTTP 429/503 */
	double throttle_wait_seconds;
	double rate_limit;              /* requests/s in force; 0 = no cap */
	long long concurrency_limit;    /* requests in flight allowed */
};
enum zmb_rc qr_servers(sqlite3 *db, void (*fn)(void *arg, const struct qr_server *row),
		       void *arg, char **err);

/* Accounts in listing order (seq, id); state < 0 = all, else only that enum acct_state. */
struct qr_account {
	const char *account, *target, *state;
	long long attempts, bytes;
	bool has_seconds;
	double seconds;
	const char *error;              /* last_error */
	const char *source_status;      /* zimbraAccountStatus (schema 004), NULL = not read */
	const char *target_status;
	long long warnings;             /* items the last import left out */
	const char *source_host, *target_host;   /* mail hosts (schema 5; NULL unknown) */
	long long chunks_done, chunks_total;     /* steps of the last pass (schema 6); 0/0 = whole */
	const char *verify;             /* 'ok', 'mismatch', 'unverifiable' (schema 7); NULL = not verified */
	const char *verify_detail;      /* the verdict's folders and figures, or why; NULL none */
};
/*
 * Accounts by verdict (schema 7): index QR_VERIFY_OK, _MISMATCH,
 * _UNVERIFIABLE, _NONE (not verified: NULL); before schema 7 every account
 * counts as none.
 */
enum { QR_VERIFY_OK, QR_VERIFY_MISMATCH, QR_VERIFY_UNVERIFIABLE, QR_VERIFY_NONE, QR_VERIFY_N };
extern const char *const qr_verify_names[QR_VERIFY_N];   /* "ok" ... "none" */
enum zmb_rc qr_verify_counts(sqlite3 *db, long long v[QR_VERIFY_N], char **err);
/* Done accounts whose last import had warnings ("done with warnings"; 0 before schema 004). */
enum zmb_rc qr_warned(sqlite3 *db, long long *n, char **err);
enum zmb_rc qr_accounts(sqlite3 *db, int state,
			void (*fn)(void *arg, const struct qr_account *row), void *arg, char **err);

/* The `limit` accounts with the most seconds (has_seconds only), slowest first. */
enum zmb_rc qr_slowest(sqlite3 *db, int limit,
		       void (*fn)(void *arg, const struct qr_account *row), void *arg, char **err);

/* Failed accounts: count by error class (NULL class = "unknown"), most first. */
enum zmb_rc qr_failure_classes(sqlite3 *db,
			       void (*fn)(void *arg, const char *error_class, long long n),
			       void *arg, char **err);

/* Failed accounts by name, with attempts, error class and last error. */
struct qr_failure {
	const char *account, *target;
	long long attempts;
	const char *error_class, *error;
};
enum zmb_rc qr_failures(sqlite3 *db, void (*fn)(void *arg, const struct qr_failure *row),
			void *arg, char **err);

/* The first `limit` accounts in flight (exporting, importing), oldest claim first. */
struct qr_in_flight {
	const char *account, *state;
	long long attempts;
	double started_at;              /* 0 = NULL */
	bool has_size;                  /* false: size unknown */
	long long size;
	long long chunks_done, chunks_total;   /* a pass in steps (schema 6); 0/0 = not */
	long long chunk_bytes;          /* moved by its steps done */
};
enum zmb_rc qr_in_flight(sqlite3 *db, int limit,
			 void (*fn)(void *arg, const struct qr_in_flight *row), void *arg,
			 char **err);

/* The last `limit` warn/error events, newest first; who = account, else stage, else "". */
struct qr_event {
	double at;
	bool has_run;
	long long run_id;
	const char *level, *who, *message;
};
enum zmb_rc qr_last_problems(sqlite3 *db, int limit,
			     void (*fn)(void *arg, const struct qr_event *row), void *arg,
			     char **err);

/* The last `limit` accounts with a last_error, most recently updated first. */
struct qr_account_error {
	double at;                      /* finished_at, else updated_at */
	const char *account, *state, *error_class, *error;
};
enum zmb_rc qr_last_account_errors(sqlite3 *db, int limit,
				   void (*fn)(void *arg, const struct qr_account_error *row),
				   void *arg, char **err);

/*
 * One account's events in order (who = the event's stage).  ZMB_ENOTFOUND
 * with *err "no account 'A' in the state database" when it is not there.
 */
enum zmb_rc qr_account_history(sqlite3 *db, const char *account,
			       void (*fn)(void *arg, const struct qr_event *row), void *arg,
			       char **err);

/*
 * A merged DB (state_merge_open): its sources and duplicates.  qr_merged():
 * is db one (it has the table merge_sources)?  Sources by db (the order
 * given), counts[] by enum acct_state.
 */
bool qr_merged(sqlite3 *db);
struct qr_merge_src {
	long long db;
	const char *path, *shard;       /* shard NULL: the DB was not a shard's */
	const char *shard_by;           /* "server" or "hash"; NULL: not recorded (hash) */
	const char *shard_servers;      /* by server: the servers dealt, "a,b,c"; NULL: none */
	long long accounts, planned_bytes, bytes_moved;
	long long counts[ACCT_NSTATES];
};
enum zmb_rc qr_merge_sources(sqlite3 *db, void (*fn)(void *arg, const struct qr_merge_src *row),
			     void *arg, char **err);
struct qr_merge_dup {
	const char *account, *db, *also_in;   /* kept from db; also found in also_in */
};
enum zmb_rc qr_merge_dups(sqlite3 *db, void (*fn)(void *arg, const struct qr_merge_dup *row),
			  void *arg, char **err);
/* The number of duplicates (0 when db is not a merged one). */
enum zmb_rc qr_merge_dup_count(sqlite3 *db, long long *n, char **err);
struct qr_merge_untaken {
	const char *account, *shard, *home;   /* home NULL: none when listed */
	const char *listed_by;                /* the DB whose listing has it */
	double seen_at;                       /* when that listing was made */
};
/* The accounts no merged DB holds (state_merge.c: merge_untaken), by name. */
enum zmb_rc qr_merge_untaken(sqlite3 *db, void (*fn)(void *arg, const struct qr_merge_untaken *row),
			     void *arg, char **err);
/* Their number (0 when db is not a merged one). */
enum zmb_rc qr_merge_untaken_count(sqlite3 *db, long long *n, char **err);

/* ---- for the HTML report's charts and bounded tables (report_html.c) ---- */

/* Done accounts with a finished_at: how many and the first and last finish. */
struct qr_done_span {
	long long n;
	double first, last;             /* 0 when n = 0 */
	long long untimed;              /* done accounts without a finished_at */
};
enum zmb_rc qr_done_span(sqlite3 *db, struct qr_done_span *s, char **err);

/*
 * Done accounts with finished_at in [origin, origin + width * n), grouped in
 * n buckets of width seconds: fn(arg, bucket, accounts, bytes) in bucket
 * order, empty buckets left out.  One grouped pass (n rows at most).
 */
enum zmb_rc qr_done_buckets(sqlite3 *db, double origin, double width, int n,
			    void (*fn)(void *arg, int bucket, long long accounts, long long bytes),
			    void *arg, char **err);

/*
 * Accounts by mailbox size bucket and state: bucket -1 = size unknown, i
 * (0 <= i < nedges) = size < edges[i] (the first edge that fits; edges
 * ascending), nedges = size >= the last edge.  fn(arg, bucket, state,
 * accounts, summed size) once per non-empty pair; nedges <= 16.
 */
enum zmb_rc qr_size_buckets(sqlite3 *db, const long long *edges, int nedges,
			    void (*fn)(void *arg, int bucket, const char *state, long long n,
				       long long size),
			    void *arg, char **err);

/* The `limit` largest accounts of known size still to migrate (pending,
 * exporting, exported, importing), largest first. */
struct qr_sized {
	const char *account, *target, *state;
	long long size, attempts;
};
enum zmb_rc qr_largest_left(sqlite3 *db, int limit,
			    void (*fn)(void *arg, const struct qr_sized *row), void *arg, char **err);

/*
 * Accounts that need a person: failed, or verified 'mismatch' /
 * 'unverifiable' (schema 7).  *total = how many there are; fn gets the
 * first `limit` of them, failed first, then by account.
 */
struct qr_problem {
	const char *account, *target, *state;
	long long attempts;
	const char *error_class, *error;        /* last_error */
	const char *verify, *verify_detail;     /* NULL = not verified */
};
enum zmb_rc qr_problems(sqlite3 *db, int limit, long long *total,
			void (*fn)(void *arg, const struct qr_problem *row), void *arg, char **err);

/* The `limit` newest rows of `runs` that are runs (as qr_run_totals), newest
 * first; the row's strings are borrowed for the call. */
enum zmb_rc qr_runs(sqlite3 *db, int limit, void (*fn)(void *arg, const struct qr_run *row),
		    void *arg, char **err);

#endif
