/*
 * report.h - the read side of the state DB: report renderers (text, csv,
 * json, prom, html), the `status` screen, the `accounts` listing and one
 * account's history.
 *
 * Every function here only reads: it takes a plain sqlite3 connection (from
 * state_db() on a STATE_READONLY state, or any connection in tests) and
 * writes to a stdio stream owned by the caller.  The SQL lives in
 * src/state/query_report.c (named queries); the model and one renderer per
 * format are listed in report_int.h.  Queries are aggregates or
 * streamed row by row (no per-account allocation that grows with the number
 * of accounts, no O(n^2)), so 100,000 accounts render well under 2 s.  The
 * whole rendering of one report runs inside one read transaction, so the
 * numbers are one consistent snapshot even while a run writes (WAL).
 *
 * Main thread only (commands); a connection must not be shared with another
 * thread while a function here runs.
 *
 * Definitions used by every format:
 *   bytes_done    sum of `bytes` over accounts in state done
 *   bytes_total   planned bytes: over every account not skipped, `bytes` when
 *                 done, else its mailbox `size` (unknown = 0); so
 *                 bytes_done <= bytes_total
 *   remaining     sum of `size` over pending/exporting/exported/importing
 *   throughput    (report) bytes_done / wall time of all runs: the time
 *                 covered by at least one run, so shard runs side by side
 *                 (report --merge) count once (a run still going counts up
 *                 to now; a run that died without ended_at counts 0);
 *                 (status) bytes of accounts that reached done in the last
 *                 10 minutes / 600 s, or / time since the start of the current
 *                 run when that is shorter; 0 when no run is in progress
 *   ETA           remaining / throughput (bytes weighted); unknown when the
 *                 rate is 0
 *   last run      the runs row with the highest id (merged: the one started
 *                 last); "running" when ended_at is NULL and its pid is
 *                 alive on this host, "died" when ended_at is NULL and the
 *                 pid is gone.  zmbatch_last_run_running and the status
 *                 rate of a merged DB: any shard's newest run running
 *
 * Formats (field names are the contract; tests/check_report.c holds them):
 *   json  one object: job, generated_at (ISO 8601 UTC), counts (every
 *         account state, zeros included), bytes_done, bytes_total, stages
 *         [{name,type,state,attempts,error}], runs {count,
 *         token_refreshes_total, retries_total, last_success_at, last:
 *         {id,started_at,ended_at,duration_seconds,host,pid,command,
 *         exit_status,status,token_refreshes,retries,bytes} | null},
 *         servers [{role,host,auth_requests,token_refreshes,auth_failures,
 *         last_auth_at}] (schema 002 and later; from schema 003, when a run
 *         recorded its pacing, also requests, throttled (HTTP 429/503
 *         answers), throttle_wait_seconds, rate_limit (requests/s in
 *         force, 0 = no cap), concurrency_limit),
 *         accounts [{account,target,state,attempts,bytes,seconds,error}]
 *         (seconds is a number, 0 when unknown; error is null when none;
 *         additive: source_status, target_status, warnings (schema 004),
 *         source_host, target_host: the account's mailbox servers
 *         (zimbraMailHost, schema 005), null when unknown; chunks_done,
 *         chunks_total: steps of the last pass exported in pieces, schema
 *         006, 0 and 0 for one whole export; verified: true for verify
 *         'ok', false for 'mismatch'/'unverifiable', null when never
 *         verified; verify: that string or null; verify_detail: string or
 *         null, schema 007), and verify_counts {ok, mismatch, unverifiable,
 *         none} (none = never verified).  Additive (schema 008, absent
 *         on an older DB): provision {total, counts {account|cos|domain|
 *         list: {pending, creating, created, updated, unchanged, skipped,
 *         failed}} (every kind and outcome, zeros included; a done object
 *         by its outcome, a failed one as failed whatever an earlier run
 *         did), failed [{stage,kind,name,target,attempts,error,
 *         updated_at}] (by stage, kind, name)}, just before accounts.
 *         The accounts array is streamed last, one account per line.
 *   csv   RFC 4180 with CRLF line ends, header
 *         account,target,state,attempts,bytes,seconds,error,source_host,
 *         target_host,chunks_done,chunks_total,verified (appended in that
 *         order: mail hosts, schema 005, empty when unknown; steps, schema
 *         006; verified true/false, empty when never verified, schema 007);
 *         a field is quoted when it contains , " CR or LF, quotes
 *         doubled; seconds with 3 decimals, empty when unknown.
 *   prom  Prometheus text exposition 0.0.4; HELP/TYPE for every family;
 *         base units; counters end in _total; no account name in any label.
 *         Families: zmbatch_accounts{state}, zmbatch_done_bytes,
 *         zmbatch_planned_bytes, zmbatch_remaining_bytes,
 *         zmbatch_transferred_bytes_total, zmbatch_runs_total,
 *         zmbatch_last_run_running, zmbatch_run_duration_seconds,
 *         zmbatch_last_run_exit_code (absent while running / after a crash),
 *         zmbatch_last_run_timestamp_seconds (start of the last run),
 *         zmbatch_last_success_timestamp_seconds (end of the last run that
 *         exited 0; absent if none), zmbatch_token_refreshes_total,
 *         zmbatch_retries_total, zmbatch_stage_state{stage,state} 0/1,
 *         zmbatch_auth_requests_total{role}, zmbatch_auth_failures_total{role}
 *         (schema 002), zmbatch_server_requests_total{role},
 *         zmbatch_server_throttled_total{role},
 *         zmbatch_server_throttle_wait_seconds_total{role},
 *         zmbatch_server_rate_limit{role} (requests/s, 0 = no cap),
 *         zmbatch_server_concurrency_limit{role} (schema 003, roles whose
 *         pacing a run recorded), zmbatch_accounts_verify{verdict="ok|
 *         mismatch|unverifiable|none"} (schema 007; none = never verified),
 *         zmbatch_provision_objects{kind,state} (schema 008: every kind
 *         and outcome of the JSON's provision.counts, absent before),
 *         zmbatch_report_timestamp_seconds.
 *         Runs are the rows of `runs` whose command is "run" or "run ...";
 *         rows of other writing commands are ignored.
 *   text  for people: counts, bytes, throughput, ETA, the servers (logins,
 *         requests, throttled answers, pauses, limits in force), the 5
 *         slowest accounts, failures grouped by class and listed with
 *         reasons, stages, last run, "verification:" (counts by verdict,
 *         the mismatched and unverifiable accounts with their detail),
 *         "provision:" (objects by kind and outcome, the failed ones with
 *         their last error; only when there are objects).
 *         `status` shows the servers' pacing, the verdict counts and the
 *         provision lines (at most 5 failed objects) too.
 *   html  one self-contained HTML5 page for people (a browser, a phone,
 *         print): inline <style> and inline SVG only; no script, no
 *         external resource or URL of any kind, the system font stack.
 *         Every text from the DB (account names, error texts, hosts, job,
 *         stage and class names) is escaped (& < > " ' as entities, control
 *         characters as spaces) and cut at 400 bytes (a stage's output at
 *         2000).  Numbers of the definitions above are in <data value="N">
 *         (the exact figure; the element's text is for people).  Sections, in order, by id:
 *           summary     counts (ids k-accounts, k-done, k-failed, k-pending,
 *                       k-flight = exporting+exported+importing, k-skipped,
 *                       k-verified, k-mismatch, k-unverifiable; every state
 *                       in tr#count-STATE), bytes-done, bytes-total,
 *                       bytes-remaining, rate (the throughput), eta, last-run
 *           progress    figure#fig-progress: accounts and bytes done over
 *                       time (cumulative, by accounts.finished_at of done
 *                       accounts, 60 buckets) over the runs as bands (the
 *                       newest 200 runs); span#progress-total
 *           throughput  figure#fig-throughput: bytes done per clock hour (UTC),
 *                       the last 48 hours up to the last finish, the
 *                       report's throughput as a dashed line
 *           failures    figure#fig-failures: failed accounts by error class
 *                       (the 12 largest, the rest as "other"); table#problems:
 *                       the first 50 failed, then mismatched / unverifiable
 *                       accounts, with their reason and what to do
 *           sizes       figure#fig-sizes: accounts by mailbox size (decades
 *                       from 1 MiB to 100 GiB, unknown), done / to migrate /
 *                       failed / skipped stacked; table#largest: the 10
 *                       largest still to migrate
 *           slowest     the 10 accounts with the longest last pass
 *           servers     per role and host: logins, token refreshes, auth
 *                       failures, requests, throttled, paused, limits
 *           stages      every stage (name, type, state, attempts, error, and
 *                       its output lines: the LDAP stages' results),
 *                       provisioned objects by
 *                       kind and outcome with the first 20 failed ones
 *           runs        the newest 20 runs
 *         Each chart is a <figure> whose <svg> has a <title>; each bar,
 *         band and line has a <title> with its value, and a <figcaption>
 *         or a data table gives the figures as text.  Every list is
 *         bounded, so the page stays under about 150 KiB whatever the
 *         number of accounts.
 *   The provision objects are not in the CSV: its rows are the accounts
 *   of the migrate stage, one per row, with a fixed column contract.
 *
 * A merged DB (report/status --merge DB...: state_merge_open) renders in
 * every format as one job, and adds (additive, only when merged): text and
 * status: "merged: N state DB(s), M account(s)", one line per DB (path,
 * shard, accounts by state, bytes moved), a total, and "ERROR: account A
 * is in two state DBs: X and Y" per duplicate, "ERROR: account A is in no
 * state DB: ..." per account a by-server shard listed that no DB holds;
 * json: "merge" {dbs [{path, shard, accounts, counts, planned_bytes,
 * bytes_moved}], duplicates [{account, db, also_in}], untaken [{account,
 * shard, home, listed_by, listed_at}], total {accounts, counts,
 * planned_bytes, bytes_moved}, ok}; prom: zmbatch_merge_state_dbs,
 * zmbatch_merge_duplicate_accounts, zmbatch_merge_untaken_accounts.  The
 * CSV has no room for them: the command says so on stderr and exits 1, as
 * it does for every format.
 *
 * Exit codes of the commands built on this (cmd_status.c, cmd_report.c,
 * cmd_accounts.c, cmd_reset.c):
 *   0   ok
 *   1   the state DB does not exist ("nothing has run yet"), an unknown
 *       account (accounts --history, reset), or a DB read error
 *   64  usage (unknown --state-filter state: the message lists valid ones)
 *   75  reset: another run holds the lock
 *   78  configuration error (job file)
 * With --state DB and no -c, status/report/accounts/reset work from the DB
 * alone (job name from the DB's meta table; reset then skips the job
 * identity check).
 *
 * --output FILE ("-" = stdout): written to FILE.tmp.<pid> in the same directory, fsync'd,
 * renamed over FILE (and the directory fsync'd), so node_exporter's textfile
 * collector never sees a half file.  Mode 0644 for prom (a metrics file read
 * by node_exporter, no account names in it), 0600 for the other formats,
 * html included (they list account addresses and error texts).
 */
#ifndef ZMB_REPORT_H
#define ZMB_REPORT_H

#include "zmb.h"
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>

enum report_format { REPORT_TEXT = 0, REPORT_CSV, REPORT_JSON, REPORT_PROM, REPORT_HTML };

/* "text"|"csv"|"json"|"prom"|"html" -> format; -1 if unknown.  NULL -> text. */
int report_format_parse(const char *s);

/*
 * Render a report of the DB.  job_name labels it (NULL: the DB's meta
 * job_name, else "").  now = wall-clock time used for generated_at and for
 * the elapsed time of a run in progress.  On error returns ZMB_ESTATE (or
 * ZMB_EIO when writing to out failed) with *err set (caller frees).
 */
enum zmb_rc report_render(sqlite3 *db, const char *job_name, enum report_format fmt,
			  double now, FILE *out, char **err);

/*
 * The same, written atomically to path (temp file in the same directory,
 * fsync, rename).  Mode as described above.  Nothing is left behind on error.
 */
enum zmb_rc report_render_file(sqlite3 *db, const char *job_name, enum report_format fmt,
			       double now, const char *path, char **err);

/* The `status` screen.  db_path is only printed. */
enum zmb_rc report_status(sqlite3 *db, const char *job_name, const char *db_path,
			  double now, FILE *out, char **err);

/*
 * `accounts`: one line per account, tab-separated, no header: account,
 * target, state, attempts, bytes, error (control characters and tabs
 * flattened to spaces; empty when none), in listing order (seq).  state < 0
 * = all, else only accounts in that enum acct_state.
 */
enum zmb_rc report_accounts(sqlite3 *db, int state, FILE *out, char **err);

/*
 * `accounts --history ACCOUNT`: the account's events in order, one line
 * each: time (ISO 8601 UTC), run id, level, stage, message.
 * ZMB_ENOTFOUND (with *err naming the account) if it is not in the DB.
 */
enum zmb_rc report_history(sqlite3 *db, const char *account, FILE *out, char **err);

/* ---- shared by the read-side commands (cmd_status/report/accounts/reset) ---- */

#include "job.h"

struct state;

/* What a command needs to reach the DB.  Owned by the command (main thread). */
struct report_db {
	struct job job;         /* loaded when have_job */
	bool have_job;
	const char *path;       /* the state DB path (cli or job owned) */
	const char *job_name;   /* job.name, or NULL to take it from the DB */
	char shard[16];         /* "I/N" when the command names a shard: the DB must be its */
	struct state *st;       /* after report_db_open() */
};

/* report_db_load() (cli.h) fills one from the command line. */
/* state_open() with flags (identity checked for STATE_WRITE when the job is
 * loaded); prints the error and returns the exit code (0, 78, or 1). */
int report_db_open(struct report_db *r, int flags);
void report_db_close(struct report_db *r);   /* NULL-safe members */

#endif
