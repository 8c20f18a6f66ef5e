/*
 * cli.c - helpers shared by the commands.
 */
#include "cli.h"
#include "job.h"
#include "log.h"
#include "zmb.h"

#include <stdlib.h>
#include <string.h>

int cli_load_job(struct cli *cli, bool resolve_secrets, struct job *job)
{
	char *err = NULL;
	const char *path = cli->config ? cli->config : "zmbatch.cfg";

	enum zmb_rc rc = conf_load(path, resolve_secrets, job, &err);
	if (rc) {
		fprintf(stderr, "zmbatch: %s\n", err ? err : zmb_rc_str(rc));
		free(err);
		return EXIT_CONFIG;
	}
	/* --ca-file / --insecure apply to every HTTPS server of the job */
	struct server *srv[2] = { &job->source, &job->target };
	for (int i = 0; i < 2; i++) {
		if (cli->ca_file) {
			free(srv[i]->ca_file);
			srv[i]->ca_file = xstrdup(cli->ca_file);
		}
		if (cli->insecure)
			srv[i]->tls_verify = false;
	}
	if (cli->threads > 0)
		job->mig.threads = cli->threads;
	if (cli->max_runtime >= 0)
		job->max_runtime = cli->max_runtime;
	if (cli->until) {
		free(job->until);
		job->until = xstrdup(cli->until);
	}
	return 0;
}

const char *cli_state_path(const struct cli *cli, const struct job *job)
{
	return cli->state ? cli->state : job->state_db;
}
