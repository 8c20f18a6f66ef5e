/*
 * cmd_status.c - `zmbatch status`: one screen from the state DB, read-only
 * (WAL reader), safe while a run writes.  Exit codes: see report.h.
 */
#include "cli.h"
#include "report.h"
#include "state.h"
#include "zmb.h"

#include <stdlib.h>
#include <string.h>

int cmd_status(struct cli *cli)
{
	struct report_db r;
	char *err = NULL;
	if (cli->merge) {
		struct state *merged = NULL;
		long long dups = 0, untaken = 0;
		int ex = cli_merge_open(cli, &merged, &dups, &untaken);
		if (!ex && report_status(state_db(merged), NULL, "(merged)", wall_now(), stdout, &err)) {
			fprintf(stderr, "zmbatch: status of the merged state DBs: %s\n", err ? err : "failed");
			ex = EXIT_PARTIAL;
		}
		if (!ex && (dups || untaken))
			ex = EXIT_PARTIAL;
		state_close(merged);
		free(err);
		return ex;
	}
	int ex = report_db_load(cli, &r);
	if (ex)
		goto out;
	ex = report_db_open(&r, STATE_READONLY);
	if (ex)
		goto out;
	if (report_status(state_db(r.st), r.job_name, r.path, wall_now(), stdout, &err)) {
		fprintf(stderr, "zmbatch: status of '%s': %s\n", r.path, err ? err : "failed");
		ex = EXIT_PARTIAL;
	}
out:
	free(err);
	report_db_close(&r);
	return ex;
}
