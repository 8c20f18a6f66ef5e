/*
 * check_archive.c - the gzip integrity check used on every export (spool:
 * as the archive is written; stream: as it passes to the import).
 */
#include "archive.h"
#include "testutil.h"
#include "zmb.h"

#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* gzip `n` pseudo-random-ish bytes with zlib; caller frees; *len set. */
static unsigned char *make_gzip(size_t n, unsigned seed, size_t *len)
{
	unsigned char *raw = xmalloc(n);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		raw[i] = (unsigned char)(i % 7 ? seed >> 16 : 'a');
	}
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	ck_assert_int_eq(deflateInit2(&zs, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t cap = deflateBound(&zs, n) + 64;
	unsigned char *out = xmalloc(cap);
	zs.next_in = raw;
	zs.avail_in = (uInt)n;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
	*len = cap - zs.avail_out;
	deflateEnd(&zs);
	free(raw);
	return out;
}

/* Feed in chunks of `step` bytes (the split must not matter). */
static enum zmb_rc check_split(struct gz_check *g, const unsigned char *p, size_t n, size_t step,
			       char **err)
{
	gz_check_reset(g);
	for (size_t off = 0; off < n; off += step)
		gz_check_feed(g, p + off, n - off < step ? n - off : step);
	return gz_check_finish(g, err);
}

START_TEST(test_complete_any_split)
{
	size_t n;
	unsigned char *gz = make_gzip(300000, 7, &n);
	struct gz_check *g = gz_check_new();
	static const size_t steps[] = { 1, 7, 4096, 16384, 1 << 20 };
	for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
		char *err = NULL;
		size_t step = steps[i] == 1 ? 1 : steps[i];
		if (step == 1 && n > 20000)
			step = 13;   /* byte-by-byte is slow; 13 still splits headers and trailers */
		ck_assert_msg(check_split(g, gz, n, step, &err) == ZMB_OK, "step %zu: %s", step, err);
	}
	gz_check_free(g);
	free(gz);
}
END_TEST

START_TEST(test_truncated_corrupt_empty)
{
	size_t n;
	unsigned char *gz = make_gzip(100000, 3, &n);
	struct gz_check *g = gz_check_new();
	char *err = NULL;
	/* cut anywhere, including inside the 8-byte trailer */
	static const size_t cuts[] = { 10, 500, 4096 };
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(check_split(g, gz, cuts[i], 4096, &err), ZMB_ETEMP);
		ck_assert_msg(tu_contains(err, "truncated"), "%s", err);
		free(err);
		err = NULL;
	}
	ck_assert_int_eq(check_split(g, gz, n - 3, 4096, &err), ZMB_ETEMP);
	ck_assert(tu_contains(err, "truncated"));
	free(err);
	err = NULL;
	/* a flipped byte in the middle: the CRC (or the inflate) catches it */
	gz[n / 2] ^= 0x55;
	ck_assert_int_eq(check_split(g, gz, n, 4096, &err), ZMB_ETEMP);
	free(err);
	err = NULL;
	gz[n / 2] ^= 0x55;
	/* nothing at all */
	gz_check_reset(g);
	ck_assert_int_eq(gz_check_finish(g, &err), ZMB_ETEMP);
	ck_assert(tu_contains(err, "empty"));
	free(err);
	err = NULL;
	/* and after all that, a reset makes a good archive good again */
	ck_assert_int_eq(check_split(g, gz, n, 4096, &err), ZMB_OK);
	gz_check_free(g);
	free(gz);
}
END_TEST

START_TEST(test_concatenated_members_and_file)
{
	size_t n1, n2;
	unsigned char *a = make_gzip(5000, 1, &n1), *b = make_gzip(7000, 2, &n2);
	unsigned char *both = xmalloc(n1 + n2);
	memcpy(both, a, n1);
	memcpy(both + n1, b, n2);
	struct gz_check *g = gz_check_new();
	char *err = NULL;
	ck_assert_int_eq(check_split(g, both, n1 + n2, 1000, &err), ZMB_OK);
	/* garbage after a complete member is corruption, not success */
	both[n1] = 0;
	ck_assert_int_eq(check_split(g, both, n1 + n2, 1000, &err), ZMB_ETEMP);
	free(err);
	err = NULL;
	/* the file form (archive_check_gzip) agrees and reports the inflated size */
	char *dir = tu_tmpdir("gz");
	char *path = xasprintf("%s/a.tgz", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_eq(write(fd, a, n1), (ssize_t)n1);
	long long out = 0;
	ck_assert_int_eq(archive_check_gzip(fd, &out, &err), ZMB_OK);
	ck_assert_int_eq(out, 5000);
	close(fd);
	tu_rmrf(dir);
	free(path);
	free(dir);
	gz_check_free(g);
	free(both);
	free(a);
	free(b);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("archive");
	TCase *tc = tcase_create("gzip");
	tcase_add_test(tc, test_complete_any_split);
	tcase_add_test(tc, test_truncated_corrupt_empty);
	tcase_add_test(tc, test_concatenated_members_and_file);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
