/*
 * check_unit_http.c - the libcurl handle (src/zimbra/http.h): labels and
 * URLs, how a failed transfer is mapped (http_error), the upload stall watch
 * and its "starved" exception, download pacing, cancel.  Against a canned
 * HTTP server (tests/canned.h); the https cases use its raw TCP side
 * (handshake cut, unusable ca_file).  Certificate checks against a real TLS
 * server (ca_file, wrong host, pinned key) are in check_e2e_client.
 * Links core, conf and zimbra only.
 */
#define _GNU_SOURCE
#include "canned.h"
#include "testutil.h"

#include "http.h"
#include "job.h"
#include "runctl.h"
#include "zmb.h"

#include <check.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void global(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static struct server server_at(int port, const char *scheme)
{
	return (struct server){ .role = "source", .host = (char *)"127.0.0.1", .port = port,
				.scheme = (char *)scheme, .tls_verify = true };
}

START_TEST(test_label_url_buffer)
{
	struct server v6 = { .host = (char *)"::1" };
	struct http *h = http_new(&v6, NULL, NULL);
	ck_assert_str_eq(http_label(h), "server [::1]:7071");
	char *u = http_url(h, "/service/admin/soap");
	ck_assert_str_eq(u, "https://[::1]:7071/service/admin/soap");
	free(u);
	char *e = http_escape(h, "o'neil+x@example.com/a b");
	ck_assert_str_eq(e, "o%27neil%2Bx%40example.com%2Fa%20b");
	free(e);
	ck_assert_int_eq(http_buffer_size(h), 1 << 20);   /* default */
	http_free(h);
	struct server t = { .role = "target", .host = (char *)"zcs2", .port = 8443,
			    .scheme = (char *)"http" };
	struct job job = { 0 };
	job.mig.buffer_size = 1000;   /* below the floor */
	h = http_new(&t, &job, NULL);
	ck_assert_str_eq(http_label(h), "target zcs2:8443");
	u = http_url(h, "/x");
	ck_assert_str_eq(u, "http://zcs2:8443/x");
	free(u);
	ck_assert_int_eq(http_buffer_size(h), 64 << 10);
	ck_assert_ptr_eq(http_server(h), &t);
	http_free(h);
	job.mig.buffer_size = 8 << 20;
	h = http_new(&t, &job, NULL);
	ck_assert_int_eq(http_buffer_size(h), 8 << 20);
	http_free(h);
}
END_TEST

/* ------------------------------------------------------------ error mapping */

struct outcome {
	enum zmb_rc rc;
	long status;
	char *err;
	char *body;
	double secs;
};

/*
 * One http_post_small to a fresh canned server answering `reply` (port
 * `port` instead when > 0), the server changed by `tweak` (may be NULL).
 */
static struct outcome post_once(const struct canned_reply *reply, int port, const char *scheme,
				const struct job *job, struct run_ctl *ctl, size_t cap,
				void (*tweak)(struct server *))
{
	struct outcome o = { 0 };
	struct canned *c = port > 0 ? NULL : canned_start(reply, 1);
	ck_assert(port > 0 || c != NULL);
	struct server s = server_at(port > 0 ? port : canned_port(c), scheme);
	if (tweak)
		tweak(&s);
	struct http *h = http_new(&s, job, ctl);
	struct buf resp = BUF_INIT;
	double t0 = mono_now();
	o.rc = http_post_small(h, "/p", "text/plain", "hello", 5, cap, &o.status, &resp, "probe",
			       &o.err);
	o.secs = mono_now() - t0;
	o.body = resp.s ? xstrdup(resp.s) : NULL;
	buf_release(&resp);
	http_free(h);
	canned_stop(c);
	return o;
}

static void outcome_free(struct outcome *o)
{
	free(o->err);
	free(o->body);
}

static void bad_ca_file(struct server *s)
{
	s->ca_file = (char *)"/nonexistent/zmb-ca.pem";
}

START_TEST(test_answers_are_not_errors)
{
	struct canned_reply ok = { .status = 200, .body = "pong" };
	struct outcome o = post_once(&ok, 0, "http", NULL, NULL, 1024, NULL);
	ck_assert_msg(o.rc == ZMB_OK, "%s", o.err ? o.err : "");
	ck_assert_int_eq(o.status, 200);
	ck_assert_str_eq(o.body, "pong");
	outcome_free(&o);
	/* a 5xx answer is the caller's to judge: http_post_small reports transport only */
	struct canned_reply five = { .status = 500, .body = "{}" };
	o = post_once(&five, 0, "http", NULL, NULL, 1024, NULL);
	ck_assert_msg(o.rc == ZMB_OK, "%s", o.err ? o.err : "");
	ck_assert_int_eq(o.status, 500);
	outcome_free(&o);
}
END_TEST

START_TEST(test_error_mapping)
{
	struct job stall = { 0 };
	stall.mig.low_speed_limit = 1000;   /* curl averages over seconds: the head alone is ~100 B */
	stall.mig.low_speed_time = 1;
	struct run_ctl aborted;
	runctl_init(&aborted, 0, 0);
	runctl_request_stop(&aborted, "SIGTERM", true);
	int dead_fd = -1;
	int dead = tu_dead_port(&dead_fd);

	struct {
		struct canned_reply reply;
		int port;
		const char *scheme;
		const struct job *job;
		struct run_ctl *ctl;
		size_t cap;
		void (*tweak)(struct server *);
		enum zmb_rc rc;
		const char *text;
	} rows[] = {
		{ { 0 }, dead, "http", NULL, NULL, 1024, NULL, ZMB_ECONNECT, "probe: cannot connect to 127.0.0.1:" },
		{ { .status = 0 }, 0, "http", NULL, NULL, 1024, NULL, ZMB_ETEMP, "probe: " },
		{ { .status = 200, .body = "cut", .short_by = 50 }, 0, "http", NULL, NULL, 1024, NULL,
		  ZMB_ETEMP, "probe: " },
		{ { .status = 200, .body = "0123456789abcdef" }, 0, "http", NULL, NULL, 10, NULL,
		  ZMB_EPROTO, "probe: response larger than 10 bytes" },
		/* the head and a byte, then nothing: the download stall rule (1000 B/s for 1 s) */
		{ { .status = 200, .body = "x", .short_by = 1000, .linger = 4 }, 0, "http", &stall, NULL,
		  1024, NULL, ZMB_ETEMP, "probe: transfer stalled" },
		{ { .status = 200, .body = "late", .wait = 2 }, 0, "http", NULL, &aborted, 1024, NULL,
		  ZMB_ECANCELED, "probe: canceled (stop requested)" },
		{ { .status = 200 }, 0, "ftp", NULL, NULL, 1024, NULL, ZMB_ECONFIG, "probe: " },
		/* https to a peer that closes at once: the handshake was cut, not refused */
		{ { .status = 0, .no_read = true }, 0, "https", NULL, NULL, 1024, NULL, ZMB_ETEMP,
		  "probe: tls handshake interrupted" },
		{ { .status = 0, .no_read = true }, 0, "https", NULL, NULL, 1024, bad_ca_file, ZMB_ETLS,
		  "probe: tls: cannot use ca_file = \"/nonexistent/zmb-ca.pem\"" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct outcome o = post_once(&rows[i].reply, rows[i].port, rows[i].scheme, rows[i].job,
					     rows[i].ctl, rows[i].cap, rows[i].tweak);
		ck_assert_msg(o.rc == rows[i].rc, "row %zu: %s, want %s (%s)", i, zmb_rc_name(o.rc),
			      zmb_rc_name(rows[i].rc), o.err ? o.err : "");
		ck_assert_msg(tu_contains(o.err, rows[i].text), "row %zu: err \"%s\", want \"%s\"", i,
			      o.err, rows[i].text);
		ck_assert_msg(!strncmp(o.err, "source 127.0.0.1:", 17), "row %zu: err %s", i, o.err);
		ck_assert_int_eq(o.status, 0);
		ck_assert_msg(o.secs < 3.5, "row %zu took %.1f s", i, o.secs);
		outcome_free(&o);
	}
	close(dead_fd);
}
END_TEST

/* ------------------------------------------------------------ upload stall watch */

struct trickle {
	struct http *h;
	size_t left;      /* bytes still to send, one per call */
};

static size_t trickle_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct trickle *t = ud;
	(void)sz;
	(void)n;
	if (t->left == 0) {
		http_upload_done(t->h);
		return 0;
	}
	tu_sleep(0.1);   /* waiting for data from elsewhere */
	*p = 'z';
	t->left--;
	return 1;
}

static enum zmb_rc trickle_post(int port, bool starved, size_t len, char **err)
{
	struct server s = server_at(port, "http");
	struct job job = { 0 };
	job.mig.low_speed_limit = 1000;
	job.mig.low_speed_time = 1;
	struct http *h = http_new(&s, &job, NULL);
	struct trickle t = { h, len };
	char *url = http_url(h, "/up");
	CURL *c = http_begin(h, url, true);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, trickle_cb);
	curl_easy_setopt(c, CURLOPT_READDATA, &t);
	http_add_header(h, "Expect:");
	http_apply_headers(h);
	/* as rest_stream does while its ring buffer is empty (there the read
	 * callback pauses the transfer; here the whole upload waits so) */
	http_upload_starved(h, starved);
	enum zmb_rc rc = http_error(h, curl_easy_perform(c), "upload", err);
	free(url);
	http_free(h);
	return rc;
}

/* An upload body that flows at 10 B/s under a 1000 B/s rule is a stall... */
START_TEST(test_upload_stall)
{
	struct canned_reply r = { .status = 200 };
	struct canned *c = canned_start(&r, 1);
	char *err = NULL;
	double t0 = mono_now();
	enum zmb_rc rc = trickle_post(canned_port(c), false, 100, &err);
	double secs = mono_now() - t0;
	ck_assert_int_eq(rc, ZMB_ETEMP);
	ck_assert_msg(tu_contains(err, "upload: upload stalled (less than 1000 bytes/s for 1 s)"),
		      "err: %s", err);
	ck_assert_msg(secs >= 0.9 && secs < 3.5, "stall after %.2f s", secs);
	free(err);
	canned_stop(c);
}
END_TEST

/* ...unless it is waiting for data from elsewhere (http_upload_starved). */
START_TEST(test_upload_starved_is_no_stall)
{
	struct canned_reply r = { .status = 200 };
	struct canned *c = canned_start(&r, 1);
	char *err = NULL;
	enum zmb_rc rc = trickle_post(canned_port(c), true, 16, &err);   /* 1.6 s */
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "");
	ck_assert_int_eq(canned_count(c), 1);
	ck_assert_int_eq(canned_request(c, 0)->body_len, 16);
	canned_stop(c);
}
END_TEST

/* ------------------------------------------------------------ pacing */

START_TEST(test_pace_download)
{
	struct server s = server_at(1, "http");
	struct job job = { 0 };
	job.mig.max_bytes_per_second = 1000000;
	struct http *h = http_new(&s, &job, NULL);
	double t0 = mono_now();
	for (int i = 0; i < 5; i++)
		http_pace_download(h, 100000);
	double secs = mono_now() - t0;
	ck_assert_msg(secs >= 0.45 && secs < 2.0, "500 kB at 1 MB/s took %.2f s", secs);
	http_free(h);
	/* a total cap is shared by the threads: 2 MB/s over 4 threads = 500 kB/s each */
	job.mig.max_bytes_per_second = 0;
	job.mig.max_bytes_per_second_total = 2000000;
	job.mig.threads = 4;
	h = http_new(&s, &job, NULL);
	t0 = mono_now();
	http_pace_download(h, 250000);
	secs = mono_now() - t0;
	ck_assert_msg(secs >= 0.45 && secs < 2.0, "250 kB at 500 kB/s took %.2f s", secs);
	http_free(h);
	/* no cap: no wait; a stop request: no wait either */
	job.mig.max_bytes_per_second_total = 0;
	h = http_new(&s, &job, NULL);
	t0 = mono_now();
	http_pace_download(h, 100000000);
	ck_assert(mono_now() - t0 < 0.1);
	http_free(h);
	struct run_ctl ctl;
	runctl_init(&ctl, 0, 0);
	runctl_request_stop(&ctl, "SIGTERM", true);
	job.mig.max_bytes_per_second = 1000;
	h = http_new(&s, &job, &ctl);
	t0 = mono_now();
	http_pace_download(h, 100000);   /* 100 s at 1 kB/s */
	ck_assert(mono_now() - t0 < 0.5);
	http_free(h);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("unit_http");
	TCase *tc = tcase_create("handle");
	tcase_add_unchecked_fixture(tc, global, NULL);
	tcase_add_test(tc, test_label_url_buffer);
	tcase_add_test(tc, test_pace_download);
	suite_add_tcase(s, tc);
	tc = tcase_create("errors");
	tcase_add_unchecked_fixture(tc, global, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_answers_are_not_errors);
	tcase_add_test(tc, test_error_mapping);
	suite_add_tcase(s, tc);
	tc = tcase_create("stall");
	tcase_add_unchecked_fixture(tc, global, NULL);
	tcase_add_test(tc, test_upload_stall);
	tcase_add_test(tc, test_upload_starved_is_no_stall);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
