/*
 * conf.c - job file loading (placeholder, being implemented).
 */
#include "job.h"

#include <stdlib.h>
#include <string.h>

enum zmb_rc conf_load(const char *path, bool resolve_secrets, struct job *job, char **err)
{
	(void)resolve_secrets;
	memset(job, 0, sizeof *job);
	*err = xasprintf("%s: job file reader not implemented yet", path);
	return ZMB_ECONFIG;
}

bool conf_is_legacy(const char *text)
{
	(void)text;
	return false;
}

enum zmb_rc conf_legacy_parse(const char *path, const char *text, struct job *job, char **err)
{
	(void)text; (void)job;
	*err = xasprintf("%s: legacy reader not implemented yet", path);
	return ZMB_ECONFIG;
}

enum zmb_rc conf_finish(struct job *job, bool resolve_secrets, char **err)
{
	(void)job; (void)resolve_secrets; (void)err;
	return ZMB_OK;
}

void conf_write_native(const struct job *job, FILE *out)
{
	(void)job; (void)out;
}

char *job_identity(const struct job *job)
{
	return xasprintf("%s|%s:%d|%s:%d", job->name ? job->name : "",
			 job->source.host ? job->source.host : "", job->source.port,
			 job->target.host ? job->target.host : "", job->target.port);
}

void job_release(struct job *job)
{
	(void)job;
}

char *job_map_account(const struct job *job, const char *source)
{
	(void)job;
	return xstrdup(source);
}
