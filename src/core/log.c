/*
 * log.c - thread-safe line logger with secret redaction.
 */
#define _GNU_SOURCE
#include "log.h"
#include "zmb.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The logger is the one process-wide object; every field is under `mu`. */
static struct {
	pthread_mutex_t mu;
	int level;
	bool quiet;
	char *path;
	int fd;
	struct strlist secrets;
	void (*tty_clear)(void);
} L = { PTHREAD_MUTEX_INITIALIZER, ZLOG_INFO, false, NULL, -1, STRLIST_INIT, NULL };

static const char *lvl_name[] = { "ERROR", "WARN ", "INFO ", "DEBUG" };

int zlog_level_parse(const char *s)
{
	if (!s)
		return -1;
	if (!strcasecmp(s, "error"))
		return ZLOG_ERROR;
	if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
		return ZLOG_WARN;
	if (!strcasecmp(s, "info"))
		return ZLOG_INFO;
	if (!strcasecmp(s, "debug"))
		return ZLOG_DEBUG;
	return -1;
}

static int open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

int zlog_open(const char *dir, int level, bool quiet, char **err)
{
	int rc = 0;
	pthread_mutex_lock(&L.mu);
	L.level = level;
	L.quiet = quiet;
	if (dir) {
		if (mkdir_p(dir, 0700) < 0) {
			*err = xasprintf("cannot create log directory '%s': %s", dir, strerror(errno));
			rc = -1;
			goto out;
		}
		free(L.path);
		L.path = xasprintf("%s/zmbatch.log", dir);
		if (L.fd >= 0)
			close(L.fd);
		L.fd = open_file(L.path);
		if (L.fd < 0) {
			*err = xasprintf("cannot open log file '%s': %s", L.path, strerror(errno));
			rc = -1;
		}
	}
out:
	pthread_mutex_unlock(&L.mu);
	return rc;
}

void zlog_reopen(void)
{
	pthread_mutex_lock(&L.mu);
	if (L.path) {
		int fd = open_file(L.path);
		if (fd >= 0) {
			if (L.fd >= 0)
				close(L.fd);
			L.fd = fd;
		}
	}
	pthread_mutex_unlock(&L.mu);
}

void zlog_close(void)
{
	pthread_mutex_lock(&L.mu);
	if (L.fd >= 0)
		close(L.fd);
	L.fd = -1;
	free(L.path);
	L.path = NULL;
	for (size_t i = 0; i < L.secrets.n; i++)
		explicit_bzero(L.secrets.v[i], strlen(L.secrets.v[i]));
	strlist_release(&L.secrets);
	L.tty_clear = NULL;
	pthread_mutex_unlock(&L.mu);
}

void zlog_add_secret(const char *s)
{
	if (!s || strlen(s) < 3)  /* a 1-2 char "secret" would redact everything */
		return;
	pthread_mutex_lock(&L.mu);
	if (!strlist_has(&L.secrets, s))
		strlist_add(&L.secrets, s);
	pthread_mutex_unlock(&L.mu);
}

void zlog_set_tty_hook(void (*clear)(void))
{
	pthread_mutex_lock(&L.mu);
	L.tty_clear = clear;
	pthread_mutex_unlock(&L.mu);
}

/* Caller holds L.mu. */
static char *redact_locked(const char *s)
{
	char *out = xstrdup(s);
	for (size_t i = 0; i < L.secrets.n; i++) {
		const char *sec = L.secrets.v[i];
		size_t sl = strlen(sec);
		if (!strstr(out, sec))
			continue;
		/* one forward scan: the replacement is never searched again, so a
		 * secret that is itself "***" (or contains it) cannot loop */
		struct buf b = BUF_INIT;
		const char *p = out, *q;
		while ((q = strstr(p, sec)) != NULL) {
			buf_add(&b, p, (size_t)(q - p));
			buf_adds(&b, "***");
			p = q + sl;
		}
		buf_adds(&b, p);
		free(out);
		out = buf_detach(&b);
	}
	return out;
}

char *zlog_redact(const char *s)
{
	pthread_mutex_lock(&L.mu);
	char *r = redact_locked(s ? s : "");
	pthread_mutex_unlock(&L.mu);
	return r;
}

static void write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		s += w;
		n -= (size_t)w;
	}
}

void zlog(int level, const char *ctx, const char *fmt, ...)
{
	va_list ap;
	char ts[32];

	if (level > L.level)  /* racy read of an int set before threads: fine */
		return;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	iso8601_utc(wall_now(), ts);

	pthread_mutex_lock(&L.mu);
	char *clean = redact_locked(msg);
	char *line;
	if (ctx && *ctx)
		line = xasprintf("%s %s [%s] %s\n", ts, lvl_name[level], ctx, clean);
	else
		line = xasprintf("%s %s %s\n", ts, lvl_name[level], clean);
	if (!L.quiet || level <= ZLOG_WARN) {
		if (L.tty_clear)
			L.tty_clear();
		write_all(2, line, strlen(line));
	}
	if (L.fd >= 0)
		write_all(L.fd, line, strlen(line));
	pthread_mutex_unlock(&L.mu);
	free(line);
	free(clean);
	free(msg);
}
