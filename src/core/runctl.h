/*
 * runctl.h - run control shared by the main thread and the workers.
 *
 * One `struct run_ctl` per run, owned by cmd_run (main thread).  Workers only
 * read it through the functions below (atomics), so no lock is needed.
 * The signal thread (src/cli/cmd_run.c) calls runctl_request_stop().
 */
#ifndef ZMB_RUNCTL_H
#define ZMB_RUNCTL_H

#include <stdatomic.h>
#include <stdbool.h>

enum run_stop { RUN_GO = 0, RUN_STOP_GRACEFUL = 1, RUN_STOP_ABORT = 2 };

struct run_ctl {
	atomic_int stop;            /* enum run_stop */
	_Atomic double stop_since;  /* mono time the graceful stop began */
	double deadline;            /* mono time of window end; 0 = none (set before threads) */
	double grace;               /* seconds in-flight work may go on after a stop */
	atomic_llong token_refreshes;
	atomic_llong retries;
	atomic_llong bytes;
	atomic_int progress_request; /* SIGUSR1: log a progress line */
	_Atomic(const char *) stop_reason; /* "end of window", "SIGTERM" (static strings) */
};

void runctl_init(struct run_ctl *c, double deadline, double grace);
/*
 * abort: stop in-flight transfers now.  Otherwise a graceful stop (no new
 * claims, in-flight work gets `grace`); a run already stopping stays as it
 * is.  Escalation policy (a second signal aborts) belongs to the caller.
 */
void runctl_request_stop(struct run_ctl *c, const char *reason, bool abort);
/* May a worker claim new work?  (no stop requested and window still open) */
bool runctl_may_claim(struct run_ctl *c);
/* Must in-flight transfers be aborted now? (abort requested or grace over) */
bool runctl_must_abort(struct run_ctl *c);
/* Has any stop (signal or window) happened? */
bool runctl_stopped(struct run_ctl *c);

#endif
