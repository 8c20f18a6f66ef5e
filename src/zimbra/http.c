/*
 * http.c - libcurl easy-handle setup shared by SOAP and REST.
 */
#include "http.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONNECT_TIMEOUT_S 30L
#define KEEPIDLE_S 60L
#define KEEPINTVL_S 30L

struct http {
	CURL *curl;
	const struct server *srv;
	struct run_ctl *ctl;           /* may be NULL */
	char *label;                   /* "source zcs1:7071" */
	char *base;                    /* "https://zcs1:7071" */
	long long low_speed_limit;
	long long low_speed_time;
	long long max_bps;
	size_t buffer_size;
	struct curl_slist *hdrs;       /* headers of the current request */
	CURLM *multi;                  /* lazily made for rest_stream; keeps its connections */
	struct throttle *thr;          /* the server's, shared; may be NULL */
	struct throttle_ticket tk;     /* of the request between http_gate and http_gate_done */
	int busy_streak;               /* 429/503 answers in a row on this handle */
	char errbuf[CURL_ERROR_SIZE];

	/* per-request state, reset by http_begin */
	bool canceled;
	bool stalled;
	bool upload_watch;
	bool upload_finished;
	bool starved;
	double watch_t0;
	curl_off_t watch_b0;
	double pace_t0;                /* first body byte of a paced download; 0 = none yet */
	long long pace_bytes;
	enum zmb_rc local_rc;
	char *local_msg;
};

/*
 * libcurl's CURLOPT_MAX_RECV_SPEED_LARGE averages over several seconds, so a
 * download of a few MB on a fast link arrives far above the cap (uploads are
 * paced closely).  A body sink calls this for every chunk it took: it sleeps
 * until bytes/max_bps seconds have passed since the first byte, in slices of
 * at most 0.2 s so that a stop request still ends the transfer promptly.
 */
void http_pace_download(struct http *h, size_t len)
{
	if (h->max_bps <= 0)
		return;
	double now = mono_now();
	if (h->pace_t0 == 0)
		h->pace_t0 = now;
	h->pace_bytes += (long long)len;
	double due = h->pace_t0 + (double)h->pace_bytes / (double)h->max_bps;
	while (now < due && !(h->ctl && runctl_must_abort(h->ctl))) {
		double d = due - now < 0.2 ? due - now : 0.2;
		struct timespec ts = { (time_t)d, (long)((d - (double)(time_t)d) * 1e9) };
		nanosleep(&ts, NULL);
		now = mono_now();
	}
}

/* Progress callback: stop requests and the upload stall watch. */
static int xferinfo_cb(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct http *h = p;
	(void)dltotal;
	(void)dlnow;
	if (h->ctl && runctl_must_abort(h->ctl)) {
		h->canceled = true;
		return 1;
	}
	if (ultotal > 0 && ulnow >= ultotal)
		h->upload_finished = true;
	if (h->upload_watch && !h->upload_finished && h->low_speed_time > 0) {
		double now = mono_now();
		if (h->starved || ulnow < h->watch_b0) {
			h->watch_t0 = now;
			h->watch_b0 = ulnow;
		} else if (now - h->watch_t0 >= (double)h->low_speed_time) {
			double rate = (double)(ulnow - h->watch_b0) / (now - h->watch_t0);
			if (rate < (double)h->low_speed_limit) {
				h->stalled = true;
				return 1;
			}
			h->watch_t0 = now;
			h->watch_b0 = ulnow;
		}
	}
	return 0;
}

char *http_server_label(const struct server *srv)
{
	int port = srv->port > 0 ? srv->port : 7071;
	const char *host = srv->host ? srv->host : "";
	bool v6 = strchr(host, ':') != NULL;
	return xasprintf("%s %s%s%s:%d", srv->role ? srv->role : "server", v6 ? "[" : "", host,
			 v6 ? "]" : "", port);
}

struct http *http_new(const struct server *srv, const struct job *job, struct run_ctl *ctl)
{
	struct http *h = xcalloc(1, sizeof(*h));
	h->srv = srv;
	h->ctl = ctl;
	h->curl = curl_easy_init();
	if (!h->curl) {
		fprintf(stderr, "zmbatch: curl_easy_init failed\n");
		abort();
	}
	int port = srv->port > 0 ? srv->port : 7071;
	const char *scheme = srv->scheme && *srv->scheme ? srv->scheme : "https";
	const char *host = srv->host ? srv->host : "";
	bool v6 = strchr(host, ':') != NULL;
	h->label = http_server_label(srv);
	h->base = xasprintf("%s://%s%s%s:%d", scheme, v6 ? "[" : "", host, v6 ? "]" : "", port);
	h->low_speed_limit = 1;
	h->low_speed_time = 300;
	h->buffer_size = 1u << 20;
	if (job) {
		if (job->mig.low_speed_limit > 0)
			h->low_speed_limit = job->mig.low_speed_limit;
		if (job->mig.low_speed_time >= 0)
			h->low_speed_time = job->mig.low_speed_time;
		h->max_bps = job->mig.max_bytes_per_second > 0 ? job->mig.max_bytes_per_second : 0;
		/* a total cap is shared evenly by the worker threads */
		if (job->mig.max_bytes_per_second_total > 0) {
			long long per = job->mig.max_bytes_per_second_total /
					(job->mig.threads > 0 ? job->mig.threads : 1);
			if (per < 1)
				per = 1;
			if (h->max_bps == 0 || per < h->max_bps)
				h->max_bps = per;
		}
		if (job->mig.buffer_size > 0)
			h->buffer_size = (size_t)job->mig.buffer_size;
	}
	if (h->buffer_size < (64u << 10))
		h->buffer_size = 64u << 10;
	return h;
}

void http_set_throttle(struct http *h, struct throttle *t)
{
	h->thr = t;
}

enum zmb_rc http_gate(struct http *h, char **err)
{
	return h->thr ? throttle_acquire(h->thr, &h->tk, err) : ZMB_OK;
}

bool http_gate_done(struct http *h, long status)
{
	if (!h->thr)
		return false;
	bool busy = status == 429 || status == 503;
	double ra = 0;
	if (busy) {
		/* seconds, or an HTTP-date turned into seconds from now by curl; only
		 * from this answer (the handle may keep an earlier answer's value) */
		curl_off_t r = 0;
		bool has = true;
#if LIBCURL_VERSION_NUM >= 0x075300
		struct curl_header *hd = NULL;
		has = curl_easy_header(h->curl, "Retry-After", 0, CURLH_HEADER, -1, &hd) == CURLHE_OK;
#endif
		if (has && curl_easy_getinfo(h->curl, CURLINFO_RETRY_AFTER, &r) == CURLE_OK && r > 0)
			ra = (double)r;
	}
	h->busy_streak = busy ? h->busy_streak + 1 : 0;
	throttle_release(h->thr, &h->tk, status <= 0 ? THROTTLE_NONE : busy ? THROTTLE_BUSY : THROTTLE_OK,
			 status, ra, h->busy_streak);
	return busy;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	if (h->thr)
		throttle_release(h->thr, &h->tk, THROTTLE_NONE, 0, 0, 0);   /* a gate left open */
	if (h->multi)
		curl_multi_cleanup(h->multi);  /* no easy handle is attached between calls */
	if (h->curl)
		curl_easy_cleanup(h->curl);
	curl_slist_free_all(h->hdrs);
	free(h->label);
	free(h->base);
	free(h->local_msg);
	free(h);
}

CURLM *http_multi(struct http *h)
{
	if (!h->multi) {
		h->multi = curl_multi_init();
		if (!h->multi)
			abort();
	}
	return h->multi;
}

const struct server *http_server(const struct http *h)
{
	return h->srv;
}

const char *http_label(const struct http *h)
{
	return h->label;
}

size_t http_buffer_size(const struct http *h)
{
	return h->buffer_size;
}

char *http_url(const struct http *h, const char *path)
{
	return xasprintf("%s%s", h->base, path);
}

char *http_escape(const struct http *h, const char *s)
{
	char *e = curl_easy_escape(h->curl, s ? s : "", 0);
	if (!e)
		abort();
	char *r = xstrdup(e);
	curl_free(e);
	return r;
}

CURL *http_begin(struct http *h, const char *url, bool upload_watch)
{
	CURL *c = h->curl;
	const struct server *srv = h->srv;

	curl_easy_reset(c);   /* keeps live connections, DNS and TLS session caches */
	curl_slist_free_all(h->hdrs);
	h->hdrs = NULL;
	h->canceled = h->stalled = h->upload_finished = h->starved = false;
	h->upload_watch = upload_watch;
	h->watch_t0 = mono_now();
	h->watch_b0 = 0;
	h->pace_t0 = 0;
	h->pace_bytes = 0;
	h->local_rc = ZMB_OK;
	free(h->local_msg);
	h->local_msg = NULL;
	h->errbuf[0] = '\0';

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 0L);   /* never a total timeout */
	if (!upload_watch && h->low_speed_time > 0) {
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, (long)h->low_speed_limit);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)h->low_speed_time);
	}
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, KEEPIDLE_S);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, KEEPINTVL_S);
	if (h->max_bps > 0) {
		curl_easy_setopt(c, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)h->max_bps);
		curl_easy_setopt(c, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)h->max_bps);
	}
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, h);

	/* TLS */
	if (srv->tls_verify) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	} else {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (srv->ca_file && *srv->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, srv->ca_file);
	if (srv->pinned_pubkey && *srv->pinned_pubkey)
		curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, srv->pinned_pubkey);
	return c;
}

void http_add_header(struct http *h, const char *line)
{
	struct curl_slist *n = curl_slist_append(h->hdrs, line);
	if (!n)
		abort();
	h->hdrs = n;
}

void http_set_token_cookie(struct http *h, const char *token)
{
	if (!token) {
		curl_easy_setopt(h->curl, CURLOPT_COOKIE, NULL);
		return;
	}
	char *c = xasprintf("ZM_ADMIN_AUTH_TOKEN=%s", token);
	curl_easy_setopt(h->curl, CURLOPT_COOKIE, c);   /* curl copies it */
	secret_free(c);
}

void http_apply_headers(struct http *h)
{
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->hdrs);
}

void http_upload_done(struct http *h)
{
	h->upload_finished = true;
}

void http_upload_starved(struct http *h, bool starved)
{
	h->starved = starved;
}

void http_watch_restart(struct http *h)
{
	h->watch_t0 = mono_now();
	h->watch_b0 = 0;
}

void http_set_local_error(struct http *h, enum zmb_rc rc, const char *msg)
{
	if (h->local_rc)
		return;
	h->local_rc = rc;
	h->local_msg = xstrdup(msg);
}

long http_status(struct http *h)
{
	long st = 0;
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &st);
	return st;
}

static const char *detail(struct http *h, CURLcode cc)
{
	return h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc);
}

/*
 * A TLS failure of the last transfer: the text says how to trust the server.
 * A handshake cut by the network is no trust problem (ZMB_ETEMP).  ZMB_OK
 * when cc is not a TLS failure.
 */
static enum zmb_rc tls_error(struct http *h, CURLcode cc, const char *what, char **err)
{
	const struct server *srv = h->srv;
	const char *role = srv->role ? srv->role : "server";

	if (cc == CURLE_SSL_CONNECT_ERROR &&
	    (strstr(h->errbuf, "reset") || strstr(h->errbuf, "SYSCALL") ||
	     strstr(h->errbuf, "unexpected eof") || strstr(h->errbuf, "timed out"))) {
		/* the connection died during the handshake: not a trust problem */
		*err = xasprintf("%s: %s: tls handshake interrupted: %s", h->label, what, detail(h, cc));
		return ZMB_ETEMP;
	}
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_INVALIDCERTSTATUS:
		*err = xasprintf("%s: %s: tls: %s; to trust this server set ca_file = \"/path/to/ca.pem\" "
				 "or pinned_pubkey = \"sha256//BASE64=\" in the %s server group "
				 "(legacy conf: --ca-file PEM), and connect by the name in its certificate",
				 h->label, what, detail(h, cc), role);
		return ZMB_ETLS;
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		*err = xasprintf("%s: %s: tls: the server public key does not match pinned_pubkey "
				 "of the %s server group (%s)", h->label, what, role, detail(h, cc));
		return ZMB_ETLS;
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
		*err = xasprintf("%s: %s: tls: cannot use ca_file = \"%s\": %s", h->label, what,
				 srv->ca_file ? srv->ca_file : "", detail(h, cc));
		return ZMB_ETLS;
	default:
		return ZMB_OK;
	}
}

enum zmb_rc http_error(struct http *h, CURLcode cc, const char *what, char **err)
{
	enum zmb_rc rc;

	if (cc == CURLE_OK)
		return ZMB_OK;
	if (h->canceled) {
		*err = xasprintf("%s: %s: canceled (stop requested)", h->label, what);
		return ZMB_ECANCELED;
	}
	if (h->local_rc) {
		*err = xasprintf("%s: %s: %s", h->label, what, h->local_msg ? h->local_msg : "local error");
		return h->local_rc;
	}
	if (h->stalled) {
		*err = xasprintf("%s: %s: upload stalled (less than %lld bytes/s for %lld s)", h->label,
				 what, h->low_speed_limit, h->low_speed_time);
		return ZMB_ETEMP;
	}
	if ((rc = tls_error(h, cc, what, err)) != ZMB_OK)
		return rc;
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		*err = xasprintf("%s: %s: cannot connect to %s: %s", h->label, what,
				 strchr(h->label, ' ') + 1, detail(h, cc));
		return ZMB_ECONNECT;
	case CURLE_OPERATION_TIMEDOUT: {
		curl_off_t ct = 0;
		curl_easy_getinfo(h->curl, CURLINFO_CONNECT_TIME_T, &ct);
		if (ct == 0) {
			*err = xasprintf("%s: %s: cannot connect to %s: %s", h->label, what,
					 strchr(h->label, ' ') + 1, detail(h, cc));
			return ZMB_ECONNECT;
		}
		*err = xasprintf("%s: %s: transfer stalled: %s", h->label, what, detail(h, cc));
		return ZMB_ETEMP;
	}
	case CURLE_WRITE_ERROR:
	case CURLE_READ_ERROR:
		*err = xasprintf("%s: %s: local i/o error: %s", h->label, what, detail(h, cc));
		return ZMB_EIO;
	case CURLE_ABORTED_BY_CALLBACK:
		*err = xasprintf("%s: %s: aborted", h->label, what);
		return ZMB_ETEMP;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		*err = xasprintf("%s: %s: %s", h->label, what, detail(h, cc));
		return ZMB_ECONFIG;
	default:
		/* reset, truncated transfer, empty reply, send/recv errors */
		*err = xasprintf("%s: %s: %s", h->label, what, detail(h, cc));
		return ZMB_ETEMP;
	}
}

/* ---- small POST (SOAP) ---- */

struct small_sink {
	struct buf *b;
	size_t cap;
	struct http *h;
};

static size_t small_write_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct small_sink *s = ud;
	size_t len = sz * n;
	if (s->b->len + len > s->cap) {
		char *m = xasprintf("response larger than %zu bytes", s->cap);
		http_set_local_error(s->h, ZMB_EPROTO, m);
		free(m);
		return 0;
	}
	buf_add(s->b, p, len);
	return len;
}

enum zmb_rc http_post_small(struct http *h, const char *path, const char *content_type,
			    const char *body, size_t len, size_t cap, long *status,
			    struct buf *resp, const char *what, char **err)
{
	char *url = http_url(h, path);
	struct small_sink sink = { resp, cap, h };
	enum zmb_rc rc;

	CURL *c = http_begin(h, url, false);
	buf_reset(resp);
	char *ct = xasprintf("Content-Type: %s", content_type);
	http_add_header(h, ct);
	http_add_header(h, "Expect:");
	http_apply_headers(h);
	free(ct);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, small_write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	CURLcode cc = curl_easy_perform(c);
	/* the body may hold a password: do not leave curl pointing at it */
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
	rc = http_error(h, cc, what, err);
	*status = rc ? 0 : http_status(h);
	if (resp->s == NULL)
		buf_adds(resp, "");
	free(url);
	return rc;
}
