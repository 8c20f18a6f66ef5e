/*
 * cmd_reset.c - `zmbatch reset (ACCOUNT... | --failed)`: put accounts back
 * to pending with attempts cleared.  Takes the run lock (a run in progress
 * -> exit 75, nothing changed).  Named accounts are all checked first: if
 * one is not in the DB, each unknown one is named and nothing is changed
 * (exit 1).  Exit codes: see report.h.
 */
#include "cli.h"
#include "lock.h"
#include "report.h"
#include "state.h"
#include "zmb.h"

#include <stdlib.h>

int cmd_reset(struct cli *cli)
{
	struct report_db r;
	struct run_lock *lock = NULL;
	char *err = NULL;
	int total = 0, n;
	enum zmb_rc rc;
	int ex = report_db_load(cli, &r);
	if (ex)
		goto out;

	rc = lock_acquire(r.path, "reset", &lock, &err);
	if (rc) {
		fprintf(stderr, "zmbatch: %s\n", err ? err : zmb_rc_str(rc));
		ex = rc == ZMB_EBUSY ? EXIT_TEMPFAIL : EXIT_PARTIAL;
		goto out;
	}
	ex = report_db_open(&r, STATE_WRITE);
	if (ex)
		goto out;

	if (cli->failed) {
		rc = state_reset_failed(r.st, &total);
		if (rc) {
			fprintf(stderr, "zmbatch: cannot requeue failed accounts in '%s': %s\n", r.path,
				state_errmsg(r.st));
			ex = EXIT_PARTIAL;
			goto out;
		}
	} else {
		int unknown = 0;
		for (int i = 0; i < cli->nargs; i++) {
			struct account_row row = { 0 };
			rc = state_account_get(r.st, cli->args[i], &row);
			state_account_release(&row);
			if (rc == ZMB_ENOTFOUND) {
				fprintf(stderr, "zmbatch: no account '%s' in state database '%s'\n",
					cli->args[i], r.path);
				unknown++;
			} else if (rc) {
				fprintf(stderr, "zmbatch: cannot read account '%s' from '%s': %s\n",
					cli->args[i], r.path, state_errmsg(r.st));
				ex = EXIT_PARTIAL;
				goto out;
			}
		}
		if (unknown) {
			fprintf(stderr, "zmbatch: nothing reset\n");
			ex = EXIT_PARTIAL;
			goto out;
		}
		for (int i = 0; i < cli->nargs; i++) {
			n = 0;
			rc = state_reset_account(r.st, cli->args[i], &n);
			if (rc) {
				fprintf(stderr, "zmbatch: cannot reset account '%s' in '%s': %s\n",
					cli->args[i], r.path,
					rc == ZMB_ENOTFOUND ? "not found" : state_errmsg(r.st));
				ex = EXIT_PARTIAL;
				break;
			}
			total += n;
		}
	}
	printf("requeued %d account%s\n", total, total == 1 ? "" : "s");
out:
	free(err);
	report_db_close(&r);
	lock_release(lock);
	return ex;
}
