/*
 * query_prov.h - the read-only queries of the reports about the provision
 * stage (schema 008: provision_objects), on the report side's sqlite3
 * handle (query_report.h).  Main thread, inside the caller's read
 * transaction.  On a DB from before schema 008 (opened read-only, never
 * migrated) the counts say present = false and the stream gives no row.
 */
#ifndef ZMB_QUERY_PROV_H
#define ZMB_QUERY_PROV_H

#include "query_report.h"

/* The kinds of provision_objects.kind (its CHECK constraint), in report order. */
enum { QP_ACCOUNT, QP_COS, QP_DOMAIN, QP_LIST, QP_RESOURCE, QP_NKINDS };
extern const char *const qp_kind_names[QP_NKINDS];     /* "account", "cos", "domain", "list", "resource" */

/*
 * What became of an object, one bucket each: state 'pending' (planned),
 * 'creating' (a create sent or about to be), 'failed' (its last try failed,
 * whatever an earlier run did), else 'done' by its outcome (created,
 * updated, unchanged = compared and equal, skipped = left by existing =
 * "skip").
 */
enum { QP_PENDING, QP_CREATING, QP_CREATED, QP_UPDATED, QP_UNCHANGED, QP_SKIPPED, QP_FAILED,
       QP_NOUTCOMES };
extern const char *const qp_outcome_names[QP_NOUTCOMES];   /* "pending" ... "failed" */

struct qr_prov {
	bool present;                              /* the table exists (schema 008 and later) */
	long long n[QP_NKINDS][QP_NOUTCOMES];      /* objects by kind and outcome */
	long long kind_total[QP_NKINDS];
	long long total;                           /* every row (a kind unknown here too) */
};
/* One grouped pass over provision_objects. */
enum zmb_rc qr_prov_counts(sqlite3 *db, struct qr_prov *c, char **err);

/* Failed objects by stage, kind and name; strings borrowed for the call (NULL = SQL NULL). */
struct qr_prov_failed {
	const char *stage, *kind, *name, *target;
	long long attempts;
	const char *error;       /* last_error */
	double updated_at;       /* 0 = unknown */
};
/* At most `limit` rows (< 0: all).  Nothing on a DB without the table. */
enum zmb_rc qr_prov_failed(sqlite3 *db, int limit,
			   void (*fn)(void *arg, const struct qr_prov_failed *row), void *arg,
			   char **err);

#endif
