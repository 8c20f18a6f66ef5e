/*
 * util.c - result codes, allocation, buffers, parsing helpers.
 */
#define _GNU_SOURCE
#include "zmb.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const struct {
	const char *name;
	const char *text;
	const char *cls;
	enum zmb_retry retry;
} rc_tab[ZMB_RC_MAX] = {
	[ZMB_OK] = { "OK", "success", "none", ZMB_RETRY_NONE },
	[ZMB_ETEMP] = { "ETEMP", "temporary failure", "temporary", ZMB_RETRY_LATER },
	[ZMB_EBUSY] = { "EBUSY", "server busy (throttled)", "throttled", ZMB_RETRY_LATER },
	[ZMB_EAUTH] = { "EAUTH", "authentication failed", "auth", ZMB_RETRY_NEVER },
	[ZMB_EAUTHEXP] = { "EAUTHEXP", "auth token expired", "auth-expired", ZMB_RETRY_NOW },
	[ZMB_ENOACCOUNT] = { "ENOACCOUNT", "no such account", "permanent", ZMB_RETRY_NEVER },
	[ZMB_ETLS] = { "ETLS", "TLS verification failed", "tls", ZMB_RETRY_NEVER },
	[ZMB_ECONNECT] = { "ECONNECT", "cannot connect", "connect", ZMB_RETRY_LATER },
	[ZMB_EPROTO] = { "EPROTO", "protocol error", "permanent", ZMB_RETRY_NEVER },
	[ZMB_EIO] = { "EIO", "local I/O error", "io", ZMB_RETRY_LATER },
	[ZMB_ENOSPACE] = { "ENOSPACE", "not enough disk space", "disk-space", ZMB_RETRY_LATER },
	[ZMB_ECONFIG] = { "ECONFIG", "configuration error", "config", ZMB_RETRY_NEVER },
	[ZMB_ESTATE] = { "ESTATE", "state database error", "state", ZMB_RETRY_LATER },
	[ZMB_ECANCELED] = { "ECANCELED", "canceled", "canceled", ZMB_RETRY_LATER },
	[ZMB_ENOTFOUND] = { "ENOTFOUND", "not found", "permanent", ZMB_RETRY_NEVER },
	[ZMB_ECONFLICT] = { "ECONFLICT", "conflicting state", "permanent", ZMB_RETRY_NEVER },
	[ZMB_ETIMEOUT] = { "ETIMEOUT", "timed out", "temporary", ZMB_RETRY_LATER },
	[ZMB_EINTERNAL] = { "EINTERNAL", "internal error", "internal", ZMB_RETRY_NEVER },
};

const char *zmb_rc_name(enum zmb_rc rc)
{
	return (unsigned)rc < ZMB_RC_MAX ? rc_tab[rc].name : "E?";
}

const char *zmb_rc_str(enum zmb_rc rc)
{
	return (unsigned)rc < ZMB_RC_MAX ? rc_tab[rc].text : "unknown error";
}

const char *zmb_rc_class_name(enum zmb_rc rc)
{
	return (unsigned)rc < ZMB_RC_MAX ? rc_tab[rc].cls : "internal";
}

enum zmb_retry zmb_rc_class(enum zmb_rc rc)
{
	return (unsigned)rc < ZMB_RC_MAX ? rc_tab[rc].retry : ZMB_RETRY_NEVER;
}

static void oom(void)
{
	static const char msg[] = "zmbatch: out of memory\n";
	ssize_t r = write(2, msg, sizeof msg - 1);
	(void)r;
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *xstrdup(const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		oom();
	return d;
}

char *xstrndup(const char *s, size_t n)
{
	if (!s)
		return NULL;
	char *d = strndup(s, n);
	if (!d)
		oom();
	return d;
}

char *xvasprintf(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	return s;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

void secret_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* ---- buf ---- */

static void buf_grow(struct buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->alloc)
		return;
	size_t na = b->alloc ? b->alloc : 64;
	while (na < b->len + extra + 1)
		na *= 2;
	b->s = xrealloc(b->s, na);
	b->alloc = na;
}

void buf_add(struct buf *b, const void *p, size_t n)
{
	buf_grow(b, n);
	if (n)
		memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	buf_adds(b, s);
	free(s);
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->s)
		b->s[0] = '\0';
}

void buf_release(struct buf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->alloc = 0;
}

char *buf_detach(struct buf *b)
{
	char *s = b->s ? b->s : xstrdup("");
	b->s = NULL;
	b->len = b->alloc = 0;
	return s;
}

/* ---- strlist ---- */

void strlist_add_nodup(struct strlist *l, char *s)
{
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? 2 * l->alloc : 8;
		l->v = xrealloc(l->v, l->alloc * sizeof *l->v);
	}
	l->v[l->n++] = s;
}

void strlist_add(struct strlist *l, const char *s)
{
	strlist_add_nodup(l, xstrdup(s));
}

bool strlist_has(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return true;
	return false;
}

bool strlist_has_ci(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i], s) == 0)
			return true;
	return false;
}

void strlist_release(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->alloc = 0;
}

/* ---- parsing ---- */

char *strtrim(char *s)
{
	if (!s)
		return s;
	char *p = s;
	while (*p && isspace((unsigned char)*p))
		p++;
	size_t n = strlen(p);
	while (n && isspace((unsigned char)p[n - 1]))
		n--;
	memmove(s, p, n);
	s[n] = '\0';
	return s;
}

bool streq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

bool streq_ci(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcasecmp(a, b) == 0;
}

char *xstrlower(const char *s)
{
	char *d = xstrdup(s);
	for (char *p = d; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

int parse_ll(const char *s, long long *v)
{
	if (!s)
		return -1;
	while (isspace((unsigned char)*s))
		s++;
	if (!*s)
		return -1;
	errno = 0;
	char *end;
	long long x = strtoll(s, &end, 10);
	if (errno || end == s)
		return -1;
	while (isspace((unsigned char)*end))
		end++;
	if (*end)
		return -1;
	*v = x;
	return 0;
}

int parse_duration(const char *s, long long *secs)
{
	if (!s)
		return -1;
	while (isspace((unsigned char)*s))
		s++;
	if (!*s)
		return -1;
	long long total = 0;
	int parts = 0;
	while (*s && !isspace((unsigned char)*s)) {
		if (!isdigit((unsigned char)*s))
			return -1;
		errno = 0;
		char *end;
		long long n = strtoll(s, &end, 10);
		if (errno || n < 0)
			return -1;
		long long mul = 1;
		switch (*end) {
		case 's': mul = 1; end++; break;
		case 'm': mul = 60; end++; break;
		case 'h': mul = 3600; end++; break;
		case 'd': mul = 86400; end++; break;
		case '\0': case ' ': case '\t': case '\n':
			if (parts)  /* "1h30" is ambiguous: refuse */
				return -1;
			break;
		default:
			return -1;
		}
		if (n > LLONG_MAX / mul || total > LLONG_MAX - n * mul)
			return -1;
		total += n * mul;
		parts++;
		s = end;
	}
	while (isspace((unsigned char)*s))
		s++;
	if (*s)
		return -1;
	*secs = total;
	return 0;
}

int parse_hhmm(const char *s, int *hh, int *mm)
{
	if (!s)
		return -1;
	int h, m;
	char tail;
	if (strlen(s) != 5 || s[2] != ':' || !isdigit((unsigned char)s[0]) ||
	    !isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[3]) ||
	    !isdigit((unsigned char)s[4]))
		return -1;
	if (sscanf(s, "%2d:%2d%c", &h, &m, &tail) != 2)
		return -1;
	if (h > 23 || m > 59)
		return -1;
	*hh = h;
	*mm = m;
	return 0;
}

int parse_bytes(const char *s, long long *bytes)
{
	if (!s)
		return -1;
	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	long long n = strtoll(s, &end, 10);
	if (errno || n < 0)
		return -1;
	long long mul = 1;
	switch (toupper((unsigned char)*end)) {
	case 'K': mul = 1024LL; end++; break;
	case 'M': mul = 1024LL * 1024; end++; break;
	case 'G': mul = 1024LL * 1024 * 1024; end++; break;
	case 'T': mul = 1024LL * 1024 * 1024 * 1024; end++; break;
	default: break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	while (isspace((unsigned char)*end))
		end++;
	if (*end || n > LLONG_MAX / mul)
		return -1;
	*bytes = n * mul;
	return 0;
}

enum zmb_rc secret_read_file(const char *path, char **secret, char **err)
{
	enum zmb_rc rc = ZMB_ECONFIG;
	int fd = -1;
	struct buf b = BUF_INIT;
	struct stat st;

	*secret = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		*err = xasprintf("cannot open password file '%s': %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*err = xasprintf("password file '%s' is not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		*err = xasprintf("password file '%s' is readable by group or others (mode %04o); "
				 "run: chmod 600 '%s'", path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	char chunk[512];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof chunk)) > 0) {
		buf_add(&b, chunk, (size_t)n);
		if (b.len > 65536) {
			*err = xasprintf("password file '%s' is too large", path);
			goto out;
		}
	}
	if (n < 0) {
		*err = xasprintf("cannot read password file '%s': %s", path, strerror(errno));
		goto out;
	}
	if (b.s) {
		char *nl = strpbrk(b.s, "\r\n");
		if (nl)
			*nl = '\0';
	}
	if (!b.s || !*b.s) {
		*err = xasprintf("password file '%s' is empty", path);
		goto out;
	}
	*secret = xstrdup(b.s);
	rc = ZMB_OK;
out:
	if (b.s)
		explicit_bzero(b.s, b.alloc);
	buf_release(&b);
	if (fd >= 0)
		close(fd);
	return rc;
}

char *path_safe_name(const char *account)
{
	struct buf b = BUF_INIT;
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)(account ? account : "");

	for (size_t i = 0; p[i]; i++) {
		unsigned char c = p[i];
		bool ok = isalnum(c) || c == '@' || c == '_' || c == '-' || c == '+' ||
			  (c == '.' && i > 0);
		if (ok) {
			buf_add(&b, &c, 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			buf_add(&b, e, 3);
		}
	}
	if (b.len == 0)
		buf_adds(&b, "%00");
	if (b.len > 180) {
		/* FNV-1a over the whole name keeps long names distinct */
		uint64_t h = 1469598103934665603ULL;
		for (size_t i = 0; p[i]; i++) {
			h ^= p[i];
			h *= 1099511628211ULL;
		}
		b.len = 160;
		b.s[b.len] = '\0';
		buf_addf(&b, "~%016llx", (unsigned long long)h);
	}
	return buf_detach(&b);
}

int mkdir_p(const char *path, unsigned mode)
{
	char *tmp = xstrdup(path);
	int rc = 0;
	size_t n = strlen(tmp);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = '\0';
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST) {
			rc = -1;
			goto out;
		}
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		rc = -1;
	else {
		struct stat st;
		if (stat(tmp, &st) < 0 || !S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			rc = -1;
		}
	}
out:
	free(tmp);
	return rc;
}

double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void iso8601_utc(double t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

uint64_t rand64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
		/* fall back to time mixing; only used for jitter and names */
		v = (uint64_t)(mono_now() * 1e9) ^ ((uint64_t)getpid() << 32);
	}
	return v;
}
