/*
 * ldap_replcheck.c - the ldap-replcheck stage (zmreplchk), natively with
 * libldap.  The key names below are the jobs' contract.
 *
 *   masters = [ "ldap://ldap1:389" ... ]   required; the first is the reference
 *   replicas = [ uri ... ]                 optional; read with an anonymous bind
 *   bind_dn = "cn=config"                  master bind (default cn=config)
 *   password_file = "/path"                required (mode 0600)
 *   suffix = ""                            data DB suffix; "" = Zimbra/Carbonio (root DSE)
 *   wait = "90s"                           poll until in sync (default 0 = check once)
 *   starttls = false; ca_file = "/path"; tls_verify = true;
 *   network_timeout = "10s"                per LDAP operation
 *   Prints `Master: <url> ServerID: <sid> Code: <c> Status: <s> CSNs:` and
 *   `Replica: <url> Code: <c> Status: <s> CSNs:` each followed by one CSN per
 *   line (tab-indented).  Codes as zmreplchk: 0 In Sync, 3 StartTLS failed,
 *   4 Server down, 5 Unable to search / bind, 6 out of sync ("1.250s behind").
 *   contextCSNs are compared per server ID (not by position) against the
 *   first master; SID 000 is ignored when there are two or more masters.
 *   The servers and bind settings come from ldap_targets.h (shared with
 *   `zmbatch check`).
 */
#include "ldap_common.h"
#include "runctl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rc_conf {
	struct ldap_targets t;        /* the masters first, then the other replicas */
	size_t nmasters;
	long long wait;
};

static void rc_conf_release(struct rc_conf *k)
{
	ldap_targets_release(&k->t);
}

static int rc_conf_parse(const struct stage_conf *sc, const char *file, struct rc_conf *k,
			 char **err)
{
	struct strlist masters = STRLIST_INIT, replicas = STRLIST_INIT;
	int r = -1;
	memset(k, 0, sizeof *k);
	if (ldap_conn_parse(sc, file, true, &k->t.conn, err) ||
	    ldap_uri_list(sc, file, "masters", 1, &masters, err) ||
	    ldap_uri_list(sc, file, "replicas", 0, &replicas, err))
		goto out;
	if (cval_duration(&sc->settings, "wait", 0, &k->wait, file, err)) {
		ldap_key_err(sc, err);
		goto out;
	}
	for (size_t i = 0; i < masters.n; i++)
		ldap_target_add(&k->t, masters.v[i], "master", true);
	k->nmasters = masters.n;
	for (size_t i = 0; i < replicas.n; i++)
		if (!strlist_has(&masters, replicas.v[i]))   /* zmreplchk: ldap_url minus masters */
			ldap_target_add(&k->t, replicas.v[i], "replica", false);
	r = 0;
out:
	strlist_release(&masters);
	strlist_release(&replicas);
	return r;
}

int ldap_replcheck_validate(const struct stage_conf *sc, const char *file, char **err)
{
	struct rc_conf k;
	int r = rc_conf_parse(sc, file, &k, err);
	rc_conf_release(&k);
	return r;
}

int ldap_replcheck_targets(const struct stage_conf *sc, const char *file,
			   struct ldap_targets *t, char **err)
{
	struct rc_conf k;
	int r = rc_conf_parse(sc, file, &k, err);
	*t = k.t;
	return r;
}

struct rc_srv {
	const char *uri;
	bool master;
	bool bind;                    /* bind as bind_dn; else anonymously */
	int code;
	char *status;
	char *sid;
	struct strlist csns;
	enum zmb_rc rc;
	char *err;
};

static void rc_srv_reset(struct rc_srv *s)
{
	free(s->status);
	free(s->sid);
	free(s->err);
	strlist_release(&s->csns);
	s->status = s->sid = s->err = NULL;
	s->code = 0;
	s->rc = ZMB_OK;
}

static void rc_probe(struct rc_srv *s, const struct rc_conf *k, const char *pw)
{
	static const char *const csn_attrs[] = { "contextCSN", NULL };
	static const char *const sid_attrs[] = { "olcServerID", NULL };
	struct ldc_opts o;
	struct ldc *c = NULL;
	struct ldc_result r = LDC_RESULT_INIT;

	rc_srv_reset(s);
	ldap_conn_opts(&k->t.conn, &o);
	s->rc = ldc_open(s->uri, &o, &c, &s->err);
	bool opened = s->rc == ZMB_OK;   /* a TLS failure before it is in our own setup */
	if (opened)
		s->rc = ldc_bind(c, s->bind ? k->t.conn.bind_dn : NULL, s->bind ? pw : NULL, &s->err);
	if (s->rc) {
		s->code = s->rc == ZMB_ECONNECT ? 4 : s->rc == ZMB_ETLS ? 3 : 5;
		s->status = xstrdup(s->code == 4 ? "Server down"
				    : s->code == 3 ? (!opened ? "TLS setup failed"
						      : strncmp(s->uri, "ldaps://", 8) == 0
						      ? "TLS handshake failed"
						      : "Could not execute StartTLS")
						   : "Unable to bind");
		goto out;
	}
	if (s->master) {
		s->rc = ldc_search(c, "cn=config", LDAP_SCOPE_BASE, NULL, sid_attrs, &r,
				   "read server id", &s->err);
		if (!s->rc && r.n)
			s->sid = sid_pick(ldc_vals(&r.e[0], "olcServerID"), s->uri);
		ldc_result_release(&r);
		if (s->rc) {
			s->code = 5;
			s->status = xstrdup("Unable to search");
			goto out;
		}
	}
	s->rc = ldc_search(c, k->t.conn.suffix, LDAP_SCOPE_BASE, NULL, csn_attrs, &r,
			   "read contextCSN", &s->err);
	if (s->rc) {
		s->code = 5;
		s->status = xstrdup("Unable to search");
		goto out;
	}
	const struct strlist *v = r.n ? ldc_vals(&r.e[0], "contextCSN") : NULL;
	for (size_t i = 0; v && i < v->n; i++)
		strlist_add(&s->csns, v->v[i]);
	if (!s->csns.n) {
		s->code = 5;
		s->status = xstrdup("No contextCSN (no syncprov on the suffix entry?)");
		s->rc = ZMB_ENOTFOUND;
		s->err = xasprintf("ldap server %s: step 'read contextCSN': no contextCSN on '%s'",
				   s->uri, k->t.conn.suffix);
	}
out:
	ldc_result_release(&r);
	ldc_close(c);
}

/* Compare everyone against servers[0]; true when all are code 0. */
static bool rc_judge(struct rc_srv *s, size_t n, size_t nmasters)
{
	/* the reference master itself must answer (with a single server the
	 * loop below compares nothing) */
	bool all = n > 0 && s[0].code == 0;
	double worst = 0;
	for (size_t i = 1; i < n; i++) {
		if (s[i].code || s[0].code) {
			if (!s[i].code)
				s[i].status = xstrdup("Not compared (reference master unavailable)");
			all = false;
			continue;
		}
		double lag;
		if (csn_compare(&s[0].csns, &s[i].csns, nmasters >= 2, &lag)) {
			s[i].status = xstrdup("In Sync");
			continue;
		}
		all = false;
		s[i].code = 6;
		s[i].status = xasprintf("%.3fs %s", fabs(lag), lag >= 0 ? "behind" : "ahead");
		if (s[i].master && fabs(lag) >= fabs(worst))
			worst = lag;
	}
	if (!s[0].code) {
		bool masters_ok = true;
		for (size_t i = 1; i < nmasters; i++)
			masters_ok &= s[i].code == 0;
		if (masters_ok) {
			s[0].status = xstrdup("In Sync");
		} else {
			s[0].code = 6;
			s[0].status = xasprintf("%.3fs %s", fabs(worst), worst >= 0 ? "ahead" : "behind");
		}
	}
	return all;
}

/* One probe slot per target, in the targets' order. */
static struct rc_srv *rc_servers(const struct rc_conf *k)
{
	struct rc_srv *s = xcalloc(k->t.n ? k->t.n : 1, sizeof *s);
	for (size_t i = 0; i < k->t.n; i++) {
		s[i].uri = k->t.v[i].uri;
		s[i].master = !strcmp(k->t.v[i].role, "master");
		s[i].bind = k->t.v[i].bind;
	}
	return s;
}

/* Probe and judge until in sync, a refused bind, the wait is over or a stop. */
static bool rc_poll(struct stage_ctx *ctx, struct rc_srv *s, const struct rc_conf *k,
		    const char *pw)
{
	double deadline = mono_now() + (double)k->wait, pause = 0.1;
	bool ok;
	for (;;) {
		for (size_t i = 0; i < k->t.n; i++)
			rc_probe(&s[i], k, pw);
		ok = rc_judge(s, k->t.n, k->nmasters);
		bool auth = false;
		for (size_t i = 0; i < k->t.n; i++)
			auth |= s[i].rc == ZMB_EAUTH || s[i].rc == ZMB_ECONFIG;
		if (ok || auth || mono_now() + pause > deadline || runctl_stopped(ctx->ctl))
			return ok;
		ldap_sleep(pause);
		pause = pause < 1 ? pause * 1.5 : 1;
	}
}

static void rc_print(struct stage_ctx *ctx, const struct rc_srv *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i].master)
			stage_out(ctx, "Master: %s ServerID: %s Code: %d Status: %s CSNs:", s[i].uri,
				  s[i].sid ? s[i].sid : "none", s[i].code,
				  s[i].status ? s[i].status : "");
		else
			stage_out(ctx, "Replica: %s Code: %d Status: %s CSNs:", s[i].uri, s[i].code,
				  s[i].status ? s[i].status : "");
		for (size_t j = 0; j < s[i].csns.n; j++)
			stage_out(ctx, "\t%s", s[i].csns.v[j]);
	}
}

/* Not in sync: the first server error, else the first server out of sync. */
static enum zmb_rc rc_failure(struct stage_ctx *ctx, const struct rc_srv *s, size_t n,
			      long long wait, char **err)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i].rc) {
			*err = xasprintf("ldap-replcheck: %s", s[i].err);
			return s[i].rc;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i].code == 6) {
			*err = xasprintf("ldap-replcheck: %s %s: step 'compare contextCSN': not in sync "
					 "with %s after %llds: %s", s[i].master ? "master" : "replica",
					 s[i].uri, s[0].uri, wait, s[i].status);
			return runctl_stopped(ctx->ctl) ? ZMB_ECANCELED : ZMB_ETIMEOUT;
		}
	}
	*err = xstrdup("ldap-replcheck: not in sync");
	return ZMB_ETIMEOUT;
}

struct stage_result ldap_replcheck_run(struct stage_ctx *ctx)
{
	struct stage_result res = { ZMB_OK, 0, NULL };
	struct rc_conf k;
	struct rc_srv *s = NULL;
	char *pw = NULL;
	enum zmb_rc rc = ZMB_ECONFIG;
	const char *file = ctx->job ? ctx->job->path : "job";

	if (rc_conf_parse(ctx->sc, file, &k, &res.err))
		goto out;
	rc = ldap_read_secret(k.t.conn.password_file, "ldap-replcheck: password_file", &pw, &res.err);
	if (rc)
		goto out;
	s = rc_servers(&k);
	bool ok = rc_poll(ctx, s, &k, pw);
	rc_print(ctx, s, k.t.n);
	rc = ok ? ZMB_OK : rc_failure(ctx, s, k.t.n, k.wait, &res.err);
out:
	for (size_t i = 0; s && i < k.t.n; i++)
		rc_srv_reset(&s[i]);
	free(s);
	secret_free(pw);
	rc_conf_release(&k);
	res.rc = rc;
	return res;
}
