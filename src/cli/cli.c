/*
 * cli.c - helpers shared by the commands.
 */
#include "cli.h"
#include "job.h"
#include "log.h"
#include "report.h"
#include "state.h"
#include "zmb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cli_print_error(const char *msg)
{
	for (const char *p = msg ? msg : "error"; p;) {
		const char *nl = strchr(p, '\n');
		fprintf(stderr, "zmbatch: %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
		p = nl ? nl + 1 : NULL;
	}
}

int cli_load_job(struct cli *cli, bool resolve_secrets, struct job *job)
{
	char *err = NULL;
	const char *path = cli->config ? cli->config : "zmbatch.cfg";

	enum zmb_rc rc = conf_load(path, resolve_secrets, job, &err);
	if (rc) {
		cli_print_error(err ? err : zmb_rc_str(rc));   /* every error and warning, a line each */
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

const char *cli_state_path(struct cli *cli, const struct job *job)
{
	if (cli->state || !job->state_db || cli->shard.count == 0)
		return cli->state ? cli->state : job->state_db;
	free(cli->state_shard);
	cli->state_shard = shard_db_path(job->state_db, &cli->shard);
	return cli->state_shard;
}

int report_db_load(struct cli *cli, struct report_db *r)
{
	struct stat sb;
	memset(r, 0, sizeof *r);
	if (cli->config || !cli->state) {
		int ex = cli_load_job(cli, false, &r->job);
		if (ex)
			return ex;
		r->have_job = true;
		r->job_name = r->job.name;
	}
	r->path = r->have_job ? cli_state_path(cli, &r->job) : cli->state;
	shard_label(&cli->shard, r->shard, sizeof r->shard);
	if (!r->path || !*r->path) {
		fprintf(stderr, "zmbatch: no state database configured (state.db in the job, or --state)\n");
		return EXIT_CONFIG;
	}
	if (stat(r->path, &sb) != 0) {
		if (errno == ENOENT)
			fprintf(stderr, "zmbatch: no state database at '%s': nothing has run yet\n", r->path);
		else
			fprintf(stderr, "zmbatch: cannot reach state database '%s': %s\n", r->path,
				strerror(errno));
		return EXIT_PARTIAL;
	}
	return 0;
}

int cli_merge(struct cli *cli, bool json)
{
	struct merge_db *dbs = xcalloc((size_t)cli->nargs, sizeof *dbs);
	int ex = 0, dups = 0;
	char *err = NULL, *first_ident = NULL;
	const char *first_path = NULL;
	for (int i = 0; i < cli->nargs && !ex; i++) {
		char *e = NULL, *shard = NULL;
		dbs[i].path = cli->args[i];
		enum zmb_rc rc = state_open(dbs[i].path, NULL, STATE_READONLY, &dbs[i].st, &e);
		if (rc) {
			fprintf(stderr, "zmbatch: %s\n", e ? e : zmb_rc_str(rc));
			ex = rc == ZMB_ECONFIG ? EXIT_CONFIG : EXIT_PARTIAL;
		} else {
			char *ident = NULL;
			if (state_meta_get(dbs[i].st, "shard", &shard) == ZMB_OK)
				snprintf(dbs[i].shard, sizeof dbs[i].shard, "%s", shard);
			/* the DBs of one job only */
			if (state_meta_get(dbs[i].st, "job_identity", &ident) == ZMB_OK) {
				if (!first_ident) {
					first_ident = ident;
					first_path = dbs[i].path;
					ident = NULL;
				} else if (strcmp(ident, first_ident) != 0) {
					fprintf(stderr, "zmbatch: --merge: %s belongs to job '%s', %s to job "
						"'%s': only the shard DBs of one job merge\n", dbs[i].path,
						ident, first_path, first_ident);
					ex = EXIT_CONFIG;
				}
			}
			free(ident);
		}
		free(shard);
		free(e);
	}
	if (!ex && report_merge(dbs, (size_t)cli->nargs, json, stdout, &dups, &err)) {
		fprintf(stderr, "zmbatch: merge: %s\n", err ? err : "failed");
		ex = EXIT_PARTIAL;
	}
	if (!ex && dups)
		ex = EXIT_PARTIAL;
	for (int i = 0; i < cli->nargs; i++)
		state_close(dbs[i].st);
	free(dbs);
	free(err);
	free(first_ident);
	return ex;
}
