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
 *
 * Prints what zmreplchk prints (ldap_format.h has the script's line
 * numbers): with two or more masters `Master: URI ServerID: SID Code: C
 * Status: TEXT CSNs:`, then `Replica: URI Code: C Status: TEXT CSNs:`, each
 * followed by its CSNs one per line, unindented; then a `zmbatch: ...` line
 * for every server where zmreplchk's comparison (contextCSN values by
 * position) and ours (by server ID) disagree, or that was not compared.
 * The stage passes when every server is in sync by server ID: slapd does
 * not promise an order of the contextCSN values, so the position says
 * nothing.  Each server's detail (uri, role, sid, code, status, lag, CSNs)
 * goes to the log and, in a run, to the events table.  The servers and
 * bind settings come from ldap_targets.h (shared with `zmbatch check`).
 */
#include "ldap_common.h"
#include "ldap_format.h"
#include "log.h"
#include "runctl.h"
#include "state.h"

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

/* What reading one server gave besides what zmreplchk shows (struct rpl_srv). */
struct rc_srv {
	bool bind;                    /* bind as bind_dn; else anonymously */
	char *sid;                    /* masters: own server ID (sid_pick), NULL if none */
	enum zmb_rc rc;
	char *err;
};

static void rc_srv_reset(struct rc_srv *s, struct rpl_srv *v)
{
	free(s->sid);
	free(s->err);
	s->sid = s->err = NULL;
	s->rc = ZMB_OK;
	const char *uri = v->uri;
	bool master = v->master;
	rpl_srv_release(v);
	v->uri = uri;
	v->master = master;
}

static void rc_fail(struct rpl_srv *v, int code, const char *text)
{
	v->probe = code;
	free(v->probe_text);
	v->probe_text = xstrdup(text);
}

/*
 * Read one server as zmreplchk does: masters bind as bind_dn and give
 * olcServerID (lines 73-87) and contextCSN (89-101), replicas bind
 * anonymously and give contextCSN (200-213).  The codes of a failure are
 * zmreplchk's (4 down, 3 TLS, 5 search); where zmreplchk has no such case,
 * the text is ours: it dies on a refused master bind (line 74), we say
 * "Unable to bind"; an ldaps:// handshake or our TLS setup failing would be
 * "Server down" for Net::LDAP->new (line 54), we keep code 3 with "TLS
 * handshake failed" / "TLS setup failed"; no contextCSN is "Not a
 * replicated master (URI)" for a master (line 105, a text the script
 * overwrites on line 107) and "No contextCSN" for a replica (the script
 * prints an empty code).  Unlike zmreplchk we never go on in clear text
 * after a failed StartTLS (lines 61-65 do).
 */
static void rc_probe(struct rc_srv *s, struct rpl_srv *v, const struct rc_conf *k,
		     const char *pw)
{
	static const char *const csn_attrs[] = { "contextCSN", NULL };
	static const char *const sid_attrs[] = { "olcServerID", NULL };
	struct ldc_opts o;
	struct ldc *c = NULL;
	struct ldc_result r = LDC_RESULT_INIT;

	rc_srv_reset(s, v);
	ldap_conn_opts(&k->t.conn, &o);
	s->rc = ldc_open(v->uri, &o, &c, &s->err);
	bool opened = s->rc == ZMB_OK;   /* a TLS failure before it is in our own setup */
	if (opened)
		s->rc = ldc_bind(c, s->bind ? k->t.conn.bind_dn : NULL, s->bind ? pw : NULL, &s->err);
	if (s->rc) {
		char *starttls = v->master ? xasprintf("Could not execute StartTLS (%s)", v->uri)
					   : xstrdup("Could not execute StartTLS");   /* 63, 189 */
		/* libldap's StartTLS gives LDAP_CONNECT_ERROR when the handshake fails on a
		 * connection it made (ldapc maps it to ZMB_ECONNECT, as a server down's
		 * LDAP_SERVER_DOWN): the server is up, Net::LDAP->new would have worked */
		int lrc = LDAP_SUCCESS;
		if (opened && s->rc == ZMB_ECONNECT && o.starttls && !strncmp(v->uri, "ldap://", 7))
			ldap_get_option(c->ld, LDAP_OPT_RESULT_CODE, &lrc);
		if (lrc == LDAP_CONNECT_ERROR)
			rc_fail(v, RPL_STARTTLS, starttls);
		else if (s->rc == ZMB_ECONNECT)
			rc_fail(v, RPL_DOWN, "Server down");                      /* 70, 196 */
		else if (s->rc == ZMB_ETLS)
			rc_fail(v, RPL_STARTTLS, !opened ? "TLS setup failed"
				: strncmp(v->uri, "ldaps://", 8) == 0 ? "TLS handshake failed"
				: starttls);
		else
			rc_fail(v, RPL_SEARCH, "Unable to bind");
		free(starttls);
		goto out;
	}
	if (v->master) {
		s->rc = ldc_search(c, "cn=config", LDAP_SCOPE_BASE, NULL, sid_attrs, &r,
				   "read server id", &s->err);
		if (!s->rc && r.n) {
			const struct strlist *sv = ldc_vals(&r.e[0], "olcServerID");
			s->sid = sid_pick(sv, v->uri);
			/* line 86: get_value in scalar context, the first value as is */
			v->sid_raw = sv && sv->n ? xstrdup(sv->v[0]) : NULL;
		}
		ldc_result_release(&r);
		if (s->rc) {
			rc_fail(v, RPL_SEARCH, "Unable to search");
			goto out;
		}
	}
	s->rc = ldc_search(c, k->t.conn.suffix, LDAP_SCOPE_BASE, NULL, csn_attrs, &r,
			   "read contextCSN", &s->err);
	if (s->rc) {
		rc_fail(v, RPL_SEARCH, "Unable to search");                       /* 97, 209 */
		goto out;
	}
	const struct strlist *cv = r.n ? ldc_vals(&r.e[0], "contextCSN") : NULL;
	for (size_t i = 0; cv && i < cv->n; i++)
		strlist_add(&v->csns, cv->v[i]);
	if (!v->csns.n) {
		char *t = v->master ? xasprintf("Not a replicated master (%s)", v->uri)
				    : xstrdup("No contextCSN");
		rc_fail(v, RPL_SEARCH, t);
		free(t);
		s->rc = ZMB_ENOTFOUND;
		s->err = xasprintf("ldap server %s: step 'read contextCSN': no contextCSN on '%s' "
				   "(no syncprov on the suffix entry?)", v->uri, k->t.conn.suffix);
	}
out:
	ldc_result_release(&r);
	ldc_close(c);
}

/* One slot per target, in the targets' order (masters first). */
static void rc_servers(const struct rc_conf *k, struct rc_srv **s, struct rpl_srv **v)
{
	size_t n = k->t.n ? k->t.n : 1;
	*s = xcalloc(n, sizeof **s);
	*v = xcalloc(n, sizeof **v);
	for (size_t i = 0; i < k->t.n; i++) {
		(*v)[i].uri = k->t.v[i].uri;
		(*v)[i].master = !strcmp(k->t.v[i].role, "master");
		(*s)[i].bind = k->t.v[i].bind;
	}
}

/* Probe and judge until in sync, a refused bind, the wait is over or a stop. */
static bool rc_poll(struct stage_ctx *ctx, struct rc_srv *s, struct rpl_srv *v,
		    const struct rc_conf *k, const char *pw)
{
	double deadline = mono_now() + (double)k->wait, pause = 0.1;
	bool ok;
	for (;;) {
		for (size_t i = 0; i < k->t.n; i++)
			rc_probe(&s[i], &v[i], k, pw);
		ok = rpl_judge(v, k->t.n, k->nmasters);
		bool auth = false;
		for (size_t i = 0; i < k->t.n; i++)
			auth |= s[i].rc == ZMB_EAUTH || s[i].rc == ZMB_ECONFIG;
		if (ok || auth || mono_now() + pause > deadline || runctl_stopped(ctx->ctl))
			return ok;
		ldap_sleep(pause);
		pause = pause < 1 ? pause * 1.5 : 1;
	}
}

/* zmreplchk's lines (and ours after them) to the output; the detail to the log and events. */
static void rc_print(struct stage_ctx *ctx, const struct rc_srv *s, const struct rpl_srv *v,
		     const struct rc_conf *k)
{
	struct buf b = BUF_INIT;
	rpl_format(v, k->t.n, k->nmasters, &b);
	stage_out_text(ctx, b.s);
	buf_release(&b);
	const char *name = ctx->sc ? ctx->sc->name : "ldap-replcheck";
	for (size_t i = 0; i < k->t.n; i++) {
		char *d = rpl_detail(&v[i]);
		bool good = s[i].rc == ZMB_OK && v[i].in_sync;
		if (s[i].sid)
			log_debug(name, "%s: own server id %s", v[i].uri, s[i].sid);
		zlog(good ? ZLOG_INFO : ZLOG_WARN, name, "ldap-replcheck %s", d);
		if (ctx->st && !ctx->dry_run) {
			char *msg = xasprintf("ldap-replcheck %s", d);
			if (state_event(ctx->st, ctx->run_id, 0, name, good ? "info" : "warn", msg))
				log_warn(name, "cannot record the replication check of %s: %s",
					 v[i].uri, state_errmsg(ctx->st));
			free(msg);
		}
		free(d);
	}
}

/* Not in sync: the first server error, else the first server out of sync by server ID. */
static enum zmb_rc rc_failure(struct stage_ctx *ctx, const struct rc_srv *s,
			      const struct rpl_srv *v, size_t n, long long wait, char **err)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i].rc) {
			*err = xasprintf("ldap-replcheck: %s", s[i].err);
			return s[i].rc;
		}
	}
	for (size_t i = 1; i < n; i++) {
		if (v[i].compared && !v[i].in_sync) {
			*err = xasprintf("ldap-replcheck: %s %s: step 'compare contextCSN': not in sync "
					 "with %s after %llds: %s", v[i].master ? "master" : "replica",
					 v[i].uri, v[0].uri, wait,
					 v[i].sid_diff ? v[i].sid_diff : "contextCSN differs");
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
	struct rpl_srv *v = NULL;
	char *pw = NULL;
	enum zmb_rc rc = ZMB_ECONFIG;
	const char *file = ctx->job ? ctx->job->path : "job";

	if (rc_conf_parse(ctx->sc, file, &k, &res.err))
		goto out;
	rc = ldap_read_secret(k.t.conn.password_file, "ldap-replcheck: password_file", &pw, &res.err);
	if (rc)
		goto out;
	rc_servers(&k, &s, &v);
	bool ok = rc_poll(ctx, s, v, &k, pw);
	rc_print(ctx, s, v, &k);
	rc = ok ? ZMB_OK : rc_failure(ctx, s, v, k.t.n, k.wait, &res.err);
out:
	for (size_t i = 0; s && i < k.t.n; i++)
		rc_srv_reset(&s[i], &v[i]);
	free(s);
	free(v);
	secret_free(pw);
	rc_conf_release(&k);
	res.rc = rc;
	return res;
}
