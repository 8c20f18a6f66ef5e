/*
 * lock.c - run lock with flock(2).
 */
#define _GNU_SOURCE
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

struct run_lock {
	int fd;
	char *path;
};

static char *read_holder(int fd)
{
	char buf[512];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return xstrdup("unknown holder");
	buf[n] = '\0';
	char *nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	return xstrdup(buf);
}

enum zmb_rc lock_acquire(const char *db_path, const char *command,
			 struct run_lock **out, char **err)
{
	enum zmb_rc rc = ZMB_EIO;
	char *path = xasprintf("%s.lock", db_path);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	*out = NULL;
	if (fd < 0) {
		*err = xasprintf("cannot open lock file '%s': %s", path, strerror(errno));
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			char *holder = read_holder(fd);
			*err = xasprintf("another run holds the lock on '%s' (%s)", db_path, holder);
			free(holder);
			rc = ZMB_EBUSY;
		} else {
			*err = xasprintf("cannot lock '%s': %s", path, strerror(errno));
		}
		goto out;
	}
	char host[256] = "?";
	char ts[32];
	gethostname(host, sizeof host - 1);
	iso8601_utc(wall_now(), ts);
	char *line = xasprintf("pid %ld on host %s, started %s, command '%s'\n",
			       (long)getpid(), host, ts, command ? command : "?");
	if (ftruncate(fd, 0) < 0 || pwrite(fd, line, strlen(line), 0) < 0) {
		/* the lock itself is what matters; the holder text is a courtesy */
	}
	free(line);
	struct run_lock *l = xcalloc(1, sizeof *l);
	l->fd = fd;
	l->path = path;
	fd = -1;
	path = NULL;
	*out = l;
	rc = ZMB_OK;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

void lock_release(struct run_lock *l)
{
	if (!l)
		return;
	/* leave the file in place: unlinking would race with a waiting run */
	if (ftruncate(l->fd, 0) < 0) {
		/* ignore */
	}
	close(l->fd);
	free(l->path);
	free(l);
}
