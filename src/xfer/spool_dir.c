/*
 * spool_dir.c - the spool directory (working_dir): file names, durability
 * of the directory, disposal of finished archives, free space, and the
 * clean-up of what a dead run left (xfer_int.h, xfer.h).
 */
#include "log.h"
#include "query_migrate.h"
#include "testhooks.h"
#include "xfer_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

char *xfer_spool_path(const struct job *job, const char *account, const char *suffix)
{
	char *safe = path_safe_name(account);
	char *p = xasprintf("%s/%s.tgz%s", job->mig.working_dir, safe, suffix);
	free(safe);
	return p;
}

int xfer_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	if (r == 0)
		testhook_fsynced(dir);
	return r;
}

/* Move (rename, or copy-less fallback: unlink) a finished spool file. */
void xfer_spool_dispose(const struct job *job, const char *path, bool success, const char *ctx)
{
	if (!path || !*path)
		return;
	const char *dir = success ? (job->mig.keep_success_files ? job->mig.success_dir : NULL)
				  : job->mig.failed_dir;
	if (dir && *dir) {
		const char *base = strrchr(path, '/');
		base = base ? base + 1 : path;
		char *dst = xasprintf("%s/%s", dir, base);
		/* a kept archive is a record: make it durable (imported ones were not fsync()ed) */
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (fsync(fd) == 0)
				testhook_fsynced(path);
			close(fd);
		}
		if (mkdir_p(dir, 0700) == 0 && rename(path, dst) == 0) {
			xfer_fsync_dir(dir);
			crashpoint("spool moved");
			free(dst);
			return;
		}
		log_warn(ctx, "cannot move spool file '%s' to '%s': %s", path, dir, strerror(errno));
		free(dst);
		if (!success)
			return;  /* keep a failed archive where it is rather than lose it */
	}
	if (unlink(path) == 0)
		crashpoint("spool removed");
}

long long xfer_free_bytes(const char *dir)
{
	struct statvfs sv;
	if (statvfs(dir, &sv) < 0)
		return -1;
	return (long long)sv.f_bavail * (long long)sv.f_frsize;
}

void xfer_spool_housekeeping(struct xfer *x, struct state *st)
{
	const struct job *job = x->job;
	DIR *d = opendir(job->mig.working_dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char *path = xasprintf("%s/%s", job->mig.working_dir, de->d_name);
		if (len > 9 && !strcmp(de->d_name + len - 9, ".tgz.part")) {
			log_info(NULL, "removing partial spool file '%s' left by an earlier run", path);
			unlink(path);
		} else if (len > 4 && !strcmp(de->d_name + len - 4, ".tgz")) {
			/* a complete archive: keep it only if its account waits for import */
			if (!state_mig_spool_waits(st, path)) {
				log_info(NULL, "spool file '%s' belongs to no pending import: disposing of it", path);
				xfer_spool_dispose(job, path, true, NULL);
			}
		}
		free(path);
	}
	closedir(d);
}
