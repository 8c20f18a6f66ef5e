/*
 * check_unit_token.c - the token cache (src/zimbra/token.h) with a fake
 * login function: no network, links core, conf and zimbra only.
 *
 * The fake login hands out "tok-1", "tok-2", ... with the lifetime and the
 * result the test set, optionally after a delay (to make threads meet).
 */
#define _GNU_SOURCE
#include "testutil.h"

#include "log.h"
#include "runctl.h"
#include "token.h"
#include "zmb.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static struct {
	atomic_int calls;         /* logins started */
	atomic_int inside;        /* logins running now */
	atomic_int max_inside;    /* most logins ever running at once */
	long long lifetime_ms;
	enum zmb_rc fail;         /* != ZMB_OK: the next logins fail so */
	double delay;
	atomic_int arrived;       /* racers about to call token_get */
	int wait_arrivals;        /* > 0: a login first waits (<= 10 s) for so many */
} F;

/*
 * The cache hands the caller's handle through to the login unread: the
 * threads of test_refresh_rule pass a struct renewal as "handle" to get
 * their own lifetime; NULL = F.lifetime_ms.
 */
struct renewal;
static long long renewal_lifetime(const struct renewal *m);

static enum zmb_rc fake_login(struct http *h, char **token, long long *lifetime_ms, char **err)
{
	int n = atomic_fetch_add(&F.calls, 1) + 1;
	int in = atomic_fetch_add(&F.inside, 1) + 1;
	int m = atomic_load(&F.max_inside);
	while (in > m && !atomic_compare_exchange_weak(&F.max_inside, &m, in))
		;
	for (int i = 0; i < 1000 && atomic_load(&F.arrived) < F.wait_arrivals; i++)
		tu_sleep(0.01);
	if (F.delay > 0)
		tu_sleep(F.delay);
	atomic_fetch_sub(&F.inside, 1);
	if (F.fail) {
		*err = xasprintf("fake login %d refused", n);
		return F.fail;
	}
	*token = xasprintf("tok-%d", n);
	*lifetime_ms = h ? renewal_lifetime((const struct renewal *)(void *)h) : F.lifetime_ms;
	return ZMB_OK;
}

static struct server S = { .role = "source", .host = (char *)"127.0.0.1", .port = 7071,
			   .admin_user = (char *)"admin@example.com" };

static void setup(void)
{
	memset(&F, 0, sizeof(F));
	F.lifetime_ms = 3600000;
}

/* token_get that must succeed; returns the token (caller frees). */
static char *get_ok(struct token_cache *tc)
{
	char *tok = NULL, *err = NULL;
	enum zmb_rc rc = token_get(tc, NULL, &tok, &err);
	ck_assert_msg(rc == ZMB_OK, "token_get: %s", err ? err : "?");
	ck_assert_ptr_null(err);
	return tok;
}

/*
 * One measurement: the seconds from just before the first login until
 * token_get logs in again, polling every 10 ms (never early: the cache's
 * clock starts after ours).  Run in threads, so that the cases wait together.
 */
struct renewal {
	long long margin_s, lifetime_ms;   /* in */
	double after;                      /* out: seconds; < 0 = no renewal in 10 s */
	long long refreshes;               /* out: ctl.token_refreshes */
	bool token_changed_early;          /* out: another token before the renewal */
};

static long long renewal_lifetime(const struct renewal *m)
{
	return m->lifetime_ms;
}

static void *measure(void *p)
{
	struct renewal *m = p;
	struct run_ctl ctl;
	runctl_init(&ctl, 0, 0);
	struct token_cache *tc = token_cache_new_login(&S, m->margin_s, &ctl, fake_login);
	struct http *h = (struct http *)(void *)m;   /* see fake_login */
	char *first = NULL, *err = NULL;
	double t0 = mono_now();
	m->after = -1;
	if (token_get(tc, h, &first, &err) != ZMB_OK)
		goto out;
	while (mono_now() - t0 < 10) {
		double t = mono_now() - t0;
		char *tok = NULL;
		if (token_get(tc, h, &tok, &err) != ZMB_OK)
			break;
		bool same = !strcmp(tok, first);
		free(tok);
		if (token_auth_count(tc) > 1) {
			m->after = t;
			break;
		}
		if (!same)
			m->token_changed_early = true;
		tu_sleep(0.01);
	}
	m->refreshes = atomic_load(&ctl.token_refreshes);
out:
	free(first);
	free(err);
	token_cache_free(tc);
	return NULL;
}

/*
 * margin = min(refresh_margin, lifetime/3); a margin below 0 is 0.  Each row:
 * margin, lifetime, and the window the renewal must fall in (its lower bound
 * is the rule; the upper one only bounds lateness under load).
 */
START_TEST(test_refresh_rule)
{
	static const struct {
		long long margin_s, lifetime_ms;
		double lo, hi;
		const char *why;
	} rows[] = {
		/* lifetime/3 = 1.2 s is larger: the margin (1 s) counts; L/3 would give 2.4 s */
		{ 1, 3600, 2.55, 3.3, "margin smaller than lifetime/3" },
		/* a 30 min margin on a 1.8 s token is clamped to 0.6 s */
		{ 1800, 1800, 1.15, 1.6, "margin clamped to lifetime/3" },
		{ 0, 600, 0.59, 1.0, "no margin: the whole lifetime" },
		{ -5, 600, 0.59, 1.0, "a negative margin is 0" },
	};
	enum { N = sizeof(rows) / sizeof(rows[0]) };
	struct renewal m[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		m[i] = (struct renewal){ .margin_s = rows[i].margin_s, .lifetime_ms = rows[i].lifetime_ms };
		ck_assert_int_eq(pthread_create(&th[i], NULL, measure, &m[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < N; i++) {
		ck_assert_msg(m[i].after >= rows[i].lo && m[i].after < rows[i].hi,
			      "%s (margin %lld s, lifetime %lld ms): renewed after %.3f s, want [%.2f, %.2f)",
			      rows[i].why, rows[i].margin_s, rows[i].lifetime_ms, m[i].after, rows[i].lo,
			      rows[i].hi);
		ck_assert_msg(!m[i].token_changed_early, "%s: token changed before the renewal",
			      rows[i].why);
		/* the renewal is a re-login after the first: one refresh counted */
		ck_assert_int_eq(m[i].refreshes, 1);
	}
}
END_TEST

/* ------------------------------------------------------- single flight */

struct racer {
	struct token_cache *tc;
	pthread_barrier_t *go;
	enum zmb_rc rc;
	char *tok;
	char *err;
};

static void *race(void *p)
{
	struct racer *r = p;
	pthread_barrier_wait(r->go);
	atomic_fetch_add(&F.arrived, 1);
	r->rc = token_get(r->tc, NULL, &r->tok, &r->err);
	return NULL;
}

#define RACERS 8

/* RACERS threads ask at once while the login takes 0.3 s; returns the logins made. */
static int run_racers(struct token_cache *tc, struct racer *r)
{
	pthread_barrier_t go;
	pthread_t th[RACERS];
	pthread_barrier_init(&go, NULL, RACERS);
	int before = atomic_load(&F.calls);
	for (int i = 0; i < RACERS; i++) {
		r[i] = (struct racer){ .tc = tc, .go = &go };
		ck_assert_int_eq(pthread_create(&th[i], NULL, race, &r[i]), 0);
	}
	for (int i = 0; i < RACERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	return atomic_load(&F.calls) - before;
}

START_TEST(test_single_flight_login)
{
	struct token_cache *tc = token_cache_new_login(&S, 1800, NULL, fake_login);
	struct racer r[RACERS];
	F.delay = 0.3;
	ck_assert_int_eq(run_racers(tc, r), 1);
	ck_assert_int_eq(atomic_load(&F.max_inside), 1);
	for (int i = 0; i < RACERS; i++) {
		ck_assert_msg(r[i].rc == ZMB_OK, "thread %d: %s", i, r[i].err ? r[i].err : "?");
		ck_assert_str_eq(r[i].tok, "tok-1");
		free(r[i].tok);
	}
	ck_assert_int_eq(token_auth_count(tc), 1);
	token_cache_free(tc);
}
END_TEST

/* A failed login is shared by the threads that waited for it, not retried by each. */
START_TEST(test_single_flight_failure_shared)
{
	struct token_cache *tc = token_cache_new_login(&S, 1800, NULL, fake_login);
	struct racer r[RACERS];
	F.delay = 0.3;
	F.fail = ZMB_EAUTH;
	/* every racer is on its way before the login fails: one that lost the CPU
	 * for 0.3 s would come after the failure and rightly log in again */
	F.wait_arrivals = RACERS;
	ck_assert_int_eq(run_racers(tc, r), 1);
	F.wait_arrivals = 0;
	for (int i = 0; i < RACERS; i++) {
		ck_assert_int_eq(r[i].rc, ZMB_EAUTH);
		ck_assert_ptr_null(r[i].tok);
		ck_assert_str_eq(r[i].err, "fake login 1 refused");
		free(r[i].err);
	}
	/* the next caller (none waiting) tries again, and a success is kept */
	F.fail = ZMB_OK;
	F.delay = 0;
	char *tok = get_ok(tc);
	ck_assert_str_eq(tok, "tok-2");
	free(tok);
	long long req = 0, ok = 0;
	token_counts(tc, &req, &ok);
	ck_assert_int_eq(req, 2);
	ck_assert_int_eq(ok, 1);
	token_cache_free(tc);
}
END_TEST

/* ------------------------------------------------------- invalidate, counts */

START_TEST(test_invalidate_only_the_failed_token)
{
	struct run_ctl ctl;
	runctl_init(&ctl, 0, 0);
	struct token_cache *tc = token_cache_new_login(&S, 1800, &ctl, fake_login);
	char *t1 = get_ok(tc);
	ck_assert_str_eq(t1, "tok-1");
	/* another token, or none: the current one stays */
	token_invalidate(tc, "tok-0");
	token_invalidate(tc, NULL);
	char *t = get_ok(tc);
	ck_assert_str_eq(t, "tok-1");
	free(t);
	ck_assert_int_eq(token_auth_count(tc), 1);
	/* the failed one: the next token_get logs in again */
	token_invalidate(tc, t1);
	char *t2 = get_ok(tc);
	ck_assert_str_eq(t2, "tok-2");
	ck_assert_int_eq(token_auth_count(tc), 2);
	/* a second worker reporting the old token late must not drop the new one */
	token_invalidate(tc, t1);
	t = get_ok(tc);
	ck_assert_str_eq(t, "tok-2");
	free(t);
	ck_assert_int_eq(token_auth_count(tc), 2);
	ck_assert_int_eq(atomic_load(&ctl.token_refreshes), 1);
	free(t1);
	free(t2);
	token_cache_free(tc);
}
END_TEST

START_TEST(test_counts_and_refreshes)
{
	struct run_ctl ctl;
	runctl_init(&ctl, 0, 0);
	struct token_cache *tc = token_cache_new_login(&S, 1800, &ctl, fake_login);
	long long req = -1, ok = -1;
	token_counts(tc, &req, &ok);
	ck_assert(req == 0 && ok == 0);
	/* a failed first login: counted as a request, not as a refresh */
	F.fail = ZMB_ECONNECT;
	char *tok = NULL, *err = NULL;
	ck_assert_int_eq(token_get(tc, NULL, &tok, &err), ZMB_ECONNECT);
	ck_assert_ptr_null(tok);
	ck_assert_str_eq(err, "fake login 1 refused");
	free(err);
	F.fail = ZMB_OK;
	tok = get_ok(tc);
	token_counts(tc, &req, &ok);
	ck_assert(req == 2 && ok == 1);
	ck_assert_int_eq(atomic_load(&ctl.token_refreshes), 0);   /* the first good login */
	token_invalidate(tc, tok);
	free(tok);
	free(get_ok(tc));
	token_counts(tc, &req, &ok);
	ck_assert(req == 3 && ok == 2);
	ck_assert_int_eq(token_auth_count(tc), 3);
	ck_assert_int_eq(atomic_load(&ctl.token_refreshes), 1);
	token_cache_free(tc);
}
END_TEST

/* The password and every token become log secrets (redacted everywhere). */
START_TEST(test_secrets_registered)
{
	struct server s = S;
	s.password = (char *)"pw-Unit-Secret-77";
	struct token_cache *tc = token_cache_new_login(&s, 1800, NULL, fake_login);
	F.lifetime_ms = 3600000;
	char *tok = get_ok(tc);
	char *line = xasprintf("login with %s gave %s", s.password, tok);
	char *red = zlog_redact(line);
	ck_assert_msg(!strstr(red, s.password) && !strstr(red, tok), "not redacted: %s", red);
	free(red);
	free(line);
	free(tok);
	token_cache_free(tc);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("unit_token");
	TCase *tc = tcase_create("refresh");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_refresh_rule);
	suite_add_tcase(s, tc);
	tc = tcase_create("flight");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_single_flight_login);
	tcase_add_test(tc, test_single_flight_failure_shared);
	suite_add_tcase(s, tc);
	tc = tcase_create("invalidate");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_invalidate_only_the_failed_token);
	tcase_add_test(tc, test_counts_and_refreshes);
	tcase_add_test(tc, test_secrets_registered);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
