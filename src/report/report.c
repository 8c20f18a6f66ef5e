/*
 * report.c - the public entry points of the report side (report.h): the
 * format names, one rendering inside one read transaction (the model, then
 * the format's renderer), and the atomic --output file.
 */
#include "report_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int report_format_parse(const char *s)
{
	if (!s || !strcmp(s, "text"))
		return REPORT_TEXT;
	if (!strcmp(s, "csv"))
		return REPORT_CSV;
	if (!strcmp(s, "json"))
		return REPORT_JSON;
	if (!strcmp(s, "prom"))
		return REPORT_PROM;
	if (!strcmp(s, "html"))
		return REPORT_HTML;
	return -1;
}

enum zmb_rc report_render(sqlite3 *db, const char *job_name, enum report_format fmt,
			  double now, FILE *out, char **err)
{
	struct snapshot s;
	bool own;
	enum zmb_rc rc = qr_read_begin(db, &own, err);
	if (rc)
		return rc;
	rc = snapshot_read(db, job_name, now, &s, err);
	if (rc)
		goto out;
	switch (fmt) {
	case REPORT_TEXT: rc = report_text(db, &s, out, err); break;
	case REPORT_CSV: rc = report_csv(db, out, err); break;
	case REPORT_JSON: rc = report_json(db, &s, out, err); break;
	case REPORT_PROM: rc = report_prom(db, &s, out, err); break;
	case REPORT_HTML: rc = report_html(db, &s, out, err); break;
	default:
		*err = xasprintf("unknown report format %d", (int)fmt);
		rc = ZMB_EINTERNAL;
	}
out:
	snapshot_release(&s);
	qr_read_end(db, own);
	return rc;
}

enum zmb_rc report_render_file(sqlite3 *db, const char *job_name, enum report_format fmt,
			       double now, const char *path, char **err)
{
	enum zmb_rc rc = ZMB_EIO;
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	char *dcopy = xstrdup(path);
	FILE *f = NULL;
	int fd = -1, dfd = -1;
	mode_t mode = fmt == REPORT_PROM ? 0644 : 0600;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		*err = xasprintf("cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode) != 0) {        /* umask 077 would hide it from node_exporter */
		*err = xasprintf("cannot chmod %s: %s", tmp, strerror(errno));
		goto out;
	}
	f = fdopen(fd, "w");
	if (!f) {
		*err = xasprintf("cannot open %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	rc = report_render(db, job_name, fmt, now, f, err);
	if (rc)
		goto out;
	rc = ZMB_EIO;
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		*err = xasprintf("cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	int cr = fclose(f);
	f = NULL;
	if (cr != 0) {
		*err = xasprintf("cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, path) != 0) {
		*err = xasprintf("cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
	rc = ZMB_OK;
out:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (tmp)
		unlink(tmp);
	free(tmp);
	free(dcopy);
	return rc;
}
