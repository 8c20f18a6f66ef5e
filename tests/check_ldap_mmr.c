/*
 * check_ldap_mmr.c - the LDAP stages against two real slapd instances.
 *
 * Each test starts its own master + replica pair (tests/slapd.c) in a
 * checked fixture, so a failure never leaves a slapd behind.
 */
#include "e2e.h"
#include "ldap_promote.h"
#include "ldapc.h"
#include "slapd.h"
#include "testutil.h"
#include "zmb.h"

#include <check.h>
#include <ldap.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct result {
	enum zmb_rc rc;
	char *err;
	char *out;
};

static void result_release(struct result *r)
{
	free(r->err);
	free(r->out);
	memset(r, 0, sizeof *r);
}

static struct result run_settings(const char *type, struct cval *g)
{
	struct stage_run sr;
	struct result r = { 0, NULL, NULL };
	stage_run_init(&sr, type, type, g);
	r.rc = stage_run_go(&sr, &r.err);
	r.out = xstrdup(sr.ctx.out.s ? sr.ctx.out.s : "");
	stage_run_release(&sr);
	if (getenv("ZMB_TEST_VERBOSE") && r.err)
		fprintf(stderr, "%s: %s\n", type, r.err);
	return r;
}

static struct result replcheck(const struct slapd_pair *p, const char *pwfile, long long wait)
{
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "masters", p->s[0].uri, NULL);
	tcv_strs(g, "replicas", p->s[1].uri, NULL);
	tcv_str(g, "password_file", pwfile);
	tcv_str(g, "suffix", p->suffix);
	tcv_int(g, "wait", wait);
	return run_settings("ldap-replcheck", g);
}

/* ldap-replcheck with both servers as masters (after the promotion), no replica. */
static struct result replcheck_masters(const struct slapd_pair *p, long long wait)
{
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "masters", p->s[0].uri, p->s[1].uri, NULL);
	tcv_str(g, "password_file", p->config_pw_file);
	tcv_str(g, "suffix", p->suffix);
	tcv_int(g, "wait", wait);
	return run_settings("ldap-replcheck", g);
}

/*
 * The contextCSN values of s's suffix entry, read here (anonymously, as
 * zmreplchk reads a replica), one per line as zmreplchk prints them (`s/:/\n/g`,
 * zmreplchk 169 and 251); with drop000, without the SID 000 values but the
 * last, as zmreplchk 110-115 keeps them with more than one master.
 */
static char *csn_lines(const struct slapd_inst *s, const char *suffix, bool drop000)
{
	static const char *const attrs[] = { "contextCSN", NULL };
	struct ldc_opts o = { .timeout = 10 };
	struct ldc *c = NULL;
	struct ldc_result r = LDC_RESULT_INIT;
	char *err = NULL;
	ck_assert_msg(ldc_open(s->uri, &o, &c, &err) == ZMB_OK &&
		      ldc_bind(c, NULL, NULL, &err) == ZMB_OK &&
		      ldc_search(c, suffix, LDAP_SCOPE_BASE, NULL, attrs, &r, "test", &err) == ZMB_OK,
		      "%s", err);
	const struct strlist *v = r.n ? ldc_vals(&r.e[0], "contextCSN") : NULL;
	ck_assert_msg(v && v->n, "no contextCSN on %s", s->uri);
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < v->n; i++)
		if (!drop000 || i + 1 == v->n || !strstr(v->v[i], "#000#"))
			buf_addf(&b, "%s\n", v->v[i]);
	ldc_result_release(&r);
	ldc_close(c);
	return buf_detach(&b);
}

/* The rid of s's (first) olcSyncrepl value, read from its cn=config, as written there. */
static char *agreement_rid(const struct slapd_inst *s)
{
	char *cfg = slapd_dump_config(s);
	const char *p = cfg ? strstr(cfg, "olcSyncrepl: ") : NULL;
	p = p ? strstr(p, "rid=") : NULL;
	ck_assert_msg(p, "no agreement on %s", s->uri);
	p += 4;
	char *rid = xstrndup(p, strcspn(p, " \n"));
	free(cfg);
	return rid;
}

/*
 * What ldap-mmr-verify prints first for the two servers: `Server: URI`, then
 * zmldapmmrtool -q's lines (115, 152-153) for the agreement pulling from the
 * other server; `extra` (may be "") after the first server's agreement 1.
 */
static char *verify_query_lines(const struct slapd_pair *p, const char *extra)
{
	char *rid0 = agreement_rid(&p->s[0]), *rid1 = agreement_rid(&p->s[1]);
	char *t = xasprintf("Server: %s\nMaster Server ID: 1\nMaster replication agreement: 1\n"
			    "rid: %s URI: %s TLS: \n%s"
			    "Server: %s\nMaster Server ID: 2\nMaster replication agreement: 1\n"
			    "rid: %s URI: %s TLS: \n",
			    p->s[0].uri, rid0, p->s[1].uri, extra, p->s[1].uri, rid1, p->s[0].uri);
	free(rid0);
	free(rid1);
	return t;
}

/* A CSN's time in whole seconds (what zmreplchk's compareCSN keeps, 270-275). */
static long long csn_secs(const char *csn)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	ck_assert(sscanf(csn, "%4d%2d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			 &tm.tm_hour, &tm.tm_min, &tm.tm_sec) == 6);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (long long)timegm(&tm);
}

/* the promote stage's settings with optional overrides: master URI, master rid, password file */
static struct cval *promote_settings(const struct slapd_pair *p, const char *master_uri,
				     long long rid, const char *pwfile)
{
	struct cval *g = tcv_group(NULL, NULL);
	char *aldir = xasprintf("%s/accesslog", p->s[1].dir);
	tcv_str(g, "replica", p->s[1].uri);
	tcv_int(g, "server_id", 2);
	struct cval *l = tcv_list(g, "masters");
	struct cval *m = tcv_list_group(l);
	tcv_str(m, "uri", master_uri ? master_uri : p->s[0].uri);
	tcv_int(m, "server_id", 1);
	if (rid >= 0)
		tcv_int(m, "rid", rid);
	tcv_str(g, "password_file", pwfile ? pwfile : p->config_pw_file);
	tcv_str(g, "replication_dn", p->repl_dn);
	tcv_str(g, "replication_password_file", p->repl_pw_file);
	tcv_str(g, "suffix", p->suffix);
	tcv_str(g, "retry", "1 +");
	tcv_str(g, "accesslog_dir", aldir);
	tcv_str(g, "network_timeout", "3s");
	free(aldir);
	return g;
}

static struct result promote(const struct slapd_pair *p, const char *master_uri, long long rid,
			     const char *pwfile)
{
	struct cval *g = promote_settings(p, master_uri, rid, pwfile);
	tcv_str(g, "agreement_tls", "plain");   /* this pair has no TLS (check_ldap_tls.c has) */
	return run_settings("ldap-promote-mmr", g);
}

static struct result verify(const struct slapd_pair *p)
{
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "servers", p->s[0].uri, p->s[1].uri, NULL);
	tcv_str(g, "password_file", p->config_pw_file);
	tcv_str(g, "suffix", p->suffix);
	tcv_str(g, "marker_base", p->base);
	tcv_int(g, "timeout", 10);
	return run_settings("ldap-mmr-verify", g);
}

static struct slapd_pair pair;

static void start_plain(void)
{
	char *err = NULL;
	if (slapd_pair_start(&pair, SLAPD_PLAIN, "dc=example,dc=com", &err))
		ck_abort_msg("fixture: %s", err);
}

static void start_delta_empty(void)
{
	char *err = NULL;
	if (slapd_pair_start(&pair, SLAPD_DELTA, "", &err))
		ck_abort_msg("fixture: %s", err);
}

static void stop_pair(void)
{
	slapd_pair_stop(&pair);
}

/*
 * cn=config dumps equal; else fail naming the first line that differs
 * (ck_assert_str_eq cannot carry two whole dumps in its message).
 */
static void assert_same_config(const char *before, const char *after, const char *who)
{
	ck_assert_ptr_nonnull(before);
	ck_assert_ptr_nonnull(after);
	if (!strcmp(before, after))
		return;
	const char *b = before, *a = after;
	while (*b && *b == *a)
		b++, a++;
	while (b > before && b[-1] != '\n')   /* back to the start of the line */
		b--, a--;
	ck_abort_msg("cn=config of %s changed: was \"%.200s\", now \"%.200s\"", who, b, a);
}

static void assert_no_secret(const struct result *r)
{
	ck_assert_msg(!tu_contains(r->out, SLAPD_REPL_PW) && !tu_contains(r->err, SLAPD_REPL_PW),
		      "replication password leaked");
	ck_assert_msg(!tu_contains(r->out, SLAPD_CONFIG_PW) &&
		      !tu_contains(r->err, SLAPD_CONFIG_PW), "config password leaked");
	ck_assert(!tu_contains(r->out, "credentials="));
}

/* replcheck -> promote -> verify, writes both ways, second run changes nothing */
static void full_flow(void)
{
	struct result r = replcheck(&pair, pair.config_pw_file, 10);
	ck_assert_msg(r.rc == ZMB_OK, "replcheck: %s\n%s", r.err, r.out);
	/* one master: no Master line (zmreplchk 121), the replica's line (246-254)
	 * with its CSNs unindented, SID 000 kept (112: one master) */
	char *csns = csn_lines(&pair.s[1], pair.suffix, false);
	char *want = xasprintf("Replica: %s Code: 0 Status: In Sync CSNs:\n%s", pair.s[1].uri, csns);
	ck_assert_str_eq(r.out, want);
	free(csns);
	free(want);
	result_release(&r);

	r = promote(&pair, NULL, -1, NULL);
	ck_assert_msg(r.rc == ZMB_OK, "promote: %s\n%s", r.err, r.out);
	ck_assert(tu_contains(r.out, "server id: added 2"));
	ck_assert(tu_contains(r.out, "mirror mode: enabled (olcMirrorMode: TRUE)"));
	ck_assert(tu_contains(r.out, "olcUpdateRef: removed"));
	assert_no_secret(&r);
	result_release(&r);

	r = verify(&pair);
	ck_assert_msg(r.rc == ZMB_OK, "verify: %s\n%s", r.err, r.out);
	want = verify_query_lines(&pair, "");
	ck_assert_msg(!strncmp(r.out, want, strlen(want)), "want:\n%s\ngot:\n%s", want, r.out);
	free(want);
	ck_assert(tu_contains(r.out, "contextCSN converged"));
	assert_no_secret(&r);
	result_release(&r);

	/* a write on either side reaches the other */
	ck_assert_int_eq(slapd_add_person(&pair.s[1], pair.base, "bob"), 0);
	ck_assert_int_eq(slapd_add_person(&pair.s[0], pair.base, "carol"), 0);
	char *bob = xasprintf("uid=bob,ou=people,%s", pair.base);
	char *carol = xasprintf("uid=carol,ou=people,%s", pair.base);
	ck_assert_msg(slapd_wait_entry(&pair.s[0], bob, true, 10), "replica -> master");
	ck_assert_msg(slapd_wait_entry(&pair.s[1], carol, true, 10), "master -> replica");
	free(bob);
	free(carol);

	/* rerun: only no-ops, cn=config untouched */
	char *before0 = slapd_dump_config(&pair.s[0]), *before1 = slapd_dump_config(&pair.s[1]);
	r = promote(&pair, NULL, -1, NULL);
	ck_assert_msg(r.rc == ZMB_OK, "promote rerun: %s\n%s", r.err, r.out);
	ck_assert_msg(!tu_contains(r.out, ": added") && !tu_contains(r.out, "enabled") &&
		      !tu_contains(r.out, "removed") && !tu_contains(r.out, "updated"),
		      "second run wrote something:\n%s", r.out);
	result_release(&r);
	r = replcheck(&pair, pair.config_pw_file, 10);
	ck_assert_msg(r.rc == ZMB_OK, "replcheck after: %s\n%s", r.err, r.out);
	csns = csn_lines(&pair.s[1], pair.suffix, false);
	want = xasprintf("Replica: %s Code: 0 Status: In Sync CSNs:\n%s", pair.s[1].uri, csns);
	ck_assert_str_eq(r.out, want);
	free(csns);
	free(want);
	result_release(&r);
	/* both as masters: zmreplchk's Master lines (161-173), ServerID as read
	 * (86), SID 000 left out (112), both in sync */
	r = replcheck_masters(&pair, 10);
	ck_assert_msg(r.rc == ZMB_OK, "replcheck of both masters: %s\n%s", r.err, r.out);
	char *c0 = csn_lines(&pair.s[0], pair.suffix, true);
	char *c1 = csn_lines(&pair.s[1], pair.suffix, true);
	want = xasprintf("Master: %s ServerID: 1 Code: 0 Status: In Sync CSNs:\n%s"
			 "Master: %s ServerID: 2 Code: 0 Status: In Sync CSNs:\n%s",
			 pair.s[0].uri, c0, pair.s[1].uri, c1);
	ck_assert_str_eq(r.out, want);
	ck_assert_str_eq(c0, c1);
	ck_assert_msg(!tu_contains(c0, "#000#") && tu_contains(c0, "#001#") &&
		      tu_contains(c0, "#002#"), "%s", c0);
	free(c0);
	free(c1);
	free(want);
	result_release(&r);
	char *after0 = slapd_dump_config(&pair.s[0]), *after1 = slapd_dump_config(&pair.s[1]);
	assert_same_config(before0, after0, pair.s[0].uri);
	assert_same_config(before1, after1, pair.s[1].uri);
	ck_assert_msg(tu_contains(after0, "olcMultiProvider: TRUE"), "%s", after0);
	ck_assert(!tu_contains(after1, "olcUpdateRef"));
	free(before0);
	free(before1);
	free(after0);
	free(after1);
}

START_TEST(test_plain_flow)
{
	full_flow();
}
END_TEST

START_TEST(test_delta_empty_suffix_flow)
{
	full_flow();
	char *cfg = slapd_dump_config(&pair.s[1]);
	ck_assert_msg(tu_contains(cfg, "olcSuffix: cn=accesslog"), "no accesslog DB on replica");
	ck_assert(tu_contains(cfg, "olcAccessLogDB: cn=accesslog"));
	ck_assert(tu_contains(cfg, "syncdata=accesslog"));
	free(cfg);
}
END_TEST

/* each failure: a message naming server and step, cn=config unchanged on both */
static void assert_fails_untouched(long long rid, const char *master_uri, const char *pwfile,
				   enum zmb_rc want, const char *server, const char *step)
{
	char *b0 = slapd_dump_config(&pair.s[0]), *b1 = slapd_dump_config(&pair.s[1]);
	struct result r = promote(&pair, master_uri, rid, pwfile);
	ck_assert_msg(r.rc == want, "rc %s, want %s: %s", zmb_rc_name(r.rc), zmb_rc_name(want),
		      r.err);
	ck_assert_msg(tu_contains(r.err, server), "server not named: %s", r.err);
	ck_assert_msg(tu_contains(r.err, step), "step '%s' not named: %s", step, r.err);
	assert_no_secret(&r);
	result_release(&r);
	char *a0 = slapd_dump_config(&pair.s[0]), *a1 = slapd_dump_config(&pair.s[1]);
	assert_same_config(b0, a0, pair.s[0].uri);
	assert_same_config(b1, a1, pair.s[1].uri);
	free(b0);
	free(b1);
	free(a0);
	free(a1);
}

START_TEST(test_wrong_password)
{
	assert_fails_untouched(-1, NULL, pair.wrong_pw_file, ZMB_EAUTH, pair.s[1].uri,
			       "step 'bind'");
	struct result r = replcheck(&pair, pair.wrong_pw_file, 0);
	ck_assert_int_eq(r.rc, ZMB_EAUTH);
	ck_assert(tu_contains(r.err, pair.s[0].uri) && tu_contains(r.err, "bind"));
	result_release(&r);
}
END_TEST

START_TEST(test_unreachable)
{
	int fd;
	char *dead = xasprintf("ldap://127.0.0.1:%d/", tu_dead_port(&fd));
	assert_fails_untouched(-1, dead, NULL, ZMB_ECONNECT, dead, "step 'connect'");
	close(fd);
	free(dead);
}
END_TEST

START_TEST(test_server_id_conflict)
{
	ck_assert_int_eq(slapd_modify_add(&pair.s[1], "cn=config", "olcServerID", "7"), 0);
	assert_fails_untouched(-1, NULL, NULL, ZMB_ECONFLICT, pair.s[1].uri,
			       "step 'check server id'");
}
END_TEST

START_TEST(test_duplicate_rid)
{
	char *sr = xasprintf("rid=101 provider=ldap://127.0.0.1:9/ bindmethod=simple "
			     "binddn=\"%s\" credentials=x searchbase=\"%s\" "
			     "type=refreshAndPersist retry=\"60 +\" timeout=0 network-timeout=0",
			     pair.repl_dn, pair.suffix);
	ck_assert_int_eq(slapd_modify_add(&pair.s[0], pair.s[0].datadb, "olcSyncrepl", sr), 0);
	assert_fails_untouched(101, NULL, NULL, ZMB_ECONFLICT, pair.s[0].uri,
			       "step 'check rid'");
	free(sr);
}
END_TEST

/*
 * "not a replica" is checked before any write: the replica cut off its
 * provider (no olcSyncrepl, not multi-provider) refuses the promotion with
 * the server and the check named, and cn=config stays as it was on both.
 */
START_TEST(test_not_a_replica)
{
	ck_assert_int_eq(slapd_modify_del(&pair.s[1], pair.s[1].datadb, "olcSyncrepl"), 0);
	char *cfg = slapd_dump_config(&pair.s[1]);
	ck_assert_msg(!tu_contains(cfg, "olcSyncrepl") && !tu_contains(cfg, "olcMultiProvider: TRUE"),
		      "the fixture still looks like a replica:\n%s", cfg);
	free(cfg);
	assert_fails_untouched(-1, NULL, NULL, ZMB_ECONFLICT, pair.s[1].uri, "step 'check replica'");
	struct result r = promote(&pair, NULL, -1, NULL);
	ck_assert_msg(tu_contains(r.err, "not a replica"), "%s", r.err);
	ck_assert_msg(!tu_contains(r.out, "added") && !tu_contains(r.out, "enabled"),
		      "a write was reported:\n%s", r.out);
	result_release(&r);
}
END_TEST

START_TEST(test_replcheck_out_of_sync)
{
	/* cut the replica off its provider, then write on the master */
	ck_assert_int_eq(slapd_modify_del(&pair.s[1], pair.s[1].datadb, "olcSyncrepl"), 0);
	tu_sleep(1.1);   /* CSN timestamps are what the lag is computed from */
	ck_assert_int_eq(slapd_add_person(&pair.s[0], pair.base, "dave"), 0);
	struct result r = replcheck(&pair, pair.config_pw_file, 1);
	ck_assert_msg(r.rc == ZMB_ETIMEOUT, "rc %s: %s\n%s", zmb_rc_name(r.rc), r.err, r.out);
	ck_assert(tu_contains(r.err, pair.s[1].uri) && tu_contains(r.err, "not in sync"));
	/*
	 * zmreplchk 238-240: compareCSN(replica, master) = replica - master in
	 * whole seconds, negative: "Ns behind" (Date::Manip exact delta: 0y 0M 0w
	 * 0d, then h m s).  No server ID here: one SID 000 CSN on each side.
	 */
	char *cm = csn_lines(&pair.s[0], pair.suffix, false);
	char *cr = csn_lines(&pair.s[1], pair.suffix, false);
	long long lag = csn_secs(cm) - csn_secs(cr);
	ck_assert_msg(lag >= 1 && lag < 60, "lag %lld s\n%s%s", lag, cm, cr);
	char *want = xasprintf("Replica: %s Code: 6 Status: 0y 0M 0w 0d 0h 0m %llds behind CSNs:\n%s",
			       pair.s[1].uri, lag, cr);
	ck_assert_str_eq(r.out, want);
	free(cm);
	free(cr);
	free(want);
	result_release(&r);
}
END_TEST

/*
 * zmldapmmrtool -q's TLS column (lines 138, 141, 153) against real slapd: a
 * second agreement on the master with starttls=critical shows "TLS:
 * critical", the others an empty TLS; its credentials never show.
 */
START_TEST(test_verify_agreement_tls)
{
	struct result r = promote(&pair, NULL, -1, NULL);
	ck_assert_msg(r.rc == ZMB_OK, "promote: %s\n%s", r.err, r.out);
	result_release(&r);
	char *sr = xasprintf("rid=150 provider=ldap://127.0.0.1:9/ bindmethod=simple "
			     "binddn=\"%s\" credentials=%s searchbase=\"%s\" starttls=critical "
			     "type=refreshAndPersist retry=\"60 +\" timeout=1 network-timeout=1",
			     pair.repl_dn, SLAPD_REPL_PW, pair.suffix);
	/* plain layout: the promotion added no accesslog DB, the data DB is where it started */
	ck_assert_int_eq(slapd_modify_add(&pair.s[0], pair.s[0].datadb, "olcSyncrepl", sr), 0);
	free(sr);
	r = verify(&pair);
	ck_assert_msg(r.rc == ZMB_OK, "verify: %s\n%s", r.err, r.out);
	char *want = verify_query_lines(&pair, "Master replication agreement: 2\n"
					"rid: 150 URI: ldap://127.0.0.1:9/ TLS: critical\n");
	ck_assert_msg(!strncmp(r.out, want, strlen(want)), "want:\n%s\ngot:\n%s", want, r.out);
	free(want);
	assert_no_secret(&r);
	result_release(&r);
}
END_TEST

/*
 * The same flow as a job file through the real binary.  A rerun skips the
 * done stages (asserted from its output, the stages table and the events),
 * and leaves cn=config and localconfig.xml as they were.
 */
START_TEST(test_job_through_binary)
{
	char *lc = tu_write(pair.dir, "localconfig.xml",
			    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<localconfig>\n"
			    "  <key name=\"ldap_is_master\">\n    <value>false</value>\n  </key>\n"
			    "</localconfig>\n", 0600);
	char *job = xasprintf(
		"job = \"ldap-mmr\";\n"
		"state = { db = \"%s/state.db\"; };\n"
		"stages = (\n"
		" { name = \"replcheck\"; type = \"ldap-replcheck\"; masters = [ \"%s\" ];\n"
		"   replicas = [ \"%s\" ]; password_file = \"%s\"; suffix = \"%s\"; wait = 10; },\n"
		" { name = \"promote\"; type = \"ldap-promote-mmr\"; replica = \"%s\"; server_id = 2;\n"
		"   masters = ( { uri = \"%s\"; server_id = 1; } ); password_file = \"%s\";\n"
		"   replication_dn = \"%s\"; replication_password_file = \"%s\";\n"
		"   suffix = \"%s\"; retry = \"1 +\"; agreement_tls = \"plain\"; },\n"
		" { name = \"lc\"; type = \"localconfig\"; file = \"%s\";\n"
		"   set = { ldap_is_master = true; ldap_master_url = \"%s %s\"; }; },\n"
		" { name = \"verify\"; type = \"ldap-mmr-verify\"; servers = [ \"%s\", \"%s\" ];\n"
		"   password_file = \"%s\"; suffix = \"%s\"; timeout = 10; }\n"
		");\n",
		pair.dir, pair.s[0].uri, pair.s[1].uri, pair.config_pw_file, pair.suffix,
		pair.s[1].uri, pair.s[0].uri, pair.config_pw_file, pair.repl_dn, pair.repl_pw_file,
		pair.suffix, lc, pair.s[0].uri, pair.s[1].uri, pair.s[0].uri, pair.s[1].uri,
		pair.config_pw_file, pair.suffix);
	char *jf = tu_write(pair.dir, "job.conf", job, 0600);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", jf, NULL };
	struct tu_proc pr = { 0 };
	int st = tu_run(argv, NULL, 60, &pr);
	ck_assert_msg(st == 0, "exit %d\nout:\n%s\nerr:\n%s", st, pr.out, pr.err);
	ck_assert(!tu_contains(pr.out, SLAPD_REPL_PW) && !tu_contains(pr.err, SLAPD_REPL_PW));
	tu_proc_release(&pr);
	char *b0 = slapd_dump_config(&pair.s[0]), *b1 = slapd_dump_config(&pair.s[1]);
	char *lc1 = tu_read(lc);
	char *db = xasprintf("%s/state.db", pair.dir);
	ck_assert_int_eq(e2e_db_int(db, "SELECT count(*) FROM stages WHERE state = 'done' AND attempts = 1"), 4);
	/* replcheck: zmreplchk's lines in the stage's output, each server's detail as an event */
	ck_assert_int_eq(e2e_db_int(db, "SELECT count(*) FROM stages WHERE name = 'replcheck' AND "
				    "output LIKE 'Replica: ldap://% Code: 0 Status: In Sync CSNs:\n2%'"), 1);
	ck_assert_int_eq(e2e_db_int(db, "SELECT count(*) FROM events WHERE stage = 'replcheck' "
				    "AND message LIKE 'ldap-replcheck uri=%'"), 2);
	ck_assert_int_eq(e2e_db_int(db, "SELECT count(*) FROM events WHERE stage = 'replcheck' "
				    "AND level = 'info' AND message LIKE '% role=replica % code=0 "
				    "status=\"In Sync\" sync=yes lag_s=0.000 csns=2%'"), 1);
	ck_assert_int_eq(e2e_db_int(db, "SELECT count(*) FROM events WHERE stage = 'replcheck' "
				    "AND level = 'info' AND message LIKE '% role=master % sync=yes %'"), 1);
	st = tu_run(argv, NULL, 60, &pr);
	ck_assert_msg(st == 0, "rerun exit %d\n%s\n%s", st, pr.out, pr.err);
	/* the rerun ran no stage: each was skipped as done (log, stages table, events) */
	const char *names[] = { "replcheck", "promote", "lc", "verify" };
	for (size_t i = 0; i < 4; i++) {
		char *msg = xasprintf("stage '%s' already done, skipped", names[i]);
		ck_assert_msg(tu_contains(pr.err, msg), "rerun did not skip '%s':\n%s", names[i], pr.err);
		free(msg);
		msg = xasprintf("stage '%s' (", names[i]);   /* "stage 'x' (type) starting" */
		ck_assert_msg(!tu_contains(pr.err, msg), "rerun started '%s':\n%s", names[i], pr.err);
		free(msg);
	}
	tu_proc_release(&pr);
	ck_assert_int_eq(e2e_db_int(db, "SELECT count(*) FROM runs"), 2);
	ck_assert_int_eq(e2e_db_int(db, "SELECT count(*) FROM stages WHERE state = 'done' AND attempts = 1"
				    " AND run_id = (SELECT min(id) FROM runs)"), 4);
	ck_assert_int_eq(e2e_db_int(db, "SELECT count(*) FROM events WHERE message = 'stage started'"), 4);
	free(db);
	char *a0 = slapd_dump_config(&pair.s[0]), *a1 = slapd_dump_config(&pair.s[1]);
	char *lc2 = tu_read(lc);
	assert_same_config(b0, a0, pair.s[0].uri);
	assert_same_config(b1, a1, pair.s[1].uri);
	ck_assert_str_eq(lc1, lc2);
	ck_assert(tu_contains(lc2, "<value>true</value>"));
	free(b0); free(b1); free(a0); free(a1); free(lc1); free(lc2);
	free(job);
	free(jf);
	free(lc);
}
END_TEST

/* i-th element of l containing needle, or NULL */
static const char *list_find(const struct strlist *l, const char *needle)
{
	for (size_t i = 0; i < l->n; i++)
		if (strstr(l->v[i], needle))
			return l->v[i];
	return NULL;
}

/*
 * The fixture's slapds log at the stats level: one modify of two attributes on the master's
 * data DB entry shows up as its DN and both attribute names, client ADDs by their DN, and
 * what syncrepl applies on the replica is not logged as a client ADD there.
 */
START_TEST(test_fixture_stats_log)
{
	LDAP *ld = NULL;
	int v3 = LDAP_VERSION3;
	ck_assert_int_eq(ldap_initialize(&ld, pair.s[0].uri), LDAP_SUCCESS);
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	struct berval pw = { strlen(SLAPD_CONFIG_PW), (char *)SLAPD_CONFIG_PW };
	ck_assert_int_eq(ldap_sasl_bind_s(ld, "cn=config", LDAP_SASL_SIMPLE, &pw, NULL, NULL, NULL),
			 LDAP_SUCCESS);
	char *sr = xasprintf("rid=123 provider=%s bindmethod=simple binddn=\"%s\" "
			     "credentials=" SLAPD_REPL_PW " searchbase=\"%s\" "
			     "type=refreshAndPersist retry=\"60 +\"", pair.s[1].uri, pair.repl_dn,
			     pair.suffix);
	char *sid[] = { (char *)"1", NULL }, *srv[] = { sr, NULL }, *mm[] = { (char *)"TRUE", NULL };
	LDAPMod m0 = { LDAP_MOD_ADD, (char *)"olcServerID", { sid } };
	LDAPMod *m0s[] = { &m0, NULL };
	ck_assert_int_eq(ldap_modify_ext_s(ld, "cn=config", m0s, NULL, NULL), LDAP_SUCCESS);
	LDAPMod m1 = { LDAP_MOD_ADD, (char *)"olcSyncrepl", { srv } };
	LDAPMod m2 = { LDAP_MOD_REPLACE, (char *)"olcMirrorMode", { mm } };
	LDAPMod *m12[] = { &m1, &m2, NULL };
	int rc = ldap_modify_ext_s(ld, pair.s[0].datadb, m12, NULL, NULL);
	ck_assert_msg(rc == LDAP_SUCCESS, "%s", ldap_err2string(rc));
	ldap_unbind_ext_s(ld, NULL, NULL);
	free(sr);
	ck_assert_int_eq(slapd_add_person(&pair.s[0], pair.base, "erin"), 0);
	char *erin = xasprintf("uid=erin,ou=people,%s", pair.base);
	ck_assert(slapd_wait_entry(&pair.s[1], erin, true, 10));

	char *log = slapd_log_read(&pair.s[0]);
	char *want = xasprintf("MOD dn=\"%s\"", pair.s[0].datadb);
	ck_assert_msg(tu_contains(log, want), "%s", log);
	ck_assert(tu_contains(log, "MOD attr=olcSyncrepl olcMirrorMode"));
	free(want);
	free(log);
	ck_assert(slapd_log_has(&pair.s[0], "MOD attr=olcServerID"));
	struct strlist mods = STRLIST_INIT, adds = STRLIST_INIT, radds = STRLIST_INIT;
	slapd_log_ops(&pair.s[0], "MOD", &mods);
	want = xasprintf("%s: olcSyncrepl olcMirrorMode", pair.s[0].datadb);
	ck_assert_msg(strlist_has(&mods, want), "%s", mods.n ? mods.v[mods.n - 1] : "no MOD");
	ck_assert(strlist_has(&mods, "cn=config: olcServerID"));
	free(want);
	slapd_log_ops(&pair.s[0], "ADD", &adds);
	ck_assert_msg(strlist_has(&adds, erin) && strlist_has(&adds, pair.repl_dn) &&
		      strlist_has(&adds, pair.base), "%zu ADDs", adds.n);
	slapd_log_ops(&pair.s[1], "ADD", &radds);
	ck_assert_msg(!list_find(&radds, "uid=erin"), "replicated ADD logged as a client's");
	ck_assert(slapd_log_has(&pair.s[1], "conn="));
	strlist_release(&mods);
	strlist_release(&adds);
	strlist_release(&radds);
	free(erin);
}
END_TEST

/* The DNs of cn=config of s in order (one per line), e.g. "olcOverlay={0}syncprov,olcDatabase={3}mdb" */
static char *config_dns(const struct slapd_inst *s)
{
	char *dump = slapd_dump_config(s);
	ck_assert_ptr_nonnull(dump);
	struct buf b = BUF_INIT;
	for (const char *l = dump; (l = strstr(l, "dn: ")) != NULL; l += 4) {
		if (l != dump && l[-1] != '\n')
			continue;
		size_t n = strcspn(l + 4, "\n");
		if (n > 10 && !strncmp(l + 4 + n - 10, ",cn=config", 10))
			n -= 10;
		buf_addf(&b, "%.*s\n", (int)n, l + 4);
	}
	free(dump);
	return buf_detach(&b);
}

static void assert_layout(const struct slapd_inst *s, const char *want)
{
	char *got = config_dns(s);
	ck_assert_msg(tu_contains(got, want), "%s: want the entries\n%s\nin\n%s", s->uri, want, got);
	free(got);
	ck_assert_int_eq(slapd_has_entry(s, "cn=monitor"), 1);
}

/*
 * Zimbra's starting layout (tests/slapd.c): monitor at {1}, the data DB at {2} ({3} behind
 * the accesslog DB on a delta master), syncprov {0} and accesslog {1} ahead of Zimbra's
 * dynlist and unique.  Both layouts, so the stage tests run against what Zimbra has.
 */
START_TEST(test_fixture_layout)
{
	assert_layout(&pair.s[0], "olcDatabase={-1}frontend\nolcDatabase={0}config\n"
		      "olcDatabase={1}monitor\nolcDatabase={2}mdb\n"
		      "olcOverlay={0}syncprov,olcDatabase={2}mdb\nolcDatabase={3}mdb\n"
		      "olcOverlay={0}syncprov,olcDatabase={3}mdb\n"
		      "olcOverlay={1}accesslog,olcDatabase={3}mdb\n"
		      "olcOverlay={2}dynlist,olcDatabase={3}mdb\n"
		      "olcOverlay={3}unique,olcDatabase={3}mdb\n");
	assert_layout(&pair.s[1], "olcDatabase={1}monitor\nolcDatabase={2}mdb\n"
		      "olcOverlay={0}syncprov,olcDatabase={2}mdb\n"
		      "olcOverlay={1}dynlist,olcDatabase={2}mdb\n"
		      "olcOverlay={2}unique,olcDatabase={2}mdb\n");
	ck_assert_str_eq(pair.s[0].datadb, "olcDatabase={3}mdb,cn=config");
	ck_assert_str_eq(pair.s[1].datadb, "olcDatabase={2}mdb,cn=config");
	char *cfg = slapd_dump_config(&pair.s[0]);
	ck_assert_msg(tu_contains(cfg, "dn: olcDatabase={2}mdb,cn=config\n") &&
		      tu_contains(cfg, "olcSuffix: cn=accesslog"), "%s", cfg);
	free(cfg);
	slapd_pair_stop(&pair);
	start_plain();
	assert_layout(&pair.s[0], "olcDatabase={1}monitor\nolcDatabase={2}mdb\n"
		      "olcOverlay={0}syncprov,olcDatabase={2}mdb\n"
		      "olcOverlay={1}dynlist,olcDatabase={2}mdb\n"
		      "olcOverlay={2}unique,olcDatabase={2}mdb\n");
	assert_layout(&pair.s[1], "olcDatabase={1}monitor\nolcDatabase={2}mdb\n"
		      "olcOverlay={0}dynlist,olcDatabase={2}mdb\n"
		      "olcOverlay={1}unique,olcDatabase={2}mdb\n");
	ck_assert_str_eq(pair.s[0].datadb, "olcDatabase={2}mdb,cn=config");
}
END_TEST

/* The olcSyncrepl value of s (from cn=config) whose provider is provider, or NULL; free it. */
static char *agreement_of(const struct slapd_inst *s, const char *provider)
{
	char *cfg = slapd_dump_config(s);
	char *want = xasprintf(" provider=%s ", provider);
	char *r = NULL;
	for (const char *l = cfg; l && (l = strstr(l, "olcSyncrepl: ")) != NULL; l++) {
		size_t n = strcspn(l, "\n");
		char *v = xstrndup(l + 13, n - 13);
		if (strstr(v, want)) {
			r = v;
			break;
		}
		free(v);
	}
	free(want);
	free(cfg);
	return r;
}

static void dump_ops(const struct slapd_inst *s, const struct strlist *mods,
		     const struct strlist *adds)
{
	fprintf(stderr, "---- %s: client ADDs\n", s->uri);
	for (size_t i = 0; i < adds->n; i++)
		fprintf(stderr, "  %s\n", adds->v[i]);
	fprintf(stderr, "---- %s: client MODs\n", s->uri);
	for (size_t i = 0; i < mods->n; i++)
		fprintf(stderr, "  %s\n", mods->v[i]);
}

/*
 * What ldap-promote-mmr puts on the wire, from both slapds' stats logs (Zimbra's delta
 * layout, suffix ""): olcMirrorMode as the scripts write it and never olcMultiProvider;
 * on the replica the accesslog DB added at {2} as its first write (the data DB moves to
 * {3}), then the accesslog overlay as olcOverlay={1}accesslog behind {0}syncprov; and the
 * master's new agreement as zmldapenable-mmr writes it (read back from its cn=config).
 * The pair has no TLS: agreement_tls = "plain", so no starttls=critical (check_ldap_tls.c
 * promotes a TLS-required pair).
 */
START_TEST(test_promote_wire)
{
	struct result r = promote(&pair, NULL, -1, NULL);
	ck_assert_msg(r.rc == ZMB_OK, "promote: %s\n%s", r.err, r.out);
	assert_no_secret(&r);
	result_release(&r);

	struct strlist mods[2] = { STRLIST_INIT, STRLIST_INIT }, adds[2] = { STRLIST_INIT, STRLIST_INIT };
	for (int i = 0; i < 2; i++) {
		slapd_log_ops(&pair.s[i], "MOD", &mods[i]);
		slapd_log_ops(&pair.s[i], "ADD", &adds[i]);
		if (getenv("ZMB_TEST_VERBOSE"))
			dump_ops(&pair.s[i], &mods[i], &adds[i]);
		ck_assert_msg(!list_find(&mods[i], "olcMultiProvider") &&
			      !list_find(&adds[i], "olcMultiProvider"),
			      "%s: olcMultiProvider sent: %s", pair.s[i].uri,
			      list_find(&mods[i], "olcMultiProvider"));
		/* the master gets its agreement and mirror mode in one modify; the replica has
		 * its rid=100 already, so mirror mode alone */
		char *mm = xasprintf("olcDatabase={3}mdb,cn=config: %solcMirrorMode",
				     i == 0 ? "olcSyncrepl " : "");
		ck_assert_msg(strlist_has(&mods[i], mm), "%s: no '%s' (ZMB_TEST_VERBOSE=1 lists them)",
			      pair.s[i].uri, mm);
		free(mm);
		ck_assert_msg(!list_find(&mods[i], "olcOverlay=accesslog,") &&
			      !list_find(&adds[i], "olcOverlay=accesslog,"),
			      "%s: an accesslog overlay without its index", pair.s[i].uri);
	}
	/* the replica: accesslog DB first, at {2}; overlay {1}accesslog on the data DB, now {3} */
	ck_assert_msg(strlist_has(&adds[1], "olcDatabase={2}mdb,cn=config"), "no accesslog DB");
	ck_assert_msg(strlist_has(&adds[1], "olcOverlay={1}accesslog,olcDatabase={3}mdb,cn=config"),
		      "no olcOverlay={1}accesslog on the replica's data DB");
	char *log = slapd_log_read(&pair.s[1]);
	static const char aldb[] = " ADD dn=\"olcDatabase={2}mdb,cn=config\"\n";
	const char *first_add = strstr(log, " ADD dn=\"");
	const char *first_mod = strstr(log, " MOD dn=\"");
	ck_assert_msg(first_add && (!first_mod || first_add < first_mod) &&
		      !strncmp(first_add, aldb, strlen(aldb)),
		      "the accesslog DB is not the replica's first write");
	free(log);
	/* the master had its accesslog DB and overlay (zmldapenablereplica): nothing added */
	ck_assert_msg(adds[0].n == 0 || !list_find(&adds[0], ",cn=config"),
		      "the master got a new cn=config entry: %s", list_find(&adds[0], ",cn=config"));

	/* the master's new agreement, pulling from the replica (zmldapenable-mmr's text) */
	char *sr = agreement_of(&pair.s[0], pair.s[1].uri);
	ck_assert_msg(sr != NULL, "no agreement with provider=%s on the master", pair.s[1].uri);
	char *binddn = xasprintf(" binddn=%s ", pair.repl_dn);
	const char *want[] = { "{0}rid=100 provider=", " bindmethod=simple ", binddn,
			       " searchbase=\"\" ", " logbase=cn=accesslog ",
			       " logfilter=\"(&(objectClass=auditWriteObject)(reqResult=0))\" ",
			       " syncdata=accesslog ", " type=refreshAndPersist ",
			       " tls_cacertdir=/opt/zimbra/conf/ca ", NULL };
	for (size_t i = 0; want[i]; i++)
		ck_assert_msg(tu_contains(sr, want[i]), "master's agreement lacks '%s'", want[i]);
	size_t n = strlen(sr);
	ck_assert_msg(n > 20 && !strcmp(sr + n - 20, " keepalive=240:10:30"),
		      "master's agreement does not end in keepalive=240:10:30");
	ck_assert_msg(!tu_contains(sr, "starttls"), "starttls in a plain agreement");
	free(binddn);
	secret_free(sr);
	/* both directions replicate */
	ck_assert_int_eq(slapd_add_person(&pair.s[1], pair.base, "rita"), 0);
	char *rita = xasprintf("uid=rita,ou=people,%s", pair.base);
	ck_assert_msg(slapd_wait_entry(&pair.s[0], rita, true, 10), "replica -> master");
	free(rita);
	for (int i = 0; i < 2; i++) {
		strlist_release(&mods[i]);
		strlist_release(&adds[i]);
	}
}
END_TEST

/* cn=config of both servers, for "nothing was written" checks */
struct snap {
	char *c0, *c1;
};

static struct snap snap_take(void)
{
	struct snap s = { slapd_dump_config(&pair.s[0]), slapd_dump_config(&pair.s[1]) };
	return s;
}

static void snap_same(struct snap *b)
{
	struct snap a = snap_take();
	assert_same_config(b->c0, a.c0, pair.s[0].uri);
	assert_same_config(b->c1, a.c1, pair.s[1].uri);
	free(a.c0);
	free(a.c1);
	free(b->c0);
	free(b->c1);
}

/* Replace the string key of g set before (tcv_str appends; the first one wins). */
static void set_str(struct cval *g, const char *key, const char *val)
{
	for (size_t i = 0; i < g->n; i++) {
		if (g->items[i].name && !strcmp(g->items[i].name, key)) {
			free(g->items[i].str);
			g->items[i].str = xstrdup(val);
			return;
		}
	}
	tcv_str(g, key, val);
}

/* Bound cn=config connection through the project's own libldap wrapper. */
static struct ldc *config_conn(const struct slapd_inst *s)
{
	struct ldc *c = NULL;
	char *err = NULL;
	struct ldc_opts o = { 0 };
	o.timeout = 5;
	o.tls_verify = true;
	ck_assert_msg(ldap_open_bind(s->uri, &o, "cn=config", SLAPD_CONFIG_PW, &c, &err) == ZMB_OK,
		      "%s", err);
	return c;
}

/*
 * zmldappromote-replica-mmr refuses a server that has cn=accesslog ("This is
 * not a replica.", lines 96-106).  A replica carrying an accesslog database
 * this job did not add is refused before any write, naming server and step.
 */
START_TEST(test_foreign_accesslog_refused)
{
	char *dir = xasprintf("%s/foreign-accesslog", pair.s[1].dir);
	ck_assert_int_eq(mkdir_p(dir, 0700), 0);
	struct ldc *c = config_conn(&pair.s[1]);
	struct ldc_mods m = LDC_MODS_INIT;
	char *err = NULL;
	ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcDatabaseConfig");
	ldc_mods_add(&m, LDAP_MOD_ADD, "objectClass", "olcMdbConfig");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcDatabase", "mdb");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcSuffix", "cn=accesslog");
	ldc_mods_add(&m, LDAP_MOD_ADD, "olcDbDirectory", dir);
	ck_assert_msg(ldc_add(c, "olcDatabase=mdb,cn=config", &m, "test", &err) == ZMB_OK, "%s", err);
	ldc_mods_release(&m);
	ldc_close(c);

	struct snap b = snap_take();
	struct result r = promote(&pair, NULL, -1, NULL);
	ck_assert_msg(r.rc == ZMB_ECONFLICT, "rc %s: %s\n%s", zmb_rc_name(r.rc), r.err, r.out);
	ck_assert_msg(tu_contains(r.err, pair.s[1].uri) && tu_contains(r.err, "step 'check replica'") &&
		      tu_contains(r.err, "did not add") && tu_contains(r.err, "This is not a replica"),
		      "%s", r.err);
	result_release(&r);
	snap_same(&b);
	free(dir);
}
END_TEST

/*
 * A remote server (create_accesslog_dir = false) without the accesslog
 * directory: slapd refuses the database ("invalid path"); the message names
 * host, path and the command that creates it, and nothing was written on
 * either server (the accesslog DB is the first write).  Once the directory
 * exists, the same job completes.
 */
START_TEST(test_accesslog_dir_missing_remote)
{
	char *dir = xasprintf("%s/not-yet/accesslog/db", pair.s[1].dir);
	struct snap b = snap_take();
	struct cval *g = promote_settings(&pair, NULL, -1, NULL);
	set_str(g, "accesslog_dir", dir);
	tcv_bool(g, "create_accesslog_dir", false);
	tcv_str(g, "mode", "delta");
	tcv_str(g, "agreement_tls", "plain");
	struct result r = run_settings("ldap-promote-mmr", g);
	ck_assert_msg(r.rc == ZMB_ENOTFOUND, "rc %s: %s\n%s", zmb_rc_name(r.rc), r.err, r.out);
	ck_assert_msg(tu_contains(r.err, pair.s[1].uri) && tu_contains(r.err, "does not exist on 127.0.0.1") &&
		      tu_contains(r.err, dir) && tu_contains(r.err, "ssh 127.0.0.1 'mkdir -p ") &&
		      tu_contains(r.err, "nothing was changed"), "%s", r.err);
	ck_assert_msg(!tu_contains(r.out, ": added"), "a write was reported:\n%s", r.out);
	result_release(&r);
	snap_same(&b);

	ck_assert_int_eq(mkdir_p(dir, 0700), 0);
	g = promote_settings(&pair, NULL, -1, NULL);
	set_str(g, "accesslog_dir", dir);
	tcv_bool(g, "create_accesslog_dir", false);
	tcv_str(g, "mode", "delta");
	tcv_str(g, "agreement_tls", "plain");
	r = run_settings("ldap-promote-mmr", g);
	ck_assert_msg(r.rc == ZMB_OK, "after mkdir: %s\n%s", r.err, r.out);
	ck_assert(tu_contains(r.out, "accesslog database: added"));
	result_release(&r);
	free(dir);
}
END_TEST

/* zmldapenable-mmr -r defaults to 100 and stops when it is taken (lines 39, 117-124). */
START_TEST(test_default_rid_taken)
{
	char *sr = xasprintf("rid=100 provider=ldap://127.0.0.1:9/ bindmethod=simple "
			     "binddn=\"%s\" credentials=x searchbase=\"%s\" "
			     "type=refreshAndPersist retry=\"60 +\" timeout=0 network-timeout=0",
			     pair.repl_dn, pair.suffix);
	ck_assert_int_eq(slapd_modify_add(&pair.s[0], pair.s[0].datadb, "olcSyncrepl", sr), 0);
	assert_fails_untouched(-1, NULL, NULL, ZMB_ECONFLICT, pair.s[0].uri, "step 'check rid'");
	struct result r = promote(&pair, NULL, -1, NULL);
	ck_assert_msg(tu_contains(r.err, "rid 100 is already used"), "%s", r.err);
	result_release(&r);
	free(sr);
}
END_TEST

static char *write_localconfig(const char *home, const char *starttls, const char *ips)
{
	char *x = xasprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<localconfig>\n"
			    "  <key name=\"zimbra_home\">\n    <value>%s</value>\n  </key>\n"
			    "  <key name=\"ldap_starttls_supported\">\n    <value>%s</value>\n  </key>\n"
			    "  <key name=\"zimbra_require_interprocess_security\">\n    <value>%s</value>\n"
			    "  </key>\n"
			    "  <key name=\"ldap_is_master\">\n    <value>false</value>\n  </key>\n"
			    "</localconfig>\n", home, starttls, ips);
	char *f = tu_write(pair.dir, "localconfig.xml", x, 0600);
	free(x);
	return f;
}

/*
 * The replica's localconfig decides flavor and the agreements' TLS as
 * zmldapenable-mmr reads it (lines 73-75, 202): without StartTLS in use the
 * stage stops before any write and asks for agreement_tls = "plain"; with it,
 * the agreement carries starttls=critical and Carbonio's CA directory, and
 * ldap_is_master = true is written to the replica's localconfig.
 */
START_TEST(test_localconfig_flavor_tls)
{
	char *lc = write_localconfig("/opt/zextras", "1", "0");
	struct snap b = snap_take();
	struct cval *g = promote_settings(&pair, NULL, -1, NULL);
	tcv_str(g, "localconfig", lc);
	struct result r = run_settings("ldap-promote-mmr", g);
	ck_assert_msg(r.rc == ZMB_ECONFIG, "rc %s: %s\n%s", zmb_rc_name(r.rc), r.err, r.out);
	ck_assert_msg(tu_contains(r.err, lc) && tu_contains(r.err, "zimbra_require_interprocess_security=0") &&
		      tu_contains(r.err, "agreement_tls = \"plain\""), "%s", r.err);
	result_release(&r);
	snap_same(&b);
	char *before = tu_read(lc);
	ck_assert(tu_contains(before, "<value>false</value>"));
	free(before);
	free(lc);

	lc = write_localconfig("/opt/zextras", "1", "1");
	g = promote_settings(&pair, NULL, -1, NULL);
	tcv_str(g, "localconfig", lc);
	r = run_settings("ldap-promote-mmr", g);
	ck_assert_msg(r.rc == ZMB_OK, "%s\n%s", r.err, r.out);
	ck_assert_msg(tu_contains(r.out, "flavor: carbonio (zimbra_home in localconfig)"), "%s", r.out);
	ck_assert_msg(tu_contains(r.out, "ldap_is_master: changed 'false' -> 'true'"), "%s", r.out);
	result_release(&r);
	char *cfg = slapd_dump_config(&pair.s[0]);
	ck_assert_msg(tu_contains(cfg, " starttls=critical ") &&
		      tu_contains(cfg, "tls_cacertdir=/opt/zextras/conf/ca ") &&
		      tu_contains(cfg, "rid=100 "), "%s", cfg);
	free(cfg);
	char *after = tu_read(lc);
	ck_assert_msg(tu_contains(after, "<key name=\"ldap_is_master\">\n    <value>true</value>"), "%s",
		      after);
	free(after);
	free(lc);
}
END_TEST

/*
 * The attribute names a server's schema lists, read the way node_read_schema()
 * reads its subschema: OpenLDAP 2.5's olcMultiProvider with olcMirrorMode as
 * its second name, 2.4's olcMirrorMode alone (OpenLDAP 2.4.59,
 * servers/slapd/bconfig.c line 448), a plain attribute.
 */
START_TEST(test_schema_names)
{
	struct strlist l = STRLIST_INIT;
	schema_names("( OLcfgDbAt:0.16 NAME ( 'olcMultiProvider' 'olcMirrorMode' ) EQUALITY "
		     "booleanMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.7 SINGLE-VALUE )", &l);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_str_eq(l.v[0], "olcmultiprovider");
	ck_assert_str_eq(l.v[1], "olcmirrormode");
	strlist_release(&l);
	schema_names("( OLcfgDbAt:0.16 NAME 'olcMirrorMode' SYNTAX OMsBoolean SINGLE-VALUE )", &l);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.v[0], "olcmirrormode");
	strlist_release(&l);
	schema_names("( 2.5.4.0 NAME 'objectClass' DESC 'RFC4512: object classes' )", &l);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.v[0], "objectclass");
	strlist_release(&l);
	schema_names("( 1.2.3 DESC 'no name' )", &l);
	schema_names("( 1.2.3 NAME ( 'unterminated )", &l);
	ck_assert_uint_eq(l.n, 0);
	strlist_release(&l);
}
END_TEST

/*
 * The agreement is zmldapenable-mmr's, character for character, except that
 * the credentials are quoted (a password with a space).  Golden strings: the
 * script's olcSyncrepl values (Zimbra/zm-ldap-utilities
 * src/libexec/zmldapenable-mmr line 205 with starttls, line 210 without,
 * line 200 for ldaps://), $rid=100, $mmrURI and the password filled in.
 */
START_TEST(test_agreement_is_the_scripts)
{
	struct pm_conf k;
	struct pm_plan pl;
	memset(&k, 0, sizeof k);
	memset(&pl, 0, sizeof pl);
	k.repl_dn = "uid=zmreplica,cn=admins,cn=zimbra";
	k.retry = "60 +";
	k.t.conn.suffix = "";
	pl.cacertdir = (char *)"/opt/zimbra/conf/ca";
	pl.delta = true;
	pl.starttls = true;
	char *a = pm_agreement(&k, &pl, "ldap://ldap2.example.com:389/", 100, "s3cret");
	ck_assert_str_eq(a, "rid=100 provider=ldap://ldap2.example.com:389/ bindmethod=simple "
		"timeout=0 network-timeout=0 binddn=uid=zmreplica,cn=admins,cn=zimbra "
		"credentials=\"s3cret\" starttls=critical filter=\"(objectclass=*)\" searchbase=\"\" "
		"logfilter=\"(&(objectClass=auditWriteObject)(reqResult=0))\" logbase=cn=accesslog "
		"scope=sub schemachecking=off type=refreshAndPersist retry=\"60 +\" "
		"syncdata=accesslog tls_cacertdir=/opt/zimbra/conf/ca keepalive=240:10:30");
	free(a);
	pl.starttls = false;
	a = pm_agreement(&k, &pl, "ldap://ldap2.example.com:389/", 100, "s3cret");
	ck_assert_str_eq(a, "rid=100 provider=ldap://ldap2.example.com:389/ bindmethod=simple "
		"timeout=0 network-timeout=0 binddn=uid=zmreplica,cn=admins,cn=zimbra "
		"credentials=\"s3cret\" filter=\"(objectclass=*)\" searchbase=\"\" "
		"logfilter=\"(&(objectClass=auditWriteObject)(reqResult=0))\" logbase=cn=accesslog "
		"scope=sub schemachecking=off type=refreshAndPersist retry=\"60 +\" "
		"syncdata=accesslog tls_cacertdir=/opt/zimbra/conf/ca keepalive=240:10:30");
	free(a);
	pl.starttls = true;   /* ldaps:// is TLS already: never starttls (line 197) */
	a = pm_agreement(&k, &pl, "ldaps://ldap2.example.com:636/", 100, "s3cret");
	ck_assert(!tu_contains(a, "starttls"));
	ck_assert(tu_contains(a, "provider=ldaps://ldap2.example.com:636/ "));
	free(a);
}
END_TEST

/* The attribute names (lower-cased) of an LDIF-ish dump, "name: value" lines. */
static void dump_attr_names(const char *dump, struct strlist *out)
{
	for (const char *p = dump; p && *p;) {
		size_t n = strcspn(p, "\n");
		size_t c = strcspn(p, ":");
		if (c < n && strncmp(p, "dn:", 3)) {
			char *name = xstrndup(p, c);
			char *l = xstrlower(name);
			free(name);
			if (!strlist_has(out, l))
				strlist_add(out, l);
			free(l);
		}
		p += n + (p[n] == '\n');
	}
}

/*
 * Nothing the promotion writes is unknown to OpenLDAP 2.4 (Zimbra 8.8 and
 * 9): every olc* attribute that appears in either server's cn=config after
 * the promotion, and was not there before, is in 2.4.59's config schema
 * (tests/openldap-2.4.59-olc-attrs.txt, from the OpenLDAP sources).  slapd
 * 2.5 stores mirror mode under its new first name, olcMultiProvider; that
 * the stage sent olcMirrorMode is checked from slapd's stats log.
 */
START_TEST(test_attrs_known_to_openldap_24)
{
	char path[512];
	snprintf(path, sizeof path, "%s/tests/openldap-2.4.59-olc-attrs.txt", tu_srcdir());
	char *known_txt = tu_read(path);
	ck_assert_msg(known_txt && tu_contains(known_txt, "\nolcMirrorMode\n"), "%s", path);
	struct strlist known = STRLIST_INIT, before = STRLIST_INIT, after = STRLIST_INIT;
	for (char *line = strtok(known_txt, "\n"); line; line = strtok(NULL, "\n"))
		if (*line != '#')
			strlist_add_nodup(&known, xstrlower(line));
	ck_assert_int_gt((int)known.n, 150);
	ck_assert(!strlist_has(&known, "olcmultiprovider"));
	for (int i = 0; i < 2; i++) {
		char *d = slapd_dump_config(&pair.s[i]);
		dump_attr_names(d, &before);
		free(d);
	}
	struct result r = promote(&pair, NULL, -1, NULL);
	ck_assert_msg(r.rc == ZMB_OK, "%s\n%s", r.err, r.out);
	ck_assert_msg(tu_contains(r.out, "mirror mode as olcMirrorMode"), "%s", r.out);
	result_release(&r);
	for (int i = 0; i < 2; i++) {
		char *d = slapd_dump_config(&pair.s[i]);
		dump_attr_names(d, &after);
		free(d);
	}
	size_t checked = 0;
	for (size_t i = 0; i < after.n; i++) {
		const char *a = after.v[i];
		if (strncmp(a, "olc", 3) || strlist_has(&before, a) || !strcmp(a, "olcmultiprovider"))
			continue;
		ck_assert_msg(strlist_has(&known, a), "the promotion wrote %s, unknown to OpenLDAP 2.4", a);
		checked++;
	}
	ck_assert_msg(checked >= 10, "only %zu new attributes seen", checked);
	strlist_release(&known);
	strlist_release(&before);
	strlist_release(&after);
	free(known_txt);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("ldap_mmr");
	TCase *tc = tcase_create("plain");
	tcase_add_checked_fixture(tc, start_plain, stop_pair);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_plain_flow);
	tcase_add_test(tc, test_wrong_password);
	tcase_add_test(tc, test_unreachable);
	tcase_add_test(tc, test_server_id_conflict);
	tcase_add_test(tc, test_duplicate_rid);
	tcase_add_test(tc, test_not_a_replica);
	tcase_add_test(tc, test_replcheck_out_of_sync);
	tcase_add_test(tc, test_verify_agreement_tls);
	tcase_add_test(tc, test_job_through_binary);
	tcase_add_test(tc, test_fixture_stats_log);
	tcase_add_test(tc, test_foreign_accesslog_refused);
	tcase_add_test(tc, test_accesslog_dir_missing_remote);
	tcase_add_test(tc, test_default_rid_taken);
	tcase_add_test(tc, test_localconfig_flavor_tls);
	suite_add_tcase(s, tc);
	tc = tcase_create("unit");
	tcase_add_test(tc, test_schema_names);
	tcase_add_test(tc, test_agreement_is_the_scripts);
	suite_add_tcase(s, tc);
	tc = tcase_create("delta");
	tcase_add_checked_fixture(tc, start_delta_empty, stop_pair);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_delta_empty_suffix_flow);
	tcase_add_test(tc, test_fixture_layout);
	tcase_add_test(tc, test_promote_wire);
	tcase_add_test(tc, test_attrs_known_to_openldap_24);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
