/*
 * driver_zimbra.c - the Zimbra/Carbonio driver (driver.h): a thin table over
 * src/zimbra/: soap.c for the directory and sizes, rest.c for the archives,
 * token.c for the one login state per server that every thread shares,
 * throttle.c for the one pace per server (rate cap, requests in flight,
 * pauses after HTTP 429/503) that every request of every thread passes.
 * Every member sends exactly the request(s) of the call it wraps, except
 * that an account's export and import go to its home mailbox server
 * (zroute.h): a GetAccountRequest for an account whose zimbraMailHost no
 * listing gave, and one GetServerRequest per mailbox server and run.
 *
 * Pacing with several mailbox servers: one throttle per side, shared by the
 * handles of every mailbox server of that side.  Jetty's DoSFilter counts
 * per server, so this is conservative (the side's cap holds for all its
 * servers together) and the state DB's per-side pace rows stay as they are.
 */
#include "driver.h"
#include "http.h"
#include "rest.h"
#include "soap.h"
#include "throttle.h"
#include "token.h"
#include "zroute.h"

#include <stdlib.h>
#include <string.h>

struct zend {
	struct xfer_end base;        /* first: a struct xfer_end * is a struct zend * */
	const struct job *job;
	struct run_ctl *ctl;
	struct token_cache *tc;
	struct throttle *thr;        /* shared by every conn of this end (http_set_throttle) */
	struct zroutes *routes;      /* account homes, mailbox server addresses */
};

/* A connection's handle for one mailbox server other than the configured one. */
struct zhop {
	const struct server *srv;    /* the route's (zroute.h), outlives the conn */
	struct http *h;
};

struct zconn {
	struct xfer_conn base;       /* first */
	struct http *h;              /* the configured server */
	struct zhop *hops;           /* made on first use, this thread only */
	size_t nhops;
};

static struct zend *zend_of(struct xfer_end *e)
{
	return (struct zend *)e;
}

static struct zconn *zconn_of(struct xfer_conn *c)
{
	return (struct zconn *)c;
}

static struct token_cache *tc_of(struct xfer_conn *c)
{
	return zend_of(c->end)->tc;
}

static struct xfer_end *z_end_new(const struct server *srv, const struct job *job, struct run_ctl *ctl)
{
	struct zend *z = xcalloc(1, sizeof *z);
	z->base.drv = &xfer_driver_zimbra;
	z->base.srv = srv;
	z->job = job;
	z->ctl = ctl;
	z->tc = token_cache_new(srv, job->token_refresh_margin, ctl);
	char *label = http_server_label(srv);
	struct throttle_conf tcf = {
		.label = label, .role = srv->role, .max_rps = srv->max_rps,
		/* the workers' requests and the verifiers' (xfer_verifier_threads) */
		.ceiling = (job->mig.threads > 0 ? job->mig.threads : 1) + xfer_verifier_threads(job),
		.max_wait = (double)job->mig.max_throttle_wait,
	};
	z->thr = throttle_new(&tcf, ctl);
	z->routes = zroutes_new(srv);
	free(label);
	return &z->base;
}

static void z_end_free(struct xfer_end *e)
{
	if (!e)
		return;
	token_cache_free(zend_of(e)->tc);
	throttle_free(zend_of(e)->thr);
	zroutes_free(zend_of(e)->routes);
	free(e);
}

static void z_login_counts(struct xfer_end *e, long long *requests, long long *ok)
{
	token_counts(zend_of(e)->tc, requests, ok);
}

static void z_pace(struct xfer_end *e, struct xfer_pace *p, char **gave_up)
{
	struct throttle_stats ts;
	throttle_stats(zend_of(e)->thr, &ts);
	p->requests = ts.requests;
	p->throttled = ts.throttled;
	p->wait_seconds = ts.wait_seconds;
	p->rate_limit = ts.rate_limit;
	p->concurrency_limit = ts.concurrency_limit;
	if (gave_up)
		*gave_up = throttle_exhausted(zend_of(e)->thr);
}

static struct xfer_conn *z_conn_new(struct xfer_end *e)
{
	struct zconn *c = xcalloc(1, sizeof *c);
	c->base.end = e;
	c->h = http_new(e->srv, zend_of(e)->job, zend_of(e)->ctl);
	http_set_throttle(c->h, zend_of(e)->thr);
	return &c->base;
}

static void z_conn_free(struct xfer_conn *c)
{
	if (!c)
		return;
	struct zconn *z = zconn_of(c);
	for (size_t i = 0; i < z->nhops; i++)
		http_free(z->hops[i].h);
	free(z->hops);
	http_free(z->h);
	free(c);
}

/*
 * The handle for account's REST: its home mailbox server's (zroute.h), or
 * the configured server's when that is its home or its home is unknown.  A
 * home no listing gave is asked with GetAccountRequest (missing account ->
 * ZMB_ENOACCOUNT, as the REST request would have answered).
 */
static enum zmb_rc route(struct xfer_conn *c, const char *account, struct http **out, char **err)
{
	struct zconn *z = zconn_of(c);
	struct zend *e = zend_of(c->end);
	char *home = NULL;
	enum zmb_rc rc = ZMB_OK;
	*out = z->h;
	if (zroutes_single(e->routes, z->h, e->tc))
		return ZMB_OK;   /* one mailbox server: every account is at home there */
	home = zroutes_home(e->routes, account);
	if (!home) {
		char *id = NULL;
		rc = soap_get_account_home(z->h, e->tc, account, &id, &home, err);
		free(id);
		if (rc)
			goto out;
		zroutes_note(e->routes, account, home);
	}
	const struct server *srv = NULL;
	if (home && (rc = zroutes_server(e->routes, home, z->h, e->tc, &srv, err)))
		goto out;
	*out = z->h;
	if (!srv)
		goto out;
	for (size_t i = 0; i < z->nhops; i++)
		if (z->hops[i].srv == srv) {
			*out = z->hops[i].h;
			goto out;
		}
	z->hops = xrealloc(z->hops, (z->nhops + 1) * sizeof *z->hops);
	struct zhop *hop = &z->hops[z->nhops++];
	hop->srv = srv;
	hop->h = http_new(srv, e->job, e->ctl);
	http_set_throttle(hop->h, e->thr);
	*out = hop->h;
out:
	free(home);
	return rc;
}

static enum zmb_rc z_login(struct xfer_conn *c, char **err)
{
	char *tok = NULL;
	enum zmb_rc rc = token_get(tc_of(c), zconn_of(c)->h, &tok, err);
	secret_free(tok);
	return rc;
}

static enum zmb_rc z_discover(struct xfer_conn *c, const char *domain, struct xfer_account **out,
			      size_t *n, char **err)
{
	struct zaccount *za = NULL;
	size_t nz = 0;
	enum zmb_rc rc = soap_list_accounts(zconn_of(c)->h, tc_of(c), domain, &za, &nz, err);
	if (rc)
		return rc;
	struct xfer_account *v = xcalloc(nz ? nz : 1, sizeof *v);
	for (size_t i = 0; i < nz; i++) {
		zroutes_note(zend_of(c->end)->routes, za[i].name, za[i].mailhost);
		v[i].name = za[i].name;
		v[i].id = za[i].id;
		v[i].status = za[i].status;
		v[i].mailhost = za[i].mailhost;
		za[i].name = za[i].id = za[i].status = za[i].mailhost = NULL;
	}
	zaccounts_free(za, nz);
	*out = v;
	*n = nz;
	return ZMB_OK;
}

static enum zmb_rc z_lookup(struct xfer_conn *c, const char *name, char **id, char **err)
{
	char *home = NULL;
	enum zmb_rc rc = soap_get_account_home(zconn_of(c)->h, tc_of(c), name, id, &home, err);
	if (!rc)
		zroutes_note(zend_of(c->end)->routes, name, home);
	free(home);
	return rc;
}

static enum zmb_rc z_account_info(struct xfer_conn *c, const char *name, struct xfer_account_info *out,
				   char **err)
{
	memset(out, 0, sizeof *out);
	return soap_get_account_status(zconn_of(c)->h, tc_of(c), name, &out->id, &out->status, err);
}

static enum zmb_rc z_product(struct xfer_conn *c, char **product, char **version, char **err)
{
	return soap_version_info(zconn_of(c)->h, tc_of(c), product, version, err);
}

static enum zmb_rc z_size(struct xfer_conn *c, const char *id, long long *bytes, char **err)
{
	return soap_mailbox_size(zconn_of(c)->h, tc_of(c), id, bytes, err);
}

/* GetQuotaUsage for the domain, across every mailbox server (soap_quota_usage). */
static enum zmb_rc z_domain_sizes(struct xfer_conn *c, const char *domain, long long offset,
				  long long limit, struct xfer_size **out, size_t *n, bool *more,
				  long long *total, char **err)
{
	struct zquota *q = NULL;
	size_t nq = 0;
	enum zmb_rc rc = soap_quota_usage(zconn_of(c)->h, tc_of(c), domain, offset, limit, &q, &nq,
					  more, total, err);
	if (rc)
		return rc;
	struct xfer_size *v = xcalloc(nq ? nq : 1, sizeof *v);
	for (size_t i = 0; i < nq; i++) {
		v[i].name = q[i].name;
		v[i].id = q[i].id;
		v[i].bytes = q[i].used;
		q[i].name = q[i].id = NULL;
	}
	zquotas_free(q, nq);
	*out = v;
	*n = nq;
	return ZMB_OK;
}

static char *z_home(struct xfer_end *e, const char *account)
{
	return zroutes_home(zend_of(e)->routes, account);
}

static enum zmb_rc z_mail_servers(struct xfer_conn *c, struct strlist *names, char **err)
{
	return soap_mailbox_servers(zconn_of(c)->h, tc_of(c), names, err);
}

static void rest_opts(const struct xfer_export_opts *o, struct rest_export_opts *r)
{
	r->types = o->types;
	r->start_ms = o->start_ms;
	r->end_ms = o->end_ms;
	r->ids = o->ids;
	r->verify = o->verify;
}

static enum zmb_rc z_export_fd(struct xfer_conn *c, const char *account, const struct xfer_export_opts *o,
			       int fd, long long *bytes, bool *empty, char **err)
{
	struct rest_export_opts r;
	rest_opts(o, &r);
	struct http *h = NULL;
	enum zmb_rc rc = route(c, account, &h, err);
	if (rc)
		return rc;
	return rest_export_file(h, tc_of(c), account, &r, fd, bytes, empty, err);
}

/* The import's per-item warnings as "<item>: <code>: <reason>" lines. */
static void take_warnings(struct import_answer *ans, struct xfer_import_result *res)
{
	memset(res, 0, sizeof *res);
	if (ans->verdict != IMPORT_WARN)
		return;
	res->total = ans->total;
	res->n = ans->n < XFER_MAX_WARNINGS ? ans->n : XFER_MAX_WARNINGS;
	res->warnings = xcalloc(res->n ? res->n : 1, sizeof *res->warnings);
	for (size_t i = 0; i < res->n; i++) {
		const struct import_fault *f = &ans->faults[i];
		res->warnings[i] = xasprintf("%s: %s: %s", f->item ? f->item : "(no item)", f->code,
					     f->reason);
	}
}

static enum zmb_rc z_import_fd(struct xfer_conn *c, const char *target, const char *resolve, int fd,
			       long long *bytes, struct xfer_import_result *res, char **err)
{
	struct import_answer ans;
	struct http *h = NULL;
	memset(res, 0, sizeof *res);
	enum zmb_rc rc = route(c, target, &h, err);
	if (rc)
		return rc;
	rc = rest_import_file(h, tc_of(c), target, resolve, fd, bytes, &ans, err);
	take_warnings(&ans, res);
	import_answer_release(&ans);
	return rc;
}

static enum zmb_rc z_stream(struct xfer_conn *src, struct xfer_conn *dst, const char *account,
			    const char *target, const struct xfer_export_opts *o, const char *resolve,
			    long long *bytes, bool *empty, struct xfer_import_result *res, char **err)
{
	struct rest_export_opts r;
	struct import_answer ans;
	rest_opts(o, &r);
	r.verify = NULL;   /* the target parses the gzip as it imports */
	struct http *sh = NULL, *dh = NULL;
	memset(res, 0, sizeof *res);
	enum zmb_rc rc = route(src, account, &sh, err);
	if (!rc)
		rc = route(dst, target, &dh, err);
	if (rc)
		return rc;
	rc = rest_stream(sh, tc_of(src), dh, tc_of(dst), account, target, &r, resolve, bytes, empty,
			 &ans, err);
	take_warnings(&ans, res);
	import_answer_release(&ans);
	return rc;
}

static enum zmb_rc z_set_attr(struct xfer_conn *c, const char *id, const char *attr, const char *value,
			      char **err)
{
	return soap_modify_account(zconn_of(c)->h, tc_of(c), id, attr, value, err);
}

/*
 * Mail SOAP acting as the account (soap.h), sent to its home mailbox
 * server like its REST (the admin port serves mail SOAP too: zm-mailbox
 * store/conf/web.xml, AdminServlet engine.handler.2 = MailService).
 */
static enum zmb_rc z_tree_ids(struct xfer_conn *c, const char *account, struct strlist *ids,
			      char **err)
{
	struct http *h = NULL;
	enum zmb_rc rc = route(c, account, &h, err);
	return rc ? rc : soap_tree_ids(h, tc_of(c), account, ids, err);
}

static enum zmb_rc z_item_ids(struct xfer_conn *c, const char *account, const char *types,
			      long long offset, long long limit, struct strlist *ids, bool *more,
			      char **err)
{
	struct http *h = NULL;
	enum zmb_rc rc = route(c, account, &h, err);
	return rc ? rc : soap_search_items(h, tc_of(c), account, types, false, offset, limit, ids,
					   NULL, more, err);
}

static enum zmb_rc z_oldest(struct xfer_conn *c, const char *account, const char *types,
			    long long *ms, char **err)
{
	struct http *h = NULL;
	enum zmb_rc rc = route(c, account, &h, err);
	return rc ? rc : soap_search_items(h, tc_of(c), account, types, true, 0, 1, NULL, ms, NULL,
					   err);
}

static enum zmb_rc z_folder_counts(struct xfer_conn *c, const char *account,
				   struct xfer_folder **out, size_t *n, char **err)
{
	struct http *h = NULL;
	struct zfolder *z = NULL;
	size_t nz = 0;
	*out = NULL;
	*n = 0;
	enum zmb_rc rc = route(c, account, &h, err);
	if (!rc)
		rc = soap_folder_counts(h, tc_of(c), account, &z, &nz, err);
	if (rc)
		return rc;
	/* same layout, owned strings moved over */
	struct xfer_folder *v = xcalloc(nz ? nz : 1, sizeof *v);
	for (size_t i = 0; i < nz; i++) {
		v[i].path = z[i].path;
		v[i].view = z[i].view;
		v[i].n = z[i].n;
		v[i].s = z[i].s;
	}
	free(z);
	*out = v;
	*n = nz;
	return ZMB_OK;
}

static enum zmb_rc z_export_max_days(struct xfer_conn *c, const char *account, long long *days,
				     char **err)
{
	return soap_export_max_days(zconn_of(c)->h, tc_of(c), account, days, err);
}

static enum zmb_rc z_get_attrs(struct xfer_conn *c, const char *name, const char *const *attrs,
			       size_t n, char **id, char **values, char **err)
{
	return soap_get_account_attrs(zconn_of(c)->h, tc_of(c), name, attrs, n, id, values, err);
}

static enum zmb_rc z_lmtp_port(struct xfer_conn *c, const char *server, int *port, char **err)
{
	return soap_get_server_lmtp_port(zconn_of(c)->h, tc_of(c), server, port, err);
}

const struct xfer_driver xfer_driver_zimbra = {
	.name = "zimbra",
	.end_new = z_end_new,
	.end_free = z_end_free,
	.login_counts = z_login_counts,
	.pace = z_pace,
	.conn_new = z_conn_new,
	.conn_free = z_conn_free,
	.login = z_login,
	.discover = z_discover,
	.lookup = z_lookup,
	.size = z_size,
	.export_fd = z_export_fd,
	.import_fd = z_import_fd,
	.stream = z_stream,
	.set_attr = z_set_attr,
	.account_info = z_account_info,
	.product = z_product,
	.folder_counts = z_folder_counts,
	.domain_sizes = z_domain_sizes,
	.home = z_home,
	.mail_servers = z_mail_servers,
	.tree_ids = z_tree_ids,
	.item_ids = z_item_ids,
	.oldest = z_oldest,
	.export_max_days = z_export_max_days,
	.get_attrs = z_get_attrs,
	.lmtp_port = z_lmtp_port,
};
