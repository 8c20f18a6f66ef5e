/*
 * job.h - the job, as one plain C struct.
 *
 * conf_load() (conf_read() in src/conf/conf.c; the readers are listed in
 * src/conf/conf_internal.h) turns a native libconfig job file or a legacy
 * zmztozmig.conf into a `struct job`; no libconfig type is visible outside
 * src/conf/conf_libconfig.c.  After conf_load() returns the job is
 * immutable: it is shared read-only by every thread.  job_release() frees it
 * (main thread, after all workers have been joined).
 *
 * Stage settings are kept as a small typed tree (`struct cval`) with the line
 * number of each value, so that each stage module validates its own keys and
 * still reports "file:line: key: message".
 */
#ifndef ZMB_JOB_H
#define ZMB_JOB_H

#include "zmb.h"

enum cval_type { CV_STR, CV_INT, CV_FLOAT, CV_BOOL, CV_LIST, CV_GROUP };

struct cval {
	char *name;            /* key; NULL for list elements */
	enum cval_type type;
	char *str;             /* CV_STR */
	long long i;           /* CV_INT (also set for CV_BOOL: 0/1) */
	double f;              /* CV_FLOAT */
	bool b;                /* CV_BOOL */
	struct cval *items;    /* CV_LIST / CV_GROUP children */
	size_t n;
	int line;              /* line in the job file, 0 if unknown */
};

/* Child of a group by name (NULL if absent or not a group). */
const struct cval *cval_get(const struct cval *group, const char *name);
void cval_release(struct cval *v);
/* Deep copy of src into *dst (release dst with cval_release). */
void cval_copy(const struct cval *src, struct cval *dst);

/*
 * Typed accessors used by stage validators.  Each returns 0 on success
 * (value present and of the right type, or absent with the default applied)
 * and -1 on a type error, with *err = "file:line: key 'name': expected ...".
 * `file` is job->path for messages.
 */
int cval_str(const struct cval *g, const char *key, const char *def,
	     const char **out, const char *file, char **err);
int cval_int(const struct cval *g, const char *key, long long def,
	     long long *out, const char *file, char **err);
int cval_bool(const struct cval *g, const char *key, bool def,
	      bool *out, const char *file, char **err);
/* A string or a list of strings; absent -> empty list.  out is appended to. */
int cval_strlist(const struct cval *g, const char *key, struct strlist *out,
		 const char *file, char **err);
/* A duration (string "45m" or integer seconds). */
int cval_duration(const struct cval *g, const char *key, long long def,
		  long long *out, const char *file, char **err);

/*
 * One entry of a server group's `servers` list: where to reach a mailbox
 * server of the installation named by an account's zimbraMailHost (NAT,
 * split DNS), instead of asking the configured server (GetServerRequest).
 */
struct server_route {
	char *name;                /* the zimbraMailHost / zimbraServiceHostname */
	char *host;
	int port;                  /* admin port, default 7071 */
	char *pinned_pubkey;       /* that server's key, if the group pins its own; NULL */
	int line;
};

/*
 * `source.ldap` / `target.ldap`: that side's LDAP, for what its admin SOAP
 * cannot do (the provision stage reads userPassword hashes there: SOAP
 * answers VALUE-BLOCKED).  url NULL = not configured.  The password is read
 * from password_file by the stage that binds (never kept in the job).
 */
struct server_ldap {
	char *url;                 /* ldap://, ldaps://, ldapi:// */
	char *bind_dn;             /* default uid=zimbra,cn=admins,cn=zimbra */
	char *password_file;       /* zimbra_ldap_password, mode 600 */
	char *base;                /* search base for accounts, default "" (Zimbra's root) */
	bool starttls;
	char *ca_file;
	bool tls_verify;           /* default true */
	bool allow_cleartext;      /* ldap:// to another host without starttls (default false) */
	int line;
};

struct server {
	const char *role;          /* "source" / "target" (static string) */
	char *host;
	int port;                  /* admin port, default 7071 */
	char *admin_user;
	char *password;            /* resolved secret, never printed; owned */
	char *password_file;       /* where it came from, for messages/convert */
	char *password_env;
	bool password_inline;      /* admin_password = "..." was used */
	char *ca_file;
	char *pinned_pubkey;       /* "sha256//BASE64=" */
	bool tls_verify;           /* default true */
	char *scheme;              /* "https" (default) or "http" (tests only) */
	/*
	 * Requests per second sent to this server, all threads together
	 * (max_requests_per_second; 0 = no cap).  Default 25: under the
	 * 30/s of Zimbra's DoS filter (zimbraHttpDosFilterMaxRequestsPerSec;
	 * Carbonio's default is 100/s).  The cap is shrunk while the server
	 * throttles and grows back (src/zimbra/throttle.h).
	 */
	double max_rps;
	struct server_route *routes;   /* `servers`: address overrides by mail host name */
	size_t nroutes;
	struct server_ldap ldap;       /* `ldap = { ... }`; ldap.url NULL = none */
	int line;                  /* line of the group in the file */
};

enum transfer_mode { TRANSFER_SPOOL, TRANSFER_STREAM };
enum order_mode { ORDER_LARGEST_FIRST, ORDER_AS_LISTED };

struct domain_map {
	char *from;
	char *to;
};

struct migration {
	struct strlist accounts;       /* explicit list (source addresses) */
	char *accounts_file;           /* one per line, '#' comments */
	struct strlist domains;        /* every non-system account of these */
	struct domain_map *maps;
	size_t nmaps;
	int threads;                   /* default 5 */
	char *working_dir;
	char *success_dir;
	char *failed_dir;
	bool keep_success_files;       /* default false */
	enum transfer_mode transfer;   /* default spool */
	char *resolve;                 /* skip|modify|replace|reset, default skip */
	char *types;                   /* NULL = everything */
	int max_attempts;              /* default 3 */
	enum order_mode order;         /* default largest-first */
	char *mail_transport;          /* NULL = don't touch */
	long long max_bytes_per_second; /* per worker; 0 = unlimited */
	long long max_bytes_per_second_total; /* whole run, shared by threads; 0 = unlimited */
	long long retry_backoff;       /* base seconds, default 30 */
	long long retry_backoff_max;   /* default 900 */
	/* seconds a run accepts being throttled (HTTP 429/503) by one server, in
	 * all, before it stops with an error naming the server; default 1800
	 * (30m), 0 = no bound.  Throttled requests never use up max_attempts. */
	long long max_throttle_wait;
	/* seconds an account may wait for its source or target to leave
	 * zimbraAccountStatus=maintenance (no attempt used while it waits) before
	 * it fails naming the status; default 21600 (6h), 0 = no bound */
	long long maintenance_wait;
	/* source accounts with one of these zimbraAccountStatus values are
	 * skipped (state 'skipped', the reason recorded), e.g. [ "closed" ] */
	struct strlist skip_status;
	long long delta_overlap;       /* seconds, default 86400 */
	/* export in date windows ("chunks") of this many seconds, each one a
	 * durable step; 0 = only when needed (zimbraExportMaxDays, chunk_bytes) */
	long long chunk;
	/* a mailbox larger than this is exported in chunks of about this size
	 * (window length from its size and oldest item); 0 = never by size */
	long long chunk_bytes;
	/* after each import, compare the source's folder figures with the
	 * target's (README "Verification"): "counts" (default) or "off" */
	bool verify;
	long long low_speed_time;      /* stall detection seconds, default 300 */
	long long low_speed_limit;     /* bytes/s, default 1 */
	long long buffer_size;         /* stream pipe buffer bytes, default 1 MiB */
	int line;
};

struct stage_conf {
	char *name;
	char *type;   /* migrate | ldap-replcheck | ldap-promote-mmr |
			 ldap-mmr-verify | localconfig | exec | cutover */
	struct cval settings;  /* the whole group, CV_GROUP */
	int line;
};

struct job {
	char *path;                    /* the file it was read from */
	bool legacy;                   /* read from a zmztozmig.conf */
	char *name;                    /* job = "..."; legacy: "zmztozmig" */
	struct server source;
	struct server target;
	struct migration mig;
	long long token_refresh_margin; /* seconds, default 1800 */
	char *state_db;                /* default: <working_dir>/zmbatch.db */
	char *log_dir;                 /* NULL = stderr only */
	char *log_level;               /* error|warn|info|debug, default info */
	long long max_runtime;         /* seconds, 0 = none */
	char *until;                   /* "HH:MM" or NULL */
	long long grace;               /* seconds in-flight accounts may finish, default 300 */
	long long progress_interval;   /* seconds between progress log lines, default 300 */
	struct stage_conf *stages;     /* never empty after conf_load: default one "migrate" */
	size_t nstages;
	struct strlist warnings;       /* e.g. inline password in a readable file */
};

/*
 * What the readers know of stage types.  The stage registry (src/stages/
 * stage.c) hands itself in, so that the readers do not depend on the stages.
 */
struct stage_catalog {
	bool (*known)(const char *type);   /* a stage type of that name exists */
	const char *(*names)(void);        /* "migrate, exec, ..." for messages */
	/* the type's own check of a stage's settings: 0, or -1 with *err (may stay NULL) */
	int (*validate)(const struct stage_conf *sc, const char *job_path, char **err);
};

/*
 * Load a job file, native or legacy (recognised by content).  On error
 * returns ZMB_ECONFIG with *err = "file:line: key: message" (caller frees).
 * *err may hold several lines: every error found (a native file's reader
 * stops at its first; a zmztozmig.conf is read to its end, then checked as
 * a whole), then each warning gathered so far as "warning: file:line: ...",
 * so that one attempt shows everything to fix.
 * Secrets are resolved (password files read, env looked up) unless
 * `resolve_secrets` is false (convert, --help paths).
 */
enum zmb_rc conf_read(const char *path, bool resolve_secrets, const struct stage_catalog *cat,
		      struct job *job, char **err);
/* conf_read() with the stage registry (defined in src/stages/stage.c). */
enum zmb_rc conf_load(const char *path, bool resolve_secrets, struct job *job, char **err);
/* true if the text looks like a zmztozmig.conf (Key=Value lines). */
bool conf_is_legacy(const char *text);
/* Legacy reader, used by conf_load; exposed for tests.  Reads every line:
 * *err holds every line's error, one per line.  Warnings go to job->warnings. */
enum zmb_rc conf_legacy_parse(const char *path, const char *text, struct job *job, char **err);
/* An empty job with every default set (both readers start from it; tests
 * may build a job in memory from it).  Release with job_release(). */
void job_init(struct job *job);
/* Apply defaults and cross-field validation (both formats); *err holds
 * every independent error found, one per line. */
enum zmb_rc conf_finish_with(struct job *job, bool resolve_secrets, const struct stage_catalog *cat,
			     char **err);
/* conf_finish_with() with the stage registry (defined in src/stages/stage.c). */
enum zmb_rc conf_finish(struct job *job, bool resolve_secrets, char **err);
/* Write the job as a native libconfig job file (convert). No secret printed. */
void conf_write_native(const struct job *job, FILE *out);
/* A stable identity of the job, stored in the state DB ("name|src|tgt"). */
char *job_identity(const struct job *job);
void job_release(struct job *job);
/* The directory of a job file ("." or "/" at the ends; caller frees): relative
 * paths and @include in a job file are relative to it. */
char *job_file_dir(const char *path);

/* Target address for a source account under the domain map (caller frees). */
char *job_map_account(const struct job *job, const char *source);

#endif
