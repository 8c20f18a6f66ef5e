/*
 * ldap_common.c - key validation, targets, connecting and secrets for the
 * LDAP stages (contracts in ldap_common.h and ldap_targets.h).
 */
#include "ldap_common.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ldap_key_err(const struct stage_conf *sc, char **err)
{
	if (!err || !*err)
		return -1;
	char *p = strstr(*err, "key '");
	char *n = p ? xasprintf("%.*sstage '%s': %s", (int)(p - *err), *err, sc->name, p)
		    : xasprintf("stage '%s': %s", sc->name, *err);
	free(*err);
	*err = n;
	return -1;
}

int ldap_vfail(const struct stage_conf *sc, const struct cval *v, const char *file,
	       const char *key, char **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	int line = v && v->line ? v->line : sc->line;
	*err = xasprintf("%s:%d: stage '%s': key '%s': %s", file ? file : "?", line,
			 sc->name, key, msg);
	free(msg);
	return -1;
}

int ldap_conn_parse(const struct stage_conf *sc, const char *file, bool need_pw,
		    struct ldap_conn *c, char **err)
{
	const struct cval *g = &sc->settings;
	if (cval_str(g, "bind_dn", "cn=config", &c->bind_dn, file, err) ||
	    cval_str(g, "password_file", NULL, &c->password_file, file, err) ||
	    cval_str(g, "suffix", "", &c->suffix, file, err) ||
	    cval_bool(g, "starttls", false, &c->starttls, file, err) ||
	    cval_str(g, "ca_file", NULL, &c->ca_file, file, err) ||
	    cval_bool(g, "tls_verify", true, &c->tls_verify, file, err) ||
	    cval_duration(g, "network_timeout", 10, &c->net_timeout, file, err))
		return ldap_key_err(sc, err);
	if (need_pw && !c->password_file)
		return ldap_vfail(sc, NULL, file, "password_file", err, "required");
	if (c->net_timeout <= 0)
		c->net_timeout = 10;
	return 0;
}

int ldap_uri_list(const struct stage_conf *sc, const char *file, const char *key, size_t min,
		  struct strlist *out, char **err)
{
	if (cval_strlist(&sc->settings, key, out, file, err))
		return ldap_key_err(sc, err);
	if (out->n < min)
		return ldap_vfail(sc, cval_get(&sc->settings, key), file, key, err,
				  min == 1 ? "at least one LDAP URI required"
					   : "at least two LDAP URIs required");
	for (size_t i = 0; i < out->n; i++)
		if (strncmp(out->v[i], "ldap://", 7) && strncmp(out->v[i], "ldaps://", 8) &&
		    strncmp(out->v[i], "ldapi://", 8) && ldap_is_ldap_url(out->v[i]) == 0)
			return ldap_vfail(sc, cval_get(&sc->settings, key), file, key, err,
					  "'%s' is not an ldap://, ldaps:// or ldapi:// URI",
					  out->v[i]);
	return 0;
}

void ldap_target_add(struct ldap_targets *t, const char *uri, const char *role, bool bind)
{
	t->v = xrealloc(t->v, (t->n + 1) * sizeof *t->v);
	t->v[t->n].uri = xstrdup(uri);
	t->v[t->n].role = role;
	t->v[t->n].bind = bind;
	t->n++;
}

void ldap_targets_release(struct ldap_targets *t)
{
	for (size_t i = 0; t->v && i < t->n; i++)
		free(t->v[i].uri);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

void ldap_conn_opts(const struct ldap_conn *c, struct ldc_opts *o)
{
	o->starttls = c->starttls;
	o->ca_file = c->ca_file;
	o->tls_verify = c->tls_verify;
	o->timeout = (double)c->net_timeout;
}

void ldap_sleep(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

enum zmb_rc ldap_open_bind(const char *uri, const struct ldc_opts *o, const char *dn,
			   const char *pw, struct ldc **out, char **err)
{
	enum zmb_rc rc = ldc_open(uri, o, out, err);
	if (rc)
		return rc;
	rc = ldc_bind(*out, dn, pw, err);
	if (rc) {
		ldc_close(*out);
		*out = NULL;
	}
	return rc;
}

enum zmb_rc ldap_read_secret(const char *path, const char *what, char **pw, char **err)
{
	char *e = NULL;
	enum zmb_rc rc = secret_read_file(path, pw, &e);
	if (rc) {
		*err = xasprintf("%s: %s", what, e ? e : "unreadable");
		free(e);
		return rc;
	}
	zlog_add_secret(*pw);
	return ZMB_OK;
}

enum zmb_rc ldap_target_connect(const struct ldap_targets *t, size_t i, const char *pw,
				struct ldc **out, char **err)
{
	struct ldc_opts o;
	ldap_conn_opts(&t->conn, &o);
	return ldap_open_bind(t->v[i].uri, &o, t->v[i].bind ? t->conn.bind_dn : NULL,
			      t->v[i].bind ? pw : NULL, out, err);
}
