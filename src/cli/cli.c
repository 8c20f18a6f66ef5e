/*
 * cli.c - helpers shared by the commands.
 */
#include "cli.h"
#include "job.h"
#include "log.h"
#include "query_report.h"
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

/* The shards the merged DBs say they are: complete (every I of one N, once)?  Else a warning. */
struct shard_set {
	unsigned n;            /* N of the first shard DB; 0 none yet */
	bool mixed;            /* another N, a DB that is not a shard's, or one I twice */
	bool deals;            /* split by different rules: hash and server, or other server sets */
	char *first_by;        /* "hash"/"server" of the first DB, then its servers */
	char *first_servers;
	unsigned char *seen;   /* [n] */
	int dbs;
};

static void shard_seen(void *arg, const struct qr_merge_src *r)
{
	struct shard_set *s = arg;
	unsigned i = 0, n = 0;
	const char *by = r->shard_by ? r->shard_by : "hash", *servers = r->shard_servers ? r->shard_servers : "";
	if (!s->first_by) {
		s->first_by = xstrdup(by);
		s->first_servers = xstrdup(servers);
	} else if (strcmp(by, s->first_by) || strcmp(servers, s->first_servers)) {
		s->deals = true;
	}
	s->dbs++;
	if (!r->shard || sscanf(r->shard, "%u/%u", &i, &n) != 2 || n == 0 || i >= n || n > 4096) {
		s->mixed = true;
		return;
	}
	if (!s->n) {
		s->n = n;
		s->seen = xcalloc(n, 1);
	}
	if (n != s->n || s->seen[i]++)
		s->mixed = true;
}

static void merge_warn_shards(struct state *st)
{
	struct shard_set s = { 0, false, false, NULL, NULL, NULL, 0 };
	char *err = NULL;
	if (qr_merge_sources(state_db(st), shard_seen, &s, &err) == ZMB_OK) {
		struct buf missing = BUF_INIT;
		for (unsigned i = 0; s.n && i < s.n; i++)
			if (!s.seen[i])
				buf_addf(&missing, "%s%u/%u", missing.len ? ", " : "", i, s.n);
		if (s.mixed)
			fprintf(stderr, "zmbatch: warning: --merge: the %d DBs are not the shards of one "
				"--shard I/N split, each once (see the table): the report may not be the whole "
				"job\n", s.dbs);
		else if (s.deals)
			fprintf(stderr, "zmbatch: warning: --merge: the shard DBs were not split by one rule "
				"(--shard-by hash and server, or by server over different server sets): an "
				"account may be in two of them, or in none\n");
		else if (missing.len)
			fprintf(stderr, "zmbatch: warning: --merge: shard(s) %s not given: the report is "
				"not the whole job\n", missing.s);
		buf_release(&missing);
	}
	free(s.seen);
	free(s.first_by);
	free(s.first_servers);
	free(err);
}

int cli_merge_open(struct cli *cli, struct state **st, long long *dups, long long *untaken)
{
	char *err = NULL;
	struct stat *sb = xcalloc((size_t)cli->nargs, sizeof *sb), out;
	int ex = 0;
	*st = NULL;
	*dups = 0;
	*untaken = 0;
	for (int i = 0; i < cli->nargs && !ex; i++) {
		if (cli->args[i][0] == '-') {
			fprintf(stderr, "zmbatch: --merge: '%s' after the DBs: options go first "
				"(zmbatch %s [OPTIONS] --merge DB...)\n", cli->args[i], cli->cmd);
			ex = EXIT_USAGE;
		} else if (stat(cli->args[i], &sb[i]) != 0) {
			fprintf(stderr, "zmbatch: --merge: no state database at '%s': %s\n", cli->args[i],
				strerror(errno));
			ex = EXIT_PARTIAL;
		}
		for (int k = 0; k < i && !ex; k++)
			if (sb[k].st_dev == sb[i].st_dev && sb[k].st_ino == sb[i].st_ino) {
				fprintf(stderr, "zmbatch: --merge: '%s' and '%s' are the same file: give each "
					"shard DB once\n", cli->args[k], cli->args[i]);
				ex = EXIT_USAGE;
			}
		/* --output over a DB being read would destroy it */
		if (!ex && cli->output && stat(cli->output, &out) == 0 && out.st_dev == sb[i].st_dev &&
		    out.st_ino == sb[i].st_ino) {
			fprintf(stderr, "zmbatch: --merge: --output %s is one of the DBs to merge\n", cli->output);
			ex = EXIT_USAGE;
		}
	}
	free(sb);
	if (ex)
		return ex;
	enum zmb_rc rc = state_merge_open((const char *const *)cli->args, (size_t)cli->nargs, st, &err);
	if (rc == ZMB_OK && (qr_merge_dup_count(state_db(*st), dups, &err) != ZMB_OK ||
			     qr_merge_untaken_count(state_db(*st), untaken, &err) != ZMB_OK))
		rc = ZMB_ESTATE;
	if (rc) {
		fprintf(stderr, "zmbatch: --merge: %s\n", err ? err : zmb_rc_str(rc));
		free(err);
		state_close(*st);
		*st = NULL;
		return rc == ZMB_ECONFIG ? EXIT_CONFIG : EXIT_PARTIAL;
	}
	merge_warn_shards(*st);
	return 0;
}
