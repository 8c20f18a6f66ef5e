/*
 * ldap_cnconfig.c - reading what OpenLDAP says: CSNs, olcSyncrepl values,
 * olcServerID, database DNs, rids, and one server's cn=config (struct
 * node).  Pure parsers plus read-only searches; the writes are in
 * ldap_promote_apply.c.  Contracts in ldap_common.h.
 */
#include "ldap_common.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* CSNs                                                                */

bool csn_sid(const char *csn, char sid[4])
{
	const char *p = strchr(csn, '#');
	if (!p || !(p = strchr(p + 1, '#')) || strlen(p + 1) < 3)
		return false;
	memcpy(sid, p + 1, 3);
	sid[3] = '\0';
	return true;
}

double csn_time(const char *csn)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	if (strlen(csn) < 14)
		return 0;
	char d[15];
	memcpy(d, csn, 14);
	d[14] = '\0';
	if (sscanf(d, "%4d%2d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	double t = (double)timegm(&tm);
	if (csn[14] == '.')
		t += strtod(csn + 14, NULL);
	return t;
}

static const char *csn_find(const struct strlist *l, const char *sid)
{
	char s[4];
	for (size_t i = 0; i < l->n; i++)
		if (csn_sid(l->v[i], s) && !strcmp(s, sid))
			return l->v[i];
	return NULL;
}

static double csn_newest(const struct strlist *l)
{
	double t = 0;
	for (size_t i = 0; i < l->n; i++)
		if (csn_time(l->v[i]) > t)
			t = csn_time(l->v[i]);
	return t;
}

/*
 * Compare s against ref per SID.  Returns true when in sync; *lag is the
 * largest time difference (positive: s is behind).
 */
bool csn_compare(const struct strlist *ref, const struct strlist *s, bool skip000, double *lag)
{
	bool sync = true;
	double worst = 0;
	const struct strlist *sets[2] = { ref, s };
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < sets[k]->n; i++) {
			char sid[4];
			if (!csn_sid(sets[k]->v[i], sid) || (skip000 && !strcmp(sid, "000")))
				continue;
			const char *a = csn_find(ref, sid), *b = csn_find(s, sid);
			if (a && b && !strcmp(a, b))
				continue;
			sync = false;
			double ta = a ? csn_time(a) : csn_newest(ref);
			double tb = b ? csn_time(b) : csn_newest(s);
			if (fabs(ta - tb) >= fabs(worst))
				worst = ta - tb;
		}
	}
	*lag = worst;
	return sync;
}

bool csn_same_set(const struct strlist *a, const struct strlist *b)
{
	if (a->n != b->n || !a->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!strlist_has(b, a->v[i]))
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* olcSyncrepl, olcServerID, DNs                                       */

char *sr_token(const char *val, const char *key)
{
	size_t kl = strlen(key);
	const char *p = val;
	if (*p == '{') {
		const char *q = strchr(p, '}');
		p = q ? q + 1 : p;
	}
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		const char *w = p;
		bool quoted = false;
		while (*p && (quoted || (*p != ' ' && *p != '\t'))) {
			if (*p == '"')
				quoted = !quoted;
			p++;
		}
		if ((size_t)(p - w) > kl && !strncasecmp(w, key, kl) && w[kl] == '=') {
			const char *v = w + kl + 1;
			size_t n = (size_t)(p - v);
			if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
				v++;
				n -= 2;
			}
			return xstrndup(v, n);
		}
	}
	return NULL;
}

long long sr_rid(const char *val)
{
	char *r = sr_token(val, "rid");
	long long v = -1;
	if (!r || parse_ll(r, &v) < 0)
		v = -1;
	free(r);
	return v;
}

bool sr_provider_is(const char *val, const char *uri)
{
	char *p = sr_token(val, "provider");
	bool eq = p && ldc_uri_eq(p, uri);
	free(p);
	return eq;
}

/* The server's own ID from olcServerID values ("N" or "N URL"); caller frees. */
char *sid_pick(const struct strlist *vals, const char *uri)
{
	if (!vals || !vals->n)
		return NULL;
	const char *chosen = vals->v[0];
	for (size_t i = 0; vals->n > 1 && i < vals->n; i++) {
		const char *sp = strpbrk(vals->v[i], " \t");
		if (!sp)
			continue;
		char *u = xstrdup(sp);
		if (ldc_uri_eq(strtrim(u), uri))
			chosen = vals->v[i];
		free(u);
	}
	return xstrndup(chosen, strcspn(chosen, " \t"));
}

bool sid_equal(const char *live, long long want)
{
	long long v;
	if (!live)
		return false;
	/* olcServerID accepts decimal, 0x hex and 0 octal */
	char *end = NULL;
	errno = 0;
	v = strtoll(live, &end, 0);
	return !errno && end && !*end && v == want;
}

bool dn_eq(const char *a, const char *b)
{
	if (!*a || !*b)
		return !*a && !*b;
	char *na = NULL, *nb = NULL;
	bool eq;
	if (ldap_dn_normalize(a, LDAP_DN_FORMAT_LDAPV3, &na, LDAP_DN_FORMAT_LDAPV3) ||
	    ldap_dn_normalize(b, LDAP_DN_FORMAT_LDAPV3, &nb, LDAP_DN_FORMAT_LDAPV3))
		eq = streq_ci(a, b);
	else
		eq = streq_ci(na, nb);
	ldap_memfree(na);
	ldap_memfree(nb);
	return eq;
}

int db_index(const char *dn)
{
	const char *p = strchr(dn, '{');
	if (!p || strncasecmp(dn, "olcDatabase=", 12))
		return -1;
	return atoi(p + 1);
}

/* ------------------------------------------------------------------ */
/* rids                                                                */

void rid_set_add(struct rid_set *s, long long rid)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 8;
		s->v = xrealloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n++] = rid;
}

bool rid_set_has(const struct rid_set *s, long long rid)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (s->v[i] == rid)
			return true;
	return false;
}

void rid_set_release(struct rid_set *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

static bool rid_used(const struct strlist *sr, long long rid)
{
	for (size_t i = 0; i < sr->n; i++)
		if (sr_rid(sr->v[i]) == rid)
			return true;
	return false;
}

const char *rid_owner(const struct strlist *sr, long long rid, char **prov)
{
	for (size_t i = 0; i < sr->n; i++)
		if (sr_rid(sr->v[i]) == rid) {
			*prov = sr_token(sr->v[i], "provider");
			return sr->v[i];
		}
	return NULL;
}

long long rid_next_free(const struct strlist *sr, long long base, const struct rid_set *taken)
{
	for (long long r = base; r <= 999; r++)
		if (!rid_used(sr, r) && !rid_set_has(taken, r))
			return r;
	return -1;
}

/* ------------------------------------------------------------------ */
/* one server's cn=config                                              */

static void node_forget(struct node *n)
{
	free(n->sid);
	free(n->datadb);
	free(n->rootdn);
	free(n->aldb);
	strlist_release(&n->syncrepl);
	n->sid = n->datadb = n->rootdn = n->aldb = NULL;
	n->multiprov = n->updateref = false;
}

void node_release(struct node *n)
{
	node_forget(n);
	strlist_release(&n->schema);
	free(n->version);
	n->version = NULL;
	ldc_close(n->c);
	n->c = NULL;
}

/* Read server ID, data DB (by suffix), accesslog DB, agreements. */
enum zmb_rc node_read(struct node *n, const char *suffix, bool need_db, char **err)
{
	static const char *const sid_attrs[] = { "olcServerID", NULL };
	static const char *const db_attrs[] = { "olcSuffix", "olcSyncrepl", "olcMultiProvider",
						 "olcMirrorMode", "olcUpdateRef", "olcRootDN",
						 NULL };
	struct ldc_result r = LDC_RESULT_INIT;
	enum zmb_rc rc;

	node_forget(n);
	rc = ldc_search(n->c, "cn=config", LDAP_SCOPE_BASE, NULL, sid_attrs, &r,
			"read server id", err);
	if (rc)
		goto out;
	if (r.n)
		n->sid = sid_pick(ldc_vals(&r.e[0], "olcServerID"), n->uri);
	ldc_result_release(&r);
	rc = ldc_search(n->c, "cn=config", LDAP_SCOPE_ONELEVEL, "(objectClass=olcDatabaseConfig)",
			db_attrs, &r, "find data database", err);
	if (rc)
		goto out;
	for (size_t i = 0; i < r.n; i++) {
		const struct strlist *sfx = ldc_vals(&r.e[i], "olcSuffix");
		for (size_t k = 0; sfx && k < sfx->n; k++) {
			if (dn_eq(sfx->v[k], "cn=accesslog") && !n->aldb)
				n->aldb = xstrdup(r.e[i].dn);
			if (dn_eq(sfx->v[k], suffix) && !n->datadb) {
				const struct strlist *sr = ldc_vals(&r.e[i], "olcSyncrepl");
				const char *mp = ldc_val(&r.e[i], "olcMultiProvider");
				if (!mp)
					mp = ldc_val(&r.e[i], "olcMirrorMode");
				n->datadb = xstrdup(r.e[i].dn);
				n->rootdn = xstrdup(ldc_val(&r.e[i], "olcRootDN"));
				for (size_t j = 0; sr && j < sr->n; j++)
					strlist_add(&n->syncrepl, sr->v[j]);
				n->multiprov = mp && streq_ci(mp, "TRUE");
				n->updateref = ldc_vals(&r.e[i], "olcUpdateRef") != NULL;
			}
		}
	}
	if (need_db && !n->datadb) {
		*err = xasprintf("ldap server %s: step 'find data database': no database with "
				 "olcSuffix '%s' under cn=config", n->uri, suffix);
		rc = ZMB_ENOTFOUND;
	}
out:
	ldc_result_release(&r);
	return rc;
}

void schema_names(const char *def, struct strlist *out)
{
	const char *p = def ? strstr(def, " NAME ") : NULL;
	if (!p)
		return;
	p += 6;
	while (*p == ' ')
		p++;
	bool list = *p == '(';
	if (list)
		p++;
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p != '\'')
			break;
		size_t n = strcspn(p + 1, "'");
		if (p[1 + n] != '\'')
			break;
		char *name = xstrndup(p + 1, n);
		strlist_add_nodup(out, xstrlower(name));
		free(name);
		p += n + 2;
		if (!list)
			break;
	}
}

enum zmb_rc node_read_schema(struct node *n, char **err)
{
	static const char *const dse_attrs[] = { "subschemaSubentry", NULL };
	static const char *const at_attrs[] = { "attributeTypes", NULL };
	static const char *const mon_attrs[] = { "monitoredInfo", NULL };
	struct ldc_result r = LDC_RESULT_INIT;
	char *sub = NULL, *e2 = NULL;
	enum zmb_rc rc = ldc_search(n->c, "", LDAP_SCOPE_BASE, "(objectClass=*)", dse_attrs, &r,
				    "read schema", err);
	if (rc)
		goto out;
	sub = xstrdup(r.n && ldc_val(&r.e[0], "subschemaSubentry")
			      ? ldc_val(&r.e[0], "subschemaSubentry") : "cn=Subschema");
	ldc_result_release(&r);
	rc = ldc_search(n->c, sub, LDAP_SCOPE_BASE, "(objectClass=subschema)", at_attrs, &r,
			"read schema", err);
	if (rc)
		goto out;
	const struct strlist *at = r.n ? ldc_vals(&r.e[0], "attributeTypes") : NULL;
	for (size_t i = 0; at && i < at->n; i++)
		schema_names(at->v[i], &n->schema);
	if (!n->schema.n) {
		*err = xasprintf("ldap server %s: step 'read schema': no attributeTypes in '%s' "
				 "(is it readable by the bind DN?)", n->uri, sub);
		rc = ZMB_EPROTO;
		goto out;
	}
	ldc_result_release(&r);
	/* the version is informational: cn=monitor may not exist or be readable */
	if (!ldc_search(n->c, "cn=monitor", LDAP_SCOPE_BASE, "(objectClass=*)", mon_attrs, &r,
			"read version", &e2) && r.n && ldc_val(&r.e[0], "monitoredInfo"))
		n->version = xstrdup(ldc_val(&r.e[0], "monitoredInfo"));
out:
	free(e2);
	free(sub);
	ldc_result_release(&r);
	return rc;
}

bool node_knows(const struct node *n, const char *attr)
{
	if (!n->schema.n)
		return true;
	char *l = xstrlower(attr);
	bool has = strlist_has(&n->schema, l);
	free(l);
	return has;
}

/* DN of the child of db with objectClass oc (caller frees), NULL if none. */
enum zmb_rc find_overlay(struct node *n, const char *db, const char *oc, char **dn,
			 struct ldc_entry *copy, const char *step, char **err)
{
	static const char *const attrs[] = { "olcSpCheckpoint", "olcSpSessionlog", NULL };
	struct ldc_result r = LDC_RESULT_INIT;
	char *filter = xasprintf("(objectClass=%s)", oc);
	*dn = NULL;
	enum zmb_rc rc = ldc_search(n->c, db, LDAP_SCOPE_ONELEVEL, filter, attrs, &r, step, err);
	if (!rc && r.n) {
		*dn = xstrdup(r.e[0].dn);
		if (copy) {
			*copy = r.e[0];
			memmove(&r.e[0], &r.e[1], (r.n - 1) * sizeof *r.e);
			r.n--;
		}
	}
	ldc_result_release(&r);
	free(filter);
	return rc;
}

/* ------------------------------------------------------------------ */
/* for tests and fuzzing                                               */

void ldap_mmr_parse_for_fuzz(const char *text)
{
	struct strlist lines = STRLIST_INIT, a = STRLIST_INIT, b = STRLIST_INIT;
	const char *p = text ? text : "";
	while (*p) {
		size_t n = strcspn(p, "\n");
		strlist_add_nodup(&lines, xstrndup(p, n));
		p += n + (p[n] == '\n');
	}
	const char *uri = lines.n ? lines.v[0] : "ldap://127.0.0.1:389";
	struct strlist names = STRLIST_INIT;
	for (size_t i = 0; i < lines.n; i++) {
		const char *v = lines.v[i];
		schema_names(v, &names);
		static const char *const keys[] = { "rid", "provider", "credentials", "starttls",
						    "syncdata", "binddn", NULL };
		for (size_t k = 0; keys[k]; k++)
			free(sr_token(v, keys[k]));
		(void)sr_rid(v);
		(void)sr_provider_is(v, uri);
		(void)sid_equal(v, 1);
		(void)db_index(v);
		(void)dn_eq(v, "cn=accesslog");
		char sid[4];
		(void)csn_sid(v, sid);
		(void)csn_time(v);
		strlist_add(i % 2 ? &b : &a, v);
	}
	free(sid_pick(&lines, uri));
	double lag = 0;
	for (int skip = 0; skip < 2; skip++) {
		bool sync = csn_compare(&a, &b, skip, &lag);
		char *st = sync ? xstrdup("In Sync")
				: xasprintf("%.3fs %s", fabs(lag), lag >= 0 ? "behind" : "ahead");
		free(st);
	}
	(void)csn_same_set(&a, &b);
	if (lines.n <= 16) {
		char *prov = NULL;
		long long r = rid_next_free(&lines, 100, NULL);
		(void)rid_owner(&lines, r < 0 ? 100 : r, &prov);
		free(prov);
	}
	strlist_release(&names);
	strlist_release(&lines);
	strlist_release(&a);
	strlist_release(&b);
}
