/*
 * fuzz_gzip.c - archive_check_gzip(): the integrity check of a spooled
 * export (gzip members, CRC32/ISIZE trailers, truncation, trailing junk).
 *
 * Invariant checked: an archive that passes decompresses completely with
 * zlib's own gzip reader to the same number of bytes.
 */
#include "fuzz_util.h"

#include "archive.h"

#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = fz_file("export.tgz", data, size);
	char *err = NULL;
	long long n = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		abort();
	enum zmb_rc rc = archive_check_gzip(fd, &n, &err);
	close(fd);
	if (rc != ZMB_OK && !err)
		fz_fail("gzip", "error without a message", zmb_rc_name(rc));
	if (rc == ZMB_OK) {
		/* inflate again member by member with a second, independent loop */
		z_stream zs;
		unsigned char out[16384];
		long long total = 0;
		memset(&zs, 0, sizeof zs);
		if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
			abort();
		zs.next_in = (unsigned char *)(uintptr_t)data;
		zs.avail_in = (uInt)size;
		int zr = Z_OK;
		while (zs.avail_in > 0) {
			zs.next_out = out;
			zs.avail_out = sizeof out;
			zr = inflate(&zs, Z_NO_FLUSH);
			total += (long long)(sizeof out - zs.avail_out);
			if (zr == Z_STREAM_END) {
				if (zs.avail_in)
					inflateReset(&zs);
			} else if (zr != Z_OK) {
				break;
			}
		}
		inflateEnd(&zs);
		if (zr != Z_STREAM_END)
			fz_fail("gzip", "accepted an archive zlib cannot inflate to its end", NULL);
		if (total != n)
			fz_fail("gzip", "uncompressed size differs from zlib's", NULL);
	}
	free(err);
	free(path);
	return 0;
}
