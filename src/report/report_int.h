/*
 * report_int.h - the inside of src/report/: the model every format renders
 * (one snapshot of the aggregates, read through the named queries of
 * query_report.h), the formatting helpers, and one renderer per format.
 * Only the files of src/report include it.
 *
 * The files (each uses only the ones below it in this list):
 *   report.c         public entry points (report.h): format dispatch, --output
 *   report_status.c  the `status` screen
 *   report_list.c    `accounts` and `accounts --history`
 *   report_db.c      opening the DB for the read-side commands
 *   report_text.c, report_csv.c, report_json.c, report_prom.c, report_html.c
 *                    one format each
 *   report_model.c   the snapshot
 *   report_fmt.c     bytes, durations, times, rates for people; write check
 *
 * Renderers write to a stdio stream owned by the caller and only read the
 * DB (inside the caller's read transaction: qr_read_begin()).  Main thread.
 */
#ifndef ZMB_REPORT_INT_H
#define ZMB_REPORT_INT_H

#include "query_cutover.h"
#include "query_prov.h"
#include "query_report.h"
#include "report.h"

/* ---- the model (report_model.c) ---- */

/* The last run and what became of it. */
struct last_run {
	struct qr_run row;      /* row.present = false: no run yet */
	const char *status;     /* "exited", "running", "died" (static strings) */
	double duration;        /* ended - started, or now - started while running */
};

/* One consistent view of the aggregates (definitions: report.h). */
struct snapshot {
	char *job;                   /* owned */
	double now;
	long long counts[ACCT_NSTATES];
	long long accounts;
	long long bytes_done, bytes_total, remaining;
	long long runs, refreshes, retries, transferred;
	double run_seconds;          /* wall time covered by runs, the ones in progress up to now */
	bool running_any;            /* some run's process is alive (merged: any shard's) */
	double last_success_at;      /* 0 = none */
	struct last_run last;
	bool has_servers;            /* schema 002: per-server auth counters */
	long long warned;            /* done with warnings (schema 004) */
	long long verify[QR_VERIFY_N]; /* accounts by verdict (schema 007; all "none" before) */
	struct qr_cutover cut;       /* the cutover stage (schema 009; present false before) */
	struct qr_prov prov;         /* the provision stage's objects (schema 008; present false before) */
	bool merged;                 /* a merged DB (report --merge): its sources are in the report */
	long long merge_dups;        /* accounts found in two of its DBs */
	long long merge_untaken;     /* accounts a by-server shard listed that none of its DBs holds */
};

/* Read the snapshot (job_name NULL: from the DB's meta).  *s is always
 * initialised: release it whatever the result. */
enum zmb_rc snapshot_read(sqlite3 *db, const char *job_name, double now,
			  struct snapshot *s, char **err);
void snapshot_release(struct snapshot *s);
/* Average throughput over all runs: bytes_done / run_seconds (0 if none). */
double snapshot_avg_rate(const struct snapshot *s);
/* Is the last run in progress now? */
bool snapshot_running(const struct snapshot *s);
/* Pending or in flight (the work left). */
long long snapshot_left(const struct snapshot *s);

/* ---- formatting for people (report_fmt.c) ---- */

/* Copy of s fit for one terminal line: control characters become spaces
 * (NULL -> ""; caller frees). */
char *fmt_flat(const char *s);
void fmt_bytes(long long n, char out[32]);   /* "123 B", "1.5 MiB" */
void fmt_dur(double s, char out[32]);        /* "1d02h03m" ... "5s"; "?" when not sane */
void fmt_time(double t, char out[32]);       /* ISO 8601 UTC; "-" for 0 */
void fmt_rate(double bps, char out[32]);     /* "1.5 MiB/s" */
/* Flush out; true (with *err set) when writing failed. */
bool fmt_write_failed(FILE *out, char **err);

/* ---- renderers (one file each) ---- */

enum zmb_rc report_text(sqlite3 *db, const struct snapshot *s, FILE *out, char **err);
enum zmb_rc report_csv(sqlite3 *db, FILE *out, char **err);
enum zmb_rc report_json(sqlite3 *db, const struct snapshot *s, FILE *out, char **err);
enum zmb_rc report_prom(sqlite3 *db, const struct snapshot *s, FILE *out, char **err);
enum zmb_rc report_html(sqlite3 *db, const struct snapshot *s, FILE *out, char **err);

/*
 * A merged DB's sources (report_merge.c): "merged: N state DB(s), M
 * account(s)", one line per DB (path, shard, accounts by state, bytes
 * moved) and the total, then an ERROR line per account found in two DBs.
 * Nothing for a DB that is not a merged one.
 */
enum zmb_rc text_merge(sqlite3 *db, const struct snapshot *s, FILE *out, char **err);

/* Pieces of the text report the `status` screen shares (report_text.c). */
void text_last_run(FILE *out, const struct snapshot *s);
void text_counts(FILE *out, const struct snapshot *s, bool one_line);
void text_bytes(FILE *out, const struct snapshot *s);
/* The verdict counts: "verified:   ok N, mismatch N, unverifiable N, none N". */
void text_verify_counts(FILE *out, const struct snapshot *s);
void text_cutover_counts(FILE *out, const struct snapshot *s);   /* nothing before a cutover */
/*
 * The provision stage's objects (nothing before schema 008 or a provision run):
 * "provision:" with one line per kind that has objects (created, updated,
 * unchanged, skipped, failed, and pending/creating when any), then the failed
 * objects with their last error, at most `limit` (< 0: all).
 */
enum zmb_rc text_provision(sqlite3 *db, const struct snapshot *s, FILE *out, int limit, char **err);
void text_eta(FILE *out, const struct snapshot *s, double rate);
/* brief: one line (status); else one block per stage (report). */
enum zmb_rc text_stages(sqlite3 *db, FILE *out, bool brief, char **err);
/* One line per server: logins, then requests, throttled answers, pauses and
 * the limits in force (when recorded). */
enum zmb_rc text_servers(sqlite3 *db, FILE *out, char **err);

#endif
