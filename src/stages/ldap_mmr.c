/*
 * ldap_mmr.c - LDAP multi-master job stages (issue 4), natively with libldap.
 *
 * Stage keys (the names in issue 4 are the contract; the rest are additions):
 *
 * ldap-replcheck  (zmreplchk)
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
 *
 * ldap-promote-mmr  (zmldappromote-replica-mmr -s N + zmldapenable-mmr on the masters)
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
 *   starttls / ca_file / tls_verify / network_timeout as above
 *   All servers are read and checked before the first write (server ID
 *   conflict, duplicate rid, not a replica); every step reads before it
 *   writes, so a second run only prints "no-op" lines.
 *
 * ldap-mmr-verify  (zmldapmmrtool -q + proof of replication)
 *   servers = [ uri, uri ... ]             two or more
 *   bind_dn / password_file / suffix / starttls / ca_file / tls_verify
 *   timeout = "30s"                        per direction and for contextCSN convergence
 *   marker_base = "cn=zimbra"              where marker entries go (default: the
 *                                          suffix; "cn=zimbra" when the suffix is "")
 *   Prints per server `Master Server ID: <sid>`, `Master replication
 *   agreement: <n>`, `rid: <rid> URI: <uri> TLS: <tls>` (never credentials),
 *   then writes a marker entry on each server, waits for it on every other,
 *   waits for contextCSN convergence, and deletes the markers again.
 */
#include "ldapc.h"
#include "log.h"
#include "runctl.h"
#include "stage.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_ACCESSLOG_DIR "/opt/zextras/data/ldap/accesslog/db"

/* ------------------------------------------------------------------ */
/* validation helpers                                                  */

/* Turn "file:line: key 'k': msg" into "file:line: stage 'NAME': key 'k': msg". */
static int stage_key_err(const struct stage_conf *sc, char **err)
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
	int line = v && v->line ? v->line : sc->line;
	*err = xasprintf("%s:%d: stage '%s': key '%s': %s", file ? file : "?", line,
			 sc->name, key, msg);
	free(msg);
	return -1;
}

struct lcommon {
	const char *bind_dn;
	const char *password_file;
	const char *suffix;
	bool starttls;
	const char *ca_file;
	bool tls_verify;
	long long net_timeout;
};

static int common_parse(const struct stage_conf *sc, const char *file, bool need_pw,
			struct lcommon *c, char **err)
{
	const struct cval *g = &sc->settings;
	if (cval_str(g, "bind_dn", "cn=config", &c->bind_dn, file, err) ||
	    cval_str(g, "password_file", NULL, &c->password_file, file, err) ||
	    cval_str(g, "suffix", "", &c->suffix, file, err) ||
	    cval_bool(g, "starttls", false, &c->starttls, file, err) ||
	    cval_str(g, "ca_file", NULL, &c->ca_file, file, err) ||
	    cval_bool(g, "tls_verify", true, &c->tls_verify, file, err) ||
	    cval_duration(g, "network_timeout", 10, &c->net_timeout, file, err))
		return stage_key_err(sc, err);
	if (need_pw && !c->password_file)
		return vfail(sc, NULL, file, "password_file", err, "required");
	if (c->net_timeout <= 0)
		c->net_timeout = 10;
	return 0;
}

static int uri_list(const struct stage_conf *sc, const char *file, const char *key,
		    size_t min, struct strlist *out, char **err)
{
	if (cval_strlist(&sc->settings, key, out, file, err))
		return stage_key_err(sc, err);
	if (out->n < min)
		return vfail(sc, cval_get(&sc->settings, key), file, key, err,
			     min == 1 ? "at least one LDAP URI required"
				      : "at least two LDAP URIs required");
	for (size_t i = 0; i < out->n; i++)
		if (strncmp(out->v[i], "ldap://", 7) && strncmp(out->v[i], "ldaps://", 8) &&
		    strncmp(out->v[i], "ldapi://", 8) && ldap_is_ldap_url(out->v[i]) == 0)
			return vfail(sc, cval_get(&sc->settings, key), file, key, err,
				     "'%s' is not an ldap://, ldaps:// or ldapi:// URI", out->v[i]);
	return 0;
}

static void opts_from(const struct lcommon *c, struct ldc_opts *o)
{
	o->starttls = c->starttls;
	o->ca_file = c->ca_file;
	o->tls_verify = c->tls_verify;
	o->timeout = (double)c->net_timeout;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static enum zmb_rc open_bind(const char *uri, const struct ldc_opts *o, const char *dn,
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

static enum zmb_rc read_secret(const char *path, const char *what, char **pw, char **err)
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

/* ------------------------------------------------------------------ */
/* CSN and cn=config helpers                                          */

/* SID of a CSN "YYYYmmddHHMMSS.ffffffZ#cccccc#SID#mmmmmm" into sid[4]. */
static bool csn_sid(const char *csn, char sid[4])
{
	const char *p = strchr(csn, '#');
	if (!p || !(p = strchr(p + 1, '#')) || strlen(p + 1) < 3)
		return false;
	memcpy(sid, p + 1, 3);
	sid[3] = '\0';
	return true;
}

static double csn_time(const char *csn)
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
static bool csn_compare(const struct strlist *ref, const struct strlist *s, bool skip000,
			double *lag)
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

/* Word after `key=` in an olcSyncrepl value (quotes removed), or NULL. */
static char *sr_token(const char *val, const char *key)
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

static long long sr_rid(const char *val)
{
	char *r = sr_token(val, "rid");
	long long v = -1;
	if (!r || parse_ll(r, &v) < 0)
		v = -1;
	free(r);
	return v;
}

static bool sr_provider_is(const char *val, const char *uri)
{
	char *p = sr_token(val, "provider");
	bool eq = p && ldc_uri_eq(p, uri);
	free(p);
	return eq;
}

/* The server's own ID from olcServerID values ("N" or "N URL"); caller frees. */
static char *sid_pick(const struct strlist *vals, const char *uri)
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

static bool sid_equal(const char *live, long long want)
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

static bool dn_eq(const char *a, const char *b)
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

/* What the stages know about one server's cn=config. */
struct node {
	const char *uri;
	const char *role;             /* "replica" / "master" */
	long long want_sid;
	long long rid;                /* master: rid of the agreement pulling from the replica */
	long long replica_rid;        /* replica's agreement pulling from this master */
	const char *accesslog_dir;
	struct ldc *c;
	char *sid;                    /* live olcServerID (own), NULL if none */
	char *datadb;                 /* DN of the data DB */
	char *rootdn;
	char *aldb;                   /* DN of the accesslog DB, NULL if none */
	struct strlist syncrepl;      /* olcSyncrepl values of the data DB */
	bool multiprov;
	bool updateref;
	long long new_rid;            /* rid chosen for the agreement to add, -1 none */
	long long new_replica_rid;
};

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

static void node_release(struct node *n)
{
	node_forget(n);
	ldc_close(n->c);
	n->c = NULL;
}

/* Read server ID, data DB (by suffix), accesslog DB, agreements. */
static enum zmb_rc node_read(struct node *n, const char *suffix, bool need_db, char **err)
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

/* DN of the child of db with objectClass oc (caller frees), NULL if none. */
static enum zmb_rc find_overlay(struct node *n, const char *db, const char *oc, char **dn,
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

/* "olcDatabase={2}mdb,cn=config" -> 2 ; -1 if unparsable. */
static int db_index(const char *dn)
{
	const char *p = strchr(dn, '{');
	if (!p || strncasecmp(dn, "olcDatabase=", 12))
		return -1;
	return atoi(p + 1);
}

/* ------------------------------------------------------------------ */
/* ldap-replcheck                                                      */

struct rc_conf {
	struct lcommon c;
	struct strlist masters;
	struct strlist replicas;
	long long wait;
};

static void rc_conf_release(struct rc_conf *k)
{
	strlist_release(&k->masters);
	strlist_release(&k->replicas);
}

static int rc_conf_parse(const struct stage_conf *sc, const char *file, struct rc_conf *k,
			 char **err)
{
	memset(k, 0, sizeof *k);
	if (common_parse(sc, file, true, &k->c, err) ||
	    uri_list(sc, file, "masters", 1, &k->masters, err) ||
	    uri_list(sc, file, "replicas", 0, &k->replicas, err))
		return -1;
	if (cval_duration(&sc->settings, "wait", 0, &k->wait, file, err))
		return stage_key_err(sc, err);
	return 0;
}

int ldap_replcheck_validate(const struct stage_conf *sc, const char *file, char **err)
{
	struct rc_conf k;
	int r = rc_conf_parse(sc, file, &k, err);
	rc_conf_release(&k);
	return r;
}

struct rc_srv {
	const char *uri;
	bool master;
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
	opts_from(&k->c, &o);
	s->rc = ldc_open(s->uri, &o, &c, &s->err);
	bool opened = s->rc == ZMB_OK;   /* a TLS failure before it is in our own setup */
	if (opened)
		s->rc = ldc_bind(c, s->master ? k->c.bind_dn : NULL, s->master ? pw : NULL, &s->err);
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
	s->rc = ldc_search(c, k->c.suffix, LDAP_SCOPE_BASE, NULL, csn_attrs, &r,
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
				   s->uri, k->c.suffix);
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

enum zmb_rc ldap_replcheck_run(struct stage_ctx *ctx, char **err)
{
	struct rc_conf k;
	struct rc_srv *s = NULL;
	char *pw = NULL;
	size_t n = 0;
	enum zmb_rc rc = ZMB_ECONFIG;
	const char *file = ctx->job ? ctx->job->path : "job";

	if (rc_conf_parse(ctx->sc, file, &k, err))
		goto out;
	rc = read_secret(k.c.password_file, "ldap-replcheck: password_file", &pw, err);
	if (rc)
		goto out;
	n = k.masters.n + k.replicas.n;
	s = xcalloc(n, sizeof *s);
	for (size_t i = 0; i < k.masters.n; i++) {
		s[i].uri = k.masters.v[i];
		s[i].master = true;
	}
	size_t nr = 0;
	for (size_t i = 0; i < k.replicas.n; i++) {
		if (strlist_has(&k.masters, k.replicas.v[i]))
			continue;      /* zmreplchk: replicas = ldap_url minus masters */
		s[k.masters.n + nr++].uri = k.replicas.v[i];
	}
	n = k.masters.n + nr;

	double deadline = mono_now() + (double)k.wait, pause = 0.1;
	bool ok;
	for (;;) {
		for (size_t i = 0; i < n; i++)
			rc_probe(&s[i], &k, pw);
		ok = rc_judge(s, n, k.masters.n);
		bool auth = false;
		for (size_t i = 0; i < n; i++)
			auth |= s[i].rc == ZMB_EAUTH || s[i].rc == ZMB_ECONFIG;
		if (ok || auth || mono_now() + pause > deadline || runctl_stopped(ctx->ctl))
			break;
		sleep_s(pause);
		pause = pause < 1 ? pause * 1.5 : 1;
	}
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
	rc = ZMB_OK;
	if (ok)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (s[i].rc) {
			*err = xasprintf("ldap-replcheck: %s", s[i].err);
			rc = s[i].rc;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i].code == 6) {
			*err = xasprintf("ldap-replcheck: %s %s: step 'compare contextCSN': not in sync "
					 "with %s after %llds: %s", s[i].master ? "master" : "replica",
					 s[i].uri, s[0].uri, k.wait, s[i].status);
			rc = runctl_stopped(ctx->ctl) ? ZMB_ECANCELED : ZMB_ETIMEOUT;
			goto out;
		}
	}
	*err = xstrdup("ldap-replcheck: not in sync");
	rc = ZMB_ETIMEOUT;
out:
	for (size_t i = 0; s && i < n; i++)
		rc_srv_reset(&s[i]);
	free(s);
	secret_free(pw);
	rc_conf_release(&k);
	return rc;
}

/* ------------------------------------------------------------------ */
/* ldap-promote-mmr                                                    */

struct pm_master {
	const char *uri;
	long long sid;
	long long rid;
	long long replica_rid;
	const char *accesslog_dir;
	int line;
};

struct pm_conf {
	struct lcommon c;
	const char *replica;
	long long server_id;
	struct pm_master *m;
	size_t nm;
	const char *repl_dn;
	const char *repl_pw_file;
	const char *retry;
	const char *mode;
	const char *accesslog_dir;
	const char *sp_checkpoint;
	const char *sp_sessionlog;
	const char *agreement_tls_cacert;
	long long rid_base;
	long long accesslog_maxsize;
	bool agreement_starttls;
};

static void pm_conf_release(struct pm_conf *k)
{
	free(k->m);
	k->m = NULL;
}

static int pm_conf_parse(const struct stage_conf *sc, const char *file, struct pm_conf *k,
			 char **err)
{
	const struct cval *g = &sc->settings;
	memset(k, 0, sizeof *k);
	if (common_parse(sc, file, true, &k->c, err))
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
		return stage_key_err(sc, err);
	if (!k->replica)
		return vfail(sc, NULL, file, "replica", err, "required (LDAP URI of the replica)");
	if (strncmp(k->replica, "ldap", 4) || !strstr(k->replica, "://"))
		return vfail(sc, cval_get(g, "replica"), file, "replica", err,
			     "'%s' is not an LDAP URI", k->replica);
	if (k->server_id < 1 || k->server_id > 4095)
		return vfail(sc, cval_get(g, "server_id"), file, "server_id", err,
			     "required, 1..4095");
	if (!k->repl_dn)
		return vfail(sc, NULL, file, "replication_dn", err, "required");
	if (!k->repl_pw_file)
		return vfail(sc, NULL, file, "replication_password_file", err, "required");
	if (!*k->retry || strchr(k->retry, '"'))
		return vfail(sc, cval_get(g, "retry"), file, "retry", err,
			     "expected a syncrepl retry like \"60 +\"");
	if (strcmp(k->mode, "auto") && strcmp(k->mode, "delta") && strcmp(k->mode, "plain"))
		return vfail(sc, cval_get(g, "mode"), file, "mode", err,
			     "expected auto, delta or plain");
	if (k->rid_base < 0 || k->rid_base > 999)
		return vfail(sc, cval_get(g, "rid_base"), file, "rid_base", err, "expected 0..999");
	const struct cval *ms = cval_get(g, "masters");
	if (!ms || (ms->type != CV_LIST && ms->type != CV_GROUP) || (ms->type == CV_LIST && !ms->n))
		return vfail(sc, ms, file, "masters", err,
			     "required: ( { uri = \"ldap://...\"; server_id = N; } ... )");
	size_t cnt = ms->type == CV_GROUP ? 1 : ms->n;
	k->m = xcalloc(cnt, sizeof *k->m);
	for (size_t i = 0; i < cnt; i++) {
		const struct cval *it = ms->type == CV_GROUP ? ms : &ms->items[i];
		struct pm_master *m = &k->m[i];
		if (it->type != CV_GROUP)
			return vfail(sc, it, file, "masters", err,
				     "element %zu: expected a group { uri; server_id; }", i + 1);
		m->line = it->line;
		if (cval_str(it, "uri", NULL, &m->uri, file, err) ||
		    cval_int(it, "server_id", -1, &m->sid, file, err) ||
		    cval_int(it, "rid", -1, &m->rid, file, err) ||
		    cval_int(it, "replica_rid", -1, &m->replica_rid, file, err) ||
		    cval_str(it, "accesslog_dir", k->accesslog_dir, &m->accesslog_dir, file, err))
			return stage_key_err(sc, err);
		k->nm++;
		if (!m->uri || strncmp(m->uri, "ldap", 4) || !strstr(m->uri, "://"))
			return vfail(sc, it, file, "masters", err,
				     "element %zu: uri required (an LDAP URI)", i + 1);
		if (m->sid < 1 || m->sid > 4095)
			return vfail(sc, it, file, "masters", err,
				     "element %zu: server_id required, 1..4095", i + 1);
		if (m->sid == k->server_id)
			return vfail(sc, it, file, "masters", err,
				     "element %zu: server_id %lld is the replica's server_id too",
				     i + 1, m->sid);
		if (m->rid > 999 || m->replica_rid > 999)
			return vfail(sc, it, file, "masters", err,
				     "element %zu: rid must be 0..999", i + 1);
		if (ldc_uri_eq(m->uri, k->replica))
			return vfail(sc, it, file, "masters", err,
				     "element %zu: uri is the replica itself", i + 1);
		for (size_t j = 0; j < i; j++)
			if (k->m[j].sid == m->sid || ldc_uri_eq(k->m[j].uri, m->uri))
				return vfail(sc, it, file, "masters", err,
					     "element %zu: server_id or uri repeated", i + 1);
	}
	return 0;
}

int ldap_promote_validate(const struct stage_conf *sc, const char *file, char **err)
{
	struct pm_conf k;
	int r = pm_conf_parse(sc, file, &k, err);
	pm_conf_release(&k);
	return r;
}

static bool rid_used(const struct strlist *sr, long long rid)
{
	for (size_t i = 0; i < sr->n; i++)
		if (sr_rid(sr->v[i]) == rid)
			return true;
	return false;
}

static const char *rid_owner(const struct strlist *sr, long long rid, char **prov)
{
	for (size_t i = 0; i < sr->n; i++)
		if (sr_rid(sr->v[i]) == rid) {
			*prov = sr_token(sr->v[i], "provider");
			return sr->v[i];
		}
	return NULL;
}

static long long rid_next_free(const struct strlist *sr, long long base,
			       const long long *taken, size_t ntaken)
{
	for (long long r = base; r <= 999; r++) {
		bool busy = rid_used(sr, r);
		for (size_t i = 0; !busy && i < ntaken; i++)
			busy = taken[i] == r;
		if (!busy)
			return r;
	}
	return -1;
}

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

static enum zmb_rc pm_server_id(struct stage_ctx *ctx, struct node *n, char **err)
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

/* accesslog DB + its syncprov, syncprov and accesslog overlays on the data DB. */
static enum zmb_rc pm_provider(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
			       bool delta, char **err)
{
	struct ldc_mods m = LDC_MODS_INIT;
	struct ldc_entry sp = { NULL, NULL, 0 };
	char *ov = NULL, *dn = NULL, *v = NULL;
	enum zmb_rc rc = ZMB_OK;

	if (delta && !n->aldb) {
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
		ldc_mods_release(&m);
		if (rc)
			goto out;
		crashpoint("ldap accesslog database");
		pm_say(ctx, n, "accesslog database", "added");
		rc = node_read(n, k->c.suffix, true, err);   /* the data DB index shifted */
		if (rc)
			goto out;
		if (!n->aldb) {
			*err = xasprintf("ldap server %s: step 'add accesslog database': the new "
					 "database is not visible", n->uri);
			rc = ZMB_EPROTO;
			goto out;
		}
	} else if (delta) {
		pm_say(ctx, n, "accesslog database", "no-op (present)");
	}
	if (delta) {
		rc = find_overlay(n, n->aldb, "olcSyncProvConfig", &ov, NULL,
				  "find accesslog syncprov", err);
		if (rc)
			goto out;
		if (!ov) {
			free(dn);
			dn = xasprintf("olcOverlay=syncprov,%s", n->aldb);
			ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcOverlayConfig");
			ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcSyncProvConfig");
			ldc_mods_add(&m, LDAP_MOD_ADD, "olcOverlay", "syncprov");
			ldc_mods_add(&m, LDAP_MOD_ADD, "olcSpNoPresent", "TRUE");
			ldc_mods_add(&m, LDAP_MOD_ADD, "olcSpReloadHint", "TRUE");
			rc = ldc_add(n->c, dn, &m, "add accesslog syncprov", err);
			ldc_mods_release(&m);
			if (rc)
				goto out;
			crashpoint("ldap accesslog syncprov");
			pm_say(ctx, n, "syncprov on cn=accesslog", "added");
		} else {
			pm_say(ctx, n, "syncprov on cn=accesslog", "no-op (present)");
		}
		free(ov);
		ov = NULL;
	}
	rc = find_overlay(n, n->datadb, "olcSyncProvConfig", &ov, &sp, "find syncprov", err);
	if (rc)
		goto out;
	if (!ov) {
		free(dn);
		dn = xasprintf("olcOverlay={0}syncprov,%s", n->datadb);
		ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcOverlayConfig");
		ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcSyncProvConfig");
		ldc_mods_add(&m, LDAP_MOD_ADD, "olcOverlay", "{0}syncprov");
		ldc_mods_add(&m, LDAP_MOD_ADD, "olcSpCheckpoint", k->sp_checkpoint);
		ldc_mods_add(&m, LDAP_MOD_ADD, "olcSpSessionlog", k->sp_sessionlog);
		rc = ldc_add(n->c, dn, &m, "add syncprov overlay", err);
		ldc_mods_release(&m);
		if (rc)
			goto out;
		crashpoint("ldap syncprov");
		pm_say(ctx, n, "syncprov on the data database", "added");
	} else {
		const char *cp = ldc_val(&sp, "olcSpCheckpoint");
		const char *sl = ldc_val(&sp, "olcSpSessionlog");
		if (!streq(cp, k->sp_checkpoint))
			ldc_mods_add(&m, LDAP_MOD_REPLACE, "olcSpCheckpoint", k->sp_checkpoint);
		if (!streq(sl, k->sp_sessionlog))
			ldc_mods_add(&m, LDAP_MOD_REPLACE, "olcSpSessionlog", k->sp_sessionlog);
		if (m.n) {
			/* the DN the search returned ({0}syncprov), never a guessed one */
			rc = ldc_modify(n->c, ov, &m, "update syncprov overlay", err);
			ldc_mods_release(&m);
			if (rc)
				goto out;
			crashpoint("ldap syncprov update");
			pm_say(ctx, n, "syncprov on the data database", "checkpoint/sessionlog updated");
		} else {
			pm_say(ctx, n, "syncprov on the data database", "no-op (present)");
		}
	}
	free(ov);
	ov = NULL;
	if (delta) {
		rc = find_overlay(n, n->datadb, "olcAccessLogConfig", &ov, NULL,
				  "find accesslog overlay", err);
		if (rc)
			goto out;
		if (!ov) {
			free(dn);
			dn = xasprintf("olcOverlay=accesslog,%s", n->datadb);
			ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcOverlayConfig");
			ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcAccessLogConfig");
			ldc_mods_add(&m, LDAP_MOD_ADD, "olcOverlay", "accesslog");
			ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccessLogDB", "cn=accesslog");
			ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccessLogOps", "writes");
			ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccessLogSuccess", "TRUE");
			ldc_mods_add(&m, LDAP_MOD_ADD, "olcAccessLogPurge", "01+00:00  00+04:00");
			rc = ldc_add(n->c, dn, &m, "add accesslog overlay", err);
			ldc_mods_release(&m);
			if (rc)
				goto out;
			crashpoint("ldap accesslog overlay");
			pm_say(ctx, n, "accesslog overlay on the data database", "added");
		} else {
			pm_say(ctx, n, "accesslog overlay on the data database", "no-op (present)");
		}
	}
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
	free(v);
	return rc;
}

/*
 * Add the agreements `provs[i]` (rid rids[i]) and turn multi-provider on, in
 * one modify (slapd refuses olcMultiProvider on a DB without olcSyncrepl);
 * then drop olcUpdateRef.
 */
static enum zmb_rc pm_multiprovider(struct stage_ctx *ctx, struct node *n,
				    const struct pm_conf *k, const char *const *provs,
				    const long long *rids, size_t np, const char *repl_pw,
				    bool delta, char **err)
{
	struct ldc_mods m = LDC_MODS_INIT;
	enum zmb_rc rc = ZMB_OK;

	for (size_t i = 0; i < np; i++) {
		char *a = agreement(k, provs[i], rids[i], k->c.suffix, repl_pw, delta);
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

enum zmb_rc ldap_promote_run(struct stage_ctx *ctx, char **err)
{
	struct pm_conf k;
	struct node *nd = NULL;
	size_t nn = 0;
	char *pw = NULL, *rpw = NULL, *prov = NULL;
	const char **provs = NULL;
	long long *rids = NULL;
	enum zmb_rc rc = ZMB_ECONFIG;
	const char *file = ctx->job ? ctx->job->path : "job";
	struct ldc_opts o;
	char *e = NULL;

	if (pm_conf_parse(ctx->sc, file, &k, err))
		goto out;
	rc = read_secret(k.c.password_file, "ldap-promote-mmr: password_file", &pw, err);
	if (!rc)
		rc = read_secret(k.repl_pw_file, "ldap-promote-mmr: replication_password_file",
				 &rpw, err);
	if (rc)
		goto out;
	if (strpbrk(rpw, "\"\\")) {
		*err = xasprintf("ldap-promote-mmr: replication_password_file '%s': the password "
				 "must not contain '\"' or '\\' (it goes into a quoted olcSyncrepl value)",
				 k.repl_pw_file);
		rc = ZMB_ECONFIG;
		goto out;
	}
	opts_from(&k.c, &o);
	nn = 1 + k.nm;
	nd = xcalloc(nn, sizeof *nd);
	provs = xcalloc(nn, sizeof *provs);
	rids = xcalloc(nn, sizeof *rids);
	nd[0].uri = k.replica;
	nd[0].role = "replica";
	nd[0].want_sid = k.server_id;
	nd[0].accesslog_dir = k.accesslog_dir;
	for (size_t i = 0; i < k.nm; i++) {
		nd[i + 1].uri = k.m[i].uri;
		nd[i + 1].role = "master";
		nd[i + 1].want_sid = k.m[i].sid;
		nd[i + 1].rid = k.m[i].rid;
		nd[i + 1].replica_rid = k.m[i].replica_rid;
		nd[i + 1].accesslog_dir = k.m[i].accesslog_dir;
	}

	/* 1. connect, bind and read everything before the first write */
	for (size_t i = 0; i < nn; i++) {
		rc = open_bind(nd[i].uri, &o, k.c.bind_dn, pw, &nd[i].c, &e);
		if (!rc)
			rc = node_read(&nd[i], k.c.suffix, true, &e);
		if (rc)
			goto fail;
	}
	struct node *r = &nd[0];
	for (size_t i = 0; i < nn; i++) {
		if (nd[i].sid && !sid_equal(nd[i].sid, nd[i].want_sid)) {
			e = xasprintf("ldap server %s: step 'check server id': the %s has server id "
				      "%s, the job says %lld; refusing to change a live server id",
				      nd[i].uri, nd[i].role, nd[i].sid, nd[i].want_sid);
			rc = ZMB_ECONFLICT;
			goto fail;
		}
		for (size_t j = 0; j < nn; j++) {
			if (j != i && nd[j].sid && sid_equal(nd[j].sid, nd[i].want_sid)) {
				e = xasprintf("ldap server %s: step 'check server id': server id %lld "
					      "is already used by %s", nd[i].uri, nd[i].want_sid,
					      nd[j].uri);
				rc = ZMB_ECONFLICT;
				goto fail;
			}
		}
	}
	if (!r->syncrepl.n && !r->multiprov) {
		e = xasprintf("ldap server %s: step 'check replica': not a replica (no olcSyncrepl "
			      "on the database '%s')", r->uri, k.c.suffix);
		rc = ZMB_ECONFLICT;
		goto fail;
	}
	bool delta = !strcmp(k.mode, "delta");
	if (!strcmp(k.mode, "auto")) {
		for (size_t i = 0; i < nn; i++) {
			delta |= nd[i].aldb != NULL;
			for (size_t j = 0; j < nd[i].syncrepl.n; j++) {
				char *sd = sr_token(nd[i].syncrepl.v[j], "syncdata");
				delta |= sd && streq_ci(sd, "accesslog");
				free(sd);
			}
		}
	}
	/* rids: each master pulls from the replica; the replica pulls from each master */
	for (size_t i = 1; i < nn; i++) {
		struct node *m = &nd[i];
		m->new_rid = -1;
		m->new_replica_rid = -1;
		bool has = false;
		for (size_t j = 0; j < m->syncrepl.n; j++)
			has |= sr_provider_is(m->syncrepl.v[j], r->uri);
		if (!has) {
			if (m->rid >= 0 && rid_owner(&m->syncrepl, m->rid, &prov)) {
				e = xasprintf("ldap server %s: step 'check rid': rid %lld is already used "
					      "by the agreement with provider %s", m->uri, m->rid,
					      prov ? prov : "?");
				rc = ZMB_ECONFLICT;
				goto fail;
			}
			m->new_rid = m->rid >= 0 ? m->rid
					 : rid_next_free(&m->syncrepl, k.rid_base, NULL, 0);
			if (m->new_rid < 0) {
				e = xasprintf("ldap server %s: step 'check rid': no free rid", m->uri);
				rc = ZMB_ECONFLICT;
				goto fail;
			}
		}
		has = false;
		for (size_t j = 0; j < r->syncrepl.n; j++)
			has |= sr_provider_is(r->syncrepl.v[j], m->uri);
		if (!has) {
			long long taken[64];
			size_t nt = 0;
			for (size_t j = 1; j < i && nt < 64; j++)
				if (nd[j].new_replica_rid >= 0)
					taken[nt++] = nd[j].new_replica_rid;
			if (m->replica_rid >= 0 && rid_owner(&r->syncrepl, m->replica_rid, &prov)) {
				e = xasprintf("ldap server %s: step 'check rid': rid %lld is already used "
					      "by the agreement with provider %s", r->uri,
					      m->replica_rid, prov ? prov : "?");
				rc = ZMB_ECONFLICT;
				goto fail;
			}
			m->new_replica_rid = m->replica_rid >= 0 ? m->replica_rid
					     : rid_next_free(&r->syncrepl, k.rid_base, taken, nt);
		}
		if (!has && m->new_replica_rid < 0) {
			e = xasprintf("ldap server %s: step 'check rid': no free rid", r->uri);
			rc = ZMB_ECONFLICT;
			goto fail;
		}
	}
	stage_out(ctx, "layout: %s", delta ? "delta-syncrepl (accesslog)" : "plain syncrepl");

	/* 2. the replica: server id, provider overlays, agreements, multi-provider */
	rc = pm_server_id(ctx, r, &e);
	if (!rc)
		rc = pm_provider(ctx, r, &k, delta, &e);
	if (rc)
		goto fail;
	size_t np = 0;
	for (size_t i = 1; i < nn; i++) {
		if (nd[i].new_replica_rid >= 0) {
			provs[np] = nd[i].uri;
			rids[np++] = nd[i].new_replica_rid;
		}
	}
	rc = pm_multiprovider(ctx, r, &k, provs, rids, np, rpw, delta, &e);
	if (rc)
		goto fail;

	/* 3. each master: server id, provider overlays, agreement to the replica */
	for (size_t i = 1; i < nn; i++) {
		struct node *m = &nd[i];
		rc = pm_server_id(ctx, m, &e);
		if (!rc)
			rc = pm_provider(ctx, m, &k, delta, &e);
		if (rc)
			goto fail;
		provs[0] = r->uri;
		rids[0] = m->new_rid;
		rc = pm_multiprovider(ctx, m, &k, provs, rids, m->new_rid >= 0 ? 1 : 0, rpw,
				      delta, &e);
		if (rc)
			goto fail;
	}
	rc = ZMB_OK;
	goto out;
fail:
	*err = xasprintf("ldap-promote-mmr: %s", e ? e : zmb_rc_str(rc));
out:
	free(e);
	free(prov);
	for (size_t i = 0; nd && i < nn; i++)
		node_release(&nd[i]);
	free(nd);
	free(provs);
	free(rids);
	secret_free(pw);
	secret_free(rpw);
	pm_conf_release(&k);
	return rc;
}

/* ------------------------------------------------------------------ */
/* ldap-mmr-verify                                                     */

struct vf_conf {
	struct lcommon c;
	struct strlist servers;
	long long timeout;
	const char *marker_base;
};

static int vf_conf_parse(const struct stage_conf *sc, const char *file, struct vf_conf *k,
			 char **err)
{
	memset(k, 0, sizeof *k);
	if (common_parse(sc, file, true, &k->c, err) ||
	    uri_list(sc, file, "servers", 2, &k->servers, err))
		return -1;
	if (cval_duration(&sc->settings, "timeout", 30, &k->timeout, file, err) ||
	    cval_str(&sc->settings, "marker_base", NULL, &k->marker_base, file, err))
		return stage_key_err(sc, err);
	if (!k->marker_base)
		k->marker_base = *k->c.suffix ? k->c.suffix : "cn=zimbra";
	if (k->timeout <= 0)
		return vfail(sc, cval_get(&sc->settings, "timeout"), file, "timeout", err,
			     "must be positive");
	return 0;
}

int ldap_verify_validate(const struct stage_conf *sc, const char *file, char **err)
{
	struct vf_conf k;
	int r = vf_conf_parse(sc, file, &k, err);
	strlist_release(&k.servers);
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

static bool csn_same_set(const struct strlist *a, const struct strlist *b)
{
	if (a->n != b->n || !a->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!strlist_has(b, a->v[i]))
			return false;
	return true;
}

enum zmb_rc ldap_verify_run(struct stage_ctx *ctx, char **err)
{
	struct vf_conf k;
	struct node *nd = NULL;
	char **marker = NULL;
	bool *added = NULL;
	size_t nn = 0;
	char *pw = NULL, *e = NULL;
	enum zmb_rc rc = ZMB_ECONFIG;
	const char *file = ctx->job ? ctx->job->path : "job";
	struct ldc_opts o;
	struct ldc_mods m = LDC_MODS_INIT;
	struct strlist ref = STRLIST_INIT, cur = STRLIST_INIT;

	if (vf_conf_parse(ctx->sc, file, &k, err))
		goto out;
	rc = read_secret(k.c.password_file, "ldap-mmr-verify: password_file", &pw, err);
	if (rc)
		goto out;
	opts_from(&k.c, &o);
	nn = k.servers.n;
	nd = xcalloc(nn, sizeof *nd);
	marker = xcalloc(nn, sizeof *marker);
	added = xcalloc(nn, sizeof *added);

	/* 1. zmldapmmrtool -q on every server */
	for (size_t i = 0; i < nn; i++) {
		struct node *n = &nd[i];
		n->uri = k.servers.v[i];
		n->role = "server";
		rc = open_bind(n->uri, &o, k.c.bind_dn, pw, &n->c, &e);
		if (!rc)
			rc = node_read(n, k.c.suffix, true, &e);
		if (rc)
			goto fail;
		stage_out(ctx, "Server: %s", n->uri);
		if (!n->sid) {
			stage_out(ctx, "Error: No Server ID found.  This does not appear to be a "
				  "multi-master server.");
			e = xasprintf("ldap server %s: step 'query': no server id: not a multi-master "
				      "server", n->uri);
			rc = ZMB_ECONFLICT;
			goto fail;
		}
		stage_out(ctx, "Master Server ID: %s", n->sid);
		if (!n->syncrepl.n) {
			stage_out(ctx, "Error: No sync replication entries found");
			e = xasprintf("ldap server %s: step 'query': no replication agreement", n->uri);
			rc = ZMB_ECONFLICT;
			goto fail;
		}
		for (size_t j = 0; j < n->syncrepl.n; j++) {
			char *rid = sr_token(n->syncrepl.v[j], "rid");
			char *uri = sr_token(n->syncrepl.v[j], "provider");
			char *tls = sr_token(n->syncrepl.v[j], "starttls");
			stage_out(ctx, "Master replication agreement: %zu", j + 1);
			stage_out(ctx, "rid: %s URI: %s TLS: %s", rid ? rid : "?", uri ? uri : "?",
				  tls ? tls : "");
			free(rid);
			free(uri);
			free(tls);
		}
		if (!n->multiprov) {
			e = xasprintf("ldap server %s: step 'query': olcMultiProvider is not TRUE on "
				      "the data database", n->uri);
			rc = ZMB_ECONFLICT;
			goto fail;
		}
	}

	/* 2. a marker written on each server must appear on every other */
	uint64_t tag = rand64();
	for (size_t i = 0; i < nn; i++) {
		marker[i] = xasprintf("cn=zmbatch-verify-%016llx-%zu,%s", (unsigned long long)tag,
				      i, k.marker_base);
		ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "organizationalRole");
		ldc_mods_add(&m, LDAP_MOD_ADD, "description", "zmbatch ldap-mmr-verify marker");
		double t0 = mono_now();
		rc = ldc_add(nd[i].c, marker[i], &m, "write marker", &e);
		ldc_mods_release(&m);
		if (rc)
			goto fail;
		added[i] = true;
		for (size_t j = 0; j < nn; j++) {
			if (j == i)
				continue;
			double pause = 0.005;
			for (;;) {
				int ex = entry_exists(&nd[j], marker[i], &e);
				if (ex < 0) {
					rc = ZMB_EPROTO;
					goto fail;
				}
				if (ex)
					break;
				if (mono_now() - t0 > (double)k.timeout || runctl_stopped(ctx->ctl)) {
					e = xasprintf("ldap server %s: step 'replication from %s': marker "
						      "not replicated within %llds", nd[j].uri,
						      nd[i].uri, k.timeout);
					rc = runctl_stopped(ctx->ctl) ? ZMB_ECANCELED : ZMB_ETIMEOUT;
					goto fail;
				}
				sleep_s(pause);
				pause = pause < 0.2 ? pause * 2 : 0.25;
			}
			stage_out(ctx, "replication %s -> %s: ok (%.0f ms)", nd[i].uri, nd[j].uri,
				  (mono_now() - t0) * 1000);
		}
	}

	/* 3. contextCSN convergence */
	double t0 = mono_now(), pause = 0.005;
	for (;;) {
		bool same = true;
		strlist_release(&ref);
		rc = read_csns(&nd[0], k.c.suffix, &ref, &e);
		for (size_t i = 1; !rc && same && i < nn; i++) {
			strlist_release(&cur);
			rc = read_csns(&nd[i], k.c.suffix, &cur, &e);
			same = !rc && csn_same_set(&ref, &cur);
		}
		if (rc)
			goto fail;
		if (same)
			break;
		if (mono_now() - t0 > (double)k.timeout || runctl_stopped(ctx->ctl)) {
			e = xasprintf("ldap server %s: step 'contextCSN convergence': contextCSN "
				      "differs from %s after %llds", nd[1].uri, nd[0].uri, k.timeout);
			rc = ZMB_ETIMEOUT;
			goto fail;
		}
		sleep_s(pause);
		pause = pause < 0.2 ? pause * 2 : 0.25;
	}
	stage_out(ctx, "contextCSN converged on %zu servers (%.0f ms)", nn,
		  (mono_now() - t0) * 1000);
	for (size_t i = 0; i < ref.n; i++)
		stage_out(ctx, "\t%s", ref.v[i]);
	rc = ZMB_OK;
	goto out;
fail:
	*err = xasprintf("ldap-mmr-verify: %s", e ? e : zmb_rc_str(rc));
out:
	/* 4. remove the markers (on the server that wrote them) */
	for (size_t i = 0; nd && i < nn; i++) {
		char *de = NULL;
		if (added[i] && ldc_delete(nd[i].c, marker[i], "remove marker", &de)) {
			log_warn("ldap-mmr-verify", "%s", de);
			if (!rc) {
				*err = xasprintf("ldap-mmr-verify: %s", de);
				rc = ZMB_EPROTO;
			}
		}
		free(de);
	}
	for (size_t i = 0; nd && i < nn; i++) {
		node_release(&nd[i]);
		free(marker[i]);
	}
	ldc_mods_release(&m);
	strlist_release(&ref);
	strlist_release(&cur);
	free(nd);
	free(marker);
	free(added);
	free(e);
	secret_free(pw);
	strlist_release(&k.servers);
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
	for (size_t i = 0; i < lines.n; i++) {
		const char *v = lines.v[i];
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
		long long r = rid_next_free(&lines, 100, NULL, 0);
		(void)rid_owner(&lines, r < 0 ? 100 : r, &prov);
		free(prov);
	}
	strlist_release(&lines);
	strlist_release(&a);
	strlist_release(&b);
}
