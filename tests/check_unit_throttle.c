/*
 * check_unit_throttle.c - one server's pace (src/zimbra/throttle.h): the
 * rate cap, the limit on requests in flight and its AIMD, the server-wide
 * pause after a throttled answer (backoff, Retry-After in seconds or as an
 * HTTP-date, read by http.c), the run-wide bound and its message; and a
 * REST export through the gate (rest.c) against a canned server: a 429 is
 * sent again, a 503's Retry-After is waited for, the bound ends it.
 * Links core, conf and zimbra only.
 */
#define _GNU_SOURCE
#include "canned.h"
#include "testutil.h"

#include "http.h"
#include "rest.h"
#include "throttle.h"
#include "token.h"
#include "zmb.h"

#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct throttle *mk(double rps, int ceiling, double max_wait)
{
	struct throttle_conf c = { .label = "source zcs1:7071", .role = "source", .max_rps = rps,
				   .ceiling = ceiling, .max_wait = max_wait };
	return throttle_new(&c, NULL);
}

static void stats(struct throttle *t, struct throttle_stats *s)
{
	throttle_stats(t, s);
}

/* Grants are spaced 1/rate apart: n grants take at least (n-1)/rate. */
START_TEST(test_rate_spacing)
{
	struct throttle *t = mk(20, 4, 0);
	double t0 = mono_now(), prev = 0, min_gap = 1e9;
	for (int i = 0; i < 8; i++) {
		struct throttle_ticket tk = { 0 };
		char *err = NULL;
		ck_assert_int_eq(throttle_acquire(t, &tk, &err), ZMB_OK);
		if (i > 0 && tk.granted_at - prev < min_gap)
			min_gap = tk.granted_at - prev;
		prev = tk.granted_at;
		throttle_release(t, &tk, THROTTLE_OK, 200, 0, 0);
	}
	double el = mono_now() - t0;
	ck_assert_msg(min_gap >= 0.049, "two grants %.3f s apart at 20/s", min_gap);
	ck_assert_msg(el >= 0.34, "8 grants at 20/s in %.3f s", el);
	struct throttle_stats s;
	stats(t, &s);
	ck_assert_int_eq(s.requests, 8);
	ck_assert_int_eq(s.throttled, 0);
	throttle_free(t);
}
END_TEST

/* Halved once per burst of answers to requests already in flight, +1 after 10 successes. */
START_TEST(test_aimd)
{
	struct throttle *t = mk(200, 8, 0);
	struct throttle_ticket a = { 0 }, b = { 0 }, c = { 0 };
	char *err = NULL;
	ck_assert_int_eq(throttle_acquire(t, &a, &err), ZMB_OK);
	ck_assert_int_eq(throttle_acquire(t, &b, &err), ZMB_OK);
	throttle_release(t, &a, THROTTLE_BUSY, 429, 0, 1);
	throttle_release(t, &b, THROTTLE_BUSY, 429, 0, 1);
	struct throttle_stats s;
	stats(t, &s);
	ck_assert_int_eq(s.concurrency_limit, 4);
	ck_assert(s.rate_limit > 99.9 && s.rate_limit < 100.1);
	ck_assert_int_eq(s.throttled, 2);
	ck_assert_msg(s.wait_seconds >= 1.0 && s.wait_seconds <= 1.26, "paused %.3f s", s.wait_seconds);
	/* the pause holds every thread: the next grant comes after it */
	double t0 = mono_now();
	ck_assert_int_eq(throttle_acquire(t, &c, &err), ZMB_OK);
	ck_assert_msg(mono_now() - t0 >= 0.9, "granted %.3f s after a 429", mono_now() - t0);
	/* a request granted after the halving is throttled again: halved again */
	throttle_release(t, &c, THROTTLE_BUSY, 429, 0, 1);
	stats(t, &s);
	ck_assert_int_eq(s.concurrency_limit, 2);
	ck_assert(s.rate_limit > 49.9 && s.rate_limit < 50.1);
	/* releases without an answer change nothing */
	struct throttle_ticket n = { 0 };
	ck_assert_int_eq(throttle_acquire(t, &n, &err), ZMB_OK);
	throttle_release(t, &n, THROTTLE_NONE, 0, 0, 0);
	stats(t, &s);
	ck_assert_int_eq(s.requests, 3);
	/* ten answers in a row that are no throttle (any status): + 1 each */
	for (int i = 0; i < 20; i++) {
		struct throttle_ticket k = { 0 };
		ck_assert_int_eq(throttle_acquire(t, &k, &err), ZMB_OK);
		throttle_release(t, &k, THROTTLE_OK, i % 2 ? 200 : 404, 0, 0);
	}
	stats(t, &s);
	ck_assert_int_eq(s.concurrency_limit, 4);
	ck_assert(s.rate_limit > 51.9 && s.rate_limit < 52.1);
	ck_assert_int_eq(s.requests, 23);
	throttle_free(t);
}
END_TEST

/* The floors: 1 request in flight, 1 request/s (a lower cap stays); no cap stays no cap. */
START_TEST(test_floors)
{
	static const double caps[] = { 0, 0.5, 1.5 }, want[] = { 0, 0.5, 1.0 };
	for (int c = 0; c < 3; c++) {
		struct throttle *t = mk(caps[c], 1, 0);
		char *err = NULL;
		struct throttle_ticket k = { 0 };
		ck_assert_int_eq(throttle_acquire(t, &k, &err), ZMB_OK);
		throttle_release(t, &k, THROTTLE_BUSY, 503, 0, 1);
		struct throttle_stats s;
		stats(t, &s);
		ck_assert_int_eq(s.concurrency_limit, 1);
		ck_assert_msg(s.rate_limit == want[c], "cap %g: rate %g after a halving", caps[c], s.rate_limit);
		throttle_free(t);
	}
}
END_TEST

struct holder {
	struct throttle *t;
	atomic_int in, max_in;
};

static void *hold(void *arg)
{
	struct holder *h = arg;
	for (int i = 0; i < 5; i++) {
		struct throttle_ticket k = { 0 };
		char *err = NULL;
		ck_assert_int_eq(throttle_acquire(h->t, &k, &err), ZMB_OK);
		int now = atomic_fetch_add(&h->in, 1) + 1;
		int m = atomic_load(&h->max_in);
		while (now > m && !atomic_compare_exchange_weak(&h->max_in, &m, now))
			;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		atomic_fetch_sub(&h->in, 1);
		throttle_release(h->t, &k, THROTTLE_OK, 200, 0, 0);
	}
	return NULL;
}

/* At most `limit` requests in flight, whatever the number of threads. */
START_TEST(test_concurrency_limit)
{
	struct holder h = { .t = mk(0, 3, 0) };
	atomic_init(&h.in, 0);
	atomic_init(&h.max_in, 0);
	pthread_t th[6];
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, hold, &h), 0);
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_le(atomic_load(&h.max_in), 3);
	ck_assert_int_ge(atomic_load(&h.max_in), 2);
	throttle_free(h.t);
}
END_TEST

/* A pause that would pass max_wait ends it: every acquire fails, naming the server. */
START_TEST(test_bound)
{
	struct throttle *t = mk(0, 2, 2.0);
	char *err = NULL;
	struct throttle_ticket k = { 0 };
	ck_assert_int_eq(throttle_acquire(t, &k, &err), ZMB_OK);
	throttle_release(t, &k, THROTTLE_BUSY, 429, 0, 1);    /* 1..1.25 s: within */
	ck_assert_ptr_null(throttle_exhausted(t));
	ck_assert_int_eq(throttle_acquire(t, &k, &err), ZMB_OK);
	throttle_release(t, &k, THROTTLE_BUSY, 429, 0, 2);    /* 2..2.5 s more: past 2 s */
	char *why = throttle_exhausted(t);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(tu_contains(why, "source zcs1:7071: throttled by the server (HTTP 429, DoS filter)") &&
		      tu_contains(why, "migration.max_throttle_wait (2 s)") &&
		      tu_contains(why, "source.max_requests_per_second"), "%s", why);
	double t0 = mono_now();
	ck_assert_int_eq(throttle_acquire(t, &k, &err), ZMB_EBUSY);
	ck_assert_msg(mono_now() - t0 < 0.5, "the refusal waited");
	ck_assert_str_eq(err, why);
	struct throttle_stats s;
	stats(t, &s);
	ck_assert(s.exhausted);
	ck_assert_msg(s.wait_seconds < 1.3, "the refused pause was counted: %.3f", s.wait_seconds);
	free(err);
	free(why);
	throttle_free(t);
}
END_TEST

/* A stop request ends a wait. */
START_TEST(test_cancel)
{
	struct run_ctl ctl;
	runctl_init(&ctl, 0, 0);
	struct throttle_conf c = { .label = "target z:1", .role = "target", .ceiling = 1 };
	struct throttle *t = throttle_new(&c, &ctl);
	struct throttle_ticket k = { 0 };
	char *err = NULL;
	ck_assert_int_eq(throttle_acquire(t, &k, &err), ZMB_OK);
	throttle_release(t, &k, THROTTLE_BUSY, 503, 30, 1);
	runctl_request_stop(&ctl, "test", true);
	double t0 = mono_now();
	ck_assert_int_eq(throttle_acquire(t, &k, &err), ZMB_ECANCELED);
	ck_assert(mono_now() - t0 < 1.0);
	ck_assert(tu_contains(err, "target z:1: canceled"));
	free(err);
	throttle_free(t);
}
END_TEST

/* ---- through http.c and rest.c, against a canned server ---- */

static struct {
	struct canned *srv;
	struct server s;
	struct http *h;
	struct token_cache *tc;
	struct throttle *thr;
	char *dir;
	int fd;
} R;

static void rstart(const struct canned_reply *script, size_t n, double max_wait)
{
	canned_login_reset();
	R.srv = canned_start(script, n);
	ck_assert_ptr_nonnull(R.srv);
	R.s = (struct server){ .role = "source", .host = (char *)"127.0.0.1",
			       .port = canned_port(R.srv), .scheme = (char *)"http",
			       .admin_user = (char *)"admin@example.com", .tls_verify = true };
	R.h = http_new(&R.s, NULL, NULL);
	R.tc = token_cache_new_login(&R.s, 1800, NULL, canned_login);
	struct throttle_conf c = { .label = "source 127.0.0.1", .role = "source", .max_rps = 25,
				   .ceiling = 2, .max_wait = max_wait };
	R.thr = throttle_new(&c, NULL);
	http_set_throttle(R.h, R.thr);
	R.dir = tu_tmpdir("unit_throttle");
	char *p = xasprintf("%s/spool", R.dir);
	R.fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	free(p);
	ck_assert_int_ge(R.fd, 0);
}

static void rstop(void)
{
	token_cache_free(R.tc);
	http_free(R.h);
	throttle_free(R.thr);
	canned_stop(R.srv);
	close(R.fd);
	tu_rmrf(R.dir);
	free(R.dir);
	memset(&R, 0, sizeof R);
}

static enum zmb_rc rexport(char **err, long long *bytes)
{
	bool empty = false;
	return rest_export_file(R.h, R.tc, "a@x", NULL, R.fd, bytes, &empty, err);
}

/* A 503's Retry-After as an HTTP-date is waited for; then a 429 (no Retry-After) after the backoff. */
START_TEST(test_rest_503_date_then_429)
{
	/* an HTTP-date 4 s ahead: curl makes it 3 or 4 s (whole seconds) */
	static char ra[96];
	double t0 = mono_now();   /* before the date is made: a stall in between counts */
	time_t when = time(NULL) + 4;
	struct tm tm;
	gmtime_r(&when, &tm);
	strftime(ra, sizeof ra, "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	const struct canned_reply script[] = {
		{ .status = 503, .headers = ra },
		{ .status = 200, .body = "ARCHIVE" },
		{ .status = 429, .headers = "DoSFilter: unavailable\r\n", .body = "too many" },
		{ .status = 200, .body = "ARCHIVE2" },
	};
	rstart(script, 4, 0);
	char *err = NULL;
	long long bytes = 0;
	enum zmb_rc rc = rexport(&err, &bytes);
	double el = mono_now() - t0;
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_int_eq(bytes, 7);
	ck_assert_int_eq((int)canned_count(R.srv), 2);
	/* the backoff alone would be 1..1.25 s */
	ck_assert_msg(el >= 2.95, "exported %.3f s after a 503 with a date 3..4 s ahead", el);
	/* the 429 of the next export: no Retry-After (nor the 503's, from before): 1..1.25 s */
	t0 = mono_now();
	ck_assert_int_eq(lseek(R.fd, 0, SEEK_SET), 0);
	rc = rexport(&err, &bytes);
	el = mono_now() - t0;
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_int_eq(bytes, 8);
	ck_assert_msg(el >= 0.95 && el < 2.9, "exported %.3f s after a 429", el);
	struct throttle_stats s;
	throttle_stats(R.thr, &s);
	ck_assert_int_eq(s.requests, 4);
	ck_assert_int_eq(s.throttled, 2);
	ck_assert_int_eq(token_auth_count(R.tc), 1);
	rstop();
}
END_TEST

/* Retry-After in seconds past the bound: ZMB_EBUSY at once, the text naming the server. */
START_TEST(test_rest_bound)
{
	const struct canned_reply script[] = {
		{ .status = 503, .headers = "Retry-After: 120\r\n" },
		{ .status = 200, .body = "ARCHIVE" },
	};
	rstart(script, 2, 60);
	double t0 = mono_now();
	char *err = NULL;
	long long bytes = 0;
	ck_assert_int_eq(rexport(&err, &bytes), ZMB_EBUSY);
	ck_assert(mono_now() - t0 < 2.0);
	ck_assert_msg(tu_contains(err, "source 127.0.0.1: throttled by the server (HTTP 503)") &&
		      tu_contains(err, "asks for 1"), "%s", err);
	ck_assert_int_eq((int)canned_count(R.srv), 1);
	free(err);
	rstop();
}
END_TEST

/* Without a throttle nothing is sent again: 429 is ZMB_EBUSY at once. */
START_TEST(test_rest_429_no_throttle)
{
	const struct canned_reply script[] = {
		{ .status = 429, .headers = "DoSFilter: unavailable\r\n" },
	};
	rstart(script, 1, 0);
	http_set_throttle(R.h, NULL);
	char *err = NULL;
	long long bytes = 0;
	ck_assert_int_eq(rexport(&err, &bytes), ZMB_EBUSY);
	ck_assert_msg(tu_contains(err, "http 429 (throttled: too many requests)"), "%s", err);
	ck_assert_int_eq((int)canned_count(R.srv), 1);
	free(err);
	rstop();
}
END_TEST

static void global(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static Suite *make_suite(void)
{
	Suite *s = suite_create("unit_throttle");
	TCase *tc = tcase_create("pace");
	tcase_add_test(tc, test_rate_spacing);
	tcase_add_test(tc, test_aimd);
	tcase_add_test(tc, test_floors);
	tcase_add_test(tc, test_concurrency_limit);
	tcase_add_test(tc, test_bound);
	tcase_add_test(tc, test_cancel);
	suite_add_tcase(s, tc);
	tc = tcase_create("rest");
	tcase_add_unchecked_fixture(tc, global, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_rest_503_date_then_429);
	tcase_add_test(tc, test_rest_bound);
	tcase_add_test(tc, test_rest_429_no_throttle);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
