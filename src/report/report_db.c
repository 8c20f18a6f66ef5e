/*
 * report_db.c - opening and closing the state DB for the read-side commands
 * (status, report, accounts, reset); see struct report_db in report.h.
 */
#include "report.h"
#include "state.h"

#include <stdlib.h>

int report_db_open(struct report_db *r, int flags)
{
	char *err = NULL, *ident = NULL;
	int ex = 0;
	if ((flags & STATE_WRITE) && r->have_job)
		ident = job_identity(&r->job);
	enum zmb_rc rc = state_open(r->path, ident, flags, &r->st, &err);
	if (rc == ZMB_OK && r->shard[0] && (rc = state_check_shard(r->st, r->shard)) != ZMB_OK) {
		err = xstrdup(state_errmsg(r->st));
		state_close(r->st);
	}
	if (rc) {
		fprintf(stderr, "zmbatch: %s\n", err ? err : zmb_rc_str(rc));
		ex = rc == ZMB_ECONFIG ? EXIT_CONFIG : EXIT_PARTIAL;
		r->st = NULL;
	}
	free(err);
	free(ident);
	return ex;
}

void report_db_close(struct report_db *r)
{
	state_close(r->st);
	r->st = NULL;
	if (r->have_job)
		job_release(&r->job);
	r->have_job = false;
}
