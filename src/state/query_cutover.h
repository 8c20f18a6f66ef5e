/*
 * query_cutover.h - the read-only query of the reports about the cutover
 * stage (schema 009), on the report side's sqlite3 handle (query_report.h).
 * Main thread, inside the caller's read transaction.
 */
#ifndef ZMB_QUERY_CUTOVER_H
#define ZMB_QUERY_CUTOVER_H

#include "query_report.h"
#include "state_cutover.h"

struct qr_cutover {
	bool present;                 /* the table exists and has rows */
	long long steps[CUT_NSTEPS];  /* accounts by step (enum cut_step; cut_step_name) */
	long long errors;             /* unfinished rows whose last step failed */
	long long batches;            /* the highest batch number */
};
/* All zero (present false) on a DB from before schema 009 or without cutover. */
enum zmb_rc qr_cutover(sqlite3 *db, struct qr_cutover *c, char **err);

#endif
