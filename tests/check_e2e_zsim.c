/*
 * check_e2e_zsim.c - tests of the simulated Zimbra server itself
 * (tests/zsim/zsim.py via tests/zsim.c), driven over HTTPS with libcurl.
 * If these fail, every other e2e suite's verdict is worthless.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#define SRC_CFG                                                                              \
	"{\"name\":\"src\",\"token_lifetime\":%g,\"domains\":["                                 \
	"{\"name\":\"example.com\",\"system_accounts\":true,\"accounts\":["                     \
	"{\"name\":\"alice@example.com\",\"items\":12,\"item_size\":[200,20000],"                \
	" \"folders\":[\"Inbox\",\"Archive/2023\"]},"                                            \
	"{\"name\":\"bob@example.com\",\"sizes\":[100,70000,3000]},"                             \
	"{\"name\":\"empty@example.com\"}]},"                                                    \
	"{\"name\":\"example.net\",\"generate\":{\"count\":7,\"items\":[0,3],\"item_size\":500}}]}"

#define DST_CFG                                                                              \
	"{\"name\":\"dst\",\"domains\":[{\"name\":\"example.com\",\"accounts\":["                \
	"{\"name\":\"alice@example.com\"},{\"name\":\"bob@example.com\"}]}]}"

static struct {
	struct zsim_pki *pki;
	struct zsim *src, *dst;
} E;

static struct zsim *start(const char *name, const char *cfg)
{
	struct zsim_opts o = { .name = name, .config_json = cfg, .pki = E.pki, .max_lifetime = 120 };
	struct zsim *z = zsim_start(&o);
	ck_assert_msg(z != NULL, "simulator %s did not start", name);
	return z;
}

/* the certificates (files only, no process) are made once, in the parent */
static void pki_setup(void)
{
	E.pki = zsim_pki_new(NULL);
	if (!E.pki)
		abort();
}

static void pki_teardown(void)
{
	zsim_pki_free(E.pki);
	E.pki = NULL;
}

static void setup_lifetime(double lifetime)
{
	ck_assert_ptr_nonnull(E.pki);
	char *cfg = xasprintf(SRC_CFG, lifetime);
	E.src = start("src", cfg);
	free(cfg);
	E.dst = start("dst", DST_CFG);
}

static void setup(void)
{
	setup_lifetime(43200);
}

/* 4 s tokens: short enough to wait out, long enough that the requests meant
 * to come before the expiry still do on a loaded machine */
#define SHORT_LIFETIME 4.0
static void setup_short(void)
{
	setup_lifetime(SHORT_LIFETIME);
}

static void teardown(void)
{
	zsim_stop(E.src);
	zsim_stop(E.dst);
	E.src = E.dst = NULL;
}

/* ---- helpers ---- */

static json_t *fault(json_t *r)
{
	return json_object_get(json_object_get(r, "Body"), "Fault");
}

static const char *fault_code(json_t *r)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(fault(r), "Detail"), "Error"),
						 "Code"));
}

static const char *fault_value(json_t *r)
{
	return json_string_value(json_object_get(json_object_get(fault(r), "Code"), "Value"));
}

static json_t *resp(json_t *r, const char *name)
{
	return json_object_get(json_object_get(r, "Body"), name);
}

static long soap_req(struct zsim *z, const char *tok, const char *req_json, json_t **reply)
{
	json_error_t e;
	json_t *req = json_loads(req_json, 0, &e);
	ck_assert_msg(req != NULL, "bad test JSON: %s", e.text);
	return zsim_soap(z, tok, req, reply);
}

static long rest(struct zsim *z, const char *method, const char *path, const char *tok,
		 const void *body, size_t len, char **out, size_t *out_len, char **hdrs)
{
	char *ck = tok ? xasprintf("Cookie: ZM_ADMIN_AUTH_TOKEN=%s", tok) : NULL;
	const char *h[] = { ck, "Content-Type: application/octet-stream", NULL };
	long st = zsim_http(z, method, path, ck ? h : h + 1, body, len, out, out_len, hdrs);
	free(ck);
	return st;
}

/* ---- SOAP ---- */

START_TEST(auth_ok_and_faults)
{
	json_t *r = NULL;
	char *hdrs = NULL;
	long st = soap_req(E.src, NULL,
			   "{\"AuthRequest\":{\"_jsns\":\"urn:zimbraAdmin\",\"name\":\"admin@example.com\","
			   "\"password\":\"test123\"}}", &r);
	ck_assert_int_eq(st, 200);
	json_t *ar = resp(r, "AuthResponse");
	const char *tok = json_string_value(json_object_get(json_array_get(json_object_get(ar, "authToken"), 0),
							    "_content"));
	ck_assert_ptr_nonnull(tok);
	ck_assert(!strncmp(tok, "0_", 2) && strchr(tok + 2, '_'));
	long long life = json_integer_value(json_object_get(ar, "lifetime"));
	ck_assert(life > 43100000 && life <= 43200000);
	char *t = xstrdup(tok);
	json_decref(r);

	/* Set-Cookie on the raw reply */
	const char *body = "{\"Body\":{\"AuthRequest\":{\"_jsns\":\"urn:zimbraAdmin\",\"name\":\"admin@example.com\","
			   "\"password\":\"test123\"}}}";
	ck_assert_int_eq(zsim_http(E.src, "POST", "/service/admin/soap", NULL, body, strlen(body), NULL, NULL,
				   &hdrs), 200);
	ck_assert(tu_contains(hdrs, "Set-Cookie: ZM_ADMIN_AUTH_TOKEN=0_"));
	ck_assert(tu_contains(hdrs, "text/javascript"));
	free(hdrs);

	/* bad password */
	st = soap_req(E.src, NULL, "{\"AuthRequest\":{\"_jsns\":\"urn:zimbraAdmin\",\"name\":\"admin@example.com\","
				   "\"password\":\"wrong\"}}", &r);
	ck_assert_int_eq(st, 500);
	ck_assert_str_eq(fault_code(r), "account.AUTH_FAILED");
	ck_assert_str_eq(fault_value(r), "soap:Sender");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(fault(r), "Reason"), "Text")),
			 "authentication failed for [admin@example.com]");
	json_decref(r);

	/* token-only AuthRequest returns the same token */
	char *req = xasprintf("{\"AuthRequest\":{\"_jsns\":\"urn:zimbraAdmin\",\"authToken\":[{\"_content\":\"%s\"}]}}", t);
	ck_assert_int_eq(soap_req(E.src, NULL, req, &r), 200);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(
		resp(r, "AuthResponse"), "authToken"), 0), "_content")), t);
	json_decref(r);
	free(req);

	/* no token, garbage token, another server's token */
	ck_assert_int_eq(soap_req(E.src, NULL, "{\"GetAllAccountsRequest\":{\"_jsns\":\"urn:zimbraAdmin\"}}", &r), 500);
	ck_assert_str_eq(fault_code(r), "service.AUTH_REQUIRED");
	json_decref(r);
	ck_assert_int_eq(soap_req(E.src, "0_abc_def", "{\"GetAllAccountsRequest\":{\"_jsns\":\"urn:zimbraAdmin\"}}",
				  &r), 500);
	ck_assert_str_eq(fault_code(r), "service.AUTH_REQUIRED");
	json_decref(r);
	char *dt = zsim_login(E.dst);
	ck_assert_int_eq(soap_req(E.src, dt, "{\"GetAllAccountsRequest\":{\"_jsns\":\"urn:zimbraAdmin\"}}", &r), 500);
	ck_assert_str_eq(fault_code(r), "service.AUTH_REQUIRED");
	json_decref(r);
	free(dt);

	/* unknown and malformed */
	ck_assert_int_eq(soap_req(E.src, t, "{\"NoSuchRequest\":{\"_jsns\":\"urn:zimbraAdmin\"}}", &r), 500);
	ck_assert_str_eq(fault_code(r), "service.UNKNOWN_DOCUMENT");
	json_decref(r);
	char *out = NULL;
	ck_assert_int_eq(zsim_http(E.src, "POST", "/service/admin/soap", NULL, "{\"Body\":", 8, &out, NULL, NULL), 500);
	r = json_loads(out, 0, NULL);
	ck_assert_str_eq(fault_code(r), "service.INVALID_REQUEST");
	json_decref(r);
	free(out);

	/* cookie instead of header */
	char *ck = xasprintf("Cookie: ZM_ADMIN_AUTH_TOKEN=%s", t);
	const char *h[] = { ck, NULL };
	const char *ga = "{\"Body\":{\"GetAccountRequest\":{\"_jsns\":\"urn:zimbraAdmin\","
			 "\"account\":{\"by\":\"name\",\"_content\":\"alice@example.com\"}}}}";
	ck_assert_int_eq(zsim_http(E.src, "POST", "/service/admin/soap", h, ga, strlen(ga), &out, NULL, NULL), 200);
	ck_assert(tu_contains(out, "\"name\": \"alice@example.com\""));
	free(out);
	free(ck);

	json_t *st_ = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_int(st_, "auth_requests/total"), 3);
	ck_assert_int_eq(zsim_stat_int(st_, "auth_requests/failed"), 1);
	ck_assert_int_eq(zsim_stat_int(st_, "soap_faults/service.AUTH_REQUIRED"), 3);
	json_decref(st_);
	free(t);
}
END_TEST

START_TEST(xml_soap)
{
	const char *auth =
		"<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Header>"
		"<context xmlns=\"urn:zimbra\"/></soap:Header><soap:Body><AuthRequest xmlns=\"urn:zimbraAdmin\">"
		"<name>admin@example.com</name><password>test123</password></AuthRequest></soap:Body></soap:Envelope>";
	const char *h[] = { "Content-Type: application/soap+xml; charset=utf-8", NULL };
	char *out = NULL, *hdrs = NULL;
	ck_assert_int_eq(zsim_http(E.src, "POST", "/service/admin/soap/", h, auth, strlen(auth), &out, NULL, &hdrs),
			 200);
	ck_assert(tu_contains(hdrs, "text/xml"));
	ck_assert(tu_contains(out, "<lifetime>"));
	char *a = strstr(out, "<authToken>");
	ck_assert_ptr_nonnull(a);
	a += strlen("<authToken>");
	char *tok = xstrndup(a, (size_t)(strstr(a, "</authToken>") - a));
	free(out);
	free(hdrs);

	char *ga = xasprintf("<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Header>"
			     "<context xmlns=\"urn:zimbra\"><authToken>%s</authToken></context></soap:Header><soap:Body>"
			     "<GetAccountRequest xmlns=\"urn:zimbraAdmin\" applyCos=\"0\"><account by=\"name\">%s</account>"
			     "</GetAccountRequest></soap:Body></soap:Envelope>", tok, "nobody@example.com");
	ck_assert_int_eq(zsim_http(E.src, "POST", "/service/admin/soap", h, ga, strlen(ga), &out, NULL, NULL), 500);
	ck_assert(tu_contains(out, "<Code>account.NO_SUCH_ACCOUNT</Code>"));
	ck_assert(tu_contains(out, "soap:Sender"));
	ck_assert(tu_contains(out, "no such account: nobody@example.com"));
	free(out);
	free(ga);
	free(tok);
}
END_TEST

START_TEST(token_expiry)
{
	char *t = zsim_login(E.src);
	ck_assert_ptr_nonnull(t);
	json_t *r = NULL;
	ck_assert_int_eq(soap_req(E.src, t, "{\"GetAllAccountsRequest\":{\"_jsns\":\"urn:zimbraAdmin\"}}", &r), 200);
	json_decref(r);
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/bob@example.com/?fmt=tgz", t, NULL, 0, NULL, NULL, NULL),
			 200);
	tu_sleep(SHORT_LIFETIME + 0.2);
	ck_assert_int_eq(soap_req(E.src, t, "{\"GetAllAccountsRequest\":{\"_jsns\":\"urn:zimbraAdmin\"}}", &r), 500);
	ck_assert_str_eq(fault_code(r), "service.AUTH_EXPIRED");
	json_decref(r);
	/* voidOnExpired: treated as missing */
	char *env = xasprintf("{\"Header\":{\"context\":{\"_jsns\":\"urn:zimbra\",\"authToken\":{\"_content\":\"%s\"},"
			      "\"authTokenControl\":{\"voidOnExpired\":\"1\"}}},\"Body\":{\"GetAllAccountsRequest\":"
			      "{\"_jsns\":\"urn:zimbraAdmin\"}}}", t);
	char *out = NULL;
	ck_assert_int_eq(zsim_http(E.src, "POST", "/service/admin/soap", NULL, env, strlen(env), &out, NULL, NULL), 500);
	ck_assert(tu_contains(out, "service.AUTH_REQUIRED"));
	free(out);
	free(env);
	char *hdrs = NULL;
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/bob@example.com/?fmt=tgz", t, NULL, 0, NULL, NULL, &hdrs),
			 401);
	ck_assert(!tu_contains(hdrs, "WWW-Authenticate"));
	free(hdrs);
	free(t);

	/* a fresh login works again; revoke makes it AUTH_EXPIRED at once */
	t = zsim_login(E.src);
	ck_assert_int_eq(soap_req(E.src, t, "{\"GetAllAccountsRequest\":{\"_jsns\":\"urn:zimbraAdmin\"}}", &r), 200);
	json_decref(r);
	json_t *rv = zsim_post(E.src, "/zsim/revoke", "{}");
	ck_assert_int_ge(json_integer_value(json_object_get(rv, "revoked")), 1);
	json_decref(rv);
	ck_assert_int_eq(soap_req(E.src, t, "{\"GetAllAccountsRequest\":{\"_jsns\":\"urn:zimbraAdmin\"}}", &r), 500);
	ck_assert_str_eq(fault_code(r), "service.AUTH_EXPIRED");
	json_decref(r);
	free(t);
}
END_TEST

START_TEST(search_directory)
{
	char *t = zsim_login(E.src);
	json_t *r = NULL;
	int seen = 0, sys = 0, offset = 0;
	bool more = true;
	while (more) {
		char *req = xasprintf("{\"SearchDirectoryRequest\":{\"_jsns\":\"urn:zimbraAdmin\",\"domain\":\"example.com\","
				      "\"types\":\"accounts\",\"attrs\":\"zimbraIsSystemAccount,zimbraIsSystemResource,"
				      "zimbraMailHost\",\"limit\":2,\"offset\":%d}}", offset);
		ck_assert_int_eq(soap_req(E.src, t, req, &r), 200);
		free(req);
		json_t *sr = resp(r, "SearchDirectoryResponse");
		ck_assert_int_eq(json_integer_value(json_object_get(sr, "searchTotal")), 7);
		json_t *accts = json_object_get(sr, "account"), *a;
		size_t i;
		ck_assert_int_le(json_array_size(accts), 2);
		json_array_foreach(accts, i, a) {
			seen++;
			json_t *attrs = json_object_get(a, "a"), *x;
			size_t k;
			ck_assert_ptr_nonnull(json_string_value(json_object_get(a, "id")));
			json_array_foreach(attrs, k, x) {
				const char *n = json_string_value(json_object_get(x, "n"));
				if (!strcmp(n, "zimbraIsSystemAccount") || !strcmp(n, "zimbraIsSystemResource")) {
					ck_assert_str_eq(json_string_value(json_object_get(x, "_content")), "TRUE");
					sys++;
					break;
				}
			}
		}
		more = json_is_true(json_object_get(sr, "more"));
		offset += 2;
		json_decref(r);
	}
	ck_assert_int_eq(seen, 7);   /* alice, bob, empty + 4 system accounts */
	ck_assert_int_eq(sys, 4);

	/* maxResults */
	ck_assert_int_eq(soap_req(E.src, t, "{\"SearchDirectoryRequest\":{\"_jsns\":\"urn:zimbraAdmin\","
					    "\"types\":\"accounts\",\"maxResults\":5}}", &r), 500);
	ck_assert_str_eq(fault_code(r), "account.TOO_MANY_SEARCH_RESULTS");
	ck_assert_str_eq(fault_value(r), "soap:Receiver");
	json_decref(r);
	/* generated domain, GetAllAccounts */
	ck_assert_int_eq(soap_req(E.src, t, "{\"GetAllAccountsRequest\":{\"_jsns\":\"urn:zimbraAdmin\","
					    "\"domain\":{\"by\":\"name\",\"_content\":\"example.net\"}}}", &r), 200);
	ck_assert_int_eq(json_array_size(json_object_get(resp(r, "GetAllAccountsResponse"), "account")), 7);
	json_decref(r);

	/* GetAccount -> id -> GetMailbox size; ModifyAccount visible in stats */
	ck_assert_int_eq(soap_req(E.src, t, "{\"GetAccountRequest\":{\"_jsns\":\"urn:zimbraAdmin\",\"applyCos\":0,"
					    "\"account\":{\"by\":\"name\",\"_content\":\"bob@example.com\"}}}", &r), 200);
	char *id = xstrdup(json_string_value(json_object_get(json_array_get(json_object_get(
		resp(r, "GetAccountResponse"), "account"), 0), "id")));
	json_decref(r);
	char *req = xasprintf("{\"GetMailboxRequest\":{\"_jsns\":\"urn:zimbraAdmin\",\"mbox\":{\"id\":\"%s\"}}}", id);
	ck_assert_int_eq(soap_req(E.src, t, req, &r), 200);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(
		resp(r, "GetMailboxResponse"), "mbox"), 0), "s")), 100 + 70000 + 3000);
	json_decref(r);
	free(req);
	req = xasprintf("{\"ModifyAccountRequest\":{\"_jsns\":\"urn:zimbraAdmin\",\"id\":{\"_content\":\"%s\"},"
			"\"a\":[{\"n\":\"zimbraMailTransport\",\"_content\":\"smtp:new.example.com\"}]}}", id);
	ck_assert_int_eq(soap_req(E.src, t, req, &r), 200);
	json_decref(r);
	free(req);
	json_t *st = zsim_stats(E.src);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(json_object_get(
		st, "accounts"), "bob@example.com"), "attrs"), "zimbraMailTransport")), "smtp:new.example.com");
	ck_assert_int_eq(zsim_stat_int(st, "soap/SearchDirectoryRequest"), 5);
	json_decref(st);
	/* ModifyAccount as the real handler: status enum, required, unknown id (issue 15) */
	const char *bad[][2] = {
		{ "zimbraAccountStatus\",\"_content\":\"locked", NULL },
		{ "zimbraAccountStatus\",\"_content\":\"", "service.INVALID_REQUEST" },
		{ "zimbraAccountStatus\",\"_content\":\"frozen", "account.INVALID_ATTR_VALUE" },
		{ "zimbraMailHost\",\"_content\":\"nowhere.example.com", "account.NO_SUCH_SERVER" },
		{ "zimbraMailTransport\",\"_content\":\"", NULL },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		req = xasprintf("{\"ModifyAccountRequest\":{\"_jsns\":\"urn:zimbraAdmin\",\"id\":\"%s\","
				"\"a\":[{\"n\":\"%s\"}]}}", id, bad[i][0]);
		ck_assert_int_eq(soap_req(E.src, t, req, &r), bad[i][1] ? 500 : 200);
		if (bad[i][1])
			ck_assert_str_eq(fault_code(r), bad[i][1]);
		json_decref(r);
		free(req);
	}
	ck_assert_int_eq(soap_req(E.src, t, "{\"ModifyAccountRequest\":{\"_jsns\":\"urn:zimbraAdmin\","
					    "\"id\":\"no-such-id\",\"a\":[]}}", &r), 500);
	ck_assert_str_eq(fault_code(r), "account.NO_SUCH_ACCOUNT");
	json_decref(r);
	ck_assert_int_eq(soap_req(E.src, t, "{\"ModifyAccountRequest\":{\"_jsns\":\"urn:zimbraAdmin\","
					    "\"a\":[]}}", &r), 500);
	ck_assert_str_eq(fault_code(r), "service.INVALID_REQUEST");
	json_decref(r);
	st = zsim_stats(E.src);
	json_t *bob = json_object_get(json_object_get(st, "accounts"), "bob@example.com");
	ck_assert_str_eq(json_string_value(json_object_get(bob, "status")), "locked");
	ck_assert_ptr_null(json_object_get(json_object_get(bob, "attrs"), "zimbraMailTransport"));
	ck_assert_int_eq(zsim_stat_int(st, "modify/bob@example.com/zimbraAccountStatus"), 1);
	json_decref(st);
	ck_assert_int_eq(soap_req(E.src, t, "{\"GetAccountRequest\":{\"_jsns\":\"urn:zimbraAdmin\","
					    "\"account\":{\"by\":\"name\",\"_content\":\"x@example.com\"}}}", &r), 500);
	ck_assert_str_eq(fault_code(r), "account.NO_SUCH_ACCOUNT");
	json_decref(r);
	free(id);
	free(t);
}
END_TEST

/* ---- REST ---- */

/* GetQuotaUsage pages as zm-mailbox's GetQuotaUsage.java does (see zsim.py for the lines). */
static json_t *quota_req(const char *tok, const char *attrs, long want_status)
{
	json_t *r = NULL;
	char *req = xasprintf("{\"GetQuotaUsageRequest\":{\"_jsns\":\"urn:zimbraAdmin\"%s%s}}",
			      *attrs ? "," : "", attrs);
	long st = soap_req(E.src, tok, req, &r);
	ck_assert_msg(st == want_status, "%s: HTTP %ld, want %ld", req, st, want_status);
	free(req);
	return r;
}

static const char *quota_name(json_t *r, size_t i)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(
		resp(r, "GetQuotaUsageResponse"), "account"), i), "name"));
}

static long long quota_used(json_t *r, size_t i)
{
	return json_integer_value(json_object_get(json_array_get(json_object_get(
		resp(r, "GetQuotaUsageResponse"), "account"), i), "used"));
}

static size_t quota_count(json_t *r)
{
	return json_array_size(json_object_get(resp(r, "GetQuotaUsageResponse"), "account"));
}

static bool quota_more(json_t *r)
{
	return json_is_true(json_object_get(resp(r, "GetQuotaUsageResponse"), "more"));
}

START_TEST(quota_usage_like_zimbra)
{
	char *t = zsim_login(E.src);
	/* example.com: alice, bob (73,100 bytes), empty, and 4 system accounts of 1 item each */
	json_t *r = quota_req(t, "\"domain\":\"example.com\",\"allServers\":1,\"sortBy\":\"totalUsed\","
			      "\"sortAscending\":0,\"limit\":0", 200);
	json_t *q = resp(r, "GetQuotaUsageResponse");
	ck_assert_int_eq(json_integer_value(json_object_get(q, "searchTotal")), 7);
	ck_assert(!quota_more(r));
	ck_assert_uint_eq(quota_count(r), 7);
	for (size_t i = 1; i < 7; i++)
		ck_assert_msg(quota_used(r, i - 1) >= quota_used(r, i), "not largest first at %zu", i);
	ck_assert_str_eq(quota_name(r, 0), "alice@example.com");   /* 12 items of 200..20,000 bytes */
	ck_assert_str_eq(quota_name(r, 1), "bob@example.com");
	ck_assert_int_eq(quota_used(r, 1), 100 + 70000 + 3000);   /* GetMailbox's s */
	ck_assert_str_eq(quota_name(r, 6), "empty@example.com");
	ck_assert_int_eq(quota_used(r, 6), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(q, "account"), 0),
							    "limit")), 0);   /* unlimited */
	ck_assert_ptr_nonnull(json_string_value(json_object_get(json_array_get(json_object_get(q, "account"), 0),
								"id")));
	json_decref(r);
	/* pages: offset/limit cut from the whole list; more says what is left */
	r = quota_req(t, "\"domain\":\"example.com\",\"allServers\":1,\"limit\":2,\"offset\":0", 200);
	ck_assert_uint_eq(quota_count(r), 2);
	ck_assert(quota_more(r));
	ck_assert_str_eq(quota_name(r, 1), "bob@example.com");   /* sortBy defaults to totalUsed, descending */
	json_decref(r);
	r = quota_req(t, "\"domain\":\"example.com\",\"allServers\":1,\"limit\":2,\"offset\":6", 200);
	ck_assert_uint_eq(quota_count(r), 1);
	ck_assert(!quota_more(r));
	ck_assert_str_eq(quota_name(r, 0), "empty@example.com");
	json_decref(r);
	r = quota_req(t, "\"domain\":\"example.com\",\"allServers\":1,\"sortAscending\":1,\"limit\":1", 200);
	ck_assert_str_eq(quota_name(r, 0), "empty@example.com");
	json_decref(r);
	/* refusals of the real handler */
	r = quota_req(t, "\"domain\":\"example.com\",\"sortBy\":\"size\"", 500);
	ck_assert_str_eq(fault_code(r), "service.INVALID_REQUEST");
	json_decref(r);
	r = quota_req(t, "\"domain\":\"nope.example\",\"allServers\":1", 500);
	ck_assert_str_eq(fault_code(r), "account.NO_SUCH_DOMAIN");
	json_decref(r);
	/* an account homed on another mailbox server: listed only with allServers, which
	 * counts only together with a domain */
	json_decref(zsim_post(E.src, "/zsim/add-account", "{\"name\":\"far@example.com\","
			      "\"mailhost\":\"other.zsim.local\",\"sizes\":[900000]}"));
	r = quota_req(t, "\"domain\":\"example.com\",\"allServers\":1", 200);
	ck_assert_uint_eq(quota_count(r), 8);
	ck_assert_str_eq(quota_name(r, 0), "far@example.com");
	json_decref(r);
	r = quota_req(t, "\"domain\":\"example.com\"", 200);
	ck_assert_uint_eq(quota_count(r), 7);
	json_decref(r);
	r = quota_req(t, "\"allServers\":1", 200);   /* no domain: this server's accounts, all domains */
	ck_assert_uint_eq(quota_count(r), 7 + 7);
	for (size_t i = 0; i < quota_count(r); i++)
		ck_assert_str_ne(quota_name(r, i), "far@example.com");
	json_decref(r);
	/* test knobs: a page cap below `limit`, and a refusal */
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"quota_page_max\":3}"));
	r = quota_req(t, "\"domain\":\"example.com\",\"allServers\":1,\"limit\":500,\"offset\":3", 200);
	ck_assert_uint_eq(quota_count(r), 3);
	ck_assert(quota_more(r));
	json_decref(r);
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"quota_refuse\":\"service.PERM_DENIED\"}"));
	r = quota_req(t, "\"domain\":\"example.com\",\"allServers\":1", 500);
	ck_assert_str_eq(fault_code(r), "service.PERM_DENIED");
	json_decref(r);
	json_t *st = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_int(st, "soap/GetQuotaUsageRequest"), 11);
	json_decref(st);
	free(t);
}
END_TEST

START_TEST(export_import_roundtrip)
{
	char *ts = zsim_login(E.src), *td = zsim_login(E.dst);
	char *tgz = NULL, *hdrs = NULL;
	size_t len = 0;
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/alice@example.com/?fmt=tgz", ts, NULL, 0, &tgz, &len, &hdrs),
			 200);
	ck_assert(tu_contains(hdrs, "Content-Type: application/x-compressed-tar"));
	ck_assert(tu_contains(hdrs, "Content-Disposition: attachment; filename="));
	ck_assert(!tu_contains(hdrs, "Content-Length"));
	ck_assert(tu_contains(hdrs, "Transfer-Encoding: chunked"));
	ck_assert((unsigned char)tgz[0] == 0x1f && (unsigned char)tgz[1] == 0x8b);
	free(hdrs);

	/* import chunked */
	char *ck = xasprintf("Cookie: ZM_ADMIN_AUTH_TOKEN=%s", td);
	const char *h[] = { ck, "Transfer-Encoding: chunked", "Content-Type: application/octet-stream", NULL };
	char *out = NULL;
	ck_assert_int_eq(zsim_http(E.dst, "POST", "/service/home/alice@example.com/?fmt=tgz&resolve=skip", h, tgz, len,
				   &out, NULL, NULL), 200);
	ck_assert_str_eq(out, "");
	free(out);
	json_t *a = zsim_stats(E.src), *b = zsim_stats(E.dst);
	ck_assert_str_eq(zsim_fingerprint(a, "alice@example.com"), zsim_fingerprint(b, "alice@example.com"));
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "alice@example.com", "items"), 12);
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "alice@example.com", "size"),
			 zsim_stat_acct(a, "accounts", "alice@example.com", "size"));
	ck_assert_int_eq(zsim_stat_acct(b, "imports", "alice@example.com", "added"), 12);
	ck_assert_int_eq(zsim_stat_acct(a, "exports", "alice@example.com", "bytes"), (long long)len);
	json_t *log = json_object_get(b, "requests"), *e;
	size_t i;
	bool chunked = false;
	json_array_foreach(log, i, e)
		if (json_is_string(json_object_get(e, "te")) && json_object_get(e, "account"))
			chunked = true;
	ck_assert(chunked);
	json_decref(a);
	json_decref(b);

	/* re-import with skip (Content-Length this time): no duplicates */
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/alice@example.com/?fmt=tgz&resolve=skip", td, tgz, len,
			      NULL, NULL, NULL), 200);
	/* default resolve is skip too */
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/alice@example.com/?fmt=tgz", td, tgz, len,
			      NULL, NULL, NULL), 200);
	b = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "alice@example.com", "items"), 12);
	ck_assert_int_eq(zsim_stat_acct(b, "imports", "alice@example.com", "skipped"), 24);
	ck_assert_int_eq(zsim_stat_int(b, "duplicates"), 0);
	json_decref(b);

	/* the target re-exports the same content */
	char *tgz2 = NULL;
	size_t len2 = 0;
	ck_assert_int_eq(rest(E.dst, "GET", "/home/alice@example.com?fmt=tgz", td, NULL, 0, &tgz2, &len2, NULL), 200);
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz&resolve=reset", td, tgz2, len2,
			      NULL, NULL, NULL), 200);
	b = zsim_stats(E.dst);
	ck_assert_str_eq(zsim_fingerprint(b, "alice@example.com"), zsim_fingerprint(b, "bob@example.com"));
	json_decref(b);

	/* bad resolve */
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz&resolve=merge", td, tgz, len,
			      NULL, NULL, NULL), 400);
	free(tgz2);
	free(tgz);
	free(ck);
	free(ts);
	free(td);
}
END_TEST

START_TEST(filtered_and_empty_exports)
{
	char *t = zsim_login(E.src);
	char *out = NULL;
	size_t len = 0;
	/* a filtered export with no match: 204 */
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/empty@example.com/?fmt=tgz&types=message", t, NULL, 0,
			      NULL, NULL, NULL), 204);
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/alice@example.com/?fmt=tgz&start=4102444800000", t, NULL, 0,
			      NULL, NULL, NULL), 204);
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/alice@example.com/?fmt=tgz&query=after:01/01/2100", t, NULL,
			      0, NULL, NULL, NULL), 204);
	/* a full export of an empty mailbox still has the folders */
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/empty@example.com/?fmt=tgz", t, NULL, 0, &out, &len, NULL),
			 200);
	ck_assert_int_gt(len, 20);
	free(out);

	/* delta: new items dated now are the only ones after a mark.  after:<ms> means
	 * date >= ms + 1000 and item dates are whole seconds (DateQuery, MailItem): the new
	 * items must be dated more than a second after the mark, as in the zmbatch suites */
	json_t *st = zsim_stats(E.src);
	long long mark = zsim_stat_int(st, "now_ms");
	json_decref(st);
	tu_sleep(1.1);
	json_decref(zsim_post(E.src, "/zsim/add-items", "{\"account\":\"alice@example.com\",\"n\":3,\"size\":1000}"));
	char *path = xasprintf("/service/home/alice@example.com/?fmt=tgz&start=%lld", mark - 1);
	ck_assert_int_eq(rest(E.src, "GET", path, t, NULL, 0, &out, &len, NULL), 200);
	free(path);
	char *td = zsim_login(E.dst);
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz", td, out, len, NULL, NULL, NULL),
			 200);
	free(out);
	st = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(st, "accounts", "bob@example.com", "items"), 3);
	json_decref(st);
	free(td);

	/* REST auth: none -> 401 + WWW-Authenticate; unknown account with cookie -> 404 */
	char *hdrs = NULL;
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/alice@example.com/?fmt=tgz", NULL, NULL, 0, NULL, NULL,
			      &hdrs), 401);
	ck_assert(tu_contains(hdrs, "WWW-Authenticate: Basic"));
	free(hdrs);
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/nobody@example.com/?fmt=tgz", t, NULL, 0, NULL, NULL, NULL),
			 404);
	/* a token in the URL works but is recorded */
	path = xasprintf("/service/home/bob@example.com/?fmt=tgz&authToken=%s", t);
	ck_assert_int_eq(rest(E.src, "GET", path, NULL, NULL, 0, NULL, NULL, NULL), 200);
	free(path);
	st = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_int(st, "tokens_in_url"), 1);
	json_t *log = json_object_get(st, "requests"), *e;
	size_t i;
	json_array_foreach(log, i, e)
		ck_assert(!tu_contains(json_string_value(json_object_get(e, "query")), t));
	json_decref(st);
	free(t);
}
END_TEST

START_TEST(truncated_import_keeps_items)
{
	char *ts = zsim_login(E.src), *td = zsim_login(E.dst);
	char *tgz = NULL;
	size_t len = 0;
	/* bob: items of 100, 70000, 3000 bytes; cut inside the big one */
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/bob@example.com/?fmt=tgz", ts, NULL, 0, &tgz, &len, NULL),
			 200);
	ck_assert_int_gt(len, 70000);
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz", td, tgz, 40000, NULL, NULL, NULL),
			 500);
	json_t *st = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(st, "accounts", "bob@example.com", "items"), 1);
	ck_assert_int_eq(zsim_stat_acct(st, "imports", "bob@example.com", "added"), 1);
	json_decref(st);
	/* the retry with skip completes without duplicates */
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz", td, tgz, len, NULL, NULL, NULL),
			 200);
	st = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(st, "accounts", "bob@example.com", "items"), 3);
	ck_assert_int_eq(zsim_stat_int(st, "duplicates"), 0);
	json_t *sst = zsim_stats(E.src);
	ck_assert_str_eq(zsim_fingerprint(sst, "bob@example.com"), zsim_fingerprint(st, "bob@example.com"));
	json_decref(sst);
	json_decref(st);
	/* garbage is a 500 too */
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz", td, "not a tgz", 9, NULL, NULL,
			      NULL), 500);
	free(tgz);
	free(ts);
	free(td);
}
END_TEST

START_TEST(knobs_fire_n_times)
{
	char *t = zsim_login(E.src);
	json_decref(zsim_post(E.src, "/zsim/knobs",
			      "{\"faults\":[{\"op\":\"export\",\"account\":\"bob@example.com\",\"action\":\"status\","
			      "\"status\":500,\"count\":2},"
			      "{\"op\":\"soap\",\"request\":\"GetAccountRequest\",\"action\":\"status\",\"status\":503,"
			      "\"count\":1},"
			      "{\"op\":\"soap\",\"request\":\"GetAllAccountsRequest\",\"action\":\"status\",\"count\":1,"
			      "\"code\":\"service.TEMPORARILY_UNAVAILABLE\"}]}"));
	const char *p = "/service/home/bob@example.com/?fmt=tgz";
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/alice@example.com/?fmt=tgz", t, NULL, 0, NULL, NULL, NULL),
			 200);
	ck_assert_int_eq(rest(E.src, "GET", p, t, NULL, 0, NULL, NULL, NULL), 500);
	ck_assert_int_eq(rest(E.src, "GET", p, t, NULL, 0, NULL, NULL, NULL), 500);
	ck_assert_int_eq(rest(E.src, "GET", p, t, NULL, 0, NULL, NULL, NULL), 200);
	json_t *r = NULL;
	const char *ga = "{\"GetAccountRequest\":{\"_jsns\":\"urn:zimbraAdmin\",\"account\":{\"by\":\"name\","
			 "\"_content\":\"bob@example.com\"}}}";
	ck_assert_int_eq(soap_req(E.src, t, ga, &r), 503);
	json_decref(r);
	ck_assert_int_eq(soap_req(E.src, t, ga, &r), 200);
	json_decref(r);
	ck_assert_int_eq(soap_req(E.src, t, "{\"GetAllAccountsRequest\":{\"_jsns\":\"urn:zimbraAdmin\"}}", &r), 500);
	ck_assert_str_eq(fault_code(r), "service.TEMPORARILY_UNAVAILABLE");
	json_decref(r);
	ck_assert_int_eq(soap_req(E.src, t, "{\"GetAllAccountsRequest\":{\"_jsns\":\"urn:zimbraAdmin\"}}", &r), 200);
	json_decref(r);
	json_t *st = zsim_stats(E.src);
	json_t *f = json_object_get(st, "faults");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(f, 0), "fired")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(f, 0), "count")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(f, 1), "fired")), 1);
	json_decref(st);

	/* reset mid-export: transport error; truncated export: 200 but the import says 500 */
	json_decref(zsim_post(E.src, "/zsim/knobs",
			      "{\"faults\":[{\"op\":\"export\",\"action\":\"reset\",\"after_bytes\":30000,\"count\":1},"
			      "{\"op\":\"export\",\"action\":\"truncate\",\"after_bytes\":30000,\"count\":1}]}"));
	char *out = NULL;
	size_t len = 0;
	ck_assert_int_eq(rest(E.src, "GET", p, t, NULL, 0, &out, &len, NULL), 0);
	ck_assert_int_eq(rest(E.src, "GET", p, t, NULL, 0, &out, &len, NULL), 200);
	ck_assert_int_eq(len, 30000);
	char *td = zsim_login(E.dst);
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz", td, out, len, NULL, NULL, NULL),
			 500);
	free(out);
	ck_assert_int_eq(rest(E.src, "GET", p, t, NULL, 0, NULL, NULL, NULL), 200);

	/* down for a moment: connections reset, then fine */
	/* (5 s, so that a loaded machine still sends the first request inside it) */
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"faults\":[],\"down\":5}"));
	ck_assert_int_eq(rest(E.src, "GET", p, t, NULL, 0, NULL, NULL, NULL), 0);
	int back = 0;
	for (int i = 0; i < 120 && back != 200; i++) {
		back = rest(E.src, "GET", p, t, NULL, 0, NULL, NULL, NULL);
		if (back != 200)
			tu_sleep(0.25);
	}
	ck_assert_int_eq(back, 200);

	/* invisible item failures on import */
	json_decref(zsim_post(E.dst, "/zsim/knobs",
			      "{\"faults\":[{\"op\":\"import\",\"action\":\"item_fail\",\"every\":2,\"count\":1}]}"));
	ck_assert_int_eq(rest(E.src, "GET", p, t, NULL, 0, &out, &len, NULL), 200);
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz", td, out, len, NULL, NULL, NULL),
			 200);
	st = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(st, "accounts", "bob@example.com", "items"), 2);
	ck_assert_int_eq(zsim_stat_acct(st, "imports", "bob@example.com", "failed"), 1);
	json_decref(st);
	free(out);
	free(td);
	free(t);
}
END_TEST

/*
 * Jetty's DoSFilter as Zimbra configures it (tests/zsim/zsim.py dos_filter):
 * with maxRequestsPerSec N, a request is refused (429, "DoSFilter:
 * unavailable", no Retry-After) when its tracker saw N requests in the last
 * second, refused ones included.  REST with the admin cookie is tracked per
 * admin account, across connections; SOAP with the token in the envelope per
 * client IP:port (every zsim_http call is a new connection).
 */
START_TEST(dos_filter_like_jetty)
{
	char *t = zsim_login(E.src);
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"dos_max_requests_per_sec\":3}"));
	const char *p = "/service/home/empty@example.com/?fmt=tgz";
	long st[6];
	int refused = 0;
	for (int i = 0; i < 6; i++) {
		char *h = NULL;
		st[i] = rest(E.src, "GET", p, t, NULL, 0, NULL, NULL, &h);
		ck_assert_msg(st[i] == 200 || st[i] == 429, "status %ld", st[i]);
		if (st[i] == 429) {
			refused++;
			ck_assert_msg(tu_contains(h, "DoSFilter: unavailable"), "headers: %s", h);
			ck_assert_msg(!tu_contains(h, "Retry-After"), "headers: %s", h);
		}
		free(h);
	}
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(st[i], 200);
	/* the verdicts follow the RateTracker rule over the simulator's own times */
	json_t *s = zsim_stats(E.src), *e;
	json_t *log = json_object_get(s, "requests");
	double at[6];
	int n = 0;
	size_t k;
	json_array_foreach(log, k, e) {
		const char *path = json_string_value(json_object_get(e, "path"));
		if (path && !strncmp(path, "/service/home/", 14) && n < 6)
			at[n++] = json_real_value(json_object_get(e, "at"));
	}
	ck_assert_int_eq(n, 6);
	/* six requests on fresh TLS connections take well under a second here */
	ck_assert_msg(at[5] - at[0] >= 1.0 || refused > 0, "nothing refused in %.3f s", at[5] - at[0]);
	for (int i = 3; i < 6; i++) {
		double gap = at[i] - at[i - 3];
		fprintf(stderr, "dos: request %d: %ld, %.3f s after request %d\n", i, st[i], gap, i - 3);
		if (gap > 0.98 && gap < 1.02)
			continue;   /* too close to the edge to judge from wall-clock times */
		ck_assert_msg((st[i] == 429) == (gap < 1.0), "request %d: %ld after %.3f s", i, st[i], gap);
	}
	ck_assert_int_eq(zsim_stat_int(s, "dos/rejected"), refused);
	ck_assert_int_eq(zsim_stat_int(s, "dos/rest"), refused);
	ck_assert_int_eq(zsim_stat_int(s, "dos/by_tracker/user"), refused);
	json_decref(s);
	/* SOAP on new connections: one tracker each, never refused */
	const char *ga = "{\"GetAccountRequest\":{\"_jsns\":\"urn:zimbraAdmin\",\"account\":{\"by\":\"name\","
			 "\"_content\":\"bob@example.com\"}}}";
	for (int i = 0; i < 5; i++) {
		json_t *r = NULL;
		ck_assert_int_eq(soap_req(E.src, t, ga, &r), 200);
		json_decref(r);
	}
	/* a second quiet: the admin's ring has aged out */
	tu_sleep(1.1);
	ck_assert_int_eq(rest(E.src, "GET", p, t, NULL, 0, NULL, NULL, NULL), 200);
	/* 0 turns it off */
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"dos_max_requests_per_sec\":0}"));
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(rest(E.src, "GET", p, t, NULL, 0, NULL, NULL, NULL), 200);
	free(t);
}
END_TEST

START_TEST(stream_survives_expiry)
{
	/* 4 s token, 12 kB/s: a ~73 kB export (6 s) runs past the expiry and completes */
	char *t = zsim_login(E.src);
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":12000}"));
	json_decref(zsim_post(E.src, "/zsim/revoke", "{}"));
	free(t);
	t = zsim_login(E.src);
	char *out = NULL;
	size_t len = 0;
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/bob@example.com/?fmt=tgz", t, NULL, 0, &out, &len, NULL),
			 200);
	ck_assert_int_gt(len, 70000);
	free(out);
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/bob@example.com/?fmt=tgz", t, NULL, 0, NULL, NULL, NULL),
			 401);
	free(t);
}
END_TEST

START_TEST(tls_variants)
{
	struct zsim_opts o = { .name = "self", .pki = E.pki, .cert = ZSIM_CERT_SELF };
	struct zsim *z = zsim_start(&o);
	ck_assert_ptr_nonnull(z);
	ck_assert_int_eq(zsim_http(z, "GET", "/zsim/health", NULL, NULL, 0, NULL, NULL, NULL), 200);
	/* a client trusting the test CA must refuse it */
	free(z->trust_file);
	z->trust_file = xstrdup(E.pki->ca_file);
	ck_assert_int_eq(zsim_http(z, "GET", "/zsim/health", NULL, NULL, 0, NULL, NULL, NULL), 0);
	zsim_stop(z);
	struct zsim_opts w = { .name = "wrong", .pki = E.pki, .cert = ZSIM_CERT_WRONG };
	z = zsim_start(&w);
	ck_assert_ptr_nonnull(z);
	ck_assert_int_eq(zsim_http(z, "GET", "/zsim/health", NULL, NULL, 0, NULL, NULL, NULL), 200);
	z->verify_host = true;
	ck_assert_int_eq(zsim_http(z, "GET", "/zsim/health", NULL, NULL, 0, NULL, NULL, NULL), 0);
	pid_t pid = z->pid;
	zsim_stop(z);
	ck_assert_int_ne(kill(pid, 0), 0);
}
END_TEST

START_TEST(import_variants)
{
	char *ts = zsim_login(E.src), *td = zsim_login(E.dst);
	char *tgz = NULL;
	size_t len = 0;
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/bob@example.com/?fmt=tgz", ts, NULL, 0, &tgz, &len, NULL),
			 200);
	/* multipart/form-data: the first file part is the archive */
	const char *pre = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.tgz\"\r\n"
			  "Content-Type: application/octet-stream\r\n\r\n";
	const char *post = "\r\n--XyZ--\r\n";
	size_t n = strlen(pre) + len + strlen(post);
	char *mp = xmalloc(n);
	memcpy(mp, pre, strlen(pre));
	memcpy(mp + strlen(pre), tgz, len);
	memcpy(mp + strlen(pre) + len, post, strlen(post));
	char *ck = xasprintf("Cookie: ZM_ADMIN_AUTH_TOKEN=%s", td);
	const char *h[] = { ck, "Content-Type: multipart/form-data; boundary=XyZ", NULL };
	ck_assert_int_eq(zsim_http(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz", h, mp, n, NULL, NULL, NULL),
			 200);
	json_t *a = zsim_stats(E.src), *b = zsim_stats(E.dst);
	ck_assert_str_eq(zsim_fingerprint(a, "bob@example.com"), zsim_fingerprint(b, "bob@example.com"));
	json_decref(a);
	json_decref(b);
	free(mp);

	/* the server dies mid-upload: transport error, items before the cut stay */
	json_decref(zsim_post(E.dst, "/zsim/knobs",
			      "{\"faults\":[{\"op\":\"import\",\"action\":\"reset\",\"after_bytes\":60000}]}"));
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/alice@example.com/?fmt=tgz", td, tgz, len, NULL, NULL, NULL),
			 0);
	/* the client sees the reset before the simulator's handler has recorded the
	 * import (its thread is still unwinding): wait for the record, at most 10 s */
	b = NULL;
	for (int i = 0; i < 200; i++) {
		json_decref(b);
		b = zsim_stats(E.dst);
		if (zsim_stat_acct(b, "imports", "alice@example.com", "count") >= 1)
			break;
		tu_sleep(0.05);
	}
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "alice@example.com", "items"), 1);
	ck_assert_int_eq(zsim_stat_acct(b, "imports", "alice@example.com", "count"), 1);
	json_decref(b);
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/alice@example.com/?fmt=tgz", td, tgz, len, NULL, NULL, NULL),
			 200);

	/* a slow first byte and an import that takes its time to answer */
	json_decref(zsim_post(E.src, "/zsim/knobs",
			      "{\"faults\":[{\"op\":\"export\",\"action\":\"slow\",\"seconds\":0.7}]}"));
	json_decref(zsim_post(E.dst, "/zsim/knobs", "{\"import_delay\":0.7}"));
	double t0 = (double)time(NULL);
	struct timespec s0, s1;
	clock_gettime(CLOCK_MONOTONIC, &s0);
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/bob@example.com/?fmt=tgz", ts, NULL, 0, NULL, NULL, NULL),
			 200);
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz", td, tgz, len, NULL, NULL, NULL),
			 200);
	clock_gettime(CLOCK_MONOTONIC, &s1);
	(void)t0;
	ck_assert((double)(s1.tv_sec - s0.tv_sec) + (double)(s1.tv_nsec - s0.tv_nsec) / 1e9 >= 1.4);

	/* delete-account, then CreateAccountRequest makes an empty one */
	json_t *r = zsim_post(E.dst, "/zsim/delete-account", "{\"name\":\"bob@example.com\"}");
	ck_assert(json_is_true(json_object_get(r, "deleted")));
	json_decref(r);
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz", td, tgz, len, NULL, NULL, NULL),
			 404);
	ck_assert_int_eq(soap_req(E.dst, td, "{\"CreateAccountRequest\":{\"_jsns\":\"urn:zimbraAdmin\","
					     "\"name\":\"bob@example.com\",\"password\":\"x\"}}", &r), 200);
	json_decref(r);
	ck_assert_int_eq(soap_req(E.dst, td, "{\"CreateAccountRequest\":{\"_jsns\":\"urn:zimbraAdmin\","
					     "\"name\":\"bob@example.com\"}}", &r), 500);
	ck_assert_str_eq(fault_code(r), "account.ACCOUNT_EXISTS");
	json_decref(r);
	b = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "bob@example.com", "items"), 0);
	json_decref(b);
	free(ck);
	free(tgz);
	free(ts);
	free(td);
}
END_TEST

/*
 * A tgz made with tar(1) of the given files (NULL-terminated { path, text }
 * pairs; data entries without .meta: the folder is the directory, as in the
 * simulator's import).  *len gets its size; caller frees.
 */
static char *make_tgz(const char *const files[][2], size_t *len)
{
	char *dir = tu_tmpdir("zsim-tgz");
	char *list[16];
	int n = 0;
	for (size_t i = 0; files[i][0]; i++) {
		char *sub = xasprintf("%s/%s", dir, files[i][0]);
		*strrchr(sub, '/') = '\0';
		char *mk[] = { (char *)"mkdir", (char *)"-p", sub, NULL };
		struct tu_proc p;
		ck_assert_int_eq(tu_run(mk, NULL, 10, &p), 0);
		tu_proc_release(&p);
		free(sub);
		free(tu_write(dir, files[i][0], files[i][1], 0644));
		list[n++] = (char *)files[i][0];
	}
	char *out = xasprintf("%s/a.tgz", dir);
	char *argv[24] = { (char *)"tar", (char *)"--sort=name", (char *)"-C", dir, (char *)"-czf", out };
	for (int i = 0; i < n; i++)
		argv[6 + i] = list[i];
	argv[6 + n] = NULL;
	struct tu_proc p;
	ck_assert_int_eq(tu_run(argv, NULL, 10, &p), 0);
	tu_proc_release(&p);
	FILE *f = fopen(out, "rb");
	ck_assert_ptr_nonnull(f);
	char *buf = xmalloc(1 << 16);
	*len = fread(buf, 1, 1 << 16, f);
	fclose(f);
	free(out);
	tu_rmrf(dir);
	free(dir);
	return buf;
}

static long long imp(json_t *st, const char *acct, const char *key)
{
	return zsim_stat_acct(st, "imports", acct, key);
}

/*
 * The import dedups like the real one (ArchiveFormatter addItem, case MESSAGE,
 * and FolderDigestInfo): by digest in the destination folder, in every
 * resolve mode, with the folder's digests read once per import.
 */
START_TEST(import_dedup_like_zimbra)
{
	char *ts = zsim_login(E.src), *td = zsim_login(E.dst);
	static const char *const twins[][2] = {
		{ "Inbox/1.eml", "Subject: twin\r\n\r\nsame body\r\n" },
		{ "Inbox/2.eml", "Subject: twin\r\n\r\nsame body\r\n" },
		{ "Sent/3.eml", "Subject: other\r\n\r\nanother body\r\n" },
		{ NULL, NULL } };
	size_t tl = 0;
	char *tw = make_tgz(twins, &tl);
	const char *A = "/service/home/alice@example.com/?fmt=tgz";

	/* two equal messages in one archive are both added: the folder's digests
	 * were read before either was */
	ck_assert_int_eq(rest(E.dst, "POST", A, td, tw, tl, NULL, NULL, NULL), 200);
	json_t *b = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "alice@example.com", "items"), 3);
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "alice@example.com", "duplicates"), 1);
	ck_assert_int_eq(imp(b, "alice@example.com", "added"), 3);
	json_decref(b);

	/* the same archive again with skip (and modify) adds nothing */
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/alice@example.com/?fmt=tgz&resolve=skip", td, tw, tl,
			      NULL, NULL, NULL), 200);
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/alice@example.com/?fmt=tgz&resolve=modify", td, tw, tl,
			      NULL, NULL, NULL), 200);
	b = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "alice@example.com", "items"), 3);
	ck_assert_int_eq(imp(b, "alice@example.com", "added"), 3);
	ck_assert_int_eq(imp(b, "alice@example.com", "skipped"), 6);
	/* the resolve of each import is recorded (no resolve= is skip) */
	ck_assert_int_eq(zsim_stat_int(b, "imports/alice@example.com/resolve/skip"), 2);
	ck_assert_int_eq(zsim_stat_int(b, "imports/alice@example.com/resolve/modify"), 1);
	json_decref(b);

	/* replace deletes the one old copy the digest map names and adds the new one;
	 * the second twin finds that id gone: the real getMessageById throws, the item
	 * is an error and not imported */
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/alice@example.com/?fmt=tgz&resolve=replace", td, tw, tl,
			      NULL, NULL, NULL), 200);
	b = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "alice@example.com", "items"), 3);
	ck_assert_int_eq(imp(b, "alice@example.com", "replaced"), 2);
	ck_assert_int_eq(imp(b, "alice@example.com", "failed"), 1);
	json_decref(b);

	/* a message moved to another folder between passes is added again there */
	static const char *const moved[][2] = {
		{ "Archive/1.eml", "Subject: twin\r\n\r\nsame body\r\n" }, { NULL, NULL } };
	size_t ml = 0;
	char *mv = make_tgz(moved, &ml);
	ck_assert_int_eq(rest(E.dst, "POST", A, td, mv, ml, NULL, NULL, NULL), 200);
	b = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "alice@example.com", "items"), 4);
	ck_assert_int_eq(imp(b, "alice@example.com", "added"), 4);
	json_decref(b);

	/* replace of a whole mailbox: same count, every item replaced, content equal */
	char *tgz = NULL;
	size_t len = 0;
	const char *B = "/service/home/bob@example.com/?fmt=tgz";
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/alice@example.com/?fmt=tgz", ts, NULL, 0, &tgz, &len,
			      NULL), 200);
	ck_assert_int_eq(rest(E.dst, "POST", B, td, tgz, len, NULL, NULL, NULL), 200);
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz&resolve=replace", td, tgz, len,
			      NULL, NULL, NULL), 200);
	json_t *a = zsim_stats(E.src);
	b = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "bob@example.com", "items"), 12);
	ck_assert_int_eq(imp(b, "bob@example.com", "added"), 12);
	ck_assert_int_eq(imp(b, "bob@example.com", "replaced"), 12);
	ck_assert_str_eq(zsim_fingerprint(a, "alice@example.com"), zsim_fingerprint(b, "bob@example.com"));
	json_decref(b);

	/* reset empties the folders first, then nothing is "already there" */
	ck_assert_int_eq(rest(E.dst, "POST", B, td, tw, tl, NULL, NULL, NULL), 200);
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/?fmt=tgz&resolve=reset", td, tgz, len,
			      NULL, NULL, NULL), 200);
	b = zsim_stats(E.dst);
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "bob@example.com", "items"), 12);
	ck_assert_int_eq(imp(b, "bob@example.com", "added"), 12 + 3 + 12);
	ck_assert_str_eq(zsim_fingerprint(a, "alice@example.com"), zsim_fingerprint(b, "bob@example.com"));
	json_decref(b);
	json_decref(a);

	/* an import URL naming a folder: a message from that folder stays there, one
	 * from another folder lands below it (addItem: path = fldr path + id.path) */
	ck_assert_int_eq(rest(E.dst, "POST", "/service/home/bob@example.com/Inbox?fmt=tgz&resolve=reset", td, tw, tl,
			      NULL, NULL, NULL), 200);
	b = zsim_stats(E.dst);
	json_t *dg = json_object_get(json_object_get(json_object_get(b, "accounts"), "bob@example.com"), "digests");
	size_t i;
	json_t *e;
	int in_inbox = 0, in_sent = 0;
	json_array_foreach(dg, i, e) {
		const char *d = json_string_value(e);
		in_inbox += strncmp(d, "Inbox/", 6) == 0 && strchr(d + 6, '/') == NULL;
		in_sent += strncmp(d, "Inbox/Sent/", 11) == 0;
	}
	/* reset emptied Inbox only: Archive/2023 keeps its 6 */
	ck_assert_int_eq(zsim_stat_acct(b, "accounts", "bob@example.com", "items"), 6 + 3);
	ck_assert_int_eq(in_inbox, 2);
	ck_assert_int_eq(in_sent, 1);
	json_decref(b);
	free(tgz);
	free(mv);
	free(tw);
	free(ts);
	free(td);
}
END_TEST

/* A test process that dies without zsim_stop leaves no simulator behind. */
/* ---- item kinds, date windows, list=, mail SOAP (details: tests/zsim/selftest.py) ---- */

/* a mail request with an admin token acting on `acct` (NULL: no <account> header) */
static long mail_req(struct zsim *z, const char *tok, const char *acct, const char *name, const char *attrs,
		     json_t **reply)
{
	char *hdr = acct ? xasprintf(",\"account\":{\"by\":\"name\",\"_content\":\"%s\"}", acct) : xstrdup("");
	char *body = xasprintf("{\"Header\":{\"context\":{\"_jsns\":\"urn:zimbra\",\"authToken\":\"%s\"%s}},"
			       "\"Body\":{\"%s\":{\"_jsns\":\"urn:zimbraMail\"%s%s}}}",
			       tok, hdr, name, *attrs ? "," : "", attrs);
	const char *h[] = { "Content-Type: application/json", NULL };
	char *out = NULL;
	long st = zsim_http(z, "POST", "/service/admin/soap", h, body, strlen(body), &out, NULL, NULL);
	*reply = out ? json_loads(out, 0, NULL) : NULL;
	free(out);
	free(body);
	free(hdr);
	return st;
}

static json_t *child_named(json_t *folder, const char *name)
{
	json_t *f;
	size_t i;
	json_array_foreach(json_object_get(folder, "folder"), i, f)
		if (!strcmp(json_string_value(json_object_get(f, "name")), name))
			return f;
	return NULL;
}

/* GetFolder / Search with an admin token and <account by="name">, as ZimbraSoapContext
 * reads the header: ids qualified with the account's zimbraId, Zimbra's fixed folder ids */
START_TEST(mail_soap_admin_on_account)
{
	char *t = zsim_login(E.src);
	json_t *st = zsim_stats(E.src), *r = NULL;
	char *zid = xstrdup(json_string_value(
		json_object_get(json_object_get(json_object_get(st, "accounts"), "alice@example.com"), "id")));
	json_decref(st);

	ck_assert_int_eq(mail_req(E.src, t, "alice@example.com", "GetFolderRequest", "", &r), 200);
	json_t *gf = resp(r, "GetFolderResponse");
	ck_assert_str_eq(json_string_value(json_object_get(gf, "_jsns")), "urn:zimbraMail");
	json_t *root = json_array_get(json_object_get(gf, "folder"), 0);
	char *want = xasprintf("%s:1", zid);
	ck_assert_str_eq(json_string_value(json_object_get(root, "id")), want);
	free(want);
	json_t *inbox = child_named(root, "Inbox");
	ck_assert_ptr_nonnull(inbox);
	want = xasprintf("%s:2", zid);
	ck_assert_str_eq(json_string_value(json_object_get(inbox, "id")), want);
	free(want);
	ck_assert_str_eq(json_string_value(json_object_get(inbox, "absFolderPath")), "/Inbox");
	ck_assert_str_eq(json_string_value(json_object_get(inbox, "view")), "message");
	ck_assert_int_eq(json_integer_value(json_object_get(inbox, "n")), 6);   /* 12 items, 2 folders */
	ck_assert_ptr_nonnull(child_named(child_named(root, "Archive"), "2023"));
	json_decref(r);

	/* the oldest item: sortBy dateAsc, limit 1 */
	ck_assert_int_eq(mail_req(E.src, t, "alice@example.com", "SearchRequest",
				  "\"query\":\"is:anywhere\",\"types\":\"message,contact,document\","
				  "\"sortBy\":\"dateAsc\",\"limit\":1,\"offset\":0", &r), 200);
	json_t *sr = resp(r, "SearchResponse");
	ck_assert_int_eq(json_array_size(json_object_get(sr, "m")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(sr, "m"), 0), "d")),
			 1700000000000LL);
	ck_assert(json_is_true(json_object_get(sr, "more")));
	ck_assert_str_eq(json_string_value(json_object_get(sr, "sortBy")), "dateAsc");
	json_decref(r);

	/* no <account>: the admin's own, empty mailbox, unqualified ids */
	ck_assert_int_eq(mail_req(E.src, t, NULL, "GetFolderRequest", "", &r), 200);
	root = json_array_get(json_object_get(resp(r, "GetFolderResponse"), "folder"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(root, "id")), "1");
	ck_assert_int_eq(json_integer_value(json_object_get(child_named(root, "Inbox"), "n")), 0);
	json_decref(r);
	ck_assert_int_eq(mail_req(E.src, t, "nobody@example.com", "SearchRequest", "", &r), 500);
	ck_assert_str_eq(fault_code(r), "account.NO_SUCH_ACCOUNT");
	json_decref(r);

	st = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_int(st, "mail/alice@example.com/searches"), 1);
	ck_assert_int_eq(zsim_stat_int(st, "mail/alice@example.com/folder_lists"), 1);
	json_decref(st);
	free(zid);
	free(t);
}
END_TEST

/* start/end windows (after: = date >= start + 1000, before: = date < end),
 * zimbraExportMaxDays, list= stopping at a missing id */
START_TEST(export_windows_like_zimbra)
{
	char *t = zsim_login(E.src);
	/* alice's items are dated 1700000000000 + j*60000: start = item 1's date leaves it out */
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/alice@example.com/?fmt=tgz&start=1700000060000"
			      "&end=1700000240000", t, NULL, 0, NULL, NULL, NULL), 200);
	json_t *st = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_acct(st, "exports", "alice@example.com", "items"), 2);
	json_decref(st);
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/alice@example.com/?fmt=tgz&start=1700000060000"
			      "&end=1700000061000", t, NULL, 0, NULL, NULL, NULL), 204);

	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"export_max_days\":1}"));
	char *out = NULL;
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/alice@example.com/?fmt=tgz", t, NULL, 0, &out, NULL,
			      NULL), 500);
	ck_assert(tu_contains(out, "mail.EXPORT_PERIOD_NOT_SPECIFIED"));
	free(out);
	out = NULL;
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/alice@example.com/?fmt=tgz&start=0&end=1700000240000",
			      t, NULL, 0, &out, NULL, NULL), 500);
	ck_assert(tu_contains(out, "mail.EXPORT_PERIOD_TOO_LONG"));
	free(out);
	ck_assert_int_eq(rest(E.src, "GET", "/service/home/alice@example.com/?fmt=tgz&start=1700000000000"
			      "&end=1700086400000", t, NULL, 0, NULL, NULL, NULL), 200);
	/* list= skips the MaxDays check; a missing id ends the list silently */
	json_t *view = zsim_items(E.src, "alice@example.com"), *items = json_object_get(view, "items");
	ck_assert(view != NULL);
	long long id0 = json_integer_value(json_object_get(json_array_get(items, 0), "id"));
	long long id1 = json_integer_value(json_object_get(json_array_get(items, 1), "id"));
	json_decref(view);
	char *path = xasprintf("/service/home/alice@example.com/?fmt=tgz&list=%lld,999999,%lld", id0, id1);
	json_decref(zsim_post(E.src, "/zsim/reset-stats", "{}"));
	ck_assert_int_eq(rest(E.src, "GET", path, t, NULL, 0, NULL, NULL, NULL), 200);
	free(path);
	st = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_acct(st, "exports", "alice@example.com", "items"), 1);
	json_decref(st);
	path = xasprintf("/service/home/alice@example.com/?fmt=tgz&list=999999,%lld", id1);
	ck_assert_int_eq(rest(E.src, "GET", path, t, NULL, 0, NULL, NULL, NULL), 204);
	free(path);
	free(t);
}
END_TEST

/* the simulator's own Python tests (item kinds, windows, imports, mail SOAP) */
START_TEST(zsim_python_selftest)
{
	const char *py = getenv("PYTHON") ? getenv("PYTHON") : "python3";
	char *script = xasprintf("%s/tests/zsim/selftest.py", tu_srcdir());
	char *argv[] = { (char *)py, script, NULL };
	struct tu_proc p;
	int rc = tu_run(argv, NULL, 240, &p);
	ck_assert_msg(rc == 0, "selftest.py exit %d:\n%s", rc, p.err ? p.err : "");
	tu_proc_release(&p);
	free(script);
}
END_TEST

START_TEST(dies_with_parent)
{
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct zsim_opts o = { .name = "orphan", .pki = E.pki };
		struct zsim *z = zsim_start(&o);
		pid_t p = z ? z->pid : -1;
		if (write(fds[1], &p, sizeof p) != sizeof p)
			_exit(1);
		_exit(0);       /* no zsim_stop */
	}
	close(fds[1]);
	pid_t sim = -1;
	ck_assert_int_eq(read(fds[0], &sim, sizeof sim), (ssize_t)sizeof sim);
	close(fds[0]);
	waitpid(child, NULL, 0);
	ck_assert_int_gt(sim, 0);
	bool gone = false;
	for (int i = 0; i < 300 && !gone; i++) {
		gone = kill(sim, 0) != 0;
		tu_sleep(0.01);
	}
	if (!gone)
		kill(sim, SIGKILL);
	ck_assert_msg(gone, "simulator %d outlived its parent", (int)sim);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_zsim");
	TCase *tc = tcase_create("sim");
	tcase_add_unchecked_fixture(tc, pki_setup, pki_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, auth_ok_and_faults);
	tcase_add_test(tc, xml_soap);
	tcase_add_test(tc, search_directory);
	tcase_add_test(tc, quota_usage_like_zimbra);
	tcase_add_test(tc, export_import_roundtrip);
	tcase_add_test(tc, filtered_and_empty_exports);
	tcase_add_test(tc, truncated_import_keeps_items);
	tcase_add_test(tc, knobs_fire_n_times);
	tcase_add_test(tc, dos_filter_like_jetty);
	tcase_add_test(tc, tls_variants);
	tcase_add_test(tc, import_variants);
	tcase_add_test(tc, import_dedup_like_zimbra);
	tcase_add_test(tc, mail_soap_admin_on_account);
	tcase_add_test(tc, export_windows_like_zimbra);
	tcase_add_test(tc, dies_with_parent);
	suite_add_tcase(s, tc);

	TCase *ts = tcase_create("short_tokens");
	tcase_add_unchecked_fixture(ts, pki_setup, pki_teardown);
	tcase_add_checked_fixture(ts, setup_short, teardown);
	tcase_set_timeout(ts, 30);
	tcase_add_test(ts, token_expiry);
	tcase_add_test(ts, stream_survives_expiry);
	suite_add_tcase(s, ts);

	TCase *tp = tcase_create("python");
	tcase_set_timeout(tp, 300);
	tcase_add_test(tp, zsim_python_selftest);
	suite_add_tcase(s, tp);
	return s;
}

#include "ckmain.h"
