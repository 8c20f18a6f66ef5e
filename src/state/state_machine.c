/*
 * state_machine.c - the names of the account and stage states and the
 * account transition table (see state.h for the machine as a picture).
 * Pure data and lookups: no SQL, any thread.
 */
#include "state.h"

#include <string.h>

static const char *const acct_names[ACCT_NSTATES] = {
	"pending", "exporting", "exported", "importing", "done", "failed", "skipped",
};

const char *acct_state_name(enum acct_state s)
{
	return (unsigned)s < ACCT_NSTATES ? acct_names[s] : "?";
}

int acct_state_parse(const char *s)
{
	for (int i = 0; s && i < ACCT_NSTATES; i++)
		if (strcmp(s, acct_names[i]) == 0)
			return i;
	return -1;
}

/*
 * legal[from][to].  Claims are pending->exporting|importing and
 * exported->importing; the worker then moves its account on:
 *   exporting -> exported (archive complete), importing (archive complete
 *                and the same worker imports it at once: spool_path is set
 *                in the same transaction, so recovery finds the archive),
 *                done (204: nothing to move),
 *                pending (temporary error), failed
 *   exported  -> importing (same worker goes on), pending (archive lost)
 *   importing -> done, exported (temporary error, archive kept),
 *                pending (temporary error, stream mode), failed
 *   pending   -> skipped (policy)
 *   done/failed/skipped -> pending (reset, --retry-failed, --delta)
 */
static const bool legal[ACCT_NSTATES][ACCT_NSTATES] = {
	[ACCT_PENDING] = { [ACCT_EXPORTING] = true, [ACCT_IMPORTING] = true,
			   [ACCT_SKIPPED] = true },
	[ACCT_EXPORTING] = { [ACCT_EXPORTED] = true, [ACCT_IMPORTING] = true, [ACCT_DONE] = true,
			     [ACCT_PENDING] = true, [ACCT_FAILED] = true },
	[ACCT_EXPORTED] = { [ACCT_IMPORTING] = true, [ACCT_PENDING] = true },
	[ACCT_IMPORTING] = { [ACCT_DONE] = true, [ACCT_EXPORTED] = true,
			     [ACCT_PENDING] = true, [ACCT_FAILED] = true },
	[ACCT_DONE] = { [ACCT_PENDING] = true },
	[ACCT_FAILED] = { [ACCT_PENDING] = true },
	[ACCT_SKIPPED] = { [ACCT_PENDING] = true },
};

bool acct_transition_ok(enum acct_state from, enum acct_state to)
{
	if ((unsigned)from >= ACCT_NSTATES || (unsigned)to >= ACCT_NSTATES)
		return false;
	return legal[from][to];
}

bool acct_in_flight(enum acct_state s)
{
	return s == ACCT_EXPORTING || s == ACCT_IMPORTING;
}

static const char *const stage_names[STAGE_NSTATES] = { "pending", "running", "done", "failed" };

const char *stage_state_name(enum stage_state s)
{
	return (unsigned)s < STAGE_NSTATES ? stage_names[s] : "?";
}

int stage_state_parse(const char *s)
{
	for (int i = 0; s && i < STAGE_NSTATES; i++)
		if (strcmp(s, stage_names[i]) == 0)
			return i;
	return -1;
}
