/*
 * cmd_report.c - `zmbatch report [--format text|csv|json|prom|html] [--output FILE]`.
 * Read-only; --output is written atomically (temp file, fsync, rename).
 * Exit codes: see report.h.
 */
#include "cli.h"
#include "report.h"
#include "state.h"
#include "zmb.h"

#include <stdlib.h>
#include <string.h>

int cmd_report(struct cli *cli)
{
	struct report_db r;
	char *err = NULL;
	struct state *merged = NULL;
	long long dups = 0, untaken = 0;
	int fmt = report_format_parse(cli->format);
	int ex;
	memset(&r, 0, sizeof r);
	if (fmt < 0) {
		fprintf(stderr, "zmbatch: --format wants text, csv, json, prom or html, not '%s'\n", cli->format);
		return EXIT_USAGE;
	}
	if (cli->merge) {
		/* the shard DBs as one: every format reads it as one DB */
		if ((ex = cli_merge_open(cli, &merged, &dups, &untaken)))
			goto out;
		r.path = "the merged state DBs";
		r.st = merged;   /* report_db_close() closes it */
	} else {
		if ((ex = report_db_load(cli, &r)))
			goto out;
		if ((ex = report_db_open(&r, STATE_READONLY)))
			goto out;
	}
	enum zmb_rc rc;
	if (cli->output && *cli->output && !(cli->output[0] == '-' && !cli->output[1]))
		rc = report_render_file(state_db(r.st), r.job_name, (enum report_format)fmt,
					wall_now(), cli->output, &err);
	else
		rc = report_render(state_db(r.st), r.job_name, (enum report_format)fmt,
				   wall_now(), stdout, &err);
	if (rc) {
		fprintf(stderr, "zmbatch: report of %s: %s\n", r.path, err ? err : "failed");
		ex = EXIT_PARTIAL;
	} else if (dups || untaken) {
		/* named in the report; said again where a script looks */
		if (dups)
			fprintf(stderr, "zmbatch: --merge: %lld account(s) found in more than one state DB\n",
				dups);
		if (untaken)
			fprintf(stderr, "zmbatch: --merge: %lld account(s) listed by a shard are in no state DB "
				"(run the shard the report names again)\n", untaken);
		ex = EXIT_PARTIAL;
	}
out:
	free(err);
	report_db_close(&r);   /* closes the merged DB too */
	return ex;
}
