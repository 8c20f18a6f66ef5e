/*
 * report.c - report renderers, the status screen and account listings over
 * the state DB (see report.h for the definitions and formats).
 *
 * Every query is an aggregate, an indexed lookup, or a stream over rows that
 * writes each row as it comes; nothing here grows with the number of
 * accounts except the output itself.
 */
#include "report.h"
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Account states in schema order (= enum acct_state in state.h). */
static const char *const acct_states[] = {
	"pending", "exporting", "exported", "importing", "done", "failed", "skipped",
};
#define NSTATES ((int)(sizeof acct_states / sizeof *acct_states))
enum { S_PENDING, S_EXPORTING, S_EXPORTED, S_IMPORTING, S_DONE, S_FAILED, S_SKIPPED };

static const char *const stage_states[] = { "pending", "running", "done", "failed" };
#define NSTAGESTATES ((int)(sizeof stage_states / sizeof *stage_states))

/* Rows of `runs` that are runs (other writing commands may record rows too). */
#define RUNS_ONLY "(command = 'run' OR command LIKE 'run %')"

/* The last row of `runs`. */
struct last_run {
	bool present;
	long long id;
	double started_at;
	double ended_at;        /* 0 = NULL */
	long long pid;
	char *host;
	char *command;
	bool has_exit;
	int exit_status;
	long long token_refreshes, retries, bytes;
	const char *status;     /* "exited", "running", "died" */
	double duration;        /* ended - started, or now - started while running */
};

/* One consistent view of the aggregates, read inside one transaction. */
struct snapshot {
	char *job;
	double now;
	long long counts[NSTATES];
	long long accounts;
	long long bytes_done, bytes_total, remaining;
	long long runs, refreshes, retries, transferred;
	double run_seconds;          /* summed wall time of runs */
	double last_success_at;      /* 0 = none */
	struct last_run last;
	bool has_servers;            /* schema 002: per-server auth counters */
};

/* ---- small helpers ---- */

static void set_dberr(sqlite3 *db, char **err, const char *what)
{
	if (err && !*err)
		*err = xasprintf("cannot read state database (%s): %s", what, sqlite3_errmsg(db));
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql, char **err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		set_dberr(db, err, "prepare");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	return s ? (const char *)s : NULL;
}

static double col_time(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_double(st, i);
}

/* Copy of s fit for one terminal line: control characters become spaces. */
static char *flat(const char *s)
{
	char *r = xstrdup(s ? s : "");
	for (unsigned char *p = (unsigned char *)r; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return r;
}

static void fmt_bytes(long long n, char out[32])
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, 32, "%lld B", n);
	else
		snprintf(out, 32, "%.1f %s", v, unit[u]);
}

static void fmt_dur(double s, char out[32])
{
	if (!(s >= 0) || s > 1e10) {
		snprintf(out, 32, "?");
		return;
	}
	long long t = llround(s);
	if (t >= 86400)
		snprintf(out, 32, "%lldd%02lldh%02lldm", t / 86400, t % 86400 / 3600, t % 3600 / 60);
	else if (t >= 3600)
		snprintf(out, 32, "%lldh%02lldm", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(out, 32, "%lldm%02llds", t / 60, t % 60);
	else
		snprintf(out, 32, "%llds", t);
}

static void fmt_time(double t, char out[32])
{
	if (t > 0)
		iso8601_utc(t, out);
	else
		snprintf(out, 32, "-");
}

static void fmt_rate(double bps, char out[32])
{
	char b[32];
	fmt_bytes(llround(bps), b);
	b[28] = '\0';
	snprintf(out, 32, "%.28s/s", b);
}

static bool write_failed(FILE *out, char **err)
{
	if (fflush(out) != 0 || ferror(out)) {
		if (err && !*err)
			*err = xasprintf("cannot write report: %s", strerror(errno ? errno : EIO));
		return true;
	}
	return false;
}

static void last_run_release(struct last_run *r)
{
	free(r->host);
	free(r->command);
	memset(r, 0, sizeof *r);
}

static void snapshot_release(struct snapshot *s)
{
	free(s->job);
	last_run_release(&s->last);
}

static bool table_exists(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		yes = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return yes;
}

#define SERVERS_SQL "SELECT role, host, auth_requests, token_refreshes, auth_failures, last_auth_at " \
	"FROM servers ORDER BY role"

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

static enum zmb_rc read_last_run(sqlite3 *db, double now, struct last_run *r, char **err)
{
	enum zmb_rc rc = ZMB_ESTATE;
	sqlite3_stmt *st = prep(db,
		"SELECT id, started_at, ended_at, pid, host, command, exit_status, "
		"token_refreshes, retries, bytes FROM runs WHERE " RUNS_ONLY " ORDER BY id DESC LIMIT 1", err);
	if (!st)
		goto out;
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		r->present = true;
		r->id = sqlite3_column_int64(st, 0);
		r->started_at = col_time(st, 1);
		r->ended_at = col_time(st, 2);
		r->pid = sqlite3_column_int64(st, 3);
		r->host = xstrdup(col_text(st, 4));
		r->command = xstrdup(col_text(st, 5));
		r->has_exit = sqlite3_column_type(st, 6) != SQLITE_NULL;
		r->exit_status = sqlite3_column_int(st, 6);
		r->token_refreshes = sqlite3_column_int64(st, 7);
		r->retries = sqlite3_column_int64(st, 8);
		r->bytes = sqlite3_column_int64(st, 9);
		if (r->ended_at > 0) {
			r->status = "exited";
			r->duration = r->ended_at - r->started_at;
		} else {
			r->status = run_liveness(r->host, r->pid);
			r->duration = strcmp(r->status, "running") == 0 ? now - r->started_at : 0;
		}
		if (r->duration < 0)
			r->duration = 0;
	} else if (s != SQLITE_DONE) {
		set_dberr(db, err, "runs");
		goto out;
	}
	rc = ZMB_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

static enum zmb_rc read_snapshot(sqlite3 *db, const char *job_name, double now,
				 struct snapshot *s, char **err)
{
	enum zmb_rc rc = ZMB_ESTATE;
	sqlite3_stmt *st = NULL;
	int r;

	memset(s, 0, sizeof *s);
	s->now = now;

	/* counts and bytes by state: one pass, grouped over the state index */
	st = prep(db, "SELECT state, count(*), coalesce(sum(bytes), 0), "
		      "coalesce(sum(coalesce(size, 0)), 0) FROM accounts GROUP BY state", err);
	if (!st)
		goto out;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = col_text(st, 0);
		long long n = sqlite3_column_int64(st, 1);
		long long bytes = sqlite3_column_int64(st, 2);
		long long size = sqlite3_column_int64(st, 3);
		s->accounts += n;
		for (int i = 0; i < NSTATES; i++) {
			if (!name || strcmp(name, acct_states[i]) != 0)
				continue;
			s->counts[i] = n;
			if (i == S_DONE) {
				s->bytes_done = bytes;
				s->bytes_total += bytes;
			} else if (i != S_SKIPPED) {
				s->bytes_total += size;
				if (i != S_FAILED)
					s->remaining += size;
			}
		}
	}
	if (r != SQLITE_DONE) {
		set_dberr(db, err, "accounts");
		goto out;
	}
	sqlite3_finalize(st);

	st = prep(db, "SELECT count(*), coalesce(sum(token_refreshes), 0), coalesce(sum(retries), 0), "
		      "coalesce(sum(bytes), 0), "
		      "total(CASE WHEN ended_at IS NOT NULL THEN max(ended_at - started_at, 0) ELSE 0 END) "
		      "FROM runs WHERE " RUNS_ONLY, err);
	if (!st)
		goto out;
	if (sqlite3_step(st) != SQLITE_ROW) {
		set_dberr(db, err, "runs");
		goto out;
	}
	s->runs = sqlite3_column_int64(st, 0);
	s->refreshes = sqlite3_column_int64(st, 1);
	s->retries = sqlite3_column_int64(st, 2);
	s->transferred = sqlite3_column_int64(st, 3);
	s->run_seconds = sqlite3_column_double(st, 4);
	sqlite3_finalize(st);

	st = prep(db, "SELECT ended_at FROM runs WHERE " RUNS_ONLY " AND exit_status = 0 AND ended_at IS NOT NULL "
		      "ORDER BY id DESC LIMIT 1", err);
	if (!st)
		goto out;
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		s->last_success_at = col_time(st, 0);
	else if (r != SQLITE_DONE) {
		set_dberr(db, err, "runs");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;

	if (read_last_run(db, now, &s->last, err))
		goto out;
	if (s->last.present && s->last.ended_at <= 0)
		s->run_seconds += s->last.duration;   /* the run in progress, up to now */

	if (job_name) {
		s->job = xstrdup(job_name);
	} else {
		/* no job file: the name is the first field of the stored identity */
		st = prep(db, "SELECT key, value FROM meta WHERE key IN ('job_name', 'job_identity') "
			      "ORDER BY key = 'job_name' DESC LIMIT 1", err);
		if (!st)
			goto out;
		r = sqlite3_step(st);
		s->job = xstrdup(r == SQLITE_ROW && col_text(st, 1) ? col_text(st, 1) : "");
		if (r == SQLITE_ROW && strcmp(col_text(st, 0), "job_identity") == 0)
			s->job[strcspn(s->job, "|")] = '\0';
	}
	s->has_servers = table_exists(db, "servers");
	rc = ZMB_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

static double avg_rate(const struct snapshot *s)
{
	return s->run_seconds > 0 ? (double)s->bytes_done / s->run_seconds : 0;
}

/* A read transaction around one rendering: every query sees one snapshot. */
static enum zmb_rc read_begin(sqlite3 *db, bool *own, char **err)
{
	*own = false;
	if (!sqlite3_get_autocommit(db))
		return ZMB_OK;          /* the caller's transaction already pins a snapshot */
	*own = true;
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		set_dberr(db, err, "begin");
		return ZMB_ESTATE;
	}
	return ZMB_OK;
}

static void read_end(sqlite3 *db, bool own)
{
	if (own)
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

/* ---- json ---- */

/* A JSON string of s; invalid UTF-8 bytes become '?' (never fails). */
static json_t *jstr(const char *s)
{
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	if (j)
		return j;
	char *c = xstrdup(s);
	unsigned char *p = (unsigned char *)c;
	while (*p) {
		/* validate one UTF-8 sequence; replace a bad lead byte */
		int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
		int ok = n > 0;
		for (int i = 1; ok && i < n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		if (!ok) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
	j = json_string(c);
	if (!j) {
		/* overlong or surrogate forms: fall back to ASCII only */
		for (p = (unsigned char *)c; *p; p++)
			if (*p >= 0x80)
				*p = '?';
		j = json_string(c);
	}
	free(c);
	return j ? j : json_string("");
}

static json_t *jtime(double t)
{
	char b[32];
	if (t <= 0)
		return json_null();
	iso8601_utc(t, b);
	return json_string(b);
}

static double round_ms(double s)
{
	return round(s * 1000) / 1000;
}

#define JFLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))

static enum zmb_rc render_json(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	enum zmb_rc rc = ZMB_ESTATE;
	sqlite3_stmt *st = NULL;
	json_t *root = json_object(), *counts = json_object(), *stages = json_array();
	json_t *runs = json_object(), *last = json_null();
	char *head = NULL;
	int r;

	json_object_set_new(root, "job", jstr(s->job));
	json_object_set_new(root, "generated_at", jtime(s->now));
	for (int i = 0; i < NSTATES; i++)
		json_object_set_new(counts, acct_states[i], json_integer(s->counts[i]));
	json_object_set_new(root, "counts", counts);
	json_object_set_new(root, "total_accounts", json_integer(s->accounts));
	json_object_set_new(root, "bytes_done", json_integer(s->bytes_done));
	json_object_set_new(root, "bytes_total", json_integer(s->bytes_total));
	json_object_set_new(root, "bytes_remaining", json_integer(s->remaining));

	st = prep(db, "SELECT name, type, state, attempts, error FROM stages ORDER BY position, name", err);
	if (!st)
		goto out;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o = json_object();
		json_object_set_new(o, "name", jstr(col_text(st, 0)));
		json_object_set_new(o, "type", jstr(col_text(st, 1)));
		json_object_set_new(o, "state", jstr(col_text(st, 2)));
		json_object_set_new(o, "attempts", json_integer(sqlite3_column_int64(st, 3)));
		const char *e = col_text(st, 4);
		json_object_set_new(o, "error", e && *e ? jstr(e) : json_null());
		json_array_append_new(stages, o);
	}
	if (r != SQLITE_DONE) {
		set_dberr(db, err, "stages");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	json_object_set_new(root, "stages", stages);
	stages = NULL;

	json_object_set_new(runs, "count", json_integer(s->runs));
	json_object_set_new(runs, "token_refreshes_total", json_integer(s->refreshes));
	json_object_set_new(runs, "retries_total", json_integer(s->retries));
	json_object_set_new(runs, "bytes_transferred_total", json_integer(s->transferred));
	json_object_set_new(runs, "seconds_total", json_real(round_ms(s->run_seconds)));
	json_object_set_new(runs, "throughput_bytes_per_second", json_real(round_ms(avg_rate(s))));
	json_object_set_new(runs, "last_success_at", jtime(s->last_success_at));
	if (s->last.present) {
		const struct last_run *l = &s->last;
		json_decref(last);
		last = json_object();
		json_object_set_new(last, "id", json_integer(l->id));
		json_object_set_new(last, "started_at", jtime(l->started_at));
		json_object_set_new(last, "ended_at", jtime(l->ended_at));
		json_object_set_new(last, "duration_seconds", json_real(round_ms(l->duration)));
		json_object_set_new(last, "host", jstr(l->host));
		json_object_set_new(last, "pid", json_integer(l->pid));
		json_object_set_new(last, "command", jstr(l->command));
		json_object_set_new(last, "exit_status",
				    l->has_exit ? json_integer(l->exit_status) : json_null());
		json_object_set_new(last, "status", json_string(l->status));
		json_object_set_new(last, "token_refreshes", json_integer(l->token_refreshes));
		json_object_set_new(last, "retries", json_integer(l->retries));
		json_object_set_new(last, "bytes", json_integer(l->bytes));
	}
	json_object_set_new(runs, "last", last);
	last = NULL;
	json_object_set_new(root, "runs", runs);
	runs = NULL;

	if (s->has_servers) {
		json_t *srv = json_array();
		json_object_set_new(root, "servers", srv);
		st = prep(db, SERVERS_SQL, err);
		if (!st)
			goto out;
		while ((r = sqlite3_step(st)) == SQLITE_ROW) {
			json_t *o = json_object();
			json_object_set_new(o, "role", jstr(col_text(st, 0)));
			json_object_set_new(o, "host", jstr(col_text(st, 1)));
			json_object_set_new(o, "auth_requests", json_integer(sqlite3_column_int64(st, 2)));
			json_object_set_new(o, "token_refreshes", json_integer(sqlite3_column_int64(st, 3)));
			json_object_set_new(o, "auth_failures", json_integer(sqlite3_column_int64(st, 4)));
			json_object_set_new(o, "last_auth_at", jtime(col_time(st, 5)));
			json_array_append_new(srv, o);
		}
		if (r != SQLITE_DONE) {
			set_dberr(db, err, "servers");
			goto out;
		}
		sqlite3_finalize(st);
		st = NULL;
	}

	/* the head without its closing brace, then the accounts streamed */
	head = json_dumps(root, JFLAGS);
	if (!head) {
		*err = xasprintf("cannot encode report");
		rc = ZMB_EINTERNAL;
		goto out;
	}
	size_t hl = strlen(head);
	fwrite(head, 1, hl - 1, out);
	fputs(",\"accounts\":[", out);

	st = prep(db, "SELECT account, target, state, attempts, bytes, seconds, last_error "
		      "FROM accounts ORDER BY seq, id", err);
	if (!st)
		goto out;
	bool first = true;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o = json_object();
		const char *e = col_text(st, 6);
		json_object_set_new(o, "account", jstr(col_text(st, 0)));
		json_object_set_new(o, "target", jstr(col_text(st, 1)));
		json_object_set_new(o, "state", jstr(col_text(st, 2)));
		json_object_set_new(o, "attempts", json_integer(sqlite3_column_int64(st, 3)));
		json_object_set_new(o, "bytes", json_integer(sqlite3_column_int64(st, 4)));
		json_object_set_new(o, "seconds", json_real(round_ms(col_time(st, 5))));
		json_object_set_new(o, "error", e && *e ? jstr(e) : json_null());
		fputs(first ? "\n" : ",\n", out);
		first = false;
		json_dumpf(o, out, JFLAGS);
		json_decref(o);
	}
	if (r != SQLITE_DONE) {
		set_dberr(db, err, "accounts");
		goto out;
	}
	fputs("]}\n", out);
	rc = write_failed(out, err) ? ZMB_EIO : ZMB_OK;
out:
	sqlite3_finalize(st);
	free(head);
	json_decref(root);
	json_decref(stages);
	json_decref(runs);
	json_decref(last);
	return rc;
}

/* ---- csv ---- */

static void csv_field(FILE *out, const char *s)
{
	if (!s)
		return;
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

static enum zmb_rc render_csv(sqlite3 *db, FILE *out, char **err)
{
	enum zmb_rc rc = ZMB_ESTATE;
	int r;
	sqlite3_stmt *st = prep(db, "SELECT account, target, state, attempts, bytes, seconds, last_error "
				    "FROM accounts ORDER BY seq, id", err);
	if (!st)
		goto out;
	fputs("account,target,state,attempts,bytes,seconds,error\r\n", out);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		csv_field(out, col_text(st, 0));
		fputc(',', out);
		csv_field(out, col_text(st, 1));
		fputc(',', out);
		csv_field(out, col_text(st, 2));
		fprintf(out, ",%lld,%lld,", (long long)sqlite3_column_int64(st, 3),
			(long long)sqlite3_column_int64(st, 4));
		if (sqlite3_column_type(st, 5) != SQLITE_NULL)
			fprintf(out, "%.3f", sqlite3_column_double(st, 5));
		fputc(',', out);
		csv_field(out, col_text(st, 6));
		fputs("\r\n", out);
	}
	if (r != SQLITE_DONE) {
		set_dberr(db, err, "accounts");
		goto out;
	}
	rc = write_failed(out, err) ? ZMB_EIO : ZMB_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

/* ---- prometheus ---- */

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

static enum zmb_rc render_prom(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	enum zmb_rc rc = ZMB_ESTATE;
	int r;
	sqlite3_stmt *st = NULL;

	prom_head(out, "zmbatch_accounts", "gauge", "Accounts of the job by state.");
	for (int i = 0; i < NSTATES; i++)
		fprintf(out, "zmbatch_accounts{state=\"%s\"} %lld\n", acct_states[i], s->counts[i]);
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
	if (s->last.present) {
		const struct last_run *l = &s->last;
		prom_ll(out, "zmbatch_last_run_running", "gauge",
			"1 while the last run is in progress, else 0.", strcmp(l->status, "running") == 0);
		prom_d(out, "zmbatch_run_duration_seconds", "gauge",
		       "Wall time of the last run (so far, while it runs).", l->duration);
		prom_d(out, "zmbatch_last_run_timestamp_seconds", "gauge",
		       "Start time of the last run, unix seconds.", l->started_at);
		if (l->has_exit)
			prom_ll(out, "zmbatch_last_run_exit_code", "gauge",
				"Exit status of the last run that finished recording it.", l->exit_status);
	}
	if (s->last_success_at > 0)
		prom_d(out, "zmbatch_last_success_timestamp_seconds", "gauge",
		       "End time of the last run that exited 0, unix seconds.", s->last_success_at);

	st = prep(db, "SELECT name, state FROM stages ORDER BY position, name", err);
	if (!st)
		goto out;
	bool head = false;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = col_text(st, 0), *state = col_text(st, 1);
		if (!head)
			prom_head(out, "zmbatch_stage_state", "gauge",
				  "1 for the current state of each job stage, 0 for the others.");
		head = true;
		for (int i = 0; i < NSTAGESTATES; i++) {
			fputs("zmbatch_stage_state{stage=\"", out);
			prom_label(out, name);
			fprintf(out, "\",state=\"%s\"} %d\n", stage_states[i],
				state && strcmp(state, stage_states[i]) == 0);
		}
	}
	if (r != SQLITE_DONE) {
		set_dberr(db, err, "stages");
		goto out;
	}
	if (s->has_servers) {
		static const char *const fam[][2] = {
			{ "zmbatch_auth_requests_total", "Admin AuthRequests sent, by server role." },
			{ "zmbatch_auth_failures_total", "Failed admin authentications, by server role." },
		};
		for (int f = 0; f < 2; f++) {
			sqlite3_finalize(st);
			st = prep(db, SERVERS_SQL, err);
			if (!st)
				goto out;
			bool any = false;
			while ((r = sqlite3_step(st)) == SQLITE_ROW) {
				if (!any)
					prom_head(out, fam[f][0], "counter", fam[f][1]);
				any = true;
				fprintf(out, "%s{role=\"", fam[f][0]);
				prom_label(out, col_text(st, 0));
				fprintf(out, "\"} %lld\n", (long long)sqlite3_column_int64(st, f == 0 ? 2 : 4));
			}
			if (r != SQLITE_DONE) {
				set_dberr(db, err, "servers");
				goto out;
			}
		}
	}
	prom_d(out, "zmbatch_report_timestamp_seconds", "gauge",
	       "When this report was generated, unix seconds.", s->now);
	rc = write_failed(out, err) ? ZMB_EIO : ZMB_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

/* ---- text ---- */

static void text_last_run(FILE *out, const struct snapshot *s)
{
	const struct last_run *l = &s->last;
	char t1[32], t2[32], d[32];
	if (!l->present) {
		fprintf(out, "last run:   none yet\n");
		return;
	}
	fmt_time(l->started_at, t1);
	fmt_dur(l->duration, d);
	char *host = flat(l->host), *cmd = flat(l->command);
	fprintf(out, "last run:   #%lld '%s' started %s on %s (pid %lld): ", l->id, cmd, t1, host, l->pid);
	if (strcmp(l->status, "exited") == 0) {
		fmt_time(l->ended_at, t2);
		if (l->has_exit)
			fprintf(out, "exit %d at %s after %s\n", l->exit_status, t2, d);
		else
			fprintf(out, "ended at %s after %s\n", t2, d);
	} else if (strcmp(l->status, "running") == 0) {
		fprintf(out, "running for %s\n", d);
	} else {
		fprintf(out, "died (no end recorded; the next run recovers its accounts)\n");
	}
	free(host);
	free(cmd);
}

static void text_counts(FILE *out, const struct snapshot *s, bool one_line)
{
	if (one_line) {
		fprintf(out, "accounts:   %lld total:", s->accounts);
		for (int i = 0; i < NSTATES; i++)
			fprintf(out, "%s %s %lld", i ? "," : "", acct_states[i], s->counts[i]);
		fputc('\n', out);
		return;
	}
	fprintf(out, "accounts: %lld\n", s->accounts);
	for (int i = 0; i < NSTATES; i++)
		fprintf(out, "  %-10s %10lld\n", acct_states[i], s->counts[i]);
}

static void text_bytes(FILE *out, const struct snapshot *s)
{
	char d[32], t[32], r[32];
	fmt_bytes(s->bytes_done, d);
	fmt_bytes(s->bytes_total, t);
	fmt_bytes(s->remaining, r);
	double pct = s->bytes_total > 0 ? 100.0 * (double)s->bytes_done / (double)s->bytes_total : 0;
	fprintf(out, "bytes:      %s of %s (%.1f%%), %s remaining\n", d, t, pct, r);
}

static void text_eta(FILE *out, const struct snapshot *s, double rate)
{
	char e[32];
	if (s->remaining <= 0 && s->counts[S_PENDING] + s->counts[S_EXPORTING] +
	    s->counts[S_EXPORTED] + s->counts[S_IMPORTING] == 0)
		fprintf(out, "ETA:        nothing left to migrate\n");
	else if (rate <= 0)
		fprintf(out, "ETA:        unknown (no throughput measured yet)\n");
	else {
		fmt_dur((double)s->remaining / rate, e);
		fprintf(out, "ETA:        %s (remaining bytes / rate)\n", e);
	}
}

static enum zmb_rc text_stages(sqlite3 *db, FILE *out, bool brief, char **err)
{
	int r, n = 0;
	sqlite3_stmt *st = prep(db, "SELECT name, type, state, attempts, error, started_at, ended_at "
				    "FROM stages ORDER BY position, name", err);
	if (!st)
		return ZMB_ESTATE;
	fprintf(out, "stages:");
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		char *name = flat(col_text(st, 0)), *type = flat(col_text(st, 1));
		char *state = flat(col_text(st, 2)), *e = flat(col_text(st, 4));
		if (brief) {
			fprintf(out, "%s %s (%s) %s", n ? "," : "    ", name, type, state);
		} else {
			char t[32], d[32];
			double a = col_time(st, 5), b = col_time(st, 6);
			fmt_time(a, t);
			fmt_dur(b > a ? b - a : 0, d);
			fprintf(out, "\n  %-16s %-18s %-8s attempts %d", name, type, state,
				sqlite3_column_int(st, 3));
			if (a > 0)
				fprintf(out, ", started %s%s%s", t, b > 0 ? ", took " : "", b > 0 ? d : "");
			if (*e)
				fprintf(out, "\n    error: %s", e);
		}
		if (brief && *e && strcmp(state, "failed") == 0)
			fprintf(out, " [%s]", e);
		n++;
		free(name);
		free(type);
		free(state);
		free(e);
	}
	fprintf(out, "%s\n", n ? "" : " none recorded");
	sqlite3_finalize(st);
	if (r != SQLITE_DONE) {
		set_dberr(db, err, "stages");
		return ZMB_ESTATE;
	}
	return ZMB_OK;
}

static enum zmb_rc render_text(sqlite3 *db, const struct snapshot *s, FILE *out, char **err)
{
	enum zmb_rc rc = ZMB_ESTATE;
	sqlite3_stmt *st = NULL;
	char t[32], b[32], d[32];
	int r;
	double rate = avg_rate(s);
	char *job = flat(s->job);

	fmt_time(s->now, t);
	fprintf(out, "zmbatch report for job '%s', generated %s\n\n", job, t);
	text_counts(out, s, false);
	fputc('\n', out);
	text_bytes(out, s);
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
	if (s->has_servers) {
		st = prep(db, SERVERS_SQL, err);
		if (!st)
			goto out;
		while ((r = sqlite3_step(st)) == SQLITE_ROW) {
			char *role = flat(col_text(st, 0)), *host = flat(col_text(st, 1));
			fmt_time(col_time(st, 5), t);
			fprintf(out, "server %s %s: %lld logins, %lld token refreshes, %lld auth failures, "
				"last login %s\n", role, host, (long long)sqlite3_column_int64(st, 2),
				(long long)sqlite3_column_int64(st, 3), (long long)sqlite3_column_int64(st, 4), t);
			free(role);
			free(host);
		}
		if (r != SQLITE_DONE) {
			set_dberr(db, err, "servers");
			goto out;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	fputc('\n', out);
	if (text_stages(db, out, false, err))
		goto out;

	/* top 5 by seconds: one pass with a 5-row sorter */
	st = prep(db, "SELECT account, seconds, bytes, state FROM accounts WHERE seconds IS NOT NULL "
		      "ORDER BY seconds DESC LIMIT 5", err);
	if (!st)
		goto out;
	fprintf(out, "\nslowest accounts:\n");
	int n = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		char *a = flat(col_text(st, 0));
		double sec = sqlite3_column_double(st, 1);
		long long by = sqlite3_column_int64(st, 2);
		fmt_dur(sec, d);
		fmt_bytes(by, b);
		fmt_rate(sec > 0 ? (double)by / sec : 0, t);
		fprintf(out, "  %-40s %9s %12s %14s  %s\n", a, d, b, t, col_text(st, 3));
		free(a);
		n++;
	}
	if (r != SQLITE_DONE) {
		set_dberr(db, err, "accounts");
		goto out;
	}
	if (!n)
		fprintf(out, "  none finished yet\n");
	sqlite3_finalize(st);
	st = NULL;

	fprintf(out, "\nfailures: %lld\n", s->counts[S_FAILED]);
	if (s->counts[S_FAILED] > 0) {
		st = prep(db, "SELECT coalesce(error_class, 'unknown'), count(*) FROM accounts "
			      "WHERE state = 'failed' GROUP BY 1 ORDER BY 2 DESC, 1", err);
		if (!st)
			goto out;
		fprintf(out, "  by class:");
		n = 0;
		while ((r = sqlite3_step(st)) == SQLITE_ROW) {
			char *c = flat(col_text(st, 0));
			fprintf(out, "%s %s %lld", n++ ? "," : "", c, (long long)sqlite3_column_int64(st, 1));
			free(c);
		}
		fputc('\n', out);
		if (r != SQLITE_DONE) {
			set_dberr(db, err, "accounts");
			goto out;
		}
		sqlite3_finalize(st);
		st = prep(db, "SELECT account, target, attempts, error_class, last_error FROM accounts "
			      "WHERE state = 'failed' ORDER BY account", err);
		if (!st)
			goto out;
		while ((r = sqlite3_step(st)) == SQLITE_ROW) {
			char *a = flat(col_text(st, 0)), *tg = flat(col_text(st, 1));
			char *c = flat(col_text(st, 3)), *e = flat(col_text(st, 4));
			fprintf(out, "  %s", a);
			if (strcmp(a, tg) != 0)
				fprintf(out, " -> %s", tg);
			fprintf(out, "  attempts %d  [%s] %s\n", sqlite3_column_int(st, 2),
				*c ? c : "unknown", *e ? e : "(no reason recorded)");
			free(a);
			free(tg);
			free(c);
			free(e);
		}
		if (r != SQLITE_DONE) {
			set_dberr(db, err, "accounts");
			goto out;
		}
		fprintf(out, "  (requeue with 'zmbatch reset --failed' or 'zmbatch run --retry-failed')\n");
	}
	rc = write_failed(out, err) ? ZMB_EIO : ZMB_OK;
out:
	sqlite3_finalize(st);
	free(job);
	return rc;
}

/* ---- public ---- */

int report_format_parse(const char *s)
{
	if (!s || !strcmp(s, "text"))
		return REPORT_TEXT;
	if (!strcmp(s, "csv"))
		return REPORT_CSV;
	if (!strcmp(s, "json"))
		return REPORT_JSON;
	if (!strcmp(s, "prom"))
		return REPORT_PROM;
	return -1;
}

enum zmb_rc report_render(sqlite3 *db, const char *job_name, enum report_format fmt,
			  double now, FILE *out, char **err)
{
	struct snapshot s;
	bool own;
	enum zmb_rc rc = read_begin(db, &own, err);
	if (rc)
		return rc;
	rc = read_snapshot(db, job_name, now, &s, err);
	if (rc)
		goto out;
	switch (fmt) {
	case REPORT_TEXT: rc = render_text(db, &s, out, err); break;
	case REPORT_CSV: rc = render_csv(db, out, err); break;
	case REPORT_JSON: rc = render_json(db, &s, out, err); break;
	case REPORT_PROM: rc = render_prom(db, &s, out, err); break;
	default:
		*err = xasprintf("unknown report format %d", (int)fmt);
		rc = ZMB_EINTERNAL;
	}
out:
	snapshot_release(&s);
	read_end(db, own);
	return rc;
}

enum zmb_rc report_render_file(sqlite3 *db, const char *job_name, enum report_format fmt,
			       double now, const char *path, char **err)
{
	enum zmb_rc rc = ZMB_EIO;
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	char *dcopy = xstrdup(path);
	FILE *f = NULL;
	int fd = -1, dfd = -1;
	mode_t mode = fmt == REPORT_PROM ? 0644 : 0600;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		*err = xasprintf("cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode) != 0) {        /* umask 077 would hide it from node_exporter */
		*err = xasprintf("cannot chmod %s: %s", tmp, strerror(errno));
		goto out;
	}
	f = fdopen(fd, "w");
	if (!f) {
		*err = xasprintf("cannot open %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	rc = report_render(db, job_name, fmt, now, f, err);
	if (rc)
		goto out;
	rc = ZMB_EIO;
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		*err = xasprintf("cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	int cr = fclose(f);
	f = NULL;
	if (cr != 0) {
		*err = xasprintf("cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, path) != 0) {
		*err = xasprintf("cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
	rc = ZMB_OK;
out:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (tmp)
		unlink(tmp);
	free(tmp);
	free(dcopy);
	return rc;
}

/* status: accounts that reached done in the window, bytes per second */
static enum zmb_rc current_rate(sqlite3 *db, const struct snapshot *s, double *rate,
				double *window, char **err)
{
	*rate = 0;
	*window = 0;
	if (!s->last.present || strcmp(s->last.status, "running") != 0)
		return ZMB_OK;
	double w = s->now - s->last.started_at;
	if (w > 600)
		w = 600;
	if (w < 1)
		w = 1;
	sqlite3_stmt *st = prep(db, "SELECT coalesce(sum(bytes), 0) FROM accounts "
				    "WHERE state = 'done' AND finished_at >= ?", err);
	if (!st)
		return ZMB_ESTATE;
	sqlite3_bind_double(st, 1, s->now - w);
	if (sqlite3_step(st) != SQLITE_ROW) {
		set_dberr(db, err, "accounts");
		sqlite3_finalize(st);
		return ZMB_ESTATE;
	}
	*rate = (double)sqlite3_column_int64(st, 0) / w;
	*window = w;
	sqlite3_finalize(st);
	return ZMB_OK;
}

enum zmb_rc report_status(sqlite3 *db, const char *job_name, const char *db_path,
			  double now, FILE *out, char **err)
{
	struct snapshot s;
	sqlite3_stmt *st = NULL;
	char b[32], d[32], t[32];
	double rate, window;
	int r, n;
	bool own;
	enum zmb_rc rc = read_begin(db, &own, err);
	if (rc)
		return rc;
	rc = read_snapshot(db, job_name, now, &s, err);
	if (rc)
		goto out;
	rc = ZMB_ESTATE;
	char *job = flat(s.job), *path = flat(db_path);
	fprintf(out, "job:        %s\nstate db:   %s\n", job, path);
	free(job);
	free(path);
	text_last_run(out, &s);
	if (text_stages(db, out, true, err))
		goto out;
	text_counts(out, &s, true);
	text_bytes(out, &s);
	if (current_rate(db, &s, &rate, &window, err))
		goto out;
	if (window > 0) {
		fmt_rate(rate, b);
		fmt_dur(window, d);
		fprintf(out, "rate:       %s (accounts finished in the last %s)\n", b, d);
	} else {
		rate = avg_rate(&s);
		fmt_rate(rate, b);
		fprintf(out, "rate:       no run in progress; average %s over all runs\n", b);
	}
	text_eta(out, &s, rate);

	long long inflight = s.counts[S_EXPORTING] + s.counts[S_IMPORTING];
	fprintf(out, "in flight:  %lld\n", inflight);
	if (inflight > 0) {
		st = prep(db, "SELECT account, state, attempts, started_at, size FROM accounts "
			      "WHERE state IN ('exporting', 'importing') ORDER BY started_at, id LIMIT 20", err);
		if (!st)
			goto out;
		while ((r = sqlite3_step(st)) == SQLITE_ROW) {
			char *a = flat(col_text(st, 0));
			double at = col_time(st, 3);
			fmt_dur(at > 0 ? now - at : 0, d);
			if (sqlite3_column_type(st, 4) == SQLITE_NULL)
				snprintf(b, sizeof b, "size ?");
			else
				fmt_bytes(sqlite3_column_int64(st, 4), b);
			fprintf(out, "  %-40s %-9s %9s  %12s  attempt %d\n", a, col_text(st, 1), d, b,
				sqlite3_column_int(st, 2) + 1);
			free(a);
		}
		if (r != SQLITE_DONE) {
			set_dberr(db, err, "accounts");
			goto out;
		}
		if (inflight > 20)
			fprintf(out, "  ... and %lld more\n", inflight - 20);
		sqlite3_finalize(st);
		st = NULL;
	}

	/* last errors: the event log first (newest first), else accounts' last_error */
	fprintf(out, "last errors:\n");
	st = prep(db, "SELECT e.at, e.level, coalesce(a.account, e.stage, ''), e.message "
		      "FROM events e LEFT JOIN accounts a ON a.id = e.account_id "
		      "WHERE e.level IN ('error', 'warn') ORDER BY e.id DESC LIMIT 5", err);
	if (!st)
		goto out;
	n = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		char *who = flat(col_text(st, 2)), *m = flat(col_text(st, 3));
		fmt_time(col_time(st, 0), t);
		fprintf(out, "  %s %-5s %s%s%s\n", t, col_text(st, 1), who, *who ? ": " : "", m);
		free(who);
		free(m);
		n++;
	}
	if (r != SQLITE_DONE) {
		set_dberr(db, err, "events");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (n == 0) {
		st = prep(db, "SELECT coalesce(finished_at, updated_at), account, state, error_class, last_error "
			      "FROM accounts WHERE last_error IS NOT NULL AND last_error <> '' "
			      "ORDER BY updated_at DESC LIMIT 5", err);
		if (!st)
			goto out;
		while ((r = sqlite3_step(st)) == SQLITE_ROW) {
			char *a = flat(col_text(st, 1)), *c = flat(col_text(st, 3)), *m = flat(col_text(st, 4));
			fmt_time(col_time(st, 0), t);
			fprintf(out, "  %s %s (%s) [%s] %s\n", t, a, col_text(st, 2), *c ? c : "unknown", m);
			free(a);
			free(c);
			free(m);
			n++;
		}
		if (r != SQLITE_DONE) {
			set_dberr(db, err, "accounts");
			goto out;
		}
	}
	if (n == 0)
		fprintf(out, "  none\n");
	rc = write_failed(out, err) ? ZMB_EIO : ZMB_OK;
out:
	sqlite3_finalize(st);
	snapshot_release(&s);
	read_end(db, own);
	return rc;
}

enum zmb_rc report_accounts(sqlite3 *db, int state, FILE *out, char **err)
{
	enum zmb_rc rc = ZMB_ESTATE;
	int r;
	sqlite3_stmt *st = NULL;
	if (state >= NSTATES) {
		*err = xasprintf("unknown account state %d", state);
		return ZMB_EINTERNAL;
	}
	if (state >= 0) {
		st = prep(db, "SELECT account, target, state, attempts, bytes, last_error FROM accounts "
			      "WHERE state = ? ORDER BY seq, id", err);
		if (st)
			sqlite3_bind_text(st, 1, acct_states[state], -1, SQLITE_STATIC);
	} else {
		st = prep(db, "SELECT account, target, state, attempts, bytes, last_error FROM accounts "
			      "ORDER BY seq, id", err);
	}
	if (!st)
		goto out;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		/* flat() turns tabs and other control characters into spaces */
		char *a = flat(col_text(st, 0)), *t = flat(col_text(st, 1)), *e = flat(col_text(st, 5));
		fprintf(out, "%s\t%s\t%s\t%d\t%lld\t%s\n", a, t, col_text(st, 2), sqlite3_column_int(st, 3),
			(long long)sqlite3_column_int64(st, 4), e);
		free(a);
		free(t);
		free(e);
	}
	if (r != SQLITE_DONE) {
		set_dberr(db, err, "accounts");
		goto out;
	}
	rc = write_failed(out, err) ? ZMB_EIO : ZMB_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

enum zmb_rc report_history(sqlite3 *db, const char *account, FILE *out, char **err)
{
	enum zmb_rc rc = ZMB_ESTATE;
	int r;
	long long id;
	sqlite3_stmt *st = prep(db, "SELECT id FROM accounts WHERE account = ?", err);
	if (!st)
		goto out;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		*err = xasprintf("no account '%s' in the state database", account);
		rc = ZMB_ENOTFOUND;
		goto out;
	}
	if (r != SQLITE_ROW) {
		set_dberr(db, err, "accounts");
		goto out;
	}
	id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = prep(db, "SELECT at, run_id, level, stage, message FROM events WHERE account_id = ? "
		      "ORDER BY id", err);
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		char t[32];
		char *m = flat(col_text(st, 4)), *stage = flat(col_text(st, 3));
		fmt_time(col_time(st, 0), t);
		if (sqlite3_column_type(st, 1) == SQLITE_NULL)
			fprintf(out, "%s run -", t);
		else
			fprintf(out, "%s run %lld", t, (long long)sqlite3_column_int64(st, 1));
		fprintf(out, " %-5s %s%s%s\n", col_text(st, 2), *stage ? stage : "",
			*stage ? ": " : "", m);
		free(m);
		free(stage);
	}
	if (r != SQLITE_DONE) {
		set_dberr(db, err, "events");
		goto out;
	}
	rc = write_failed(out, err) ? ZMB_EIO : ZMB_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

/* ---- command helpers ---- */

int report_db_open(struct report_db *r, int flags)
{
	char *err = NULL, *ident = NULL;
	int ex = 0;
	if ((flags & STATE_WRITE) && r->have_job)
		ident = job_identity(&r->job);
	enum zmb_rc rc = state_open(r->path, ident, flags, &r->st, &err);
	if (rc) {
		fprintf(stderr, "zmbatch: %s\n", err ? err : zmb_rc_str(rc));
		ex = rc == ZMB_ECONFIG ? EXIT_CONFIG : EXIT_PARTIAL;
		r->st = NULL;
	}
	free(err);
	free(ident);
	return ex;
}

void report_db_close(struct report_db *r)
{
	state_close(r->st);
	r->st = NULL;
	if (r->have_job)
		job_release(&r->job);
	r->have_job = false;
}
