/*
 * throttle.c - one server's request rate, requests in flight, pauses after
 * throttled answers and their run-wide bound (throttle.h).
 */
#include "throttle.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_BASE 1.0      /* s: the DoSFilter's window; a quiet second clears its ring */
#define BACKOFF_MAX 60.0      /* s: the backoff doubles up to this (Retry-After may ask more) */
#define BACKOFF_JITTER 0.25   /* a pause is lengthened by up to this fraction, never shortened */
#define GROW_AFTER 10         /* answers in a row that are no throttle before the limits grow */
#define RATE_FLOOR 1.0        /* requests/s the rate never shrinks below (or max_rps if lower) */
#define POLL_S 0.25           /* longest condvar wait: stop requests are noticed this fast */

struct throttle {
	pthread_mutex_t mu;
	pthread_cond_t cv;          /* CLOCK_MONOTONIC: a slot was freed */
	struct run_ctl *ctl;
	char *label;
	char *role;
	double max_rps;             /* configured cap, 0 = none */
	int ceiling;
	double max_wait;            /* 0 = no bound */
	/* under mu */
	double rate;                /* current cap (0 when max_rps is 0) */
	int limit;                  /* current requests in flight allowed */
	int inflight;
	double next_at;             /* monotonic time of the next grant the rate allows */
	double pause_until;         /* monotonic; nothing is granted before */
	double decreased_at;        /* last halving; answers to requests granted before do not halve */
	int ok_run;                 /* answers in a row that were no throttle */
	long long requests, throttled;
	double waited;              /* pauses imposed, overlaps once */
	long last_status;
	char *exhausted;            /* why it gave up, or NULL */
};

struct throttle *throttle_new(const struct throttle_conf *c, struct run_ctl *ctl)
{
	struct throttle *t = xcalloc(1, sizeof *t);
	pthread_condattr_t ca;
	pthread_mutex_init(&t->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cv, &ca);
	pthread_condattr_destroy(&ca);
	t->ctl = ctl;
	t->label = xstrdup(c->label ? c->label : "server");
	t->role = xstrdup(c->role ? c->role : "server");
	t->max_rps = c->max_rps > 0 ? c->max_rps : 0;
	t->ceiling = c->ceiling > 0 ? c->ceiling : 1;
	t->max_wait = c->max_wait > 0 ? c->max_wait : 0;
	t->rate = t->max_rps;
	t->limit = t->ceiling;
	t->decreased_at = -1;
	return t;
}

void throttle_free(struct throttle *t)
{
	if (!t)
		return;
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t->label);
	free(t->role);
	free(t->exhausted);
	free(t);
}

/* Wait on the condvar for at most s seconds (mu held). */
static void cv_wait(struct throttle *t, double s)
{
	if (s > POLL_S)
		s = POLL_S;
	if (s < 0.001)
		s = 0.001;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long long ns = ts.tv_nsec + (long long)(s * 1e9);
	ts.tv_sec += (time_t)(ns / 1000000000LL);
	ts.tv_nsec = (long)(ns % 1000000000LL);
	pthread_cond_timedwait(&t->cv, &t->mu, &ts);
}

enum zmb_rc throttle_acquire(struct throttle *t, struct throttle_ticket *tk, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	pthread_mutex_lock(&t->mu);
	for (;;) {
		if (t->exhausted) {
			*err = xstrdup(t->exhausted);
			rc = ZMB_EBUSY;
			break;
		}
		if (t->ctl && runctl_must_abort(t->ctl)) {
			*err = xasprintf("%s: canceled (stop requested) while waiting to send a request",
					 t->label);
			rc = ZMB_ECANCELED;
			break;
		}
		double now = mono_now();
		if (now < t->pause_until) {
			cv_wait(t, t->pause_until - now);
			continue;
		}
		if (t->inflight >= t->limit) {
			cv_wait(t, POLL_S);
			continue;
		}
		if (t->rate > 0 && now < t->next_at) {
			cv_wait(t, t->next_at - now);
			continue;
		}
		if (t->rate > 0)
			t->next_at = now + 1.0 / t->rate;
		t->inflight++;
		tk->granted_at = now;
		tk->held = true;
		break;
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

/* The pause a throttled answer asks for: backoff or Retry-After, plus jitter. */
static double pause_for(double retry_after, int streak)
{
	double d = BACKOFF_BASE;
	for (int i = 1; i < streak && d < BACKOFF_MAX; i++)
		d *= 2;
	if (d > BACKOFF_MAX)
		d = BACKOFF_MAX;
	if (retry_after > d)
		d = retry_after;
	double j = (double)(rand64() % 1000) / 1000.0;
	return d * (1.0 + BACKOFF_JITTER * j);
}

/* The pause would pass the bound: give up (mu held). */
static void exhaust(struct throttle *t, long status, double more)
{
	t->exhausted = xasprintf(
		"%s: throttled by the server (HTTP %ld%s) for %.0f s in all this run, and it asks "
		"for %.0f s more: that passes migration.max_throttle_wait (%.0f s); stopping. Lower "
		"%s.max_requests_per_second (%g/s now), or on the server add this host to "
		"zimbraHttpThrottleSafeIPs or raise zimbraHttpDosFilterMaxRequestsPerSec%s",
		t->label, status, status == 429 ? ", DoS filter" : "", t->waited, more, t->max_wait,
		t->role, t->max_rps,
		status == 503 ? "; a 503 on every request may also be the invalid-login filter "
				"(too many failed logins from this address: blocked for 15 min)" : "");
}

void throttle_release(struct throttle *t, struct throttle_ticket *tk, enum throttle_answer a,
		      long status, double retry_after, int streak)
{
	if (!tk || !tk->held)
		return;
	pthread_mutex_lock(&t->mu);
	tk->held = false;
	t->inflight--;
	double now = mono_now();
	if (a == THROTTLE_OK) {
		t->requests++;
		if (++t->ok_run >= GROW_AFTER) {
			t->ok_run = 0;
			if (t->limit < t->ceiling)
				t->limit++;
			if (t->max_rps > 0)
				t->rate = t->rate + 1 < t->max_rps ? t->rate + 1 : t->max_rps;
		}
	} else if (a == THROTTLE_BUSY) {
		t->requests++;
		t->throttled++;
		t->ok_run = 0;
		t->last_status = status;
		if (tk->granted_at >= t->decreased_at) {
			/* one halving per burst: the requests already in flight were sent
			 * at the old limits */
			t->decreased_at = now;
			t->limit = t->limit / 2 > 1 ? t->limit / 2 : 1;
			if (t->max_rps > 0) {
				double floor = t->max_rps < RATE_FLOOR ? t->max_rps : RATE_FLOOR;
				t->rate = t->rate / 2 > floor ? t->rate / 2 : floor;
			}
		}
		double until = now + pause_for(retry_after, streak > 0 ? streak : 1);
		double from = t->pause_until > now ? t->pause_until : now;
		if (until > from && !t->exhausted) {
			if (t->max_wait > 0 && t->waited + (until - from) > t->max_wait) {
				exhaust(t, status, until - from);
			} else {
				t->waited += until - from;
				t->pause_until = until;
			}
		}
	}
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

void throttle_stats(struct throttle *t, struct throttle_stats *s)
{
	pthread_mutex_lock(&t->mu);
	s->requests = t->requests;
	s->throttled = t->throttled;
	s->wait_seconds = t->waited;
	s->rate_limit = t->rate;
	s->concurrency_limit = t->limit;
	s->exhausted = t->exhausted != NULL;
	pthread_mutex_unlock(&t->mu);
}

char *throttle_exhausted(struct throttle *t)
{
	pthread_mutex_lock(&t->mu);
	char *m = xstrdup(t->exhausted);
	pthread_mutex_unlock(&t->mu);
	return m;
}
