/*
 * zroute.h - which mailbox server each account's REST goes to, for one side
 * of a Zimbra/Carbonio run (used by driver_zimbra.c only).
 *
 * Why (research13/facts.md section 2): an account lives on the mailbox
 * server named by its zimbraMailHost.  REST sent to another server of the
 * installation is proxied by UserServlet.proxyIfRemoteTargetAccount to the
 * home server; a 204 (an empty delta export) then turns into a 500, and a
 * proxied import with Content-Length probably fails.  So each account's
 * export and import go to its home server's admin port.
 *
 * Two tables, per side and run:
 *   homes    account name (lower case) -> zimbraMailHost, noted from the
 *            directory listing (SearchDirectory) and GetAccount answers;
 *   servers  zimbraMailHost -> where its admin port answers: the job's
 *            `servers` entry for that name when there is one (no request),
 *            else one GetServerRequest (zimbraServiceHostname,
 *            zimbraAdminPort) per name and run, single flight.  A server
 *            whose address is the configured server's is the configured
 *            server (zroutes_server gives NULL).
 * A route's `struct server` is a copy of the side's group (same admin
 * user, password, ca_file, tls_verify, scheme: the installation's admin
 * token is valid on each of its servers) with the host and port of the
 * mailbox server.  pinned_pubkey is the configured host's key: it applies
 * to another server only when its `servers` entry gives that server's own
 * pinned_pubkey; a pinned side without one for a server keeps sending that
 * server's accounts to the configured host (proxied, as before), with one
 * warning, rather than trusting a key it was not told about.
 *
 * Threads and ownership: made by the main thread with the driver's end,
 * freed after every thread using it has been joined; any thread may call
 * the rest (one mutex and a condition variable inside; no request is sent
 * holding the mutex).  Route servers live as long as the table.
 */
#ifndef ZMB_ZROUTE_H
#define ZMB_ZROUTE_H

#include "http.h"
#include "job.h"
#include "token.h"
#include "zmb.h"

struct zroutes;

/* srv (the side's group, with its `servers` entries) must outlive the table.  Never NULL. */
struct zroutes *zroutes_new(const struct server *srv);
void zroutes_free(struct zroutes *r);   /* NULL-safe */

/* Remember that account lives on mailhost (NULL/"" = nothing to note). */
void zroutes_note(struct zroutes *r, const char *account, const char *mailhost);
/* The remembered home of account, a copy (caller frees), or NULL. */
char *zroutes_home(struct zroutes *r, const char *account);

/*
 * Where mailhost's REST goes: *out = its route server, or NULL for the
 * configured server.  The first call for a name asks GetServerRequest on h
 * (the calling thread's handle for the configured server) unless the job
 * lists the name; the answer is kept for the run, a failure is not (the
 * next account asks again).
 */
enum zmb_rc zroutes_server(struct zroutes *r, const char *mailhost, struct http *h,
			   struct token_cache *tc, const struct server **out, char **err);
/*
 * Does the side have one mailbox server (GetAllServersRequest
 * service=mailbox, asked once per run on the first call, single flight)?
 * Then every account lives on the configured server: no GetAccount, no
 * GetServer.  A refused or failed listing is taken as "several".
 */
bool zroutes_single(struct zroutes *r, struct http *h, struct token_cache *tc);
/* GetServerRequests sent so far (tests). */
long long zroutes_lookups(struct zroutes *r);

#endif
