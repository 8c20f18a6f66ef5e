/*
 * rest.c - REST tgz export (GET) and import (POST) at /service/home/<account>/.
 *
 * Bodies are never held whole in memory: export writes each curl chunk to
 * the fd, import reads the fd with pread in curl-sized pieces, and the
 * stream mode passes chunks through a bounded ring buffer.
 */
#include "rest.h"
#include "archive.h"
#include "job.h"
#include "import_answer.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRBODY_CAP 2048

/* Add up to ERRBODY_CAP bytes of a non-200 answer, for the error text. */
static void errbody_add(struct buf *b, const char *p, size_t len)
{
	if (b->len >= ERRBODY_CAP)
		return;
	if (len > ERRBODY_CAP - b->len)
		len = ERRBODY_CAP - b->len;
	buf_add(b, p, len);
}

/* A short, single-line, redacted excerpt of an error body ("" if none). */
static char *errbody_text(const struct buf *b)
{
	if (!b->s || !b->len)
		return xstrdup("");
	/* redact the whole body first: a secret across the cut would stay half visible */
	char *whole = xstrndup(b->s, b->len);
	char *r = zlog_redact(whole);
	free(whole);
	if (strlen(r) > 200)
		r[200] = '\0';
	for (char *p = r; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t' || (unsigned char)*p < 0x20)
			*p = ' ';
	strtrim(r);
	char *out = *r ? xasprintf(": %s", r) : xstrdup("");
	free(r);
	return out;
}

/* the callback= answer of an import kept for parsing (one fault per failed item) */
#define ANSWER_CAP (1024 * 1024)

/* An import's answer: a 200's body (up to ANSWER_CAP) or an error excerpt. */
struct answer {
	struct http *h;
	struct buf body;
	bool cut;
};

static size_t answer_write_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct answer *a = ud;
	size_t len = sz * n;
	if (http_status(a->h) != 200) {
		errbody_add(&a->body, p, len);
		return len;
	}
	size_t room = a->body.len < ANSWER_CAP ? ANSWER_CAP - a->body.len : 0;
	if (len > room)
		a->cut = true;
	buf_add(&a->body, p, len > room ? room : len);
	return len;
}

static void answer_reset(struct answer *a)
{
	buf_reset(&a->body);
	a->cut = false;
}

/*
 * Judge a 200 import answer (import_answer.h).  'fail' is an error with the
 * server's fault; a 'warn' whose fault stopped the whole archive is one too:
 * ArchiveFormatter.saveCallback (zm-mailbox 946-1002) turns mail.QUOTA_EXCEEDED
 * and an exception in its read loop (a cut or corrupt stream: no item
 * argument) into one warning and imports nothing after it.  Other warnings
 * are per item: ZMB_OK, left in *ans for the caller.
 */
static enum zmb_rc answer_judge(struct http *h, const char *target, struct answer *a,
				struct import_answer *ans, char **err)
{
	char *e = NULL;
	if (a->body.len == 0)
		return ZMB_OK;   /* no callback answer (an old server, a proxy): nothing to judge */
	if (import_answer_parse(a->body.s, a->body.len, IMPORT_CALLBACK, a->cut, ans, &e)) {
		char *t = errbody_text(&a->body);
		*err = xasprintf("%s: import %s: http 200 but %s%s", http_label(h), target, e, t);
		free(t);
		free(e);
		return ZMB_EPROTO;
	}
	const struct import_fault *f = ans->n ? &ans->faults[0] : NULL;
	if (ans->verdict == IMPORT_FAIL) {
		*err = xasprintf("%s: import %s: the server refused the archive ('fail'): %s: %s",
				 http_label(h), target, f->code, f->reason);
		return f->sender ? ZMB_EPROTO : ZMB_ETEMP;
	}
	for (size_t i = 0; i < ans->n; i++) {
		f = &ans->faults[i];
		if (strcmp(f->code, "mail.QUOTA_EXCEEDED") == 0) {
			*err = xasprintf("%s: import %s: stopped by the target's quota, the rest of the "
					 "archive was not imported: %s: %s", http_label(h), target,
					 f->code, f->reason);
			return ZMB_EPROTO;
		}
		if (!f->item && strcmp(f->code, "formatter.UNKNOWN_ERROR") == 0) {
			*err = xasprintf("%s: import %s: the server stopped reading the archive, the "
					 "rest was not imported: %s: %s", http_label(h), target,
					 f->code, f->reason);
			return ZMB_ETEMP;
		}
	}
	return ZMB_OK;
}

/* Map a final HTTP status (not 200/204) to a result code and text. */
static enum zmb_rc status_rc(struct http *h, const char *what, const char *who, long st,
			     const struct buf *body, char **err)
{
	enum zmb_rc rc;
	const char *why;
	if (st == 401) {
		rc = ZMB_EAUTHEXP;
		why = "authentication rejected";
	} else if (st == 404) {
		rc = ZMB_ENOACCOUNT;
		why = "no such account";
	} else if (st == 503) {
		rc = ZMB_EBUSY;
		why = "server busy";
	} else if (st == 429) {
		rc = ZMB_EBUSY;
		why = "throttled: too many requests";
	} else if (st >= 500) {
		rc = ZMB_ETEMP;
		why = "server error";
	} else {
		rc = ZMB_EPROTO;
		why = "unexpected answer";
	}
	char *t = errbody_text(body);
	char *hint = NULL;
	if (st == 401) {
		/* AuthUtil.isAdminRequest: the admin cookie counts only on zimbraAdminPort */
		int port = http_server(h) ? http_server(h)->port : 0;
		hint = xasprintf("; a new login did not help. REST with the admin cookie is accepted only "
				 "on the server's admin port (zimbraAdminPort, default 7071)%s%.0d%s",
				 port && port != 7071 ? ": is port " : "", port && port != 7071 ? port : 0,
				 port && port != 7071 ? " the admin port?" : "");
	}
	*err = xasprintf("%s: %s %s: http %ld (%s)%s%s", http_label(h), what, who, st, why, t,
			 hint ? hint : "");
	free(hint);
	free(t);
	return rc;
}

static char *home_path(struct http *h, const char *account, const char *query)
{
	char *acct = http_escape(h, account);
	char *p = xasprintf("/service/home/%s/?%s", acct, query);
	free(acct);
	return p;
}

static char *export_query(struct http *h, const struct rest_export_opts *o)
{
	struct buf q = BUF_INIT;
	buf_adds(&q, "fmt=tgz");
	if (o && o->types && *o->types) {
		char *t = http_escape(h, o->types);
		buf_addf(&q, "&types=%s", t);
		free(t);
	}
	if (o && o->start_ms > 0)
		buf_addf(&q, "&start=%lld", o->start_ms);
	if (o && o->end_ms > 0)
		buf_addf(&q, "&end=%lld", o->end_ms);
	/* ids are digits and commas: sent as they are (escaped, every comma would take
	 * three bytes of a request line Jetty caps at zimbraHttpRequestHeaderSize) */
	if (o && o->ids && *o->ids) {
		bool plain = strspn(o->ids, "0123456789,") == strlen(o->ids);
		char *t = plain ? xstrdup(o->ids) : http_escape(h, o->ids);
		buf_addf(&q, "&list=%s", t);
		free(t);
	}
	return buf_detach(&q);
}

/* callback= on every import: else the server drops its per-item warnings (import_answer.h) */
static char *import_query(struct http *h, const char *resolve)
{
	if (!resolve || !*resolve)
		return xstrdup("fmt=tgz&callback=" IMPORT_CALLBACK);
	char *r = http_escape(h, resolve);
	char *q = xasprintf("fmt=tgz&resolve=%s&callback=" IMPORT_CALLBACK, r);
	free(r);
	return q;
}

/* ------------------------------------------------------------------ export */

struct file_sink {
	struct http *h;
	int fd;
	long long bytes;
	struct buf errbody;
	struct gz_check *verify;   /* may be NULL */
};

static size_t file_write_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct file_sink *s = ud;
	size_t len = sz * n;
	if (http_status(s->h) != 200) {
		errbody_add(&s->errbody, p, len);
		return len;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(s->fd, p + done, len - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			char *m = xasprintf("cannot write spool file: %s", strerror(errno));
			http_set_local_error(s->h, errno == ENOSPC ? ZMB_ENOSPACE : ZMB_EIO, m);
			free(m);
			return 0;
		}
		done += (size_t)w;
	}
	if (s->verify)
		gz_check_feed(s->verify, p, len);
	s->bytes += (long long)len;
	http_pace_download(s->h, len);
	return len;
}

/* Put fd back to offset off with nothing after it. */
static enum zmb_rc rewind_fd(struct http *h, int fd, off_t off, char **err)
{
	if (ftruncate(fd, off) < 0 || lseek(fd, off, SEEK_SET) < 0) {
		*err = xasprintf("%s: export: cannot truncate spool file: %s", http_label(h),
				 strerror(errno));
		return ZMB_EIO;
	}
	return ZMB_OK;
}

enum zmb_rc rest_export_file(struct http *h, struct token_cache *tc, const char *account,
			     const struct rest_export_opts *o, int fd, long long *bytes,
			     bool *empty, char **err)
{
	char *e = NULL;
	enum zmb_rc rc = ZMB_OK;
	char *q = export_query(h, o);
	char *path = home_path(h, account, q);
	char *url = http_url(h, path);
	char *tok = NULL;
	struct file_sink sink = { h, fd, 0, BUF_INIT, o ? o->verify : NULL };
	off_t off0 = lseek(fd, 0, SEEK_CUR);

	*bytes = 0;
	*empty = false;
	if (off0 < 0)
		off0 = 0;
	for (int auth_retry = 0, sent = 0;; sent++) {
		free(e);
		e = NULL;
		secret_free(tok);
		tok = NULL;
		sink.bytes = 0;
		buf_reset(&sink.errbody);
		if (sink.verify)
			gz_check_reset(sink.verify);
		if (sent > 0 && (rc = rewind_fd(h, fd, off0, &e)))
			goto out;
		rc = token_get(tc, h, &tok, &e);
		if (rc)
			goto out;
		if ((rc = http_gate(h, &e)))
			goto out;
		CURL *c = http_begin(h, url, false);
		http_set_token_cookie(h, tok);
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, file_write_cb);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
		CURLcode cc = curl_easy_perform(c);
		http_set_token_cookie(h, NULL);
		*bytes = sink.bytes;
		rc = http_error(h, cc, "export", &e);
		long st = rc ? 0 : http_status(h);
		if (http_gate_done(h, st))
			continue;       /* throttled: sent again once the server's pause is over */
		if (rc)
			break;
		if (st == 200)
			break;
		if (st == 204) {
			*empty = true;
			break;
		}
		rc = status_rc(h, "export", account, st, &sink.errbody, &e);
		if (rc == ZMB_EAUTHEXP && auth_retry++ == 0) {
			token_invalidate(tc, tok);
			continue;
		}
		break;
	}
	if (rc) {
		char *e2 = NULL;
		if (rewind_fd(h, fd, off0, &e2))
			free(e2);
	}
out:
	secret_free(tok);
	buf_release(&sink.errbody);
	free(url);
	free(path);
	free(q);
	if (rc)
		*err = e;
	else
		free(e);
	return rc;
}

/* ------------------------------------------------------------------ probe */

struct probe_sink {
	struct buf body;
	bool cut;
};

/* Keep up to ERRBODY_CAP bytes of any answer; past that the transfer is cut. */
static size_t probe_write_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct probe_sink *s = ud;
	size_t len = sz * n;
	errbody_add(&s->body, p, len);
	if (s->body.len >= ERRBODY_CAP) {
		s->cut = true;
		return 0;
	}
	return len;
}

enum zmb_rc rest_probe(struct http *h, struct token_cache *tc, long *status, char **err)
{
	char *e = NULL, *tok = NULL;
	char *path = home_path(h, REST_PROBE_ACCOUNT, "fmt=tgz");
	char *url = http_url(h, path);
	struct probe_sink sink = { BUF_INIT, false };
	enum zmb_rc rc;
	long st = 0;

	for (int auth_retry = 0;;) {
		free(e);
		e = NULL;
		secret_free(tok);
		tok = NULL;
		buf_reset(&sink.body);
		sink.cut = false;
		if ((rc = token_get(tc, h, &tok, &e)))
			break;
		if ((rc = http_gate(h, &e)))
			break;
		CURL *c = http_begin(h, url, false);
		http_set_token_cookie(h, tok);
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, probe_write_cb);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
		CURLcode cc = curl_easy_perform(c);
		http_set_token_cookie(h, NULL);
		st = http_status(h);
		/* a long answer cut on purpose still has its status */
		rc = sink.cut && st ? ZMB_OK : http_error(h, cc, "REST check", &e);
		if (rc)
			st = 0;
		if (http_gate_done(h, st))
			continue;
		if (rc || st == 404 || st == 200 || st == 204)
			break;
		rc = status_rc(h, "REST check", "(GET /service/home/<no such account>/?fmt=tgz)", st,
			       &sink.body, &e);
		if (rc == ZMB_EAUTHEXP && auth_retry++ == 0) {
			token_invalidate(tc, tok);
			continue;
		}
		if (st == 401) {
			/* AuthUtil.isAdminRequest: the admin cookie counts only on zimbraAdminPort */
			const struct server *srv = http_server(h);
			free(e);
			e = xasprintf("%s: REST with the admin cookie answered http 401 twice (a new login "
				      "did not help): port %d is probably not the server's admin port "
				      "(zimbraAdminPort, usually 7071), where alone the admin cookie "
				      "counts; every export and import of a run would fail with 401. "
				      "Set this side's port (or its servers entry) to zimbraAdminPort",
				      http_label(h), srv && srv->port > 0 ? srv->port : 7071);
		}
		break;
	}
	*status = st;
	secret_free(tok);
	buf_release(&sink.body);
	free(url);
	free(path);
	if (rc)
		*err = e;
	else
		free(e);
	return rc;
}

/* ------------------------------------------------------------------ import */

struct file_source {
	struct http *h;
	int fd;
	off_t pos;
	off_t size;
};

static size_t file_read_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct file_source *s = ud;
	size_t want = sz * n;
	if (s->pos >= s->size) {
		http_upload_done(s->h);
		return 0;
	}
	if ((off_t)want > s->size - s->pos)
		want = (size_t)(s->size - s->pos);
	for (;;) {
		ssize_t r = pread(s->fd, p, want, s->pos);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			char *m = xasprintf("cannot read spool file: %s",
					    r < 0 ? strerror(errno) : "file shrank");
			http_set_local_error(s->h, ZMB_EIO, m);
			free(m);
			return CURL_READFUNC_ABORT;
		}
		s->pos += r;
		if (s->pos >= s->size)
			http_upload_done(s->h);   /* curl does not ask again with a known size */
		return (size_t)r;
	}
}

static int file_seek_cb(void *ud, curl_off_t offset, int origin)
{
	struct file_source *s = ud;
	if (origin != SEEK_SET || offset < 0 || offset > s->size)
		return CURL_SEEKFUNC_CANTSEEK;
	s->pos = (off_t)offset;
	return CURL_SEEKFUNC_OK;
}


enum zmb_rc rest_import_file(struct http *h, struct token_cache *tc, const char *target,
			     const char *resolve, int fd, long long *bytes,
			     struct import_answer *ans, char **err)
{
	char *e = NULL;
	enum zmb_rc rc = ZMB_OK;
	char *q = import_query(h, resolve);
	char *path = home_path(h, target, q);
	char *url = http_url(h, path);
	char *tok = NULL;
	struct file_source src = { h, fd, 0, 0 };
	struct answer an = { h, BUF_INIT, false };
	struct import_answer none;
	struct stat stt;

	if (!ans)
		ans = &none;
	*bytes = 0;
	memset(ans, 0, sizeof *ans);
	if (fstat(fd, &stt) < 0) {
		e = xasprintf("%s: import %s: cannot stat spool file: %s", http_label(h), target,
				 strerror(errno));
		rc = ZMB_EIO;
		goto out;
	}
	src.size = stt.st_size;
	for (int auth_retry = 0;;) {
		free(e);
		e = NULL;
		secret_free(tok);
		tok = NULL;
		src.pos = 0;
		answer_reset(&an);
		rc = token_get(tc, h, &tok, &e);
		if (rc)
			goto out;
		if ((rc = http_gate(h, &e)))
			goto out;
		CURL *c = http_begin(h, url, true);
		http_set_token_cookie(h, tok);
		http_add_header(h, "Content-Type: application/octet-stream");
		http_add_header(h, "Expect:");
		http_apply_headers(h);
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)src.size);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, file_read_cb);
		curl_easy_setopt(c, CURLOPT_READDATA, &src);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, file_seek_cb);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, &src);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, answer_write_cb);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &an);
		CURLcode cc = curl_easy_perform(c);
		http_set_token_cookie(h, NULL);
		*bytes = (long long)src.pos;
		long st = http_status(h);
		if (cc != CURLE_OK && st >= 400) {
			/* the server answered before taking the whole body: judge by status */
			cc = CURLE_OK;
		}
		rc = http_error(h, cc, "import", &e);
		if (http_gate_done(h, rc ? 0 : st))
			continue;       /* throttled: sent again once the server's pause is over */
		if (rc)
			break;
		if (st == 200) {
			rc = answer_judge(h, target, &an, ans, &e);
			break;
		}
		rc = status_rc(h, "import", target, st, &an.body, &e);
		if (rc == ZMB_EAUTHEXP && auth_retry++ == 0) {
			token_invalidate(tc, tok);
			continue;
		}
		break;
	}
out:
	secret_free(tok);
	buf_release(&an.body);
	if (rc || ans == &none)
		import_answer_release(ans);
	free(url);
	free(path);
	free(q);
	if (rc)
		*err = e;
	else
		free(e);
	return rc;
}

/* ------------------------------------------------------------------ stream */

struct ring {
	char *b;
	size_t cap;
	size_t head;   /* read position */
	size_t len;    /* bytes stored */
};

static size_t ring_free(const struct ring *r)
{
	return r->cap - r->len;
}

static void ring_put(struct ring *r, const char *p, size_t n)
{
	size_t tail = (r->head + r->len) % r->cap;
	size_t first = r->cap - tail < n ? r->cap - tail : n;
	memcpy(r->b + tail, p, first);
	memcpy(r->b, p + first, n - first);
	r->len += n;
}

static size_t ring_get(struct ring *r, char *p, size_t n)
{
	if (n > r->len)
		n = r->len;
	size_t first = r->cap - r->head < n ? r->cap - r->head : n;
	memcpy(p, r->b + r->head, first);
	memcpy(p + first, r->b, n - first);
	r->head = (r->head + n) % r->cap;
	r->len -= n;
	if (r->len == 0)
		r->head = 0;
	return n;
}

struct pipe {
	struct http *src, *dst;
	struct ring ring;
	bool get_200;       /* the export answered 200 and sent data */
	bool get_paused;
	bool get_done;
	bool post_paused;
	long gst, pst;      /* each side's answer, 0 = none (for the throttle) */
	long long in, out;
	struct buf get_err;
	struct answer post;          /* the import's answer */
};

static size_t pipe_write_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct pipe *s = ud;
	size_t len = sz * n;
	if (http_status(s->src) != 200) {
		errbody_add(&s->get_err, p, len);
		return len;
	}
	s->get_200 = true;
	if (len > s->ring.cap && s->ring.len == 0) {
		/* a single chunk larger than the ring (never with curl's 16 KiB chunks) */
		s->ring.b = xrealloc(s->ring.b, len);
		s->ring.cap = len;
		s->ring.head = 0;
	}
	if (ring_free(&s->ring) < len) {
		s->get_paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	ring_put(&s->ring, p, len);
	s->in += (long long)len;
	return len;
}

static size_t pipe_read_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct pipe *s = ud;
	if (s->ring.len == 0) {
		if (s->get_done) {
			http_upload_done(s->dst);
			return 0;
		}
		s->post_paused = true;
		http_upload_starved(s->dst, true);
		return CURL_READFUNC_PAUSE;
	}
	size_t got = ring_get(&s->ring, p, sz * n);
	s->out += (long long)got;
	return got;
}

/* The easy handles of one attempt and where they are. */
struct attempt {
	CURLM *m;
	CURL *g, *p;                 /* export GET on src, import POST on dst */
	bool g_in, p_in;             /* attached to m */
	bool p_started, p_done;
	CURLcode g_cc, p_cc;
};

/* Set up both requests on their handles; nothing is attached to the multi yet. */
static void stream_setup(struct pipe *s, struct attempt *t, const char *get_url, const char *post_url,
			 const char *stok, const char *dtok)
{
	t->m = http_multi(s->src);
	t->g = http_begin(s->src, get_url, false);
	http_set_token_cookie(s->src, stok);
	curl_easy_setopt(t->g, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(t->g, CURLOPT_WRITEFUNCTION, pipe_write_cb);
	curl_easy_setopt(t->g, CURLOPT_WRITEDATA, s);

	t->p = http_begin(s->dst, post_url, true);
	http_set_token_cookie(s->dst, dtok);
	http_add_header(s->dst, "Content-Type: application/octet-stream");
	http_add_header(s->dst, "Transfer-Encoding: chunked");
	http_add_header(s->dst, "Expect:");
	http_apply_headers(s->dst);
	curl_easy_setopt(t->p, CURLOPT_POST, 1L);
	curl_easy_setopt(t->p, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
	curl_easy_setopt(t->p, CURLOPT_READFUNCTION, pipe_read_cb);
	curl_easy_setopt(t->p, CURLOPT_READDATA, s);
	curl_easy_setopt(t->p, CURLOPT_WRITEFUNCTION, answer_write_cb);
	curl_easy_setopt(t->p, CURLOPT_WRITEDATA, &s->post);
}

/*
 * The export has finished (detached from the multi): judge it.  *stop ends
 * the attempt with the result (an error, or 204: nothing to export);
 * otherwise the import goes on with what is in the ring.
 */
static enum zmb_rc stream_export_done(struct pipe *s, CURLcode cc, const char *account, bool *empty,
				      bool *auth_src, bool *stop, char **err)
{
	long gst = http_status(s->src);
	enum zmb_rc rc = http_error(s->src, cc, "stream export", err);
	s->gst = rc ? 0 : gst;
	if (!rc && gst == 204) {
		*empty = true;
		*stop = true;
		return ZMB_OK;
	}
	if (!rc && gst != 200) {
		rc = status_rc(s->src, "export", account, gst, &s->get_err, err);
		*auth_src = rc == ZMB_EAUTHEXP;
	}
	if (!rc && !s->get_200) {
		/*
		 * 200 without a byte: only 204 means "nothing to export"
		 * (a full export always carries the folder entries), so
		 * this is a cut-off answer (connection closed after the
		 * headers), retried, never an account done with nothing.
		 */
		rc = ZMB_ETEMP;
		*err = xasprintf("%s: export %s: http 200 with an empty body (the "
				 "connection closed before any data)",
				 http_label(s->src), account);
	}
	*stop = rc != ZMB_OK;   /* removing an unfinished POST aborts it */
	return rc;
}

/* The import has finished (detached): its answer is the attempt's result. */
static enum zmb_rc stream_import_done(struct pipe *s, CURLcode cc, const char *target, bool *auth_dst,
				      struct import_answer *ans, char **err)
{
	long pst = http_status(s->dst);
	if (cc != CURLE_OK && pst >= 400)
		cc = CURLE_OK;
	enum zmb_rc rc = http_error(s->dst, cc, "stream import", err);
	s->pst = rc ? 0 : pst;
	if (!rc && pst != 200) {
		rc = status_rc(s->dst, "import", target, pst, &s->post.body, err);
		*auth_dst = rc == ZMB_EAUTHEXP;
	}
	if (!rc && !s->get_done) {
		*err = xasprintf("%s: import %s: answered before the export ended",
				 http_label(s->dst), target);
		rc = ZMB_EPROTO;
	}
	if (!rc)
		rc = answer_judge(s->dst, target, &s->post, ans, err);
	return rc;
}

/* Start the import at the first byte of a 200 export; let a paused side go on when it can. */
static void stream_flow(struct pipe *s, struct attempt *t)
{
	if (!t->p_started && s->get_200 && s->ring.len > 0) {
		http_watch_restart(s->dst);   /* the wait for the first byte was no stall */
		curl_multi_add_handle(t->m, t->p);
		t->p_started = t->p_in = true;
	}
	if (s->post_paused && (s->ring.len > 0 || s->get_done)) {
		s->post_paused = false;
		http_upload_starved(s->dst, false);
		curl_easy_pause(t->p, CURLPAUSE_CONT);
	}
	if (s->get_paused && ring_free(&s->ring) >= s->ring.cap / 2) {
		s->get_paused = false;
		curl_easy_pause(t->g, CURLPAUSE_CONT);
	}
}

/* Note which of the attempt's transfers have finished, and how. */
static void stream_collect(struct pipe *s, struct attempt *t)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(t->m, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		if (msg->easy_handle == t->g) {
			s->get_done = true;
			t->g_cc = msg->data.result;
		} else if (msg->easy_handle == t->p) {
			t->p_done = true;
			t->p_cc = msg->data.result;
		}
	}
}

/*
 * One attempt of the stream.  *auth_src / *auth_dst tell which side (if any)
 * got a 401, for the caller's one retry.
 */
static enum zmb_rc stream_once(struct pipe *s, const char *get_url, const char *post_url,
			       const char *stok, const char *dtok, const char *account,
			       const char *target, bool *empty, bool *auth_src, bool *auth_dst,
			       struct import_answer *ans, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	CURLMcode mc = CURLM_OK;
	struct attempt t;
	memset(&t, 0, sizeof t);
	stream_setup(s, &t, get_url, post_url, stok, dtok);
	curl_multi_add_handle(t.m, t.g);
	t.g_in = true;

	for (;;) {
		int running = 0;
		mc = curl_multi_perform(t.m, &running);
		if (mc != CURLM_OK)
			break;
		stream_collect(s, &t);
		if (s->get_done && t.g_in) {
			bool stop = false;
			curl_multi_remove_handle(t.m, t.g);
			t.g_in = false;
			rc = stream_export_done(s, t.g_cc, account, empty, auth_src, &stop, err);
			if (stop)
				goto out;
		}
		if (t.p_done && t.p_in) {
			curl_multi_remove_handle(t.m, t.p);
			t.p_in = false;
			rc = stream_import_done(s, t.p_cc, target, auth_dst, ans, err);
			goto out;
		}
		stream_flow(s, &t);
		if (!t.g_in && !t.p_in)
			goto out;
		mc = curl_multi_poll(t.m, NULL, 0, 100, NULL);
		if (mc != CURLM_OK)
			break;
	}
	/* only a curl multi failure leaves the loop here */
	*err = xasprintf("%s: stream %s: curl multi: %s", http_label(s->src), account,
			 curl_multi_strerror(mc));
	rc = ZMB_EINTERNAL;
out:
	if (t.g_in)
		curl_multi_remove_handle(t.m, t.g);
	if (t.p_in)
		curl_multi_remove_handle(t.m, t.p);
	http_set_token_cookie(s->src, NULL);
	http_set_token_cookie(s->dst, NULL);
	return rc;
}

enum zmb_rc rest_stream(struct http *src, struct token_cache *stc, struct http *dst,
			struct token_cache *dtc, const char *account, const char *target,
			const struct rest_export_opts *o, const char *resolve, long long *bytes,
			bool *empty, struct import_answer *ans, char **err)
{
	char *e = NULL;
	enum zmb_rc rc = ZMB_OK;
	char *eq = export_query(src, o);
	char *gpath = home_path(src, account, eq);
	char *gurl = http_url(src, gpath);
	char *iq = import_query(dst, resolve);
	char *ppath = home_path(dst, target, iq);
	char *purl = http_url(dst, ppath);
	char *stok = NULL, *dtok = NULL;
	struct pipe s;
	struct import_answer none;

	if (!ans)
		ans = &none;
	memset(&s, 0, sizeof(s));
	s.src = src;
	s.dst = dst;
	s.post.h = dst;
	memset(ans, 0, sizeof *ans);
	s.ring.cap = http_buffer_size(src);
	s.ring.b = xmalloc(s.ring.cap);
	*bytes = 0;
	*empty = false;

	for (int auth_retry = 0;;) {
		bool auth_src = false, auth_dst = false;
		free(e);
		e = NULL;
		secret_free(stok);
		secret_free(dtok);
		stok = dtok = NULL;
		rc = token_get(stc, src, &stok, &e);
		if (!rc)
			rc = token_get(dtc, dst, &dtok, &e);
		if (rc)
			goto out;
		/* both servers' gates, always source first: no two threads wait for each other */
		if ((rc = http_gate(src, &e)))
			goto out;
		if ((rc = http_gate(dst, &e))) {
			http_gate_done(src, 0);
			goto out;
		}
		s.ring.head = s.ring.len = 0;
		s.get_200 = s.get_paused = s.get_done = s.post_paused = false;
		s.gst = s.pst = 0;
		s.in = s.out = 0;
		buf_reset(&s.get_err);
		answer_reset(&s.post);
		import_answer_release(ans);
		rc = stream_once(&s, gurl, purl, stok, dtok, account, target, empty, &auth_src,
				 &auth_dst, ans, &e);
		*bytes = s.out;
		bool busy_src = http_gate_done(src, s.gst);
		bool busy_dst = http_gate_done(dst, s.pst);
		if (busy_src || busy_dst) {
			*empty = false;
			continue;       /* throttled: both sent again once the pause is over */
		}
		if (rc == ZMB_EAUTHEXP && auth_retry++ == 0 && (auth_src || auth_dst)) {
			if (auth_src)
				token_invalidate(stc, stok);
			if (auth_dst)
				token_invalidate(dtc, dtok);
			continue;
		}
		break;
	}
out:
	secret_free(stok);
	secret_free(dtok);
	buf_release(&s.get_err);
	buf_release(&s.post.body);
	if (rc || ans == &none)
		import_answer_release(ans);
	free(s.ring.b);
	free(gurl);
	free(gpath);
	free(eq);
	free(purl);
	free(ppath);
	free(iq);
	if (rc)
		*err = e;
	else
		free(e);
	return rc;
}
