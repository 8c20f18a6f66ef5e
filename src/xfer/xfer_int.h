/*
 * xfer_int.h - inside the transfer engine (included by src/xfer/ files only).
 *
 * Every function here runs in the thread that owns `w` (its state
 * connection, its two driver connections, its gzip checker): a worker, or a
 * verifier thread (verifier.c), which is a `struct xfer_worker` too, with
 * its own connections and no gzip checker; the shared `struct xfer` is
 * touched only under x->mu or through its read-only fields.  A verification
 * job (struct xfer_vjob) belongs to one thread at a time: the worker that
 * made it, then (handed over under x->mu) the verifier that ends it.
 *
 * Files, bottom up (no file uses one above it):
 *   spool_dir.c  spool file names, fsync of the directory, disposal, space
 *   status.c     zimbraAccountStatus: maintenance waits, Carbonio note
 *   account.c    an account's outcome: retry/backoff, failed, done; request options
 *   target.c     does the target account exist (directory read at start, lookup)
 *   verify_step.c  the source's figures at export, the verdict after the import
 *   verifier.c   the verifier threads: the source's figures while an export
 *                starts, the verdict and the account's end after its import
 *   chunk.c      a pass exported in pieces: plan, steps, resume
 *   spool.c      spool strategy, one function per step
 *   stream.c     stream strategy
 *   worker.c     the worker loop: claim, dispatch, release
 *   pool.c       start, wait for, join the workers
 */
#ifndef ZMB_XFER_INT_H
#define ZMB_XFER_INT_H

#include "xfer.h"

struct xfer_worker {
	struct xfer *x;
	int index;
	pthread_t thread;
	struct state *st;            /* the worker's own connection */
	struct xfer_conn *src;       /* the worker's connections to x->src / x->dst */
	struct xfer_conn *dst;
	struct gz_check *gz;         /* checks each export's gzip as it arrives */
	char ctx[300];               /* log context "account a@b" */
	char *sstatus, *tstatus;     /* zimbraAccountStatus of the account in flight (status.c) */
	/* the verification of the account in flight (verify_step.c), read by account.c */
	const char *verdict;         /* "ok", "mismatch", "unverifiable"; NULL = not verified */
	char *verdict_detail;
	char *source_figures_err;    /* why the source's figures could not be read */
	bool handed_over;            /* the account in flight went to a verifier (verifier.c) */
	int outstanding;             /* its accounts a verifier has not ended yet (under x->mu) */
};

/* ---- spool_dir.c ---- */
/* "<working_dir>/<safe account>.tgz<suffix>"; caller frees. */
char *xfer_spool_path(const struct job *job, const char *account, const char *suffix);
/* fsync() a directory (reports it to the test hooks); -1 on error. */
int xfer_fsync_dir(const char *dir);
/* Move a finished spool file to success_dir/failed_dir, or delete it. */
void xfer_spool_dispose(const struct job *job, const char *path, bool success, const char *ctx);
/* Free bytes in the filesystem of dir, -1 if unknown. */
long long xfer_free_bytes(const char *dir);

/* ---- account.c ---- */
/*
 * Schedule a retry or fail the account after `rc`.  `from` is the in-flight
 * state, `back` the durable state to return to (pending or exported).
 */
void xfer_account_error(struct xfer_worker *w, const struct account_row *a, enum acct_state from,
			enum acct_state back, enum zmb_rc rc, const char *step, const char *msg);
/*
 * Record the account as failed for good (u->event is its event and log
 * line): back from an export that stays unimported drops its sync mark and
 * disposes of its archive; counted in failed_now.  Used by both outcomes
 * that give up: attempts exhausted and maintenance outlasted (status.c).
 */
void xfer_account_failed(struct xfer_worker *w, const struct account_row *a, enum acct_state from,
			 enum acct_state back, struct acct_update *u);
/*
 * The account is done: record bytes, time, the new sync mark; count it.
 * With import warnings (res may be NULL), each is recorded as a 'warn' event
 * of the account and the account is done with warnings (accounts.warnings);
 * recorded_warnings are more of them, already recorded (a chunked pass).
 */
void xfer_account_done(struct xfer_worker *w, const struct account_row *a, enum acct_state from,
		       long long bytes, double seconds, long long mark_ms, const char *what,
		       const struct xfer_import_result *res, long long recorded_warnings);
/* Where the account lives on each side, as w's drivers learnt it (NULL unknown; caller frees). */
void xfer_hosts(struct xfer_worker *w, const struct account_row *a, char **sh, char **dh);
/* Record them (best effort; a commit when either is known). */
void xfer_record_hosts(struct xfer_worker *w, const struct account_row *a);
/* The import's resolve policy for this pass. */
const char *xfer_import_resolve(const struct job *job, const struct account_row *a);
/* The export options for this pass (full, or delta from the account's mark). */
void xfer_export_opts(const struct xfer *x, const struct account_row *a, struct xfer_export_opts *o);

/* ---- target.c ---- */
/*
 * The target must exist.  On an account's first attempt the directory read
 * at the start of the run answers (no round trip); on a retry, or for an
 * account the directory did not list, the driver's lookup asks.  *from_dir
 * tells which (for xfer_recheck_target and xfer_set_transport).
 */
enum zmb_rc xfer_check_target(struct xfer_worker *w, const struct account_row *a, char **target_id,
			      bool *from_dir, char **err);   /* and w->tstatus */
/*
 * An import into a target taken from the directory failed as for a missing
 * account: look it up, and if it is gone say so instead of the bare status.
 */
void xfer_recheck_target(struct xfer_worker *w, const struct account_row *a, bool from_dir,
			 enum zmb_rc *rc, char **err);
/* Set the job's mail_transport on the target after the import (if any). */
enum zmb_rc xfer_set_transport(struct xfer_worker *w, const struct account_row *a, bool from_dir,
			       const char *target_id, char **err);
void xfer_tdir_free(struct xfer *x);

/* ---- status.c ---- */
/*
 * w->sstatus from the account's row; with `ask` (the account waits for
 * maintenance to end) the source is asked again.
 */
void xfer_status_source(struct xfer_worker *w, const struct account_row *a, bool ask);
/*
 * A side is in maintenance (w->sstatus / w->tstatus): back to `back` with no
 * attempt used, checked again after the base backoff, or failed naming the
 * status once migration.maintenance_wait has passed.  true: handled, stop.
 */
bool xfer_status_wait(struct xfer_worker *w, const struct account_row *a, enum acct_state from,
		      enum acct_state back);
/*
 * After an export (source) or import (target) failed as for a missing
 * account (404/401, which is also how maintenance is answered): read that
 * side's status again into w->sstatus / w->tstatus.
 */
void xfer_status_after_error(struct xfer_worker *w, const struct account_row *a, bool source,
			     enum zmb_rc rc);
/* A Carbonio target: a warning event that tasks and documents will be dropped. */
void xfer_status_carbonio_note(struct xfer_worker *w, const struct account_row *a);

/* ---- verify_step.c ---- */
/*
 * The source's folder figures now, as JSON for the state DB (at export
 * time); NULL when verification is off, the drivers cannot tell, or the
 * source refused (w->source_figures_err then says why).
 */
char *xfer_source_figures(struct xfer_worker *w, const struct account_row *a);
enum xfer_vstep {
	XFER_V_DONE,     /* go on to done (w->verdict set) */
	XFER_V_RETRIED,  /* a mismatch, recorded as a temporary error (retry or failed) */
	XFER_V_PARK      /* a stop cut the target's answer short: nothing recorded */
};
/*
 * The verdict of an imported account, in the thread owning w (a verifier,
 * or the worker itself when the run has none): the target's figures now
 * against sj, the source's recorded when the export began (NULL: not read,
 * w->source_figures_err says why: unverifiable).  A mismatch asks the
 * source again (xfer_source_figures_after); one that stays is recorded as
 * a temporary error (back to `back`, or failed once max_attempts are
 * used, last_error "verify: <worst folder>..."), except after a delta
 * pass (recorded, done).
 */
enum xfer_vstep xfer_verify_judge(struct xfer_worker *w, const struct account_row *a,
				  enum acct_state from, enum acct_state back, const char *sj,
				  long long warnings);
/*
 * The source's figures now merged with `before` (taken when the export
 * began; consumed): per folder the smaller of the two, so that mail deleted
 * or moved on a live mailbox during the export is not held against the
 * target.  Asked by the verification only when `before` finds it short.
 */
char *xfer_source_figures_after(struct xfer_worker *w, const struct account_row *a, char *before);

/* ---- verifier.c ---- */
/*
 * A verification job, made by a worker when an export starts
 * (xfer_vjob_start) and ended by xfer_verify_pass.  NULL when the run does
 * not verify.
 */
struct xfer_vjob;
/*
 * The source's figures for the pass of `a` starting now: asked by a
 * verifier thread while the worker's export starts (by the worker itself,
 * now, when the run has no verifier).  NULL when verification is off.
 */
struct xfer_vjob *xfer_vjob_start(struct xfer_worker *w, const struct account_row *a);
/* A job with figures already known (recorded with an archive); NULL when verification is off. */
struct xfer_vjob *xfer_vjob_given(struct xfer_worker *w, const char *figures);
/* The pass failed before its import was complete: the job is dropped (NULL-safe). */
void xfer_vjob_drop(struct xfer *x, struct xfer_vjob *j);
/*
 * Those figures (JSON for the state DB), waiting for the verifier if it
 * has not finished reading them; NULL when they could not be read (the
 * verdict will say why).  Owned by j.
 */
const char *xfer_vjob_figures(struct xfer *x, struct xfer_vjob *j);

/* How a verified pass ends: what xfer_account_done and the verification need. */
struct xfer_vend {
	enum acct_state from, back;  /* the account's in-flight state, where a mismatch sends it */
	long long bytes;             /* the import's bytes (recorded with verify_pending) */
	long long warnings;          /* the import's warnings, named with a mismatch */
	long long mark_ms;           /* the pass's sync mark */
	bool resumed;                /* imported before a crash: only the verification is left */
	double t0;                   /* mono time the attempt began */
	const char *what;            /* "migrated", "delta pass done", ... */
	struct xfer_import_result *res;   /* warnings to record with done (moved; may be NULL) */
	long long recorded_warnings;
	const char *dispose;         /* the spool archive to dispose of once done (NULL none) */
	long long held;              /* its bytes counted in x->held_bytes until then */
};
/*
 * After a complete import (or, `resumed`, one recorded before a crash):
 * false when the run does not verify (j dropped; the caller ends the
 * account).  Otherwise true: the import is recorded (verify_pending, its
 * bytes and mark, j's source figures, the mail hosts, in one commit; when
 * resumed only the hosts) and the
 * account (*a, moved out: a is left zeroed) is handed to a verifier, which
 * ends it: done (with the archive disposed of), a retry after a mismatch,
 * or back to exported, verify_pending, after an abort.  Without verifier
 * threads the worker does this itself.  w->sstatus/tstatus go with it.
 * j (may be NULL: no figures) is consumed.
 */
bool xfer_verify_pass(struct xfer_worker *w, struct account_row *a, struct xfer_vjob *j,
		      const struct xfer_vend *e);
/* A verifier thread (pool.c starts it with its state connection open in v->st). */
void *xfer_verifier_main(void *arg);

/* ---- chunk.c ---- */
/*
 * Is this account's pass done in steps: a planned pass not finished, a
 * delta pass, migration.chunk, or a mailbox above migration.chunk_bytes
 * (and the source's driver can).
 */
bool xfer_chunk_wanted(const struct xfer *x, const struct account_row *a);
/*
 * The account's pass in steps, from its claimed state `cur` (exporting or
 * importing) to done, or back to pending with the steps done kept.
 * max_days: the source's export limit when known (> 0), 0 none, < 0 ask.
 */
void xfer_chunk_account(struct xfer_worker *w, struct account_row *a, enum acct_state cur,
			long long max_days, bool from_dir, const char *target_id);
/*
 * A whole export failed with rc: was it refused for the source's export
 * limit (zimbraExportMaxDays)?  Asked only after a server error (one
 * request); true with *max_days > 0: go on with xfer_chunk_account.
 */
bool xfer_chunk_max_days(struct xfer_worker *w, const struct account_row *a, enum zmb_rc rc,
			 long long *max_days);

/* ---- the strategies (spool.c, stream.c): one claimed account each ---- */
void xfer_spool_account(struct xfer_worker *w, struct account_row *a);
void xfer_stream_account(struct xfer_worker *w, struct account_row *a);

/* ---- worker.c ---- */
void *xfer_worker_main(void *arg);

#endif
