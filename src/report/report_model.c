/*
 * report_model.c - the snapshot every format renders: counts, bytes, run
 * totals and the last run, read through the named queries (query_report.h)
 * inside the caller's read transaction.  Definitions: report.h.
 */
#include "report_int.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Is the process of a run with ended_at NULL still alive? */
static const char *run_liveness(const char *host, long long pid)
{
	char me[256];
	if (gethostname(me, sizeof me) != 0)
		return "running";
	me[sizeof me - 1] = '\0';
	if (!host || strcmp(host, me) != 0 || pid <= 0)
		return "running";      /* another host: cannot tell, trust the DB */
	if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
		return "running";
	return "died";
}

/* Counts and bytes from the per-state totals. */
static void snapshot_accounts(struct snapshot *s, const struct qr_state_totals *t)
{
	s->accounts = t->accounts;
	for (int i = 0; i < ACCT_NSTATES; i++) {
		s->counts[i] = t->count[i];
		if (i == ACCT_DONE) {
			s->bytes_done = t->bytes[i];
			s->bytes_total += t->bytes[i];
		} else if (i != ACCT_SKIPPED) {
			s->bytes_total += t->size[i];
			/* a pass in steps: what its steps done moved is no longer remaining */
			if (i != ACCT_FAILED)
				s->remaining += t->size[i] > t->moved[i] ? t->size[i] - t->moved[i] : 0;
		}
	}
}

/* The last run, its status and duration. */
static enum zmb_rc snapshot_last_run(sqlite3 *db, struct snapshot *s, char **err)
{
	struct last_run *l = &s->last;
	enum zmb_rc rc = qr_last_run(db, &l->row, err);
	if (rc || !l->row.present)
		return rc;
	if (l->row.ended_at > 0) {
		l->status = "exited";
		l->duration = l->row.ended_at - l->row.started_at;
	} else {
		l->status = run_liveness(l->row.host, l->row.pid);
		l->duration = strcmp(l->status, "running") == 0 ? s->now - l->row.started_at : 0;
	}
	if (l->duration < 0)
		l->duration = 0;
	return ZMB_OK;
}

/*
 * The wall time of the runs: the time covered by at least one run, so runs
 * side by side (the shards of a merged DB) count once.  A run without an
 * end counts up to now while its process lives, else 0 (it died).
 */
struct run_union {
	double now, end, total;   /* end: the latest end seen so far */
	bool running;             /* some run is alive */
};

static void union_span(void *arg, const struct qr_run_span *r)
{
	struct run_union *u = arg;
	double end = r->ended_at;
	if (end <= 0) {
		/* only the newest run of a DB can still run (the lock); an older one died */
		if (!r->last || strcmp(run_liveness(r->host, r->pid), "running") != 0)
			return;
		end = u->now;
		u->running = true;
	}
	double from = r->started_at > u->end ? r->started_at : u->end;
	if (end > from)
		u->total += end - from;
	if (end > u->end)
		u->end = end;
}

/* Run totals, the last success and the last run. */
static enum zmb_rc snapshot_runs(sqlite3 *db, struct snapshot *s, char **err)
{
	struct qr_run_totals t;
	enum zmb_rc rc = qr_run_totals(db, &t, err);
	if (rc)
		return rc;
	s->runs = t.runs;
	s->refreshes = t.token_refreshes;
	s->retries = t.retries;
	s->transferred = t.bytes;
	struct run_union u = { s->now, 0, 0, false };
	if ((rc = qr_run_spans(db, union_span, &u, err)) != ZMB_OK)
		return rc;
	s->run_seconds = u.total;
	s->running_any = u.running;
	if ((rc = qr_last_success(db, &s->last_success_at, err)) != ZMB_OK)
		return rc;
	return snapshot_last_run(db, s, err);
}

enum zmb_rc snapshot_read(sqlite3 *db, const char *job_name, double now,
			  struct snapshot *s, char **err)
{
	struct qr_state_totals t;
	enum zmb_rc rc;

	memset(s, 0, sizeof *s);
	s->now = now;
	if ((rc = qr_state_totals(db, &t, err)) != ZMB_OK)
		return rc;
	snapshot_accounts(s, &t);
	if ((rc = qr_warned(db, &s->warned, err)) != ZMB_OK)
		return rc;
	if ((rc = qr_cutover(db, &s->cut, err)) != ZMB_OK)
		return rc;
	if ((rc = qr_prov_counts(db, &s->prov, err)) != ZMB_OK)
		return rc;
	if ((rc = qr_verify_counts(db, s->verify, err)) != ZMB_OK)
		return rc;
	if ((rc = snapshot_runs(db, s, err)) != ZMB_OK)
		return rc;
	s->merged = qr_merged(db);
	if ((rc = qr_merge_dup_count(db, &s->merge_dups, err)) != ZMB_OK)
		return rc;
	if ((rc = qr_merge_untaken_count(db, &s->merge_untaken, err)) != ZMB_OK)
		return rc;
	if (job_name)
		s->job = xstrdup(job_name);
	else if ((rc = qr_job_name(db, &s->job, err)) != ZMB_OK)
		return rc;
	s->has_servers = qr_has_servers(db);
	return ZMB_OK;
}

void snapshot_release(struct snapshot *s)
{
	free(s->job);
	qr_run_release(&s->last.row);
	memset(s, 0, sizeof *s);
}

double snapshot_avg_rate(const struct snapshot *s)
{
	return s->run_seconds > 0 ? (double)s->bytes_done / s->run_seconds : 0;
}

bool snapshot_running(const struct snapshot *s)
{
	/* merged: the shards' runs side by side, any of them */
	if (s->merged)
		return s->running_any;
	return s->last.row.present && strcmp(s->last.status, "running") == 0;
}

long long snapshot_left(const struct snapshot *s)
{
	return s->counts[ACCT_PENDING] + s->counts[ACCT_EXPORTING] +
	       s->counts[ACCT_EXPORTED] + s->counts[ACCT_IMPORTING];
}
