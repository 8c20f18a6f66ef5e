/*
 * state_cutover.h - the cutover table (schema/009_cutover.sql): one row per
 * account taken into a `cutover` stage, its step, the values it had before
 * (for --rollback), errors.  Every function is one transaction (with an event
 * row per account where it changes one), followed by its crashpoint.
 *
 * Threads: like state.h, a connection is used by the thread that opened it;
 * the cutover stage calls these from the main thread only.
 * Ownership: rows and arrays returned are new (state_cutover_rows_free).
 */
#ifndef ZMB_STATE_CUTOVER_H
#define ZMB_STATE_CUTOVER_H

#include "state.h"

enum cut_step {
	CUT_SELECTED = 0,   /* in a batch, nothing read yet */
	CUT_PLANNED,        /* previous values recorded */
	CUT_LOCKED,         /* source locked */
	CUT_ROUTED,         /* both transports set */
	CUT_SYNCED,         /* final delta done */
	CUT_FINAL,          /* source's final status set */
	CUT_DONE,           /* target active */
	CUT_ROLLED_BACK,    /* terminal: --rollback restored it; taken again only after `reset ACCOUNT` */
	CUT_FAILED,         /* terminal: a step or the final delta failed; the account was rolled back */
	CUT_SKIPPED,        /* terminal: the source was not active before the cutover (not cut over) */
	CUT_NSTEPS
};
const char *cut_step_name(enum cut_step s);
int cut_step_parse(const char *s);   /* -1 if unknown */

struct cutover_row {
	int64_t account_id;
	char *account;            /* source address */
	char *target;             /* target address */
	int batch;
	enum cut_step step;
	char *source_id, *target_id, *target_host;
	char *prev_source_status, *prev_target_status;
	char *prev_source_transport, *prev_target_transport;   /* "" = was not set */
	char *source_transport, *target_transport;
	char *error;
	char *acct_target_host;   /* accounts.target_host (schema 005), NULL unknown */
};
void state_cutover_rows_free(struct cutover_row *v, size_t n);   /* NULL-safe */

/*
 * The rows of the current batch (selected .. final, any error), in batch and
 * seq order; *n = 0 when the last batch is complete.
 */
enum zmb_rc state_cutover_open(struct state *st, struct cutover_row **out, size_t *n);
/*
 * Start the next batch: up to `limit` eligible accounts (state done, verify
 * NULL or 'ok', no cutover row at all: a rolled_back, failed or skipped row
 * is terminal until `reset ACCOUNT` deletes it), in seq order, become rows
 * 'selected' of batch max+1.  *n = how many.
 */
enum zmb_rc state_cutover_select(struct state *st, int64_t run_id, const char *stage,
				 long long limit, int *batch, int *n);
/*
 * Accounts left out of cutover: *failed (failed or skipped), *mismatch
 * (done but verify mismatch/unverifiable), *waiting (eligible, no row yet).
 */
enum zmb_rc state_cutover_leftover(struct state *st, long long *failed, long long *mismatch,
				   long long *waiting);
/* selected -> planned with the previous values and ids (each "" if not set). */
enum zmb_rc state_cutover_planned(struct state *st, int64_t run_id, const char *stage,
				  const struct cutover_row *r);
/*
 * The row's step -> `to` (one forward step, or any -> rolled_back), error
 * cleared, with event text `event`.  source_transport/target_transport
 * recorded when not NULL.  ZMB_ECONFLICT if the row is not at `from`.
 */
enum zmb_rc state_cutover_step(struct state *st, int64_t run_id, const char *stage,
			       int64_t account_id, enum cut_step from, enum cut_step to,
			       const char *source_transport, const char *target_transport,
			       const char *event);
/*
 * Accounts in the migration queue (pending, exporting, exported, importing)
 * that are not in the open cutover batch: the final delta pass would move
 * them too, so a batch must not start (checked before any change).
 */
enum zmb_rc state_cutover_others_queued(struct state *st, long long *n);
/*
 * Is the source account `account` cut over (its row at 'routed' or later, not
 * rolled back)?  *yes false too on a DB without the cutover table.  The
 * provision stage then leaves its target alone: users work there.
 */
enum zmb_rc state_cutover_routed(struct state *st, const char *account, bool *yes);
/*
 * The row -> terminal `to` (CUT_FAILED or CUT_SKIPPED) from any step, with
 * `error` as its last error and an event (level error / warn).
 */
enum zmb_rc state_cutover_end(struct state *st, int64_t run_id, const char *stage,
			      int64_t account_id, enum cut_step to, const char *error);
/* `reset ACCOUNT`: its rolled_back / failed / skipped row deleted (*n = 1) so it can be cut over again. */
enum zmb_rc state_cutover_forget(struct state *st, int64_t account_id, int *n);
/* A step failed: error recorded (step unchanged) with an error event. */
enum zmb_rc state_cutover_error(struct state *st, int64_t run_id, const char *stage,
				int64_t account_id, const char *error);
/*
 * The final delta pass: the accounts of rows at 'routed' that are done go
 * back to pending as a delta pass (as --delta does), in one transaction.
 * ZMB_ECONFLICT (*err set) if any other account waits in the queue: the
 * pass would move it too.  *n = queued.
 */
enum zmb_rc state_cutover_queue_delta(struct state *st, int64_t run_id, int *n, char **err);
/*
 * After the pass: rows at 'routed' whose account is done (verify NULL or ok)
 * -> 'synced'; the others get the account's error.  *synced, *failed counted.
 */
enum zmb_rc state_cutover_delta_done(struct state *st, int64_t run_id, const char *stage,
				     int *synced, int *failed);
/* Rows that a --rollback has to look at (planned .. done, and failed: its automatic rollback may
 * have been incomplete), batch order. */
enum zmb_rc state_cutover_to_roll_back(struct state *st, struct cutover_row **out, size_t *n);
/* Counts per step (index enum cut_step) and rows with an error. */
enum zmb_rc state_cutover_counts(struct state *st, long long counts[CUT_NSTEPS],
				 long long *errors, long long *batches);

#endif
