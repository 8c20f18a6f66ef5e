/*
 * ldap_promote_apply.c - the cn=config writes of ldap-promote-mmr
 * (contracts in ldap_promote.h).  Each writer reads before it writes, so a
 * second run only prints "no-op" lines; each write is followed by its
 * crashpoint() (tests/check_ldap_crash.c enumerates them).
 */
#include "ldap_promote.h"
#include "state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * zmldapenable-mmr's olcSyncrepl, in its order (src/libexec/zmldapenable-mmr
 * lines 197-212): starttls=critical after the credentials when the
 * installation uses StartTLS and the provider is not ldaps://; tls_cacertdir
 * always; the logbase/logfilter/syncdata of delta-syncrepl (plain mode, for
 * a directory without accesslog, leaves them out).  Unlike the script the
 * credentials are quoted, so a password with a space survives.
 */
char *pm_agreement(const struct pm_conf *k, const struct pm_plan *pl, const char *provider,
		   long long rid, const char *repl_pw)
{
	struct buf b = BUF_INIT;
	bool ldaps = !strncmp(provider, "ldaps://", 8);
	bool q = strpbrk(k->repl_dn, " \t\"") != NULL;
	buf_addf(&b, "rid=%lld provider=%s bindmethod=simple timeout=0 network-timeout=0 "
		 "binddn=%s%s%s credentials=\"%s\"", rid, provider, q ? "\"" : "", k->repl_dn,
		 q ? "\"" : "", repl_pw);
	if (pl->starttls && !ldaps)
		buf_adds(&b, " starttls=critical");
	buf_addf(&b, " filter=\"(objectclass=*)\" searchbase=\"%s\"", k->t.conn.suffix);
	if (pl->delta)
		buf_adds(&b, " logfilter=\"(&(objectClass=auditWriteObject)(reqResult=0))\" "
			 "logbase=cn=accesslog");
	buf_addf(&b, " scope=sub schemachecking=off type=refreshAndPersist retry=\"%s\"",
		 k->retry);
	if (pl->delta)
		buf_adds(&b, " syncdata=accesslog");
	buf_addf(&b, " tls_cacertdir=%s", pl->cacertdir);
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

char *pm_note_key(const struct stage_ctx *ctx, const char *uri)
{
	char *u = ldc_uri_norm(uri);
	char *k = xasprintf("ldap-promote-mmr:%s:accesslog:%s", ctx->sc->name, u);
	free(u);
	return k;
}

/* Add attr: val unless the server's schema lacks attr (then say so: an optional tuning). */
static void add_opt(struct stage_ctx *ctx, const struct node *n, struct ldc_mods *m,
		    const char *attr, const char *val)
{
	if (node_knows(n, attr)) {
		ldc_mods_add(m, LDAP_MOD_ADD, attr, val);
		return;
	}
	stage_out(ctx, "%s %s: accesslog database: %s left out (not in this server's schema)",
		  n->role, n->uri, attr);
}

/* "ldap://host:389/" -> "host" (caller frees). */
static char *uri_host(const char *uri)
{
	const char *p = strstr(uri, "://");
	p = p ? p + 3 : uri;
	size_t len = *p == '[' ? strcspn(p, "]") + 1 : strcspn(p, ":/");
	return len ? xstrndup(p, len) : xstrdup("localhost");
}

/*
 * The accesslog database as zmldappromote-replica-mmr adds it (lines 107-132
 * of the script; zmldapenable-mmr lines 140-165 on a master without one):
 * at the data DB's index (Zimbra: {2}mdb, the data DB becomes {3}), the
 * script's access rule, limits and tuning.  The script's access rule names
 * uid=zmreplica; the job's replication_dn takes its place.
 */
enum zmb_rc pm_accesslog_db(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
			    const struct pm_plan *pl, char **err)
{
	struct ldc_mods m = LDC_MODS_INIT;
	char *dn = NULL, *v = NULL, *note = NULL;
	const char *dir = n->accesslog_dir ? n->accesslog_dir : pl->accesslog_dir;
	enum zmb_rc rc = ZMB_OK;

	if (n->aldb) {
		pm_say(ctx, n, "accesslog database", n->aldb_ours ? "no-op (added by this job earlier)"
								   : "no-op (present)");
		return ZMB_OK;
	}
	int idx = db_index(n->datadb);
	if (idx < 0) {
		*err = xasprintf("ldap server %s: step 'add accesslog database': cannot "
				 "parse the data database DN '%s'", n->uri, n->datadb);
		rc = ZMB_EPROTO;
		goto out;
	}
	bool create = k->create_dir < 0 ? ldc_uri_is_local(n->uri) : k->create_dir == 1;
	if (create && mkdir_p(dir, 0700) < 0) {
		*err = xasprintf("ldap server %s: step 'add accesslog database': cannot "
				 "create '%s': %s", n->uri, dir, strerror(errno));
		rc = ZMB_EIO;
		goto out;
	}
	dn = xasprintf("olcDatabase={%d}mdb,cn=config", idx);
	v = xasprintf("{%d}mdb", idx);
	ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcDatabaseConfig");
	ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcMdbConfig");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcDatabase", v);
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcDbDirectory", dir);
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcSuffix", "cn=accesslog");
	free(v);
	v = xasprintf("{0}to dn.subtree=\"cn=accesslog\"  by dn.exact=\"uid=zimbra,cn=admins,"
		      "cn=zimbra\" read  by dn.exact=\"cn=config\" read  by dn.exact=\"%s\" read",
		      k->repl_dn);
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccess", v);
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcLastMod", "TRUE");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcMaxDerefDepth", "15");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcReadOnly", "FALSE");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcRootDN", "cn=config");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcSizeLimit", "unlimited");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcTimeLimit", "unlimited");
	add_opt(ctx, n, &m, "olcMonitoring", "TRUE");
	add_opt(ctx, n, &m, "olcDbCheckpoint", "0 0");
	add_opt(ctx, n, &m, "olcDbEnvFlags", "writemap");
	add_opt(ctx, n, &m, "olcDbEnvFlags", "nometasync");
	add_opt(ctx, n, &m, "olcDbNoSync", "TRUE");
	static const char *const idx_vals[] = { "entryCSN eq", "objectClass eq",
						"reqEnd eq", "reqResult eq", "reqStart eq" };
	for (size_t i = 0; i < sizeof idx_vals / sizeof *idx_vals; i++)
		ldc_mods_add(&m, LDAP_MOD_ADD, "olcDbIndex", idx_vals[i]);
	add_opt(ctx, n, &m, "olcDbMode", "0600");
	add_opt(ctx, n, &m, "olcDbSearchStack", "16");
	free(v);
	v = xasprintf("%lld", k->accesslog_maxsize);
	add_opt(ctx, n, &m, "olcDbMaxSize", v);
	/* the note first: a crash after the add must find the DB marked as ours */
	if (ctx->st) {
		note = pm_note_key(ctx, n->uri);
		rc = state_meta_set(ctx->st, note, "added");
		if (rc) {
			*err = xasprintf("ldap server %s: step 'add accesslog database': cannot "
					 "record it in the state DB", n->uri);
			goto out;
		}
	}
	rc = ldc_add(n->c, dn, &m, "add accesslog database", err);
	if (rc) {
		/* back-mdb's config check (servers/slapd/back-mdb/config.c, mdb_cf_gen
		 * MDB_DIRECTORY): "olcDbDirectory: value #0: invalid path: ..." */
		if (*err && strstr(*err, "olcDbDirectory") && strstr(*err, "invalid path")) {
			char *host = uri_host(n->uri);
			char *e = xasprintf("ldap server %s: step 'add accesslog database': the "
					    "directory '%s' does not exist on %s (slapd: invalid "
					    "path); nothing was changed on that server.  Create it "
					    "there as the LDAP user, then run again: ssh %s "
					    "'mkdir -p %s && chmod 700 %s && chown %s: %s' (or an "
					    "exec stage before this one, as in "
					    "conf/%s-mmr.cfg.example)",
					    n->uri, dir, host, host, dir, dir,
					    strcmp(pl->home, "/opt/zextras") ? "zimbra" : "zextras",
					    dir, strcmp(pl->home, "/opt/zextras") ? "zimbra"
										   : "carbonio");
			free(host);
			free(*err);
			*err = e;
			rc = ZMB_ENOTFOUND;
		}
		goto out;
	}
	crashpoint("ldap accesslog database");
	pm_say(ctx, n, "accesslog database", "added");
	rc = node_read(n, k->t.conn.suffix, true, err);   /* the data DB index shifted */
	if (rc)
		goto out;
	n->aldb_ours = true;
	if (!n->aldb) {
		*err = xasprintf("ldap server %s: step 'add accesslog database': the new "
				 "database is not visible", n->uri);
		rc = ZMB_EPROTO;
	}
out:
	ldc_mods_release(&m);
	free(note);
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

/* "olcOverlay={3}syncprov,..." -> 3; -1 if the DN carries no index. */
static int overlay_index(const char *dn)
{
	const char *p = dn ? strchr(dn, '{') : NULL;
	if (!p || p > strchr(dn, ','))
		return -1;
	char *end = NULL;
	long v = strtol(p + 1, &end, 10);
	return end && *end == '}' && v >= 0 && v < 1000 ? (int)v : -1;
}

/*
 * The accesslog overlay on the data database unless there is one, right
 * after syncprov: `olcOverlay={1}accesslog` with syncprov at {0}, as both
 * scripts add it (zmldappromote-replica-mmr line 150, zmldapenable-mmr line
 * 185); slapd shifts the overlays behind it (Zimbra's dynlist, unique,
 * noopsrch).  Appended last it would log writes after they passed them.
 */
static enum zmb_rc pm_accesslog_overlay(struct stage_ctx *ctx, struct node *n, char **err)
{
	struct ldc_mods m = LDC_MODS_INIT;
	char *ov = NULL, *dn = NULL, *sp = NULL, *name = NULL;
	enum zmb_rc rc = find_overlay(n, n->datadb, "olcAccessLogConfig", &ov, NULL,
				      "find accesslog overlay", err);
	if (rc || ov) {
		if (!rc)
			pm_say(ctx, n, "accesslog overlay on the data database", "no-op (present)");
		goto out;
	}
	rc = find_overlay(n, n->datadb, "olcSyncProvConfig", &sp, NULL, "find syncprov", err);
	if (rc)
		goto out;
	int at = overlay_index(sp) + 1;
	name = at > 0 ? xasprintf("{%d}accesslog", at) : xstrdup("accesslog");
	dn = xasprintf("olcOverlay=%s,%s", name, n->datadb);
	ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcOverlayConfig");
	ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcAccessLogConfig");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcOverlay", name);
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccessLogDB", "cn=accesslog");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccessLogOps", "writes");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccessLogSuccess", "TRUE");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccessLogPurge", "01+00:00  00+04:00");
	rc = ldc_add(n->c, dn, &m, "add accesslog overlay", err);
	if (rc)
		goto out;
	crashpoint("ldap accesslog overlay");
	char *msg = xasprintf("added as %s", name);
	pm_say(ctx, n, "accesslog overlay on the data database", msg);
	free(msg);
out:
	ldc_mods_release(&m);
	free(ov);
	free(sp);
	free(name);
	free(dn);
	return rc;
}

/* syncprov on the accesslog DB, syncprov and accesslog overlays on the data DB. */
enum zmb_rc pm_provider(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
			const struct pm_plan *pl, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	if (pl->delta)
		rc = pm_accesslog_syncprov(ctx, n, err);
	if (!rc)
		rc = pm_syncprov(ctx, n, k, err);
	if (!rc && pl->delta)
		rc = pm_accesslog_overlay(ctx, n, err);
	return rc;
}

/*
 * Agreements + mirror mode in one modify (slapd 2.5 refuses multi-provider
 * on a database without olcSyncrepl), then olcUpdateRef away.  Mirror mode
 * is written as olcMirrorMode, as both scripts do: OpenLDAP 2.4 (Zimbra 8.8
 * and 9) knows only that name, 2.5+ keeps it as an alias of
 * olcMultiProvider; pl->mirror_attr was chosen from the server's schema.
 */
enum zmb_rc pm_multiprovider(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
			     const struct pm_plan *pl, const char *const *provs,
			     const long long *rids, size_t np, const char *repl_pw, char **err)
{
	struct ldc_mods m = LDC_MODS_INIT;
	enum zmb_rc rc = ZMB_OK;

	for (size_t i = 0; i < np; i++) {
		char *a = pm_agreement(k, pl, provs[i], rids[i], repl_pw);
		ldc_mods_add(&m, LDAP_MOD_ADD, "olcSyncrepl", a);
		secret_free(a);
	}
	if (!n->multiprov)
		ldc_mods_add(&m, LDAP_MOD_REPLACE, pl->mirror_attr, "TRUE");
	if (m.n) {
		rc = ldc_modify(n->c, n->datadb, &m,
				np ? "add agreement" : "enable multi-provider", err);
		if (rc)
			goto out;
		crashpoint("ldap agreement");
		for (size_t i = 0; i < np; i++) {
			char *msg = xasprintf("added rid=%lld provider=%s%s%s", rids[i], provs[i],
					      pl->delta ? " (delta)" : "",
					      pl->starttls && strncmp(provs[i], "ldaps://", 8)
						      ? " starttls=critical" : "");
			pm_say(ctx, n, "agreement", msg);
			free(msg);
		}
		if (!n->multiprov) {
			char *msg = xasprintf("enabled (%s: TRUE)", pl->mirror_attr);
			pm_say(ctx, n, "mirror mode", msg);
			free(msg);
		}
		n->multiprov = true;
	} else {
		pm_say(ctx, n, "agreement", "no-op (present)");
		pm_say(ctx, n, "mirror mode", "no-op (already TRUE)");
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
