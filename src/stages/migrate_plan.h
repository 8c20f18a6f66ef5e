/*
 * migrate_plan.h - discovery and plan of the migrate stage (main thread).
 *
 * Discovery: explicit accounts + accounts_file + every non-system account of
 * `domains` (the source driver's discover).  For accounts not yet in the DB
 * (or pending without a size) the mailbox size comes from the source's size
 * listing of their domain (driver domain_sizes: GetQuotaUsage, one request
 * per 500 accounts, on `src`), and for those it does not cover from one
 * request per account (lookup of the id, then size) on a few threads of
 * their own; everything is upserted in one transaction.  Output lines go
 * through stage_out.
 */
#ifndef ZMB_MIGRATE_PLAN_H
#define ZMB_MIGRATE_PLAN_H

#include "stage.h"
#include "xfer.h"

/*
 * src: the main thread's connection to x->src.  With ctx->dry_run nothing
 * is written (the plan is only printed).  *total: planned bytes known.
 * Errors: the source's (ZMB_EAUTH, ZMB_ECONNECT, ZMB_ETLS: unavailable),
 * ZMB_ECONFIG (accounts_file), the state DB's; *err set, caller frees.
 */
enum zmb_rc migrate_plan(struct xfer *x, struct stage_ctx *ctx, struct xfer_conn *src,
			 long long *total, char **err);

#endif
