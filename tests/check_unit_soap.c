/*
 * check_unit_soap.c - JSON SOAP (src/zimbra/soap.h): how answers are judged
 * (soap_parse_for_fuzz, no I/O), and against a canned HTTP server
 * (tests/canned.h) what is sent and the one retry after AUTH_EXPIRED /
 * AUTH_REQUIRED with a fresh token.  Tokens come from a fake login, so the
 * cache's logins are counted exactly.  Links core, conf and zimbra only.
 */
#define _GNU_SOURCE
#include "canned.h"
#include "testutil.h"

#include "http.h"
#include "log.h"
#include "soap.h"
#include "token.h"
#include "zmb.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define FAULT(status_code, reason)                                                            \
	"{\"Body\":{\"Fault\":{\"Code\":{\"Value\":\"soap:Sender\"},\"Reason\":{\"Text\":\"" reason \
	"\"},\"Detail\":{\"Error\":{\"Code\":\"" status_code "\",\"_jsns\":\"urn:zimbra\"}},"     \
	"\"_jsns\":\"urn:zimbraSoap\"}},\"_jsns\":\"urn:zimbraSoap\"}"
#define XML_FAULT                                                                             \
	"<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Body>"     \
	"<soap:Fault><soap:Code><soap:Value>soap:Receiver</soap:Value></soap:Code><soap:Reason>" \
	"<soap:Text>system failure</soap:Text></soap:Reason><soap:Detail><Error "              \
	"xmlns=\"urn:zimbra\"><Code>service.FAILURE</Code></Error></soap:Detail></soap:Fault>" \
	"</soap:Body></soap:Envelope>"
#define GA_OK "{\"Body\":{\"GetAccountResponse\":{\"account\":[{\"name\":\"a@x\",\"id\":\"ID-1\"}]}}}"

/* ------------------------------------------------------------ judging answers */

START_TEST(test_answer_table)
{
	static const struct {
		const char *req;
		long status;
		const char *body;
		enum zmb_rc rc;
		const char *text;   /* expected in the error text (NULL: rc ZMB_OK) */
	} rows[] = {
		{ "GetAccountRequest", 500, FAULT("account.NO_SUCH_ACCOUNT", "no such account: x"),
		  ZMB_ENOACCOUNT,
		  "fuzz 127.0.0.1:7071: GetAccountRequest: fault account.NO_SUCH_ACCOUNT: no such account: x" },
		{ "AuthRequest", 500, FAULT("account.AUTH_FAILED", "authentication failed"), ZMB_EAUTH,
		  "fault account.AUTH_FAILED: authentication failed" },
		{ "AuthRequest", 500, FAULT("service.PERM_DENIED", "not an admin"), ZMB_EAUTH,
		  "service.PERM_DENIED" },
		{ "GetAccountRequest", 500, FAULT("service.PERM_DENIED", "denied"), ZMB_EPROTO,
		  "service.PERM_DENIED" },
		{ "GetAccountRequest", 500, FAULT("service.AUTH_EXPIRED", "expired"), ZMB_EAUTHEXP,
		  "service.AUTH_EXPIRED" },
		{ "GetMailboxRequest", 500, FAULT("service.AUTH_REQUIRED", "no token"), ZMB_EAUTHEXP,
		  "service.AUTH_REQUIRED" },
		/* on the login itself an expired/required answer is a refusal, not a retry */
		{ "AuthRequest", 500, FAULT("service.AUTH_EXPIRED", "expired"), ZMB_EAUTH, "AUTH_EXPIRED" },
		{ "GetAccountRequest", 500, FAULT("service.TEMPORARILY_UNAVAILABLE", "later"), ZMB_ETEMP,
		  "TEMPORARILY_UNAVAILABLE" },
		/* Zimbra's catch-all server-side error is temporary */
		{ "SearchDirectoryRequest", 500, FAULT("service.FAILURE", "system failure: ldap"),
		  ZMB_ETEMP, "fault service.FAILURE: system failure: ldap" },
		{ "GetAccountRequest", 500, FAULT("mail.SOMETHING_ELSE", "odd"), ZMB_EPROTO,
		  "mail.SOMETHING_ELSE" },
		{ "GetAccountRequest", 500, "{\"Body\":{\"Fault\":{\"Reason\":{\"Text\":\"bare\"}}}}",
		  ZMB_EPROTO, "fault (no code): bare" },
		/* Code as {"_content":..} and the fault's status 503 wins over the code */
		{ "GetAccountRequest", 500,
		  "{\"Body\":{\"Fault\":{\"Detail\":{\"Error\":{\"Code\":{\"_content\":\"account.NO_SUCH_ACCOUNT\"}}}}}}",
		  ZMB_ENOACCOUNT, "account.NO_SUCH_ACCOUNT" },
		{ "GetAccountRequest", 503, FAULT("service.FAILURE", "busy"), ZMB_EBUSY, "service.FAILURE" },
		{ "GetAccountRequest", 503, "", ZMB_EBUSY, "http 503 (server busy)" },
		{ "GetAccountRequest", 502, "<html>bad gateway</html>", ZMB_ETEMP, "http 502" },
		/* an XML fault to a JSON request: not parsed, judged by the status */
		{ "GetAccountRequest", 500, XML_FAULT, ZMB_ETEMP, "GetAccountRequest: http 500" },
		{ "GetAccountRequest", 401, "", ZMB_EAUTHEXP, "http 401" },
		{ "AuthRequest", 401, "", ZMB_EAUTH, "http 401" },
		{ "GetAccountRequest", 302, "", ZMB_EPROTO, "unexpected http 302" },
		{ "GetAccountRequest", 200, "not json", ZMB_EPROTO, "bad JSON answer: " },
		{ "GetAccountRequest", 200, "{\"Body\":{}}", ZMB_EPROTO, "answer has no GetAccountResponse" },
		{ "GetAccountRequest", 200, GA_OK, ZMB_OK, NULL },
		{ "GetAccountRequest", 200,
		  "{\"Body\":{\"GetAccountResponse\":{\"account\":{\"a\":[{\"n\":\"zimbraId\",\"_content\":\"Z\"}]}}}}",
		  ZMB_OK, NULL },
		{ "GetAccountRequest", 200, "{\"Body\":{\"GetAccountResponse\":{\"account\":[{}]}}}",
		  ZMB_EPROTO, "answer for user@example.com has no id" },
		{ "AuthRequest", 200,
		  "{\"Body\":{\"AuthResponse\":{\"authToken\":[{\"_content\":\"T\"}],\"lifetime\":\"3600000\"}}}",
		  ZMB_OK, NULL },
		{ "AuthRequest", 200,
		  "{\"Body\":{\"AuthResponse\":{\"authToken\":[{\"_content\":\"T\"}],\"lifetime\":0}}}",
		  ZMB_EPROTO, "answer without authToken or lifetime" },
		{ "AuthRequest", 200, "{\"Body\":{\"AuthResponse\":{\"lifetime\":5}}}", ZMB_EPROTO,
		  "without authToken" },
		{ "GetMailboxRequest", 200, "{\"Body\":{\"GetMailboxResponse\":{\"mbox\":[{\"s\":-1}]}}}",
		  ZMB_EPROTO, "has no size" },
		{ "GetMailboxRequest", 200, "{\"Body\":{\"GetMailboxResponse\":{\"mbox\":[{\"s\":\"12\"}]}}}",
		  ZMB_OK, NULL },
		/* GetQuotaUsage refused (no getDomainQuotaUsage right, no such handler): not temporary */
		{ "GetQuotaUsageRequest", 500, FAULT("service.PERM_DENIED", "permission denied"), ZMB_EPROTO,
		  "GetQuotaUsageRequest: fault service.PERM_DENIED" },
		{ "GetQuotaUsageRequest", 500, FAULT("service.UNKNOWN_DOCUMENT", "unknown document"),
		  ZMB_EPROTO, "service.UNKNOWN_DOCUMENT" },
		/* allServers: one mailbox server failing fails the whole request */
		{ "GetQuotaUsageRequest", 500,
		  FAULT("service.FAILURE", "system failure: Error in getting task execution result"), ZMB_ETEMP,
		  "service.FAILURE" },
		{ "GetQuotaUsageRequest", 200, "{\"Body\":{\"GetQuotaUsageResponse\":{\"more\":false}}}",
		  ZMB_OK, NULL },
		{ "GetQuotaUsageRequest", 200, "{\"Body\":{}}", ZMB_EPROTO,
		  "answer has no GetQuotaUsageResponse" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *err = NULL;
		enum zmb_rc rc = soap_parse_for_fuzz(rows[i].req, rows[i].status, rows[i].body,
						     strlen(rows[i].body), &err);
		ck_assert_msg(rc == rows[i].rc, "row %zu (%s %ld): rc %s, want %s (%s)", i, rows[i].req,
			      rows[i].status, zmb_rc_name(rc), zmb_rc_name(rows[i].rc), err ? err : "");
		if (rows[i].text)
			ck_assert_msg(tu_contains(err, rows[i].text), "row %zu: err \"%s\", want \"%s\"", i,
				      err, rows[i].text);
		else
			ck_assert_ptr_null(err);
		free(err);
	}
}
END_TEST

/* A fault's reason goes into the error text redacted. */
START_TEST(test_fault_reason_redacted)
{
	zlog_add_secret("Sekr3t-Pass-99");
	const char *body = FAULT("account.AUTH_FAILED", "authentication failed for Sekr3t-Pass-99");
	char *err = NULL;
	ck_assert_int_eq(soap_parse_for_fuzz("AuthRequest", 500, body, strlen(body), &err), ZMB_EAUTH);
	ck_assert_msg(!tu_contains(err, "Sekr3t-Pass-99") && tu_contains(err, "authentication failed"),
		      "err: %s", err);
	free(err);
}
END_TEST

/* ------------------------------------------------------------ on the wire */

static struct {
	struct canned *srv;
	struct server s;
	struct http *h;
	struct token_cache *tc;
} E;

static void start(const struct canned_reply *script, size_t n)
{
	canned_login_reset();
	E.srv = canned_start(script, n);
	ck_assert_ptr_nonnull(E.srv);
	E.s = (struct server){ .role = "source", .host = (char *)"127.0.0.1",
			       .port = canned_port(E.srv), .scheme = (char *)"http",
			       .admin_user = (char *)"admin@example.com",
			       .password = (char *)"pw-unit-1", .tls_verify = true };
	E.h = http_new(&E.s, NULL, NULL);
	E.tc = token_cache_new_login(&E.s, 1800, NULL, canned_login);
}

static void teardown(void)
{
	token_cache_free(E.tc);
	http_free(E.h);
	canned_stop(E.srv);
	memset(&E, 0, sizeof(E));
}

/* Request i's JSON body (json_decref it). */
static json_t *sent(size_t i)
{
	const struct canned_request *r = canned_request(E.srv, i);
	ck_assert_msg(r != NULL, "no request %zu", i);
	json_error_t je;
	json_t *j = json_loads(r->body, 0, &je);
	ck_assert_msg(j != NULL, "request %zu is not JSON: %s", i, r->body);
	return j;
}

/* The token in request i's SOAP header context, or "" (a new string). */
static char *sent_token(size_t i)
{
	json_t *j = sent(i);
	const char *t = json_string_value(json_object_get(
		json_object_get(json_object_get(json_object_get(j, "Header"), "context"), "authToken"),
		"_content"));
	char *r = xstrdup(t ? t : "");
	json_decref(j);
	return r;
}

START_TEST(test_request_envelope)
{
	static const struct canned_reply script[] = { { .status = 200, .body = GA_OK } };
	start(script, 1);
	char *id = NULL, *err = NULL;
	enum zmb_rc rc = soap_get_account(E.h, E.tc, "o'neil+x@example.com", &id, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_str_eq(id, "ID-1");
	free(id);
	const struct canned_request *r = canned_request(E.srv, 0);
	ck_assert_str_eq(r->method, "POST");
	ck_assert_str_eq(r->target, "/service/admin/soap");
	char *ct = canned_header(E.srv, 0, "Content-Type");
	ck_assert_str_eq(ct, "application/json; charset=utf-8");
	free(ct);
	char *cookie = canned_header(E.srv, 0, "Cookie");
	ck_assert_ptr_null(cookie);   /* SOAP carries the token in its header only */
	json_t *j = sent(0);
	json_t *ctx = json_object_get(json_object_get(j, "Header"), "context");
	ck_assert_str_eq(json_string_value(json_object_get(ctx, "_jsns")), "urn:zimbra");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ctx, "format"), "type")),
			 "js");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ctx, "authToken"),
							   "_content")), "tok-1");
	json_t *ga = json_object_get(json_object_get(j, "Body"), "GetAccountRequest");
	ck_assert_str_eq(json_string_value(json_object_get(ga, "_jsns")), "urn:zimbraAdmin");
	json_t *acct = json_object_get(ga, "account");
	ck_assert_str_eq(json_string_value(json_object_get(acct, "by")), "name");
	ck_assert_str_eq(json_string_value(json_object_get(acct, "_content")), "o'neil+x@example.com");
	json_decref(j);
	teardown();
}
END_TEST

START_TEST(test_auth_request)
{
	static const struct canned_reply script[] = {
		{ .status = 200,
		  .body = "{\"Body\":{\"AuthResponse\":{\"authToken\":[{\"_content\":\"0_abc\"}],"
			  "\"lifetime\":43199000}}}" },
		{ .status = 500, .body = FAULT("account.AUTH_FAILED", "authentication failed for [admin]") },
	};
	start(script, 2);
	char *tok = NULL, *err = NULL;
	long long life = 0;
	enum zmb_rc rc = soap_auth(E.h, &tok, &life, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_str_eq(tok, "0_abc");
	ck_assert_int_eq(life, 43199000);
	json_t *j = sent(0);
	json_t *ctx = json_object_get(json_object_get(j, "Header"), "context");
	ck_assert_ptr_null(json_object_get(ctx, "authToken"));
	json_t *ar = json_object_get(json_object_get(j, "Body"), "AuthRequest");
	ck_assert_str_eq(json_string_value(json_object_get(ar, "name")), "admin@example.com");
	ck_assert_str_eq(json_string_value(json_object_get(ar, "password")), "pw-unit-1");
	json_decref(j);
	/* the token is a log secret from now on */
	char *red = zlog_redact("token 0_abc here");
	ck_assert(!tu_contains(red, "0_abc"));
	free(red);
	free(tok);
	tok = NULL;
	/* refused: no token, the out-parameters untouched */
	life = -7;
	ck_assert_int_eq(soap_auth(E.h, &tok, &life, &err), ZMB_EAUTH);
	ck_assert_ptr_null(tok);
	ck_assert_int_eq(life, -7);
	char *label = xasprintf("source 127.0.0.1:%d: AuthRequest: fault account.AUTH_FAILED",
				E.s.port);
	ck_assert_msg(tu_contains(err, label), "err: %s", err);
	free(label);
	free(err);
	teardown();
}
END_TEST

/* AUTH_EXPIRED / AUTH_REQUIRED: one retry with a fresh token, never two; other faults none */
START_TEST(test_retry_once_with_fresh_token)
{
	static const struct canned_reply script[] = {
		{ .status = 500, .body = FAULT("service.AUTH_EXPIRED", "auth credentials have expired") },
		{ .status = 200, .body = GA_OK },
		{ .status = 500, .body = FAULT("service.AUTH_REQUIRED", "no valid authtoken present") },
		{ .status = 500, .body = FAULT("service.AUTH_EXPIRED", "auth credentials have expired") },
		{ .status = 500, .body = FAULT("service.FAILURE", "system failure") },
		{ .status = 401, .body = "" },
		{ .status = 200, .body = GA_OK },
	};
	start(script, 7);
	char *id = NULL, *err = NULL;
	/* expired, then the retry with a new login succeeds */
	enum zmb_rc rc = soap_get_account(E.h, E.tc, "a@x", &id, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_ptr_null(err);
	ck_assert_str_eq(id, "ID-1");
	free(id);
	id = NULL;
	ck_assert_int_eq(canned_count(E.srv), 2);
	char *t0 = sent_token(0), *t1 = sent_token(1);
	ck_assert_str_eq(t0, "tok-1");
	ck_assert_str_eq(t1, "tok-2");
	free(t0);
	free(t1);
	ck_assert_int_eq(token_auth_count(E.tc), 2);
	/* refused twice: one retry only, then ZMB_EAUTHEXP */
	rc = soap_get_account(E.h, E.tc, "a@x", &id, &err);
	ck_assert_int_eq(rc, ZMB_EAUTHEXP);
	ck_assert_ptr_null(id);
	ck_assert_msg(tu_contains(err, "service.AUTH_EXPIRED"), "err: %s", err);
	free(err);
	err = NULL;
	ck_assert_int_eq(canned_count(E.srv), 4);
	ck_assert_int_eq(token_auth_count(E.tc), 3);
	/* another fault: no retry, no new login */
	long long bytes = -1;
	rc = soap_mailbox_size(E.h, E.tc, "ID-1", &bytes, &err);
	ck_assert_int_eq(rc, ZMB_ETEMP);
	ck_assert_int_eq(bytes, -1);
	free(err);
	err = NULL;
	ck_assert_int_eq(canned_count(E.srv), 5);
	ck_assert_int_eq(token_auth_count(E.tc), 3);
	/* HTTP 401 without a fault is an expired token too: retried once */
	rc = soap_get_account(E.h, E.tc, "a@x", &id, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	free(id);
	ck_assert_int_eq(canned_count(E.srv), 7);
	ck_assert_int_eq(token_auth_count(E.tc), 4);
	teardown();
}
END_TEST

/* Pages of 500 until "more" is false; offsets count every entry, system ones too. */
START_TEST(test_list_accounts_pages)
{
	static const struct canned_reply script[] = {
		{ .status = 200,
		  .body = "{\"Body\":{\"SearchDirectoryResponse\":{\"more\":true,\"account\":["
			  "{\"name\":\"a@x\",\"id\":\"1\",\"a\":[{\"n\":\"zimbraMailHost\",\"_content\":\"mh1\"}]},"
			  "{\"name\":\"galsync@x\",\"id\":\"2\",\"a\":[{\"n\":\"zimbraIsSystemResource\",\"_content\":\"TRUE\"}]},"
			  "{\"name\":\"spam@x\",\"id\":\"3\",\"a\":[{\"n\":\"zimbraIsSystemAccount\",\"_content\":\"true\"}]}]}}}" },
		{ .status = 200,
		  .body = "{\"Body\":{\"SearchDirectoryResponse\":{\"more\":false,\"account\":"
			  "{\"name\":\"b@x\",\"a\":[{\"n\":\"zimbraId\",\"_content\":\"4\"}]}}}}" },
		{ .status = 500, .body = FAULT("account.NO_SUCH_ACCOUNT", "odd") },
	};
	start(script, 3);
	struct zaccount *v = NULL;
	size_t n = 0;
	char *err = NULL;
	enum zmb_rc rc = soap_list_accounts(E.h, E.tc, "x", &v, &n, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(v[0].name, "a@x");
	ck_assert_str_eq(v[0].mailhost, "mh1");
	ck_assert_str_eq(v[1].name, "b@x");
	ck_assert_str_eq(v[1].id, "4");
	ck_assert_ptr_null(v[1].mailhost);
	zaccounts_free(v, n);
	for (size_t i = 0; i < 2; i++) {
		json_t *j = sent(i);
		json_t *sd = json_object_get(json_object_get(j, "Body"), "SearchDirectoryRequest");
		ck_assert_int_eq(json_integer_value(json_object_get(sd, "offset")), i ? 3 : 0);
		ck_assert_int_eq(json_integer_value(json_object_get(sd, "limit")), 500);
		ck_assert_str_eq(json_string_value(json_object_get(sd, "domain")), "x");
		json_decref(j);
	}
	/* a missing account is no answer for a domain listing */
	v = NULL;
	n = 0;
	ck_assert_int_eq(soap_list_accounts(E.h, E.tc, "x", &v, &n, &err), ZMB_EPROTO);
	ck_assert_ptr_null(v);
	free(err);
	teardown();
}
END_TEST

/* GetQuotaUsage: the request's attributes, and each page's entries, more and searchTotal. */
START_TEST(test_quota_usage_page)
{
	static const struct canned_reply script[] = {
		{ .status = 200,
		  .body = "{\"Body\":{\"GetQuotaUsageResponse\":{\"more\":true,\"searchTotal\":4,\"account\":["
			  "{\"name\":\"Big@X\",\"id\":\"1\",\"used\":5000000000,\"limit\":0},"
			  "{\"name\":\"nosize@x\",\"id\":\"2\"},"
			  "{\"name\":\"neg@x\",\"id\":\"3\",\"used\":-5},"
			  "{\"name\":\"small@x\",\"id\":\"4\",\"used\":\"12\",\"limit\":104857600}]}}}" },
		{ .status = 200,
		  .body = "{\"Body\":{\"GetQuotaUsageResponse\":{\"more\":false,\"searchTotal\":4,"
			  "\"account\":{\"name\":\"last@x\",\"id\":\"5\",\"used\":0}}}}" },
		{ .status = 500, .body = FAULT("service.PERM_DENIED", "permission denied") },
	};
	start(script, 3);
	struct zquota *v = NULL;
	size_t n = 0;
	bool more = false;
	long long total = 0;
	char *err = NULL;
	enum zmb_rc rc = soap_quota_usage(E.h, E.tc, "x", 7, 500, &v, &n, &more, &total, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	/* entries without a usable size are left out: those accounts are sized another way */
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(v[0].name, "Big@X");
	ck_assert_str_eq(v[0].id, "1");
	ck_assert_int_eq(v[0].used, 5000000000LL);
	ck_assert_int_eq(v[0].limit, 0);
	ck_assert_str_eq(v[1].name, "small@x");
	ck_assert_int_eq(v[1].used, 12);
	ck_assert_int_eq(v[1].limit, 104857600);
	ck_assert(more);
	ck_assert_int_eq(total, 4);
	zquotas_free(v, n);
	json_t *j = sent(0);
	json_t *q = json_object_get(json_object_get(j, "Body"), "GetQuotaUsageRequest");
	ck_assert_str_eq(json_string_value(json_object_get(q, "_jsns")), "urn:zimbraAdmin");
	ck_assert_str_eq(json_string_value(json_object_get(q, "domain")), "x");
	ck_assert_int_eq(json_integer_value(json_object_get(q, "allServers")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(q, "sortBy")), "totalUsed");
	ck_assert_int_eq(json_integer_value(json_object_get(q, "sortAscending")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(q, "offset")), 7);
	ck_assert_int_eq(json_integer_value(json_object_get(q, "limit")), 500);
	json_decref(j);
	/* a single account as an object, not an array */
	v = NULL;
	rc = soap_quota_usage(E.h, E.tc, "x", 9, 500, &v, &n, &more, &total, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].name, "last@x");
	ck_assert(!more);
	zquotas_free(v, n);
	/* refused: out-parameters untouched */
	v = NULL;
	n = 99;
	more = true;
	total = -7;
	ck_assert_int_eq(soap_quota_usage(E.h, E.tc, "x", 0, 500, &v, &n, &more, &total, &err), ZMB_EPROTO);
	ck_assert_ptr_null(v);
	ck_assert_uint_eq(n, 99);
	ck_assert(more);
	ck_assert_int_eq(total, -7);
	ck_assert_msg(tu_contains(err, "GetQuotaUsageRequest: fault service.PERM_DENIED"), "err: %s", err);
	free(err);
	zquotas_free(NULL, 0);
	teardown();
}
END_TEST

static void global(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static Suite *make_suite(void)
{
	Suite *s = suite_create("unit_soap");
	TCase *tc = tcase_create("answer");
	tcase_add_test(tc, test_answer_table);
	tcase_add_test(tc, test_fault_reason_redacted);
	suite_add_tcase(s, tc);
	tc = tcase_create("wire");
	tcase_add_unchecked_fixture(tc, global, NULL);
	tcase_add_test(tc, test_request_envelope);
	tcase_add_test(tc, test_auth_request);
	tcase_add_test(tc, test_retry_once_with_fresh_token);
	tcase_add_test(tc, test_list_accounts_pages);
	tcase_add_test(tc, test_quota_usage_page);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
