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
	if (cli->merge)
		return cli_merge(cli, cli->format && !strcmp(cli->format, "json"));
	int fmt = report_format_parse(cli->format);
	int ex;
	if (fmt < 0) {
		fprintf(stderr, "zmbatch: --format wants text, csv, json, prom or html, not '%s'\n", cli->format);
		return EXIT_USAGE;
	}
	ex = report_db_load(cli, &r);
	if (ex)
		goto out;
	ex = report_db_open(&r, STATE_READONLY);
	if (ex)
		goto out;
	enum zmb_rc rc;
	if (cli->output && *cli->output && !(cli->output[0] == '-' && !cli->output[1]))
		rc = report_render_file(state_db(r.st), r.job_name, (enum report_format)fmt,
					wall_now(), cli->output, &err);
	else
		rc = report_render(state_db(r.st), r.job_name, (enum report_format)fmt,
				   wall_now(), stdout, &err);
	if (rc) {
		fprintf(stderr, "zmbatch: report of '%s': %s\n", r.path, err ? err : "failed");
		ex = EXIT_PARTIAL;
	}
out:
	free(err);
	report_db_close(&r);
	return ex;
}
