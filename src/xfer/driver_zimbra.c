/*
 * driver_zimbra.c - the Zimbra/Carbonio driver (driver.h): a thin table over
 * src/zimbra/: soap.c for the directory and sizes, rest.c for the archives,
 * token.c for the one login state per server that every thread shares,
 * throttle.c for the one pace per server (rate cap, requests in flight,
 * pauses after HTTP 429/503) that every request of every thread passes.
 * Every member sends exactly the request(s) of the call it wraps.
 */
#include "driver.h"
#include "http.h"
#include "rest.h"
#include "soap.h"
#include "throttle.h"
#include "token.h"

#include <stdlib.h>
#include <string.h>

struct zend {
	struct xfer_end base;        /* first: a struct xfer_end * is a struct zend * */
	const struct job *job;
	struct run_ctl *ctl;
	struct token_cache *tc;
	struct throttle *thr;        /* shared by every conn of this end (http_set_throttle) */
};

struct zconn {
	struct xfer_conn base;       /* first */
	struct http *h;
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
		.ceiling = job->mig.threads > 0 ? job->mig.threads : 1,
		.max_wait = (double)job->mig.max_throttle_wait,
	};
	z->thr = throttle_new(&tcf, ctl);
	free(label);
	return &z->base;
}

static void z_end_free(struct xfer_end *e)
{
	if (!e)
		return;
	token_cache_free(zend_of(e)->tc);
	throttle_free(zend_of(e)->thr);
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
	http_free(zconn_of(c)->h);
	free(c);
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
		v[i].name = za[i].name;
		v[i].id = za[i].id;
		v[i].status = za[i].status;
		za[i].name = za[i].id = za[i].status = NULL;
	}
	zaccounts_free(za, nz);
	*out = v;
	*n = nz;
	return ZMB_OK;
}

static enum zmb_rc z_lookup(struct xfer_conn *c, const char *name, char **id, char **err)
{
	return soap_get_account(zconn_of(c)->h, tc_of(c), name, id, err);
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

static void rest_opts(const struct xfer_export_opts *o, struct rest_export_opts *r)
{
	r->types = o->types;
	r->start_ms = o->start_ms;
	r->verify = o->verify;
}

static enum zmb_rc z_export_fd(struct xfer_conn *c, const char *account, const struct xfer_export_opts *o,
			       int fd, long long *bytes, bool *empty, char **err)
{
	struct rest_export_opts r;
	rest_opts(o, &r);
	return rest_export_file(zconn_of(c)->h, tc_of(c), account, &r, fd, bytes, empty, err);
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
	enum zmb_rc rc = rest_import_file(zconn_of(c)->h, tc_of(c), target, resolve, fd, bytes, &ans, err);
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
	enum zmb_rc rc = rest_stream(zconn_of(src)->h, tc_of(src), zconn_of(dst)->h, tc_of(dst), account,
				     target, &r, resolve, bytes, empty, &ans, err);
	take_warnings(&ans, res);
	import_answer_release(&ans);
	return rc;
}

static enum zmb_rc z_set_attr(struct xfer_conn *c, const char *id, const char *attr, const char *value,
			      char **err)
{
	return soap_modify_account(zconn_of(c)->h, tc_of(c), id, attr, value, err);
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
	.folder_counts = NULL,
	.domain_sizes = z_domain_sizes,
};
