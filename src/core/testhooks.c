/*
 * testhooks.c - see testhooks.h.  Two builds of one file: without
 * ZMBATCH_TESTING (bin/zmbatch) every hook is inert and reads no environment;
 * with it (the test build) the hooks obey ZMBATCH_CRASH_AT, ZMBATCH_STEP_LOG,
 * ZMBATCH_FSYNC_LOG and ZMBATCH_TEST_FREE_BYTES.
 */
#include "testhooks.h"

#ifndef ZMBATCH_TESTING

void crashpoint(const char *what)
{
	(void)what;
}

void testhook_fsynced(const char *path)
{
	(void)path;
}

bool testhook_free_bytes(long long *freeb)
{
	(void)freeb;
	return false;
}

bool testhook_serial_steps(void)
{
	return false;
}

void testhooks_announce(void)
{
}

#else /* ZMBATCH_TESTING */

#include "log.h"
#include "zmb.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_long crash_steps;

/* one "k what" line appended to the file named by the environment variable */
static void append_line(const char *path, long k, const char *what)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	char line[PATH_MAX + 32];
	int n = snprintf(line, sizeof line, "%ld %s\n", k, what ? what : "");
	if (n > 0) {
		ssize_t w = write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
		(void)w;
	}
	close(fd);
}

void crashpoint(const char *what)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	const char *at = getenv("ZMBATCH_CRASH_AT");
	const char *logp = getenv("ZMBATCH_STEP_LOG");
	if (!at && !logp)
		return;
	pthread_mutex_lock(&mu);
	long k = atomic_fetch_add(&crash_steps, 1) + 1;
	if (logp)
		append_line(logp, k, what);
	if (at && atol(at) == k)
		_exit(99);
	pthread_mutex_unlock(&mu);
}

void testhook_fsynced(const char *path)
{
	const char *logp = getenv("ZMBATCH_FSYNC_LOG");
	if (logp)
		append_line(logp, atomic_load(&crash_steps), path);
}

bool testhook_free_bytes(long long *freeb)
{
	const char *fake = getenv("ZMBATCH_TEST_FREE_BYTES");
	return fake && parse_ll(fake, freeb) == 0;
}

bool testhook_serial_steps(void)
{
	return getenv("ZMBATCH_CRASH_AT") || getenv("ZMBATCH_STEP_LOG");
}

void testhooks_announce(void)
{
	static const char *const vars[] = { "ZMBATCH_CRASH_AT", "ZMBATCH_STEP_LOG",
					    "ZMBATCH_TEST_FREE_BYTES", "ZMBATCH_FSYNC_LOG", NULL };
	for (int i = 0; vars[i]; i++)
		if (getenv(vars[i]))
			log_warn(NULL, "TEST BUILD: test hook %s is in effect; this binary is "
				 "for the test suites, not for production", vars[i]);
}

#endif
