/*
 * zmb.h - program-wide result codes and small utilities.
 *
 * Every module returns an `enum zmb_rc`.  ZMB_OK is 0, so `if (rc) goto out;`
 * is the idiom.  zmb_rc_class() sorts a code into "retry now / retry later /
 * never", modelled on isync's FAIL_TEMP/FAIL_WAIT/FAIL_FINAL and curl's
 * retrycheck().
 *
 * Utilities here are thread-safe unless said otherwise.  x*alloc() abort on
 * out-of-memory (the only acceptable reaction for a batch runner: a failed
 * malloc of a few bytes means the machine is lost anyway).
 */
#ifndef ZMB_H
#define ZMB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ZMB_VERSION "0.1.0"

/* Exit codes of the program (sysexits.h values; the README's "Exit status" table). */
enum zmb_exit {
	EXIT_OK_ = 0,
	EXIT_PARTIAL = 1,      /* run finished, some accounts/stages failed */
	EXIT_USAGE = 64,
	EXIT_UNAVAILABLE = 69, /* server unreachable / auth failed before work */
	EXIT_SOFTWARE = 70,    /* internal error */
	EXIT_TEMPFAIL = 75,    /* stopped early with work left, or lock busy */
	EXIT_CONFIG = 78,
};

enum zmb_rc {
	ZMB_OK = 0,
	ZMB_ETEMP,        /* transient (connection reset, 5xx): retry with backoff */
	ZMB_EBUSY,        /* server throttling (HTTP 503 DoS filter): back off longer */
	ZMB_EAUTH,        /* authentication failed (bad password): never retry */
	ZMB_EAUTHEXP,     /* token expired/revoked: log in again, retry the step once */
	ZMB_ENOACCOUNT,   /* account does not exist (target missing): never */
	ZMB_ETLS,         /* certificate / pinning failure: never */
	ZMB_ECONNECT,     /* could not connect / resolve: retry later */
	ZMB_EPROTO,       /* unexpected answer from server (bad JSON, fault): never */
	ZMB_EIO,          /* local I/O error (disk full, permissions): retry later */
	ZMB_ENOSPACE,     /* not enough room in working_dir: retry later */
	ZMB_ECONFIG,      /* configuration error */
	ZMB_ESTATE,       /* state database error */
	ZMB_ECANCELED,    /* stop requested (signal, window end) */
	ZMB_ENOTFOUND,    /* generic "not found" (e.g. LDAP entry) */
	ZMB_ECONFLICT,    /* conflicting state (server ID differs, duplicate rid) */
	ZMB_ETIMEOUT,     /* deadline reached (replication did not converge) */
	ZMB_EINTERNAL,    /* programmer error / should not happen */
	ZMB_RC_MAX
};

enum zmb_retry {
	ZMB_RETRY_NONE,   /* success, nothing to retry */
	ZMB_RETRY_NOW,    /* retry the step immediately (once), e.g. after re-auth */
	ZMB_RETRY_LATER,  /* retry after backoff */
	ZMB_RETRY_NEVER,  /* permanent */
};

/* Short stable name of a code ("ETEMP"); never NULL. */
const char *zmb_rc_name(enum zmb_rc rc);
/* Human text ("temporary failure"); never NULL. */
const char *zmb_rc_str(enum zmb_rc rc);
/* Error class as stored in the state DB ("temporary", "permanent", ...). */
const char *zmb_rc_class_name(enum zmb_rc rc);
enum zmb_retry zmb_rc_class(enum zmb_rc rc);

/* ---- allocation (abort on OOM) ---- */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);          /* NULL -> NULL */
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap);

/* Free a secret after overwriting it (explicit_bzero). NULL-safe. */
void secret_free(char *s);

/* ---- growable byte buffer (git strbuf shaped) ---- */
struct buf {
	char *s;      /* always NUL-terminated when non-NULL */
	size_t len;
	size_t alloc;
};
#define BUF_INIT { NULL, 0, 0 }
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);          /* len = 0, keeps memory */
void buf_release(struct buf *b);        /* frees, back to BUF_INIT */
char *buf_detach(struct buf *b);        /* caller owns result; never NULL */

/* ---- list of owned strings ---- */
struct strlist {
	char **v;
	size_t n;
	size_t alloc;
};
#define STRLIST_INIT { NULL, 0, 0 }
void strlist_add(struct strlist *l, const char *s);    /* copies s */
void strlist_add_nodup(struct strlist *l, char *s);    /* takes ownership */
bool strlist_has(const struct strlist *l, const char *s);
bool strlist_has_ci(const struct strlist *l, const char *s);
void strlist_release(struct strlist *l);

/* ---- parsing helpers ---- */
/*
 * Parse a duration: "90s", "45m", "8h", "2d", or plain seconds "3600".
 * Whitespace around is allowed; "1h30m" is accepted too.  Returns 0 on
 * success with *secs set, -1 on a malformed or negative or overflowing value.
 */
int parse_duration(const char *s, long long *secs);
/* Parse "HH:MM" (00:00..23:59). Returns 0 / -1. */
int parse_hhmm(const char *s, int *hh, int *mm);
/* Parse a byte size "512", "64k", "10M", "2G" (powers of 1024). 0 / -1. */
int parse_bytes(const char *s, long long *bytes);
/* strtoll over the whole string; 0 / -1. */
int parse_ll(const char *s, long long *v);
/* Trim leading/trailing white space in place; returns s. */
char *strtrim(char *s);
/* ASCII case-insensitive equality; NULL-safe (NULL == NULL). */
bool streq_ci(const char *a, const char *b);
bool streq(const char *a, const char *b);
/* Lower-case copy (ASCII). */
char *xstrlower(const char *s);

/*
 * Read a secret from a file: the first line, without the trailing newline.
 * Refuses (ZMB_ECONFIG, message in *err) a file that is group- or
 * world-readable, not a regular file, empty, or unreadable.  *err is owned by
 * the caller.
 */
enum zmb_rc secret_read_file(const char *path, char **secret, char **err);

/*
 * Turn an account name into a file name that cannot escape a directory:
 * [A-Za-z0-9._@+-] kept, anything else %XX-encoded, a leading '.' encoded,
 * length capped (long names get a hash suffix).  Never returns "" "." "..".
 */
char *path_safe_name(const char *account);

/* mkdir -p with mode; 0 / -1 (errno set). */
int mkdir_p(const char *path, unsigned mode);

/* Monotonic seconds (CLOCK_MONOTONIC) and wall-clock seconds as double. */
double mono_now(void);
double wall_now(void);
/* ISO 8601 UTC "2026-11-21T23:54:51Z" for a unix time; writes into out[32]. */
void iso8601_utc(double t, char out[32]);

/* Random 64-bit value (getrandom); used for jitter and marker names. */
uint64_t rand64(void);

/* crashpoint() and the other test hooks: testhooks.h */
#include "testhooks.h"

#endif
