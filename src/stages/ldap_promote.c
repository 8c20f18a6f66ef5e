/*
 * ldap_promote.c - the ldap-promote-mmr stage: zmldappromote-replica-mmr
 * -s N on the replica plus zmldapenable-mmr on each old master, natively
 * with libldap, doing what the real scripts do (Zimbra/zm-ldap-utilities,
 * zextras/carbonio-ldap-utilities: src/libexec/; the two differ only in
 * /opt/zimbra vs /opt/zextras).
 *
 *   replica = "ldap://ldap2:389"           the consumer to promote
 *   server_id = 2                          its server ID (1..4095), -s of the script
 *   masters = ( { uri = "ldap://ldap1:389"; server_id = 1;
 *                 rid = 100;               optional: rid of the master's agreement
 *                                          pulling from the replica (zmldapenable-mmr
 *                                          -r, default 100; taken by an agreement
 *                                          with another provider: an error)
 *                 replica_rid = 100;       optional: rid of the replica's agreement
 *                                          pulling from this master, if one is missing
 *                 accesslog_dir = "/..."; } )  optional per master
 *   bind_dn = "cn=config"; password_file = "/path"   (localconfig ldap_root_password)
 *   replication_dn = "uid=zmreplica,cn=admins,cn=zimbra"   (the default)
 *   replication_password_file = "/path"    (localconfig ldap_replication_password)
 *   suffix = ""                            data DB suffix
 *   flavor = "zimbra" | "carbonio"         paths under /opt/zimbra or /opt/zextras;
 *                                          default: detected from `localconfig`
 *                                          (zimbra_home, else the file's path),
 *                                          else "zimbra"
 *   localconfig = "/opt/zimbra/conf/localconfig.xml"  the replica's, optional:
 *                                          flavor, StartTLS use, and after the
 *                                          promotion ldap_is_master = true in it
 *   agreement_tls = "auto"                 auto | starttls | plain.  auto:
 *                                          starttls=critical unless the localconfig
 *                                          says the installation does not use
 *                                          StartTLS (ldap_starttls_supported and
 *                                          zimbra_require_interprocess_security, as
 *                                          zmldapenable-mmr reads them): then an
 *                                          error asking for "plain" explicitly.
 *                                          ldaps:// providers never get starttls.
 *   agreement_starttls = true|false        older spelling: starttls / plain
 *   agreement_tls_cacertdir = "<home>/conf/ca"   tls_cacertdir= of the agreements
 *   agreement_tls_cacert = "/path"         also tls_cacert= (optional)
 *   accesslog_dir = "<home>/data/ldap/accesslog/db"
 *   create_accesslog_dir = true|false      default: only for local servers
 *                                          (ldapi://, loopback); a remote server
 *                                          must have it (see conf/zimbra-mmr.cfg.example)
 *   retry = "60 +"; mode = "auto"          auto | delta | plain (auto: delta when an
 *                                          accesslog DB or syncdata=accesslog exists,
 *                                          which every Zimbra replica has)
 *   rid_base = N                           older behaviour: the next free rid >= N
 *   accesslog_maxsize = 85899345920; sp_checkpoint = "20 10"; sp_sessionlog = "10000000"
 *   starttls / ca_file / tls_verify / network_timeout as in ldap_targets.h
 *
 * Order, all reads before the first write: connect and read every server
 * (cn=config, its schema from the subschema subentry, its version from
 * cn=monitor), check server ids, check the replica (refused when it has a
 * cn=accesslog database this job did not add, like the script's "This is
 * not a replica", unless it is already a finished multi-master provider),
 * choose mode, rids, TLS and the mirror-mode attribute the schema knows;
 * then the accesslog databases (the first write on each server, so a
 * missing directory changes nothing), then the replica, then each master.
 * Every step reads before it writes, so a second run only prints "no-op"
 * lines.
 */
#include "ldap_promote.h"
#include "log.h"
#include "state.h"

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
	const char *tls = NULL;
	bool st = false, create = false;
	if (ldap_conn_parse(sc, file, true, &k->t.conn, err))
		return -1;
	if (cval_str(g, "replica", NULL, &k->replica, file, err) ||
	    cval_int(g, "server_id", -1, &k->server_id, file, err) ||
	    cval_str(g, "replication_dn", "uid=zmreplica,cn=admins,cn=zimbra", &k->repl_dn,
		     file, err) ||
	    cval_str(g, "replication_password_file", NULL, &k->repl_pw_file, file, err) ||
	    cval_str(g, "retry", "60 +", &k->retry, file, err) ||
	    cval_str(g, "mode", "auto", &k->mode, file, err) ||
	    cval_str(g, "flavor", NULL, &k->flavor, file, err) ||
	    cval_str(g, "localconfig", NULL, &k->localconfig, file, err) ||
	    cval_str(g, "accesslog_dir", NULL, &k->accesslog_dir, file, err) ||
	    cval_bool(g, "create_accesslog_dir", false, &create, file, err) ||
	    cval_str(g, "sp_checkpoint", "20 10", &k->sp_checkpoint, file, err) ||
	    cval_str(g, "sp_sessionlog", "10000000", &k->sp_sessionlog, file, err) ||
	    cval_str(g, "agreement_tls", NULL, &tls, file, err) ||
	    cval_bool(g, "agreement_starttls", false, &st, file, err) ||
	    cval_str(g, "agreement_tls_cacertdir", NULL, &k->agreement_tls_cacertdir, file, err) ||
	    cval_str(g, "agreement_tls_cacert", NULL, &k->agreement_tls_cacert, file, err) ||
	    cval_int(g, "rid_base", -1, &k->rid_base, file, err) ||
	    cval_int(g, "accesslog_maxsize", 85899345920LL, &k->accesslog_maxsize, file, err))
		return ldap_key_err(sc, err);
	k->create_dir = cval_get(g, "create_accesslog_dir") ? create : -1;
	if (!k->replica)
		return ldap_vfail(sc, NULL, file, "replica", err, "required (LDAP URI of the replica)");
	if (strncmp(k->replica, "ldap", 4) || !strstr(k->replica, "://"))
		return ldap_vfail(sc, cval_get(g, "replica"), file, "replica", err,
				  "'%s' is not an LDAP URI", k->replica);
	if (k->server_id < 1 || k->server_id > 4095)
		return ldap_vfail(sc, cval_get(g, "server_id"), file, "server_id", err,
				  "required, 1..4095");
	if (!*k->repl_dn)
		return ldap_vfail(sc, cval_get(g, "replication_dn"), file, "replication_dn", err,
				  "must not be empty");
	if (!k->repl_pw_file)
		return ldap_vfail(sc, NULL, file, "replication_password_file", err, "required");
	if (!*k->retry || strchr(k->retry, '"'))
		return ldap_vfail(sc, cval_get(g, "retry"), file, "retry", err,
				  "expected a syncrepl retry like \"60 +\"");
	if (strcmp(k->mode, "auto") && strcmp(k->mode, "delta") && strcmp(k->mode, "plain"))
		return ldap_vfail(sc, cval_get(g, "mode"), file, "mode", err,
				  "expected auto, delta or plain");
	if (k->flavor && strcmp(k->flavor, "zimbra") && strcmp(k->flavor, "carbonio"))
		return ldap_vfail(sc, cval_get(g, "flavor"), file, "flavor", err,
				  "expected \"zimbra\" (/opt/zimbra) or \"carbonio\" (/opt/zextras)");
	if (tls && cval_get(g, "agreement_starttls"))
		return ldap_vfail(sc, cval_get(g, "agreement_starttls"), file, "agreement_starttls",
				  err, "give agreement_tls or agreement_starttls, not both");
	if (tls && strcmp(tls, "auto") && strcmp(tls, "starttls") && strcmp(tls, "plain"))
		return ldap_vfail(sc, cval_get(g, "agreement_tls"), file, "agreement_tls", err,
				  "expected auto, starttls or plain");
	if (tls)
		k->tls = !strcmp(tls, "starttls") ? PM_TLS_STARTTLS
			 : !strcmp(tls, "plain") ? PM_TLS_PLAIN : PM_TLS_AUTO;
	else if (cval_get(g, "agreement_starttls"))
		k->tls = st ? PM_TLS_STARTTLS : PM_TLS_PLAIN;
	else
		k->tls = PM_TLS_AUTO;
	k->tls_explicit_plain = k->tls == PM_TLS_PLAIN;
	static const char *const paths[] = { "accesslog_dir", "agreement_tls_cacertdir",
					      "localconfig", NULL };
	const char *vals[] = { k->accesslog_dir, k->agreement_tls_cacertdir, k->localconfig };
	for (size_t i = 0; paths[i]; i++)
		if (vals[i] && (vals[i][0] != '/' || strpbrk(vals[i], " \t\"'\\")))
			return ldap_vfail(sc, cval_get(g, paths[i]), file, paths[i], err,
					  "expected an absolute path without spaces or quotes");
	if (k->rid_base != -1 && (k->rid_base < 0 || k->rid_base > 999))
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
	    cval_str(it, "accesslog_dir", NULL, &m->accesslog_dir, file, err))
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
	if (m->accesslog_dir && (m->accesslog_dir[0] != '/' || strpbrk(m->accesslog_dir, " \t\"'\\")))
		return ldap_vfail(sc, it, file, "masters", err,
				  "element %zu: accesslog_dir: expected an absolute path without "
				  "spaces or quotes", i + 1);
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
	struct pm_plan pl;
	struct node *nd;              /* nd[0] the replica, nd[1..] the masters (k.t's order) */
	size_t nn;
	char *pw, *rpw;               /* bind and replication passwords */
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

/* localconfig's notion of true ("1", "true", "yes"; the scripts test Perl truth). */
static bool lc_true(const char *v)
{
	return v && (!strcmp(v, "1") || streq_ci(v, "true") || streq_ci(v, "yes"));
}

/*
 * 0. flavor, paths and the agreements' TLS from the keys and the replica's
 * localconfig (zmldapenable-mmr lines 73-75 and 197-212).
 */
static enum zmb_rc pm_resolve(struct pm_run *p)
{
	const struct pm_conf *k = &p->k;
	struct pm_plan *pl = &p->pl;
	char *home = NULL, *sts = NULL, *ips = NULL;
	enum zmb_rc rc = ZMB_OK;
	const char *flavor = k->flavor;
	const char *why = flavor ? "the flavor key" : NULL;

	if (k->localconfig) {
		rc = localconfig_get(k->localconfig, "zimbra_home", &home, &p->e);
		if (!rc)
			rc = localconfig_get(k->localconfig, "ldap_starttls_supported", &sts, &p->e);
		if (!rc)
			rc = localconfig_get(k->localconfig, "zimbra_require_interprocess_security",
					     &ips, &p->e);
		if (rc)
			goto out;
		if (!flavor) {
			const char *h = home ? home : k->localconfig;
			flavor = !strncmp(h, "/opt/zextras", 12) ? "carbonio" : "zimbra";
			why = home ? "zimbra_home in localconfig" : "the localconfig path";
		}
	}
	if (!flavor) {
		flavor = "zimbra";
		why = "the default; set flavor or localconfig";
	}
	pl->home = !strcmp(flavor, "carbonio") ? "/opt/zextras" : "/opt/zimbra";
	pl->accesslog_dir = k->accesslog_dir ? xstrdup(k->accesslog_dir)
					     : xasprintf("%s/data/ldap/accesslog/db", pl->home);
	pl->cacertdir = k->agreement_tls_cacertdir ? xstrdup(k->agreement_tls_cacertdir)
						   : xasprintf("%s/conf/ca", pl->home);
	stage_out(p->ctx, "flavor: %s (%s): accesslog %s, CA directory %s", flavor, why,
		  pl->accesslog_dir, pl->cacertdir);
	switch (k->tls) {
	case PM_TLS_STARTTLS:
		pl->starttls = true;
		break;
	case PM_TLS_PLAIN:
		pl->starttls = false;
		stage_out(p->ctx, "warning: agreement_tls = plain: the new agreements send the "
			  "replication password and the directory unencrypted (unless ldaps://)");
		break;
	case PM_TLS_AUTO:
		if (k->localconfig && !(lc_true(sts) && lc_true(ips))) {
			p->e = xasprintf("localconfig %s: step 'agreement TLS': "
					 "ldap_starttls_supported=%s, "
					 "zimbra_require_interprocess_security=%s: this installation "
					 "does not use StartTLS, so zmldapenable-mmr would write a "
					 "plaintext agreement; set agreement_tls = \"plain\" to accept "
					 "that, or \"starttls\"", k->localconfig, sts ? sts : "(unset)",
					 ips ? ips : "(unset)");
			rc = ZMB_ECONFIG;
			goto out;
		}
		pl->starttls = true;
		break;
	}
out:
	free(home);
	free(sts);
	free(ips);
	return rc;
}

/* 1. connect, bind and read every server (cn=config and schema) before the first write. */
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
		n->accesslog_dir = m && m->accesslog_dir ? m->accesslog_dir : p->pl.accesslog_dir;
	}
	for (size_t i = 0; i < p->nn; i++) {
		struct node *n = &p->nd[i];
		enum zmb_rc rc = ldap_target_connect(&k->t, i, p->pw, &n->c, &p->e);
		if (!rc)
			rc = node_read(n, k->t.conn.suffix, true, &p->e);
		if (!rc)
			rc = node_read_schema(n, &p->e);
		if (rc)
			return rc;
		zlog(ZLOG_INFO, p->ctx->sc->name, "%s %s: %s, %zu attribute types in its schema",
		     n->role, n->uri, n->version ? n->version : "version unknown (no cn=monitor)",
		     n->schema.n);
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

/*
 * 3. zmldappromote-replica-mmr refuses a server with cn=accesslog ("This is
 * not a replica.", lines 96-106).  Here that holds unless this job added it
 * (a state DB note written before the add: an earlier run that stopped
 * half-way) or the replica is already a finished multi-master provider.
 */
static enum zmb_rc pm_check_accesslog(struct pm_run *p)
{
	struct node *r = &p->nd[0];
	if (!r->aldb)
		return ZMB_OK;
	if (p->ctx->st) {
		char *key = pm_note_key(p->ctx, r->uri), *v = NULL;
		r->aldb_ours = !state_meta_get(p->ctx->st, key, &v);
		free(key);
		free(v);
	}
	if (r->aldb_ours || (r->multiprov && !r->updateref))
		return ZMB_OK;
	p->e = xasprintf("ldap server %s: step 'check replica': it has a cn=accesslog database "
			 "(%s) that this job did not add: it is a master, or a promotion was "
			 "begun by other means (zmldappromote-replica-mmr refuses it too: \"This "
			 "is not a replica.\"); finish that by hand or remove the database, then "
			 "run again", r->uri, r->aldb);
	return ZMB_ECONFLICT;
}

/* 3b. delta when asked, or (auto) when any server has an accesslog DB or a delta agreement. */
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

/*
 * 3c. Every attribute the writes will send must be in each server's schema:
 * one modify naming an unknown attribute is refused whole (OpenLDAP 2.4
 * has no olcMultiProvider).  Mirror mode is olcMirrorMode (2.4 and 2.5+),
 * olcMultiProvider only on a server that knows no olcMirrorMode.  The
 * accesslog DB's tuning attributes are left out where unknown
 * (pm_accesslog_db); the rest are required.
 */
static enum zmb_rc pm_check_schema(struct pm_run *p)
{
	static const char *const need[] = {
		"olcServerID", "olcSyncrepl", "olcUpdateRef", "olcDatabase", "olcDbDirectory",
		"olcSuffix", "olcAccess", "olcRootDN", "olcDbIndex", "olcOverlay",
		"olcSpCheckpoint", "olcSpSessionlog", "olcSpNoPresent", "olcSpReloadHint", NULL };
	static const char *const need_delta[] = {
		"olcAccessLogDB", "olcAccessLogOps", "olcAccessLogSuccess", "olcAccessLogPurge",
		NULL };
	bool mirror = true, multi = true;
	for (size_t i = 0; i < p->nn; i++) {
		const struct node *n = &p->nd[i];
		for (int set = 0; set < 2; set++) {
			const char *const *l = set ? need_delta : need;
			for (size_t j = 0; (!set || p->pl.delta) && l[j]; j++) {
				if (!node_knows(n, l[j])) {
					p->e = xasprintf("ldap server %s: step 'check schema': the "
							 "server does not know %s (%s); nothing was "
							 "written", n->uri, l[j],
							 set ? "is the accesslog module loaded?"
							     : "is the syncprov module loaded?");
					return ZMB_ECONFIG;
				}
			}
		}
		mirror &= node_knows(n, "olcMirrorMode");
		multi &= node_knows(n, "olcMultiProvider");
	}
	if (!mirror && !multi) {
		p->e = xasprintf("ldap servers: step 'check schema': no server attribute for "
				 "mirror mode (olcMirrorMode / olcMultiProvider) common to all");
		return ZMB_ECONFIG;
	}
	p->pl.mirror_attr = mirror ? "olcMirrorMode" : "olcMultiProvider";
	return ZMB_OK;
}

static bool pulls_from(const struct node *n, const char *uri)
{
	bool has = false;
	for (size_t j = 0; j < n->syncrepl.n; j++)
		has |= sr_provider_is(n->syncrepl.v[j], uri);
	return has;
}

/*
 * rid for a new agreement on n: `want`, else 100 (zmldapenable-mmr's
 * default, lines 39 and 117-124: an error when taken), else with rid_base
 * the next free one.
 */
static enum zmb_rc pm_pick_rid(struct pm_run *p, const struct node *n, long long want,
			       const struct rid_set *taken, long long *out)
{
	char *prov = NULL;
	if (want < 0 && p->k.rid_base < 0)
		want = 100;
	if (want >= 0 && (rid_owner(&n->syncrepl, want, &prov) || (taken && rid_set_has(taken, want)))) {
		p->e = xasprintf("ldap server %s: step 'check rid': rid %lld is already used "
				 "by the agreement with provider %s; set the master's rid (or "
				 "replica_rid) to a free one", n->uri, want,
				 prov ? prov : "chosen for another master");
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

/* 5. the accesslog databases first: replica, then masters without one. */
static enum zmb_rc pm_apply_accesslog(struct pm_run *p)
{
	for (size_t i = 0; p->pl.delta && i < p->nn; i++) {
		enum zmb_rc rc = pm_accesslog_db(p->ctx, &p->nd[i], &p->k, &p->pl, &p->e);
		if (rc)
			return rc;
	}
	return ZMB_OK;
}

/* 6. the replica (zmldappromote-replica-mmr): server id, overlays, agreements, mirror mode. */
static enum zmb_rc pm_apply_replica(struct pm_run *p)
{
	struct node *r = &p->nd[0];
	enum zmb_rc rc = pm_server_id(p->ctx, r, &p->e);
	if (!rc)
		rc = pm_provider(p->ctx, r, &p->k, &p->pl, &p->e);
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
	rc = pm_multiprovider(p->ctx, r, &p->k, &p->pl, provs, rids, np, p->rpw, &p->e);
	free(provs);
	free(rids);
	return rc;
}

/* 7. ldap_is_master = true in the replica's localconfig (the script's last line, 169). */
static enum zmb_rc pm_is_master(struct pm_run *p)
{
	static const char *const name[] = { "ldap_is_master" };
	static const char *const val[] = { "true" };
	if (!p->k.localconfig) {
		stage_out(p->ctx, "replica %s: ldap_is_master: not set here (no localconfig key); "
			  "on the replica run: zmlocalconfig -e ldap_is_master=true", p->nd[0].uri);
		return ZMB_OK;
	}
	enum zmb_rc rc = localconfig_set(p->ctx, p->k.localconfig, name, val, 1, true, &p->e);
	if (!rc)
		crashpoint("ldap localconfig ldap_is_master");
	return rc;
}

/* 8. each old master (zmldapenable-mmr): server id, overlays, agreement to the replica. */
static enum zmb_rc pm_apply_masters(struct pm_run *p)
{
	const char *prov = p->nd[0].uri;
	for (size_t i = 1; i < p->nn; i++) {
		struct node *m = &p->nd[i];
		enum zmb_rc rc = pm_server_id(p->ctx, m, &p->e);
		if (!rc)
			rc = pm_provider(p->ctx, m, &p->k, &p->pl, &p->e);
		if (!rc)
			rc = pm_multiprovider(p->ctx, m, &p->k, &p->pl, &prov, &m->new_rid,
					      m->new_rid >= 0 ? 1 : 0, p->rpw, &p->e);
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
	rc = pm_resolve(&p);
	if (!rc)
		rc = pm_connect(&p);
	if (!rc)
		rc = pm_check_ids(&p);
	if (!rc)
		rc = pm_check_accesslog(&p);
	if (rc)
		goto fail;
	p.pl.delta = pm_choose_mode(&p);
	rc = pm_check_schema(&p);
	if (!rc)
		rc = pm_plan_rids(&p);
	if (rc)
		goto fail;
	stage_out(ctx, "layout: %s; mirror mode as %s; agreements %s",
		  p.pl.delta ? "delta-syncrepl (accesslog)" : "plain syncrepl", p.pl.mirror_attr,
		  p.pl.starttls ? "with starttls=critical" : "without StartTLS");
	rc = pm_apply_accesslog(&p);
	if (!rc)
		rc = pm_apply_replica(&p);
	if (!rc)
		rc = pm_is_master(&p);
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
	free(p.pl.accesslog_dir);
	free(p.pl.cacertdir);
	secret_free(p.pw);
	secret_free(p.rpw);
	pm_conf_release(&p.k);
	res.rc = rc;
	return res;
}
