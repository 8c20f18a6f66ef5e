/*
 * driver.h - one side of a transfer: how the engine talks to a mail server.
 *
 * A driver is a table of functions, like isync's driver.h for IMAP and
 * Maildir.  The engine (src/xfer/) and the migrate stage call only these;
 * Zimbra/Carbonio (admin SOAP + REST tgz, driver_zimbra.c) is the first
 * driver, and another kind of source or target is one more file.
 *
 * Two objects per side:
 *   struct xfer_end   one server of a run: its configuration and the login
 *                     state every thread shares (a token cache).  Made by the
 *                     main thread before any worker starts, freed after all
 *                     are joined; any thread may use it meanwhile.
 *   struct xfer_conn  one thread's connection to an end (a curl handle with
 *                     its keep-alive connections).  Used only by the thread
 *                     that made it; freed by that thread.
 * Each driver embeds these as the first member of its own structs.
 *
 * Ownership, for every member below: the caller owns what it passes and
 * what comes back (strings and arrays are new; free them with free() /
 * xfer_accounts_free()); out-parameters are untouched on error; on every
 * error *err is set to "<role host:port>: <step>: ..." for the caller to
 * free.  Result codes and their retry class are zmb.h's (ZMB_ENOACCOUNT for
 * an account the server does not have, ZMB_ECANCELED after a stop request).
 */
#ifndef ZMB_XFER_DRIVER_H
#define ZMB_XFER_DRIVER_H

#include "archive.h"
#include "job.h"
#include "runctl.h"
#include "zmb.h"

struct xfer_driver;

struct xfer_end {
	const struct xfer_driver *drv;
	const struct server *srv;   /* the job's server group; outlives the end */
};

struct xfer_conn {
	struct xfer_end *end;
};

/*
 * How an end was paced so far: the driver's rate cap, its limit on requests
 * in flight and the server's throttling (HTTP 429/503 for Zimbra).  A
 * throttled request is sent again by the driver after a pause, never
 * counted as a failed attempt; only when the pauses pass the run-wide bound
 * (job->mig.max_throttle_wait) do the driver's calls fail, with ZMB_EBUSY.
 */
struct xfer_pace {
	long long requests;         /* answers received */
	long long throttled;        /* of them throttled */
	double wait_seconds;        /* pauses the server imposed on the run */
	double rate_limit;          /* current requests/s cap; 0 = none */
	int concurrency_limit;      /* current requests in flight allowed */
};

/* An account as a server lists it. */
struct xfer_account {
	char *name;
	char *id;         /* the server's id for it (zimbraId) */
	char *status;     /* zimbraAccountStatus as listed; NULL if not given */
	char *mailhost;   /* its home mailbox server (zimbraMailHost) as listed; NULL if not given */
};
void xfer_accounts_free(struct xfer_account *v, size_t n);   /* NULL-safe */

/* An account's mailbox size as a server's size listing gives it. */
struct xfer_size {
	char *name;
	char *id;         /* may be NULL */
	long long bytes;
};
void xfer_sizes_free(struct xfer_size *v, size_t n);         /* NULL-safe */

/*
 * What an import left out: the server's warnings, one per item it could
 * not import ("<item>: <code>: <reason>", one printable line each; the
 * first XFER_MAX_WARNINGS kept, `total` counts them all).
 */
#define XFER_MAX_WARNINGS 200
struct xfer_import_result {
	char **warnings;
	size_t n;
	size_t total;
};
void xfer_import_result_release(struct xfer_import_result *r);   /* NULL-safe */

/* One folder of a mailbox and what it holds (verification). */
struct xfer_folder {
	char *path;       /* "Inbox", "Archive/2023": no leading '/' */
	char *view;       /* "message", "appointment", "task", "contact", "document"...; NULL none */
	long long n;      /* items */
	long long s;      /* bytes */
};
void xfer_folders_free(struct xfer_folder *v, size_t n);     /* NULL-safe */

/*
 * The verifier threads a run of job starts besides its workers (pool.c;
 * 0 with migration.verify off): two at least, one per 4 workers, at most 4.
 * Their requests count in a server's requests in flight, so a driver's
 * pace allows workers + verifiers of them: a verifier's GetFolderRequest
 * never waits for a worker's transfer to end (the source's figures are
 * read while the export starts, not after it).
 */
int xfer_verifier_threads(const struct job *job);

/* An account as the directory lists it, with its zimbraAccountStatus-like state. */
struct xfer_account_info {
	char *id;
	char *status;     /* "active", "maintenance", ...; NULL if the server did not say */
};

struct xfer_export_opts {
	const char *types;      /* item types, NULL/"" = everything */
	long long start_ms;     /* 0 = full export, else only items dated from it (delta, window) */
	long long end_ms;       /* 0 = no end, else only items dated before it (window) */
	const char *ids;        /* "id,id,...": only these items (folders, appointments), NULL = none */
	/* export_fd only, may be NULL: fed every byte as it is written, reset at
	 * each new attempt; the caller asks for the verdict (gz_check_finish) */
	struct gz_check *verify;
};

struct xfer_driver {
	const char *name;

	/* A new end for srv (job: timeouts, bandwidth; ctl: stop requests, may be NULL); never NULL. */
	struct xfer_end *(*end_new)(const struct server *srv, const struct job *job,
				    struct run_ctl *ctl);
	/* Free an end (NULL-safe); no conn of it may be left. */
	void (*end_free)(struct xfer_end *e);
	/* Logins sent to the server so far and the successful ones among them (any thread). */
	void (*login_counts)(struct xfer_end *e, long long *requests, long long *ok);
	/*
	 * The pacing so far (any thread); *gave_up (may be NULL; caller frees)
	 * says why the bound on throttling was passed, NULL while it was not.
	 */
	void (*pace)(struct xfer_end *e, struct xfer_pace *p, char **gave_up);

	/* A new connection for the calling thread; never NULL. */
	struct xfer_conn *(*conn_new)(struct xfer_end *e);
	/* Free a connection (NULL-safe), in the thread that made it. */
	void (*conn_free)(struct xfer_conn *c);

	/* Check that the server answers and accepts the credentials (a login, or the cached one). */
	enum zmb_rc (*login)(struct xfer_conn *c, char **err);
	/* Discover every non-system account of a domain (*out: *n accounts). */
	enum zmb_rc (*discover)(struct xfer_conn *c, const char *domain, struct xfer_account **out,
				size_t *n, char **err);
	/* The server's id of an account by name; ZMB_ENOACCOUNT if it has none. */
	enum zmb_rc (*lookup)(struct xfer_conn *c, const char *name, char **id, char **err);
	/* The size in bytes of the mailbox of account id. */
	enum zmb_rc (*size)(struct xfer_conn *c, const char *id, long long *bytes, char **err);
	/*
	 * Export an account's mailbox as one archive into fd (a regular file,
	 * from its current offset, truncated back on a retried attempt; not
	 * fsync()ed); nothing to export -> ZMB_OK with *empty.
	 */
	enum zmb_rc (*export_fd)(struct xfer_conn *c, const char *account,
				 const struct xfer_export_opts *o, int fd, long long *bytes,
				 bool *empty, char **err);
	/*
	 * Import the whole archive file fd (from offset 0) into account target
	 * (resolve NULL = server default); the items it could not import in *res
	 * (released by the caller; empty on error).
	 */
	enum zmb_rc (*import_fd)(struct xfer_conn *c, const char *target, const char *resolve,
				 int fd, long long *bytes, struct xfer_import_result *res, char **err);
	/*
	 * Export from src piped into an import on dst without a disk (both conns
	 * of this driver, in the calling thread); nothing to export -> ZMB_OK with
	 * *empty and no import.  *bytes: bytes sent to the target.
	 */
	enum zmb_rc (*stream)(struct xfer_conn *src, struct xfer_conn *dst, const char *account,
			      const char *target, const struct xfer_export_opts *o,
			      const char *resolve, long long *bytes, bool *empty,
			      struct xfer_import_result *res, char **err);
	/* Set one attribute of account id (the mail transport after an import). */
	enum zmb_rc (*set_attr)(struct xfer_conn *c, const char *id, const char *attr,
				const char *value, char **err);
	/*
	 * An account's id and status (zimbraAccountStatus: active, maintenance,
	 * locked, closed, lockout, pending) by name, in one request;
	 * ZMB_ENOACCOUNT if the server has none.
	 */
	enum zmb_rc (*account_info)(struct xfer_conn *c, const char *name,
				    struct xfer_account_info *out, char **err);
	/*
	 * The server's product ("zimbra", "carbonio", ...; caller frees) and
	 * version (may be NULL), asked once per run.
	 */
	enum zmb_rc (*product)(struct xfer_conn *c, char **product, char **version, char **err);
	/*
	 * The folders of an account's mailbox with their figures (items, bytes),
	 * as its server counts them now (verification); NULL if the driver
	 * cannot tell.
	 */
	enum zmb_rc (*folder_counts)(struct xfer_conn *c, const char *account, struct xfer_folder **out,
				     size_t *n, char **err);
	/*
	 * One page of the mailbox sizes of a domain's accounts, largest first,
	 * from `offset` (entries already received), at most `limit`: *out has
	 * *n entries, *more says a next page exists, *total is the domain's
	 * account count (-1 unknown).  A server may refuse it (then each
	 * account's size is asked with `size`); NULL if the driver has no such
	 * listing.
	 */
	enum zmb_rc (*domain_sizes)(struct xfer_conn *c, const char *domain, long long offset,
				    long long limit, struct xfer_size **out, size_t *n, bool *more,
				    long long *total, char **err);
	/*
	 * The mailbox server (zimbraMailHost) account lives on, as this end has
	 * learnt it (listing, lookup, transfer; no request); NULL when unknown
	 * or when the driver has no such notion.  Any thread; caller frees.
	 */
	char *(*home)(struct xfer_end *e, const char *account);
	/*
	 * The installation's mailbox servers (GetAllServersRequest
	 * service=mailbox: their names, the values zimbraMailHost takes),
	 * appended to *names; NULL when the driver has no such notion.
	 */
	enum zmb_rc (*mail_servers)(struct xfer_conn *c, struct strlist *names, char **err);

	/*
	 * For passes exported in pieces (src/xfer/chunk.c); NULL when the driver
	 * cannot, and then every pass is one export.
	 *
	 * tree_ids: the ids of an account's folders, search folders, mountpoints
	 * and tags, appended to *ids ("id" strings, for xfer_export_opts.ids).
	 * item_ids: one page of the ids of the account's items of `types` (e.g.
	 * "appointment,task") from offset, at most limit, appended to *ids;
	 * *more says another page follows.
	 * oldest: the date (ms) of the account's oldest item of `types`; 0 when
	 * it has none.
	 * export_max_days: the longest window (days) the server exports for the
	 * account at once (Zimbra: zimbraExportMaxDays); 0 = no limit.
	 */
	enum zmb_rc (*tree_ids)(struct xfer_conn *c, const char *account, struct strlist *ids,
				char **err);
	enum zmb_rc (*item_ids)(struct xfer_conn *c, const char *account, const char *types,
				long long offset, long long limit, struct strlist *ids, bool *more,
				char **err);
	enum zmb_rc (*oldest)(struct xfer_conn *c, const char *account, const char *types,
			      long long *ms, char **err);
	enum zmb_rc (*export_max_days)(struct xfer_conn *c, const char *account, long long *days,
				       char **err);
	/*
	 * The cutover stage (src/stages/cutover.c): an account's id and the
	 * values of attrs[0..n) by name, in one request (values[i] "" when the
	 * account has none; all new, caller frees); ZMB_ENOACCOUNT if the server
	 * has no such account.  NULL when the driver cannot.
	 */
	enum zmb_rc (*get_attrs)(struct xfer_conn *c, const char *name, const char *const *attrs,
				 size_t n, char **id, char **values, char **err);
	/* The cutover: a mailbox server's zimbraLmtpBindPort (*port 0 = not set). NULL when not. */
	enum zmb_rc (*lmtp_port)(struct xfer_conn *c, const char *server, int *port, char **err);
};

/* Zimbra / Carbonio: admin SOAP (JSON) for the directory, REST tgz for the mail. */
extern const struct xfer_driver xfer_driver_zimbra;

#endif
