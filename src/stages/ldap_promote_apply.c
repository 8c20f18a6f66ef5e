/*
 * ldap_promote_apply.c - the cn=config writes of ldap-promote-mmr
 * (contracts in ldap_promote.h).  Each writer reads before it writes, so a
 * second run only prints "no-op" lines; each write is followed by its
 * crashpoint() (tests/check_ldap_crash.c enumerates them).
 */
#include "ldap_promote.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* An olcSyncrepl value pulling from provider (contains the replication password). */
static char *agreement(const struct pm_conf *k, const char *provider, long long rid,
		       const char *suffix, const char *repl_pw, bool delta)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "rid=%03lld provider=%s bindmethod=simple timeout=0 network-timeout=0 "
		 "binddn=\"%s\" credentials=\"%s\" searchbase=\"%s\" filter=\"(objectclass=*)\" "
		 "scope=sub schemachecking=off type=refreshAndPersist retry=\"%s\"",
		 rid, provider, k->repl_dn, repl_pw, suffix, k->retry);
	if (delta)
		buf_adds(&b, " logbase=\"cn=accesslog\" "
			 "logfilter=\"(&(objectClass=auditWriteObject)(reqResult=0))\" "
			 "syncdata=accesslog");
	if (k->agreement_starttls)
		buf_adds(&b, " starttls=critical");
	if (k->agreement_tls_cacert)
		buf_addf(&b, " tls_cacert=\"%s\"", k->agreement_tls_cacert);
	buf_adds(&b, " keepalive=240:10:30");
	return buf_detach(&b);
}

static void pm_say(struct stage_ctx *ctx, const struct node *n, const char *step,
		   const char *what)
{
	stage_out(ctx, "%s %s: %s: %s", n->role, n->uri, step, what);
}

enum zmb_rc pm_server_id(struct stage_ctx *ctx, struct node *n, char **err)
{
	struct ldc_mods m = LDC_MODS_INIT;
	char v[32];
	if (n->sid) {
		pm_say(ctx, n, "server id", "no-op (already set)");
		return ZMB_OK;
	}
	snprintf(v, sizeof v, "%lld", n->want_sid);
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcServerID", v);
	enum zmb_rc rc = ldc_modify(n->c, "cn=config", &m, "add server id", err);
	ldc_mods_release(&m);
	if (!rc) {
		crashpoint("ldap server id");
		n->sid = xstrdup(v);
		char *msg = xasprintf("added %s", v);
		pm_say(ctx, n, "server id", msg);
		free(msg);
	}
	return rc;
}

/* The accesslog database (olcDatabase={IDX}mdb at the data DB's index) unless there is one. */
static enum zmb_rc pm_accesslog_db(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
				   char **err)
{
	struct ldc_mods m = LDC_MODS_INIT;
	char *dn = NULL, *v = NULL;
	enum zmb_rc rc = ZMB_OK;

	if (n->aldb) {
		pm_say(ctx, n, "accesslog database", "no-op (present)");
		return ZMB_OK;
	}
	int idx = db_index(n->datadb);
	if (idx < 0) {
		*err = xasprintf("ldap server %s: step 'add accesslog database': cannot "
				 "parse the data database DN '%s'", n->uri, n->datadb);
		rc = ZMB_EPROTO;
		goto out;
	}
	if (ldc_uri_is_local(n->uri) && mkdir_p(n->accesslog_dir, 0700) < 0) {
		*err = xasprintf("ldap server %s: step 'add accesslog database': cannot "
				 "create '%s': %s", n->uri, n->accesslog_dir, strerror(errno));
		rc = ZMB_EIO;
		goto out;
	}
	dn = xasprintf("olcDatabase={%d}mdb,cn=config", idx);
	v = xasprintf("{%d}mdb", idx);
	ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcDatabaseConfig");
	ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcMdbConfig");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcDatabase", v);
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcSuffix", "cn=accesslog");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcDbDirectory", n->accesslog_dir);
	if (n->rootdn)
		ldc_mods_add(&m, LDAP_MOD_ADD, "olcRootDN", n->rootdn);
	free(v);
	v = xasprintf("{0}to * by dn.exact=\"%s\" read by * none", k->repl_dn);
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccess", v);
	free(v);
	v = xasprintf("{0}dn.exact=\"%s\" size=unlimited time=unlimited", k->repl_dn);
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcLimits", v);
	free(v);
	v = xasprintf("%lld", k->accesslog_maxsize);
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcDbMaxSize", v);
	static const char *const idx_vals[] = { "entryCSN eq", "objectClass eq",
						"reqEnd eq", "reqResult eq", "reqStart eq" };
	for (size_t i = 0; i < sizeof idx_vals / sizeof *idx_vals; i++)
		ldc_mods_add(&m, LDAP_MOD_ADD, "olcDbIndex", idx_vals[i]);
	rc = ldc_add(n->c, dn, &m, "add accesslog database", err);
	if (rc)
		goto out;
	crashpoint("ldap accesslog database");
	pm_say(ctx, n, "accesslog database", "added");
	rc = node_read(n, k->t.conn.suffix, true, err);   /* the data DB index shifted */
	if (rc)
		goto out;
	if (!n->aldb) {
		*err = xasprintf("ldap server %s: step 'add accesslog database': the new "
				 "database is not visible", n->uri);
		rc = ZMB_EPROTO;
	}
out:
	ldc_mods_release(&m);
	free(dn);
	free(v);
	return rc;
}

/* The syncprov overlay on the accesslog database unless there is one. */
static enum zmb_rc pm_accesslog_syncprov(struct stage_ctx *ctx, struct node *n, char **err)
{
	struct ldc_mods m = LDC_MODS_INIT;
	char *ov = NULL, *dn = NULL;
	enum zmb_rc rc = find_overlay(n, n->aldb, "olcSyncProvConfig", &ov, NULL,
				      "find accesslog syncprov", err);
	if (rc || ov) {
		if (!rc)
			pm_say(ctx, n, "syncprov on cn=accesslog", "no-op (present)");
		goto out;
	}
	dn = xasprintf("olcOverlay=syncprov,%s", n->aldb);
	ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcOverlayConfig");
	ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcSyncProvConfig");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcOverlay", "syncprov");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcSpNoPresent", "TRUE");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcSpReloadHint", "TRUE");
	rc = ldc_add(n->c, dn, &m, "add accesslog syncprov", err);
	if (rc)
		goto out;
	crashpoint("ldap accesslog syncprov");
	pm_say(ctx, n, "syncprov on cn=accesslog", "added");
out:
	ldc_mods_release(&m);
	free(ov);
	free(dn);
	return rc;
}

/* The syncprov overlay on the data database, its checkpoint and sessionlog as the job says. */
static enum zmb_rc pm_syncprov(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
			       char **err)
{
	struct ldc_mods m = LDC_MODS_INIT;
	struct ldc_entry sp = { NULL, NULL, 0 };
	char *ov = NULL, *dn = NULL;
	enum zmb_rc rc = find_overlay(n, n->datadb, "olcSyncProvConfig", &ov, &sp,
				      "find syncprov", err);
	if (rc)
		goto out;
	if (!ov) {
		dn = xasprintf("olcOverlay={0}syncprov,%s", n->datadb);
		ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcOverlayConfig");
		ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcSyncProvConfig");
		ldc_mods_add(&m, LDAP_MOD_ADD, "olcOverlay", "{0}syncprov");
		ldc_mods_add(&m, LDAP_MOD_ADD, "olcSpCheckpoint", k->sp_checkpoint);
		ldc_mods_add(&m, LDAP_MOD_ADD, "olcSpSessionlog", k->sp_sessionlog);
		rc = ldc_add(n->c, dn, &m, "add syncprov overlay", err);
		if (rc)
			goto out;
		crashpoint("ldap syncprov");
		pm_say(ctx, n, "syncprov on the data database", "added");
		goto out;
	}
	const char *cp = ldc_val(&sp, "olcSpCheckpoint");
	const char *sl = ldc_val(&sp, "olcSpSessionlog");
	if (!streq(cp, k->sp_checkpoint))
		ldc_mods_add(&m, LDAP_MOD_REPLACE, "olcSpCheckpoint", k->sp_checkpoint);
	if (!streq(sl, k->sp_sessionlog))
		ldc_mods_add(&m, LDAP_MOD_REPLACE, "olcSpSessionlog", k->sp_sessionlog);
	if (!m.n) {
		pm_say(ctx, n, "syncprov on the data database", "no-op (present)");
		goto out;
	}
	/* the DN the search returned ({0}syncprov), never a guessed one */
	rc = ldc_modify(n->c, ov, &m, "update syncprov overlay", err);
	if (rc)
		goto out;
	crashpoint("ldap syncprov update");
	pm_say(ctx, n, "syncprov on the data database", "checkpoint/sessionlog updated");
out:
	ldc_mods_release(&m);
	for (size_t i = 0; i < sp.nattrs; i++) {
		free(sp.attrs[i].name);
		strlist_release(&sp.attrs[i].vals);
	}
	free(sp.attrs);
	free(sp.dn);
	free(ov);
	free(dn);
	return rc;
}

/* The accesslog overlay on the data database unless there is one. */
static enum zmb_rc pm_accesslog_overlay(struct stage_ctx *ctx, struct node *n, char **err)
{
	struct ldc_mods m = LDC_MODS_INIT;
	char *ov = NULL, *dn = NULL;
	enum zmb_rc rc = find_overlay(n, n->datadb, "olcAccessLogConfig", &ov, NULL,
				      "find accesslog overlay", err);
	if (rc || ov) {
		if (!rc)
			pm_say(ctx, n, "accesslog overlay on the data database", "no-op (present)");
		goto out;
	}
	dn = xasprintf("olcOverlay=accesslog,%s", n->datadb);
	ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcOverlayConfig");
	ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcAccessLogConfig");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcOverlay", "accesslog");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccessLogDB", "cn=accesslog");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccessLogOps", "writes");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccessLogSuccess", "TRUE");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccessLogPurge", "01+00:00  00+04:00");
	rc = ldc_add(n->c, dn, &m, "add accesslog overlay", err);
	if (rc)
		goto out;
	crashpoint("ldap accesslog overlay");
	pm_say(ctx, n, "accesslog overlay on the data database", "added");
out:
	ldc_mods_release(&m);
	free(ov);
	free(dn);
	return rc;
}

/* accesslog DB + its syncprov, syncprov and accesslog overlays on the data DB. */
enum zmb_rc pm_provider(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
			bool delta, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	if (delta) {
		rc = pm_accesslog_db(ctx, n, k, err);
		if (!rc)
			rc = pm_accesslog_syncprov(ctx, n, err);
	}
	if (!rc)
		rc = pm_syncprov(ctx, n, k, err);
	if (!rc && delta)
		rc = pm_accesslog_overlay(ctx, n, err);
	return rc;
}

/* Agreements + olcMultiProvider in one modify, then olcUpdateRef away. */
enum zmb_rc pm_multiprovider(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
			     const char *const *provs, const long long *rids, size_t np,
			     const char *repl_pw, bool delta, char **err)
{
	struct ldc_mods m = LDC_MODS_INIT;
	enum zmb_rc rc = ZMB_OK;

	for (size_t i = 0; i < np; i++) {
		char *a = agreement(k, provs[i], rids[i], k->t.conn.suffix, repl_pw, delta);
		ldc_mods_add(&m, LDAP_MOD_ADD, "olcSyncrepl", a);
		secret_free(a);
	}
	if (!n->multiprov)
		ldc_mods_add(&m, LDAP_MOD_REPLACE, "olcMultiProvider", "TRUE");
	if (m.n) {
		rc = ldc_modify(n->c, n->datadb, &m,
				np ? "add agreement" : "enable multi-provider", err);
		if (rc)
			goto out;
		crashpoint("ldap agreement");
		for (size_t i = 0; i < np; i++) {
			char *msg = xasprintf("added rid=%03lld provider=%s%s", rids[i], provs[i],
					      delta ? " (delta)" : "");
			pm_say(ctx, n, "agreement", msg);
			free(msg);
		}
		if (!n->multiprov)
			pm_say(ctx, n, "multi-provider", "enabled");
		n->multiprov = true;
	} else {
		pm_say(ctx, n, "agreement", "no-op (present)");
		pm_say(ctx, n, "multi-provider", "no-op (already TRUE)");
	}
	ldc_mods_release(&m);
	if (n->updateref) {
		ldc_mods_add(&m, LDAP_MOD_DELETE, "olcUpdateRef", NULL);
		rc = ldc_modify(n->c, n->datadb, &m, "remove update referral", err);
		if (rc)
			goto out;
		crashpoint("ldap update referral removed");
		n->updateref = false;
		pm_say(ctx, n, "olcUpdateRef", "removed");
	} else {
		pm_say(ctx, n, "olcUpdateRef", "no-op (absent)");
	}
out:
	ldc_mods_release(&m);
	return rc;
}
