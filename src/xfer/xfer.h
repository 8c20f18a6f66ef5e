/*
 * xfer.h - the transfer engine: moves accounts from a source to a target
 * driver (driver.h), one worker thread per transfer, every durable step a
 * state transition in the state database.
 *
 * Per account (worker thread):
 *   spool:  exporting -> [spool file renamed] -> exported -> importing -> done
 *           (spool.c: one function per step)
 *   stream: importing (export piped into import) -> done (stream.c)
 * Errors are classified (zmb_rc_class): permanent -> failed; temporary ->
 * back to the last durable state with exponential backoff and jitter, until
 * max_attempts; a stop request -> back to the last durable state, no attempt
 * counted (account.c).  Throttling (HTTP 429/503) is the driver's: it sends
 * the request again after the server's pause, so it costs no attempt; only
 * past migration.max_throttle_wait does a call fail (ZMB_EBUSY): the account
 * goes back with no attempt counted and the run stops claiming.
 *
 * Threads: one `struct xfer` per run, owned by the main thread, which
 * calls every function here; the workers of its pool share it (the fields
 * under `mu`, the read-only rest).  xfer_init .. xfer_release bracket it;
 * the pool is joined before xfer_release.
 *
 * Verification (verifier.c): after an import the worker records it
 * (verify_pending) and hands the account to a verifier thread of the pool
 * through a bounded queue, then claims its next account; the verifier
 * compares the figures and ends the account (done, retry, failed).  The
 * source's figures at export time are taken by a verifier too, while the
 * worker's export starts.  An account handed over counts in flight until
 * the verifier ends it.
 */
#ifndef ZMB_XFER_H
#define ZMB_XFER_H

#include "driver.h"
#include "job.h"
#include "runctl.h"
#include "state.h"
#include "zmb.h"

#include <pthread.h>

/* A target account seen in the target's directory when the run started. */
struct tgt_entry {
	char *name;   /* lower case */
	char *id;
	char *status; /* zimbraAccountStatus, may be NULL */
};

struct xfer {
	const struct job *job;
	const char *state_path;      /* each worker opens its own connection */
	int64_t run_id;
	struct run_ctl *ctl;
	struct xfer_end *src;        /* made by xfer_init, freed by xfer_release */
	struct xfer_end *dst;
	bool stream;
	enum claim_order order;
	struct tgt_entry *tdir;      /* target accounts listed at start, sorted by name; */
	size_t ntdir;                /* read-only once the workers run (xfer_tdir_build) */
	bool target_carbonio;        /* the target said it is Carbonio (set before the workers) */
	char *target_version;        /* its version, may be NULL; freed by xfer_release */
	bool no_transport;           /* never set migration.mail_transport after an import: the
				      * cutover's final delta pass, whose transports the cutover
				      * owns (src/stages/cutover.c); set before the workers */

	int verifiers;               /* verifier threads (verifier.c); 0: each worker verifies its
				      * own accounts.  Set before the workers start, then read-only */

	pthread_mutex_t mu;          /* guards the fields below */
	pthread_cond_t cv;           /* an account finished or a worker exited */
	pthread_cond_t vcv;          /* the verifiers' queues changed (verifier.c) */
	struct xfer_vjob *fq_head, *fq_tail;  /* source figures asked for, taken first */
	struct xfer_vjob *vq_head, *vq_tail;  /* imported accounts waiting for their verification */
	int vq_len;                  /* jobs in vq; at most vq_cap (workers wait) */
	int vq_cap;
	int nworkers;                /* workers started (or starting): the verifiers end after them */
	int vexited;                 /* verifiers that have left their loop */
	struct state_wlock dbw;      /* this run's SQLite writers queue on it (state_set_write_lock) */
	long long reserved_bytes;    /* spool space promised to in-flight exports */
	long long held_bytes;        /* complete archives on disk, waiting for or in their import */
	int in_flight;
	int exited;                  /* workers that have left their loop */
	long long done_now;          /* accounts finished by this run */
	long long failed_now;
	long long bytes_now;
	int fatal_workers;           /* workers that could not start */
};

/* Both ends use drv (today always xfer_driver_zimbra); nothing is sent yet. */
void xfer_init(struct xfer *x, const struct xfer_driver *drv, const struct job *job,
	       const char *state_path, int64_t run_id, struct run_ctl *ctl);
void xfer_release(struct xfer *x);

/*
 * Spool mode, before the workers: remove the *.part files a dead run left in
 * working_dir, and dispose of complete archives whose account does not wait
 * for its import (st: the main thread's connection).
 */
void xfer_spool_housekeeping(struct xfer *x, struct state *st);

/*
 * Read the target's directory for the target domains of this run (dst: the
 * main thread's connection to x->dst), so that a worker needs no lookup round
 * trip per account.  A domain that cannot be listed is not an error.
 */
void xfer_tdir_build(struct xfer *x, struct xfer_conn *dst, struct state *st);

/* Bytes moved and accounts in flight now (any thread). */
void xfer_totals(struct xfer *x, long long *bytes, int *in_flight);

/* ---- the worker pool (pool.c) ---- */
struct xfer_worker;
struct xfer_vjob;

struct xfer_pool {
	struct xfer_worker *w;
	int started;                 /* threads running or joined */
	struct xfer_worker *v;       /* the verifier threads (verifier.c) */
	int vstarted;
};

/*
 * Start the verifier threads (with migration.verify: xfer_verifier_threads;
 * each its own state connection and driver connections), then up
 * to n workers (logs the ones that cannot start); returns pool->started.
 */
int xfer_pool_start(struct xfer *x, struct xfer_pool *pool, int n);
/*
 * Wait until every worker and verifier has left its loop (true) or
 * timeout_s has passed (false).  The verifiers leave once the workers have
 * and every account handed to them is finished (or, after an abort, left
 * verify_pending for the next run).
 */
bool xfer_pool_wait(struct xfer *x, struct xfer_pool *pool, double timeout_s);
/* Join every started worker and free the pool. */
void xfer_pool_join(struct xfer_pool *pool);

/*
 * Verification (verify.c): the source's folder figures at export time
 * against the target's after the import.  Pure functions, any thread.
 */
enum xfer_verdict { XFER_VERIFY_OK, XFER_VERIFY_MISMATCH, XFER_VERIFY_UNVERIFIABLE };
const char *xfer_verdict_name(enum xfer_verdict v);   /* "ok", "mismatch", "unverifiable" */
struct xfer_verify_rules {
	const char *types;       /* migration.types (NULL = all) */
	bool target_carbonio;    /* leave out task and document folders */
	bool totals_only;        /* a delta pass: the total over compared folders */
};
/* Figures as JSON text ([{"path","view","n","s"}...]; caller frees) and back (-1: not figures). */
char *xfer_figures_json(const struct xfer_folder *v, size_t n);
int xfer_figures_parse(const char *text, struct xfer_folder **out, size_t *n);
/* OK or MISMATCH; *detail (caller frees): the worst folder and figures, or what was compared. */
enum xfer_verdict xfer_verify_compare(const struct xfer_folder *src, size_t ns,
				      const struct xfer_folder *dst, size_t nd,
				      const struct xfer_verify_rules *r, char **detail);

#endif
