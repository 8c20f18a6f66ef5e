/*
 * query_migrate.h - the named queries the migrate stage and the transfer
 * engine ask of the state database (src/xfer/, src/stages/migrate.c).
 *
 * Read-only SELECTs on the caller's connection (state.h: one thread at a
 * time per connection); they take no write lock.  A query that cannot be
 * prepared or stepped answers as if the database had no matching row (each
 * caller's safe default is stated below) and returns an error code that the
 * caller may ignore.
 */
#ifndef ZMB_QUERY_MIGRATE_H
#define ZMB_QUERY_MIGRATE_H

#include "state.h"
#include "zmb.h"

/*
 * Does a complete spool file at `path` belong to an account that waits for
 * its import (state 'exported' with that spool_path)?  false on error, so
 * housekeeping disposes of the file (it is kept in success_dir if the job
 * keeps archives).
 */
bool state_mig_spool_waits(struct state *st, const char *path);

/*
 * Target domains (lower case, sorted) with at least `min_accounts` accounts
 * on their first attempt (attempts = 0) and not yet finished: the domains
 * worth listing at the start of a run.  Appends to *out; on error *out gets
 * nothing more.
 */
enum zmb_rc state_mig_target_domains(struct state *st, int min_accounts, struct strlist *out);

/*
 * Sum of the known sizes of accounts not yet finished (pending, exporting,
 * exported, importing): the bytes still to move, for the ETA.  *bytes = 0 on
 * error.
 */
enum zmb_rc state_mig_bytes_left(struct state *st, long long *bytes);

#endif
