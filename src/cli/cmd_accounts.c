/*
 * cmd_accounts.c - `zmbatch accounts [--state-filter STATE]` (one line per
 * account: account, target, state, attempts, bytes, error; tab-separated)
 * and `zmbatch accounts --history ACCOUNT` (that account's events in order).
 * Read-only.  Exit codes: see report.h.
 */
#include "cli.h"
#include "report.h"
#include "state.h"
#include "zmb.h"

#include <stdlib.h>

int cmd_accounts(struct cli *cli)
{
	struct report_db r;
	char *err = NULL;
	int state = -1;
	int ex;

	if (cli->state_filter && cli->history) {
		fprintf(stderr, "zmbatch: accounts takes either --state-filter or --history, not both\n");
		return EXIT_USAGE;
	}
	if (cli->state_filter) {
		state = acct_state_parse(cli->state_filter);
		if (state < 0) {
			fprintf(stderr, "zmbatch: unknown account state '%s' (valid:", cli->state_filter);
			for (int i = 0; i < ACCT_NSTATES; i++)
				fprintf(stderr, " %s", acct_state_name((enum acct_state)i));
			fprintf(stderr, ")\n");
			return EXIT_USAGE;
		}
	}
	ex = report_db_load(cli, &r);
	if (ex)
		goto out;
	ex = report_db_open(&r, STATE_READONLY);
	if (ex)
		goto out;
	enum zmb_rc rc = cli->history ? report_history(state_db(r.st), cli->history, stdout, &err)
				      : report_accounts(state_db(r.st), state, stdout, &err);
	if (rc) {
		fprintf(stderr, "zmbatch: %s (state database '%s')\n", err ? err : "failed", r.path);
		ex = EXIT_PARTIAL;
	}
out:
	free(err);
	report_db_close(&r);
	return ex;
}
