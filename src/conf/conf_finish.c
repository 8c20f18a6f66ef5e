/*
 * conf_finish.c - conf_finish_with(): the defaults and cross-field checks
 * shared by the native and the legacy reader, applied after either has
 * filled the job.  Messages name keys as the user wrote them (zmztozmig keys
 * for a zmztozmig.conf).  Relative paths become relative to the job file's
 * directory.  Secrets (password files, environment variables) are read here
 * when asked to.  Independent checks all run, and their errors are returned
 * together, one per line of *err (finish_fail appends); checks that follow
 * from an earlier one (the state DB's default, the stages) run only when
 * everything before them passed.
 *
 * Main thread only.
 */
#include "conf_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The name of a setting as the user wrote it (legacy keys for a zmztozmig.conf). */
static const char *key_name(const struct job *job, const char *native)
{
	static const struct { const char *native, *legacy; } tab[] = {
		{ "source.host", "SourceZCSServer" },
		{ "source.admin_user", "SourceAdminUser" },
		{ "source.admin_password", "SourceAdminPwd" },
		{ "source.port", "SourceAdminPort" },
		{ "target.host", "TargetZCSServer" },
		{ "target.admin_user", "TargetAdminUser" },
		{ "target.admin_password", "TargetAdminPwd" },
		{ "target.port", "TargetAdminPort" },
		{ "migration.threads", "Threads" },
		{ "migration.working_dir", "WorkingDirectory" },
		{ "migration.failed_dir", "FailedDirectory" },
		{ "migration.success_dir", "SuccessDirectory" },
		{ "migration.resolve", "resolve" },
		{ "migration.types", "types" },
		{ "migration.accounts", "Accounts" },
		{ "migration.domains", "Domains" },
		{ "log.dir", "LogDirectory" },
	};
	if (job->legacy)
		for (size_t i = 0; i < sizeof tab / sizeof *tab; i++)
			if (!strcmp(tab[i].native, native))
				return tab[i].legacy;
	return native;
}

static enum zmb_rc finish_fail(const struct job *job, int line, char **err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static enum zmb_rc finish_fail(const struct job *job, int line, char **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	const char *path = job->path ? job->path : "?";
	char *e;
	if (line > 0)
		e = xasprintf("%s%s%s:%d: %s", *err ? *err : "", *err ? "\n" : "", path, line, msg);
	else
		e = xasprintf("%s%s%s: %s", *err ? *err : "", *err ? "\n" : "", path, msg);
	free(*err);
	*err = e;
	free(msg);
	return ZMB_ECONFIG;
}

/* Relative paths in a job file are relative to the file's directory. */
static void absolutize(const struct job *job, char **p)
{
	if (!*p || (*p)[0] == '/' || !job->path)
		return;
	char *dir = job_file_dir(job->path);
	char *abs = xasprintf("%s/%s", dir, *p);
	free(dir);
	free(*p);
	*p = abs;
}

static bool file_readable_by_others(const char *path)
{
	struct stat st;
	return path && stat(path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO));
}

/* Read the admin password from its file or environment variable. */
static enum zmb_rc resolve_password(const struct job *job, struct server *s, char **err)
{
	if (s->password_file) {
		char *e = NULL;
		secret_free(s->password);
		s->password = NULL;
		if (secret_read_file(s->password_file, &s->password, &e)) {
			enum zmb_rc rc = finish_fail(job, s->line, err, "key '%s.admin_password_file': %s",
						     s->role, e ? e : "cannot read");
			free(e);
			return rc;
		}
	} else if (s->password_env) {
		const char *v = getenv(s->password_env);
		if (!v || !*v)
			return finish_fail(job, s->line, err,
					   "key '%s.admin_password_env': environment variable '%s' "
					   "is not set or empty", s->role, s->password_env);
		secret_free(s->password);
		s->password = xstrdup(v);
	}
	return ZMB_OK;
}

static enum zmb_rc finish_server(struct job *job, struct server *s, bool required,
				 bool resolve_secrets, char **err)
{
	char k[64];
	bool present = s->host || s->admin_user || s->password || s->password_file ||
		       s->password_env;
	enum zmb_rc rc = ZMB_OK;
	if (!required && !present)
		return ZMB_OK;
	if (!s->host) {
		snprintf(k, sizeof k, "%s.host", s->role);
		rc = finish_fail(job, s->line, err, "missing key '%s' (%s server host name)",
				 key_name(job, k), s->role);
	}
	if (!s->admin_user) {
		snprintf(k, sizeof k, "%s.admin_user", s->role);
		rc = finish_fail(job, s->line, err, "missing key '%s' (%s admin account)",
				 key_name(job, k), s->role);
	}
	int nsrc = (s->password_inline ? 1 : 0) + (s->password_file ? 1 : 0) +
		   (s->password_env ? 1 : 0);
	if (nsrc == 0 && job->legacy)
		rc = finish_fail(job, s->line, err, "missing key '%s'",
				 s->role[0] == 's' ? "SourceAdminPwd" : "TargetAdminPwd");
	else if (nsrc == 0)
		rc = finish_fail(job, s->line, err,
				 "%s: missing password: set one of admin_password_file, "
				 "admin_password_env or admin_password", s->role);
	if (nsrc > 1)
		rc = finish_fail(job, s->line, err,
				 "%s: set only one of admin_password_file, admin_password_env, "
				 "admin_password", s->role);
	if (s->pinned_pubkey && strncmp(s->pinned_pubkey, "sha256//", 8) != 0)
		rc = finish_fail(job, s->line, err,
				 "key '%s.pinned_pubkey': expected \"sha256//BASE64=\"", s->role);
	if (rc)
		return rc;
	if (!s->scheme)
		s->scheme = xstrdup("https");
	absolutize(job, &s->ca_file);
	absolutize(job, &s->password_file);
	absolutize(job, &s->ldap.password_file);
	absolutize(job, &s->ldap.ca_file);
	/* tls_verify = false is warned about by run/check themselves (also --insecure) */
	if (s->password_inline && file_readable_by_others(job->path))
		strlist_add_nodup(&job->warnings,
				  xasprintf("%s: the %s admin password is written in a file readable "
					    "by group or others; run: chmod 600 '%s' (or use "
					    "admin_password_file)", job->path, s->role, job->path));
	return resolve_secrets ? resolve_password(job, s, err) : ZMB_OK;
}


/* A job without stages = { } runs one "migrate" stage. */
static void default_stages(struct job *job)
{
	if (job->nstages)
		return;
	job->stages = xcalloc(1, sizeof *job->stages);
	job->nstages = 1;
	job->stages[0].name = xstrdup("migrate");
	job->stages[0].type = xstrdup("migrate");
	job->stages[0].settings.type = CV_GROUP;
}

static enum zmb_rc finish_migration(struct job *job, bool has_migrate, char **err)
{
	struct migration *m = &job->mig;
	enum zmb_rc rc = ZMB_OK;
	if (!m->resolve)
		m->resolve = xstrdup("skip");
	if (!streq(m->resolve, "skip") && !streq(m->resolve, "modify") &&
	    !streq(m->resolve, "replace") && !streq(m->resolve, "reset"))
		rc = finish_fail(job, m->line, err, "key '%s': must be skip, modify, replace or reset",
				 key_name(job, "migration.resolve"));
	if (m->threads < 1 || m->threads > 256)
		rc = finish_fail(job, m->line, err, "key '%s': must be 1..256",
				 key_name(job, "migration.threads"));
	if (m->retry_backoff_max < m->retry_backoff)
		rc = finish_fail(job, m->line, err,
				 "key 'migration.retry_backoff_max': must not be less than retry_backoff");
	for (size_t i = 0; i < m->nmaps; i++)
		if (!*m->maps[i].from || !*m->maps[i].to || strchr(m->maps[i].to, '@') ||
		    strchr(m->maps[i].from, '=') || strchr(m->maps[i].to, '='))
			rc = finish_fail(job, m->line, err,
					 "domain map '%s' -> '%s': expected two domain names",
					 m->maps[i].from, m->maps[i].to);

	absolutize(job, &m->accounts_file);
	absolutize(job, &m->working_dir);
	absolutize(job, &m->success_dir);
	absolutize(job, &m->failed_dir);
	absolutize(job, &job->state_db);
	absolutize(job, &job->log_dir);

	if (!has_migrate)
		return rc;
	/* a zmztozmig.conf's Accounts lines were checked by its reader (m->line: the first) */
	if (!m->accounts.n && !m->accounts_file && !m->domains.n && job->legacy && !m->line)
		rc = finish_fail(job, 0, err, "missing key 'Accounts' (a list of accounts, "
				 "or Accounts=all with Domains)");
	else if (!m->accounts.n && !m->accounts_file && !m->domains.n && !job->legacy)
		rc = finish_fail(job, m->line, err,
				 "migration: set at least one of accounts, accounts_file, domains");
	if (m->transfer == TRANSFER_SPOOL && !m->working_dir)
		rc = finish_fail(job, m->line, err, "missing key '%s' (needed for transfer = \"spool\")",
				 key_name(job, "migration.working_dir"));
	return rc;
}

/* state.db defaults to <working_dir>/zmbatch.db. */
static enum zmb_rc finish_state_db(struct job *job, char **err)
{
	const struct migration *m = &job->mig;
	if (job->state_db)
		return ZMB_OK;
	if (!m->working_dir)
		return finish_fail(job, 0, err,
				   "missing key 'state.db' (or migration.working_dir for the default "
				   "<working_dir>/zmbatch.db)");
	size_t n = strlen(m->working_dir);
	while (n > 1 && m->working_dir[n - 1] == '/')
		n--;
	job->state_db = xasprintf("%.*s/zmbatch.db", (int)n, m->working_dir);
	return ZMB_OK;
}

/* Each stage's type exists and accepts its settings (the type's own check). */
static enum zmb_rc finish_stages(struct job *job, const struct stage_catalog *cat, char **err)
{
	for (size_t i = 0; i < job->nstages; i++) {
		struct stage_conf *sc = &job->stages[i];
		if (!cat->known(sc->type))
			return finish_fail(job, sc->line, err, "stage '%s': unknown stage type '%s' (known: %s)",
					   sc->name, sc->type, cat->names());
		char *e = NULL;
		if (cat->validate(sc, job->path, &e) != 0) {
			if (e)
				*err = e;
			else
				finish_fail(job, sc->line, err, "stage '%s': invalid settings", sc->name);
			return ZMB_ECONFIG;
		}
		free(e);
	}
	return ZMB_OK;
}

enum zmb_rc conf_finish_with(struct job *job, bool resolve_secrets, const struct stage_catalog *cat,
			     char **err)
{
	enum zmb_rc rc;

	*err = NULL;
	if (!job->name)
		job->name = xstrdup(job->legacy ? "zmztozmig" : "zmbatch");
	default_stages(job);
	bool has_migrate = false;
	for (size_t i = 0; i < job->nstages; i++)
		if (streq(job->stages[i].type, "migrate"))
			has_migrate = true;

	/* independent: each reports what it finds, in this order, all in *err */
	enum zmb_rc rs = finish_server(job, &job->source, has_migrate, resolve_secrets, err);
	enum zmb_rc rt = finish_server(job, &job->target, has_migrate, resolve_secrets, err);
	enum zmb_rc rm = finish_migration(job, has_migrate, err);
	if ((rc = rs ? rs : rt ? rt : rm))
		return rc;
	if ((rc = finish_state_db(job, err)))
		return rc;
	if (!job->log_level)
		job->log_level = xstrdup("info");
	return finish_stages(job, cat, err);
}
