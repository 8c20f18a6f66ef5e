/*
 * throttle.h - how fast one server may be asked: a request-rate cap and a
 * limit on requests in flight, shared by every thread that talks to the
 * server, both shrunk while the server throttles (HTTP 429 / 503) and grown
 * back after successes (AIMD); a pause of the whole server after a
 * throttled answer (backoff, or the answer's Retry-After); and the
 * run-wide bound on that pausing.
 *
 * Why (research13/facts.md section 1): Jetty's DoSFilter in front of
 * Zimbra's and Carbonio's /service answers 429 with "DoSFilter: unavailable"
 * and no Retry-After to a client with more than maxRequestsPerSec requests
 * in any sliding second (its RateTracker keeps the last N request times,
 * rejected ones included); Zimbra's default is 30/s, Carbonio's 100/s.  A
 * client that keeps quiet for one second is accepted again.  503 comes from
 * the invalid-login filter (an address with too many failed logins, for 15
 * minutes), the QoS filter, or a proxy in front, which may send Retry-After.
 *
 * The rules, per server:
 *   rate         max_rps (0 = no cap): grants are spaced at least 1/rate
 *                apart (a token bucket one token deep), so any sliding
 *                second holds at most rate + 1 requests: 25/s stays under
 *                Zimbra's 30.
 *   concurrency  at most `limit` requests in flight (ceiling .. 1).
 *   throttled    an answer 429 or 503 pauses every thread until
 *                  now + max(Retry-After, 1 s x 2^(streak - 1) up to 60 s)
 *                plus up to 25 % jitter (never less), where streak counts
 *                the throttled answers in a row to that one request (1 s:
 *                the DoSFilter's window); and, if the request was granted
 *                after the last decrease, both limits are halved (floors: 1
 *                request, 1 request/s or max_rps if lower), so that a burst of answers to
 *                requests already in flight halves them once.
 *   success      any other answer: after GROW_AFTER (10) in a row, limit + 1
 *                and rate + 1/s, up to ceiling and max_rps.
 *   bound        the pauses, summed over the run (overlapping pauses
 *                counted once), may not pass max_wait (0 = no bound): the
 *                answer whose pause would pass it exhausts the throttle, and
 *                every throttle_acquire from then on fails with ZMB_EBUSY
 *                and a text that names the server.
 * A throttled request is not a failed attempt of its account: the caller
 * sends it again after throttle_acquire (rest.c, soap.c through http.h).
 *
 * Threads and ownership: one struct throttle per server and run, made by the
 * main thread before any worker starts (the driver's end of a run,
 * src/xfer/driver_zimbra.c) and freed after every thread using it has been
 * joined.  Meanwhile any thread may call acquire, release and the stats
 * (one mutex and a condition variable inside; nothing sleeps holding the
 * mutex).  A ticket belongs to the thread that acquired it.  Strings in the
 * conf are copied; ctl (may be NULL) must outlive the throttle.
 */
#ifndef ZMB_THROTTLE_H
#define ZMB_THROTTLE_H

#include "runctl.h"
#include "zmb.h"

struct throttle;

struct throttle_conf {
	const char *label;      /* "source zcs1:7071", for messages */
	const char *role;       /* "source" / "target": the job group named in advice */
	double max_rps;         /* requests per second, all threads; 0 = no cap */
	int ceiling;            /* most requests in flight (< 1: 1) */
	double max_wait;        /* seconds of pauses the run accepts; 0 = no bound */
};

/* Never NULL. */
struct throttle *throttle_new(const struct throttle_conf *c, struct run_ctl *ctl);
void throttle_free(struct throttle *t);   /* NULL-safe; no thread may use it */

/* Leave to send one request; filled by throttle_acquire, ended by throttle_release. */
struct throttle_ticket {
	double granted_at;      /* monotonic */
	bool held;
};

/*
 * Wait until one more request may go to the server: the pause is over, a
 * slot is free, and the rate allows it.  ZMB_OK with *tk held; ZMB_EBUSY
 * when the bound is exhausted, ZMB_ECANCELED when runctl_must_abort(ctl);
 * both with *err (caller frees).
 */
enum zmb_rc throttle_acquire(struct throttle *t, struct throttle_ticket *tk, char **err);

enum throttle_answer {
	THROTTLE_NONE,          /* no answer (transport error, or never sent) */
	THROTTLE_OK,            /* an answer that is not a throttle, whatever its status */
	THROTTLE_BUSY,          /* 429 or 503 */
};
/*
 * The request of tk has ended (NULL-safe on a ticket not held).  For
 * THROTTLE_BUSY: status (429/503), retry_after (seconds from the answer's
 * Retry-After, 0 = none) and streak (throttled answers in a row to this
 * request, >= 1) set the pause.
 */
void throttle_release(struct throttle *t, struct throttle_ticket *tk, enum throttle_answer a,
		      long status, double retry_after, int streak);

struct throttle_stats {
	long long requests;     /* answers received */
	long long throttled;    /* of them 429 or 503 */
	double wait_seconds;    /* pauses imposed, overlaps counted once */
	double rate_limit;      /* current requests/s; 0 = no cap */
	int concurrency_limit;  /* current requests in flight */
	bool exhausted;         /* the bound was passed */
};
void throttle_stats(struct throttle *t, struct throttle_stats *s);
/* Why the throttle gave up (caller frees), NULL while it has not. */
char *throttle_exhausted(struct throttle *t);

#endif
