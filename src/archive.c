/*
 * archive.c - gzip integrity check of spool files (zlib).
 */
#define _GNU_SOURCE
#include "archive.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

enum { IN_SZ = 256 * 1024, OUT_SZ = 256 * 1024 };

enum zmb_rc archive_check_gzip(int fd, long long *uncompressed, char **err)
{
	enum zmb_rc rc = ZMB_ETEMP;
	unsigned char *in = xmalloc(IN_SZ), *out = xmalloc(OUT_SZ);
	z_stream zs;
	long long offset = 0, total_out = 0;
	bool member_open = false, any = false;
	int zr = Z_OK;

	memset(&zs, 0, sizeof zs);
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {  /* 16+: gzip wrapper, checks CRC */
		*err = xstrdup("cannot initialise zlib");
		rc = ZMB_EINTERNAL;
		goto out_noend;
	}
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
		zs.next_in = in;
		zs.avail_in = (uInt)n;
		while (zs.avail_in > 0) {
			if (!member_open) {
				/* concatenated members are valid gzip */
				inflateReset(&zs);
				member_open = true;
				any = true;
			}
			zs.next_out = out;
			zs.avail_out = OUT_SZ;
			zr = inflate(&zs, Z_NO_FLUSH);
			total_out += OUT_SZ - zs.avail_out;
			if (zr == Z_STREAM_END) {
				member_open = false;
			} else if (zr != Z_OK && zr != Z_BUF_ERROR) {
				*err = xasprintf("corrupt gzip stream at byte %lld: %s", offset - (long long)zs.avail_in,
						 zs.msg ? zs.msg : "inflate error");
				goto out;
			} else if (zr == Z_BUF_ERROR && zs.avail_in > 0 && zs.avail_out > 0) {
				*err = xasprintf("corrupt gzip stream at byte %lld", offset - (long long)zs.avail_in);
				goto out;
			}
		}
	}
	if (!any) {
		*err = xstrdup("empty archive (0 bytes)");
		goto out;
	}
	if (member_open) {
		*err = xasprintf("truncated gzip stream after %lld bytes (the export ended early)", offset);
		goto out;
	}
	if (uncompressed)
		*uncompressed = total_out;
	rc = ZMB_OK;
out:
	inflateEnd(&zs);
out_noend:
	free(in);
	free(out);
	return rc;
}
