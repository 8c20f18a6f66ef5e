/*
 * conf_legacy.c - reader for Zimbra's zmztozmig.conf (Key=Value lines).
 *
 * Honours every key zmztozmig knows (the table lkey_names below: source and
 * target server, admin user, password and port, Threads, the working,
 * failed, success and log directories, KeepSuccessFiles, ZimbraMailTransport,
 * resolve, types, DomainMap, Domains, Accounts; keys are matched without
 * regard to case), with its flaws fixed:
 *   - a line is split on the FIRST '=' only, so values (passwords) keep ','
 *     and '=';
 *   - blank and whitespace-only lines are fine, '#' starts a comment line;
 *   - Accounts/Domains/DomainMap lines accumulate; with Accounts=all every
 *     listed domain is used (zmztozmig only used the last one);
 *   - unknown keys are reported as warnings with their line number (not
 *     fatal: a working conf must keep working unchanged);
 *   - a line without '=' is an error naming its line;
 *   - an error does not stop the reading: every line is read, and every
 *     error is returned at once, one "FILE:LINE: message" per line of *err
 *     (zmztozmig stopped at the first).
 * Defaults follow zmztozmig (Threads 1, KeepSuccessFiles keeps unless FALSE,
 * port 7071).  conf_finish_with() (conf_finish.c) then applies the checks
 * shared with native files.
 *
 * Steps: legacy_line() splits one line into key and value, apply_key()
 * dispatches on the key to one setter per kind of value, finish_domains()
 * applies Accounts=all.
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
	char *e = *err ? xasprintf("%s\n%s:%d: %s", *err, path, line, msg)
		       : xasprintf("%s:%d: %s", path, line, msg);
	free(*err);
	*err = e;
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

/* The reading of one file: where we are and what accumulates over lines. */
struct lp {
	const char *path;
	struct job *job;
	char **err;
	int lineno;
	bool accounts_all;         /* Accounts=all seen */
	int domains_line;          /* first Domains= line, for messages */
	int accounts_line;         /* first Accounts= line */
	struct strlist domains;    /* used only with Accounts=all */
};

/* zmztozmig's defaults where they differ from job_init()'s. */
static void legacy_defaults(struct job *job, const char *path)
{
	job->path = xstrdup(path);
	job->legacy = true;
	job->name = xstrdup("zmztozmig");
	job->mig.threads = 1;                 /* zmztozmig's default */
	job->mig.keep_success_files = true;   /* only KeepSuccessFiles=FALSE deletes */
	job->mig.transfer = TRANSFER_SPOOL;
	job->mig.order = ORDER_LARGEST_FIRST;
}

/* The server a Source.../Target... key sets (its group line: the first such key). */
static struct server *lkey_server(struct lp *lp, enum lkey k)
{
	struct server *srv = NULL;
	switch (k) {
	case LK_SRC_HOST: case LK_SRC_USER: case LK_SRC_PWD: case LK_SRC_PORT:
		srv = &lp->job->source;
		break;
	case LK_TGT_HOST: case LK_TGT_USER: case LK_TGT_PWD: case LK_TGT_PORT:
		srv = &lp->job->target;
		break;
	default:
		return NULL;
	}
	if (!srv->line)
		srv->line = lp->lineno;
	return srv;
}

static enum zmb_rc set_server_key(struct lp *lp, enum lkey k, const char *val)
{
	struct server *srv = lkey_server(lp, k);
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
	default:  /* the ports */
		if (parse_port(val, &srv->port) < 0)
			return lfail(lp->path, lp->lineno, lp->err,
				     "key '%s': must be a port number 1..65535", lkey_names[k]);
		break;
	}
	return ZMB_OK;
}

static enum zmb_rc set_threads(struct lp *lp, const char *val)
{
	long long t;
	if (parse_ll(val, &t) < 0 || t < 1 || t > 256)
		return lfail(lp->path, lp->lineno, lp->err, "key 'Threads': must be 1..256");
	lp->job->mig.threads = (int)t;
	return ZMB_OK;
}

static enum zmb_rc set_resolve(struct lp *lp, const char *val)
{
	char *r = xstrlower(val);
	if (*r && strcmp(r, "skip") && strcmp(r, "modify") && strcmp(r, "replace") &&
	    strcmp(r, "reset")) {
		free(r);
		return lfail(lp->path, lp->lineno, lp->err,
			     "key 'resolve': must be skip, modify, replace or reset");
	}
	set_str(&lp->job->mig.resolve, r);
	free(r);
	return ZMB_OK;
}

/* DomainMap=from.example.com to.example.com (one pair a line, lines add up) */
static enum zmb_rc add_domain_map(struct lp *lp, const char *val)
{
	char *from = xstrdup(val);
	char *sp = from + strcspn(from, " \t");
	char *to = sp + strspn(sp, " \t");
	*sp = '\0';
	if (!*from || !*to || strpbrk(to, " \t")) {
		free(from);
		return lfail(lp->path, lp->lineno, lp->err,
			     "key 'DomainMap': expected \"from.example.com to.example.com\"");
	}
	struct migration *m = &lp->job->mig;
	m->maps = xrealloc(m->maps, (m->nmaps + 1) * sizeof *m->maps);
	m->maps[m->nmaps].from = xstrdup(from);
	m->maps[m->nmaps].to = xstrdup(to);
	m->nmaps++;
	free(from);
	return ZMB_OK;
}

/* One Key=Value: the setter of that key; an unknown key is a warning. */
static enum zmb_rc apply_key(struct lp *lp, enum lkey k, const char *key, const char *val)
{
	struct job *job = lp->job;
	switch (k) {
	case LK_SRC_HOST: case LK_SRC_USER: case LK_SRC_PWD: case LK_SRC_PORT:
	case LK_TGT_HOST: case LK_TGT_USER: case LK_TGT_PWD: case LK_TGT_PORT:
		return set_server_key(lp, k, val);
	case LK_THREADS:
		return set_threads(lp, val);
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
	case LK_RESOLVE:
		return set_resolve(lp, val);
	case LK_TYPES:
		set_str(&job->mig.types, val);
		break;
	case LK_DOMAINMAP:
		return add_domain_map(lp, val);
	case LK_DOMAINS:
		if (!lp->domains_line)
			lp->domains_line = lp->lineno;
		add_comma_list(&lp->domains, val, NULL);
		break;
	case LK_ACCOUNTS:
		if (!lp->accounts_line)
			lp->accounts_line = lp->lineno;
		add_comma_list(&job->mig.accounts, val, &lp->accounts_all);
		break;
	case LK_NONE:
		strlist_add_nodup(&job->warnings, xasprintf("%s:%d: unknown key '%s' ignored",
							    lp->path, lp->lineno, key));
		break;
	}
	return ZMB_OK;
}

/*
 * One line (NUL-terminated, may be changed): skip blank and '#' lines, split
 * on the first '=' (values keep ',' and '='), trim, apply.  A password's
 * value is wiped from the line once copied.
 */
static enum zmb_rc legacy_line(struct lp *lp, char *line)
{
	size_t n = strlen(line);
	if (n && line[n - 1] == '\r')
		line[--n] = '\0';
	char *s = line;
	while (*s && isspace((unsigned char)*s))
		s++;
	if (!*s || *s == '#')
		return ZMB_OK;
	char *eq = strchr(s, '=');
	if (!eq)
		return lfail(lp->path, lp->lineno, lp->err, "expected Key=Value");
	*eq = '\0';
	char *key = strtrim(s);
	char *val = strtrim(eq + 1);
	if (!*key)
		return lfail(lp->path, lp->lineno, lp->err, "expected Key=Value (the key is empty)");
	enum lkey k = lkey_find(key);
	enum zmb_rc rc = apply_key(lp, k, key, val);
	if (rc == ZMB_OK && (k == LK_SRC_PWD || k == LK_TGT_PWD))
		explicit_bzero(val, strlen(val));
	return rc;
}

/*
 * Domains are only used with Accounts=all (as in zmztozmig), but all of them.
 * Accounts lines that name nothing are an error here, so that the checks
 * after the reading (conf_finish.c) only have to report a missing Accounts.
 */
static enum zmb_rc finish_domains(struct lp *lp)
{
	struct job *job = lp->job;
	job->mig.line = lp->accounts_line;
	if (lp->accounts_line && !lp->accounts_all && !job->mig.accounts.n)
		return lfail(lp->path, lp->accounts_line, lp->err,
			     "key 'Accounts': names no account (a list of accounts, or all)");
	if (lp->accounts_all) {
		if (!lp->domains.n)
			return lfail(lp->path, lp->accounts_line, lp->err,
				     "Accounts=all needs Domains=domain1,domain2");
		job->mig.domains = lp->domains;
		lp->domains = (struct strlist)STRLIST_INIT;
	} else if (lp->domains.n) {
		strlist_add_nodup(&job->warnings,
				  xasprintf("%s:%d: Domains is ignored without Accounts=all (as in zmztozmig)",
					    lp->path, lp->domains_line));
	}
	return ZMB_OK;
}

enum zmb_rc conf_legacy_parse(const char *path, const char *text, struct job *job, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	char *copy = xstrdup(text ? text : "");
	struct lp lp = { .path = path, .job = job, .err = err, .domains = STRLIST_INIT };

	job_init(job);
	*err = NULL;
	legacy_defaults(job, path);
	char *next = copy;
	while (next) {   /* every line, whatever an earlier one said: all errors at once */
		char *line = next;
		char *nl = strchr(line, '\n');
		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lp.lineno++;
		enum zmb_rc r = legacy_line(&lp, line);
		if (rc == ZMB_OK)
			rc = r;
	}
	enum zmb_rc r = finish_domains(&lp);
	if (rc == ZMB_OK)
		rc = r;
	strlist_release(&lp.domains);
	explicit_bzero(copy, strlen(text ? text : ""));
	free(copy);
	return rc;
}
