/*
 * report_text.c - `report` for people (the default format), and the pieces
 * of it the `status` screen shares: last run, counts, bytes, ETA, stages.
 * Every name and error text is flattened to one line (fmt_flat()).
 */
#include "report_int.h"

#include <stdlib.h>
#include <string.h>

void text_last_run(FILE *out, const struct snapshot *s)
{
	const struct qr_run *l = &s->last.row;
	const char *status = s->last.status;
	char t1[32], t2[32], d[32];
	if (!l->present) {
		fprintf(out, "last run:   none yet\n");
		return;
	}
	fmt_time(l->started_at, t1);
	fmt_dur(s->last.duration, d);
	char *host = fmt_flat(l->host), *cmd = fmt_flat(l->command);
	fprintf(out, "last run:   #%lld '%s' started %s on %s (pid %lld): ", l->id, cmd, t1, host, l->pid);
	if (strcmp(status, "exited") == 0) {
		fmt_time(l->ended_at, t2);
		if (l->has_exit)
			fprintf(out, "exit %d at %s after %s\n", l->exit_status, t2, d);
		else
			fprintf(out, "ended at %s after %s\n", t2, d);
	} else if (strcmp(status, "running") == 0) {
		fprintf(out, "running for %s\n", d);
	} else {
		fprintf(out, "died (no end recorded; the next run recovers its accounts)\n");
	}
	free(host);
	free(cmd);
}

void text_counts(FILE *out, const struct snapshot *s, bool one_line)
{
	if (one_line) {
		fprintf(out, "accounts:   %lld total:", s->accounts);
		for (int i = 0; i < ACCT_NSTATES; i++)
			fprintf(out, "%s %s %lld", i ? "," : "", acct_state_name((enum acct_state)i),
				s->counts[i]);
		if (s->warned)
			fprintf(out, " (done with warnings %lld)", s->warned);
		fputc('\n', out);
		return;
	}
	fprintf(out, "accounts: %lld\n", s->accounts);
	for (int i = 0; i < ACCT_NSTATES; i++) {
		fprintf(out, "  %-10s %10lld\n", acct_state_name((enum acct_state)i), s->counts[i]);
		if (i == ACCT_DONE)
			fprintf(out, "    %-8s %10lld  (done with warnings)\n", "warned", s->warned);
	}
}

void text_cutover_counts(FILE *out, const struct snapshot *s)
{
	if (!s->cut.present)
		return;
	long long open = 0;
	for (int i = CUT_SELECTED; i < CUT_DONE; i++)
		open += s->cut.steps[i];
	fprintf(out, "cutover:    %lld done, %lld unfinished (%lld with an error), %lld rolled back, "
		"%lld failed (rolled back), %lld skipped; %lld batch(es)\n", s->cut.steps[CUT_DONE], open,
		s->cut.errors, s->cut.steps[CUT_ROLLED_BACK], s->cut.steps[CUT_FAILED],
		s->cut.steps[CUT_SKIPPED], s->cut.batches);
}

struct text_prov_rows { FILE *out; long long n; };

static void text_prov_failed(void *arg, const struct qr_prov_failed *r)
{
	struct text_prov_rows *p = arg;
	char *k = fmt_flat(r->kind), *n = fmt_flat(r->name), *t = fmt_flat(r->target);
	char *st = fmt_flat(r->stage), *e = fmt_flat(r->error);
	fprintf(p->out, "    %-7s %s", k, n);
	if (strcmp(n, t) != 0)
		fprintf(p->out, " -> %s", t);
	fprintf(p->out, "  (stage '%s', attempts %lld): %s\n", st, r->attempts,
		*e ? e : "(no reason recorded)");
	free(k);
	free(n);
	free(t);
	free(st);
	free(e);
	p->n++;
}

enum zmb_rc text_provision(sqlite3 *db, const struct snapshot *s, FILE *out, int limit, char **err)
{
	const struct qr_prov *c = &s->prov;
	if (!c->present || c->total <= 0)
		return ZMB_OK;
	fprintf(out, "provision:  %lld object(s)\n", c->total);
	long long failed = 0;
	for (int k = 0; k < QP_NKINDS; k++) {
		const long long *n = c->n[k];
		failed += n[QP_FAILED];
		if (c->kind_total[k] <= 0)
			continue;
		fprintf(out, "  %-8s  created %lld, updated %lld, unchanged %lld, skipped %lld, failed %lld",
			qp_kind_names[k], n[QP_CREATED], n[QP_UPDATED], n[QP_UNCHANGED], n[QP_SKIPPED],
			n[QP_FAILED]);
		if (n[QP_PENDING] || n[QP_CREATING])
			fprintf(out, ", pending %lld, creating %lld", n[QP_PENDING], n[QP_CREATING]);
		fputc('\n', out);
	}
	if (failed <= 0)
		return ZMB_OK;
	fprintf(out, "  failed objects (last error; the next run tries them again):\n");
	struct text_prov_rows p = { out, 0 };
	enum zmb_rc rc = qr_prov_failed(db, limit, text_prov_failed, &p, err);
	if (rc == ZMB_OK && p.n < failed)
		fprintf(out, "    ... and %lld more ('zmbatch report' lists them all)\n", failed - p.n);
	return rc;
}

void text_verify_counts(FILE *out, const struct snapshot *s)
{
	fprintf(out, "verified:  ");
	for (int i = 0; i < QR_VERIFY_N; i++)
		fprintf(out, "%s %s %lld", i ? "," : "", qr_verify_names[i], s->verify[i]);
	fputc('\n', out);
}

void text_bytes(FILE *out, const struct snapshot *s)
{
	char d[32], t[32], r[32];
	fmt_bytes(s->bytes_done, d);
	fmt_bytes(s->bytes_total, t);
	fmt_bytes(s->remaining, r);
	double pct = s->bytes_total > 0 ? 100.0 * (double)s->bytes_done / (double)s->bytes_total : 0;
	fprintf(out, "bytes:      %s of %s (%.1f%%), %s remaining\n", d, t, pct, r);
}

void text_eta(FILE *out, const struct snapshot *s, double rate)
{
	char e[32];
	if (s->remaining <= 0 && snapshot_left(s) == 0)
		fprintf(out, "ETA:        nothing left to migrate\n");
	else if (rate <= 0)
		fprintf(out, "ETA:        unknown (no throughput measured yet)\n");
	else if (s->remaining <= 0)   /* accounts left, none with a known size */
		fprintf(out, "ETA:        unknown (the sizes left are unknown)\n");
	else {
		fmt_dur((double)s->remaining / rate, e);
		fprintf(out, "ETA:        %s (remaining bytes / rate)\n", e);
	}
}

struct text_rows { FILE *out; bool brief; int n; };

static void text_stage(void *arg, const struct qr_stage *r)
{
	struct text_rows *p = arg;
	FILE *out = p->out;
	char *name = fmt_flat(r->name), *type = fmt_flat(r->type);
	char *state = fmt_flat(r->state), *e = fmt_flat(r->error);
	if (p->brief) {
		fprintf(out, "%s %s (%s) %s", p->n ? "," : "    ", name, type, state);
		if (*e && strcmp(state, "failed") == 0)
			fprintf(out, " [%s]", e);
	} else {
		char t[32], d[32];
		double a = r->started_at, b = r->ended_at;
		fmt_time(a, t);
		fmt_dur(b > a ? b - a : 0, d);
		fprintf(out, "\n  %-16s %-18s %-8s attempts %d", name, type, state, (int)r->attempts);
		if (a > 0)
			fprintf(out, ", started %s%s%s", t, b > 0 ? ", took " : "", b > 0 ? d : "");
		if (*e)
			fprintf(out, "\n    error: %s", e);
	}
	p->n++;
	free(name);
	free(type);
	free(state);
	free(e);
}

enum zmb_rc text_stages(sqlite3 *db, FILE *out, bool brief, char **err)
{
	struct text_rows p = { out, brief, 0 };
	fprintf(out, "stages:");
	enum zmb_rc rc = qr_stages(db, text_stage, &p, err);
	if (rc == ZMB_OK)
		fprintf(out, "%s\n", p.n ? "" : " none recorded");
	return rc;
}

static void text_server(void *arg, const struct qr_server *r)
{
	FILE *out = arg;
	char t[32];
	char *role = fmt_flat(r->role), *host = fmt_flat(r->host);
	fmt_time(r->last_auth_at, t);
	fprintf(out, "server %s %s: %lld logins, %lld token refreshes, %lld auth failures, "
		"last login %s\n", role, host, r->auth_requests, r->token_refreshes,
		r->auth_failures, t);
	if (r->has_pace) {
		char w[32], lim[32];
		fmt_dur(r->throttle_wait_seconds, w);
		if (r->rate_limit > 0)
			snprintf(lim, sizeof lim, "%.1f requests/s", r->rate_limit);
		else
			snprintf(lim, sizeof lim, "no rate cap");
		fprintf(out, "server %s %s: %lld requests, %lld throttled (HTTP 429/503), paused %s; "
			"limits now %s, %lld in flight\n", role, host, r->requests, r->throttled, w, lim,
			r->concurrency_limit);
	}
	free(role);
	free(host);
}

enum zmb_rc text_servers(sqlite3 *db, FILE *out, char **err)
{
	return qr_has_servers(db) ? qr_servers(db, text_server, out, err) : ZMB_OK;
}

/* Head of the report: counts, bytes, throughput, ETA, runs, servers. */
static enum zmb_rc text_head(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	char t[32], b[32], d[32];
	double rate = snapshot_avg_rate(s);
	char *job = fmt_flat(s->job);

	fmt_time(s->now, t);
	fprintf(out, "zmbatch report for job '%s', generated %s\n\n", job, t);
	free(job);
	if (s->merged) {
		enum zmb_rc rc = text_merge(db, s, out, err);
		if (rc)
			return rc;
		fputc('\n', out);
	}
	text_counts(out, s, false);
	fputc('\n', out);
	text_bytes(out, s);
	text_cutover_counts(out, s);
	fmt_rate(rate, b);
	fmt_dur(s->run_seconds, d);
	fprintf(out, "throughput: %s (bytes done over %s of run time in %lld run%s)\n", b, d,
		s->runs, s->runs == 1 ? "" : "s");
	text_eta(out, s, rate);
	fprintf(out, "retries:    %lld, token refreshes: %lld\n", s->retries, s->refreshes);
	text_last_run(out, s);
	if (s->last_success_at > 0) {
		fmt_time(s->last_success_at, t);
		fprintf(out, "last successful run ended %s\n", t);
	}
	return s->has_servers ? qr_servers(db, text_server, out, err) : ZMB_OK;
}

static void text_slow(void *arg, const struct qr_account *r)
{
	struct text_rows *p = arg;
	char d[32], b[32], t[32];
	char *a = fmt_flat(r->account);
	fmt_dur(r->seconds, d);
	fmt_bytes(r->bytes, b);
	fmt_rate(r->seconds > 0 ? (double)r->bytes / r->seconds : 0, t);
	fprintf(p->out, "  %-40s %9s %12s %14s  %s\n", a, d, b, t, r->state);
	free(a);
	p->n++;
}

static void text_class(void *arg, const char *error_class, long long n)
{
	struct text_rows *p = arg;
	char *c = fmt_flat(error_class);
	fprintf(p->out, "%s %s %lld", p->n++ ? "," : "", c, n);
	free(c);
}

static void text_failure(void *arg, const struct qr_failure *r)
{
	FILE *out = arg;
	char *a = fmt_flat(r->account), *tg = fmt_flat(r->target);
	char *c = fmt_flat(r->error_class), *e = fmt_flat(r->error);
	fprintf(out, "  %s", a);
	if (strcmp(a, tg) != 0)
		fprintf(out, " -> %s", tg);
	fprintf(out, "  attempts %d  [%s] %s\n", (int)r->attempts, *c ? c : "unknown",
		*e ? e : "(no reason recorded)");
	free(a);
	free(tg);
	free(c);
	free(e);
}

/* Failures grouped by class, then each with its reason. */
static enum zmb_rc text_failures(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	struct text_rows p = { out, false, 0 };
	enum zmb_rc rc;

	fprintf(out, "\nfailures: %lld\n", s->counts[ACCT_FAILED]);
	if (s->counts[ACCT_FAILED] <= 0)
		return ZMB_OK;
	fprintf(out, "  by class:");
	rc = qr_failure_classes(db, text_class, &p, err);
	fputc('\n', out);
	if (rc == ZMB_OK)
		rc = qr_failures(db, text_failure, out, err);
	if (rc == ZMB_OK)
		fprintf(out, "  (requeue with 'zmbatch reset --failed' or 'zmbatch run --retry-failed')\n");
	return rc;
}

static bool status_of_note(const char *st)
{
	return st && strcmp(st, "active") != 0;
}

/* An account with warnings or a status other than active: one line. */
static void text_status_row(void *arg, const struct qr_account *r)
{
	struct text_rows *p = arg;
	if (r->warnings <= 0 && !status_of_note(r->source_status) && !status_of_note(r->target_status))
		return;
	char *a = fmt_flat(r->account);
	fprintf(p->out, "  %-40s %-8s source %-11s target %-11s %lld warning(s)\n", a, r->state,
		r->source_status ? r->source_status : "-", r->target_status ? r->target_status : "-",
		r->warnings);
	free(a);
	p->n++;
}

/* An account whose verification found a difference or could not be made: one line. */
static void text_verify_row(void *arg, const struct qr_account *r)
{
	struct text_rows *p = arg;
	if (!r->verify || !strcmp(r->verify, "ok"))
		return;
	char *a = fmt_flat(r->account), *d = fmt_flat(r->verify_detail);
	fprintf(p->out, "  %-40s %-9s %-12s %s\n", a, r->state, r->verify, *d ? d : "(no detail)");
	free(a);
	free(d);
	p->n++;
}

/* An account whose last pass ran in steps (schema 006): one line. */
static void text_steps_row(void *arg, const struct qr_account *r)
{
	struct text_rows *p = arg;
	if (r->chunks_total <= 0)
		return;
	char *a = fmt_flat(r->account);
	fprintf(p->out, "  %-40s %-9s steps %lld/%lld done\n", a, r->state, r->chunks_done,
		r->chunks_total);
	free(a);
	p->n++;
}

enum zmb_rc report_text(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	struct text_rows p = { out, false, 0 };
	enum zmb_rc rc;

	if ((rc = text_head(db, s, out, err)) != ZMB_OK)
		return rc;
	fputc('\n', out);
	if ((rc = text_stages(db, out, false, err)) != ZMB_OK)
		return rc;
	if (s->prov.present && s->prov.total > 0) {
		fputc('\n', out);
		if ((rc = text_provision(db, s, out, -1, err)) != ZMB_OK)
			return rc;
	}
	fprintf(out, "\nslowest accounts:\n");
	if ((rc = qr_slowest(db, 5, text_slow, &p, err)) != ZMB_OK)
		return rc;
	if (!p.n)
		fprintf(out, "  none finished yet\n");
	if ((rc = text_failures(db, s, out, err)) != ZMB_OK)
		return rc;
	/* zimbraAccountStatus other than active, and imports that left items out
	 * (each item is an event: zmbatch accounts --events ACCOUNT) */
	fprintf(out, "\naccount status and import warnings (done with warnings: %lld):\n", s->warned);
	struct text_rows q = { out, false, 0 };
	if ((rc = qr_accounts(db, -1, text_status_row, &q, err)) != ZMB_OK)
		return rc;
	if (!q.n)
		fprintf(out, "  none\n");
	/* passes exported in pieces (huge mailboxes, zimbraExportMaxDays, delta passes) */
	fprintf(out, "\naccounts whose last pass ran in steps:\n");
	struct text_rows c = { out, false, 0 };
	if ((rc = qr_accounts(db, -1, text_steps_row, &c, err)) != ZMB_OK)
		return rc;
	if (!c.n)
		fprintf(out, "  none\n");
	/* the folder figures of source and target compared (run, zmbatch verify) */
	fprintf(out, "\nverification: ok %lld, mismatch %lld, unverifiable %lld, not verified %lld\n",
		s->verify[QR_VERIFY_OK], s->verify[QR_VERIFY_MISMATCH],
		s->verify[QR_VERIFY_UNVERIFIABLE], s->verify[QR_VERIFY_NONE]);
	struct text_rows v = { out, false, 0 };
	if ((rc = qr_accounts(db, -1, text_verify_row, &v, err)) != ZMB_OK)
		return rc;
	if (v.n)
		fprintf(out, "  (check again with 'zmbatch verify'; 'zmbatch verify --reset-mismatched' "
			"migrates mismatched accounts again)\n");
	else
		fprintf(out, "  no mismatch\n");
	return fmt_write_failed(out, err) ? ZMB_EIO : ZMB_OK;
}
