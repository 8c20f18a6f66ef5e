/*
 * archive.h - integrity check of exported archives.
 *
 * Zimbra sends an export without Content-Length and ends it by closing the
 * connection (or with the last chunk), so a stream that broke on the
 * server side can arrive as a clean HTTP 200 with a truncated gzip.  Such
 * an archive must never be counted as migrated: it is detected here (gzip
 * trailer CRC32 and length of every member) and the account is exported
 * again.
 *
 * struct gz_check checks the bytes while they are written to the spool file,
 * so no extra read of the archive is needed.  (In stream mode the target's
 * import parses the gzip itself and refuses a truncated one.)  One per
 * worker thread; not shared between threads.
 * Memory use is one fixed buffer.
 */
#ifndef ZMB_ARCHIVE_H
#define ZMB_ARCHIVE_H

#include "zmb.h"

struct gz_check;

struct gz_check *gz_check_new(void);
void gz_check_free(struct gz_check *g);                 /* NULL-safe */
/* Start over (a new attempt of the same export). */
void gz_check_reset(struct gz_check *g);
/* Feed the next bytes of the archive (any size, any split). */
void gz_check_feed(struct gz_check *g, const void *p, size_t n);
/*
 * Verdict on everything fed since the last reset: ZMB_OK when it is one or
 * more complete gzip members; ZMB_ETEMP with *err ("truncated gzip stream
 * after N bytes", "corrupt gzip stream at byte N", "empty archive").
 */
enum zmb_rc gz_check_finish(struct gz_check *g, char **err);

/*
 * The same over a whole file: read fd from offset 0 to its end.  ZMB_OK,
 * ZMB_ETEMP (damage, *err), or ZMB_EIO on a read error.  *uncompressed
 * (if not NULL) gets the inflated size.
 */
enum zmb_rc archive_check_gzip(int fd, long long *uncompressed, char **err);

#endif
