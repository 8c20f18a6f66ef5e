/*
 * soap.h - Zimbra admin SOAP (JSON via jansson) at /service/admin/soap.
 *
 * All calls run in the thread owning h.  Calls taking a token cache get the
 * token from it and, on service.AUTH_EXPIRED / AUTH_REQUIRED, invalidate it
 * and retry once with a fresh one.
 *
 * Result codes: fault account.AUTH_FAILED, or service.PERM_DENIED on
 * AuthRequest -> ZMB_EAUTH; service.AUTH_EXPIRED/AUTH_REQUIRED -> ZMB_EAUTHEXP
 * (after the one retry); account.NO_SUCH_ACCOUNT -> ZMB_ENOACCOUNT;
 * service.TEMPORARILY_UNAVAILABLE -> ZMB_ETEMP; other faults -> ZMB_EPROTO;
 * HTTP 429 or 503 -> ZMB_EBUSY; other 5xx without a fault -> ZMB_ETEMP;
 * transport errors as in http.h.  With a throttle on h (http_set_throttle)
 * a 429/503 is not returned but sent again after the server's pause
 * (http_gate): ZMB_EBUSY then means the run-wide bound on throttling
 * (migration.max_throttle_wait) was passed, its text naming the server.  Error texts keep the fault code:
 *   "source zcs1:7071: GetAccountRequest: fault account.NO_SUCH_ACCOUNT: no such account: x"
 * Responses are capped at 64 MiB.  Out-parameters are owned by the caller
 * and untouched on error; *err is set (caller frees) on every error.
 */
#ifndef ZMB_SOAP_H
#define ZMB_SOAP_H

#include "http.h"
#include "token.h"
#include "zmb.h"

/* AuthRequest with the server's admin_user/password; *token caller frees. */
enum zmb_rc soap_auth(struct http *h, char **token, long long *lifetime_ms, char **err);
/* A token cache for srv that logs in with soap_auth (see token.h). */
struct token_cache *token_cache_new(const struct server *srv, long long refresh_margin_s,
				    struct run_ctl *ctl);

struct zaccount {
	char *name;
	char *id;
	char *mailhost;   /* zimbraMailHost, may be NULL */
	char *status;     /* zimbraAccountStatus (lower case), may be NULL */
};
void zaccounts_free(struct zaccount *v, size_t n);   /* NULL-safe */

/*
 * Every non-system account of a domain (SearchDirectoryRequest, paged 500 at
 * a time).  System accounts are excluded by zimbraIsSystemAccount /
 * zimbraIsSystemResource = TRUE, never by name.  *out is a new array of *n
 * (free with zaccounts_free).  account.TOO_MANY_SEARCH_RESULTS -> ZMB_EPROTO
 * with advice.
 */
enum zmb_rc soap_list_accounts(struct http *h, struct token_cache *tc, const char *domain,
			       struct zaccount **out, size_t *n, char **err);
/* zimbraId of an account by name; missing -> ZMB_ENOACCOUNT. */
enum zmb_rc soap_get_account(struct http *h, struct token_cache *tc, const char *name,
			     char **id, char **err);
/* The same with zimbraAccountStatus (*status lower case, NULL if not given; caller frees). */
enum zmb_rc soap_get_account_status(struct http *h, struct token_cache *tc, const char *name,
				    char **id, char **status, char **err);
/* GetVersionInfoRequest: *product "zimbra" or "carbonio", *version (may be NULL); caller frees. */
enum zmb_rc soap_version_info(struct http *h, struct token_cache *tc, char **product,
			      char **version, char **err);
/*
 * The same GetAccountRequest (attrs zimbraId,zimbraMailHost): also the
 * account's home mailbox server, *mailhost (NULL when the answer has none).
 * The request is proxied by the server to the home server when needed
 * (AdminDocumentHandler), so any server of the installation answers it.
 */
enum zmb_rc soap_get_account_home(struct http *h, struct token_cache *tc, const char *name,
				  char **id, char **mailhost, char **err);
/*
 * GetServerRequest by name (a zimbraMailHost): the server's
 * zimbraServiceHostname and zimbraAdminPort (7071 when absent), i.e. where
 * its admin SOAP and REST answer.  Unknown server -> ZMB_EPROTO.
 */
enum zmb_rc soap_get_server(struct http *h, struct token_cache *tc, const char *name,
			    char **host, int *port, char **err);
/*
 * GetServerRequest by name (a zimbraMailHost), applyConfig=1: the server's
 * zimbraLmtpBindPort, *port = 0 when the answer has none (the caller falls
 * back to 7025: zm-mailbox store/src/java/com/zimbra/cs/util/Config.java:42
 * D_LMTP_BIND_PORT, as callback/MailHost.java:105-106 does).
 */
enum zmb_rc soap_get_server_lmtp_port(struct http *h, struct token_cache *tc, const char *name,
				      int *port, char **err);
/* GetAllServersRequest service=mailbox: the mailbox servers' names, appended to *names. */
enum zmb_rc soap_mailbox_servers(struct http *h, struct token_cache *tc, struct strlist *names,
				 char **err);
/* An authenticated NoOpRequest (urn:zimbraAdmin) on h's server: it answers and takes the token. */
enum zmb_rc soap_noop(struct http *h, struct token_cache *tc, char **err);
/* Mailbox size in bytes (GetMailboxRequest mbox id -> s). */
enum zmb_rc soap_mailbox_size(struct http *h, struct token_cache *tc, const char *id,
			      long long *bytes, char **err);
/* One account of a GetQuotaUsageResponse. */
struct zquota {
	char *name;        /* the account's name as the server gives it */
	char *id;          /* zimbraId */
	long long used;    /* mailbox size in bytes (the same figure as GetMailbox's s) */
	long long limit;   /* effective quota in bytes, 0 = unlimited */
};
void zquotas_free(struct zquota *v, size_t n);   /* NULL-safe */

/*
 * One page of GetQuotaUsageRequest for a domain, largest mailbox first:
 * domain, allServers=1 (every mailbox server of the installation answers
 * for its own accounts; the server honours it only with a domain),
 * sortBy=totalUsed, sortAscending=0, offset, limit (0 = all).  *out is a
 * new array of *n entries (free with zquotas_free), *more the answer's
 * "more", *total its searchTotal (-1 when absent).  A server that refuses
 * the request answers with a fault: service.PERM_DENIED (no
 * getDomainQuotaUsage right), service.UNKNOWN_DOCUMENT, account.NO_SUCH_DOMAIN
 * -> ZMB_EPROTO; service.FAILURE (with allServers one failing mailbox
 * server fails the whole request) -> ZMB_ETEMP.  Each page is computed
 * afresh by the server (no SOAP session), so pages of a changing domain
 * may overlap or miss an account.
 */
enum zmb_rc soap_quota_usage(struct http *h, struct token_cache *tc, const char *domain,
			     long long offset, long long limit, struct zquota **out, size_t *n,
			     bool *more, long long *total, char **err);
/*
 * GetAccountRequest (applyCos=0) by name for attrs[0..n): *id its zimbraId,
 * values[i] each attribute's value as stored on the account ("" when it has
 * none; the first value of a multi-valued one); all new, caller frees.
 */
enum zmb_rc soap_get_account_attrs(struct http *h, struct token_cache *tc, const char *name,
				   const char *const *attrs, size_t n, char **id, char **values,
				   char **err);
/* ModifyAccountRequest: set one attribute. */
enum zmb_rc soap_modify_account(struct http *h, struct token_cache *tc, const char *id,
				const char *attr, const char *value, char **err);

/*
 * Mail SOAP acting as `account` (admin token, context header account by
 * name; the real server proxies it to the account's home server):
 *
 * soap_tree_ids: GetFolderRequest + GetTagRequest, the ids of every folder,
 * search folder, mountpoint and tag, appended to *ids (tree order).
 *
 * soap_search_items: one SearchRequest page ("is:anywhere", types e.g.
 * "appointment,task", sorted oldest first or not at all) from offset, at
 * most limit hits: their ids appended to *ids (may be NULL), the oldest
 * date among them in *oldest_ms (0 = none; may be NULL), *more (may be
 * NULL) whether another page follows.
 *
 * soap_export_max_days: zimbraExportMaxDays in effect for the account
 * (GetAccountRequest applyCos=1; 0 = no limit).
 */
enum zmb_rc soap_tree_ids(struct http *h, struct token_cache *tc, const char *account,
			  struct strlist *ids, char **err);
enum zmb_rc soap_search_items(struct http *h, struct token_cache *tc, const char *account,
			      const char *types, bool oldest_first, long long offset, long long limit,
			      struct strlist *ids, long long *oldest_ms, bool *more, char **err);
enum zmb_rc soap_export_max_days(struct http *h, struct token_cache *tc, const char *account,
				 long long *days, char **err);
/*
 * GetFolderRequest acting as `account`: every folder below USER_ROOT with
 * its path ("Inbox", "Archive/2023"), view (NULL if none), item count n and
 * bytes s (GetFolder.java, ToXML.encodeFolder).  *out: *n entries, free
 * with zfolders_free.
 */
struct zfolder {
	char *path;
	char *view;
	long long n, s;
};
void zfolders_free(struct zfolder *v, size_t n);   /* NULL-safe */
enum zmb_rc soap_folder_counts(struct http *h, struct token_cache *tc, const char *account,
			       struct zfolder **out, size_t *n, char **err);

/*
 * Any admin request (for modules with calls of their own, e.g. zprov.c):
 * req "FooRequest", req_body the request object (taken, even on error),
 * *out the FooResponse object (a new reference, caller json_decref()s).
 * The envelope is wiped after sending (it may carry a secret).  Results
 * as above; a fault keeps its code in *err ("... fault account.NO_SUCH_COS: ...").
 */
struct json_t;
enum zmb_rc soap_request(struct http *h, struct token_cache *tc, const char *req,
			 struct json_t *req_body, struct json_t **out, char **err);
/* The same acting as `account` (context <account by="name">: an admin on a user's
 * own requests, e.g. urn:zimbraAccount GetSignaturesRequest). */
enum zmb_rc soap_request_as(struct http *h, struct token_cache *tc, const char *account,
			    const char *req, struct json_t *req_body, struct json_t **out,
			    char **err);

/*
 * For tests and fuzzing: judge one answer (HTTP status + body) to req
 * ("AuthRequest", "SearchDirectoryRequest", "GetAccountRequest",
 * "GetMailboxRequest", "GetQuotaUsageRequest", "GetFolderRequest", "SearchRequest"
 * or another) exactly as the
 * calls above do, without any I/O; results are discarded.  *err as above.
 */
enum zmb_rc soap_parse_for_fuzz(const char *req, long status, const char *body, size_t n,
				char **err);

#endif
