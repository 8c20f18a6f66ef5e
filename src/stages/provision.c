/*
 * provision.c - the `provision` stage: bring the source's accounts to the
 * target before their mail (issue 15).
 *
 *   stages = ( { name = "provision"; type = "provision";
 *                existing = "update";          # | "skip" | "fail"
 *                cos_map = [ "default=standard" ];   # source COS name = target COS name
 *                copy_password = true;         # userPassword from source.ldap
 *                keep_zimbra_id = "try";       # | "required" | "never"
 *                resources = true;             # calendar resources (provision_resources.c)
 *                lists = true; },              # distribution lists (provision_lists.c)
 *              { name = "migrate"; type = "migrate"; } );
 *
 * Accounts: the job's selection (migration.accounts, accounts_file,
 * domains), names mapped with migration.domain_map.  For each one (a row
 * of provision_objects, state_prov.h):
 *   1. GetAccount on the source (applyCos=0: its own attributes) and the
 *      target (by the mapped name);
 *   2. missing on the target: CreateAccount with the allowed attributes
 *      (provision_attrs.c), the SAME zimbraId, the COS mapped by name, the
 *      password hash read from the source's LDAP; then AddAccountAlias per
 *      alias.  The row is 'creating' (committed) before the create is sent,
 *      so after a crash the account found on the target with the source's
 *      zimbraId is known to be ours and is completed, never judged by the
 *      `existing` policy;
 *   3. present (and not ours): `existing` decides: "skip" leaves it,
 *      "fail" fails the object, "update" sends one ModifyAccount with what
 *      differs and adds missing aliases, the diff recorded as an event.
 *      Ours: always compared and completed.  Nothing differs: no call.
 * A rerun compares only: zero create/modify calls when nothing changed.
 * --dry-run prints the plan (create / update with the diff / skip /
 * unchanged per account) and writes nothing, on the servers or in the DB.
 *
 * keep_zimbra_id: "try" (default) sends the source's zimbraId; a target that
 * refuses it (Carbonio 4.0.7-4.12.0) gets the account without it, one warning
 * a run, the new id recorded (provision_objects.target_id); "required" fails
 * the account then; "never" never sends it.  Before a create with the id the
 * target is asked for it (GetAccount by=id): Zimbra keeps no id unique.
 * A source account without userPassword (copy_password) fails: not created
 * without a password.
 *
 * Secrets: the password hash goes from the LDAP answer into the
 * CreateAccount envelope (wiped after sending, soap.c) and is wiped itself;
 * it never reaches an event, the output, the log or the DB of zmbatch.  The
 * target's CreateAccount handler logs its attributes, the hash too: with
 * target.ldap the hash is set over LDAP instead (target_password), else a
 * warning says so.  The LDAP passwords are read from *.ldap.password_file
 * and masked in the log.
 *
 * Runs in the main thread (stage.h); the connections are its own.
 */
#include "provision_int.h"
#include "ldapc.h"
#include "log.h"
#include "runctl.h"
#include "state_cutover.h"
#include "state_prov.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PROV_STAGE_KEYS \
	"name, type, existing, cos_map, create_cos, copy_password, create_domains, keep_zimbra_id, lists, resources"

static void prov_conf_release(struct prov_conf *k)
{
	strlist_release(&k->cos_from);
	strlist_release(&k->cos_to);
}

static int vfail(const struct stage_conf *sc, const struct cval *v, const char *file,
		 const char *key, char **err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static int vfail(const struct stage_conf *sc, const struct cval *v, const char *file,
		 const char *key, char **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	*err = xasprintf("%s:%d: stage '%s': key '%s': %s", file ? file : "?",
			 v && v->line ? v->line : sc->line, sc->name, key, msg);
	free(msg);
	return -1;
}

/* "file:line: key 'k': msg" from the cval accessors -> with the stage's name */
static int key_err(const struct stage_conf *sc, char **err)
{
	char *p = *err ? strstr(*err, "key '") : NULL;
	char *n = p ? xasprintf("%.*sstage '%s': %s", (int)(p - *err), *err, sc->name, p)
		    : xasprintf("stage '%s': %s", sc->name, *err ? *err : "bad key");
	free(*err);
	*err = n;
	return -1;
}

static int prov_parse(const struct stage_conf *sc, const char *file, struct prov_conf *k,
		      char **err)
{
	const struct cval *g = &sc->settings;
	static const char *const known[] = { "name", "type", "existing", "cos_map",
					     "copy_password", "create_domains", "create_cos",
					     "keep_zimbra_id", "lists", "resources", NULL };
	memset(k, 0, sizeof *k);
	for (size_t i = 0; i < g->n; i++) {
		bool ok = false;
		for (size_t j = 0; known[j] && !ok; j++)
			ok = g->items[i].name && !strcmp(g->items[i].name, known[j]);
		if (!ok)
			return vfail(sc, &g->items[i], file, g->items[i].name ? g->items[i].name : "?",
				     err, "unknown key (known keys: " PROV_STAGE_KEYS ")");
	}
	const char *ex = NULL, *kz = NULL;
	struct strlist map = STRLIST_INIT;
	if (cval_str(g, "existing", "update", &ex, file, err) ||
	    cval_str(g, "keep_zimbra_id", "try", &kz, file, err) ||
	    cval_bool(g, "copy_password", true, &k->copy_password, file, err) ||
	    cval_bool(g, "create_domains", false, &k->create_domains, file, err) ||
	    cval_bool(g, "create_cos", false, &k->create_cos, file, err) ||
	    cval_bool(g, "lists", true, &k->lists, file, err) ||
	    cval_bool(g, "resources", true, &k->resources, file, err) ||
	    cval_strlist(g, "cos_map", &map, file, err)) {
		strlist_release(&map);
		return key_err(sc, err);
	}
	const struct cval *cp = cval_get(g, "copy_password");
	k->line_copy_password = cp && cp->line ? cp->line : sc->line;
	if (!strcmp(ex, "update"))
		k->existing = EX_UPDATE;
	else if (!strcmp(ex, "skip"))
		k->existing = EX_SKIP;
	else if (!strcmp(ex, "fail"))
		k->existing = EX_FAIL;
	else {
		strlist_release(&map);
		return vfail(sc, cval_get(g, "existing"), file, "existing", err,
			     "must be one of \"update\", \"skip\", \"fail\" (not \"%s\")", ex);
	}
	if (!strcmp(kz, "try"))
		k->keep_id = KZ_TRY;
	else if (!strcmp(kz, "required"))
		k->keep_id = KZ_REQUIRED;
	else if (!strcmp(kz, "never"))
		k->keep_id = KZ_NEVER;
	else {
		strlist_release(&map);
		return vfail(sc, cval_get(g, "keep_zimbra_id"), file, "keep_zimbra_id", err,
			     "must be one of \"try\", \"required\", \"never\" (not \"%s\")", kz);
	}
	for (size_t i = 0; i < map.n; i++) {
		const char *eq = strchr(map.v[i], '=');
		if (!eq || eq == map.v[i] || !eq[1] || strchr(eq + 1, '=')) {
			int r = vfail(sc, cval_get(g, "cos_map"), file, "cos_map", err,
				      "'%s': expected \"SOURCE_COS=TARGET_COS\"", map.v[i]);
			strlist_release(&map);
			return r;
		}
		char *from = xstrndup(map.v[i], (size_t)(eq - map.v[i]));
		if (strlist_has_ci(&k->cos_from, from)) {
			int r = vfail(sc, cval_get(g, "cos_map"), file, "cos_map", err,
				      "COS '%s' mapped twice", from);
			free(from);
			strlist_release(&map);
			return r;
		}
		strlist_add_nodup(&k->cos_from, from);
		strlist_add(&k->cos_to, eq + 1);
	}
	strlist_release(&map);
	return 0;
}

int provision_validate(const struct stage_conf *sc, const char *file, char **err)
{
	struct prov_conf k;
	int r = prov_parse(sc, file, &k, err);
	prov_conf_release(&k);
	return r;
}

/* ---- the run ---- */

static char *read_accounts_file(const char *path, struct strlist *out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return xasprintf("cannot read accounts_file '%s': %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		strtrim(line);
		if (*line)
			strlist_add_nodup(out, xstrlower(line));
	}
	free(line);
	fclose(f);
	return NULL;
}

/* The job's accounts: explicit list, accounts_file, every account of `domains`. */
static enum zmb_rc discover(struct prov *p, struct strlist *names, char **err)
{
	const struct migration *m = &p->job->mig;
	for (size_t i = 0; i < m->accounts.n; i++)
		if (!strlist_has_ci(names, m->accounts.v[i]))
			strlist_add_nodup(names, xstrlower(m->accounts.v[i]));
	if (m->accounts_file) {
		struct strlist fl = STRLIST_INIT;
		char *e = read_accounts_file(m->accounts_file, &fl);
		if (e) {
			*err = e;
			strlist_release(&fl);
			return ZMB_ECONFIG;
		}
		for (size_t i = 0; i < fl.n; i++)
			if (!strlist_has_ci(names, fl.v[i]))
				strlist_add(names, fl.v[i]);
		strlist_release(&fl);
	}
	for (size_t d = 0; d < m->domains.n; d++) {
		struct zaccount *v = NULL;
		size_t n = 0;
		enum zmb_rc rc = soap_list_accounts(p->sh, p->stc, m->domains.v[d], &v, &n, err);
		if (rc)
			return rc;
		for (size_t i = 0; i < n; i++)
			if (!strlist_has_ci(names, v[i].name))
				strlist_add_nodup(names, xstrlower(v[i].name));
		zaccounts_free(v, n);
	}
	return ZMB_OK;
}

static long long idx_ci(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (streq_ci(l->v[i], s))
			return (long long)i;
	return -1;
}

/* The COS's row (kind 'cos'); ZMB_ESTATE with *err on a DB failure. */
static enum zmb_rc cos_row(struct prov *p, const char *sname, const char *tname,
			   struct prov_row *row, char **err)
{
	struct stage_ctx *ctx = p->ctx;
	if (state_prov_plan(p->st, ctx->sc->name, "cos", sname, tname) ||
	    state_prov_get(p->st, ctx->sc->name, "cos", sname, row)) {
		*err = xasprintf("state DB: %s", state_errmsg(p->st));
		return ZMB_ESTATE;
	}
	return ZMB_OK;
}

/*
 * create_cos: the source's COS made on the target as tname (CreateCos: a
 * copy of the target's default with the source's attributes on top, the
 * deny list of provision_attrs.c applied); *id the new COS's.  The row is
 * 'creating' before the create; COS_EXISTS (made meanwhile, or by us before
 * a crash) takes the existing one.  A dry run only says so.
 */
static enum zmb_rc create_cos(struct prov *p, const char *src_id, const char *sname,
			      const char *tname, char **id, char **err)
{
	struct stage_ctx *ctx = p->ctx;
	struct zattrs src = ZATTRS_INIT, want = ZATTRS_INIT;
	struct prov_row row;
	char *msg = NULL;
	enum zmb_rc rc;

	memset(&row, 0, sizeof row);
	if (ctx->dry_run) {
		stage_out(ctx, "create  cos %s -> %s (the source's settings)", sname, tname);
		*id = xstrdup("(new)");
		return ZMB_OK;
	}
	if ((rc = cos_row(p, sname, tname, &row, err)))
		return rc;
	if ((rc = zprov_get_cos(p->sh, p->stc, "id", src_id, NULL, NULL, &src, err)))
		goto out;
	for (size_t i = 0; i < src.n; i++) {
		if (!strcmp(src.v[i].v, "VALUE-BLOCKED") || !prov_cos_attr_copied(src.v[i].n))
			continue;
		char *v = prov_map_value(p->job, src.v[i].n, src.v[i].v);
		zattrs_add(&want, src.v[i].n, v);
		free(v);
	}
	msg = xasprintf("creating cos %s on the target (source cos %s)", tname, sname);
	if (state_prov_creating(p->st, ctx->run_id, row.id, msg)) {
		*err = xasprintf("state DB: %s", state_errmsg(p->st));
		rc = ZMB_ESTATE;
		goto out;
	}
	rc = zprov_create_cos(p->th, p->ttc, tname, &want, id, err);
	if (rc == ZMB_ECONFLICT) {
		free(*err);
		*err = NULL;
		rc = zprov_get_cos(p->th, p->ttc, "name", tname, id, NULL, NULL, err);
	}
	if (rc) {
		if ((rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND) &&
		    state_prov_failed(p->st, ctx->run_id, row.id, *err)) {
			free(*err);
			*err = xasprintf("state DB: %s", state_errmsg(p->st));
			rc = ZMB_ESTATE;
		}
		goto out;
	}
	crashpoint("provision: cos created on the target");
	free(msg);
	msg = xasprintf("created cos %s (%zu attribute value(s) from source cos %s)", tname, want.n,
			sname);
	if (state_prov_done(p->st, ctx->run_id, row.id, "created", msg)) {
		*err = xasprintf("state DB: %s", state_errmsg(p->st));
		rc = ZMB_ESTATE;
		goto out;
	}
	stage_out(ctx, "%s", msg);
out:
	state_prov_release(&row);
	zattrs_release(&src);
	zattrs_release(&want);
	free(msg);
	return rc;
}

/* A COS found on the target whose create this job had begun: completed. */
static enum zmb_rc cos_found(struct prov *p, const char *sname, const char *tname, char **err)
{
	struct prov_row row;
	memset(&row, 0, sizeof row);
	if (!p->st || !p->k.create_cos)
		return ZMB_OK;
	enum zmb_rc rc = cos_row(p, sname, tname, &row, err);
	if (rc == ZMB_OK && streq(row.state, "creating")) {
		char *msg = xasprintf("created cos %s (completed after a restart)", tname);
		if (state_prov_done(p->st, p->ctx->run_id, row.id, "created", msg)) {
			*err = xasprintf("state DB: %s", state_errmsg(p->st));
			rc = ZMB_ESTATE;
		}
		free(msg);
	}
	state_prov_release(&row);
	return rc;
}

/*
 * The target COS id for the source's zimbraCOSId: the source COS's name
 * (GetCos by id), renamed by cos_map, looked up by name on the target;
 * missing there: made (create_cos) or ZMB_ENOTFOUND with *err naming `who`
 * ("account 'x'", "domain 'y'") and the COS.
 */
static enum zmb_rc target_cos(struct prov *p, const char *who, const char *src_id,
			      char **tid, char **err)
{
	enum zmb_rc rc;
	long long i = idx_ci(&p->scos_id, src_id);
	if (i < 0) {
		char *name = NULL;
		if ((rc = zprov_get_cos(p->sh, p->stc, "id", src_id, NULL, &name, NULL, err)))
			return rc;
		strlist_add(&p->scos_id, src_id);
		strlist_add_nodup(&p->scos_name, name);
		i = (long long)p->scos_id.n - 1;
	}
	const char *sname = p->scos_name.v[i];
	long long m = idx_ci(&p->k.cos_from, sname);
	const char *tname = m >= 0 ? p->k.cos_to.v[m] : sname;
	long long j = idx_ci(&p->tcos_name, tname);
	if (j < 0) {
		char *id = NULL, *e = NULL;
		rc = zprov_get_cos(p->th, p->ttc, "name", tname, &id, NULL, NULL, &e);
		if (rc && rc != ZMB_ENOTFOUND) {
			*err = e;
			return rc;
		}
		free(e);
		if (id && (rc = cos_found(p, sname, tname, err))) {
			free(id);
			return rc;
		}
		if (!id && p->k.create_cos &&
		    (rc = create_cos(p, src_id, sname, tname, &id, err)))
			return rc;
		strlist_add(&p->tcos_name, tname);
		strlist_add_nodup(&p->tcos_id, id ? id : xstrdup(""));
		j = (long long)p->tcos_name.n - 1;
	}
	if (!*p->tcos_id.v[j]) {
		*err = xasprintf("%s: class of service '%s'%s%s%s does not exist on the "
				 "target (account.NO_SUCH_COS): create it there (or create_cos = true) "
				 "or map it with cos_map = [ \"%s=EXISTING_COS\" ]", who, tname,
				 m >= 0 ? " (source COS '" : "", m >= 0 ? sname : "",
				 m >= 0 ? "')" : "", sname);
		return ZMB_ENOTFOUND;
	}
	*tid = xstrdup(p->tcos_id.v[j]);
	return ZMB_OK;
}

/* A zimbraId is a UUID: only then is it put into an LDAP filter. */
static bool uuid_like(const char *s)
{
	size_t n = strlen(s);
	if (n < 8 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F') || s[i] == '-'))
			return false;
	return true;
}

/*
 * The account's userPassword from the source's LDAP, by zimbraId
 * (objectClass zimbraAccount, as Zimbra's own lookups: LdapProvisioning
 * getAccountById).  *hash NULL when the entry has none (caller secret_free()s).
 */
static enum zmb_rc ldap_hash(struct prov *p, const char *account, const char *zid, char **hash,
			     char **err)
{
	*hash = NULL;
	if (!uuid_like(zid)) {
		*err = xasprintf("account '%s': zimbraId '%s' is not a UUID", account, zid);
		return ZMB_EPROTO;
	}
	char *flt = xasprintf("(&(objectClass=zimbraAccount)(zimbraId=%s))", zid);
	const char *attrs[] = { "userPassword", NULL };
	struct ldc_result r = LDC_RESULT_INIT;
	enum zmb_rc rc = ldc_search(p->lc, p->job->source.ldap.base, LDAP_SCOPE_SUBTREE, flt, attrs,
				    &r, "read userPassword", err);
	free(flt);
	if (rc == ZMB_OK && r.n > 1) {
		*err = xasprintf("account '%s': %zu LDAP entries have zimbraId %s", account, r.n, zid);
		rc = ZMB_ECONFLICT;
	} else if (rc == ZMB_OK && r.n == 1) {
		const char *v = ldc_val(&r.e[0], "userPassword");
		*hash = v ? xstrdup(v) : NULL;
	}
	/* the values read are wiped with the result */
	for (size_t i = 0; i < r.n; i++)
		for (size_t j = 0; j < r.e[i].nattrs; j++)
			for (size_t k = 0; k < r.e[i].attrs[j].vals.n; k++)
				explicit_bzero(r.e[i].attrs[j].vals.v[k], strlen(r.e[i].attrs[j].vals.v[k]));
	ldc_result_release(&r);
	return rc;
}

/*
 * target.ldap: the hash set on the target account's entry over LDAP (found by its
 * zimbraId, objectClass zimbraAccount), then the servers' account caches flushed, so
 * that it never passes through CreateAccount, whose handler writes every attribute it
 * was given to the security log (zm-mailbox service/admin/CreateAccount.java handle:
 * ZimbraLog.security.info(ZimbraLog.encodeAttrs(..., attrs)); carbonio-mailbox
 * CreateAccount.java:62).  ZMB_ENOTFOUND / ZMB_ECONFLICT: no entry or several.
 */
static enum zmb_rc target_password(struct prov *p, const char *account, const char *tid,
				   const char *hash, char **err)
{
	if (!uuid_like(tid)) {
		*err = xasprintf("account '%s': target zimbraId '%s' is not a UUID", account, tid);
		return ZMB_EPROTO;
	}
	char *flt = xasprintf("(&(objectClass=zimbraAccount)(zimbraId=%s))", tid);
	const char *attrs[] = { "1.1", NULL };
	struct ldc_result r = LDC_RESULT_INIT;
	enum zmb_rc rc = ldc_search(p->tlc, p->job->target.ldap.base, LDAP_SCOPE_SUBTREE, flt,
				    attrs, &r, "find the target account", err);
	free(flt);
	if (rc == ZMB_OK && r.n != 1) {
		*err = xasprintf("account '%s': %zu entries with zimbraId %s in the target's LDAP "
				 "(%s): userPassword not set", account, r.n, tid,
				 p->job->target.ldap.url);
		rc = r.n ? ZMB_ECONFLICT : ZMB_ENOTFOUND;
	} else if (rc == ZMB_OK) {
		struct ldc_mods m = LDC_MODS_INIT;
		ldc_mods_add(&m, LDAP_MOD_REPLACE, "userPassword", hash);
		rc = ldc_modify(p->tlc, r.e[0].dn, &m, "set userPassword", err);
		ldc_mods_release(&m);   /* wipes the value */
		if (rc == ZMB_OK)
			rc = zprov_flush_account(p->th, p->ttc, tid, err);
	}
	ldc_result_release(&r);
	return rc;
}

/* Aliases in want that the target's zimbraMailAlias lacks. */
static void missing_aliases(const struct strlist *want, const struct zattrs *have,
			    struct strlist *out)
{
	struct strlist h = STRLIST_INIT;
	zattrs_values(have, "zimbraMailAlias", &h);
	for (size_t i = 0; i < want->n; i++)
		if (!strlist_has_ci(&h, want->v[i]) && !strlist_has_ci(out, want->v[i]))
			strlist_add(out, want->v[i]);
	strlist_release(&h);
}

/* A server's error text that quotes the hash back: the hash replaced by "***". */
static void redact(char **err, const char *secret)
{
	char *at;
	if (!*err || !secret || !*secret || !(at = strstr(*err, secret)))
		return;
	char *n = xasprintf("%.*s***%s", (int)(at - *err), *err, at + strlen(secret));
	free(*err);
	*err = n;
	redact(err, secret);
}

/* The account's signatures/identities the target lacks (target NULL: not there yet). */
static enum zmb_rc plan_kids(struct prov *p, const char *name, const char *target,
			     const struct zattrs *sattrs, struct prov_kids *kids, char **err)
{
	prov_kids_release(kids);
	return prov_kids_plan(p->job, p->sh, p->stc, name, p->th, p->ttc, target,
			      zattrs_get(sattrs, "zimbraSignatureId"), kids, err);
}

static enum zmb_rc prov_domain(struct prov *p, const char *name);

/*
 * Attributes whose server-side checks need what is made after the account
 * (held back from CreateAccount / the first ModifyAccount, sent in a
 * ModifyAccount after the aliases and the signatures):
 * - zimbraPrefAllowAddressForDelegatedSender: each value must be the entry's
 *   address or one of its aliases (zm-mailbox account/callback/
 *   AllowAddressForDelegatedSender.java:47-70; at create only the new name,
 *   48-53), so an alias listed there must exist first;
 * - signature ids: zimbraPrefCalendarAuto{Accept,Decline,Deny}SignatureId must
 *   name an existing signature with text/plain content (callback/
 *   PlainTextSignature.java:59-69; zimbra-attrs.xml:5693-5701); the other
 *   *SignatureId prefs have no callback (zimbra-attrs.xml:2593, 5252, 5741-5749)
 *   but are held back too so that they never point at nothing.
 */
static bool late_attr(const char *n)
{
	static const char *const late[] = {
		"zimbraPrefAllowAddressForDelegatedSender", "zimbraPrefDefaultSignatureId",
		"zimbraPrefForwardReplySignatureId", "zimbraPrefCalendarAutoAcceptSignatureId",
		"zimbraPrefCalendarAutoDeclineSignatureId", "zimbraPrefCalendarAutoDenySignatureId",
		"zimbraPrefCalendarAcceptSignatureId", "zimbraPrefCalendarTentativeSignatureId",
		"zimbraPrefCalendarDeclineSignatureId", NULL
	};
	for (size_t i = 0; late[i]; i++)
		if (!strcasecmp(late[i], n))
			return true;
	return false;
}

static void split_late(const struct zattrs *in, struct zattrs *now, struct zattrs *later)
{
	for (size_t i = 0; i < in->n; i++)
		zattrs_add(late_attr(in->v[i].n) ? later : now, in->v[i].n, in->v[i].v);
}

/* create_domains: the domains of the account's aliases too (each once a run). */
static enum zmb_rc alias_domains(struct prov *p, const struct zattrs *sattrs)
{
	struct strlist al = STRLIST_INIT;
	enum zmb_rc rc = ZMB_OK;
	if (!p->k.create_domains)
		return ZMB_OK;
	zattrs_values(sattrs, "zimbraMailAlias", &al);
	for (size_t i = 0; i < al.n && rc == ZMB_OK; i++) {
		const char *at = strrchr(al.v[i], '@');
		if (!at || !at[1] || strlist_has_ci(&p->domains_seen, at + 1))
			continue;
		char *d = xstrlower(at + 1);
		strlist_add(&p->domains_seen, d);
		if (p->st) {
			char *probe = xasprintf("x@%s", d);
			char *t = job_map_account(p->job, probe);
			if (state_prov_plan(p->st, p->ctx->sc->name, "domain", d, strchr(t, '@') + 1))
				rc = ZMB_ESTATE;
			free(t);
			free(probe);
		}
		if (rc == ZMB_OK)
			rc = prov_domain(p, d);
		free(d);
	}
	strlist_release(&al);
	return rc;
}

/* One account, start to end.  Returns the fatal errors only (server refused
 * us, state DB); an object's own failure is recorded and ZMB_OK returned. */
static enum zmb_rc prov_account(struct prov *p, const char *name)
{
	struct stage_ctx *ctx = p->ctx;
	enum zmb_rc rc, fatal = ZMB_OK;
	struct prov_row row;
	struct zattrs sattrs = ZATTRS_INIT, tattrs = ZATTRS_INIT, want = ZATTRS_INIT;
	struct zattrs mods = ZATTRS_INIT, create = ZATTRS_INIT, late = ZATTRS_INIT;
	struct zattrs early = ZATTRS_INIT;
	struct strlist aliases = STRLIST_INIT, add = STRLIST_INIT;
	struct prov_kids kids = { NULL, NULL, 0 };
	struct buf diff = BUF_INIT;
	char *sid = NULL, *tid = NULL, *cos = NULL, *hash = NULL, *err = NULL, *msg = NULL;
	char *canon = NULL;
	char *target = job_map_account(p->job, name);
	const char *outcome = NULL;

	memset(&row, 0, sizeof row);
	if (ctx->st && state_prov_get(ctx->st, ctx->sc->name, "account", name, &row) != ZMB_OK)
		memset(&row, 0, sizeof row);
	bool resumed_create = row.state && !strcmp(row.state, "creating");
	bool already_done = row.state && !strcmp(row.state, "done");

	if ((rc = zprov_get_account(p->sh, p->stc, name, &sid, NULL, &sattrs, &err))) {
		if (rc == ZMB_ENOACCOUNT)
			goto failed;
		fatal = rc;
		goto out;
	}
	prov_desired(p->job, &sattrs, &want, &aliases);
	const char *scos = zattrs_get(&sattrs, "zimbraCOSId");
	if (scos && *scos) {
		char *who = xasprintf("account '%s'", name);
		rc = target_cos(p, who, scos, &cos, &err);
		free(who);
		if (rc) {
			if (rc == ZMB_ENOTFOUND || rc == ZMB_EPROTO)
				goto failed;
			fatal = rc;
			goto out;
		}
		zattrs_add(&want, "zimbraCOSId", cos);
	}

	rc = zprov_get_account(p->th, p->ttc, target, &tid, &canon, &tattrs, &err);
	if (rc && rc != ZMB_ENOACCOUNT) {
		fatal = rc;
		goto out;
	}
	if (rc == ZMB_OK && canon && !streq_ci(canon, target)) {
		err = xasprintf("account '%s': %s is an alias of %s on the target: not touched",
				name, target, canon);
		goto failed;
	}
	if (rc == ZMB_ENOACCOUNT) {
		/* ---- create ---- */
		free(err);
		err = NULL;
		if (ctx->dry_run) {
			if ((rc = plan_kids(p, name, NULL, &sattrs, &kids, &err))) {
				fatal = rc;
				goto out;
			}
			stage_out(ctx, "create  %s -> %s (zimbraId %s, %zu attribute value(s), %zu "
				  "alias(es), %zu signature(s)/identit(ies)%s)", name, target, sid, want.n,
				  aliases.n, kids.n, p->lc ? ", password hash from source LDAP" : "");
			outcome = "created";
			goto out;
		}
		/* the same zimbraId on the target under another name */
		if (p->k.keep_id != KZ_NEVER &&
		    (rc = prov_id_taken(p, "account", name, sid, target, &err))) {
			if (rc == ZMB_ECONFLICT)
				goto failed;
			fatal = rc;
			goto out;
		}
		if (p->lc && (rc = ldap_hash(p, name, sid, &hash, &err))) {
			if (rc == ZMB_ECONFLICT || rc == ZMB_EPROTO)
				goto failed;
			fatal = rc;
			goto out;
		}
		if (p->lc && !hash) {
			/* never created without a password when one was asked for */
			err = xasprintf("account '%s': the source's LDAP (%s) returned no userPassword "
					"for zimbraId %s: the bind DN may not be allowed to read it, or "
					"the account authenticates elsewhere (external auth); not created "
					"(copy_password = false creates accounts without a password)",
					name, p->job->source.ldap.url, sid);
			goto failed;
		}
		if ((rc = alias_domains(p, &sattrs))) {
			fatal = rc;
			goto out;
		}
		split_late(&want, &create, &late);
		if (p->k.keep_id != KZ_NEVER)
			zattrs_add(&create, "zimbraId", sid);   /* shares and appointment links keep working */
		/* without target.ldap the password hash goes in CreateAccount, and the target's
		 * CreateAccount.handle logs every attribute given to it, the hash too (zm-mailbox
		 * service/admin/CreateAccount.java handle: ZimbraLog.security.info(ZimbraLog.
		 * encodeAttrs(...attrs)); carbonio-mailbox CreateAccount.java:62): the target's
		 * audit log (mailbox.log / audit.log) then holds it; warned once (provision_run).
		 * With target.ldap it is set there after the create (target_password). */
		if (hash && !p->tlc)
			zattrs_add(&create, "userPassword", hash);
		msg = xasprintf("creating %s on the target (zimbraId %s)", target, sid);
		if ((rc = state_prov_creating(p->st, ctx->run_id, row.id, msg))) {
			fatal = ZMB_ESTATE;
			goto out;
		}
		free(tid);
		tid = NULL;
		rc = zprov_create_account(p->th, p->ttc, target, &create, &tid, &err);
		if (rc == ZMB_EPROTO && prov_id_refused(err)) {
			redact(&err, hash);
			if (p->k.keep_id == KZ_REQUIRED) {
				char *e = xasprintf("account '%s': the target %s:%d refuses to keep the "
						    "source's zimbraId %s (keep_zimbra_id = \"required\"): "
						    "not created (%s)", name, p->job->target.host,
						    p->job->target.port, sid, err);
				free(err);
				err = e;
				goto failed;
			}
			if (!p->warned_id_refused) {
				p->warned_id_refused = true;
				log_warn(NULL, "the target %s:%d refuses a zimbraId in CreateAccount "
					 "(Carbonio 4.0.7-4.12.0): accounts are created with new ids, so "
					 "shares and appointment links that point at the old ids will "
					 "not follow (keep_zimbra_id = \"required\" fails them instead)",
					 p->job->target.host, p->job->target.port);
				stage_out(ctx, "WARNING the target %s:%d refuses a zimbraId in CreateAccount: "
					  "accounts get new ids; shares and appointment links to them will "
					  "not follow", p->job->target.host, p->job->target.port);
			}
			free(err);
			err = NULL;
			/* '?' before the create: after a crash the account found is ours */
			free(msg);
			msg = xasprintf("creating %s without the source's zimbraId %s (the target "
					"refuses it)", target, sid);
			if ((rc = state_prov_target_id(p->st, ctx->run_id, row.id, "?", msg))) {
				fatal = ZMB_ESTATE;
				goto out;
			}
			zattrs_del(&create, "zimbraId");
			rc = zprov_create_account(p->th, p->ttc, target, &create, &tid, &err);
			if (rc == ZMB_OK) {
				free(msg);
				msg = xasprintf("%s has the target's new zimbraId %s (the source's: %s)",
						target, tid ? tid : "?", sid);
				if (state_prov_target_id(p->st, ctx->run_id, row.id, tid ? tid : "?",
							 msg)) {
					fatal = ZMB_ESTATE;
					goto out;
				}
			}
		}
		if (rc) {
			redact(&err, hash);
			if (rc == ZMB_ECONFLICT || rc == ZMB_ENOTFOUND || rc == ZMB_EPROTO)
				goto failed;
			fatal = rc;
			goto out;
		}
		/* a change on the target is durable too: the crash enumeration stops here
		 * (created, not yet recorded) as well as after each commit */
		crashpoint("provision: account created on the target");
		if (hash && p->tlc && (rc = target_password(p, name, tid ? tid : sid, hash, &err))) {
			if (rc == ZMB_ECONFLICT || rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND)
				goto failed;
			fatal = rc;
			goto out;
		}
		if ((rc = prov_add_aliases(p, "account", name, tid ? tid : sid, &aliases, &err))) {
			if (rc == ZMB_ECONFLICT || rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND)
				goto failed;
			fatal = rc;
			goto out;
		}
		if ((rc = plan_kids(p, name, target, &sattrs, &kids, &err)) ||
		    (rc = prov_kids_apply(p->th, p->ttc, target, &kids, &err))) {
			if (rc == ZMB_ECONFLICT || rc == ZMB_EPROTO)
				goto failed;
			fatal = rc;
			goto out;
		}
		/* the first signature of an account that has none becomes its default
		 * (LdapProvisioning createSignature numSigs == 0, LdapSignatureBase.java:110-112):
		 * not so on the source, so unset again, and a rerun finds them alike */
		bool new_sig = false;
		for (size_t i = 0; i < kids.n; i++)
			new_sig = new_sig || !strcmp(kids.kinds[i], "signature");
		if (new_sig && !zattrs_get(&want, "zimbraSignatureId") &&
		    !zattrs_get(&want, "zimbraPrefDefaultSignatureId"))
			zattrs_add(&late, "zimbraPrefDefaultSignatureId", "");
		/* after the aliases and the signatures: what their callbacks check */
		if (late.n && (rc = zprov_modify_account(p->th, p->ttc, tid ? tid : sid, &late, &err))) {
			if (rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND)
				goto failed;
			fatal = rc;
			goto out;
		}
		free(msg);
		msg = xasprintf("created %s (zimbraId %s, %zu attribute value(s), %zu alias(es), %zu "
				"signature(s)/identit(ies), %s)", target, tid ? tid : sid, want.n,
				aliases.n, kids.n,
				hash ? "password hash copied" : "password not copied");
		outcome = "created";
		goto done;
	}

	/* ---- the account exists on the target ---- */
	/* ours: created by this job, with the source's id or the one the target gave it
	 * (target_id; "?" while that create was in flight) */
	bool ours = row.ours &&
		    (streq_ci(tid, sid) ||
		     (row.target_id && (streq(row.target_id, "?") ? resumed_create
								   : streq_ci(tid, row.target_id))));
	if (!ours && p->k.existing == EX_SKIP) {
		if (ctx->dry_run)
			stage_out(ctx, "skip    %s -> %s (exists on the target; existing = \"skip\")",
				  name, target);
		if (already_done && streq(row.outcome, "skipped")) {
			p->n_skipped++;
			goto out;
		}
		msg = xasprintf("%s exists on the target: left as it is (existing = \"skip\")", target);
		outcome = "skipped";
		goto done;
	}
	/* cut over (cutover stage, routed or later): users work on the target now, and the
	 * source's attributes would undo what they changed there; left as it is */
	bool cut = false;
	if (p->st && state_cutover_routed(p->st, name, &cut) != ZMB_OK) {
		err = xasprintf("state DB: %s", state_errmsg(p->st));
		goto failed;
	}
	if (cut) {
		if (ctx->dry_run)
			stage_out(ctx, "skip    %s -> %s (cut over: the target is in use)", name, target);
		if (already_done) {
			p->n_skipped++;
			goto out;
		}
		msg = xasprintf("%s is cut over: the target is in use, left as it is", target);
		outcome = "skipped";
		goto done;
	}
	if (!ours && p->k.existing == EX_FAIL) {
		err = xasprintf("account '%s': %s already exists on the target (existing = \"fail\")",
				name, target);
		goto failed;
	}
	if (!ctx->dry_run && (rc = alias_domains(p, &sattrs))) {
		fatal = rc;
		goto out;
	}
	prov_diff(&want, &tattrs, &early, &diff);
	split_late(&early, &mods, &late);
	missing_aliases(&aliases, &tattrs, &add);
	for (size_t i = 0; i < add.n; i++)
		buf_addf(&diff, "%salias +%s", diff.len ? "; " : "", add.v[i]);
	if ((rc = plan_kids(p, name, target, &sattrs, &kids, &err))) {
		if (rc == ZMB_EPROTO)
			goto failed;
		fatal = rc;
		goto out;
	}
	prov_kids_describe(&kids, &diff);
	/* ours, without a default signature at the source: a default on the target is the
	 * one its first CreateSignature set (LdapSignatureBase.java:110-112), or will be
	 * (a signature still to create): unset after, as the create above does (it was
	 * interrupted) */
	bool kid_sig = false;
	for (size_t i = 0; i < kids.n; i++)
		kid_sig = kid_sig || !strcmp(kids.kinds[i], "signature");
	if (ours && !zattrs_get(&want, "zimbraSignatureId") &&
	    !zattrs_get(&want, "zimbraPrefDefaultSignatureId") &&
	    (zattrs_get(&tattrs, "zimbraPrefDefaultSignatureId") || kid_sig)) {
		zattrs_add(&late, "zimbraPrefDefaultSignatureId", "");
		if (zattrs_get(&tattrs, "zimbraPrefDefaultSignatureId"))
			buf_addf(&diff, "%szimbraPrefDefaultSignatureId: '%s' -> (none)",
				 diff.len ? "; " : "", zattrs_get(&tattrs, "zimbraPrefDefaultSignatureId"));
	}
	/* ours, not finished (a crash or a failure after the create): the hash set over the
	 * target's LDAP again (idempotent), it may not have been */
	if (ours && p->tlc && !already_done && !ctx->dry_run) {
		if ((rc = ldap_hash(p, name, sid, &hash, &err))) {
			if (rc == ZMB_ECONFLICT || rc == ZMB_EPROTO)
				goto failed;
			fatal = rc;
			goto out;
		}
		if (hash && (rc = target_password(p, name, tid, hash, &err))) {
			if (rc == ZMB_ECONFLICT || rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND)
				goto failed;
			fatal = rc;
			goto out;
		}
	}
	if (!streq_ci(tid, sid) && !ours)
		log_warn(name, "the target account %s has zimbraId %s, the source %s: shares and "
			 "appointment links to it will not follow", target, tid, sid);
	if (!mods.n && !late.n && !add.n && !kids.n) {
		if (ctx->dry_run)
			stage_out(ctx, "same    %s -> %s", name, target);
		outcome = resumed_create ? "created" : "unchanged";
		/* done before and still alike: nothing to record, its outcome stays what was
		 * done to it (a stage resumed after a crash, or a rerun) */
		if (already_done) {
			p->n_unchanged++;
			outcome = NULL;
			goto out;
		}
		msg = resumed_create ? xasprintf("created %s (completed after a restart)", target)
				     : NULL;
		goto done;
	}
	if (ctx->dry_run) {
		stage_out(ctx, "update  %s -> %s: %s", name, target, diff.s);
		outcome = "updated";
		goto out;
	}
	msg = xasprintf("update %s: %s", target, diff.s);
	if ((rc = state_prov_event(p->st, ctx->run_id, row.id, "info", msg))) {
		fatal = ZMB_ESTATE;
		goto out;
	}
	if (mods.n && (rc = zprov_modify_account(p->th, p->ttc, tid, &mods, &err))) {
		if (rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND)
			goto failed;
		fatal = rc;
		goto out;
	}
	if (mods.n)
		crashpoint("provision: account modified on the target");
	if ((rc = prov_add_aliases(p, "account", name, tid, &add, &err))) {
		if (rc == ZMB_ECONFLICT || rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND)
			goto failed;
		fatal = rc;
		goto out;
	}
	if ((rc = prov_kids_apply(p->th, p->ttc, target, &kids, &err))) {
		if (rc == ZMB_ECONFLICT || rc == ZMB_EPROTO)
			goto failed;
		fatal = rc;
		goto out;
	}
	/* after the aliases and the signatures: what their callbacks check */
	if (late.n && (rc = zprov_modify_account(p->th, p->ttc, tid, &late, &err))) {
		if (rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND)
			goto failed;
		fatal = rc;
		goto out;
	}
	free(msg);
	msg = xasprintf("updated %s: %s", target, diff.s);
	outcome = resumed_create ? "created" : "updated";
	goto done;

failed:
	if (!ctx->dry_run && ctx->st && (rc = state_prov_failed(p->st, ctx->run_id, row.id, err))) {
		fatal = ZMB_ESTATE;
		goto out;
	}
	prov_note_failure(p, err);
	goto out;
done:
	if (!ctx->dry_run && (rc = state_prov_done(p->st, ctx->run_id, row.id, outcome, msg))) {
		fatal = ZMB_ESTATE;
		goto out;
	}
	if (msg && !ctx->dry_run)
		stage_out(ctx, "%s", msg);
out:
	if (fatal && !err)
		err = xstrdup(ctx->st ? state_errmsg(ctx->st) : zmb_rc_str(fatal));
	if (fatal) {
		log_error(name, "provision: %s", err ? err : zmb_rc_str(fatal));
		prov_note_failure(p, err ? err : zmb_rc_str(fatal));
	}
	if (outcome && !strcmp(outcome, "created"))
		p->n_created++;
	else if (outcome && !strcmp(outcome, "updated"))
		p->n_updated++;
	else if (outcome && !strcmp(outcome, "unchanged"))
		p->n_unchanged++;
	else if (outcome && !strcmp(outcome, "skipped"))
		p->n_skipped++;
	state_prov_release(&row);
	zattrs_release(&sattrs);
	zattrs_release(&tattrs);
	zattrs_release(&want);
	zattrs_release(&mods);
	zattrs_release(&create);
	zattrs_release(&late);
	zattrs_release(&early);
	strlist_release(&aliases);
	strlist_release(&add);
	prov_kids_release(&kids);
	buf_release(&diff);
	secret_free(hash);
	free(sid);
	free(tid);
	free(canon);
	free(cos);
	free(err);
	free(msg);
	free(target);
	return fatal;
}

/*
 * One domain (create_domains): there already -> done/unchanged (its settings
 * are the target administrator's); missing -> CreateDomain with the source's
 * copied attributes, the default COS mapped by name.  The row is 'creating'
 * before the create; a domain found after a crash there completes as created.
 */
static enum zmb_rc prov_domain(struct prov *p, const char *name)
{
	struct stage_ctx *ctx = p->ctx;
	struct prov_row row;
	struct zattrs src = ZATTRS_INIT, have = ZATTRS_INIT, want = ZATTRS_INIT;
	char *target = NULL, *err = NULL, *msg = NULL, *cos = NULL;
	enum zmb_rc rc, fatal = ZMB_OK;
	const char *outcome = NULL;
	/* the domain as job_map_account maps it: "x@DOMAIN" */
	char *probe = xasprintf("x@%s", name);
	char *mapped = job_map_account(p->job, probe);
	target = xstrdup(strchr(mapped, '@') + 1);
	free(probe);
	free(mapped);

	memset(&row, 0, sizeof row);
	if (ctx->st && state_prov_get(ctx->st, ctx->sc->name, "domain", name, &row) != ZMB_OK)
		memset(&row, 0, sizeof row);
	bool resumed_create = streq(row.state, "creating");
	rc = zprov_get_domain(p->th, p->ttc, target, &have, &err);
	if (rc == ZMB_OK) {
		if (ctx->dry_run)
			stage_out(ctx, "same    domain %s -> %s (exists on the target)", name, target);
		if (streq(row.state, "done"))
			goto out;
		outcome = resumed_create ? "created" : "unchanged";
		msg = resumed_create ? xasprintf("created domain %s (completed after a restart)", target)
				     : NULL;
		goto done;
	}
	if (rc != ZMB_ENOTFOUND) {
		fatal = rc;
		goto out;
	}
	free(err);
	err = NULL;
	if ((rc = zprov_get_domain(p->sh, p->stc, name, &src, &err))) {
		if (rc == ZMB_ENOTFOUND)
			goto failed;
		fatal = rc;
		goto out;
	}
	for (size_t i = 0; i < src.n; i++) {
		if (!strcmp(src.v[i].v, "VALUE-BLOCKED") || !prov_domain_attr_copied(src.v[i].n))
			continue;
		char *v = prov_map_value(p->job, src.v[i].n, src.v[i].v);
		zattrs_add(&want, src.v[i].n, v);
		free(v);
	}
	const char *dcos = zattrs_get(&src, "zimbraDomainDefaultCOSId");
	if (dcos && *dcos) {
		char *who = xasprintf("domain '%s'", name);
		rc = target_cos(p, who, dcos, &cos, &err);
		free(who);
		if (rc == ZMB_ENOTFOUND || rc == ZMB_EPROTO)
			goto failed;
		if (rc) {
			fatal = rc;
			goto out;
		}
		zattrs_add(&want, "zimbraDomainDefaultCOSId", cos);
	}
	if (ctx->dry_run) {
		stage_out(ctx, "create  domain %s -> %s (%zu attribute value(s))", name, target, want.n);
		outcome = "created";
		goto out;
	}
	msg = xasprintf("creating domain %s on the target", target);
	if ((rc = state_prov_creating(p->st, ctx->run_id, row.id, msg))) {
		fatal = ZMB_ESTATE;
		goto out;
	}
	if ((rc = zprov_create_domain(p->th, p->ttc, target, &want, &err))) {
		if (rc == ZMB_ECONFLICT || rc == ZMB_ENOTFOUND || rc == ZMB_EPROTO)
			goto failed;
		fatal = rc;
		goto out;
	}
	crashpoint("provision: domain created on the target");
	free(msg);
	msg = xasprintf("created domain %s (%zu attribute value(s))", target, want.n);
	outcome = "created";
	goto done;
failed:
	if (!ctx->dry_run && (rc = state_prov_failed(p->st, ctx->run_id, row.id, err))) {
		fatal = ZMB_ESTATE;
		goto out;
	}
	prov_note_failure(p, err);
	goto out;
done:
	if (!ctx->dry_run && (rc = state_prov_done(p->st, ctx->run_id, row.id, outcome, msg))) {
		fatal = ZMB_ESTATE;
		goto out;
	}
	if (msg && !ctx->dry_run)
		stage_out(ctx, "%s", msg);
out:
	if (fatal) {
		if (!err)
			err = xstrdup(ctx->st ? state_errmsg(ctx->st) : zmb_rc_str(fatal));
		log_error(name, "provision: %s", err);
		prov_note_failure(p, err);
	}
	state_prov_release(&row);
	zattrs_release(&src);
	zattrs_release(&have);
	zattrs_release(&want);
	free(target);
	free(cos);
	free(err);
	free(msg);
	return fatal;
}

/* The source domains of the accounts, in order of first appearance. */
static void account_domains(const struct strlist *names, struct strlist *out)
{
	for (size_t i = 0; i < names->n; i++) {
		const char *at = strrchr(names->v[i], '@');
		if (at && at[1] && !strlist_has_ci(out, at + 1))
			strlist_add(out, at + 1);
	}
}

static enum zmb_rc open_ldap(const struct server_ldap *l, const char *role, struct ldc **lc,
			     char **err)
{
	char *pw = NULL, *e = NULL;
	enum zmb_rc rc = secret_read_file(l->password_file, &pw, &e);
	if (rc) {
		*err = xasprintf("%s.ldap.password_file: %s", role, e ? e : "unreadable");
		free(e);
		return rc;
	}
	zlog_add_secret(pw);
	struct ldc_opts o = { l->starttls, l->ca_file, l->tls_verify, 10.0 };
	rc = ldc_open(l->url, &o, lc, err);
	if (rc == ZMB_OK && (rc = ldc_bind(*lc, l->bind_dn, pw, err))) {
		ldc_close(*lc);
		*lc = NULL;
	}
	secret_free(pw);
	return rc;
}

static int exit_for(enum zmb_rc rc)
{
	return rc == ZMB_EAUTH || rc == ZMB_ECONNECT || rc == ZMB_ETLS ? EXIT_UNAVAILABLE : 0;
}

struct stage_result provision_run(struct stage_ctx *ctx)
{
	struct stage_result res = { ZMB_OK, 0, NULL };
	struct prov p;
	struct strlist names = STRLIST_INIT, domains = STRLIST_INIT;
	char *err = NULL;
	enum zmb_rc rc;

	memset(&p, 0, sizeof p);
	p.ctx = ctx;
	p.job = ctx->job;
	p.st = ctx->dry_run ? NULL : ctx->st;
	if (prov_parse(ctx->sc, ctx->job->path, &p.k, &err)) {
		res.rc = ZMB_ECONFIG;
		goto out;
	}
	if (p.k.copy_password && !p.job->source.ldap.url) {
		err = xasprintf("%s:%d: stage '%s': key 'copy_password': needs the source's LDAP "
				"(source.ldap = { url = ...; bind_dn = ...; password_file = ...; }): "
				"admin SOAP never returns a password hash; or set copy_password = false",
				p.job->path ? p.job->path : "?", p.k.line_copy_password, ctx->sc->name);
		res.rc = ZMB_ECONFIG;
		goto out;
	}
	p.stc = token_cache_new(&p.job->source, p.job->token_refresh_margin, ctx->ctl);
	p.ttc = token_cache_new(&p.job->target, p.job->token_refresh_margin, ctx->ctl);
	p.sh = http_new(&p.job->source, p.job, ctx->ctl);
	p.th = http_new(&p.job->target, p.job, ctx->ctl);
	if (p.k.copy_password &&
	    ((rc = open_ldap(&p.job->source.ldap, "source", &p.lc, &err)) ||
	     (p.job->target.ldap.url && !ctx->dry_run &&
	      (rc = open_ldap(&p.job->target.ldap, "target", &p.tlc, &err))))) {
		res.rc = rc;
		res.exit = exit_for(rc) ? exit_for(rc) : EXIT_PARTIAL;
		goto out;
	}
	if (p.k.copy_password && !p.tlc && !ctx->dry_run)
		log_warn(NULL, "provision: the password hashes go to the target in CreateAccount, "
			 "whose handler logs every attribute it is given: the target's audit log "
			 "(security category) will hold them; set target.ldap to set them over "
			 "LDAP instead");
	if ((rc = discover(&p, &names, &err))) {
		res.rc = rc;
		res.exit = exit_for(rc);
		goto out;
	}
	if (p.k.create_domains)
		account_domains(&names, &domains);
	if (p.st) {
		if ((rc = state_begin(p.st)))
			goto dberr;
		for (size_t i = 0; i < domains.n && rc == ZMB_OK; i++) {
			char *probe = xasprintf("x@%s", domains.v[i]);
			char *t = job_map_account(p.job, probe);
			rc = state_prov_plan(p.st, ctx->sc->name, "domain", domains.v[i], strchr(t, '@') + 1);
			free(t);
			free(probe);
		}
		for (size_t i = 0; i < names.n && rc == ZMB_OK; i++) {
			char *t = job_map_account(p.job, names.v[i]);
			rc = state_prov_plan(p.st, ctx->sc->name, "account", names.v[i], t);
			free(t);
		}
		if (rc || (rc = state_commit(p.st))) {
			state_rollback(p.st);
			goto dberr;
		}
	}
	stage_out(ctx, "%zu account(s) to provision on %s:%d%s", names.n, p.job->target.host,
		  p.job->target.port, ctx->dry_run ? " (dry run: the plan, nothing changed)" : "");
	for (size_t i = 0; i < domains.n; i++) {
		strlist_add(&p.domains_seen, domains.v[i]);
		if ((rc = prov_domain(&p, domains.v[i]))) {
			if (rc == ZMB_ESTATE)
				goto dberr;
			res.rc = rc;
			res.exit = exit_for(rc);
			err = xstrdup(p.failures.n ? p.failures.v[p.failures.n - 1] : zmb_rc_str(rc));
			goto out;
		}
	}
	for (size_t i = 0; i < names.n; i++) {
		if (!runctl_may_claim(ctx->ctl)) {
			res.exit = EXIT_TEMPFAIL;
			break;
		}
		if ((rc = prov_account(&p, names.v[i]))) {
			if (rc == ZMB_ECANCELED) {
				res.exit = EXIT_TEMPFAIL;
				break;
			}
			if (rc == ZMB_ESTATE)
				goto dberr;
			if (rc == ZMB_EAUTH || rc == ZMB_ECONNECT || rc == ZMB_ETLS ||
			    rc == ZMB_EBUSY) {
				res.rc = rc;
				res.exit = exit_for(rc);
				err = xstrdup(p.failures.n ? p.failures.v[p.failures.n - 1] : zmb_rc_str(rc));
				goto out;
			}
		}
	}
	if ((p.k.lists || p.k.resources) && !res.exit) {
		struct strlist ld = STRLIST_INIT;
		account_domains(&names, &ld);
		rc = p.k.resources ? prov_resources(&p, &ld) : ZMB_OK;
		if (rc == ZMB_OK && p.k.lists)
			rc = prov_lists(&p, &ld);
		strlist_release(&ld);
		if (rc == ZMB_ECANCELED) {
			res.exit = EXIT_TEMPFAIL;
		} else if (rc == ZMB_ESTATE) {
			goto dberr;
		} else if (rc) {
			res.rc = rc;
			res.exit = exit_for(rc) ? exit_for(rc) : EXIT_PARTIAL;
			err = xstrdup(p.failures.n ? p.failures.v[p.failures.n - 1] : zmb_rc_str(rc));
			goto out;
		}
	}
	stage_out(ctx, "provision: %lld created, %lld updated, %lld unchanged, %lld skipped, "
		  "%lld failed%s", p.n_created, p.n_updated, p.n_unchanged, p.n_skipped, p.n_failed,
		  ctx->dry_run ? " (dry run: would be)" : "");
	if (p.n_failed && !res.exit) {
		res.exit = EXIT_PARTIAL;
		err = xasprintf("%lld object(s) failed to provision; first: %s", p.n_failed,
				p.failures.v[0]);
	}
	goto out;
dberr:
	res.rc = ZMB_ESTATE;
	err = xasprintf("state DB: %s", state_errmsg(ctx->st));
out:
	res.err = err;
	strlist_release(&names);
	strlist_release(&domains);
	strlist_release(&p.scos_id);
	strlist_release(&p.scos_name);
	strlist_release(&p.tcos_name);
	strlist_release(&p.tcos_id);
	strlist_release(&p.failures);
	strlist_release(&p.domains_seen);
	prov_conf_release(&p.k);
	ldc_close(p.lc);
	ldc_close(p.tlc);
	http_free(p.sh);
	http_free(p.th);
	token_cache_free(p.stc);
	token_cache_free(p.ttc);
	return res;
}
