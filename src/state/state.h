/*
 * state.h - the SQLite state database.
 *
 * One `struct state` is one SQLite connection.  It must only be used by one
 * thread at a time: every worker thread opens its own (state_open() with the
 * same path), as SQLite's multi-thread mode requires.  The database runs in
 * WAL mode with a busy timeout, so `status`/`report` can read while a run
 * writes.
 *
 * Schema: schema/NNN_*.sql, embedded at build time ($(B)/schema_gen.c) and
 * applied in order by PRAGMA user_version at open (STATE_WRITE only).
 * The files of this folder are listed in state_int.h.
 *
 * Every state change is one short `BEGIN IMMEDIATE ... COMMIT` transaction
 * followed by crashpoint() (see zmb.h), so a crash leaves either the old or
 * the new state, never a mix.
 *
 * Account state machine (the transition table is in state_machine.c):
 *
 *   pending ──claim──► exporting ──► exported ──claim──► importing ──► done
 *                      exporting ──archive complete, same worker goes on──► importing
 *   pending ──claim(stream)──────────────────────────►  importing
 *   exporting ──204 empty──► done      any in-flight ──temp error──► pending/exported
 *   any in-flight ──permanent / attempts exhausted──► failed
 *   pending ──policy──► skipped        done/failed/skipped ──reset/delta──► pending
 *
 * Strings returned inside rows are owned by the row; free with
 * state_account_release().
 */
#ifndef ZMB_STATE_H
#define ZMB_STATE_H

#include "zmb.h"
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

enum acct_state {
	ACCT_PENDING = 0,
	ACCT_EXPORTING,
	ACCT_EXPORTED,
	ACCT_IMPORTING,
	ACCT_DONE,
	ACCT_FAILED,
	ACCT_SKIPPED,
	ACCT_NSTATES
};

const char *acct_state_name(enum acct_state s);      /* "pending" ... */
int acct_state_parse(const char *s);                 /* -1 if unknown */
/* Is from -> to a legal transition of the state machine? */
bool acct_transition_ok(enum acct_state from, enum acct_state to);
/* exporting or importing: a worker (or a dead run) holds the account. */
bool acct_in_flight(enum acct_state s);

enum stage_state { STAGE_PENDING = 0, STAGE_RUNNING, STAGE_DONE, STAGE_FAILED };
#define STAGE_NSTATES (STAGE_FAILED + 1)
const char *stage_state_name(enum stage_state s);
int stage_state_parse(const char *s);

struct state;

enum state_flags {
	STATE_WRITE = 1,    /* create if missing, migrate schema, may write */
	STATE_READONLY = 2, /* status/report: never writes, never migrates */
};

/*
 * Open (and with STATE_WRITE create/migrate) the database at `path`.
 * `job_identity` ties the DB to its job: stored on first open, compared on
 * later opens; a mismatch is ZMB_ECONFIG with a message naming both.
 * NULL skips the check.  Files are created 0600.  On error *err is set.
 */
enum zmb_rc state_open(const char *path, const char *job_identity, int flags,
		       struct state **out, char **err);
void state_close(struct state *st);          /* NULL-safe */
/*
 * A fair (first come, first served) lock shared by the connections of one
 * process, e.g. a run's workers: every write transaction takes it first, so
 * threads queue in order instead of polling SQLite's busy handler, which
 * sleeps and lets one thread starve.  Any thread; must outlive the users.
 */
#define STATE_WLOCK_SLOTS 16
struct state_wlock {
	pthread_mutex_t mu;
	/* ticket t waits on cv[t % SLOTS]: a hand-over wakes the next writer
	 * (and at most a few others sharing its slot), not every waiter */
	pthread_cond_t cv[STATE_WLOCK_SLOTS];
	unsigned long next;      /* next ticket to hand out */
	unsigned long serving;   /* ticket allowed to write */
};
/* Initialise / destroy (not a static initialiser: the slot array). */
void state_wlock_init(struct state_wlock *wl);
void state_wlock_destroy(struct state_wlock *wl);
void state_set_write_lock(struct state *st, struct state_wlock *wl);   /* NULL = none */
/*
 * Every commit of this connection is fsynced (synchronous=FULL), so a move
 * to done or failed needs no switch of the setting around it: for a
 * connection whose writes are mostly final states (a run's verifiers).
 */
enum zmb_rc state_sync_full(struct state *st);
sqlite3 *state_db(struct state *st);         /* for the named queries (query_report.h), tests */
/* Last error text of this connection (owned by st, valid until next call). */
const char *state_errmsg(struct state *st);
/* The schema version the binary knows (highest NNN in schema/). */
int state_schema_version(void);

/*
 * Crash recovery, run once by `run` after it holds the lock and before any
 * worker starts: accounts left exporting/importing by a dead run return to
 * their last durable state (importing -> exported when its spool file is
 * complete on disk, else pending; exporting -> pending, its partial spool
 * file removed); stages left running -> pending.  *n = rows repaired.
 */
enum zmb_rc state_recover(struct state *st, int *n);

/* ---- runs ---- */
enum zmb_rc state_run_begin(struct state *st, const char *command, int64_t *run_id);
enum zmb_rc state_run_end(struct state *st, int64_t run_id, int exit_status);
/* Add to the run's counters (token refreshes, retries, bytes). */
enum zmb_rc state_run_count(struct state *st, int64_t run_id,
			    long long refreshes, long long retries, long long bytes);

/* ---- servers (schema 002) ---- */
/*
 * Add to the counters of one server role ("source"/"target", table
 * `servers`): successful AuthRequests, token refreshes, failed
 * authentications.  host is recorded as given (no secret in it).
 */
enum zmb_rc state_server_count(struct state *st, const char *role, const char *host,
			       long long auth_requests, long long token_refreshes,
			       long long auth_failures);

/*
 * The pacing of one server role (schema 003): add requests, throttled
 * (HTTP 429/503 answers) and wait_seconds to its counters and set its
 * current rate_limit (requests/s, 0 = no cap) and concurrency_limit.
 */
enum zmb_rc state_server_pace(struct state *st, const char *role, const char *host,
			      long long requests, long long throttled, double wait_seconds,
			      double rate_limit, int concurrency_limit);

/* ---- stages ---- */
struct stage_row {
	char *name;
	char *type;
	int position;
	enum stage_state state;
	int attempts;
	double started_at, ended_at;   /* 0 if unset */
	char *output;
	char *error;
};
/* Make sure a row exists for each stage (position = order in job). */
enum zmb_rc state_stage_ensure(struct state *st, const char *name, const char *type, int position);
enum zmb_rc state_stage_get(struct state *st, const char *name, struct stage_row *row); /* ZMB_ENOTFOUND */
enum zmb_rc state_stage_begin(struct state *st, const char *name, int64_t run_id);
/* ok: done; !ok: failed.  output/error may be NULL. */
enum zmb_rc state_stage_end(struct state *st, const char *name, bool ok,
			    const char *output, const char *error);
enum zmb_rc state_stage_reset(struct state *st, const char *name);
void state_stage_release(struct stage_row *row);

/* ---- accounts ---- */
struct account_row {
	int64_t id;
	char *account;
	char *target;
	int64_t seq;
	long long size;          /* -1 if unknown */
	enum acct_state state;
	int attempts;
	char *last_error;
	char *error_class;
	long long bytes;
	double seconds;
	char *spool_path;
	double next_try_at;
	double started_at, finished_at;
	long long sync_mark;     /* ms since epoch of last successful sync start; 0 none */
	bool delta;              /* this pass is a delta pass */
	char *source_status;     /* zimbraAccountStatus last read; NULL = not read */
	char *target_status;
	long long warnings;      /* items the last import could not import */
	double status_wait_since; /* waiting for 'maintenance' to end since; 0 = not waiting */
	int chunks_total;        /* steps of the current/last chunked pass; 0 = not chunked */
	int chunks_done;
	long long chunk_bytes;   /* bytes moved by the steps done of the pass in flight */
	char *verify_source;     /* the source's folder figures at export time (JSON); NULL none */
	bool verify_pending;     /* imported, not yet verified (schema 007) */
	long long verify_mark;   /* the sync mark of that import's pass; 0 none */
};
void state_account_release(struct account_row *r);

/* Group many writes into one transaction (discovery upserts). */
enum zmb_rc state_begin(struct state *st);
enum zmb_rc state_commit(struct state *st);
enum zmb_rc state_rollback(struct state *st);

/*
 * Discovery: insert a new account row (pending) or refresh target/size of an
 * existing one that has not started.  size < 0 = unknown.  Call inside
 * state_begin()/state_commit() for bulk work.
 */
enum zmb_rc state_account_upsert(struct state *st, const char *account, const char *target,
				 int64_t seq, long long size);
enum zmb_rc state_account_get(struct state *st, const char *account, struct account_row *out);
/* Record the source's zimbraAccountStatus of an account (discovery; NULL = unknown). */
enum zmb_rc state_account_source_status(struct state *st, const char *account, const char *status);
/* Record the account's mail hosts (schema 4; NULL keeps what is there). */
enum zmb_rc state_account_set_hosts(struct state *st, int64_t id, const char *source_host,
				    const char *target_host);

/*
 * The import of account id (in flight) is complete, not yet verified:
 * verify_pending = 1, its bytes and its pass's sync mark, with the source's figures (NULL keeps
 * those recorded at export), and its mail hosts as state_account_set_hosts records them (NULL
 * keeps; one commit for both).  A crash from here on resumes at the
 * verification, which then records these bytes.
 */
enum zmb_rc state_account_imported(struct state *st, int64_t run_id, int64_t id,
				   const char *verify_source, long long bytes, long long mark_ms,
				   const char *source_host, const char *target_host);
/* Record a verdict ('ok', 'mismatch', 'unverifiable') outside a transition (zmbatch verify). */
enum zmb_rc state_account_verdict(struct state *st, int64_t run_id, int64_t id, const char *verdict,
				  const char *detail, const char *event);

enum claim_order { CLAIM_LARGEST_FIRST, CLAIM_AS_LISTED };

/*
 * Hand one claimable account to the caller, atomically (one transaction):
 * pending with next_try_at <= now -> exporting (spool) or importing (stream);
 * exported -> importing.  Returns ZMB_ENOTFOUND when nothing is claimable now;
 * then *wait_s (if not NULL) is the seconds until the earliest backoff expires,
 * or -1 when no account is waiting at all.  Uses an index, never a scan.
 */
enum zmb_rc state_claim(struct state *st, int64_t run_id, enum claim_order order,
			bool stream, double now, struct account_row *out, double *wait_s);

/* Optional fields of a transition; unset fields are left unchanged. */
struct acct_update {
	const char *error;        /* last_error (NULL = leave; "" = clear) */
	const char *error_class;
	long long bytes;          /* >= 0 to set */
	double seconds;           /* >= 0 to set */
	const char *spool_path;   /* NULL = leave; "" = clear */
	double next_try_at;       /* > 0 to set */
	long long sync_mark;      /* > 0 to set, < 0 to clear (the next pass exports everything) */
	bool add_attempt;         /* attempts += 1 */
	bool reset_attempts;      /* attempts = 0 */
	const char *event;        /* event line to record with it (may be NULL) */
	long long warnings;       /* >= 0 to set */
	double wait_since;        /* > 0: waiting since (kept if already waiting); < 0: clear */
	const char *source_status; /* NULL = leave */
	const char *target_status;
	/* verification (schema 007); the members below default to "leave" */
	const char *verify;        /* 'ok'/'mismatch'/'unverifiable'; "" = clear; NULL = leave */
	const char *verify_detail; /* set with verify (NULL = none) */
	const char *verify_source; /* NULL = leave; "" = clear */
	int verify_pending;        /* > 0 set, < 0 clear, 0 leave */
};
#define ACCT_UPDATE_INIT { NULL, NULL, -1, -1, NULL, 0, 0, false, false, NULL, -1, 0, NULL, NULL, \
			   NULL, NULL, NULL, 0 }

/*
 * Move account `id` from `from` to `to` (one transaction, with an event row).
 * ZMB_EINTERNAL if the transition is illegal; ZMB_ECONFLICT if the row is not
 * in state `from` (someone else moved it).
 */
enum zmb_rc state_transition(struct state *st, int64_t run_id, int64_t id,
			     enum acct_state from, enum acct_state to,
			     const struct acct_update *u);

/*
 * Requeue accounts: reset (named accounts, or all failed when account ==
 * NULL) back to pending with attempts 0.  *n = rows changed.
 * ZMB_ENOTFOUND if a named account is not in the DB.
 */
enum zmb_rc state_reset_account(struct state *st, const char *account, int *n);
enum zmb_rc state_reset_failed(struct state *st, int *n);
/* --delta: every done account becomes pending with delta = 1. */
enum zmb_rc state_queue_delta(struct state *st, int *n);

/* Per-state counts (index = enum acct_state). */
enum zmb_rc state_counts(struct state *st, long long counts[ACCT_NSTATES]);
/* Every account row in name order: fn(ctx, account, state, size (-1 unknown), bytes). */
typedef void (*state_account_fn)(void *ctx, const char *account, int state, long long size,
				 long long bytes);
enum zmb_rc state_accounts_each(struct state *st, state_account_fn fn, void *ctx);

/* ---- chunks (schema 006): the steps of a pass exported in pieces ---- */
enum chunk_kind {
	CHUNK_TREE,       /* folders, search folders, mountpoints, tags, by id */
	CHUNK_CALENDAR,   /* appointments and tasks, by id, resolve=modify */
	CHUNK_WINDOW      /* every other item dated in [start_ms, end_ms) */
};
const char *chunk_kind_name(enum chunk_kind k);   /* "tree", "calendar", "window" */
struct chunk_row {
	int idx;
	enum chunk_kind kind;
	long long start_ms, end_ms;   /* window only; end_ms 0 = open */
	long long mark_ms;            /* when the pass was planned: its new sync mark */
	bool done;
	long long bytes, items, warnings;
};
/* The account's current plan, in order (*out new, caller frees; *n = 0: none). */
enum zmb_rc state_chunks_get(struct state *st, int64_t account_id, struct chunk_row **out,
			     size_t *n);
/*
 * Replace the account's plan with v[0..n) (kind, start_ms, end_ms, mark_ms
 * used), in one transaction with `event` (may be NULL): chunks_total = n,
 * chunks_done = 0.
 */
enum zmb_rc state_chunks_plan(struct state *st, int64_t run_id, int64_t account_id,
			      const struct chunk_row *v, size_t n, const char *event);
/* Step idx is done (once): its bytes counted in accounts.chunk_bytes, with `event`. */
enum zmb_rc state_chunk_done(struct state *st, int64_t run_id, int64_t account_id, int idx,
			     long long bytes, long long items, long long warnings, const char *event);

/* ---- events ---- */
/* account_id 0 = none, stage NULL = none. level "info"/"warn"/"error". */
enum zmb_rc state_event(struct state *st, int64_t run_id, int64_t account_id,
			const char *stage, const char *level, const char *msg);

/* ---- meta ---- */
enum zmb_rc state_meta_get(struct state *st, const char *key, char **value); /* ENOTFOUND */
enum zmb_rc state_meta_set(struct state *st, const char *key, const char *value);

/*
 * The shard the DB belongs to: meta key "shard" = "I/N", written by the first
 * write (shard "" = not sharded: nothing written).  A DB of another shard,
 * a sharded DB used unsharded, or an unsharded DB that already holds accounts
 * used as a shard is refused: ZMB_ECONFIG, the message names both.  A
 * read-only connection only compares (a DB without the key is taken as is).
 */
enum zmb_rc state_check_shard(struct state *st, const char *shard);
/*
 * How the shard DB's accounts were dealt: meta key "shard_by" ("hash" or
 * "server", shard.h), written by the first write of a shard run; a DB
 * without the key that already holds accounts is a hash shard's (from
 * before the key).  Another mode is refused: ZMB_ECONFIG, the message names
 * both.  Only for a sharded run; a read-only connection (a dry run) only
 * compares.
 */
enum zmb_rc state_check_shard_by(struct state *st, const char *by);

/*
 * run --shard-by server: record this run's listing in table shard_deal, each
 * account v[i] with the shard its home deals it to now and that home; it
 * replaces the listing an earlier run recorded.  One transaction.  report
 * --merge reads it to name the accounts no shard's DB holds.  Not for a
 * read-only connection.  Only the thread that owns st.
 */
struct shard_deal_item {
	const char *account;   /* lower case; read during the call */
	const char *home;      /* its home now, or NULL */
	unsigned dealt;        /* the shard its home deals it to now */
};
enum zmb_rc state_shard_deal(struct state *st, const struct shard_deal_item *v, size_t n);

/*
 * report --merge / status --merge: the state DBs paths[0..n) of one job (its
 * shards), each opened read-only, as one temporary state DB (SQLite's
 * private temp file, gone on state_close) that every report reads as it
 * reads one DB.  Accounts keep their global listing order (seq), runs are
 * numbered by start; stages, servers and provision objects are combined,
 * and the merged DB has four more tables: merge_sources (db, path, shard,
 * accounts, planned_bytes, bytes_moved), merge_counts (db, state, accounts),
 * merge_duplicates (account, db, also_in: an account found in two DBs,
 * kept from the first given) and merge_untaken (account, shard, home,
 * listed_by, seen_at: an account a by-server shard listed that no DB
 * holds).  Rules: state_merge.c.  DBs of two jobs: ZMB_ECONFIG naming both; not a state DB or a newer schema: ZMB_ESTATE.
 * *err names the DB.  Main thread (commands).
 */
enum zmb_rc state_merge_open(const char *const *paths, size_t n, struct state **out, char **err);

#endif
