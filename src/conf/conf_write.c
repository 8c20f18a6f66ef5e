/*
 * conf_write.c - conf_write_native(): a job as a native libconfig job file,
 * the output of `zmbatch convert`.  Reading the output back gives the same
 * job (check_conf's round-trip tests).  No secret is written: an inline
 * password becomes an admin_password_file to create, with a comment.
 *
 * Any thread; writes only to `out`.
 */
#include "job.h"

#include <stdlib.h>
#include <string.h>

static void put_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\n': fputs("\\n", out); break;
		case '\r': fputs("\\r", out); break;
		case '\t': fputs("\\t", out); break;
		case '\f': fputs("\\f", out); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(out, "\\x%02x", *p);
			else
				fputc(*p, out);
		}
	}
	fputc('"', out);
}

static void put_kv(FILE *out, const char *indent, const char *key, const char *val)
{
	fprintf(out, "%s%s = ", indent, key);
	put_str(out, val);
	fputs(";\n", out);
}

static void put_duration(FILE *out, const char *indent, const char *key, long long s)
{
	struct buf b = BUF_INIT;
	if (s == 0) {
		fprintf(out, "%s%s = 0;\n", indent, key);
		return;
	}
	if (s >= 86400 && s % 86400 == 0)
		buf_addf(&b, "%lldd", s / 86400), s = 0;
	if (s >= 3600)
		buf_addf(&b, "%lldh", s / 3600), s %= 3600;
	if (s >= 60)
		buf_addf(&b, "%lldm", s / 60), s %= 60;
	if (s > 0)
		buf_addf(&b, "%llds", s);
	put_kv(out, indent, key, b.s);
	buf_release(&b);
}

static void put_bytes(FILE *out, const char *indent, const char *key, long long n)
{
	static const char units[] = "kMGT";
	int u = -1;
	while (n && n % 1024 == 0 && u < 3) {
		n /= 1024;
		u++;
	}
	if (u < 0 && n <= 2147483647LL) {
		fprintf(out, "%s%s = %lld;\n", indent, key, n);
		return;
	}
	char *v = u >= 0 ? xasprintf("%lld%c", n, units[u]) : xasprintf("%lld", n);
	put_kv(out, indent, key, v);
	free(v);
}

static void put_list(FILE *out, const char *indent, const char *key, const struct strlist *l)
{
	fprintf(out, "%s%s = [", indent, key);
	for (size_t i = 0; i < l->n; i++) {
		fputs(i ? ", " : " ", out);
		put_str(out, l->v[i]);
	}
	fputs(" ];\n", out);
}

/* A stage setting, in libconfig syntax (value only). */
static void put_cval(FILE *out, const struct cval *v, int depth)
{
	switch (v->type) {
	case CV_STR:
		put_str(out, v->str ? v->str : "");
		break;
	case CV_INT:
		fprintf(out, "%lld%s", v->i, v->i > 2147483647LL || v->i < -2147483648LL ? "L" : "");
		break;
	case CV_FLOAT: {
		char num[64];
		snprintf(num, sizeof num, "%.17g", v->f);
		fputs(num, out);
		if (!strpbrk(num, ".eEin"))
			fputs(".0", out);
		break;
	}
	case CV_BOOL:
		fputs(v->b ? "true" : "false", out);
		break;
	case CV_LIST: {
		/* [ ] holds scalars of one type; ( ) holds anything */
		bool array = true;
		for (size_t i = 0; i < v->n; i++)
			if (v->items[i].type == CV_LIST || v->items[i].type == CV_GROUP ||
			    v->items[i].type != v->items[0].type)
				array = false;
		fputs(array ? "[ " : "( ", out);
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				fputs(", ", out);
			put_cval(out, &v->items[i], depth + 1);
		}
		fputs(array ? " ]" : " )", out);
		break;
	}
	case CV_GROUP:
		fputs("{ ", out);
		for (size_t i = 0; i < v->n; i++) {
			fprintf(out, "%s = ", v->items[i].name ? v->items[i].name : "x");
			put_cval(out, &v->items[i], depth + 1);
			fputs("; ", out);
		}
		fputs("}", out);
		break;
	}
}

static void write_server(const struct job *job, const struct server *s, FILE *out)
{
	if (!s->host)
		return;
	fprintf(out, "%s = {\n", s->role);
	put_kv(out, "  ", "host", s->host);
	fprintf(out, "  port = %d;                              # admin port (SOAP and REST)\n", s->port);
	put_kv(out, "  ", "admin_user", s->admin_user ? s->admin_user : "");
	if (s->password_env) {
		put_kv(out, "  ", "admin_password_env", s->password_env);
	} else {
		char *def = xasprintf("/etc/zmbatch/%s.pw", s->role);
		const char *pf = s->password_file ? s->password_file : def;
		if (s->password_inline) {
			const char *legacy_key = s->role[0] == 's' ? "SourceAdminPwd" : "TargetAdminPwd";
			fprintf(out, "  # The password is not copied here.  Create the file with mode 600,\n"
				     "  # containing the password that was in %s%s%s, e.g.:\n"
				     "  #   install -m 600 /dev/null %s && vi %s\n",
				job->legacy ? legacy_key : "admin_password",
				job->path ? " of " : "", job->path ? job->path : "", pf, pf);
		}
		put_kv(out, "  ", "admin_password_file", pf);
		free(def);
	}
	if (s->ca_file)
		put_kv(out, "  ", "ca_file", s->ca_file);
	else if (job->legacy)
		fputs("  # ca_file = \"/etc/zmbatch/ca.pem\";       # zmztozmig trusted any certificate;\n"
		      "  #                                         # zmbatch verifies it (system CAs by default)\n",
		      out);
	if (s->pinned_pubkey)
		put_kv(out, "  ", "pinned_pubkey", s->pinned_pubkey);
	if (!s->tls_verify)
		fputs("  tls_verify = false;\n", out);
	if (s->scheme && strcmp(s->scheme, "https"))
		put_kv(out, "  ", "scheme", s->scheme);
	if (s->max_rps != 25)
		fprintf(out, "  max_requests_per_second = %g;\n", s->max_rps);
	if (s->nroutes) {
		fputs("  servers = (\n", out);
		for (size_t i = 0; i < s->nroutes; i++) {
			const struct server_route *r = &s->routes[i];
			fputs("    {\n", out);
			put_kv(out, "      ", "name", r->name);
			put_kv(out, "      ", "host", r->host);
			fprintf(out, "      port = %d;\n", r->port);
			if (r->pinned_pubkey)
				put_kv(out, "      ", "pinned_pubkey", r->pinned_pubkey);
			fprintf(out, "    }%s\n", i + 1 < s->nroutes ? "," : "");
		}
		fputs("  );\n", out);
	}
	if (s->ldap.url) {
		fputs("  ldap = {\n", out);
		put_kv(out, "    ", "url", s->ldap.url);
		put_kv(out, "    ", "bind_dn", s->ldap.bind_dn);
		put_kv(out, "    ", "password_file", s->ldap.password_file);
		put_kv(out, "    ", "base", s->ldap.base);
		if (s->ldap.starttls)
			fputs("    starttls = true;\n", out);
		if (s->ldap.ca_file)
			put_kv(out, "    ", "ca_file", s->ldap.ca_file);
		if (!s->ldap.tls_verify)
			fputs("    tls_verify = false;\n", out);
		if (s->ldap.allow_cleartext)
			fputs("    allow_cleartext = true;\n", out);
		fputs("  };\n", out);
	}
	fputs("};\n\n", out);
}

static void write_migration(const struct job *job, FILE *out)
{
	const struct migration *m = &job->mig;
	fputs("migration = {\n", out);
	if (m->accounts.n)
		put_list(out, "  ", "accounts", &m->accounts);
	if (m->accounts_file)
		put_kv(out, "  ", "accounts_file", m->accounts_file);
	if (m->domains.n) {
		if (job->legacy)
			fputs("  # every non-system account of these domains (Accounts=all)\n", out);
		put_list(out, "  ", "domains", &m->domains);
	}
	if (m->nmaps) {
		fputs("  domain_map = [", out);
		for (size_t i = 0; i < m->nmaps; i++) {
			char *s = xasprintf("%s=%s", m->maps[i].from, m->maps[i].to);
			fputs(i ? ", " : " ", out);
			put_str(out, s);
			free(s);
		}
		fputs(" ];\n", out);
	}
	fprintf(out, "  threads = %d;\n", m->threads);
	if (m->working_dir)
		put_kv(out, "  ", "working_dir", m->working_dir);
	if (m->success_dir)
		put_kv(out, "  ", "success_dir", m->success_dir);
	if (m->failed_dir)
		put_kv(out, "  ", "failed_dir", m->failed_dir);
	fprintf(out, "  keep_success_files = %s;\n", m->keep_success_files ? "true" : "false");
	put_kv(out, "  ", "transfer", m->transfer == TRANSFER_STREAM ? "stream" : "spool");
	put_kv(out, "  ", "resolve", m->resolve ? m->resolve : "skip");
	if (m->types)
		put_kv(out, "  ", "types", m->types);
	fprintf(out, "  max_attempts = %d;\n", m->max_attempts);
	put_kv(out, "  ", "order", m->order == ORDER_AS_LISTED ? "as-listed" : "largest-first");
	if (m->mail_transport)
		put_kv(out, "  ", "mail_transport", m->mail_transport);
	put_bytes(out, "  ", "max_bytes_per_second", m->max_bytes_per_second);
	put_bytes(out, "  ", "max_bytes_per_second_total", m->max_bytes_per_second_total);
	put_duration(out, "  ", "retry_backoff", m->retry_backoff);
	put_duration(out, "  ", "retry_backoff_max", m->retry_backoff_max);
	put_duration(out, "  ", "max_throttle_wait", m->max_throttle_wait);
	put_duration(out, "  ", "maintenance_wait", m->maintenance_wait);
	if (m->skip_status.n)
		put_list(out, "  ", "skip_status", &m->skip_status);
	put_duration(out, "  ", "delta_overlap", m->delta_overlap);
	put_duration(out, "  ", "chunk", m->chunk);
	put_bytes(out, "  ", "chunk_bytes", m->chunk_bytes);
	fprintf(out, "  verify = \"%s\";\n", m->verify ? "counts" : "off");
	put_duration(out, "  ", "low_speed_time", m->low_speed_time);
	put_bytes(out, "  ", "low_speed_limit", m->low_speed_limit);
	put_bytes(out, "  ", "buffer_size", m->buffer_size);
	fputs("};\n\n", out);
}

/* token, state, log and run groups */
static void write_job_groups(const struct job *job, FILE *out)
{
	fputs("token = {\n", out);
	put_duration(out, "  ", "refresh_margin", job->token_refresh_margin);
	fputs("};\n\n", out);
	if (job->state_db) {
		fputs("state = {\n", out);
		put_kv(out, "  ", "db", job->state_db);
		fputs("};\n\n", out);
	}
	fputs("log = {\n", out);
	if (job->log_dir)
		put_kv(out, "  ", "dir", job->log_dir);
	put_kv(out, "  ", "level", job->log_level ? job->log_level : "info");
	fputs("};\n\n", out);

	fputs("run = {\n", out);
	put_duration(out, "  ", "max_runtime", job->max_runtime);
	if (job->until)
		put_kv(out, "  ", "until", job->until);
	put_duration(out, "  ", "grace", job->grace);
	put_duration(out, "  ", "progress_interval", job->progress_interval);
	fputs("};\n", out);
}

/* stages = ( ... ), left out when it is the default single "migrate" stage */
static void write_stages(const struct job *job, FILE *out)
{
	bool only_default = job->nstages == 1 && streq(job->stages[0].name, "migrate") &&
			    streq(job->stages[0].type, "migrate") && job->stages[0].settings.n <= 2;
	if (job->nstages && !only_default) {
		fputs("\nstages = (\n", out);
		for (size_t i = 0; i < job->nstages; i++) {
			const struct stage_conf *sc = &job->stages[i];
			fputs("  {\n", out);
			put_kv(out, "    ", "name", sc->name);
			put_kv(out, "    ", "type", sc->type);
			for (size_t j = 0; j < sc->settings.n; j++) {
				const struct cval *v = &sc->settings.items[j];
				if (streq(v->name, "name") || streq(v->name, "type"))
					continue;
				fprintf(out, "    %s = ", v->name);
				put_cval(out, v, 2);
				fputs(";\n", out);
			}
			fprintf(out, "  }%s\n", i + 1 < job->nstages ? "," : "");
		}
		fputs(");\n", out);
	}
}

void conf_write_native(const struct job *job, FILE *out)
{
	fputs("# zmbatch job file", out);
	if (job->legacy && job->path) {
		fputs(", converted from ", out);
		fputs(job->path, out);
		fputs(" by `zmbatch convert`", out);
	}
	fputs(".\n# Syntax: libconfig (key = value;).  Reference: conf/zmbatch.cfg.example.\n\n", out);
	put_kv(out, "", "job", job->name ? job->name : "zmbatch");
	fputc('\n', out);
	write_server(job, &job->source, out);
	write_server(job, &job->target, out);
	write_migration(job, out);
	write_job_groups(job, out);
	write_stages(job, out);
}
