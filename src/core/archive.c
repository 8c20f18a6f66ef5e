/*
 * archive.c - gzip integrity check of exported archives (zlib).
 */
#define _GNU_SOURCE
#include "archive.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

enum { OUT_SZ = 64 * 1024, IN_SZ = 256 * 1024 };

struct gz_check {
	z_stream zs;
	bool member_open;    /* inside a gzip member (its trailer not seen yet) */
	bool any;            /* at least one member started */
	bool bad;
	long long in;        /* bytes fed */
	long long out;       /* inflated bytes */
	char *err;
	unsigned char buf[OUT_SZ];
};

struct gz_check *gz_check_new(void)
{
	struct gz_check *g = xcalloc(1, sizeof *g);
	/* 16 + MAX_WBITS: gzip wrapper, CRC32 and ISIZE checked by zlib */
	if (inflateInit2(&g->zs, 16 + MAX_WBITS) != Z_OK)
		abort();
	return g;
}

void gz_check_free(struct gz_check *g)
{
	if (!g)
		return;
	inflateEnd(&g->zs);
	free(g->err);
	free(g);
}

void gz_check_reset(struct gz_check *g)
{
	inflateReset(&g->zs);
	g->member_open = g->any = g->bad = false;
	g->in = g->out = 0;
	free(g->err);
	g->err = NULL;
}

void gz_check_feed(struct gz_check *g, const void *p, size_t n)
{
	if (g->bad || n == 0)
		return;
	g->zs.next_in = (unsigned char *)(uintptr_t)p;
	g->zs.avail_in = (uInt)n;
	while (g->zs.avail_in > 0) {
		if (!g->member_open) {
			/* concatenated members are valid gzip */
			inflateReset(&g->zs);
			g->member_open = true;
			g->any = true;
		}
		g->zs.next_out = g->buf;
		g->zs.avail_out = OUT_SZ;
		int zr = inflate(&g->zs, Z_NO_FLUSH);
		g->out += OUT_SZ - g->zs.avail_out;
		if (zr == Z_STREAM_END) {
			g->member_open = false;
		} else if ((zr != Z_OK && zr != Z_BUF_ERROR) ||
			   (zr == Z_BUF_ERROR && g->zs.avail_in > 0 && g->zs.avail_out > 0)) {
			g->bad = true;
			g->err = xasprintf("corrupt gzip stream at byte %lld%s%s",
					   g->in + (long long)(n - g->zs.avail_in),
					   g->zs.msg ? ": " : "", g->zs.msg ? g->zs.msg : "");
			break;
		}
	}
	g->in += (long long)n;
}

enum zmb_rc gz_check_finish(struct gz_check *g, char **err)
{
	if (g->bad) {
		*err = xstrdup(g->err);
		return ZMB_ETEMP;
	}
	if (!g->any) {
		*err = xstrdup("empty archive (0 bytes)");
		return ZMB_ETEMP;
	}
	if (g->member_open) {
		*err = xasprintf("truncated gzip stream after %lld bytes (the export ended early)", g->in);
		return ZMB_ETEMP;
	}
	return ZMB_OK;
}

enum zmb_rc archive_check_gzip(int fd, long long *uncompressed, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	struct gz_check *g = gz_check_new();
	unsigned char *in = xmalloc(IN_SZ);
	off_t offset = 0;

	for (;;) {
		ssize_t n = pread(fd, in, IN_SZ, offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*err = xasprintf("cannot read spool file: %s", strerror(errno));
			rc = ZMB_EIO;
			goto out;
		}
		if (n == 0)
			break;
		offset += n;
		gz_check_feed(g, in, (size_t)n);
	}
	rc = gz_check_finish(g, err);
	if (rc == ZMB_OK && uncompressed)
		*uncompressed = g->out;
out:
	free(in);
	gz_check_free(g);
	return rc;
}
