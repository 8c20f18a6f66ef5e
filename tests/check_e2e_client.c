/*
 * check_e2e_client.c - the Zimbra client (http, soap, token, rest) against
 * simulated Zimbra servers (tests/zsim) over HTTPS on 127.0.0.1.
 *
 * Every test starts its simulators in a checked fixture (inside the forked
 * test child) and asserts on both the client's result codes and the
 * simulators' own stats (AuthRequests, digests, request log).
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "zsim.h"

#include "http.h"
#include "job.h"
#include "rest.h"
#include "runctl.h"
#include "soap.h"
#include "token.h"
#include "zmb.h"

#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *SRC_CFG =
	"{\"name\":\"src\",\"domains\":["
	"{\"name\":\"example.com\",\"system_accounts\":true,\"accounts\":["
	"{\"name\":\"alice@example.com\",\"items\":20,\"item_size\":[500,20000],"
	"\"folders\":[\"Inbox\",\"Sent\",\"Archive/2023\"]},"
	"{\"name\":\"bob@example.com\",\"items\":40,\"item_size\":[20000,60000]},"
	"{\"name\":\"o'neil+tag@example.com\",\"items\":3,\"item_size\":100},"
	"{\"name\":\"robot@example.com\",\"zimbraIsSystemAccount\":true},"
	"{\"name\":\"empty@example.com\"}]},"
	"{\"name\":\"example.org\",\"system_accounts\":true,\"generate\":"
	"{\"count\":1203,\"prefix\":\"user\",\"items\":0,\"seed\":1}}]}";

static const char *DST_CFG =
	"{\"name\":\"dst\",\"domains\":["
	"{\"name\":\"example.net\",\"accounts\":["
	"{\"name\":\"alice@example.net\"},{\"name\":\"bob@example.net\"},"
	"{\"name\":\"o'neil+tag@example.net\"},{\"name\":\"empty@example.net\"}]}]}";

struct env {
	struct zsim_pki *pki;
	struct zsim *src;
	struct zsim *dst;
	struct server s;      /* source, filled by hand */
	struct server d;      /* target */
	struct job job;       /* only mig.* knobs are read by http_new */
	struct run_ctl ctl;
	char *dir;
};

static struct env E;

static void server_fill(struct server *s, const char *role, struct zsim *z, const char *ca)
{
	memset(s, 0, sizeof(*s));
	s->role = role;
	s->host = xstrdup("127.0.0.1");
	s->port = z->port;
	s->admin_user = xstrdup(z->admin_user);
	s->password = xstrdup(z->admin_password);
	s->ca_file = xstrdup(ca);
	s->tls_verify = true;
	s->scheme = xstrdup("https");
}

static void server_clear(struct server *s)
{
	free(s->host);
	free(s->admin_user);
	free(s->password);
	free(s->ca_file);
	free(s->pinned_pubkey);
	free(s->scheme);
	memset(s, 0, sizeof(*s));
}

static struct zsim *start_sim(const char *name, const char *cfg, enum zsim_cert cert)
{
	struct zsim_opts o = { .name = name, .config_json = cfg, .pki = E.pki, .cert = cert };
	struct zsim *z = zsim_start(&o);
	ck_assert_msg(z != NULL, "simulator %s did not start", name);
	return z;
}

static void setup_common(void)
{
	memset(&E, 0, sizeof(E));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	E.dir = tu_tmpdir("client");
	ck_assert_ptr_nonnull(E.dir);
	E.pki = zsim_pki_new(NULL);
	ck_assert_msg(E.pki != NULL, "cannot make test certificates");
	runctl_init(&E.ctl, 0, 0);
	E.job.mig.low_speed_limit = 1;
	E.job.mig.low_speed_time = 30;
	E.job.mig.buffer_size = 64 << 10;   /* small ring: exercises pausing */
}

static void setup_one(void)
{
	setup_common();
	E.src = start_sim("src", SRC_CFG, ZSIM_CERT_CA);
	server_fill(&E.s, "source", E.src, E.pki->ca_file);
}

static void setup_two(void)
{
	setup_one();
	E.dst = start_sim("dst", DST_CFG, ZSIM_CERT_CA);
	server_fill(&E.d, "target", E.dst, E.pki->ca_file);
}

static void setup_short_tokens(void)
{
	setup_common();
	E.src = start_sim("src",
			  "{\"name\":\"src\",\"token_lifetime\":6,\"domains\":[{\"name\":\"example.com\","
			  "\"accounts\":[{\"name\":\"alice@example.com\",\"items\":2}]}]}",
			  ZSIM_CERT_CA);
	server_fill(&E.s, "source", E.src, E.pki->ca_file);
}

static void teardown(void)
{
	zsim_stop(E.src);
	zsim_stop(E.dst);
	server_clear(&E.s);
	server_clear(&E.d);
	zsim_pki_free(E.pki);
	if (E.dir)
		tu_rmrf(E.dir);
	free(E.dir);
	memset(&E, 0, sizeof(E));
}

static json_t *stats(struct zsim *z)
{
	json_t *st = zsim_stats(z);
	ck_assert_msg(st != NULL, "no stats from simulator");
	return st;
}

/* Every REST request carried the token in the cookie and none in the URL. */
static void assert_no_token_in_url(struct zsim *z)
{
	json_t *st = stats(z);
	ck_assert_int_eq(zsim_stat_int(st, "tokens_in_url"), 0);
	ck_assert_int_eq(zsim_stat_int(st, "basic_auth"), 0);
	json_t *reqs = json_object_get(st, "requests");
	size_t i;
	json_t *r;
	json_array_foreach(reqs, i, r) {
		const char *q = json_string_value(json_object_get(r, "query"));
		ck_assert_msg(!tu_contains(q, "REDACTED") && !tu_contains(q, "uthToken") &&
				      !tu_contains(q, "zauthtoken"), "token in query: %s", q);
		const char *path = json_string_value(json_object_get(r, "path"));
		if (path && !strncmp(path, "/service/home/", 14))
			ck_assert_msg(json_is_true(json_object_get(r, "cookie")), "REST without cookie");
	}
	json_decref(st);
}

/* ------------------------------------------------------------------ auth */

START_TEST(test_auth_lifetime)
{
	struct http *h = http_new(&E.s, NULL, &E.ctl);
	char *tok = NULL, *err = NULL;
	long long life = 0;
	enum zmb_rc rc = soap_auth(h, &tok, &life, &err);
	ck_assert_msg(rc == ZMB_OK, "auth: %s", err ? err : "?");
	ck_assert_ptr_nonnull(tok);
	ck_assert_msg(!strncmp(tok, "0_", 2), "token shape");
	/* default 12 h lifetime, as remaining milliseconds */
	ck_assert_msg(life > 43000000LL && life <= 43200000LL, "lifetime %lld", life);
	json_t *st = stats(E.src);
	ck_assert_int_eq(zsim_stat_int(st, "auth_requests/ok"), 1);
	json_decref(st);
	free(tok);
	http_free(h);
}
END_TEST

START_TEST(test_bad_password)
{
	free(E.s.password);
	E.s.password = xstrdup("wrong-password");
	struct http *h = http_new(&E.s, NULL, &E.ctl);
	struct token_cache *tc = token_cache_new(&E.s, 1800, &E.ctl);
	char *tok = NULL, *err = NULL;
	enum zmb_rc rc = token_get(tc, h, &tok, &err);
	ck_assert_int_eq(rc, ZMB_EAUTH);
	ck_assert_msg(tu_contains(err, "account.AUTH_FAILED"), "err: %s", err);
	ck_assert_msg(tu_contains(err, "source 127.0.0.1:"), "err: %s", err);
	ck_assert_msg(!tu_contains(err, "wrong-password"), "password in error");
	ck_assert_ptr_null(tok);
	free(err);
	err = NULL;
	/* a SOAP call through the cache fails the same way */
	char *id = NULL;
	rc = soap_get_account(h, tc, "alice@example.com", &id, &err);
	ck_assert_int_eq(rc, ZMB_EAUTH);
	ck_assert_int_eq(token_auth_count(tc), 2);
	free(err);
	token_cache_free(tc);
	http_free(h);
}
END_TEST

/*
 * 4 threads x ~12 s of SOAP calls with 6 s tokens: no failure, the token is
 * renewed before it expires (so the server never answers AUTH_EXPIRED), and
 * the logins are bounded.  (6 s, not less: the 2 s margin must cover a
 * request's way to the server on a loaded machine.)
 */
struct worker_arg {
	struct token_cache *tc;
	atomic_int failures;
	atomic_int calls;
	char *first_err;
	pthread_mutex_t mu;
};

static void *refresh_worker(void *p)
{
	struct worker_arg *a = p;
	struct http *h = http_new(&E.s, &E.job, &E.ctl);
	double end = mono_now() + 12.0;
	while (mono_now() < end) {
		char *id = NULL, *err = NULL;
		enum zmb_rc rc = soap_get_account(h, a->tc, "alice@example.com", &id, &err);
		atomic_fetch_add(&a->calls, 1);
		if (rc) {
			atomic_fetch_add(&a->failures, 1);
			pthread_mutex_lock(&a->mu);
			if (!a->first_err)
				a->first_err = xstrdup(err);
			pthread_mutex_unlock(&a->mu);
		}
		free(id);
		free(err);
		tu_sleep(0.03);
	}
	http_free(h);
	return NULL;
}

START_TEST(test_token_refresh_threads)
{
	struct worker_arg a = { .tc = token_cache_new(&E.s, 1800, &E.ctl) };
	pthread_mutex_init(&a.mu, NULL);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, refresh_worker, &a), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ck_assert_msg(atomic_load(&a.failures) == 0, "%d failures, first: %s",
		      atomic_load(&a.failures), a.first_err ? a.first_err : "");
	ck_assert_int_gt(atomic_load(&a.calls), 100);
	json_t *st = stats(E.src);
	long long auths = zsim_stat_int(st, "auth_requests/total");
	long long expired = zsim_stat_int(st, "soap_faults/service.AUTH_EXPIRED");
	long long required = zsim_stat_int(st, "soap_faults/service.AUTH_REQUIRED");
	json_decref(st);
	/* renewed before expiry: the server never saw an expired token (the
	 * margin, clamped to lifetime/3, leaves 2 s between renewal and expiry) */
	ck_assert_msg(expired == 0 && required == 0,
		      "token refused: %lld AUTH_EXPIRED, %lld AUTH_REQUIRED faults", expired, required);
	/* a login every ~4 s -> about 3 or 4 in 12 s; at least one renewal */
	ck_assert_msg(auths >= 2 && auths <= 7, "AuthRequests: %lld", auths);
	ck_assert_int_eq(token_auth_count(a.tc), auths);
	ck_assert_int_eq(atomic_load(&E.ctl.token_refreshes), auths - 1);
	token_cache_free(a.tc);
	free(a.first_err);
}
END_TEST

START_TEST(test_revoke_retry_once)
{
	struct http *h = http_new(&E.s, &E.job, &E.ctl);
	struct token_cache *tc = token_cache_new(&E.s, 1800, &E.ctl);
	char *id = NULL, *err = NULL;
	enum zmb_rc rc = soap_get_account(h, tc, "alice@example.com", &id, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	free(id);
	id = NULL;
	json_decref(zsim_post(E.src, "/zsim/revoke", "{}"));
	/* SOAP: AUTH_EXPIRED -> one new login -> the call succeeds */
	rc = soap_get_account(h, tc, "alice@example.com", &id, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_int_eq(token_auth_count(tc), 2);
	free(id);
	/* REST: 401 -> one new login -> the export succeeds */
	json_decref(zsim_post(E.src, "/zsim/revoke", "{}"));
	char *path = xasprintf("%s/a.tgz", E.dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	long long bytes = 0;
	bool empty = true;
	struct rest_export_opts o = { 0 };
	rc = rest_export_file(h, tc, "alice@example.com", &o, fd, &bytes, &empty, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert(!empty);
	ck_assert_int_gt(bytes, 10000);
	ck_assert_int_eq(lseek(fd, 0, SEEK_END), bytes);
	ck_assert_int_eq(token_auth_count(tc), 3);
	json_t *st = stats(E.src);
	ck_assert_int_eq(zsim_stat_int(st, "rest_status/401"), 1);
	ck_assert_int_eq(zsim_stat_int(st, "soap_faults/service.AUTH_EXPIRED"), 1);
	json_decref(st);
	close(fd);
	free(path);
	token_cache_free(tc);
	http_free(h);
	assert_no_token_in_url(E.src);
}
END_TEST

/* ------------------------------------------------------------------ TLS */

static enum zmb_rc try_auth(char **err)
{
	struct http *h = http_new(&E.s, NULL, &E.ctl);
	char *tok = NULL;
	long long life = 0;
	*err = NULL;
	enum zmb_rc rc = soap_auth(h, &tok, &life, err);
	free(tok);
	http_free(h);
	return rc;
}

/* "sha256//BASE64" of a certificate's public key, with the openssl CLI. */
static char *pin_of(const char *cert)
{
	char *cmd = xasprintf("openssl x509 -in '%s' -pubkey -noout | openssl pkey -pubin -outform der"
			      " | openssl dgst -sha256 -binary | base64", cert);
	char *argv[] = { (char *)"sh", (char *)"-c", cmd, NULL };
	struct tu_proc p;
	ck_assert_int_eq(tu_run(argv, NULL, 20, &p), 0);
	char *pin = xasprintf("sha256//%s", strtrim(p.out));
	tu_proc_release(&p);
	free(cmd);
	return pin;
}

START_TEST(test_tls_untrusted_then_ca_file)
{
	setup_common();
	E.src = start_sim("src", SRC_CFG, ZSIM_CERT_SELF);
	server_fill(&E.s, "source", E.src, NULL);
	char *err = NULL;
	/* system store only: self-signed certificate refused */
	enum zmb_rc rc = try_auth(&err);
	ck_assert_int_eq(rc, ZMB_ETLS);
	ck_assert_msg(tu_contains(err, "ca_file = \"") && tu_contains(err, "pinned_pubkey") &&
			      tu_contains(err, "--ca-file"), "err: %s", err);
	char *hp = xasprintf("127.0.0.1:%d", E.src->port);
	ck_assert_msg(tu_contains(err, hp), "err: %s", err);
	free(hp);
	free(err);
	/* the wrong CA: still refused */
	E.s.ca_file = xstrdup(E.pki->ca_file);
	ck_assert_int_eq(try_auth(&err), ZMB_ETLS);
	free(err);
	/* trusting that very certificate works */
	free(E.s.ca_file);
	E.s.ca_file = xstrdup(E.pki->self_cert);
	rc = try_auth(&err);
	ck_assert_msg(rc == ZMB_OK, "err: %s", err ? err : "");
	/* explicit tls_verify = false works without any trust anchor */
	free(E.s.ca_file);
	E.s.ca_file = NULL;
	E.s.tls_verify = false;
	rc = try_auth(&err);
	ck_assert_msg(rc == ZMB_OK, "err: %s", err ? err : "");
	teardown();
}
END_TEST

START_TEST(test_tls_wrong_hostname)
{
	setup_common();
	E.src = start_sim("src", SRC_CFG, ZSIM_CERT_WRONG);
	server_fill(&E.s, "source", E.src, E.pki->ca_file);
	char *err = NULL;
	ck_assert_int_eq(try_auth(&err), ZMB_ETLS);
	ck_assert_msg(tu_contains(err, "tls"), "err: %s", err);
	free(err);
	teardown();
}
END_TEST

START_TEST(test_tls_pinned_key)
{
	char *err = NULL;
	char *good = pin_of(E.pki->cert_file);
	char *bad = pin_of(E.pki->self_cert);
	E.s.pinned_pubkey = good;
	enum zmb_rc rc = try_auth(&err);
	ck_assert_msg(rc == ZMB_OK, "err: %s", err ? err : "");
	E.s.pinned_pubkey = bad;
	rc = try_auth(&err);
	ck_assert_int_eq(rc, ZMB_ETLS);
	ck_assert_msg(tu_contains(err, "pinned_pubkey"), "err: %s", err);
	free(err);
	/* pinning holds even with tls_verify = false */
	E.s.tls_verify = false;
	ck_assert_int_eq(try_auth(&err), ZMB_ETLS);
	free(err);
	E.s.pinned_pubkey = NULL;
	free(good);
	free(bad);
}
END_TEST

START_TEST(test_connect_refused)
{
	/* a server resetting every connection is a temporary failure, not TLS */
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"down\":2}"));
	char *e0 = NULL;
	enum zmb_rc rc0 = try_auth(&e0);
	ck_assert_msg(rc0 == ZMB_ETEMP || rc0 == ZMB_ECONNECT, "rc %s: %s", zmb_rc_name(rc0), e0);
	free(e0);
	int dead;
	E.s.port = tu_dead_port(&dead);
	char *err = NULL;
	ck_assert_int_eq(try_auth(&err), ZMB_ECONNECT);
	char *hp = xasprintf("127.0.0.1:%d", E.s.port);
	ck_assert_msg(tu_contains(err, hp), "err: %s", err);
	close(dead);
	free(hp);
	free(err);
}
END_TEST

/* ------------------------------------------------------------------ SOAP */

static bool has_name(const struct zaccount *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (streq(v[i].name, name))
			return true;
	return false;
}

START_TEST(test_list_two_domains)
{
	struct http *h = http_new(&E.s, NULL, &E.ctl);
	struct token_cache *tc = token_cache_new(&E.s, 1800, &E.ctl);
	struct zaccount *v = NULL;
	size_t n = 0;
	char *err = NULL;
	enum zmb_rc rc = soap_list_accounts(h, tc, "example.com", &v, &n, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_int_eq(n, 4);   /* alice bob o'neil empty; not robot, galsync, spam, ham, virus */
	ck_assert(has_name(v, n, "alice@example.com"));
	ck_assert(has_name(v, n, "o'neil+tag@example.com"));
	ck_assert(!has_name(v, n, "robot@example.com"));
	for (size_t i = 0; i < n; i++) {
		ck_assert_ptr_nonnull(v[i].id);
		ck_assert_ptr_nonnull(v[i].mailhost);
		ck_assert_msg(!tu_contains(v[i].name, "galsync") && !tu_contains(v[i].name, "spam."),
			      "system account listed: %s", v[i].name);
	}
	zaccounts_free(v, n);
	/* 1203 generated + 4 system accounts: three pages of 500 */
	rc = soap_list_accounts(h, tc, "example.org", &v, &n, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_int_eq(n, 1203);
	ck_assert(has_name(v, n, "user0001@example.org"));
	ck_assert(has_name(v, n, "user1203@example.org"));
	zaccounts_free(v, n);
	json_t *st = stats(E.src);
	ck_assert_int_eq(zsim_stat_int(st, "soap/SearchDirectoryRequest"), 4);
	ck_assert_int_eq(zsim_stat_int(st, "auth_requests/total"), 1);
	json_decref(st);
	token_cache_free(tc);
	http_free(h);
}
END_TEST

START_TEST(test_too_many_results)
{
	json_decref(zsim_post(E.src, "/zsim/knobs",
			      "{\"faults\":[{\"op\":\"soap\",\"request\":\"SearchDirectoryRequest\","
			      "\"action\":\"status\",\"status\":500,"
			      "\"code\":\"account.TOO_MANY_SEARCH_RESULTS\",\"count\":1}]}"));
	struct http *h = http_new(&E.s, NULL, &E.ctl);
	struct token_cache *tc = token_cache_new(&E.s, 1800, &E.ctl);
	struct zaccount *v = NULL;
	size_t n = 0;
	char *err = NULL;
	enum zmb_rc rc = soap_list_accounts(h, tc, "example.com", &v, &n, &err);
	ck_assert_int_eq(rc, ZMB_EPROTO);
	ck_assert_msg(tu_contains(err, "account.TOO_MANY_SEARCH_RESULTS") &&
			      tu_contains(err, "zimbra_directory_max_search_result"), "err: %s", err);
	free(err);
	token_cache_free(tc);
	http_free(h);
}
END_TEST

START_TEST(test_get_account_size_modify)
{
	struct http *h = http_new(&E.s, NULL, &E.ctl);
	struct token_cache *tc = token_cache_new(&E.s, 1800, &E.ctl);
	char *id = NULL, *err = NULL;
	enum zmb_rc rc = soap_get_account(h, tc, "nobody@example.com", &id, &err);
	ck_assert_int_eq(rc, ZMB_ENOACCOUNT);
	char *want = xasprintf("source 127.0.0.1:%d: GetAccountRequest: fault account.NO_SUCH_ACCOUNT: "
			       "no such account: nobody@example.com", E.src->port);
	ck_assert_str_eq(err, want);
	free(want);
	free(err);
	err = NULL;
	rc = soap_get_account(h, tc, "alice@example.com", &id, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	long long size = -1;
	rc = soap_mailbox_size(h, tc, id, &size, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	json_t *st = stats(E.src);
	ck_assert_int_eq(size, zsim_stat_acct(st, "accounts", "alice@example.com", "size"));
	ck_assert_int_gt(size, 0);
	json_decref(st);
	rc = soap_modify_account(h, tc, id, "zimbraMailTransport", "smtp:mx.example.net", &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	st = stats(E.src);
	json_t *attrs = json_object_get(json_object_get(json_object_get(json_object_get(st,
		"accounts"), "alice@example.com"), "attrs"), "zimbraMailTransport");
	ck_assert_str_eq(json_string_value(attrs), "smtp:mx.example.net");
	json_decref(st);
	free(id);
	token_cache_free(tc);
	http_free(h);
}
END_TEST

START_TEST(test_soap_503_busy)
{
	json_decref(zsim_post(E.src, "/zsim/knobs",
			      "{\"faults\":[{\"op\":\"soap\",\"request\":\"GetAccountRequest\","
			      "\"action\":\"status\",\"status\":503,\"count\":1}]}"));
	struct http *h = http_new(&E.s, NULL, &E.ctl);
	struct token_cache *tc = token_cache_new(&E.s, 1800, &E.ctl);
	char *id = NULL, *err = NULL;
	ck_assert_int_eq(soap_get_account(h, tc, "alice@example.com", &id, &err), ZMB_EBUSY);
	free(err);
	err = NULL;
	ck_assert_int_eq(soap_get_account(h, tc, "alice@example.com", &id, &err), ZMB_OK);
	free(id);
	token_cache_free(tc);
	http_free(h);
}
END_TEST

/* ------------------------------------------------------------------ REST */

static const char *fingerprint(struct zsim *z, const char *acct, json_t **keep)
{
	*keep = stats(z);
	const char *f = zsim_fingerprint(*keep, acct);
	ck_assert_msg(f != NULL, "no fingerprint for %s", acct);
	return f;
}

static void assert_same_content(const char *src_acct, const char *dst_acct)
{
	json_t *a, *b;
	const char *fa = fingerprint(E.src, src_acct, &a);
	const char *fb = fingerprint(E.dst, dst_acct, &b);
	ck_assert_str_eq(fa, fb);
	ck_assert_int_eq(zsim_stat_acct(a, "accounts", src_acct, "items"),
			 zsim_stat_acct(b, "accounts", dst_acct, "items"));
	ck_assert_int_eq(zsim_stat_int(b, "duplicates"), 0);
	json_decref(a);
	json_decref(b);
}

START_TEST(test_export_file_import)
{
	struct http *hs = http_new(&E.s, &E.job, &E.ctl);
	struct http *hd = http_new(&E.d, &E.job, &E.ctl);
	struct token_cache *ts = token_cache_new(&E.s, 1800, &E.ctl);
	struct token_cache *td = token_cache_new(&E.d, 1800, &E.ctl);
	static const char *pairs[][2] = { { "alice@example.com", "alice@example.net" },
					  { "o'neil+tag@example.com", "o'neil+tag@example.net" } };
	for (size_t i = 0; i < 2; i++) {
		char *path = xasprintf("%s/x%zu.tgz", E.dir, i);
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		ck_assert_int_ge(fd, 0);
		long long eb = 0, ib = 0;
		bool empty = true;
		char *err = NULL;
		struct rest_export_opts o = { 0 };
		enum zmb_rc rc = rest_export_file(hs, ts, pairs[i][0], &o, fd, &eb, &empty, &err);
		ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
		ck_assert(!empty);
		rc = rest_import_file(hd, td, pairs[i][1], "skip", fd, &ib, NULL, &err);
		ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
		ck_assert_int_eq(eb, ib);
		assert_same_content(pairs[i][0], pairs[i][1]);
		/* re-import with skip: idempotent */
		rc = rest_import_file(hd, td, pairs[i][1], "skip", fd, &ib, NULL, &err);
		ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
		assert_same_content(pairs[i][0], pairs[i][1]);
		close(fd);
		free(path);
	}
	/* the import carried a Content-Length body, octet-stream, no Content-Encoding */
	json_t *st = stats(E.dst);
	json_t *reqs = json_object_get(st, "requests");
	size_t k;
	json_t *r;
	int posts = 0;
	json_array_foreach(reqs, k, r) {
		if (!streq(json_string_value(json_object_get(r, "method")), "POST") ||
		    strncmp(json_string_value(json_object_get(r, "path")), "/service/home/", 14))
			continue;
		posts++;
		ck_assert(json_is_integer(json_object_get(r, "content_length")));
		ck_assert_int_eq(json_integer_value(json_object_get(r, "status")), 200);
	}
	ck_assert_int_eq(posts, 4);
	json_decref(st);
	assert_no_token_in_url(E.src);
	assert_no_token_in_url(E.dst);
	token_cache_free(ts);
	token_cache_free(td);
	http_free(hs);
	http_free(hd);
}
END_TEST

START_TEST(test_stream)
{
	struct http *hs = http_new(&E.s, &E.job, &E.ctl);
	struct http *hd = http_new(&E.d, &E.job, &E.ctl);
	struct token_cache *ts = token_cache_new(&E.s, 1800, &E.ctl);
	struct token_cache *td = token_cache_new(&E.d, 1800, &E.ctl);
	long long bytes = 0;
	bool empty = true;
	char *err = NULL;
	struct rest_export_opts o = { 0 };
	/* bob: ~1.6 MB through a 64 KiB ring */
	enum zmb_rc rc = rest_stream(hs, ts, hd, td, "bob@example.com", "bob@example.net", &o, "skip",
				     &bytes, &empty, NULL, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert(!empty);
	ck_assert_int_gt(bytes, 1000000);
	assert_same_content("bob@example.com", "bob@example.net");
	json_t *st = stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(st, "imports", "bob@example.net", "bytes"), bytes);
	json_t *reqs = json_object_get(st, "requests");
	size_t k;
	json_t *r;
	json_array_foreach(reqs, k, r) {
		if (streq(json_string_value(json_object_get(r, "method")), "POST") &&
		    !strncmp(json_string_value(json_object_get(r, "path")), "/service/home/", 14))
			ck_assert_str_eq(json_string_value(json_object_get(r, "te")), "chunked");
	}
	json_decref(st);

	/* a filtered export with no match: 204 -> no import at all */
	struct rest_export_opts f = { .types = "message" };
	rc = rest_stream(hs, ts, hd, td, "empty@example.com", "empty@example.net", &f, "skip", &bytes,
			 &empty, NULL, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert(empty);
	st = stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(st, "imports", "empty@example.net", "count"), 0);
	json_decref(st);

	/* a reset in the middle of the export aborts the import too */
	json_decref(zsim_post(E.src, "/zsim/knobs",
			      "{\"faults\":[{\"op\":\"export\",\"action\":\"reset\",\"after_bytes\":100000,"
			      "\"count\":1}]}"));
	rc = rest_stream(hs, ts, hd, td, "alice@example.com", "alice@example.net", &o, "skip", &bytes,
			 &empty, NULL, &err);
	ck_assert_int_eq(rc, ZMB_ETEMP);
	free(err);
	err = NULL;
	/* ...and the retry completes with no duplicates */
	rc = rest_stream(hs, ts, hd, td, "alice@example.com", "alice@example.net", &o, "skip", &bytes,
			 &empty, NULL, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	assert_same_content("alice@example.com", "alice@example.net");

	/* a revoked target token: the whole stream is retried once */
	json_decref(zsim_post(E.dst, "/zsim/revoke", "{}"));
	rc = rest_stream(hs, ts, hd, td, "alice@example.com", "alice@example.net", &o, "skip", &bytes,
			 &empty, NULL, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_int_eq(token_auth_count(td), 2);
	assert_same_content("alice@example.com", "alice@example.net");
	assert_no_token_in_url(E.src);
	assert_no_token_in_url(E.dst);
	token_cache_free(ts);
	token_cache_free(td);
	http_free(hs);
	http_free(hd);
}
END_TEST

START_TEST(test_export_204_503_404)
{
	struct http *h = http_new(&E.s, &E.job, &E.ctl);
	struct token_cache *tc = token_cache_new(&E.s, 1800, &E.ctl);
	char *path = xasprintf("%s/e.tgz", E.dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	long long bytes = 0;
	bool empty = false;
	char *err = NULL;
	struct rest_export_opts f = { .types = "message", .start_ms = 1 };
	enum zmb_rc rc = rest_export_file(h, tc, "empty@example.com", &f, fd, &bytes, &empty, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert(empty);
	ck_assert_int_eq(bytes, 0);
	json_decref(zsim_post(E.src, "/zsim/knobs",
			      "{\"faults\":[{\"op\":\"export\",\"action\":\"status\",\"status\":503,"
			      "\"count\":1},{\"op\":\"export\",\"action\":\"status\",\"status\":500,"
			      "\"count\":1}]}"));
	struct rest_export_opts o = { 0 };
	rc = rest_export_file(h, tc, "alice@example.com", &o, fd, &bytes, &empty, &err);
	ck_assert_int_eq(rc, ZMB_EBUSY);
	ck_assert_msg(tu_contains(err, "503"), "err: %s", err);
	free(err);
	err = NULL;
	rc = rest_export_file(h, tc, "alice@example.com", &o, fd, &bytes, &empty, &err);
	ck_assert_int_eq(rc, ZMB_ETEMP);
	free(err);
	err = NULL;
	ck_assert_int_eq(lseek(fd, 0, SEEK_END), 0);   /* nothing left behind */
	rc = rest_export_file(h, tc, "nobody@example.com", &o, fd, &bytes, &empty, &err);
	ck_assert_int_eq(rc, ZMB_ENOACCOUNT);
	free(err);
	err = NULL;
	/* a mid-stream reset is a temporary failure and truncates the file back */
	json_decref(zsim_post(E.src, "/zsim/knobs",
			      "{\"faults\":[{\"op\":\"export\",\"action\":\"reset\",\"after_bytes\":50000,"
			      "\"count\":1}]}"));
	rc = rest_export_file(h, tc, "bob@example.com", &o, fd, &bytes, &empty, &err);
	ck_assert_int_eq(rc, ZMB_ETEMP);
	ck_assert_int_eq(lseek(fd, 0, SEEK_END), 0);
	free(err);
	close(fd);
	free(path);
	token_cache_free(tc);
	http_free(h);
}
END_TEST

START_TEST(test_import_errors)
{
	struct http *h = http_new(&E.d, &E.job, &E.ctl);
	struct token_cache *tc = token_cache_new(&E.d, 1800, &E.ctl);
	char *path = tu_write(E.dir, "junk.tgz", "this is not a gzip archive at all\n", 0600);
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	long long bytes = 0;
	char *err = NULL;
	enum zmb_rc rc = rest_import_file(h, tc, "alice@example.net", "skip", fd, &bytes, NULL, &err);
	/* with callback= the real server answers 200 'fail' (ArchiveFormatter.saveCallback
	 * 883-887: an unreadable archive is formatter.INVALID_FORMAT, a sender fault) */
	ck_assert_int_eq(rc, ZMB_EPROTO);
	ck_assert_msg(tu_contains(err, "'fail'") && tu_contains(err, "formatter.INVALID_FORMAT"),
		      "err: %s", err);
	free(err);
	err = NULL;
	rc = rest_import_file(h, tc, "nobody@example.net", "skip", fd, &bytes, NULL, &err);
	ck_assert_int_eq(rc, ZMB_ENOACCOUNT);
	free(err);
	close(fd);
	free(path);
	token_cache_free(tc);
	http_free(h);
}
END_TEST

/* After the last byte the import may take long: no read timeout then... */
START_TEST(test_import_waits_after_last_byte)
{
	struct http *hs = http_new(&E.s, &E.job, &E.ctl);
	struct token_cache *ts = token_cache_new(&E.s, 1800, &E.ctl);
	struct token_cache *td = token_cache_new(&E.d, 1800, &E.ctl);
	char *path = xasprintf("%s/w.tgz", E.dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	long long eb = 0, ib = 0;
	bool empty = true;
	char *err = NULL;
	struct rest_export_opts o = { 0 };
	enum zmb_rc rc = rest_export_file(hs, ts, "alice@example.com", &o, fd, &eb, &empty, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	json_decref(zsim_post(E.dst, "/zsim/knobs", "{\"import_delay\":3}"));
	E.job.mig.low_speed_time = 1;       /* a stall rule far shorter than the wait */
	E.job.mig.low_speed_limit = 1000;
	struct http *hd = http_new(&E.d, &E.job, &E.ctl);
	double t0 = mono_now();
	rc = rest_import_file(hd, td, "alice@example.net", "skip", fd, &ib, NULL, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_msg(mono_now() - t0 >= 2.9, "import did not wait for the answer");
	assert_same_content("alice@example.com", "alice@example.net");
	/*
	 * ...but an upload that stops flowing is a stall.  The body must be
	 * larger than what loopback socket buffers swallow at once: a 12 MB
	 * archive of random data, read by the server at 100 kB/s.
	 */
	char *big = xasprintf("%s/big.tgz", E.dir);
	char *py = xasprintf("import tarfile,io,os\n"
			     "t=tarfile.open('%s','w:gz',compresslevel=1)\n"
			     "d=os.urandom(12000000); i=tarfile.TarInfo('Inbox/1.eml'); i.size=len(d)\n"
			     "t.addfile(i,io.BytesIO(d)); t.close()\n", big);
	char *argv[] = { (char *)"python3", (char *)"-c", py, NULL };
	struct tu_proc pr;
	ck_assert_int_eq(tu_run(argv, NULL, 30, &pr), 0);
	tu_proc_release(&pr);
	int bfd = open(big, O_RDONLY);
	ck_assert_int_ge(bfd, 0);
	json_decref(zsim_post(E.dst, "/zsim/knobs", "{\"import_delay\":0,\"bandwidth\":100000}"));
	E.job.mig.low_speed_time = 1;
	E.job.mig.low_speed_limit = 10000000;
	http_free(hd);
	hd = http_new(&E.d, &E.job, &E.ctl);
	t0 = mono_now();
	rc = rest_import_file(hd, td, "alice@example.net", "skip", bfd, &ib, NULL, &err);
	ck_assert_int_eq(rc, ZMB_ETEMP);
	ck_assert_msg(tu_contains(err, "stalled"), "err: %s", err);
	/* the whole upload would take 120 s at 100 kB/s: a stall rule of 1 s
	 * ends it long before (a generous bound, not a speed test) */
	ck_assert_msg(mono_now() - t0 < 40, "stall detected late");
	free(err);
	err = NULL;
	close(bfd);
	free(big);
	free(py);
	E.job.mig.low_speed_limit = 1000;
	/* an export whose first byte does not come is a stall too */
	json_decref(zsim_post(E.src, "/zsim/knobs",
			      "{\"faults\":[{\"op\":\"export\",\"action\":\"slow\",\"seconds\":4,\"count\":1}]}"));
	http_free(hs);
	hs = http_new(&E.s, &E.job, &E.ctl);
	rc = rest_export_file(hs, ts, "alice@example.com", &o, fd, &eb, &empty, &err);
	ck_assert_int_eq(rc, ZMB_ETEMP);
	ck_assert_msg(tu_contains(err, "stalled"), "err: %s", err);
	free(err);
	close(fd);
	free(path);
	token_cache_free(ts);
	token_cache_free(td);
	http_free(hs);
	http_free(hd);
}
END_TEST

START_TEST(test_cancel)
{
	/* a stop request aborts a throttled export quickly */
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":100000}"));
	runctl_init(&E.ctl, mono_now() + 1.0, 0);   /* window ends in 1 s, no grace */
	struct http *h = http_new(&E.s, &E.job, &E.ctl);
	struct token_cache *tc = token_cache_new(&E.s, 1800, &E.ctl);
	char *path = xasprintf("%s/c.tgz", E.dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	long long bytes = 0;
	bool empty = false;
	char *err = NULL;
	struct rest_export_opts o = { 0 };
	double t0 = mono_now();
	enum zmb_rc rc = rest_export_file(h, tc, "bob@example.com", &o, fd, &bytes, &empty, &err);
	ck_assert_int_eq(rc, ZMB_ECANCELED);
	/* bob (~1.6 MB) takes ~16 s at 100 kB/s; the stop at 1 s ends it well before */
	ck_assert_msg(mono_now() - t0 < 10.0, "cancel took too long");
	free(err);
	close(fd);
	free(path);
	token_cache_free(tc);
	http_free(h);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_client");
	TCase *tc;

	tc = tcase_create("auth");
	tcase_add_checked_fixture(tc, setup_one, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_auth_lifetime);
	tcase_add_test(tc, test_bad_password);
	tcase_add_test(tc, test_revoke_retry_once);
	tcase_add_test(tc, test_connect_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("refresh");
	tcase_add_checked_fixture(tc, setup_short_tokens, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_token_refresh_threads);
	suite_add_tcase(s, tc);

	tc = tcase_create("tls");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_tls_untrusted_then_ca_file);
	tcase_add_test(tc, test_tls_wrong_hostname);
	suite_add_tcase(s, tc);

	tc = tcase_create("tls_pin");
	tcase_add_checked_fixture(tc, setup_one, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_tls_pinned_key);
	suite_add_tcase(s, tc);

	tc = tcase_create("soap");
	tcase_add_checked_fixture(tc, setup_one, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_list_two_domains);
	tcase_add_test(tc, test_too_many_results);
	tcase_add_test(tc, test_get_account_size_modify);
	tcase_add_test(tc, test_soap_503_busy);
	suite_add_tcase(s, tc);

	tc = tcase_create("rest");
	tcase_add_checked_fixture(tc, setup_two, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_export_file_import);
	tcase_add_test(tc, test_stream);
	tcase_add_test(tc, test_export_204_503_404);
	tcase_add_test(tc, test_import_errors);
	tcase_add_test(tc, test_import_waits_after_last_byte);
	tcase_add_test(tc, test_cancel);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
