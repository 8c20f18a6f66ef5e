/*
 * canned.h - a tiny HTTP/1.1 server on 127.0.0.1 for the unit suites: it
 * answers each connection with the next reply of a script and records what
 * the client sent.  Plain HTTP (struct server.scheme = "http"); an https
 * client gets the raw TCP side, enough for handshake failures.
 *
 * One connection = one request = one reply ("Connection: close"), so the
 * order of requests is the order of the script.  A request past the end of
 * the script is answered 599.  The server runs in its own thread; the
 * accessors below take its lock and may be called from the test at any time.
 * Create and stop it in the test (or a checked fixture): not fork-safe.
 */
#ifndef ZMB_CANNED_H
#define ZMB_CANNED_H

#include <stdbool.h>
#include <stddef.h>

#include "zmb.h"

struct canned_reply {
	int status;             /* 0 = send nothing, just close */
	const char *headers;    /* extra header lines, each ending "\r\n"; NULL = none */
	const char *body;       /* NULL = empty */
	size_t short_by;        /* announce a Content-Length this much larger than the body */
	bool no_read;           /* do not read the request (close/answer at once) */
	bool read_headers_only; /* read the request head, never the body */
	double wait;            /* seconds to wait before answering */
	double linger;          /* seconds to wait after answering, before closing */
};

struct canned_request {
	char *method;           /* "GET", "POST" */
	char *target;           /* "/service/home/a%40b/?fmt=tgz" */
	char *head;             /* the request head, as sent (header lines) */
	char *body;             /* the body (NUL-terminated; at most CANNED_BODY_CAP kept) */
	size_t body_len;        /* bytes of body received (may exceed what is kept) */
};
#define CANNED_BODY_CAP ((size_t)1 << 20)

struct canned;

/* Start serving script[0..n) (copied: strings must outlive the server). NULL on failure. */
struct canned *canned_start(const struct canned_reply *script, size_t n);
int canned_port(const struct canned *c);
/* Requests seen so far (complete or not) and the i-th of them (owned by c; NULL past the end). */
size_t canned_count(struct canned *c);
const struct canned_request *canned_request(struct canned *c, size_t i);
/* The value of header `name` (case-insensitive) in request i, a new string or NULL. */
char *canned_header(struct canned *c, size_t i, const char *name);
/* Stop the thread, close the socket, free everything.  NULL-safe. */
void canned_stop(struct canned *c);

/*
 * A login function for the token cache (token_login_fn) that sends nothing:
 * tokens "tok-1", "tok-2", ... valid for an hour.  canned_login_reset()
 * starts the count again (call it in the fixture).
 */
struct http;
enum zmb_rc canned_login(struct http *h, char **token, long long *lifetime_ms, char **err);
void canned_login_reset(void);

#endif
