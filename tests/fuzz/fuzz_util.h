/*
 * fuzz_util.h - helpers shared by the libFuzzer targets in tests/fuzz/.
 *
 * Each target is one file tests/fuzz/fuzz_<name>.c with
 * LLVMFuzzerTestOneInput(); tests/check_fuzz_regress.c #includes every
 * target (with LLVMFuzzerTestOneInput renamed) to replay the corpus and the
 * regression inputs in `make check`, so file-local names are prefixed with
 * the target name.  Everything here is static: one copy per program.
 *
 * Scratch files go to one directory per process, made on first use under
 * $ZMB_FUZZ_TMP, else $TMPDIR, else /tmp, and removed at exit.  Single
 * thread only (libFuzzer runs one input at a time).
 */
#ifndef ZMB_FUZZ_UTIL_H
#define ZMB_FUZZ_UTIL_H


#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zmb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_dir[4096];

/* The scratch directory is flat: remove its files, then itself. */
static __attribute__((unused)) void fz_cleanup(void)
{
	DIR *d = fz_dir[0] ? opendir(fz_dir) : NULL;
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *p = xasprintf("%s/%s", fz_dir, de->d_name);
		unlink(p);
		free(p);
	}
	if (d) {
		closedir(d);
		rmdir(fz_dir);
	}
	fz_dir[0] = '\0';
}

/* The scratch directory of this process (created on first call). */
static __attribute__((unused)) const char *fz_tmpdir(void)
{
	if (fz_dir[0])
		return fz_dir;
	const char *base = getenv("ZMB_FUZZ_TMP");
	if (!base || !*base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	snprintf(fz_dir, sizeof fz_dir, "%s/zmbfuzz-XXXXXX", base);
	if (!mkdtemp(fz_dir)) {
		fprintf(stderr, "fuzz: cannot create a directory under %s: %s\n", base, strerror(errno));
		abort();
	}
	atexit(fz_cleanup);
	return fz_dir;
}

/* A NUL-terminated copy of the input (libFuzzer's data is not terminated). */
static __attribute__((unused)) char *fz_text(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1);
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Write (replace) fz_tmpdir()/name; returns the path (caller frees). */
static __attribute__((unused)) char *fz_file(const char *name, const void *data, size_t size)
{
	char *path = xasprintf("%s/%s", fz_tmpdir(), name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
		abort();
	}
	const char *p = data;
	while (size) {
		ssize_t w = write(fd, p, size);
		if (w <= 0) {
			fprintf(stderr, "fuzz: write %s: %s\n", path, strerror(errno));
			abort();
		}
		p += w;
		size -= (size_t)w;
	}
	close(fd);
	return path;
}

/* An invariant of the code under test does not hold: report and crash. */
static __attribute__((unused)) void fz_fail(const char *target, const char *what, const char *detail)
{
	fprintf(stderr, "fuzz %s: %s%s%s\n", target, what, detail ? ": " : "", detail ? detail : "");
	abort();
}

#endif
