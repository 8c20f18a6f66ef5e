/*
 * job.c - the job model both readers fill (conf_native.c, conf_legacy.c): an empty
 * job with every default, its release, its identity, the domain map and the
 * directory of a job file (job_file_dir).
 * Any thread may call job_identity/job_map_account on a loaded job.
 */
#include "job.h"

#include <stdlib.h>
#include <string.h>

static void server_init(struct server *s, const char *role)
{
	memset(s, 0, sizeof *s);
	s->role = role;
	s->port = 7071;
	s->tls_verify = true;
	s->max_rps = 25;
}

void job_init(struct job *job)
{
	memset(job, 0, sizeof *job);
	server_init(&job->source, "source");
	server_init(&job->target, "target");
	job->mig.threads = 5;
	job->mig.keep_success_files = false;
	job->mig.transfer = TRANSFER_SPOOL;
	job->mig.max_attempts = 3;
	job->mig.order = ORDER_LARGEST_FIRST;
	job->mig.max_bytes_per_second = 0;
	job->mig.retry_backoff = 30;
	job->mig.retry_backoff_max = 15 * 60;
	job->mig.max_throttle_wait = 30 * 60;
	job->mig.maintenance_wait = 6 * 3600;
	job->mig.delta_overlap = 86400;
	job->mig.verify = true;
	job->mig.low_speed_time = 300;
	job->mig.low_speed_limit = 1;
	job->mig.buffer_size = 1024 * 1024;  /* stream ring per worker: RSS ~ threads x this */
	job->token_refresh_margin = 1800;
	job->grace = 300;
	job->progress_interval = 300;
}

static void server_release(struct server *s)
{
	free(s->host);
	free(s->admin_user);
	secret_free(s->password);
	free(s->password_file);
	free(s->password_env);
	free(s->ca_file);
	free(s->pinned_pubkey);
	free(s->scheme);
	for (size_t i = 0; i < s->nroutes; i++) {
		free(s->routes[i].name);
		free(s->routes[i].host);
		free(s->routes[i].pinned_pubkey);
	}
	free(s->routes);
	free(s->ldap.url);
	free(s->ldap.bind_dn);
	free(s->ldap.password_file);
	free(s->ldap.base);
	free(s->ldap.ca_file);
}

void job_release(struct job *job)
{
	if (!job)
		return;
	free(job->path);
	free(job->name);
	server_release(&job->source);
	server_release(&job->target);
	struct migration *m = &job->mig;
	strlist_release(&m->accounts);
	free(m->accounts_file);
	strlist_release(&m->domains);
	strlist_release(&m->skip_status);
	for (size_t i = 0; i < m->nmaps; i++) {
		free(m->maps[i].from);
		free(m->maps[i].to);
	}
	free(m->maps);
	free(m->working_dir);
	free(m->success_dir);
	free(m->failed_dir);
	free(m->resolve);
	free(m->types);
	free(m->mail_transport);
	free(job->state_db);
	free(job->log_dir);
	free(job->log_level);
	free(job->until);
	for (size_t i = 0; i < job->nstages; i++) {
		free(job->stages[i].name);
		free(job->stages[i].type);
		cval_release(&job->stages[i].settings);
	}
	free(job->stages);
	strlist_release(&job->warnings);
	memset(job, 0, sizeof *job);
}

char *job_file_dir(const char *path)
{
	const char *sl = strrchr(path, '/');
	if (!sl)
		return xstrdup(".");
	if (sl == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(sl - path));
}

char *job_identity(const struct job *job)
{
	return xasprintf("%s|%s:%d|%s:%d", job->name ? job->name : "",
			 job->source.host ? job->source.host : "", job->source.port,
			 job->target.host ? job->target.host : "", job->target.port);
}

char *job_map_account(const struct job *job, const char *source)
{
	if (!source)
		return NULL;
	const char *at = strrchr(source, '@');
	if (!at)
		return xstrdup(source);
	for (size_t i = 0; i < job->mig.nmaps; i++)
		if (streq_ci(at + 1, job->mig.maps[i].from))
			return xasprintf("%.*s@%s", (int)(at - source), source, job->mig.maps[i].to);
	return xstrdup(source);
}
