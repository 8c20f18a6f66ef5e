/*
 * report_status.c - the `status` screen: last run, stages, counts, bytes,
 * the current rate and ETA, the accounts in flight, the servers (logins,
 * throttling, the limits in force) and the last errors
 * (definitions: report.h).  One read transaction for the whole screen.
 */
#include "report_int.h"

#include <stdlib.h>
#include <string.h>

#define STATUS_IN_FLIGHT 20      /* accounts in flight listed */
#define STATUS_ERRORS 5          /* last errors listed */
#define STATUS_WINDOW 600.0      /* seconds of the current rate's window */

/* Bytes per second of the accounts that reached done in the window (the
 * last 10 minutes, or the current run when it is shorter); *window = 0 and
 * rate 0 when no run is in progress. */
static enum zmb_rc current_rate(sqlite3 *db, const struct snapshot *s, double *rate,
				double *window, char **err)
{
	long long bytes;
	*rate = 0;
	*window = 0;
	if (!snapshot_running(s))
		return ZMB_OK;
	double w = s->now - s->last.row.started_at;
	if (w > STATUS_WINDOW)
		w = STATUS_WINDOW;
	if (w < 1)
		w = 1;
	enum zmb_rc rc = qr_done_bytes_since(db, s->now - w, &bytes, err);
	if (rc)
		return rc;
	*rate = (double)bytes / w;
	*window = w;
	return ZMB_OK;
}

/* The rate line and the ETA. */
static enum zmb_rc status_rate(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	char b[32], d[32];
	double rate, window;
	enum zmb_rc rc = current_rate(db, s, &rate, &window, err);
	if (rc)
		return rc;
	if (window > 0) {
		fmt_rate(rate, b);
		fmt_dur(window, d);
		fprintf(out, "rate:       %s (accounts finished in the last %s)\n", b, d);
	} else {
		rate = snapshot_avg_rate(s);
		fmt_rate(rate, b);
		fprintf(out, "rate:       no run in progress; average %s over all runs\n", b);
	}
	text_eta(out, s, rate);
	return ZMB_OK;
}

struct status_rows { FILE *out; double now; int n; };

static void status_flight(void *arg, const struct qr_in_flight *r)
{
	struct status_rows *p = arg;
	char d[32], b[32];
	char *a = fmt_flat(r->account);
	fmt_dur(r->started_at > 0 ? p->now - r->started_at : 0, d);
	if (!r->has_size)
		snprintf(b, sizeof b, "size ?");
	else
		fmt_bytes(r->size, b);
	fprintf(p->out, "  %-40s %-9s %9s  %12s  attempt %d", a, r->state, d, b,
		(int)r->attempts + 1);
	if (r->chunks_total > 0) {
		char m[32];
		fmt_bytes(r->chunk_bytes, m);
		fprintf(p->out, "  step %lld/%lld, %s moved", r->chunks_done + 1, r->chunks_total, m);
	}
	fputc('\n', p->out);
	free(a);
}

static enum zmb_rc status_in_flight(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	struct status_rows p = { out, s->now, 0 };
	long long inflight = 0;
	for (int i = 0; i < ACCT_NSTATES; i++)
		if (acct_in_flight((enum acct_state)i))
			inflight += s->counts[i];
	fprintf(out, "in flight:  %lld\n", inflight);
	if (inflight <= 0)
		return ZMB_OK;
	enum zmb_rc rc = qr_in_flight(db, STATUS_IN_FLIGHT, status_flight, &p, err);
	if (rc == ZMB_OK && inflight > STATUS_IN_FLIGHT)
		fprintf(out, "  ... and %lld more\n", inflight - STATUS_IN_FLIGHT);
	return rc;
}

static void status_event(void *arg, const struct qr_event *r)
{
	struct status_rows *p = arg;
	char t[32];
	char *who = fmt_flat(r->who), *m = fmt_flat(r->message);
	fmt_time(r->at, t);
	fprintf(p->out, "  %s %-5s %s%s%s\n", t, r->level, who, *who ? ": " : "", m);
	free(who);
	free(m);
	p->n++;
}

static void status_account_error(void *arg, const struct qr_account_error *r)
{
	struct status_rows *p = arg;
	char t[32];
	char *a = fmt_flat(r->account), *c = fmt_flat(r->error_class), *m = fmt_flat(r->error);
	fmt_time(r->at, t);
	fprintf(p->out, "  %s %s (%s) [%s] %s\n", t, a, r->state, *c ? c : "unknown", m);
	free(a);
	free(c);
	free(m);
	p->n++;
}

/* Last errors: the event log first (newest first), else accounts' last_error. */
static enum zmb_rc status_errors(sqlite3 *db, FILE *out, char **err)
{
	struct status_rows p = { out, 0, 0 };
	fprintf(out, "last errors:\n");
	enum zmb_rc rc = qr_last_problems(db, STATUS_ERRORS, status_event, &p, err);
	if (rc == ZMB_OK && p.n == 0)
		rc = qr_last_account_errors(db, STATUS_ERRORS, status_account_error, &p, err);
	if (rc == ZMB_OK && p.n == 0)
		fprintf(out, "  none\n");
	return rc;
}

/* The screen from a snapshot, top to bottom. */
static enum zmb_rc status_screen(sqlite3 *db, const struct snapshot *s, const char *db_path,
				 FILE *out, char **err)
{
	enum zmb_rc rc;
	char *job = fmt_flat(s->job), *path = fmt_flat(db_path);
	fprintf(out, "job:        %s\nstate db:   %s\n", job, path);
	free(job);
	free(path);
	if ((rc = text_merge(db, s, out, err)) != ZMB_OK)
		return rc;
	text_last_run(out, s);
	if ((rc = text_stages(db, out, true, err)) != ZMB_OK)
		return rc;
	text_counts(out, s, true);
	text_verify_counts(out, s);
	text_cutover_counts(out, s);
	if ((rc = text_provision(db, s, out, STATUS_ERRORS, err)) != ZMB_OK)
		return rc;
	text_bytes(out, s);
	if ((rc = status_rate(db, s, out, err)) != ZMB_OK)
		return rc;
	if ((rc = status_in_flight(db, s, out, err)) != ZMB_OK)
		return rc;
	if ((rc = text_servers(db, out, err)) != ZMB_OK)
		return rc;
	if ((rc = status_errors(db, out, err)) != ZMB_OK)
		return rc;
	return fmt_write_failed(out, err) ? ZMB_EIO : ZMB_OK;
}

enum zmb_rc report_status(sqlite3 *db, const char *job_name, const char *db_path,
			  double now, FILE *out, char **err)
{
	struct snapshot s;
	bool own;
	enum zmb_rc rc = qr_read_begin(db, &own, err);
	if (rc)
		return rc;
	rc = snapshot_read(db, job_name, now, &s, err);
	if (rc == ZMB_OK)
		rc = status_screen(db, &s, db_path, out, err);
	snapshot_release(&s);
	qr_read_end(db, own);
	return rc;
}
