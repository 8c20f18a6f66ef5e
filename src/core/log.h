/*
 * log.h - thread-safe line logger.
 *
 * One process-wide logger: stderr plus, when a directory is given, a run log
 * file `<dir>/zmbatch.log`.  Every call writes one whole line under one mutex,
 * so lines from worker threads never interleave.  Format:
 *   2026-11-21T23:54:51Z INFO  [account a@example.com] export done 12 MB
 *
 * Secrets: log_add_secret() registers a string (password, token) that is
 * replaced by "***" wherever it would appear in a line.  Register passwords in
 * the main thread before workers start; tokens are registered by the token
 * cache as they are minted.  Any thread may call every function here.
 */
#ifndef ZMB_LOG_H
#define ZMB_LOG_H

#include <stdbool.h>

enum zlog_level { ZLOG_ERROR = 0, ZLOG_WARN, ZLOG_INFO, ZLOG_DEBUG };

/* Parse "error|warn|info|debug"; -1 if unknown. */
int zlog_level_parse(const char *s);
/*
 * Start logging (main thread, before workers).  dir may be NULL.  stderr
 * lines are written unless quiet.  Returns 0, or -1 with *err set.
 */
int zlog_open(const char *dir, int level, bool quiet, char **err);
/* Reopen the log file (SIGHUP, logrotate). */
void zlog_reopen(void);
void zlog_close(void);
void zlog_add_secret(const char *s);
/* Redact known secrets in a copy of s (caller frees). */
char *zlog_redact(const char *s);
/* Set a callback that erases/redraws a terminal progress line around log
 * lines (NULL to disable).  Called under the log mutex. */
void zlog_set_tty_hook(void (*clear)(void));

void zlog(int level, const char *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(ctx, ...) zlog(ZLOG_ERROR, ctx, __VA_ARGS__)
#define log_warn(ctx, ...)  zlog(ZLOG_WARN, ctx, __VA_ARGS__)
#define log_info(ctx, ...)  zlog(ZLOG_INFO, ctx, __VA_ARGS__)
#define log_debug(ctx, ...) zlog(ZLOG_DEBUG, ctx, __VA_ARGS__)

#endif
