/*
 * conf.c - conf_read(): load a job file.  Reads the file (bounded, text
 * only), recognises a zmztozmig.conf by its content (conf_is_legacy), hands
 * the text to the legacy or the native reader, then applies the defaults and
 * checks shared by both (conf_finish_with, conf_finish.c).  A zmztozmig.conf
 * is checked as a whole even when some of its lines were wrong, and the
 * warnings gathered are added to the errors, so that its administrator sees
 * everything to fix in one go.  The pieces are
 * listed in conf_internal.h; the job model itself is job.c.
 *
 * Main thread only (loading); the resulting job is then read-only.
 */
#define _GNU_SOURCE
#include "conf_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define JOB_FILE_MAX (4 * 1024 * 1024)

/* ---- reading the file ---- */

static enum zmb_rc read_text(const char *path, char **text, char **err)
{
	enum zmb_rc rc = ZMB_ECONFIG;
	struct buf b = BUF_INIT;
	FILE *f = fopen(path, "r");
	if (!f) {
		*err = xasprintf("%s: cannot read job file: %s", path, strerror(errno));
		goto out;
	}
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		buf_add(&b, chunk, n);
		if (b.len > JOB_FILE_MAX) {
			*err = xasprintf("%s: job file is larger than %d bytes", path, JOB_FILE_MAX);
			goto out;
		}
	}
	if (ferror(f)) {
		*err = xasprintf("%s: cannot read job file: %s", path, strerror(errno));
		goto out;
	}
	if (b.len && memchr(b.s, '\0', b.len)) {
		*err = xasprintf("%s: job file contains a NUL byte (not a text file)", path);
		goto out;
	}
	*text = buf_detach(&b);
	rc = ZMB_OK;
out:
	if (f)
		fclose(f);
	if (b.s)
		explicit_bzero(b.s, b.alloc);
	buf_release(&b);
	return rc;
}

/* Keys of a zmztozmig.conf that cannot be mistaken for native keys. */
static const char *const legacy_marker_keys[] = {
	"SourceZCSServer", "SourceAdminUser", "SourceAdminPwd", "SourceAdminPort",
	"TargetZCSServer", "TargetAdminUser", "TargetAdminPwd", "TargetAdminPort",
	"Threads", "WorkingDirectory", "FailedDirectory", "SuccessDirectory",
	"LogDirectory", "KeepSuccessFiles", "ZimbraMailTransport", "DomainMap",
	"Domains", "Accounts", NULL
};

/*
 * A zmztozmig.conf has bare `Key=Value` lines with zmztozmig's keys; a native
 * file has `key = value;`, quoted strings and groups.  Some words are both
 * ("threads" is a native key too), so each significant line votes: legacy
 * when it names a zmztozmig key with a bare value and no trailing ';', native
 * when it has libconfig punctuation.  Ties go to native.
 */
bool conf_is_legacy(const char *text)
{
	const char *p = text ? text : "";
	int legacy = 0, native = 0;
	bool in_comment = false;
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		const char *s = p;
		const char *e = p + len;
		p = eol ? eol + 1 : e;
		while (s < e && isspace((unsigned char)*s))
			s++;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (in_comment) {
			if (memmem(s, (size_t)(e - s), "*/", 2))
				in_comment = false;
			continue;
		}
		if (s == e || *s == '#' || (e - s >= 2 && s[0] == '/' && s[1] == '/'))
			continue;
		if (e - s >= 2 && s[0] == '/' && s[1] == '*') {
			in_comment = !memmem(s + 2, (size_t)(e - s - 2), "*/", 2);
			native++;
			continue;
		}
		if (strchr("{}()[]", *s) || e[-1] == ';' || e[-1] == '{' || e[-1] == '(' ||
		    e[-1] == ',') {
			native++;
			continue;
		}
		/* the key: letters only, then optional blanks, then '=' */
		const char *k = s;
		while (s < e && isalpha((unsigned char)*s))
			s++;
		size_t klen = (size_t)(s - k);
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		if (!klen || s == e || (*s != '=' && *s != ':'))
			continue;
		const char *v = s + 1;
		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		if (*s == ':' || (v < e && strchr("\"{([", *v))) {
			native++;
			continue;
		}
		for (size_t i = 0; legacy_marker_keys[i]; i++)
			if (strlen(legacy_marker_keys[i]) == klen &&
			    !strncasecmp(legacy_marker_keys[i], k, klen)) {
				legacy++;
				break;
			}
	}
	return legacy > native;
}

/* After the errors, each warning gathered so far: one attempt shows everything to fix. */
static void with_warnings(const struct job *job, char **err)
{
	if (!job->warnings.n)
		return;
	struct buf b = BUF_INIT;
	buf_adds(&b, *err ? *err : "configuration error");
	for (size_t i = 0; i < job->warnings.n; i++)
		buf_addf(&b, "\nwarning: %s", job->warnings.v[i]);
	free(*err);
	*err = buf_detach(&b);
}

enum zmb_rc conf_read(const char *path, bool resolve_secrets, const struct stage_catalog *cat,
		      struct job *job, char **err)
{
	enum zmb_rc rc;
	char *text = NULL;

	job_init(job);
	*err = NULL;
	if (!path || !*path) {
		*err = xstrdup("no job file given");
		return ZMB_ECONFIG;
	}
	rc = read_text(path, &text, err);
	if (rc)
		goto out;
	if (conf_is_legacy(text)) {
		/* every line was read: the checks of the whole file add their own errors */
		rc = conf_legacy_parse(path, text, job, err);
		char *ferr = NULL;
		enum zmb_rc frc = conf_finish_with(job, resolve_secrets, cat, &ferr);
		if (frc && rc) {
			char *e = xasprintf("%s\n%s", *err, ferr);
			free(*err);
			free(ferr);
			*err = e;
		} else if (frc) {
			*err = ferr;
			rc = frc;
		}
	} else {
		job->path = xstrdup(path);
		rc = conf_native_parse(path, text, cat, job, err);
		if (rc == ZMB_OK)
			rc = conf_finish_with(job, resolve_secrets, cat, err);
	}
	if (rc)
		with_warnings(job, err);
out:
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	if (rc)
		job_release(job);
	return rc;
}
