/*
 * cutover.h - the inside of the `cutover` stage (cutover.c: keys, steps,
 * the stage; cutover_delta.c: the final delta pass; cutover_rollback.c:
 * --rollback).  Main thread only: struct cut and its connections belong to
 * the thread running the stage; the delta pass starts worker threads of
 * src/xfer and joins them before it returns.
 */
#ifndef ZMB_CUTOVER_H
#define ZMB_CUTOVER_H

#include "stage.h"
#include "state.h"
#include "xfer.h"
#include "state_cutover.h"

struct cutover_row;

/*
 * The field scripts' value, as Zimbra computes a transport itself
 * (callback/MailHost.java:104-108): the target mailbox server's LMTP, %h its
 * name (the target account's live zimbraMailHost), %p its zimbraLmtpBindPort
 * (GetServerRequest; 7025 when it has none).
 */
#define CUT_DEFAULT_TRANSPORT "lmtp:%h:%p"

/* The stage's keys (strings borrowed from the stage_conf). */
struct cut_conf {
	long long batch;               /* accounts per run, default 200 */
	const char *source_status;     /* the source's final status: "maintenance" (default) | "locked" */
	const char *source_transport;  /* template, %h = the target account's mail host, %p its LMTP port */
	const char *target_transport;
};
int cutover_parse(const struct stage_conf *sc, const char *file, struct cut_conf *k, char **err);
/* tmpl with %h -> host, %p -> port, %% -> % (new string). */
char *cutover_transport(const char *tmpl, const char *host, int port);

/* One run of the stage. */
struct cut {
	struct stage_ctx *ctx;
	struct cut_conf k;
	struct xfer x;                 /* its ends; its pool runs the final delta pass */
	struct xfer_conn *src, *dst;   /* the main thread's connections */
	long long modifies;            /* ModifyAccountRequests sent by this run */
	long long failed;              /* accounts whose step failed in this run */
	long long waiting;             /* eligible accounts left for later batches */
	long long conflicts;           /* rollback: values changed by hand since, left alone */
	struct { char *host; int port; } *ports;   /* zimbraLmtpBindPort per mail host (cut_lmtp_port) */
	size_t nports;
};

/* Both accounts' values as the servers have them now (all new; "" = not set). */
struct cut_cur {
	char *sid, *tid;
	char *s[2];   /* source: zimbraAccountStatus, zimbraMailTransport */
	char *t[3];   /* target: zimbraAccountStatus, zimbraMailTransport, zimbraMailHost */
};
void cut_cur_release(struct cut_cur *c);
enum zmb_rc cut_read(struct cut *c, const struct cutover_row *r, struct cut_cur *cur, char **err);
/* One side only (cur zeroed by the caller; sid/s or tid/t filled). */
enum zmb_rc cut_read_src(struct cut *c, const struct cutover_row *r, struct cut_cur *cur, char **err);
enum zmb_rc cut_read_dst(struct cut *c, const struct cutover_row *r, struct cut_cur *cur, char **err);
/* zimbraLmtpBindPort of mail host `host` on the target (cached; 7025 when unknown). */
int cut_lmtp_port(struct cut *c, const char *host);
/* The transports the cutover sets (recorded, else from the templates); both new. */
void cut_transports(struct cut *c, const struct cutover_row *r, char **sv, char **tv);
/* attr = want on conn's account id unless cur already equals it (counted, crashpoint);
 * name: the account's address, for the log line (NULL: the id). */
enum zmb_rc cut_set(struct cut *c, struct xfer_conn *conn, const char *name, const char *id,
		    const char *attr, const char *cur, const char *want, char **err);

/*
 * The final delta pass of the rows at 'routed' (cutover_delta.c): their
 * accounts queued as a delta pass, the worker pool run until none is left,
 * then each row 'synced' or its error recorded.  Errors other than the
 * accounts' own: ZMB_ECONFLICT (other accounts wait in the queue), the DB's;
 * res->err set.  A stop request leaves res->exit = EXIT_TEMPFAIL.
 */
enum zmb_rc cutover_delta(struct cut *c, struct stage_result *res);

/* --rollback (cutover_rollback.c); the dry-run variant only prints. */
void cutover_rollback(struct cut *c, struct stage_result *res);
/*
 * Roll one row back (cutover_rollback.c): the source first, then the target,
 * each read and restored on its own; a value restored only while it still is
 * what the cutover set (else a conflict, counted in c->conflicts and named in
 * the output).  The row then becomes `to` (CUT_ROLLED_BACK, or CUT_FAILED
 * with error `why`).  ZMB_OK unless the DB failed; a server failure is
 * recorded on the row (c->failed).
 */
enum zmb_rc cutover_roll_back_one(struct cut *c, struct cutover_row *r, enum cut_step to,
				  const char *why);
void cutover_rollback_plan(struct cut *c);

#endif
