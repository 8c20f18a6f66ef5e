/*
 * archive.h - integrity check of a spooled export before it is imported.
 *
 * Zimbra sends an export without Content-Length and ends it by closing the
 * connection (or with the last chunk), so a stream that broke on the
 * server side can arrive as a clean HTTP 200 with a truncated gzip.  Such
 * an archive must never be imported and then retried from disk forever: it
 * is detected here (gzip trailer CRC32 and length of every member) and the
 * account is exported again.  Any thread may call it (no shared state).
 */
#ifndef ZMB_ARCHIVE_H
#define ZMB_ARCHIVE_H

#include "zmb.h"

/*
 * Read fd from offset 0 to its end and check that it is one or more
 * complete gzip members.  ZMB_OK, or ZMB_ETEMP with *err describing the
 * damage ("truncated gzip stream after N bytes"), or ZMB_EIO on a read
 * error.  Memory use is two fixed buffers.
 */
enum zmb_rc archive_check_gzip(int fd, long long *uncompressed, char **err);

#endif
