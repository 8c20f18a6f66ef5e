/*
 * http.h - one libcurl easy handle per worker thread, set up for one server.
 *
 * A `struct http` belongs to exactly one thread (the worker that created it);
 * it is never shared.  It keeps the connection alive between requests
 * (keep-alive, TLS session reuse).  SOAP (soap.c) and REST (rest.c) drive it
 * through the verbs below; the migration engine only creates and frees it.
 *
 * What every request gets (http_begin):
 *   - TLS verification ON (VERIFYPEER + VERIFYHOST) unless server.tls_verify
 *     is false; server.ca_file -> CAINFO; server.pinned_pubkey ->
 *     PINNEDPUBLICKEY (applied even when tls_verify is false);
 *   - a connect timeout (30 s) and NO total timeout;
 *   - stall detection: CURLOPT_LOW_SPEED_LIMIT/TIME from job->mig while the
 *     server sends; for uploads the same rule is applied by the progress
 *     callback only while the body is being sent (not while the server
 *     processes the import after the last byte; TCP keepalive covers that);
 *   - TCP keepalive (idle 60 s, interval 30 s);
 *   - bandwidth cap job->mig.max_bytes_per_second both ways (0 = none);
 *   - a progress callback that aborts when runctl_must_abort(ctl)
 *     (-> ZMB_ECANCELED).
 * The token is passed only as the ZM_ADMIN_AUTH_TOKEN cookie (REST) or in the
 * SOAP header (soap.c), never in a URL; request bodies are never logged.
 *
 * Error texts start with the server label, e.g. "source zcs1:7071: ...".
 */
#ifndef ZMB_HTTP_H
#define ZMB_HTTP_H

#include <curl/curl.h>

#include "job.h"
#include "runctl.h"
#include "throttle.h"
#include "zmb.h"

struct http;

/*
 * srv and job (job may be NULL: built-in defaults) must outlive the handle;
 * ctl may be NULL (never canceled).  Aborts on OOM; never NULL.
 */
struct http *http_new(const struct server *srv, const struct job *job, struct run_ctl *ctl);
void http_free(struct http *h);   /* NULL-safe */
/*
 * The handle's curl multi (made on first use, freed by http_free).  rest_stream
 * runs both sides of a stream in the source handle's multi; keeping it for the
 * worker's life keeps its connection cache, so stream mode reuses connections
 * (and TLS sessions) from one account to the next instead of two handshakes
 * per account.  Easy handles are attached only during a call.
 */
CURLM *http_multi(struct http *h);
/* "source zcs1:7071" (role host:port) for srv; caller frees.  http_label's text. */
char *http_server_label(const struct server *srv);
/*
 * Let the server's throttle (throttle.h) pace every request on h; t (NULL =
 * none: nothing waits, and a 429/503 is not sent again) is shared with the
 * other handles of the same server and must outlive h.
 */
void http_set_throttle(struct http *h, struct throttle *t);

/* ---- used by soap.c / rest.c / token.c (same thread as the owner) ---- */

/*
 * The gate around each request (soap.c, rest.c): http_gate before sending
 * (waits as the throttle requires; ZMB_EBUSY once the run-wide bound on
 * throttling is passed, ZMB_ECANCELED on a stop, each with *err), then
 * http_gate_done with the answer's HTTP status (0: no answer).  It returns
 * true for a 429 or 503 when a throttle is attached: the request was not
 * served and is to be sent again, after http_gate (which waits for the
 * server's pause: the answer's Retry-After, seconds or HTTP-date, or the
 * backoff).  Without a throttle both do nothing and the caller judges the
 * status (429/503 -> ZMB_EBUSY).
 */
enum zmb_rc http_gate(struct http *h, char **err);
bool http_gate_done(struct http *h, long status);

const struct server *http_server(const struct http *h);
/* "source zcs1:7071" (role host:port); owned by h. */
const char *http_label(const struct http *h);
/* Stream pipe buffer size (job->mig.buffer_size, default 4 MiB, min 64 KiB). */
size_t http_buffer_size(const struct http *h);
/* "https://host:port" + path (path starts with '/'); caller frees. */
char *http_url(const struct http *h, const char *path);
/* curl_easy_escape of one path segment / query value; caller frees. */
char *http_escape(const struct http *h, const char *s);

/*
 * Reset the easy handle (connections are kept) and apply the common options
 * above for a request to url.  Returns the easy handle for the caller to add
 * request-specific options (method, callbacks).  `upload_watch` enables the
 * upload stall check (see above).
 */
CURL *http_begin(struct http *h, const char *url, bool upload_watch);
/* Add a request header ("Name: value"); freed at the next http_begin. */
void http_add_header(struct http *h, const char *line);
/* Set the ZM_ADMIN_AUTH_TOKEN cookie for this request (NULL = none). */
void http_set_token_cookie(struct http *h, const char *token);
/* Install the collected headers; call after the last http_add_header. */
void http_apply_headers(struct http *h);
/* The upload body has been sent completely (stall watch ends). */
void http_upload_done(struct http *h);
/* The upload is waiting for data from elsewhere (stream mode): no stall. */
void http_upload_starved(struct http *h, bool starved);
/* Restart the upload stall watch now (a transfer added to a multi handle
 * later than http_begin: the wait before it is not a stall). */
void http_watch_restart(struct http *h);
/* A download body sink took len bytes: wait as max_bytes_per_second requires
 * (libcurl's own receive cap averages over seconds).  Transfer thread only. */
void http_pace_download(struct http *h, size_t len);
/* Mark a local I/O failure inside a callback (maps CURLE_WRITE_ERROR/READ). */
void http_set_local_error(struct http *h, enum zmb_rc rc, const char *msg);
/* HTTP status of the last response (0 if none). */
long http_status(struct http *h);
/*
 * Turn a CURLcode of the last transfer on h into a result code and an error
 * text "<label>: <what>: ..." (TLS advice, host:port on connect errors,
 * cancel, stall, local I/O).  cc == CURLE_OK returns ZMB_OK.
 */
enum zmb_rc http_error(struct http *h, CURLcode cc, const char *what, char **err);

/*
 * POST a small request body and read the whole answer into resp, at most
 * cap bytes (more -> ZMB_EPROTO).  Returns transport errors only; the
 * status is in *status for the caller to judge.
 */
enum zmb_rc http_post_small(struct http *h, const char *path, const char *content_type,
			    const char *body, size_t len, size_t cap, long *status,
			    struct buf *resp, const char *what, char **err);

#endif
