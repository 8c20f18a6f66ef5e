/*
 * rest.h - REST tgz export / import at /service/home/<account>/.
 *
 * All calls run in the thread owning the http handle(s).  The token is sent
 * only in the ZM_ADMIN_AUTH_TOKEN cookie; the account name is URL-escaped as
 * one path segment.  On HTTP 401 the token is invalidated and the step is
 * retried once with a fresh one.
 *
 * Result codes: 200 ok; export 204 -> ZMB_OK with *empty = true; 401 twice ->
 * ZMB_EAUTHEXP; 404 -> ZMB_ENOACCOUNT; 429/503 -> ZMB_EBUSY; other 5xx, reset,
 * truncated transfer, stall -> ZMB_ETEMP; other 4xx -> ZMB_EPROTO; local
 * write/read failure -> ZMB_EIO; stop -> ZMB_ECANCELED; TLS/connect as http.h.
 * *bytes counts body bytes moved in the last attempt; *err is set (caller
 * frees) on every error.
 *
 * Imports carry callback=IMPORT_CALLBACK and their 200 answer is parsed
 * (import_answer.h): 'fail', a quota stop and a read loop that ended early
 * are errors (the fault's code and reason in *err: a sender fault
 * ZMB_EPROTO, else ZMB_ETEMP); per-item warnings are ZMB_OK with the
 * faults in *ans (may be NULL; caller releases; empty on error); an empty
 * 200 (no callback answer) is success.  A 401 that a new login
 * did not cure names the admin port (zimbraAdminPort) in *err.
 *
 * Throttling: each request passes h's gate (http_gate, throttle.h).  With a
 * throttle attached a 429 (Jetty's DoSFilter) or 503 is not an error: the
 * same request (a stream: both of its requests) is sent again once the
 * server's pause is over, without using up the one 401 retry; ZMB_EBUSY
 * then means the run-wide bound on throttling was passed.
 */
#ifndef ZMB_REST_H
#define ZMB_REST_H

#include "http.h"
#include "import_answer.h"
#include "token.h"
#include "zmb.h"

struct gz_check;

struct rest_export_opts {
	const char *types;   /* NULL/"" = everything */
	long long start_ms;  /* 0 = full export, else &start=<ms> */
	long long end_ms;    /* 0 = none, else &end=<ms> (items dated before it) */
	const char *ids;     /* "id,id,..." = only these items (&list=), NULL = none */
	/*
	 * Optional, rest_export_file only (src/core/archive.h): fed every byte of a
	 * 200 answer as it is written, reset at each new attempt; the caller
	 * asks for the verdict (gz_check_finish).  rest_stream ignores it and
	 * relies on the target, which parses the gzip as it imports.  Caution:
	 * the real ArchiveFormatter.saveCallback (zm-mailbox, service/formatter)
	 * catches a read error inside its tar loop as a per-item warning and,
	 * without callback=, Formatter.updateClient answers 200 - only the
	 * simulator answers 500 - so a stream cut short can pass unseen on a
	 * real server until import warnings are read (callback=NAME).
	 */
	struct gz_check *verify;
};

/*
 * GET ...?fmt=tgz into fd (a regular file, written from the current offset
 * with a write loop; nothing buffered beyond curl's chunks).  The data is
 * not fsync()ed: the caller decides (an archive imported at once needs no
 * trip to the disk).  On a failed or retried attempt the fd is truncated
 * back to its starting offset.
 */
enum zmb_rc rest_export_file(struct http *h, struct token_cache *tc, const char *account,
			     const struct rest_export_opts *o, int fd, long long *bytes,
			     bool *empty, char **err);

/*
 * POST ...?fmt=tgz&resolve=<r> (resolve NULL = server default) with the whole
 * file fd as body (read with pread from offset 0, Content-Length = file
 * size, Content-Type application/octet-stream, never Content-Encoding).
 * Waits for the answer after the last byte without a read timeout.
 */
enum zmb_rc rest_import_file(struct http *h, struct token_cache *tc, const char *target,
			     const char *resolve, int fd, long long *bytes,
			     struct import_answer *ans, char **err);

/*
 * Export from src piped straight into an import on dst (no disk): both easy
 * handles in one curl multi in the calling thread, a ring buffer of
 * http_buffer_size(src) bytes between them, chunked POST.  Export 204 -> no
 * import, *empty = true.  Failure on either side aborts both; on a 401 from
 * either side the whole stream is retried once with a fresh token.
 */
enum zmb_rc rest_stream(struct http *src, struct token_cache *stc, struct http *dst,
			struct token_cache *dtc, const char *account, const char *target,
			const struct rest_export_opts *o, const char *resolve, long long *bytes,
			bool *empty, struct import_answer *ans, char **err);

/*
 * `zmbatch check`: does this server take the admin cookie for REST?  One
 * GET /service/home/REST_PROBE_ACCOUNT/?fmt=tgz, an account that cannot
 * exist, so no mailbox is ever sent.  The real UserServlet (zm-mailbox
 * store/src/java/com/zimbra/cs/service/UserServlet.java; carbonio-mailbox
 * the same) finds no mailbox for it (UserServletUtil.getTargetMailbox
 * 226-238), and the tgz formatter requiresAuth, so doAuthGet (709-710)
 * throws PERM_DENIED; doGet's sendError (345-366) then answers 404 when
 * the cookie authenticated the request (cookieAuthHappened) and 401 with
 * WWW-Authenticate when it did not - and the ZM_ADMIN_AUTH_TOKEN cookie is
 * read only on zimbraAdminPort (UserServletUtil.getAccount 250-260:
 * AuthUtil.isAdminRequest).  404, or 200/204 (such an account after all:
 * the body is cut after 2 KiB) -> ZMB_OK, *status the code.  401, after one new login as every REST call
 * does -> ZMB_EAUTHEXP with *err saying the port is probably not the
 * admin port; other answers and transport errors as the other calls.
 */
#define REST_PROBE_ACCOUNT "zmbatch-check-no-such-account@zmbatch-check.invalid"
enum zmb_rc rest_probe(struct http *h, struct token_cache *tc, long *status, char **err);

#endif
