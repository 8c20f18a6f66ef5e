/*
 * token.c - per-server admin token cache with single-flight refresh.
 */
#include "token.h"
#include "log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct token_cache {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const struct server *srv;
	long long margin_s;
	struct run_ctl *ctl;
	token_login_fn login;

	/* all below under mu */
	char *token;              /* current token or NULL */
	double obtained;          /* mono time the token was obtained */
	double valid_until;       /* mono time after which we log in again */
	bool refreshing;          /* one thread is logging in */
	unsigned long gen;        /* bumped after every login attempt */
	enum zmb_rc last_rc;      /* result of the last login attempt */
	char *last_err;
	long long auth_count;
	long long logins_ok;
};

struct token_cache *token_cache_new_login(const struct server *srv, long long refresh_margin_s,
					  struct run_ctl *ctl, token_login_fn login)
{
	struct token_cache *tc = xcalloc(1, sizeof(*tc));
	pthread_mutex_init(&tc->mu, NULL);
	pthread_cond_init(&tc->cv, NULL);
	tc->srv = srv;
	tc->margin_s = refresh_margin_s < 0 ? 0 : refresh_margin_s;
	tc->ctl = ctl;
	tc->login = login;
	if (srv->password)
		zlog_add_secret(srv->password);
	return tc;
}

void token_cache_free(struct token_cache *tc)
{
	if (!tc)
		return;
	secret_free(tc->token);
	free(tc->last_err);
	pthread_cond_destroy(&tc->cv);
	pthread_mutex_destroy(&tc->mu);
	free(tc);
}

/* Called with mu held. */
static bool token_fresh(const struct token_cache *tc, double now)
{
	return tc->token && now < tc->valid_until;
}

enum zmb_rc token_get(struct token_cache *tc, struct http *h, char **token, char **err)
{
	enum zmb_rc rc = ZMB_OK;

	pthread_mutex_lock(&tc->mu);
	for (;;) {
		if (token_fresh(tc, mono_now())) {
			*token = xstrdup(tc->token);
			goto out;
		}
		if (!tc->refreshing)
			break;
		/* someone else is logging in: wait for that attempt and share its result */
		unsigned long gen = tc->gen;
		while (tc->refreshing && tc->gen == gen)
			pthread_cond_wait(&tc->cv, &tc->mu);
		if (tc->last_rc && !token_fresh(tc, mono_now())) {
			rc = tc->last_rc;
			*err = xstrdup(tc->last_err);
			goto out;
		}
	}
	tc->refreshing = true;
	pthread_mutex_unlock(&tc->mu);

	char *tok = NULL;
	char *e = NULL;
	long long life_ms = 0;
	double t0 = mono_now();
	rc = tc->login(h, &tok, &life_ms, &e);

	pthread_mutex_lock(&tc->mu);
	tc->auth_count++;
	tc->gen++;
	tc->refreshing = false;
	free(tc->last_err);
	tc->last_err = NULL;
	tc->last_rc = rc;
	if (rc == ZMB_OK) {
		zlog_add_secret(tok);
		double life = (double)life_ms / 1000.0;
		double margin = (double)tc->margin_s;
		if (margin > life / 3.0)
			margin = life / 3.0;
		secret_free(tc->token);
		tc->token = tok;
		tc->obtained = t0;
		tc->valid_until = t0 + life - margin;
		if (tc->logins_ok++ > 0 && tc->ctl)
			atomic_fetch_add(&tc->ctl->token_refreshes, 1);
		*token = xstrdup(tok);
	} else {
		tc->last_err = xstrdup(e);
		*err = e;
		e = NULL;
	}
	pthread_cond_broadcast(&tc->cv);
	free(e);
out:
	pthread_mutex_unlock(&tc->mu);
	return rc;
}

void token_invalidate(struct token_cache *tc, const char *failed_token)
{
	pthread_mutex_lock(&tc->mu);
	if (tc->token && failed_token && strcmp(tc->token, failed_token) == 0) {
		secret_free(tc->token);
		tc->token = NULL;
	}
	pthread_mutex_unlock(&tc->mu);
}

long long token_auth_count(struct token_cache *tc)
{
	pthread_mutex_lock(&tc->mu);
	long long n = tc->auth_count;
	pthread_mutex_unlock(&tc->mu);
	return n;
}

void token_counts(struct token_cache *tc, long long *requests, long long *ok)
{
	pthread_mutex_lock(&tc->mu);
	*requests = tc->auth_count;
	*ok = tc->logins_ok;
	pthread_mutex_unlock(&tc->mu);
}
