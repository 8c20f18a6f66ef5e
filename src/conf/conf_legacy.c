/*
 * conf_legacy.c - reader for Zimbra's zmztozmig.conf (Key=Value lines).
 *
 * Honours every key zmztozmig knows (CONTRACT.md, zimbra-protocol.md §1.3),
 * with its flaws fixed:
 *   - a line is split on the FIRST '=' only, so values (passwords) keep ','
 *     and '=';
 *   - blank and whitespace-only lines are fine, '#' starts a comment line;
 *   - Accounts/Domains/DomainMap lines accumulate; with Accounts=all every
 *     listed domain is used (zmztozmig only used the last one);
 *   - unknown keys are reported as warnings with their line number (not
 *     fatal: a working conf must keep working unchanged);
 *   - a line without '=' is an error naming its line.
 * Defaults follow zmztozmig (Threads 1, KeepSuccessFiles keeps unless FALSE,
 * port 7071).  conf_finish() then applies the checks shared with native files.
 *
 * Main thread only.
 */
#include "job.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum lkey {
	LK_SRC_HOST, LK_SRC_USER, LK_SRC_PWD, LK_SRC_PORT,
	LK_TGT_HOST, LK_TGT_USER, LK_TGT_PWD, LK_TGT_PORT,
	LK_THREADS, LK_WORKDIR, LK_FAILDIR, LK_SUCCDIR, LK_LOGDIR, LK_KEEP,
	LK_TRANSPORT, LK_RESOLVE, LK_TYPES, LK_DOMAINMAP, LK_DOMAINS, LK_ACCOUNTS,
	LK_NONE
};

static const char *const lkey_names[] = {
	[LK_SRC_HOST] = "SourceZCSServer", [LK_SRC_USER] = "SourceAdminUser",
	[LK_SRC_PWD] = "SourceAdminPwd", [LK_SRC_PORT] = "SourceAdminPort",
	[LK_TGT_HOST] = "TargetZCSServer", [LK_TGT_USER] = "TargetAdminUser",
	[LK_TGT_PWD] = "TargetAdminPwd", [LK_TGT_PORT] = "TargetAdminPort",
	[LK_THREADS] = "Threads", [LK_WORKDIR] = "WorkingDirectory",
	[LK_FAILDIR] = "FailedDirectory", [LK_SUCCDIR] = "SuccessDirectory",
	[LK_LOGDIR] = "LogDirectory", [LK_KEEP] = "KeepSuccessFiles",
	[LK_TRANSPORT] = "ZimbraMailTransport", [LK_RESOLVE] = "resolve",
	[LK_TYPES] = "types", [LK_DOMAINMAP] = "DomainMap", [LK_DOMAINS] = "Domains",
	[LK_ACCOUNTS] = "Accounts",
};

static enum lkey lkey_find(const char *k)
{
	for (int i = 0; i < LK_NONE; i++)
		if (streq_ci(lkey_names[i], k))
			return (enum lkey)i;
	return LK_NONE;
}

static enum zmb_rc lfail(const char *path, int line, char **err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static enum zmb_rc lfail(const char *path, int line, char **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	*err = xasprintf("%s:%d: %s", path, line, msg);
	free(msg);
	return ZMB_ECONFIG;
}

/* Replace *dst with a copy of v (NULL when v is empty). */
static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = *v ? xstrdup(v) : NULL;
}

/* Append the non-empty, trimmed pieces of a comma list; *all set by "all". */
static void add_comma_list(struct strlist *l, const char *v, bool *all)
{
	char *copy = xstrdup(v);
	char *save = NULL;
	for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		strtrim(p);
		if (!*p)
			continue;
		if (all && streq_ci(p, "all")) {
			*all = true;
			continue;
		}
		if (!strlist_has_ci(l, p))
			strlist_add(l, p);
	}
	free(copy);
}

static int parse_port(const char *v, int *port)
{
	long long x;
	if (!*v) {
		*port = 7071;
		return 0;
	}
	if (parse_ll(v, &x) < 0 || x < 1 || x > 65535)
		return -1;
	*port = (int)x;
	return 0;
}

enum zmb_rc conf_legacy_parse(const char *path, const char *text, struct job *job, char **err)
{
	enum zmb_rc rc = ZMB_ECONFIG;
	char *copy = xstrdup(text ? text : "");
	bool accounts_all = false;
	int domains_line = 0, accounts_line = 0;
	struct strlist domains = STRLIST_INIT;

	job_init(job);
	*err = NULL;
	job->path = xstrdup(path);
	job->legacy = true;
	job->name = xstrdup("zmztozmig");
	job->mig.threads = 1;                 /* zmztozmig's default */
	job->mig.keep_success_files = true;   /* only KeepSuccessFiles=FALSE deletes */
	job->mig.transfer = TRANSFER_SPOOL;
	job->mig.order = ORDER_LARGEST_FIRST;

	int lineno = 0;
	char *next = copy;
	while (next) {
		char *line = next;
		char *nl = strchr(line, '\n');
		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		size_t n = strlen(line);
		if (n && line[n - 1] == '\r')
			line[--n] = '\0';
		char *s = line;
		while (*s && isspace((unsigned char)*s))
			s++;
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			rc = lfail(path, lineno, err, "expected Key=Value");
			goto out;
		}
		*eq = '\0';
		char *key = strtrim(s);
		char *val = strtrim(eq + 1);
		if (!*key) {
			rc = lfail(path, lineno, err, "expected Key=Value (the key is empty)");
			goto out;
		}
		struct server *srv = NULL;
		enum lkey k = lkey_find(key);
		switch (k) {
		case LK_SRC_HOST: case LK_SRC_USER: case LK_SRC_PWD: case LK_SRC_PORT:
			srv = &job->source;
			break;
		case LK_TGT_HOST: case LK_TGT_USER: case LK_TGT_PWD: case LK_TGT_PORT:
			srv = &job->target;
			break;
		default:
			break;
		}
		if (srv && !srv->line)
			srv->line = lineno;
		switch (k) {
		case LK_SRC_HOST: case LK_TGT_HOST:
			set_str(&srv->host, val);
			break;
		case LK_SRC_USER: case LK_TGT_USER:
			set_str(&srv->admin_user, val);
			break;
		case LK_SRC_PWD: case LK_TGT_PWD:
			secret_free(srv->password);
			srv->password = *val ? xstrdup(val) : NULL;
			srv->password_inline = srv->password != NULL;
			break;
		case LK_SRC_PORT: case LK_TGT_PORT:
			if (parse_port(val, &srv->port) < 0) {
				rc = lfail(path, lineno, err, "key '%s': must be a port number 1..65535",
					   lkey_names[k]);
				goto out;
			}
			break;
		case LK_THREADS: {
			long long t;
			if (parse_ll(val, &t) < 0 || t < 1 || t > 256) {
				rc = lfail(path, lineno, err, "key 'Threads': must be 1..256");
				goto out;
			}
			job->mig.threads = (int)t;
			break;
		}
		case LK_WORKDIR:
			set_str(&job->mig.working_dir, val);
			break;
		case LK_FAILDIR:
			set_str(&job->mig.failed_dir, val);
			break;
		case LK_SUCCDIR:
			set_str(&job->mig.success_dir, val);
			break;
		case LK_LOGDIR:
			set_str(&job->log_dir, val);
			break;
		case LK_KEEP:
			job->mig.keep_success_files = !streq_ci(val, "FALSE");
			break;
		case LK_TRANSPORT:
			set_str(&job->mig.mail_transport, val);
			break;
		case LK_RESOLVE: {
			char *r = xstrlower(val);
			if (*r && strcmp(r, "skip") && strcmp(r, "modify") && strcmp(r, "replace") &&
			    strcmp(r, "reset")) {
				rc = lfail(path, lineno, err,
					   "key 'resolve': must be skip, modify, replace or reset");
				free(r);
				goto out;
			}
			set_str(&job->mig.resolve, r);
			free(r);
			break;
		}
		case LK_TYPES:
			set_str(&job->mig.types, val);
			break;
		case LK_DOMAINMAP: {
			char *from = xstrdup(val);
			char *sp = from + strcspn(from, " \t");
			char *to = sp + strspn(sp, " \t");
			*sp = '\0';
			if (!*from || !*to || strpbrk(to, " \t")) {
				free(from);
				rc = lfail(path, lineno, err,
					   "key 'DomainMap': expected \"from.example.com to.example.com\"");
				goto out;
			}
			struct migration *m = &job->mig;
			m->maps = xrealloc(m->maps, (m->nmaps + 1) * sizeof *m->maps);
			m->maps[m->nmaps].from = xstrdup(from);
			m->maps[m->nmaps].to = xstrdup(to);
			m->nmaps++;
			free(from);
			break;
		}
		case LK_DOMAINS:
			if (!domains_line)
				domains_line = lineno;
			add_comma_list(&domains, val, NULL);
			break;
		case LK_ACCOUNTS:
			if (!accounts_line)
				accounts_line = lineno;
			add_comma_list(&job->mig.accounts, val, &accounts_all);
			break;
		case LK_NONE:
			strlist_add_nodup(&job->warnings,
					  xasprintf("%s:%d: unknown key '%s' ignored", path, lineno, key));
			break;
		}
		if (k == LK_SRC_PWD || k == LK_TGT_PWD)
			explicit_bzero(val, strlen(val));
	}

	/* Domains are only used with Accounts=all (as in zmztozmig), but all of them. */
	if (accounts_all) {
		if (!domains.n) {
			rc = lfail(path, accounts_line, err, "Accounts=all needs Domains=domain1,domain2");
			goto out;
		}
		job->mig.domains = domains;
		domains = (struct strlist)STRLIST_INIT;
	} else if (domains.n) {
		strlist_add_nodup(&job->warnings,
				  xasprintf("%s:%d: Domains is ignored without Accounts=all (as in zmztozmig)",
					    path, domains_line));
	}
	job->mig.line = accounts_line;
	rc = ZMB_OK;
out:
	strlist_release(&domains);
	explicit_bzero(copy, strlen(text ? text : ""));
	free(copy);
	return rc;
}
