/*
 * report_prom.c - `report --format prom`: Prometheus text exposition 0.0.4
 * (families: report.h).  No account name in any label.
 */
#include "report_int.h"

#include <string.h>

/* Label value escaping of the text format: \ " and newline. */
static void prom_label(FILE *out, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '"')
			fputs("\\\"", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

static void prom_head(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_ll(FILE *out, const char *name, const char *type, const char *help, long long v)
{
	prom_head(out, name, type, help);
	fprintf(out, "%s %lld\n", name, v);
}

static void prom_d(FILE *out, const char *name, const char *type, const char *help, double v)
{
	prom_head(out, name, type, help);
	fprintf(out, "%s %.3f\n", name, v);
}

/* Families from the snapshot: accounts, bytes, runs, the last run. */
static void prom_snapshot(FILE *out, const struct snapshot *s)
{
	prom_head(out, "zmbatch_accounts", "gauge", "Accounts of the job by state.");
	for (int i = 0; i < ACCT_NSTATES; i++)
		fprintf(out, "zmbatch_accounts{state=\"%s\"} %lld\n",
			acct_state_name((enum acct_state)i), s->counts[i]);
	prom_ll(out, "zmbatch_accounts_warned", "gauge",
		"Done accounts whose last import left items out (the target's warnings; "
		"also counted in state done).", s->warned);
	prom_head(out, "zmbatch_accounts_verify", "gauge",
		  "Accounts by verdict of their last verification (none = not verified).");
	for (int i = 0; i < QR_VERIFY_N; i++)
		fprintf(out, "zmbatch_accounts_verify{verdict=\"%s\"} %lld\n", qr_verify_names[i],
			s->verify[i]);
	prom_head(out, "zmbatch_cutover_accounts", "gauge",
		  "Accounts taken into the cutover stage, by their last completed step (done = cut over).");
	for (int i = 0; i < CUT_NSTEPS; i++)
		fprintf(out, "zmbatch_cutover_accounts{step=\"%s\"} %lld\n",
			cut_step_name((enum cut_step)i), s->cut.steps[i]);
	prom_ll(out, "zmbatch_cutover_errors", "gauge",
		"Accounts whose cutover stopped at a failed step (retried by the next run).", s->cut.errors);
	if (s->prov.present) {
		prom_head(out, "zmbatch_provision_objects", "gauge",
			  "Objects of the provision stage by kind and by what became of them (a done "
			  "object by its outcome; failed = its last try failed).");
		for (int k = 0; k < QP_NKINDS; k++)
			for (int i = 0; i < QP_NOUTCOMES; i++)
				fprintf(out, "zmbatch_provision_objects{kind=\"%s\",state=\"%s\"} %lld\n",
					qp_kind_names[k], qp_outcome_names[i], s->prov.n[k][i]);
	}
	prom_ll(out, "zmbatch_done_bytes", "gauge",
		"Bytes moved for accounts in state done (last successful pass of each).", s->bytes_done);
	prom_ll(out, "zmbatch_planned_bytes", "gauge",
		"Planned bytes: done bytes plus mailbox sizes of accounts not done and not skipped.",
		s->bytes_total);
	prom_ll(out, "zmbatch_remaining_bytes", "gauge",
		"Mailbox sizes of accounts still to migrate (pending or in flight).", s->remaining);
	prom_ll(out, "zmbatch_transferred_bytes_total", "counter",
		"Bytes transferred by all runs, retries and delta passes included.", s->transferred);
	prom_ll(out, "zmbatch_runs_total", "counter", "Runs recorded in the state database.", s->runs);
	prom_ll(out, "zmbatch_token_refreshes_total", "counter",
		"Admin token refreshes over all runs.", s->refreshes);
	prom_ll(out, "zmbatch_retries_total", "counter", "Account retries over all runs.", s->retries);
	if (s->last.row.present) {
		const struct qr_run *l = &s->last.row;
		prom_ll(out, "zmbatch_last_run_running", "gauge",
			"1 while the last run is in progress, else 0.", snapshot_running(s));
		prom_d(out, "zmbatch_run_duration_seconds", "gauge",
		       "Wall time of the last run (so far, while it runs).", s->last.duration);
		prom_d(out, "zmbatch_last_run_timestamp_seconds", "gauge",
		       "Start time of the last run, unix seconds.", l->started_at);
		if (l->has_exit)
			prom_ll(out, "zmbatch_last_run_exit_code", "gauge",
				"Exit status of the last run that finished recording it.", l->exit_status);
	}
	if (s->last_success_at > 0)
		prom_d(out, "zmbatch_last_success_timestamp_seconds", "gauge",
		       "End time of the last run that exited 0, unix seconds.", s->last_success_at);
}

struct prom_rows { FILE *out; bool head; int family; };

/* zmbatch_stage_state: one 0/1 sample per stage and stage state. */
static void prom_stage(void *arg, const struct qr_stage *r)
{
	struct prom_rows *p = arg;
	if (!p->head)
		prom_head(p->out, "zmbatch_stage_state", "gauge",
			  "1 for the current state of each job stage, 0 for the others.");
	p->head = true;
	for (int i = 0; i < STAGE_NSTATES; i++) {
		const char *name = stage_state_name((enum stage_state)i);
		fputs("zmbatch_stage_state{stage=\"", p->out);
		prom_label(p->out, r->name);
		fprintf(p->out, "\",state=\"%s\"} %d\n", name, r->state && strcmp(r->state, name) == 0);
	}
}

/* One family per server counter or gauge; pace: only roles whose pacing a run recorded. */
static const struct { const char *name, *type, *help; bool pace; } server_family[] = {
	{ "zmbatch_auth_requests_total", "counter", "Admin AuthRequests sent, by server role.", false },
	{ "zmbatch_auth_failures_total", "counter", "Failed admin authentications, by server role.", false },
	{ "zmbatch_server_requests_total", "counter", "Answers received from the server, by role.", true },
	{ "zmbatch_server_throttled_total", "counter",
	  "Answers HTTP 429 (DoS filter) or 503 from the server, each sent again, by role.", true },
	{ "zmbatch_server_throttle_wait_seconds_total", "counter",
	  "Time the runs paused because the server throttled, by role.", true },
	{ "zmbatch_server_rate_limit", "gauge",
	  "Requests per second allowed to the server when last recorded (0 = no cap), by role.", true },
	{ "zmbatch_server_concurrency_limit", "gauge",
	  "Requests in flight allowed to the server when last recorded, by role.", true },
};
#define NSERVER_FAMILIES (sizeof server_family / sizeof *server_family)

static void prom_server(void *arg, const struct qr_server *r)
{
	struct prom_rows *p = arg;
	int f = p->family;
	if (server_family[f].pace && !r->has_pace)
		return;
	if (!p->head)
		prom_head(p->out, server_family[f].name, server_family[f].type, server_family[f].help);
	p->head = true;
	fprintf(p->out, "%s{role=\"", server_family[f].name);
	prom_label(p->out, r->role);
	switch (f) {
	case 0: fprintf(p->out, "\"} %lld\n", r->auth_requests); break;
	case 1: fprintf(p->out, "\"} %lld\n", r->auth_failures); break;
	case 2: fprintf(p->out, "\"} %lld\n", r->requests); break;
	case 3: fprintf(p->out, "\"} %lld\n", r->throttled); break;
	case 4: fprintf(p->out, "\"} %.3f\n", r->throttle_wait_seconds); break;
	case 5: fprintf(p->out, "\"} %.3f\n", r->rate_limit); break;
	default: fprintf(p->out, "\"} %lld\n", r->concurrency_limit); break;
	}
}

struct prom_merge {
	long long dbs;
};

static void prom_merge_src(void *arg, const struct qr_merge_src *r)
{
	(void)r;
	((struct prom_merge *)arg)->dbs++;
}

enum zmb_rc report_prom(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	struct prom_rows p = { out, false, 0 };
	enum zmb_rc rc;

	prom_snapshot(out, s);
	if ((rc = qr_stages(db, prom_stage, &p, err)) != ZMB_OK)
		return rc;
	for (int f = 0; s->has_servers && f < (int)NSERVER_FAMILIES; f++) {
		p = (struct prom_rows){ out, false, f };
		if ((rc = qr_servers(db, prom_server, &p, err)) != ZMB_OK)
			return rc;
	}
	if (s->merged) {
		struct prom_merge pm = { 0 };
		if ((rc = qr_merge_sources(db, prom_merge_src, &pm, err)) != ZMB_OK)
			return rc;
		prom_ll(out, "zmbatch_merge_state_dbs", "gauge",
		       "State DBs merged into this report (report --merge).", pm.dbs);
		prom_ll(out, "zmbatch_merge_duplicate_accounts", "gauge",
		       "Accounts found in more than one of the merged state DBs (should be 0).",
		       s->merge_dups);
		prom_ll(out, "zmbatch_merge_untaken_accounts", "gauge",
		       "Accounts a by-server shard listed that none of the merged state DBs holds "
		       "(should be 0).", s->merge_untaken);
	}
	prom_d(out, "zmbatch_report_timestamp_seconds", "gauge",
	       "When this report was generated, unix seconds.", s->now);
	return fmt_write_failed(out, err) ? ZMB_EIO : ZMB_OK;
}
