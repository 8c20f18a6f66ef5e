/*
 * check_unit_rest.c - REST export to / import from a file descriptor
 * (src/zimbra/rest.h) against a canned HTTP server (tests/canned.h): what is
 * sent, where the bytes land, 204, the one retry after a 401 with a fresh
 * token, the file put back after a failed attempt, error bodies redacted.
 * Tokens come from a fake login.  Links core, conf and zimbra only.
 */
#define _GNU_SOURCE
#include "canned.h"
#include "testutil.h"

#include "http.h"
#include "log.h"
#include "rest.h"
#include "token.h"
#include "zmb.h"

#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
	struct canned *srv;
	struct server s;
	struct http *h;
	struct token_cache *tc;
	char *dir;
	char *path;
	int fd;
} E;

/* Start the script; the spool file holds "HEAD!" and its offset is after it. */
static void start(const struct canned_reply *script, size_t n)
{
	canned_login_reset();
	E.srv = canned_start(script, n);
	ck_assert_ptr_nonnull(E.srv);
	E.s = (struct server){ .role = "source", .host = (char *)"127.0.0.1",
			       .port = canned_port(E.srv), .scheme = (char *)"http",
			       .admin_user = (char *)"admin@example.com", .tls_verify = true };
	E.h = http_new(&E.s, NULL, NULL);
	E.tc = token_cache_new_login(&E.s, 1800, NULL, canned_login);
	E.dir = tu_tmpdir("unit_rest");
	E.path = xasprintf("%s/spool", E.dir);
	E.fd = open(E.path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(E.fd, 0);
	ck_assert_int_eq(write(E.fd, "HEAD!", 5), 5);
}

static void teardown(void)
{
	token_cache_free(E.tc);
	http_free(E.h);
	canned_stop(E.srv);
	if (E.fd >= 0)
		close(E.fd);
	tu_rmrf(E.dir);
	free(E.dir);
	free(E.path);
	memset(&E, 0, sizeof(E));
}

/* The whole spool file now, and the fd's offset must be its end. */
static char *spool(void)
{
	char *s = tu_read(E.path);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(lseek(E.fd, 0, SEEK_CUR), (off_t)strlen(s));
	return s;
}

static void assert_cookie(size_t i, const char *token)
{
	char *c = canned_header(E.srv, i, "Cookie");
	char *want = xasprintf("ZM_ADMIN_AUTH_TOKEN=%s", token);
	ck_assert_msg(c && !strcmp(c, want), "request %zu: Cookie %s, want %s", i, c ? c : "(none)",
		      want);
	const struct canned_request *r = canned_request(E.srv, i);
	ck_assert_msg(!tu_contains(r->target, token), "token in the URL: %s", r->target);
	free(want);
	free(c);
}

/* ------------------------------------------------------------ export */

START_TEST(test_export_to_fd)
{
	static const struct canned_reply script[] = {
		{ .status = 200, .body = "ARCHIVE-BYTES-0123456789" },
		{ .status = 204 },
	};
	start(script, 2);
	struct rest_export_opts o = { .types = "message,contact", .start_ms = 123 };
	long long bytes = -1;
	bool empty = true;
	char *err = NULL;
	enum zmb_rc rc = rest_export_file(E.h, E.tc, "o'neil+x@example.com", &o, E.fd, &bytes,
					  &empty, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert(!empty);
	ck_assert_int_eq(bytes, 24);
	char *s = spool();
	ck_assert_str_eq(s, "HEAD!ARCHIVE-BYTES-0123456789");   /* from the fd's offset on */
	free(s);
	const struct canned_request *r = canned_request(E.srv, 0);
	ck_assert_str_eq(r->method, "GET");
	ck_assert_str_eq(r->target,
			 "/service/home/o%27neil%2Bx%40example.com/?fmt=tgz&types=message%2Ccontact&start=123");
	assert_cookie(0, "tok-1");
	/* 204: nothing to export, nothing written */
	bytes = -1;
	rc = rest_export_file(E.h, E.tc, "a@x", NULL, E.fd, &bytes, &empty, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert(empty);
	ck_assert_int_eq(bytes, 0);
	ck_assert_str_eq(canned_request(E.srv, 1)->target, "/service/home/a%40x/?fmt=tgz");
	s = spool();
	ck_assert_str_eq(s, "HEAD!ARCHIVE-BYTES-0123456789");
	free(s);
	teardown();
}
END_TEST

START_TEST(test_export_401_retry_once)
{
	static const struct canned_reply script[] = {
		{ .status = 401, .body = "token revoked" },
		{ .status = 200, .body = "SECOND" },
		{ .status = 401 },
		{ .status = 401 },
	};
	start(script, 4);
	long long bytes = 0;
	bool empty = false;
	char *err = NULL;
	enum zmb_rc rc = rest_export_file(E.h, E.tc, "a@x", NULL, E.fd, &bytes, &empty, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_ptr_null(err);
	char *s = spool();
	ck_assert_str_eq(s, "HEAD!SECOND");   /* the 401's body is not archive data */
	free(s);
	ck_assert_int_eq(bytes, 6);
	ck_assert_int_eq(canned_count(E.srv), 2);
	assert_cookie(0, "tok-1");
	assert_cookie(1, "tok-2");
	ck_assert_int_eq(token_auth_count(E.tc), 2);
	/* refused twice: ZMB_EAUTHEXP after exactly one retry, the file as it was */
	rc = rest_export_file(E.h, E.tc, "a@x", NULL, E.fd, &bytes, &empty, &err);
	ck_assert_int_eq(rc, ZMB_EAUTHEXP);
	ck_assert_msg(tu_contains(err, "export a@x: http 401 (authentication rejected)"), "err: %s", err);
	free(err);
	ck_assert_int_eq(canned_count(E.srv), 4);
	ck_assert_int_eq(token_auth_count(E.tc), 3);
	s = spool();
	ck_assert_str_eq(s, "HEAD!SECOND");
	free(s);
	teardown();
}
END_TEST

/* Status classes; a failed attempt leaves the file as it was before it. */
START_TEST(test_export_errors_rewind)
{
	static const struct canned_reply script[] = {
		{ .status = 200, .body = "PARTIAL-DATA", .short_by = 100 },
		{ .status = 404, .body = "no such account" },
		{ .status = 503 },
		{ .status = 500 },
		{ .status = 400 },
		{ 0 },   /* connection closed without an answer */
	};
	static const struct {
		enum zmb_rc rc;
		const char *text;
	} want[] = {
		{ ZMB_ETEMP, "export: " },
		{ ZMB_ENOACCOUNT, "http 404 (no such account): no such account" },
		{ ZMB_EBUSY, "http 503 (server busy)" },
		{ ZMB_ETEMP, "http 500 (server error)" },
		{ ZMB_EPROTO, "http 400 (unexpected answer)" },
		{ ZMB_ETEMP, "export: " },
	};
	start(script, 6);
	for (size_t i = 0; i < 6; i++) {
		long long bytes = 0;
		bool empty = false;
		char *err = NULL;
		enum zmb_rc rc = rest_export_file(E.h, E.tc, "a@x", NULL, E.fd, &bytes, &empty, &err);
		ck_assert_msg(rc == want[i].rc, "case %zu: %s, want %s (%s)", i, zmb_rc_name(rc),
			      zmb_rc_name(want[i].rc), err ? err : "");
		ck_assert_msg(tu_contains(err, want[i].text), "case %zu: err %s", i, err);
		char *label = xasprintf("source 127.0.0.1:%d: ", E.s.port);
		ck_assert_msg(!strncmp(err, label, strlen(label)), "case %zu: err %s", i, err);
		free(label);
		char *s = spool();
		ck_assert_msg(!strcmp(s, "HEAD!"), "case %zu: spool file now \"%s\"", i, s);
		free(s);
		free(err);
	}
	ck_assert_int_eq(token_auth_count(E.tc), 1);   /* none of these is an auth problem */
	teardown();
}
END_TEST

/* An error body goes into the text on one line, redacted, at most 200 bytes. */
START_TEST(test_error_body_redacted)
{
	static char big[4000];
	memset(big, 'x', sizeof(big) - 1);
	memcpy(big, "line one\r\nline\ttwo Sekr3t-Rest-42 ", 34);
	static const struct canned_reply script[2] = { { .status = 500, .body = big },
						       { .status = 500, .body = "  \n\n" } };
	zlog_add_secret("Sekr3t-Rest-42");
	start(script, 2);
	long long bytes = 0;
	bool empty = false;
	char *err = NULL;
	ck_assert_int_eq(rest_export_file(E.h, E.tc, "a@x", NULL, E.fd, &bytes, &empty, &err),
			 ZMB_ETEMP);
	ck_assert_msg(!tu_contains(err, "Sekr3t-Rest-42"), "secret in: %s", err);
	ck_assert_msg(tu_contains(err, "(server error): line one  line two "), "err: %s", err);
	ck_assert_msg(!strchr(err, '\n') && !strchr(err, '\r') && !strchr(err, '\t'), "err: %s", err);
	const char *ex = strstr(err, "): ") + 3;
	ck_assert_msg(strlen(ex) <= 200, "excerpt of %zu bytes", strlen(ex));
	free(err);
	/* a blank body adds nothing */
	ck_assert_int_eq(rest_import_file(E.h, E.tc, "a@x", NULL, E.fd, &bytes, NULL, &err), ZMB_ETEMP);
	ck_assert_msg(tu_contains(err, "import a@x: http 500 (server error)") &&
			      err[strlen(err) - 1] == ')', "err: \"%s\"", err);
	free(err);
	teardown();
}
END_TEST

/* ------------------------------------------------------------ import */

START_TEST(test_import_from_fd)
{
	static const struct canned_reply script[] = {
		{ .status = 401 },
		{ .status = 200 },
		{ .status = 200 },
		{ .status = 404 },
	};
	start(script, 4);
	ck_assert_int_eq(write(E.fd, "-IMPORT-BODY", 12), 12);   /* offset at the end */
	long long bytes = 0;
	char *err = NULL;
	enum zmb_rc rc = rest_import_file(E.h, E.tc, "b@y", "skip", E.fd, &bytes, NULL, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_int_eq(bytes, 17);
	ck_assert_int_eq(canned_count(E.srv), 2);
	/* both attempts send the whole file from offset 0 */
	for (size_t i = 0; i < 2; i++) {
		const struct canned_request *r = canned_request(E.srv, i);
		ck_assert_str_eq(r->method, "POST");
		ck_assert_str_eq(r->target, "/service/home/b%40y/?fmt=tgz&resolve=skip&callback=zmbatchImport");
		ck_assert_int_eq(r->body_len, 17);
		ck_assert_str_eq(r->body, "HEAD!-IMPORT-BODY");
		char *v = canned_header(E.srv, i, "Content-Type");
		ck_assert_str_eq(v, "application/octet-stream");
		free(v);
		v = canned_header(E.srv, i, "Content-Length");
		ck_assert_str_eq(v, "17");
		free(v);
		ck_assert_ptr_null(canned_header(E.srv, i, "Content-Encoding"));
		ck_assert_ptr_null(canned_header(E.srv, i, "Transfer-Encoding"));
		ck_assert_ptr_null(canned_header(E.srv, i, "Expect"));
	}
	assert_cookie(0, "tok-1");
	assert_cookie(1, "tok-2");
	/* no resolve: the server's default */
	rc = rest_import_file(E.h, E.tc, "b@y", NULL, E.fd, &bytes, NULL, &err);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_str_eq(canned_request(E.srv, 2)->target, "/service/home/b%40y/?fmt=tgz&callback=zmbatchImport");
	rc = rest_import_file(E.h, E.tc, "b@y", "skip", E.fd, &bytes, NULL, &err);
	ck_assert_int_eq(rc, ZMB_ENOACCOUNT);
	ck_assert_msg(tu_contains(err, "import b@y: http 404"), "err: %s", err);
	free(err);
	teardown();
}
END_TEST

/* An import refused before the server takes the body is judged by its status. */
START_TEST(test_import_refused_early)
{
	static const struct canned_reply script[] = {
		{ .status = 413, .body = "too large", .read_headers_only = true, .linger = 5 },
	};
	start(script, 1);
	ck_assert_int_eq(ftruncate(E.fd, 32 << 20), 0);   /* 32 MiB, more than socket buffers */
	long long bytes = 0;
	char *err = NULL;
	enum zmb_rc rc = rest_import_file(E.h, E.tc, "b@y", "skip", E.fd, &bytes, NULL, &err);
	ck_assert_msg(rc == ZMB_EPROTO, "rc %s: %s", zmb_rc_name(rc), err ? err : "");
	ck_assert_msg(tu_contains(err, "http 413 (unexpected answer): too large"), "err: %s", err);
	ck_assert_int_lt(bytes, 32 << 20);
	free(err);
	teardown();
}
END_TEST

static void global(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static Suite *make_suite(void)
{
	Suite *s = suite_create("unit_rest");
	TCase *tc = tcase_create("export");
	tcase_add_unchecked_fixture(tc, global, NULL);
	tcase_add_test(tc, test_export_to_fd);
	tcase_add_test(tc, test_export_401_retry_once);
	tcase_add_test(tc, test_export_errors_rewind);
	tcase_add_test(tc, test_error_body_redacted);
	suite_add_tcase(s, tc);
	tc = tcase_create("import");
	tcase_add_unchecked_fixture(tc, global, NULL);
	tcase_add_test(tc, test_import_from_fd);
	tcase_add_test(tc, test_import_refused_early);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
