/*
 * runctl.c - run control (stop flag, window deadline, grace period).
 */
#include "runctl.h"
#include "zmb.h"

void runctl_init(struct run_ctl *c, double deadline, double grace)
{
	atomic_init(&c->stop, RUN_GO);
	atomic_init(&c->stop_since, 0.0);
	c->deadline = deadline;
	c->grace = grace;
	atomic_init(&c->token_refreshes, 0);
	atomic_init(&c->retries, 0);
	atomic_init(&c->bytes, 0);
	atomic_init(&c->progress_request, 0);
	atomic_init(&c->stop_reason, NULL);
}

void runctl_request_stop(struct run_ctl *c, const char *reason, bool abort)
{
	if (abort) {
		atomic_store(&c->stop, RUN_STOP_ABORT);
	} else {
		/* only a running run becomes graceful; never weaken or escalate */
		int expect = RUN_GO;
		if (atomic_load(&c->stop) == RUN_GO) {
			/* since before state: must_abort never sees a stale start time */
			atomic_store(&c->stop_since, mono_now());
			atomic_compare_exchange_strong(&c->stop, &expect, RUN_STOP_GRACEFUL);
		}
	}
	const char *none = NULL;
	atomic_compare_exchange_strong(&c->stop_reason, &none, reason);
}

static void check_window(struct run_ctl *c)
{
	if (c->deadline > 0 && atomic_load(&c->stop) == RUN_GO && mono_now() >= c->deadline) {
		int expect = RUN_GO;
		/* the start time first, as in runctl_request_stop: a worker that sees
		 * GRACEFUL must never read a start time of 0 (grace already over) */
		atomic_store(&c->stop_since, c->deadline);
		if (atomic_compare_exchange_strong(&c->stop, &expect, RUN_STOP_GRACEFUL)) {
			const char *none = NULL;
			atomic_compare_exchange_strong(&c->stop_reason, &none, "end of window");
		}
	}
}

bool runctl_may_claim(struct run_ctl *c)
{
	check_window(c);
	return atomic_load(&c->stop) == RUN_GO;
}

bool runctl_must_abort(struct run_ctl *c)
{
	check_window(c);
	int s = atomic_load(&c->stop);
	if (s == RUN_STOP_ABORT)
		return true;
	if (s == RUN_STOP_GRACEFUL && mono_now() - atomic_load(&c->stop_since) >= c->grace)
		return true;
	return false;
}

bool runctl_stopped(struct run_ctl *c)
{
	check_window(c);
	return atomic_load(&c->stop) != RUN_GO;
}
