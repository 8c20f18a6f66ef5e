/*
 * e2e.h - shared pieces of the end-to-end suites: a pair of simulated Zimbra
 * servers (tests/zsim.h) with a test CA, password files, a native job file,
 * running bin/zmbatch, and looking at the results (state DB, files,
 * simulator fingerprints).
 *
 * Call from test bodies or checked fixtures (inside the forked child).
 * Failures inside these helpers are Check assertions.
 */
#ifndef ZMB_E2E_H
#define ZMB_E2E_H

#include "testutil.h"
#include "zsim.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct e2e {
	char *dir;              /* temp dir: job.cfg, src.pw, dst.pw, state.db, work/, log/ */
	struct zsim_pki *pki;
	struct zsim *src;
	struct zsim *dst;
	char *job;              /* job file path (after e2e_write_job) */
	char *db;               /* state DB path */
};

/* Source: example.com (5 users incl. an empty one, plus system accounts) and
 * example.org (3 users); target: the same users, empty, in example.net
 * (domain map example.com=example.net) and example.org. */
extern const char *const E2E_SRC_CFG;
extern const char *const E2E_DST_CFG;
extern const char *const E2E_USERS[][2];   /* { source, target } */
extern const size_t E2E_NUSERS;

/* Start both simulators (configs as in tests/zsim/README.md), write password files. */
void e2e_start(struct e2e *e, const char *src_cfg, const char *dst_cfg);
/* Stop simulators, remove the temp dir, free; NULL-safe fields. */
void e2e_stop(struct e2e *e);
/* Write e->job: both domains, domain map, `threads`, spool dirs, short
 * backoff; extra_mig goes into the migration group, extra_top at top level. */
void e2e_write_job(struct e2e *e, int threads, const char *extra_mig, const char *extra_top);
/* Run bin/zmbatch with a NULL-terminated list of arguments; on a non-zero
 * exit its output is copied to stderr (the runner log). */
int e2e_zmbatch(struct tu_proc *p, double timeout, ...);
/* Regular files below e->dir/rel (-1 on error). */
int e2e_count_files(struct e2e *e, const char *rel);
/* Every E2E_USERS pair has equal content, no duplicates, no token in a URL. */
void e2e_assert_all_migrated(json_t *src_stats, json_t *dst_stats);
/* First column of the first row of a query on the state DB. */
long long e2e_db_count(struct e2e *e, const char *sql);
/* The same on the SQLite file at path (-1 if no row; asserts the DB opens and the SQL prepares). */
long long e2e_db_int(const char *path, const char *sql);
/* The same without assertions: false while the DB or its schema is not there yet. */
bool e2e_db_try(struct e2e *e, const char *sql, long long *out);
/*
 * zmbatch-testhooks run -c e->job: ZMBATCH_CRASH_AT=k when k > 0, the durable
 * steps logged to steps when not NULL.  Its exit status; an unexpected one
 * (not 0, not 99 for a crash) is printed with the run's output.
 */
int e2e_hooks_run(struct e2e *e, long k, const char *steps, double timeout);
/* How many SOAP requests named req ("CreateAccountRequest") the simulator has seen. */
long long e2e_soap_calls(struct zsim *z, const char *req);
/* grep -r for a fixed string below e->dir/rel. */
bool e2e_tree_contains(struct e2e *e, const char *rel, const char *s);

#endif
