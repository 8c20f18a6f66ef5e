/*
 * token.h - per-server admin token cache, shared by every worker thread.
 *
 * One `struct token_cache` per server, created by the main thread before the
 * workers start and freed after they are joined.  Any thread may call
 * token_get / token_invalidate / token_auth_count (mutex + condvar inside).
 *
 * Refresh rule: a token obtained at time t with lifetime L (ms, from
 * AuthResponse) is used until t + L - m, where m = min(refresh_margin, L/3),
 * then the next token_get logs in again.  Only one thread logs in at a time
 * (single flight); the others wait on the condvar and get the new token, or
 * the same error if that login failed.  Each token and the password are
 * registered with zlog_add_secret.  Every re-login after the first adds one
 * to ctl->token_refreshes (ctl may be NULL).
 *
 * Retry rule (in soap.c / rest.c): on service.AUTH_EXPIRED/AUTH_REQUIRED or
 * HTTP 401 the caller calls token_invalidate(tc, the_failed_token) and
 * retries the step once with a fresh token_get.
 */
#ifndef ZMB_TOKEN_H
#define ZMB_TOKEN_H

#include "http.h"
#include "job.h"
#include "runctl.h"
#include "zmb.h"

struct token_cache;

/*
 * How the cache logs in: one request on h (the calling thread's handle for
 * the server) that yields a token and its lifetime in ms.  soap_auth() is the
 * Zimbra one; token_cache_new() (soap.h) passes it.  The token is the cache's.
 */
typedef enum zmb_rc (*token_login_fn)(struct http *h, char **token, long long *lifetime_ms,
				      char **err);

/* srv must outlive the cache; refresh_margin_s < 0 -> 0. Never NULL. */
struct token_cache *token_cache_new_login(const struct server *srv, long long refresh_margin_s,
					  struct run_ctl *ctl, token_login_fn login);
void token_cache_free(struct token_cache *tc);   /* NULL-safe; no thread may use it */

/*
 * A valid token (a copy; the caller frees it, preferably with secret_free).
 * h is the calling thread's handle for srv, used when a login is needed.
 * Errors: ZMB_EAUTH (bad password), ZMB_ETLS, ZMB_ECONNECT, ... with *err.
 */
enum zmb_rc token_get(struct token_cache *tc, struct http *h, char **token, char **err);
/* Forget the current token, but only if it is still `failed_token`. */
void token_invalidate(struct token_cache *tc, const char *failed_token);
/* Number of AuthRequests sent so far (successful or not). */
long long token_auth_count(struct token_cache *tc);
/* AuthRequests sent and the successful ones among them (any thread). */
void token_counts(struct token_cache *tc, long long *requests, long long *ok);

#endif
