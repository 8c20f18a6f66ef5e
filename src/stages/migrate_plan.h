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
 * With a shard (ctx->shard) only its accounts stay, before any size is asked
 * or any row written: by the hash of the name, or (--shard-by server) by
 * their home mailbox server (shard.h), each account no domain listing placed
 * looked up once (GetAccountRequest) on the sizing threads.
 *
 * src: the main thread's connection to x->src.  With ctx->dry_run nothing
 * is written (the plan is only printed).  *total: planned bytes known.
 * Errors: the source's (ZMB_EAUTH, ZMB_ECONNECT, ZMB_ETLS: unavailable),
 * ZMB_ECONFIG (accounts_file; a by-server shard whose DB recorded another
 * server set, or whose source driver knows no servers: then *exit_code =
 * EXIT_CONFIG, else untouched), the state DB's; *err set, caller frees.
 */
enum zmb_rc migrate_plan(struct xfer *x, struct stage_ctx *ctx, struct xfer_conn *src,
			 long long *total, int *exit_code, char **err);

#endif
