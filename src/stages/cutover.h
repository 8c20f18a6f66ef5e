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

struct cutover_row;

/* The field scripts' value: the target mailbox server's LMTP (%h: its zimbraMailHost). */
#define CUT_DEFAULT_TRANSPORT "lmtp:%h:7025"

/* The stage's keys (strings borrowed from the stage_conf). */
struct cut_conf {
	long long batch;               /* accounts per run, default 200 */
	const char *source_status;     /* the source's final status: "locked" | "maintenance" */
	const char *source_transport;  /* template, %h = the target account's mail host */
	const char *target_transport;
};
int cutover_parse(const struct stage_conf *sc, const char *file, struct cut_conf *k, char **err);
/* tmpl with %h -> host, %% -> % (new string). */
char *cutover_transport(const char *tmpl, const char *host);

/* One run of the stage. */
struct cut {
	struct stage_ctx *ctx;
	struct cut_conf k;
	struct xfer x;                 /* its ends; its pool runs the final delta pass */
	struct xfer_conn *src, *dst;   /* the main thread's connections */
	long long modifies;            /* ModifyAccountRequests sent by this run */
	long long failed;              /* accounts whose step failed in this run */
	long long waiting;             /* eligible accounts left for later batches */
};

/* Both accounts' values as the servers have them now (all new; "" = not set). */
struct cut_cur {
	char *sid, *tid;
	char *s[2];   /* source: zimbraAccountStatus, zimbraMailTransport */
	char *t[3];   /* target: zimbraAccountStatus, zimbraMailTransport, zimbraMailHost */
};
void cut_cur_release(struct cut_cur *c);
enum zmb_rc cut_read(struct cut *c, const struct cutover_row *r, struct cut_cur *cur, char **err);
/* attr = want on conn's account id unless cur already equals it (counted, crashpoint). */
enum zmb_rc cut_set(struct cut *c, struct xfer_conn *conn, const char *id, const char *attr,
		    const char *cur, const char *want, char **err);

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
void cutover_rollback_plan(struct cut *c);

#endif
