/*
 * ldap_verify.c - the ldap-mmr-verify stage (zmldapmmrtool -q + proof of
 * replication), natively with libldap.
 *
 *   servers = [ uri, uri ... ]             two or more
 *   bind_dn / password_file / suffix / starttls / ca_file / tls_verify /
 *   network_timeout                        as in ldap_targets.h
 *   timeout = "30s"                        per direction and for contextCSN convergence
 *   marker_base = "cn=zimbra"              where marker entries go (default: the
 *                                          suffix; "cn=zimbra" when the suffix is "")
 *   Prints per server `Server: <uri>` and what zmldapmmrtool -q prints
 *   there (ldap_format.h, mmrq_format(): `Master Server ID: <sid>`, `Master
 *   replication agreement: <n>`, `rid: <rid> URI: <uri> TLS: <tls>`, or the
 *   script's `Error: ...` line; never credentials), then writes a marker
 *   entry on each server, waits for it on every other, waits for contextCSN
 *   convergence, and deletes the markers again.
 */
#include "ldap_common.h"
#include "ldap_format.h"
#include "log.h"
#include "runctl.h"

#include <stdlib.h>
#include <string.h>

struct vf_conf {
	struct ldap_targets t;        /* the servers, all bound */
	long long timeout;
	const char *marker_base;
};

static int vf_conf_parse(const struct stage_conf *sc, const char *file, struct vf_conf *k,
			 char **err)
{
	struct strlist servers = STRLIST_INIT;
	int r = -1;
	memset(k, 0, sizeof *k);
	if (ldap_conn_parse(sc, file, true, &k->t.conn, err) ||
	    ldap_uri_list(sc, file, "servers", 2, &servers, err))
		goto out;
	if (cval_duration(&sc->settings, "timeout", 30, &k->timeout, file, err) ||
	    cval_str(&sc->settings, "marker_base", NULL, &k->marker_base, file, err)) {
		ldap_key_err(sc, err);
		goto out;
	}
	if (!k->marker_base)
		k->marker_base = *k->t.conn.suffix ? k->t.conn.suffix : "cn=zimbra";
	if (k->timeout <= 0) {
		ldap_vfail(sc, cval_get(&sc->settings, "timeout"), file, "timeout", err,
			   "must be positive");
		goto out;
	}
	for (size_t i = 0; i < servers.n; i++)
		ldap_target_add(&k->t, servers.v[i], "server", true);
	r = 0;
out:
	strlist_release(&servers);
	return r;
}

int ldap_verify_validate(const struct stage_conf *sc, const char *file, char **err)
{
	struct vf_conf k;
	int r = vf_conf_parse(sc, file, &k, err);
	ldap_targets_release(&k.t);
	return r;
}

int ldap_verify_targets(const struct stage_conf *sc, const char *file,
			struct ldap_targets *t, char **err)
{
	struct vf_conf k;
	int r = vf_conf_parse(sc, file, &k, err);
	*t = k.t;
	return r;
}

/* 1 = present, 0 = absent, -1 = error (*err set) */
static int entry_exists(struct node *n, const char *dn, char **err)
{
	static const char *const attrs[] = { "1.1", NULL };
	struct ldc_result r = LDC_RESULT_INIT;
	char *e = NULL;
	enum zmb_rc rc = ldc_search(n->c, dn, LDAP_SCOPE_BASE, NULL, attrs, &r,
				    "read marker", &e);
	int res = rc == ZMB_OK ? (r.n > 0) : rc == ZMB_ENOTFOUND ? 0 : -1;
	if (res < 0)
		*err = e;
	else
		free(e);
	ldc_result_release(&r);
	return res;
}

static enum zmb_rc read_csns(struct node *n, const char *suffix, struct strlist *out,
			     char **err)
{
	static const char *const attrs[] = { "contextCSN", NULL };
	struct ldc_result r = LDC_RESULT_INIT;
	enum zmb_rc rc = ldc_search(n->c, suffix, LDAP_SCOPE_BASE, NULL, attrs, &r,
				    "read contextCSN", err);
	const struct strlist *v = !rc && r.n ? ldc_vals(&r.e[0], "contextCSN") : NULL;
	for (size_t i = 0; v && i < v->n; i++)
		strlist_add(out, v->v[i]);
	ldc_result_release(&r);
	return rc;
}

struct vf_run {
	struct stage_ctx *ctx;
	struct vf_conf k;
	struct node *nd;              /* one per server, k.t's order */
	char **marker;                /* marker DN written on nd[i] */
	bool *added;                  /* marker[i] exists (to remove) */
	size_t nn;
	char *pw;
	char *e;                      /* the failure: "ldap server URI: step ..." */
};

/*
 * 1. zmldapmmrtool -q on server i (its lines 104-165, printed by
 * mmrq_format()), then multi-provider.  The olcServerID values are read as
 * the script reads them (base cn=config, filter (olcServerID=*), line
 * 106-111), not through node_read()'s own-ID pick; the agreements are those
 * of the data DB found by suffix, where the script reads the fixed
 * olcDatabase={3}mdb (line 122).  `Server: URI` heads each server's block:
 * the script has no such line.
 */
static enum zmb_rc vf_query(struct vf_run *p, size_t i)
{
	static const char *const sid_attrs[] = { "olcServerID", NULL };
	struct stage_ctx *ctx = p->ctx;
	struct node *n = &p->nd[i];
	struct ldc_result r = LDC_RESULT_INIT;
	n->uri = p->k.t.v[i].uri;
	n->role = p->k.t.v[i].role;
	enum zmb_rc rc = ldap_target_connect(&p->k.t, i, p->pw, &n->c, &p->e);
	if (!rc)
		rc = node_read(n, p->k.t.conn.suffix, true, &p->e);
	if (!rc)
		rc = ldc_search(n->c, "cn=config", LDAP_SCOPE_BASE, "(olcServerID=*)", sid_attrs, &r,
				"read server id", &p->e);
	if (rc) {
		ldc_result_release(&r);
		return rc;
	}
	struct buf b = BUF_INIT;
	stage_out(ctx, "Server: %s", n->uri);
	enum mmrq_result q = mmrq_format(r.n ? ldc_vals(&r.e[0], "olcServerID") : NULL,
					 &n->syncrepl, &b);
	stage_out_text(ctx, b.s);
	buf_release(&b);
	ldc_result_release(&r);
	if (q == MMRQ_NO_SID) {
		p->e = xasprintf("ldap server %s: step 'query': no server id: not a multi-master "
				 "server", n->uri);
		return ZMB_ECONFLICT;
	}
	if (q == MMRQ_NO_AGREEMENT) {
		p->e = xasprintf("ldap server %s: step 'query': no replication agreement", n->uri);
		return ZMB_ECONFLICT;
	}
	if (!n->multiprov) {
		p->e = xasprintf("ldap server %s: step 'query': olcMultiProvider is not TRUE on "
				 "the data database", n->uri);
		return ZMB_ECONFLICT;
	}
	return ZMB_OK;
}

/* Wait until marker i (written at t0) is on server j. */
static enum zmb_rc vf_wait_marker(struct vf_run *p, size_t i, size_t j, double t0)
{
	double pause = 0.005;
	for (;;) {
		int ex = entry_exists(&p->nd[j], p->marker[i], &p->e);
		if (ex < 0)
			return ZMB_EPROTO;
		if (ex)
			return ZMB_OK;
		if (mono_now() - t0 > (double)p->k.timeout || runctl_stopped(p->ctx->ctl)) {
			p->e = xasprintf("ldap server %s: step 'replication from %s': marker "
					 "not replicated within %llds", p->nd[j].uri,
					 p->nd[i].uri, p->k.timeout);
			return runctl_stopped(p->ctx->ctl) ? ZMB_ECANCELED : ZMB_ETIMEOUT;
		}
		ldap_sleep(pause);
		pause = pause < 0.2 ? pause * 2 : 0.25;
	}
}

/* 2. a marker written on each server must appear on every other. */
static enum zmb_rc vf_markers(struct vf_run *p)
{
	struct ldc_mods m = LDC_MODS_INIT;
	uint64_t tag = rand64();
	for (size_t i = 0; i < p->nn; i++) {
		p->marker[i] = xasprintf("cn=zmbatch-verify-%016llx-%zu,%s",
					 (unsigned long long)tag, i, p->k.marker_base);
		ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "organizationalRole");
		ldc_mods_add(&m, LDAP_MOD_ADD, "description", "zmbatch ldap-mmr-verify marker");
		double t0 = mono_now();
		enum zmb_rc rc = ldc_add(p->nd[i].c, p->marker[i], &m, "write marker", &p->e);
		ldc_mods_release(&m);
		if (rc)
			return rc;
		p->added[i] = true;
		for (size_t j = 0; j < p->nn; j++) {
			if (j == i)
				continue;
			rc = vf_wait_marker(p, i, j, t0);
			if (rc)
				return rc;
			stage_out(p->ctx, "replication %s -> %s: ok (%.0f ms)", p->nd[i].uri,
				  p->nd[j].uri, (mono_now() - t0) * 1000);
		}
	}
	return ZMB_OK;
}

/* 3. contextCSN convergence: every server has the first one's set. */
static enum zmb_rc vf_converge(struct vf_run *p)
{
	struct strlist ref = STRLIST_INIT, cur = STRLIST_INIT;
	const char *suffix = p->k.t.conn.suffix;
	double t0 = mono_now(), pause = 0.005;
	enum zmb_rc rc;
	for (;;) {
		bool same = true;
		strlist_release(&ref);
		rc = read_csns(&p->nd[0], suffix, &ref, &p->e);
		for (size_t i = 1; !rc && same && i < p->nn; i++) {
			strlist_release(&cur);
			rc = read_csns(&p->nd[i], suffix, &cur, &p->e);
			same = !rc && csn_same_set(&ref, &cur);
		}
		if (rc || same)
			break;
		if (mono_now() - t0 > (double)p->k.timeout || runctl_stopped(p->ctx->ctl)) {
			p->e = xasprintf("ldap server %s: step 'contextCSN convergence': contextCSN "
					 "differs from %s after %llds", p->nd[1].uri, p->nd[0].uri,
					 p->k.timeout);
			rc = ZMB_ETIMEOUT;
			break;
		}
		ldap_sleep(pause);
		pause = pause < 0.2 ? pause * 2 : 0.25;
	}
	if (!rc) {
		stage_out(p->ctx, "contextCSN converged on %zu servers (%.0f ms)", p->nn,
			  (mono_now() - t0) * 1000);
		for (size_t i = 0; i < ref.n; i++)
			stage_out(p->ctx, "\t%s", ref.v[i]);
	}
	strlist_release(&ref);
	strlist_release(&cur);
	return rc;
}

/* 4. remove the markers (on the server that wrote them); a failure fails a good run. */
static enum zmb_rc vf_cleanup(struct vf_run *p, enum zmb_rc rc, char **err)
{
	for (size_t i = 0; p->nd && i < p->nn; i++) {
		char *de = NULL;
		if (p->added[i] && ldc_delete(p->nd[i].c, p->marker[i], "remove marker", &de)) {
			log_warn("ldap-mmr-verify", "%s", de);
			if (!rc) {
				*err = xasprintf("ldap-mmr-verify: %s", de);
				rc = ZMB_EPROTO;
			}
		}
		free(de);
	}
	return rc;
}

struct stage_result ldap_verify_run(struct stage_ctx *ctx)
{
	struct stage_result res = { ZMB_OK, 0, NULL };
	struct vf_run p;
	enum zmb_rc rc = ZMB_ECONFIG;
	const char *file = ctx->job ? ctx->job->path : "job";

	memset(&p, 0, sizeof p);
	p.ctx = ctx;
	if (vf_conf_parse(ctx->sc, file, &p.k, &res.err))
		goto out;
	rc = ldap_read_secret(p.k.t.conn.password_file, "ldap-mmr-verify: password_file", &p.pw,
			      &res.err);
	if (rc)
		goto out;
	p.nn = p.k.t.n;
	p.nd = xcalloc(p.nn, sizeof *p.nd);
	p.marker = xcalloc(p.nn, sizeof *p.marker);
	p.added = xcalloc(p.nn, sizeof *p.added);
	for (size_t i = 0; !rc && i < p.nn; i++)
		rc = vf_query(&p, i);
	if (!rc)
		rc = vf_markers(&p);
	if (!rc)
		rc = vf_converge(&p);
	if (rc)
		res.err = xasprintf("ldap-mmr-verify: %s", p.e ? p.e : zmb_rc_str(rc));
out:
	rc = vf_cleanup(&p, rc, &res.err);
	for (size_t i = 0; p.nd && i < p.nn; i++) {
		node_release(&p.nd[i]);
		free(p.marker[i]);
	}
	free(p.nd);
	free(p.marker);
	free(p.added);
	free(p.e);
	secret_free(p.pw);
	ldap_targets_release(&p.k.t);
	res.rc = rc;
	return res;
}
