/*
 * canned.c - a scripted one-request-per-connection HTTP server (canned.h).
 */
#define _GNU_SOURCE
#include "canned.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQ 64
#define HEAD_CAP 65536

struct canned {
	int lfd;
	int port;
	pthread_t th;
	atomic_bool stop;
	struct canned_reply *script;
	size_t n;
	pthread_mutex_t mu;
	struct canned_request req[MAX_REQ];   /* under mu */
	size_t nreq;
};

static void nap(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Wait (in slices, so that canned_stop is prompt) for s seconds. */
static void wait_s(struct canned *c, double s)
{
	while (s > 0 && !atomic_load(&c->stop)) {
		double d = s < 0.05 ? s : 0.05;
		nap(d);
		s -= d;
	}
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Read what has arrived (polling every 50 ms); -1 on EOF, error or stop. */
static int read_some(struct canned *c, int fd, char *buf, size_t cap)
{
	for (;;) {
		if (atomic_load(&c->stop))
			return -1;
		struct pollfd p = { fd, POLLIN, 0 };
		int r = poll(&p, 1, 50);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0)
			continue;
		ssize_t n = recv(fd, buf, cap, 0);
		if (n < 0 && errno == EINTR)
			continue;
		return n > 0 ? (int)n : -1;
	}
}

static char *header_in(const char *head, const char *name)
{
	size_t nl = strlen(name);
	for (const char *l = strstr(head, "\r\n"); l; l = strstr(l, "\r\n")) {
		l += 2;
		if (!strncasecmp(l, name, nl) && l[nl] == ':') {
			const char *v = l + nl + 1;
			while (*v == ' ')
				v++;
			const char *e = strstr(v, "\r\n");
			return strndup(v, e ? (size_t)(e - v) : strlen(v));
		}
	}
	return NULL;
}

/* Read a request head and (unless head_only) its Content-Length body into r. */
static bool read_request(struct canned *c, int fd, bool head_only, struct canned_request *r)
{
	char *buf = malloc(HEAD_CAP + 1);
	size_t len = 0;
	char *end = NULL;
	while (!end) {
		if (len == HEAD_CAP)
			goto fail;
		int n = read_some(c, fd, buf + len, HEAD_CAP - len);
		if (n < 0)
			goto fail;
		len += (size_t)n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	size_t hl = (size_t)(end - buf) + 4;
	r->head = strndup(buf, hl - 2);
	char m[16] = "", t[4096] = "";
	if (sscanf(buf, "%15s %4095s", m, t) != 2)
		goto fail;
	r->method = strdup(m);
	r->target = strdup(t);
	r->body = calloc(1, CANNED_BODY_CAP + 1);
	char *cl = header_in(r->head, "Content-Length");
	long long want = cl ? atoll(cl) : 0;
	free(cl);
	size_t have = len - hl;
	memcpy(r->body, buf + hl, have < CANNED_BODY_CAP ? have : CANNED_BODY_CAP);
	r->body_len = have;
	while (!head_only && (long long)r->body_len < want) {
		int n = read_some(c, fd, buf, HEAD_CAP);
		if (n < 0)
			break;
		if (r->body_len < CANNED_BODY_CAP)
			memcpy(r->body + r->body_len, buf,
			       CANNED_BODY_CAP - r->body_len < (size_t)n ? CANNED_BODY_CAP - r->body_len
									 : (size_t)n);
		r->body_len += (size_t)n;
	}
	if (r->body_len < CANNED_BODY_CAP)
		r->body[r->body_len] = '\0';
	free(buf);
	return true;
fail:
	free(buf);
	return false;
}

static void request_clear(struct canned_request *r)
{
	free(r->method);
	free(r->target);
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static void serve_one(struct canned *c, int fd, const struct canned_reply *rp)
{
	static const struct canned_reply past_end = { .status = 599, .body = "no more canned replies" };
	if (!rp)
		rp = &past_end;
	if (!rp->no_read) {
		struct canned_request r = { 0 };
		if (!read_request(c, fd, rp->read_headers_only, &r)) {
			request_clear(&r);
			return;
		}
		pthread_mutex_lock(&c->mu);
		if (c->nreq < MAX_REQ)
			c->req[c->nreq++] = r;
		else
			request_clear(&r);
		pthread_mutex_unlock(&c->mu);
	}
	wait_s(c, rp->wait);
	if (rp->status > 0) {
		size_t bl = rp->body ? strlen(rp->body) : 0;
		char head[1024];
		int hn = snprintf(head, sizeof(head),
				  "HTTP/1.1 %d Canned\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
				  rp->status, bl + rp->short_by, rp->headers ? rp->headers : "");
		send_all(fd, head, (size_t)hn);
		if (bl)
			send_all(fd, rp->body, bl);
	}
	wait_s(c, rp->linger);
}

static void *serve(void *p)
{
	struct canned *c = p;
	size_t next = 0;
	while (!atomic_load(&c->stop)) {
		struct pollfd pf = { c->lfd, POLLIN, 0 };
		if (poll(&pf, 1, 50) <= 0)
			continue;
		int fd = accept(c->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		serve_one(c, fd, next < c->n ? &c->script[next] : NULL);
		next++;
		close(fd);
	}
	return NULL;
}

struct canned *canned_start(const struct canned_reply *script, size_t n)
{
	struct canned *c = calloc(1, sizeof(*c));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
	socklen_t al = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(c->lfd, 16) < 0 || getsockname(c->lfd, (struct sockaddr *)&a, &al) < 0) {
		perror("canned: listen");
		if (c->lfd >= 0)
			close(c->lfd);
		free(c);
		return NULL;
	}
	c->port = ntohs(a.sin_port);
	c->n = n;
	c->script = calloc(n ? n : 1, sizeof(*script));
	if (n)
		memcpy(c->script, script, n * sizeof(*script));
	pthread_mutex_init(&c->mu, NULL);
	atomic_init(&c->stop, false);
	if (pthread_create(&c->th, NULL, serve, c) != 0) {
		close(c->lfd);
		free(c->script);
		free(c);
		return NULL;
	}
	return c;
}

int canned_port(const struct canned *c)
{
	return c->port;
}

size_t canned_count(struct canned *c)
{
	pthread_mutex_lock(&c->mu);
	size_t n = c->nreq;
	pthread_mutex_unlock(&c->mu);
	return n;
}

const struct canned_request *canned_request(struct canned *c, size_t i)
{
	pthread_mutex_lock(&c->mu);
	const struct canned_request *r = i < c->nreq ? &c->req[i] : NULL;
	pthread_mutex_unlock(&c->mu);
	return r;
}

char *canned_header(struct canned *c, size_t i, const char *name)
{
	const struct canned_request *r = canned_request(c, i);
	return r ? header_in(r->head, name) : NULL;
}

void canned_stop(struct canned *c)
{
	if (!c)
		return;
	atomic_store(&c->stop, true);
	pthread_join(c->th, NULL);
	close(c->lfd);
	for (size_t i = 0; i < c->nreq; i++)
		request_clear(&c->req[i]);
	pthread_mutex_destroy(&c->mu);
	free(c->script);
	free(c);
}

static atomic_int canned_logins;

enum zmb_rc canned_login(struct http *h, char **token, long long *lifetime_ms, char **err)
{
	(void)h;
	(void)err;
	*token = xasprintf("tok-%d", atomic_fetch_add(&canned_logins, 1) + 1);
	*lifetime_ms = 3600000;
	return ZMB_OK;
}

void canned_login_reset(void)
{
	atomic_store(&canned_logins, 0);
}
