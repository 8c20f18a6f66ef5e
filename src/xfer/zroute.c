/*
 * zroute.c - account homes and mailbox server addresses of one side (zroute.h).
 */
#include "zroute.h"
#include "log.h"
#include "soap.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum rstate { R_NEW, R_BUSY, R_DONE };

struct route {
	char *name;                /* zimbraMailHost as first asked */
	enum rstate st;
	bool self;                 /* the configured server itself */
	struct server srv;         /* copy of the side's group; host/pinned_pubkey owned */
	struct route *next;
};

struct home {
	char *account;             /* lower case; NULL = free slot */
	char *host;
};

struct zroutes {
	const struct server *side;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct home *homes;        /* open addressing, power-of-two size */
	size_t nhomes, cap;
	struct route *routes;
	long long lookups;
	bool pin_warned;
	int shape;                 /* enum shape: how many mailbox servers the side has */
};

/* What GetAllServersRequest said, asked once per side and run (single flight). */
enum shape { SHAPE_UNKNOWN, SHAPE_ASKING, SHAPE_SINGLE, SHAPE_MULTI };

static char *lower(const char *s)
{
	char *l = xstrdup(s);
	for (char *p = l; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return l;
}

static size_t hash(const char *s)
{
	size_t h = 1469598103934665603u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

struct zroutes *zroutes_new(const struct server *srv)
{
	struct zroutes *r = xcalloc(1, sizeof *r);
	r->side = srv;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	return r;
}

void zroutes_free(struct zroutes *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->cap; i++) {
		free(r->homes[i].account);
		free(r->homes[i].host);
	}
	free(r->homes);
	while (r->routes) {
		struct route *n = r->routes->next;
		free(r->routes->name);
		free(r->routes->srv.host);
		free(r->routes->srv.pinned_pubkey);
		free(r->routes);
		r->routes = n;
	}
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* The slot of key (lower case), free or holding it.  Under mu; cap > 0. */
static struct home *slot(struct home *v, size_t cap, const char *key)
{
	size_t i = hash(key) & (cap - 1);
	while (v[i].account && strcmp(v[i].account, key))
		i = (i + 1) & (cap - 1);
	return &v[i];
}

void zroutes_note(struct zroutes *r, const char *account, const char *mailhost)
{
	if (!account || !mailhost || !*mailhost)
		return;
	char *key = lower(account);
	pthread_mutex_lock(&r->mu);
	if ((r->nhomes + 1) * 2 > r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 64;
		struct home *nv = xcalloc(ncap, sizeof *nv);
		for (size_t i = 0; i < r->cap; i++)
			if (r->homes[i].account)
				*slot(nv, ncap, r->homes[i].account) = r->homes[i];
		free(r->homes);
		r->homes = nv;
		r->cap = ncap;
	}
	struct home *e = slot(r->homes, r->cap, key);
	if (e->account) {
		free(key);
		free(e->host);
	} else {
		e->account = key;
		r->nhomes++;
	}
	e->host = xstrdup(mailhost);
	pthread_mutex_unlock(&r->mu);
}

char *zroutes_home(struct zroutes *r, const char *account)
{
	char *key = lower(account);
	char *host = NULL;
	pthread_mutex_lock(&r->mu);
	if (r->cap) {
		struct home *e = slot(r->homes, r->cap, key);
		host = e->account ? xstrdup(e->host) : NULL;
	}
	pthread_mutex_unlock(&r->mu);
	free(key);
	return host;
}

static const struct server_route *override_of(const struct server *side, const char *name)
{
	for (size_t i = 0; i < side->nroutes; i++)
		if (streq_ci(side->routes[i].name, name))
			return &side->routes[i];
	return NULL;
}

/* Fill rt (state R_BUSY, mutex not held) from the job's entry or a GetServerRequest. */
static enum zmb_rc resolve(struct zroutes *r, struct route *rt, struct http *h,
			   struct token_cache *tc, char **err)
{
	const struct server *side = r->side;
	const struct server_route *o = override_of(side, rt->name);
	char *host = NULL;
	int port = 0;
	if (o) {
		host = xstrdup(o->host);
		port = o->port;
	} else {
		pthread_mutex_lock(&r->mu);
		r->lookups++;
		pthread_mutex_unlock(&r->mu);
		enum zmb_rc rc = soap_get_server(h, tc, rt->name, &host, &port, err);
		if (rc)
			return rc;
	}
	int side_port = side->port > 0 ? side->port : 7071;
	rt->srv = *side;
	rt->srv.routes = NULL;
	rt->srv.nroutes = 0;
	rt->srv.host = host;
	rt->srv.port = port;
	rt->srv.pinned_pubkey = NULL;
	rt->self = port == side_port && streq_ci(host, side->host);
	if (!rt->self && side->pinned_pubkey) {
		if (o && o->pinned_pubkey) {
			rt->srv.pinned_pubkey = xstrdup(o->pinned_pubkey);
		} else {
			/* the pin is the configured host's: do not send the token elsewhere */
			rt->self = true;
			pthread_mutex_lock(&r->mu);
			bool warn = !r->pin_warned;
			r->pin_warned = true;
			pthread_mutex_unlock(&r->mu);
			if (warn)
				log_warn(side->role, "%s.pinned_pubkey is set but %s.servers gives no "
					 "pinned_pubkey for mailbox server %s: its accounts go through %s "
					 "(proxied by it) instead of straight to %s:%d", side->role,
					 side->role, rt->name, side->host, host, port);
		}
	}
	return ZMB_OK;
}

enum zmb_rc zroutes_server(struct zroutes *r, const char *mailhost, struct http *h,
			   struct token_cache *tc, const struct server **out, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	pthread_mutex_lock(&r->mu);
	struct route *rt = r->routes;
	while (rt && !streq_ci(rt->name, mailhost))
		rt = rt->next;
	if (!rt) {
		rt = xcalloc(1, sizeof *rt);
		rt->name = xstrdup(mailhost);
		rt->next = r->routes;
		r->routes = rt;
	}
	while (rt->st == R_BUSY)
		pthread_cond_wait(&r->cv, &r->mu);
	if (rt->st == R_NEW) {
		rt->st = R_BUSY;
		pthread_mutex_unlock(&r->mu);
		rc = resolve(r, rt, h, tc, err);
		pthread_mutex_lock(&r->mu);
		rt->st = rc ? R_NEW : R_DONE;
		pthread_cond_broadcast(&r->cv);
	}
	if (!rc)
		*out = rt->self ? NULL : &rt->srv;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

long long zroutes_lookups(struct zroutes *r)
{
	pthread_mutex_lock(&r->mu);
	long long n = r->lookups;
	pthread_mutex_unlock(&r->mu);
	return n;
}

bool zroutes_single(struct zroutes *r, struct http *h, struct token_cache *tc)
{
	pthread_mutex_lock(&r->mu);
	while (r->shape == SHAPE_ASKING)
		pthread_cond_wait(&r->cv, &r->mu);
	if (r->shape != SHAPE_UNKNOWN) {
		bool single = r->shape == SHAPE_SINGLE;
		pthread_mutex_unlock(&r->mu);
		return single;
	}
	r->shape = SHAPE_ASKING;
	pthread_mutex_unlock(&r->mu);
	struct strlist names = STRLIST_INIT;
	char *err = NULL;
	enum zmb_rc rc = soap_mailbox_servers(h, tc, &names, &err);
	/* a refused or failed listing routes per account, as for several servers */
	int shape = !rc && names.n == 1 ? SHAPE_SINGLE : SHAPE_MULTI;
	if (rc)
		zlog(ZLOG_INFO, r->side->role, "GetAllServersRequest: %s; routing each account to "
		     "its zimbraMailHost", err ? err : zmb_rc_str(rc));
	free(err);
	strlist_release(&names);
	pthread_mutex_lock(&r->mu);
	r->shape = shape;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return shape == SHAPE_SINGLE;
}
