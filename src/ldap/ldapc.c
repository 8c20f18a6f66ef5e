/*
 * ldapc.c - libldap connection wrapper for the LDAP stages (see ldapc.h).
 */
#include "ldapc.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

struct ldc_priv_opts {
	bool starttls;
	bool ldaps;
	bool tls_verify;
	char *ca_file;
	double timeout;
};

/* The options are kept after the public struct so that ldc_bind can use them. */
struct ldc_full {
	struct ldc pub;
	struct ldc_priv_opts o;
	bool tls_done;
	bool tcp_up;          /* a TCP connection was made (set by conn_cb.lc_add) */
	ldap_conncb conn_cb;  /* lives as long as the handle (libldap keeps the pointer) */
};

/* libldap calls this once TCP is connected, before any ldaps:// TLS handshake. */
static int ldc_conn_add(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr,
			struct ldap_conncb *ctx)
{
	(void)ld;
	(void)sb;
	(void)srv;
	(void)addr;
	((struct ldc_full *)ctx->lc_arg)->tcp_up = true;
	return 0;
}

static void ldc_conn_del(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx)
{
	(void)ld;
	(void)sb;
	(void)ctx;
}

static enum zmb_rc ldc_map_rc(int lrc)
{
	switch (lrc) {
	case LDAP_SUCCESS:
		return ZMB_OK;
	case LDAP_SERVER_DOWN:
	case LDAP_CONNECT_ERROR:
	case LDAP_TIMEOUT:
	case LDAP_TIMELIMIT_EXCEEDED:
	case LDAP_BUSY:
	case LDAP_UNAVAILABLE:
		return ZMB_ECONNECT;
	case LDAP_INVALID_CREDENTIALS:
	case LDAP_INAPPROPRIATE_AUTH:
	case LDAP_INSUFFICIENT_ACCESS:
		return ZMB_EAUTH;
	case LDAP_NO_SUCH_OBJECT:
		return ZMB_ENOTFOUND;
	default:
		return ZMB_EPROTO;
	}
}

char *ldc_redact(const char *s)
{
	struct buf b = BUF_INIT;
	const char *p = s ? s : "";
	for (;;) {
		const char *hit = strstr(p, "credentials=");
		if (!hit) {
			buf_adds(&b, p);
			break;
		}
		hit += strlen("credentials=");
		buf_add(&b, p, (size_t)(hit - p));
		buf_adds(&b, "***");
		if (*hit == '"') {
			const char *q = strchr(hit + 1, '"');
			p = q ? q + 1 : hit + strlen(hit);
		} else {
			p = hit + strcspn(hit, " \t\r\n");
		}
	}
	return buf_detach(&b);
}

/* *err = "ldap server URI: step 'STEP': what: LDAP text (code): diag" */
static enum zmb_rc ldc_fail(struct ldc *c, int lrc, const char *step, const char *what,
			    char **err)
{
	char *diag = NULL;
	if (c && c->ld)
		ldap_get_option(c->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	char *red = ldc_redact(diag && *diag ? diag : "");
	if (err)
		*err = xasprintf("ldap server %s: step '%s': %s: %s (%d)%s%s",
				 c ? c->uri : "?", step, what, ldap_err2string(lrc), lrc,
				 *red ? ": " : "", red);
	free(red);
	if (diag)
		ldap_memfree(diag);
	return ldc_map_rc(lrc);
}

enum zmb_rc ldc_open(const char *uri, const struct ldc_opts *o, struct ldc **out, char **err)
{
	enum zmb_rc rc = ZMB_ECONNECT;
	struct ldc_full *f = xcalloc(1, sizeof *f);
	int v3 = LDAP_VERSION3;
	struct timeval tv;
	double t = o && o->timeout > 0 ? o->timeout : 10;

	*out = NULL;
	f->pub.uri = xstrdup(uri);
	f->o.starttls = o && o->starttls && strncmp(uri, "ldap://", 7) == 0;
	f->o.ldaps = strncmp(uri, "ldaps://", 8) == 0;
	f->o.tls_verify = !o || o->tls_verify;
	f->o.ca_file = o && o->ca_file ? xstrdup(o->ca_file) : NULL;
	f->o.timeout = t;
	int lrc = ldap_initialize(&f->pub.ld, uri);
	if (lrc != LDAP_SUCCESS) {
		*err = xasprintf("ldap server %s: step 'connect': invalid uri: %s",
				 uri, ldap_err2string(lrc));
		rc = ZMB_ECONFIG;
		goto out;
	}
	tv.tv_sec = (time_t)t;
	tv.tv_usec = (suseconds_t)((t - (double)tv.tv_sec) * 1e6);
	ldap_set_option(f->pub.ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(f->pub.ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(f->pub.ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(f->pub.ld, LDAP_OPT_TIMEOUT, &tv);
	if (f->o.starttls || f->o.ldaps) {
		int req = f->o.tls_verify ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;
		int zero = 0;
		ldap_set_option(f->pub.ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &req);
		if (f->o.ca_file)
			ldap_set_option(f->pub.ld, LDAP_OPT_X_TLS_CACERTFILE, f->o.ca_file);
		/*
		 * The handle's own TLS context carries ca_file and tls_verify.  If it cannot
		 * be made (unreadable ca_file...), libldap would silently use the process-wide
		 * default context instead: system CAs and ldap.conf's TLS_REQCERT, which may be
		 * "never".  Refuse rather than connect with settings the job did not ask for.
		 */
		if (ldap_set_option(f->pub.ld, LDAP_OPT_X_TLS_NEWCTX, &zero) != LDAP_OPT_SUCCESS) {
			char *diag = NULL;
			ldap_get_option(f->pub.ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
			const char *why = diag && *diag ? diag : "TLS context setup failed";
			if (f->o.ca_file && access(f->o.ca_file, R_OK) != 0)
				why = strerror(errno);
			char *what = f->o.ca_file ? xasprintf("cannot use ca_file '%s'", f->o.ca_file)
				   : xstrdup("cannot load the system CA certificates (ldap.conf TLS_CACERT)");
			*err = xasprintf("ldap server %s: step 'tls setup': %s: %s", uri, what, why);
			free(what);
			if (diag)
				ldap_memfree(diag);
			rc = ZMB_ETLS;
			goto out;
		}
	}
	if (f->o.ldaps) {
		f->conn_cb.lc_add = ldc_conn_add;
		f->conn_cb.lc_del = ldc_conn_del;
		f->conn_cb.lc_arg = f;
		ldap_set_option(f->pub.ld, LDAP_OPT_CONNECT_CB, &f->conn_cb);
	}
	*out = &f->pub;
	f = NULL;
	rc = ZMB_OK;
out:
	if (f) {
		if (f->pub.ld)
			ldap_unbind_ext_s(f->pub.ld, NULL, NULL);
		free(f->pub.uri);
		free(f->o.ca_file);
		free(f);
	}
	return rc;
}

enum zmb_rc ldc_bind(struct ldc *c, const char *dn, const char *pw, char **err)
{
	struct ldc_full *f = (struct ldc_full *)c;
	struct berval cred = { 0, NULL };
	int lrc;

	if (f->o.starttls && !f->tls_done) {
		lrc = ldap_start_tls_s(c->ld, NULL, NULL);
		if (lrc != LDAP_SUCCESS) {
			enum zmb_rc rc = ldc_fail(c, lrc, "starttls", "StartTLS failed", err);
			return rc == ZMB_ECONNECT ? rc : ZMB_ETLS;
		}
		f->tls_done = true;
	}
	if (f->o.ldaps && !f->tls_done) {
		/*
		 * Connect (TCP + TLS handshake) before the bind, so that a refused handshake
		 * is not reported as "server down": libldap gives -1 for both, but only after
		 * a TCP connection has been made can it be the handshake.
		 */
		f->tcp_up = false;
		lrc = ldap_connect(c->ld);
		if (lrc != LDAP_SUCCESS) {
			if (!f->tcp_up)
				return ldc_fail(c, lrc, "connect", "cannot connect", err);
			/* most often the certificate; a reset or a plain-LDAP port look the same */
			char *what = !f->o.tls_verify
				? xstrdup("TLS handshake failed (is this an ldaps port?)")
				: f->o.ca_file
				? xasprintf("TLS handshake failed: is the server's certificate signed by "
					    "the CA in ca_file '%s' and issued for this host, and is "
					    "this an ldaps port?", f->o.ca_file)
				: xstrdup("TLS handshake failed: is the server's certificate signed by "
					  "a system CA and issued for this host? (set ca_file to the CA "
					  "that signed it)");
			/* libldap's diagnostic is the TLS library's text, when it has one */
			char *diag = NULL;
			ldap_get_option(c->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
			bool useful = diag && *diag && strcmp(diag, "(unknown error code)") != 0;
			char *red = useful ? ldc_redact(diag) : NULL;
			if (err)
				*err = xasprintf("ldap server %s: step 'tls': %s%s%s", c->uri, what,
						 red ? ": " : "", red ? red : "");
			free(red);
			free(what);
			if (diag)
				ldap_memfree(diag);
			return ZMB_ETLS;
		}
		f->tls_done = true;
	}
	if (dn && pw) {
		cred.bv_val = (char *)pw;
		cred.bv_len = strlen(pw);
	}
	lrc = ldap_sasl_bind_s(c->ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	if (lrc == LDAP_SERVER_DOWN || lrc == LDAP_CONNECT_ERROR || lrc == LDAP_TIMEOUT)
		return ldc_fail(c, lrc, "connect", "cannot connect", err);
	if (lrc != LDAP_SUCCESS) {
		char *what = dn ? xasprintf("simple bind as '%s' failed", dn)
				: xstrdup("anonymous bind failed");
		enum zmb_rc rc = ldc_fail(c, lrc, "bind", what, err);
		free(what);
		return rc;
	}
	return ZMB_OK;
}

void ldc_close(struct ldc *c)
{
	if (!c)
		return;
	if (c->ld)
		ldap_unbind_ext_s(c->ld, NULL, NULL);
	free(c->uri);
	free(((struct ldc_full *)c)->o.ca_file);
	free((struct ldc_full *)c);
}

static void ldc_entry_release(struct ldc_entry *e)
{
	for (size_t i = 0; i < e->nattrs; i++) {
		free(e->attrs[i].name);
		strlist_release(&e->attrs[i].vals);
	}
	free(e->attrs);
	free(e->dn);
}

void ldc_result_release(struct ldc_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		ldc_entry_release(&r->e[i]);
	free(r->e);
	r->e = NULL;
	r->n = 0;
}

const struct strlist *ldc_vals(const struct ldc_entry *e, const char *attr)
{
	for (size_t i = 0; e && i < e->nattrs; i++)
		if (streq_ci(e->attrs[i].name, attr))
			return &e->attrs[i].vals;
	return NULL;
}

const char *ldc_val(const struct ldc_entry *e, const char *attr)
{
	const struct strlist *l = ldc_vals(e, attr);
	return l && l->n ? l->v[0] : NULL;
}

enum zmb_rc ldc_probe_attr(struct ldc *c, const char *base, const char *filter, const char *attr,
			   char **dn, bool *present, const char *step, char **err)
{
	struct ldc_full *f = (struct ldc_full *)c;
	struct timeval tv = { (time_t)f->o.timeout, 0 };
	char *attrs[] = { (char *)attr, NULL };
	LDAPMessage *msg = NULL;
	enum zmb_rc rc = ZMB_OK;

	*dn = NULL;
	*present = false;
	int lrc = ldap_search_ext_s(c->ld, base, LDAP_SCOPE_SUBTREE, filter, attrs, 1, NULL, NULL, &tv,
				    1, &msg);
	if (lrc != LDAP_SUCCESS && lrc != LDAP_SIZELIMIT_EXCEEDED) {
		char *what = xasprintf("search '%s' failed", base);
		rc = ldc_fail(c, lrc, step, what, err);
		free(what);
		goto out;
	}
	LDAPMessage *m = ldap_first_entry(c->ld, msg);
	if (!m) {
		rc = ZMB_ENOTFOUND;
		goto out;
	}
	char *d = ldap_get_dn(c->ld, m);
	*dn = xstrdup(d ? d : "");
	ldap_memfree(d);
	BerElement *ber = NULL;
	for (char *a = ldap_first_attribute(c->ld, m, &ber); a; a = ldap_next_attribute(c->ld, m, ber)) {
		*present |= streq_ci(a, attr);
		ldap_memfree(a);
	}
	if (ber)
		ber_free(ber, 0);
out:
	if (msg)
		ldap_msgfree(msg);
	return rc;
}

enum zmb_rc ldc_search(struct ldc *c, const char *base, int scope, const char *filter,
		       const char *const *attrs, struct ldc_result *res,
		       const char *step, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	LDAPMessage *msg = NULL;
	struct ldc_full *f = (struct ldc_full *)c;
	struct timeval tv = { (time_t)f->o.timeout, 0 };

	int lrc = ldap_search_ext_s(c->ld, base, scope, filter ? filter : "(objectClass=*)",
				    (char **)attrs, 0, NULL, NULL, &tv, 0, &msg);
	if (lrc != LDAP_SUCCESS) {
		char *what = xasprintf("search '%s' failed", base);
		rc = ldc_fail(c, lrc, step, what, err);
		free(what);
		goto out;
	}
	for (LDAPMessage *m = ldap_first_entry(c->ld, msg); m; m = ldap_next_entry(c->ld, m)) {
		res->e = xrealloc(res->e, (res->n + 1) * sizeof *res->e);
		struct ldc_entry *e = &res->e[res->n++];
		memset(e, 0, sizeof *e);
		char *dn = ldap_get_dn(c->ld, m);
		e->dn = xstrdup(dn ? dn : "");
		ldap_memfree(dn);
		BerElement *ber = NULL;
		for (char *a = ldap_first_attribute(c->ld, m, &ber); a;
		     a = ldap_next_attribute(c->ld, m, ber)) {
			e->attrs = xrealloc(e->attrs, (e->nattrs + 1) * sizeof *e->attrs);
			struct ldc_attr *at = &e->attrs[e->nattrs++];
			at->name = xstrdup(a);
			at->vals = (struct strlist)STRLIST_INIT;
			struct berval **bv = ldap_get_values_len(c->ld, m, a);
			for (size_t i = 0; bv && bv[i]; i++)
				strlist_add_nodup(&at->vals, xstrndup(bv[i]->bv_val, bv[i]->bv_len));
			ldap_value_free_len(bv);
			ldap_memfree(a);
		}
		if (ber)
			ber_free(ber, 0);
	}
out:
	if (msg)
		ldap_msgfree(msg);
	return rc;
}

void ldc_mods_add(struct ldc_mods *m, int op, const char *attr, const char *val)
{
	LDAPMod *mod = m->n ? m->v[m->n - 1] : NULL;
	if (!mod || mod->mod_op != op || strcmp(mod->mod_type, attr) != 0 || !val ||
	    !mod->mod_values) {
		m->v = xrealloc(m->v, (m->n + 2) * sizeof *m->v);
		mod = xcalloc(1, sizeof *mod);
		mod->mod_op = op;
		mod->mod_type = xstrdup(attr);
		m->v[m->n++] = mod;
		m->v[m->n] = NULL;
	}
	if (!val)
		return;
	size_t k = 0;
	while (mod->mod_values && mod->mod_values[k])
		k++;
	mod->mod_values = xrealloc(mod->mod_values, (k + 2) * sizeof *mod->mod_values);
	mod->mod_values[k] = xstrdup(val);
	mod->mod_values[k + 1] = NULL;
}

void ldc_mods_release(struct ldc_mods *m)
{
	for (size_t i = 0; m && i < m->n; i++) {
		for (size_t k = 0; m->v[i]->mod_values && m->v[i]->mod_values[k]; k++)
			secret_free(m->v[i]->mod_values[k]);
		free(m->v[i]->mod_values);
		free(m->v[i]->mod_type);
		free(m->v[i]);
	}
	if (m) {
		free(m->v);
		m->v = NULL;
		m->n = 0;
	}
}

enum zmb_rc ldc_modify(struct ldc *c, const char *dn, struct ldc_mods *m,
		       const char *step, char **err)
{
	int lrc = ldap_modify_ext_s(c->ld, dn, m->v, NULL, NULL);
	if (lrc != LDAP_SUCCESS) {
		char *what = xasprintf("modify '%s' failed", dn);
		enum zmb_rc rc = ldc_fail(c, lrc, step, what, err);
		free(what);
		return rc;
	}
	return ZMB_OK;
}

enum zmb_rc ldc_add(struct ldc *c, const char *dn, struct ldc_mods *m,
		    const char *step, char **err)
{
	int lrc = ldap_add_ext_s(c->ld, dn, m->v, NULL, NULL);
	if (lrc != LDAP_SUCCESS) {
		char *what = xasprintf("add '%s' failed", dn);
		enum zmb_rc rc = ldc_fail(c, lrc, step, what, err);
		free(what);
		return rc;
	}
	return ZMB_OK;
}

enum zmb_rc ldc_delete(struct ldc *c, const char *dn, const char *step, char **err)
{
	int lrc = ldap_delete_ext_s(c->ld, dn, NULL, NULL);
	if (lrc != LDAP_SUCCESS) {
		char *what = xasprintf("delete '%s' failed", dn);
		enum zmb_rc rc = ldc_fail(c, lrc, step, what, err);
		free(what);
		return rc;
	}
	return ZMB_OK;
}

char *ldc_uri_norm(const char *uri)
{
	char *s = xstrdup(uri ? uri : "");
	char *sep = strstr(s, "://");
	char *host_end = sep ? sep + 3 + strcspn(sep + 3, "/") : s + strlen(s);
	for (char *p = s; p < host_end; p++)
		*p = (char)tolower((unsigned char)*p);
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

bool ldc_uri_eq(const char *a, const char *b)
{
	char *x = ldc_uri_norm(a), *y = ldc_uri_norm(b);
	bool eq = strcmp(x, y) == 0;
	free(x);
	free(y);
	return eq;
}

bool ldc_uri_is_local(const char *uri)
{
	char *n = ldc_uri_norm(uri);
	bool local = !strncmp(n, "ldapi://", 8);
	const char *h = strstr(n, "://");
	if (!local && h) {
		h += 3;
		local = !strncmp(h, "127.", 4) || !strncmp(h, "localhost", 9) ||
			!strncmp(h, "[::1]", 5);
	}
	free(n);
	return local;
}
