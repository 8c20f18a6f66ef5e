/*
 * conf_internal.h - the pieces of the job file readers, private to src/conf.
 *
 *   conf.c            conf_read(): read the file, recognise its format, hand it
 *                     to one reader, then conf_finish_with()
 *   conf_native.c     native reader: cval tree -> struct job, key by key
 *   conf_libconfig.c  libconfig text -> cval tree (the only libconfig user)
 *   conf_legacy.c     zmztozmig.conf reader (job.h: conf_legacy_parse)
 *   conf_finish.c     defaults and cross-field checks of both formats
 *   conf_write.c      native writer (convert)
 *
 * Every error is "FILE:LINE: message" (or "FILE: message" without a line),
 * returned as ZMB_ECONFIG with *err owned by the caller.  Main thread only.
 */
#ifndef ZMB_CONF_INTERNAL_H
#define ZMB_CONF_INTERNAL_H

#include "job.h"

/*
 * Parse libconfig text into *root (a CV_GROUP; release it with cval_release,
 * also after an error: it may be partly filled).  @include is resolved
 * relative to the directory of `path`.  Refuses a decimal literal beyond 32
 * bits without an 'L' suffix: libconfig 1.5 silently truncates it.
 */
enum zmb_rc conf_libconfig_read(const char *path, const char *text, struct cval *root,
				char **err);

/* The native reader: text -> *job (job_init() done by the caller). */
enum zmb_rc conf_native_parse(const char *path, const char *text,
			      const struct stage_catalog *cat, struct job *job, char **err);

#endif
