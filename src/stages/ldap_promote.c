/*
 * ldap_promote.c - the ldap-promote-mmr stage (zmldappromote-replica-mmr -s N
 * + zmldapenable-mmr on the masters), natively with libldap.
 *
 *   replica = "ldap://ldap2:389"           the consumer to promote
 *   server_id = 2                          its server ID (1..4095)
 *   masters = ( { uri = "ldap://ldap1:389"; server_id = 1;
 *                 rid = 101;               optional: rid of the master's agreement
 *                                          pulling from the replica (else next free
 *                                          from rid_base); a rid already used by an
 *                                          agreement with another provider fails
 *                 replica_rid = 100;       optional: rid of the replica's agreement
 *                                          pulling from this master, if one is missing
 *                 accesslog_dir = "/..."; } )  optional per master
 *   bind_dn = "cn=config"; password_file = "/path"
 *   replication_dn = "uid=zmreplica,cn=admins,cn=zimbra"
 *   replication_password_file = "/path"
 *   suffix = ""                            data DB suffix
 *   retry = "60 +"                         syncrepl retry of new agreements
 *   rid_base = 100
 *   mode = "auto"                          auto | delta | plain (auto: delta when
 *                                          an accesslog DB or syncdata=accesslog exists)
 *   accesslog_dir = "/opt/zextras/data/ldap/accesslog/db"  (created when the
 *                                          server is local: ldapi or loopback)
 *   accesslog_maxsize = 85899345920
 *   sp_checkpoint = "20 10"; sp_sessionlog = "10000000"
 *   agreement_starttls = false             starttls=critical in new agreements
 *   agreement_tls_cacert = "/path"         tls_cacert= in new agreements
 *   starttls / ca_file / tls_verify / network_timeout as in ldap_targets.h
 *
 * All servers are read and checked before the first write (server ID
 * conflict, duplicate rid, not a replica): connect, check ids, choose mode,
 * plan rids; then apply on the replica, then on each old master
 * (ldap_promote_apply.c).  Every step reads before it writes, so a second
 * run only prints "no-op" lines.
 */
#include "ldap_promote.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* keys                                                                */

static void pm_conf_release(struct pm_conf *k)
{
	free(k->m);
	k->m = NULL;
	ldap_targets_release(&k->t);
}

/* Every key but `masters`, each checked in the order of the messages. */
static int pm_conf_keys(const struct stage_conf *sc, const char *file, struct pm_conf *k,
			char **err)
{
	const struct cval *g = &sc->settings;
	if (ldap_conn_parse(sc, file, true, &k->t.conn, err))
		return -1;
	if (cval_str(g, "replica", NULL, &k->replica, file, err) ||
	    cval_int(g, "server_id", -1, &k->server_id, file, err) ||
	    cval_str(g, "replication_dn", NULL, &k->repl_dn, file, err) ||
	    cval_str(g, "replication_password_file", NULL, &k->repl_pw_file, file, err) ||
	    cval_str(g, "retry", "60 +", &k->retry, file, err) ||
	    cval_str(g, "mode", "auto", &k->mode, file, err) ||
	    cval_str(g, "accesslog_dir", DEFAULT_ACCESSLOG_DIR, &k->accesslog_dir, file, err) ||
	    cval_str(g, "sp_checkpoint", "20 10", &k->sp_checkpoint, file, err) ||
	    cval_str(g, "sp_sessionlog", "10000000", &k->sp_sessionlog, file, err) ||
	    cval_str(g, "agreement_tls_cacert", NULL, &k->agreement_tls_cacert, file, err) ||
	    cval_int(g, "rid_base", 100, &k->rid_base, file, err) ||
	    cval_int(g, "accesslog_maxsize", 85899345920LL, &k->accesslog_maxsize, file, err) ||
	    cval_bool(g, "agreement_starttls", false, &k->agreement_starttls, file, err))
		return ldap_key_err(sc, err);
	if (!k->replica)
		return ldap_vfail(sc, NULL, file, "replica", err, "required (LDAP URI of the replica)");
	if (strncmp(k->replica, "ldap", 4) || !strstr(k->replica, "://"))
		return ldap_vfail(sc, cval_get(g, "replica"), file, "replica", err,
				  "'%s' is not an LDAP URI", k->replica);
	if (k->server_id < 1 || k->server_id > 4095)
		return ldap_vfail(sc, cval_get(g, "server_id"), file, "server_id", err,
				  "required, 1..4095");
	if (!k->repl_dn)
		return ldap_vfail(sc, NULL, file, "replication_dn", err, "required");
	if (!k->repl_pw_file)
		return ldap_vfail(sc, NULL, file, "replication_password_file", err, "required");
	if (!*k->retry || strchr(k->retry, '"'))
		return ldap_vfail(sc, cval_get(g, "retry"), file, "retry", err,
				  "expected a syncrepl retry like \"60 +\"");
	if (strcmp(k->mode, "auto") && strcmp(k->mode, "delta") && strcmp(k->mode, "plain"))
		return ldap_vfail(sc, cval_get(g, "mode"), file, "mode", err,
				  "expected auto, delta or plain");
	if (k->rid_base < 0 || k->rid_base > 999)
		return ldap_vfail(sc, cval_get(g, "rid_base"), file, "rid_base", err,
				  "expected 0..999");
	return 0;
}

/* Element i of `masters` (the group it) into k->m[i]. */
static int pm_master_parse(const struct stage_conf *sc, const char *file, struct pm_conf *k,
			   const struct cval *it, size_t i, char **err)
{
	struct pm_master *m = &k->m[i];
	if (it->type != CV_GROUP)
		return ldap_vfail(sc, it, file, "masters", err,
				  "element %zu: expected a group { uri; server_id; }", i + 1);
	m->line = it->line;
	if (cval_str(it, "uri", NULL, &m->uri, file, err) ||
	    cval_int(it, "server_id", -1, &m->sid, file, err) ||
	    cval_int(it, "rid", -1, &m->rid, file, err) ||
	    cval_int(it, "replica_rid", -1, &m->replica_rid, file, err) ||
	    cval_str(it, "accesslog_dir", k->accesslog_dir, &m->accesslog_dir, file, err))
		return ldap_key_err(sc, err);
	k->nm++;
	if (!m->uri || strncmp(m->uri, "ldap", 4) || !strstr(m->uri, "://"))
		return ldap_vfail(sc, it, file, "masters", err,
				  "element %zu: uri required (an LDAP URI)", i + 1);
	if (m->sid < 1 || m->sid > 4095)
		return ldap_vfail(sc, it, file, "masters", err,
				  "element %zu: server_id required, 1..4095", i + 1);
	if (m->sid == k->server_id)
		return ldap_vfail(sc, it, file, "masters", err,
				  "element %zu: server_id %lld is the replica's server_id too",
				  i + 1, m->sid);
	if (m->rid > 999 || m->replica_rid > 999)
		return ldap_vfail(sc, it, file, "masters", err,
				  "element %zu: rid must be 0..999", i + 1);
	if (ldc_uri_eq(m->uri, k->replica))
		return ldap_vfail(sc, it, file, "masters", err,
				  "element %zu: uri is the replica itself", i + 1);
	for (size_t j = 0; j < i; j++)
		if (k->m[j].sid == m->sid || ldc_uri_eq(k->m[j].uri, m->uri))
			return ldap_vfail(sc, it, file, "masters", err,
					  "element %zu: server_id or uri repeated", i + 1);
	return 0;
}

static int pm_conf_parse(const struct stage_conf *sc, const char *file, struct pm_conf *k,
			 char **err)
{
	memset(k, 0, sizeof *k);
	if (pm_conf_keys(sc, file, k, err))
		return -1;
	const struct cval *ms = cval_get(&sc->settings, "masters");
	if (!ms || (ms->type != CV_LIST && ms->type != CV_GROUP) || (ms->type == CV_LIST && !ms->n))
		return ldap_vfail(sc, ms, file, "masters", err,
				  "required: ( { uri = \"ldap://...\"; server_id = N; } ... )");
	size_t cnt = ms->type == CV_GROUP ? 1 : ms->n;
	k->m = xcalloc(cnt, sizeof *k->m);
	for (size_t i = 0; i < cnt; i++)
		if (pm_master_parse(sc, file, k, ms->type == CV_GROUP ? ms : &ms->items[i], i, err))
			return -1;
	ldap_target_add(&k->t, k->replica, "replica", true);
	for (size_t i = 0; i < k->nm; i++)
		ldap_target_add(&k->t, k->m[i].uri, "master", true);
	return 0;
}

int ldap_promote_validate(const struct stage_conf *sc, const char *file, char **err)
{
	struct pm_conf k;
	int r = pm_conf_parse(sc, file, &k, err);
	pm_conf_release(&k);
	return r;
}

int ldap_promote_targets(const struct stage_conf *sc, const char *file,
			 struct ldap_targets *t, char **err)
{
	struct pm_conf k;
	int r = pm_conf_parse(sc, file, &k, err);
	*t = k.t;
	k.t.v = NULL;
	k.t.n = 0;
	pm_conf_release(&k);
	return r;
}

/* ------------------------------------------------------------------ */
/* the run: plan everything, then write                               */

struct pm_run {
	struct stage_ctx *ctx;
	struct pm_conf k;
	struct node *nd;              /* nd[0] the replica, nd[1..] the masters (k.t's order) */
	size_t nn;
	char *pw, *rpw;               /* bind and replication passwords */
	bool delta;                   /* delta-syncrepl (accesslog) layout */
	char *e;                      /* the failure: "ldap server URI: step ..." */
};

/* The two passwords; *err is the stage's whole message. */
static enum zmb_rc pm_secrets(struct pm_run *p, char **err)
{
	enum zmb_rc rc = ldap_read_secret(p->k.t.conn.password_file,
					  "ldap-promote-mmr: password_file", &p->pw, err);
	if (!rc)
		rc = ldap_read_secret(p->k.repl_pw_file,
				      "ldap-promote-mmr: replication_password_file", &p->rpw, err);
	if (rc)
		return rc;
	if (strpbrk(p->rpw, "\"\\")) {
		*err = xasprintf("ldap-promote-mmr: replication_password_file '%s': the password "
				 "must not contain '\"' or '\\' (it goes into a quoted olcSyncrepl value)",
				 p->k.repl_pw_file);
		return ZMB_ECONFIG;
	}
	return ZMB_OK;
}

/* 1. connect, bind and read every server before the first write. */
static enum zmb_rc pm_connect(struct pm_run *p)
{
	const struct pm_conf *k = &p->k;
	p->nn = k->t.n;
	p->nd = xcalloc(p->nn, sizeof *p->nd);
	for (size_t i = 0; i < p->nn; i++) {
		struct node *n = &p->nd[i];
		const struct pm_master *m = i ? &k->m[i - 1] : NULL;
		n->uri = k->t.v[i].uri;
		n->role = k->t.v[i].role;
		n->want_sid = m ? m->sid : k->server_id;
		n->rid = m ? m->rid : 0;
		n->replica_rid = m ? m->replica_rid : 0;
		n->accesslog_dir = m ? m->accesslog_dir : k->accesslog_dir;
	}
	for (size_t i = 0; i < p->nn; i++) {
		enum zmb_rc rc = ldap_target_connect(&k->t, i, p->pw, &p->nd[i].c, &p->e);
		if (!rc)
			rc = node_read(&p->nd[i], k->t.conn.suffix, true, &p->e);
		if (rc)
			return rc;
	}
	return ZMB_OK;
}

/* 2. no live server id differs from the job or is taken; the replica is one. */
static enum zmb_rc pm_check_ids(struct pm_run *p)
{
	struct node *nd = p->nd, *r = &p->nd[0];
	for (size_t i = 0; i < p->nn; i++) {
		if (nd[i].sid && !sid_equal(nd[i].sid, nd[i].want_sid)) {
			p->e = xasprintf("ldap server %s: step 'check server id': the %s has server id "
					 "%s, the job says %lld; refusing to change a live server id",
					 nd[i].uri, nd[i].role, nd[i].sid, nd[i].want_sid);
			return ZMB_ECONFLICT;
		}
		for (size_t j = 0; j < p->nn; j++) {
			if (j != i && nd[j].sid && sid_equal(nd[j].sid, nd[i].want_sid)) {
				p->e = xasprintf("ldap server %s: step 'check server id': server id "
						 "%lld is already used by %s", nd[i].uri,
						 nd[i].want_sid, nd[j].uri);
				return ZMB_ECONFLICT;
			}
		}
	}
	if (!r->syncrepl.n && !r->multiprov) {
		p->e = xasprintf("ldap server %s: step 'check replica': not a replica (no olcSyncrepl "
				 "on the database '%s')", r->uri, p->k.t.conn.suffix);
		return ZMB_ECONFLICT;
	}
	return ZMB_OK;
}

/* 3. delta when asked, or (auto) when any server has an accesslog DB or a delta agreement. */
static bool pm_choose_mode(const struct pm_run *p)
{
	bool delta = !strcmp(p->k.mode, "delta");
	if (strcmp(p->k.mode, "auto"))
		return delta;
	for (size_t i = 0; i < p->nn; i++) {
		delta |= p->nd[i].aldb != NULL;
		for (size_t j = 0; j < p->nd[i].syncrepl.n; j++) {
			char *sd = sr_token(p->nd[i].syncrepl.v[j], "syncdata");
			delta |= sd && streq_ci(sd, "accesslog");
			free(sd);
		}
	}
	return delta;
}

static bool pulls_from(const struct node *n, const char *uri)
{
	bool has = false;
	for (size_t j = 0; j < n->syncrepl.n; j++)
		has |= sr_provider_is(n->syncrepl.v[j], uri);
	return has;
}

/* rid for a new agreement on n: `want` (refused when another provider has it) or the next free. */
static enum zmb_rc pm_pick_rid(struct pm_run *p, const struct node *n, long long want,
			       const struct rid_set *taken, long long *out)
{
	char *prov = NULL;
	if (want >= 0 && rid_owner(&n->syncrepl, want, &prov)) {
		p->e = xasprintf("ldap server %s: step 'check rid': rid %lld is already used "
				 "by the agreement with provider %s", n->uri, want, prov ? prov : "?");
		free(prov);
		return ZMB_ECONFLICT;
	}
	*out = want >= 0 ? want : rid_next_free(&n->syncrepl, p->k.rid_base, taken);
	if (*out < 0) {
		p->e = xasprintf("ldap server %s: step 'check rid': no free rid", n->uri);
		return ZMB_ECONFLICT;
	}
	return ZMB_OK;
}

/*
 * 4. rids: each master pulls from the replica (new_rid), the replica pulls
 * from each master (new_replica_rid, distinct from the ones chosen before);
 * -1 where the agreement exists.
 */
static enum zmb_rc pm_plan_rids(struct pm_run *p)
{
	struct node *r = &p->nd[0];
	struct rid_set taken = RID_SET_INIT;
	enum zmb_rc rc = ZMB_OK;
	for (size_t i = 1; !rc && i < p->nn; i++) {
		struct node *m = &p->nd[i];
		m->new_rid = -1;
		m->new_replica_rid = -1;
		if (!pulls_from(m, r->uri))
			rc = pm_pick_rid(p, m, m->rid, NULL, &m->new_rid);
		if (!rc && !pulls_from(r, m->uri)) {
			rc = pm_pick_rid(p, r, m->replica_rid, &taken, &m->new_replica_rid);
			if (!rc)
				rid_set_add(&taken, m->new_replica_rid);
		}
	}
	rid_set_release(&taken);
	return rc;
}

/* 5. the replica: server id, provider overlays, agreements to every master, multi-provider. */
static enum zmb_rc pm_apply_replica(struct pm_run *p)
{
	struct node *r = &p->nd[0];
	enum zmb_rc rc = pm_server_id(p->ctx, r, &p->e);
	if (!rc)
		rc = pm_provider(p->ctx, r, &p->k, p->delta, &p->e);
	if (rc)
		return rc;
	const char **provs = xcalloc(p->nn, sizeof *provs);
	long long *rids = xcalloc(p->nn, sizeof *rids);
	size_t np = 0;
	for (size_t i = 1; i < p->nn; i++) {
		if (p->nd[i].new_replica_rid >= 0) {
			provs[np] = p->nd[i].uri;
			rids[np++] = p->nd[i].new_replica_rid;
		}
	}
	rc = pm_multiprovider(p->ctx, r, &p->k, provs, rids, np, p->rpw, p->delta, &p->e);
	free(provs);
	free(rids);
	return rc;
}

/* 6. each old master: server id, provider overlays, agreement to the replica. */
static enum zmb_rc pm_apply_masters(struct pm_run *p)
{
	const char *prov = p->nd[0].uri;
	for (size_t i = 1; i < p->nn; i++) {
		struct node *m = &p->nd[i];
		enum zmb_rc rc = pm_server_id(p->ctx, m, &p->e);
		if (!rc)
			rc = pm_provider(p->ctx, m, &p->k, p->delta, &p->e);
		if (!rc)
			rc = pm_multiprovider(p->ctx, m, &p->k, &prov, &m->new_rid,
					      m->new_rid >= 0 ? 1 : 0, p->rpw, p->delta, &p->e);
		if (rc)
			return rc;
	}
	return ZMB_OK;
}

struct stage_result ldap_promote_run(struct stage_ctx *ctx)
{
	struct stage_result res = { ZMB_OK, 0, NULL };
	struct pm_run p;
	enum zmb_rc rc = ZMB_ECONFIG;
	const char *file = ctx->job ? ctx->job->path : "job";

	memset(&p, 0, sizeof p);
	p.ctx = ctx;
	if (pm_conf_parse(ctx->sc, file, &p.k, &res.err))
		goto out;
	rc = pm_secrets(&p, &res.err);
	if (rc)
		goto out;
	rc = pm_connect(&p);
	if (!rc)
		rc = pm_check_ids(&p);
	if (rc)
		goto fail;
	p.delta = pm_choose_mode(&p);
	rc = pm_plan_rids(&p);
	if (rc)
		goto fail;
	stage_out(ctx, "layout: %s", p.delta ? "delta-syncrepl (accesslog)" : "plain syncrepl");
	rc = pm_apply_replica(&p);
	if (!rc)
		rc = pm_apply_masters(&p);
	if (!rc)
		goto out;
fail:
	res.err = xasprintf("ldap-promote-mmr: %s", p.e ? p.e : zmb_rc_str(rc));
out:
	free(p.e);
	for (size_t i = 0; p.nd && i < p.nn; i++)
		node_release(&p.nd[i]);
	free(p.nd);
	secret_free(p.pw);
	secret_free(p.rpw);
	pm_conf_release(&p.k);
	res.rc = rc;
	return res;
}
