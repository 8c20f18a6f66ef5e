/*
 * check_ldap_tls.c - TLS for the LDAP stages against a real slapd with a
 * certificate from a test CA (tests/zsim.h makes the certificates).
 *
 * tcase "starttls": StartTLS on ldap:// (certificate given to slapd through
 * cn=config): verified by default, a server signed by another CA is refused
 * with a message naming the step, tls_verify = false opts out; plus ldapi://
 * and the `check` command over plain ldap://, binding as the stage binds
 * (default bind DN, anonymous replicas, network_timeout).
 *
 * tcase "ldaps": slapd also listens on ldaps:// (slapd_pair_start_ex, the
 * certificate in cn=config from the start): master and replica verified with
 * the test CA (starttls = true is ignored there); another CA, the system CAs
 * or a certificate for another host name are refused as TLS failures naming
 * the server (ZMB_ETLS, code 3), while a closed port stays "server down"
 * (code 4); `zmbatch check` passes/fails accordingly, and an unreadable
 * ca_file is refused even when LDAPTLS_REQCERT=never would let libldap's
 * default TLS context accept anything.
 *
 * tcase "require_tls": Zimbra's delta layout with TLS required (slapd_opts.require_tls):
 * the replica's rid=100 (starttls=critical tls_cacertdir=<CA dir>) replicates over
 * StartTLS, plaintext binds and searches on the data DB are refused, and ldap-promote-mmr
 * leaves StartTLS agreements both ways that replicate both ways.
 */
#include "slapd.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <arpa/inet.h>
#include <check.h>
#include <ldap.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct slapd_pair pair;
static struct zsim_pki *pki;     /* the CA that signed slapd's certificate */
static struct zsim_pki *other;   /* an unrelated CA */

/* Give a slapd a certificate through cn=config (all three in one modify). */
static void set_tls(const struct slapd_inst *s, char *ca_file, char *cert_file, char *key_file)
{
	LDAP *ld = NULL;
	int v3 = LDAP_VERSION3;
	ck_assert_int_eq(ldap_initialize(&ld, s->uri), LDAP_SUCCESS);
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	struct berval pw = { strlen(SLAPD_CONFIG_PW), (char *)SLAPD_CONFIG_PW };
	ck_assert_int_eq(ldap_sasl_bind_s(ld, "cn=config", LDAP_SASL_SIMPLE, &pw, NULL, NULL, NULL),
			 LDAP_SUCCESS);
	char *ca[] = { ca_file, NULL }, *crt[] = { cert_file, NULL }, *key[] = { key_file, NULL };
	LDAPMod m1 = { LDAP_MOD_REPLACE, (char *)"olcTLSCACertificateFile", { ca } };
	LDAPMod m2 = { LDAP_MOD_REPLACE, (char *)"olcTLSCertificateFile", { crt } };
	LDAPMod m3 = { LDAP_MOD_REPLACE, (char *)"olcTLSCertificateKeyFile", { key } };
	LDAPMod *mods[] = { &m1, &m2, &m3, NULL };
	int rc = ldap_modify_ext_s(ld, "cn=config", mods, NULL, NULL);
	ck_assert_msg(rc == LDAP_SUCCESS, "enabling TLS on slapd: %s", ldap_err2string(rc));
	ldap_unbind_ext_s(ld, NULL, NULL);
}

static void enable_tls(const struct slapd_inst *s)
{
	set_tls(s, pki->ca_file, pki->cert_file, pki->key_file);
}

static void setup(void)
{
	char *err = NULL;
	memset(&pair, 0, sizeof pair);
	ck_assert_msg(slapd_pair_start(&pair, SLAPD_PLAIN, "dc=example,dc=com", &err) == 0,
		      "slapd: %s", err ? err : "?");
	pki = zsim_pki_new(NULL);
	other = zsim_pki_new(NULL);
	ck_assert(pki && other);
	enable_tls(&pair.s[0]);
}

static void teardown(void)
{
	slapd_pair_stop(&pair);
	zsim_pki_free(pki);
	zsim_pki_free(other);
}

/*
 * ldap-replcheck of master (and replica, if not NULL, waiting up to 10 s for it to be in
 * sync) with StartTLS as asked; ca_file NULL = the system default CAs.
 */
static enum zmb_rc replcheck_uri(const char *master, const char *replica, bool starttls,
				 const char *ca_file, bool verify, char **err, char **out)
{
	struct stage_run sr;
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "masters", master, NULL);
	if (replica) {
		tcv_strs(g, "replicas", replica, NULL);
		tcv_int(g, "wait", 10);
	}
	tcv_str(g, "password_file", pair.config_pw_file);
	tcv_str(g, "suffix", pair.suffix);
	tcv_bool(g, "starttls", starttls);
	if (ca_file)
		tcv_str(g, "ca_file", ca_file);
	tcv_bool(g, "tls_verify", verify);
	stage_run_init(&sr, "tls", "ldap-replcheck", g);
	enum zmb_rc rc = stage_run_go(&sr, err);
	*out = xstrdup(sr.ctx.out.s ? sr.ctx.out.s : "");
	stage_run_release(&sr);
	return rc;
}

static enum zmb_rc replcheck_tls(const char *ca_file, bool verify, char **err, char **out)
{
	return replcheck_uri(pair.s[0].uri, NULL, true, ca_file, verify, err, out);
}

START_TEST(test_starttls_verified)
{
	char *err = NULL, *out = NULL;
	enum zmb_rc rc = replcheck_tls(pki->ca_file, true, &err, &out);
	ck_assert_msg(rc == ZMB_OK, "%s\n%s", err ? err : "", out);
	/* one master, no replica: zmreplchk prints nothing (Master lines only with two
	 * or more masters, zmreplchk 121) */
	ck_assert_str_eq(out, "");
	free(err);
	free(out);
}
END_TEST

START_TEST(test_starttls_untrusted_refused)
{
	char *err = NULL, *out = NULL;
	enum zmb_rc rc = replcheck_tls(other->ca_file, true, &err, &out);
	ck_assert_int_ne(rc, ZMB_OK);
	/* zmreplchk's code 3 and text of line 63, on zmbatch's line for a single master */
	char *want = xasprintf("zmbatch: master %s: Code: 3 Status: Could not execute StartTLS (%s) "
			       "(zmreplchk prints no Master line for a single master)\n",
			       pair.s[0].uri, pair.s[0].uri);
	ck_assert_str_eq(out, want);
	free(want);
	ck_assert_msg(tu_contains(err, pair.s[0].uri), "%s", err);
	ck_assert(!tu_contains(out, SLAPD_CONFIG_PW) && !tu_contains(err, SLAPD_CONFIG_PW));
	free(err);
	free(out);
}
END_TEST

/* StartTLS asked, nothing listening: "Server down" (code 4), not a StartTLS failure (3). */
START_TEST(test_starttls_server_down)
{
	int dead;
	char *uri = xasprintf("ldap://127.0.0.1:%d/", tu_dead_port(&dead));
	char *err = NULL, *out = NULL;
	enum zmb_rc rc = replcheck_uri(uri, NULL, true, pki->ca_file, true, &err, &out);
	close(dead);
	ck_assert_msg(rc == ZMB_ECONNECT, "rc %s\n%s\n%s", zmb_rc_name(rc), err ? err : "", out);
	char *want = xasprintf("zmbatch: master %s: Code: 4 Status: Server down (zmreplchk prints "
			       "no Master line for a single master)\n", uri);
	ck_assert_str_eq(out, want);
	free(want);
	free(err);
	free(out);
	free(uri);
}
END_TEST

START_TEST(test_starttls_verify_off)
{
	char *err = NULL, *out = NULL;
	enum zmb_rc rc = replcheck_tls(other->ca_file, false, &err, &out);
	ck_assert_msg(rc == ZMB_OK, "%s\n%s", err ? err : "", out);
	free(err);
	free(out);
}
END_TEST

/* A single master that cannot be reached is never "in sync" (found by the test above). */
START_TEST(test_single_master_down)
{
	struct stage_run sr;
	char *err = NULL;
	int dead;
	char *uri = xasprintf("ldap://127.0.0.1:%d/", tu_dead_port(&dead));
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "masters", uri, NULL);
	tcv_str(g, "password_file", pair.config_pw_file);
	tcv_str(g, "suffix", pair.suffix);
	stage_run_init(&sr, "down", "ldap-replcheck", g);
	enum zmb_rc rc = stage_run_go(&sr, &err);
	ck_assert_int_ne(rc, ZMB_OK);
	/* zmreplchk's code 4 (line 69-70) on zmbatch's line: no Master line for one master */
	char *want = xasprintf("zmbatch: master %s: Code: 4 Status: Server down (zmreplchk prints "
			       "no Master line for a single master)\n", uri);
	ck_assert_str_eq(sr.ctx.out.s, want);
	free(want);
	ck_assert(tu_contains(err, uri));
	stage_run_release(&sr);
	close(dead);
	free(err);
	free(uri);
}
END_TEST

/* Local stages talk to slapd over ldapi:// (as the Carbonio scripts do), simple bind as cn=config. */
START_TEST(test_replcheck_over_ldapi)
{
	struct stage_run sr;
	char *err = NULL;
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "masters", pair.s[0].ldapi, NULL);
	tcv_strs(g, "replicas", pair.s[1].uri, NULL);
	tcv_str(g, "password_file", pair.config_pw_file);
	tcv_str(g, "suffix", pair.suffix);
	tcv_int(g, "wait", 10);
	stage_run_init(&sr, "local", "ldap-replcheck", g);
	enum zmb_rc rc = stage_run_go(&sr, &err);
	ck_assert_msg(rc == ZMB_OK, "%s\n%s", err ? err : "", sr.ctx.out.s);
	/* one master (over ldapi): no Master line (zmreplchk 121), the replica's line (246-254) */
	char *want = xasprintf("Replica: %s Code: 0 Status: In Sync CSNs:\n2", pair.s[1].uri);
	ck_assert_msg(!strncmp(sr.ctx.out.s, want, strlen(want)), "%s", sr.ctx.out.s);
	ck_assert(!tu_contains(sr.ctx.out.s, "Master:") && !tu_contains(sr.ctx.out.s, "\t"));
	free(want);
	stage_run_release(&sr);
	free(err);
}
END_TEST

/* `zmbatch check` binds to every LDAP server named by the job's stages. */
START_TEST(test_check_command_ldap)
{
	struct tu_proc p;
	const char *pwfiles[2] = { pair.config_pw_file, pair.wrong_pw_file };
	int want[2] = { 0, 69 };
	for (int i = 0; i < 2; i++) {
		char *text = xasprintf("job = \"ldap-check\";\n"
				       "state = { db = \"%s/check.db\"; };\n"
				       "stages = ( { name = \"replcheck\"; type = \"ldap-replcheck\";\n"
				       "  masters = [ \"%s\" ]; replicas = [ \"%s\" ];\n"
				       "  bind_dn = \"cn=config\"; password_file = \"%s\";\n"
				       "  suffix = \"%s\"; } );\n",
				       pair.dir, pair.s[0].uri, pair.s[1].uri, pwfiles[i], pair.suffix);
		char *job = tu_write(pair.dir, "check.cfg", text, 0600);
		char *argv[] = { (char *)tu_zmbatch(), (char *)"check", (char *)"-c", job, NULL };
		int rc = tu_run(argv, NULL, 60, &p);
		ck_assert_msg(rc == want[i], "check exit %d, want %d\n%s%s", rc, want[i], p.out, p.err);
		ck_assert(tu_contains(p.out, pair.s[0].uri));
		ck_assert(!tu_contains(p.out, SLAPD_CONFIG_PW) && !tu_contains(p.err, SLAPD_CONFIG_PW));
		tu_proc_release(&p);
		free(job);
		free(text);
	}
}
END_TEST

/* A loopback port that accepts connections (kernel backlog) and never answers. */
static int silent_port(int *fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert(*fd >= 0);
	ck_assert(bind(*fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(*fd, 8) == 0);
	ck_assert(getsockname(*fd, (struct sockaddr *)&a, &len) == 0);
	return ntohs(a.sin_port);
}

/*
 * `zmbatch check` binds as the stage will (the stages' reader, ldap_targets.h): with no
 * bind_dn the masters bind as cn=config (so a wrong password fails), the replicas of
 * ldap-replcheck anonymously (so the same wrong password does not fail them), and the
 * stage's network_timeout bounds a server that never answers.
 */
START_TEST(test_check_command_binds_as_the_stage)
{
	int fd = -1;
	char *silent = xasprintf("ldap://127.0.0.1:%d/", silent_port(&fd));
	struct {
		const char *pwfile;
		const char *replica;
		int want;
	} cases[] = {
		{ pair.config_pw_file, pair.s[1].uri, 0 },
		{ pair.wrong_pw_file, pair.s[1].uri, 69 },
		{ pair.config_pw_file, silent, 69 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *text = xasprintf("job = \"ldap-check\";\n"
				       "state = { db = \"%s/check.db\"; };\n"
				       "stages = ( { name = \"replcheck\"; type = \"ldap-replcheck\";\n"
				       "  masters = [ \"%s\" ]; replicas = [ \"%s\" ];\n"
				       "  password_file = \"%s\"; network_timeout = \"1s\";\n"
				       "  suffix = \"%s\"; } );\n",
				       pair.dir, pair.s[0].uri, cases[i].replica, cases[i].pwfile,
				       pair.suffix);
		char *job = tu_write(pair.dir, "check.cfg", text, 0600);
		char *argv[] = { (char *)tu_zmbatch(), (char *)"check", (char *)"-c", job, NULL };
		char *master = xasprintf("stage 'replcheck': ldap %s bind as cn=config", pair.s[0].uri);
		char *replica = xasprintf("stage 'replcheck': ldap %s bind as anonymous",
					  cases[i].replica);
		char *replica_ok = xasprintf("ok   %s", replica);
		struct tu_proc p;
		double t0 = mono_now();
		int rc = tu_run(argv, NULL, 60, &p);
		double took = mono_now() - t0;
		ck_assert_msg(rc == cases[i].want, "case %zu: check exit %d, want %d\n%s%s", i, rc,
			      cases[i].want, p.out, p.err);
		ck_assert_msg(tu_contains(p.out, master) && tu_contains(p.out, replica),
			      "case %zu: not bound as the stage binds:\n%s", i, p.out);
		if (i < 2)
			ck_assert_msg(tu_contains(p.out, replica_ok), "case %zu:\n%s", i, p.out);
		else
			ck_assert_msg(took < 6, "case %zu: network_timeout 1s not honoured: %.1f s", i,
				      took);
		ck_assert(!tu_contains(p.out, SLAPD_CONFIG_PW) && !tu_contains(p.err, SLAPD_CONFIG_PW));
		tu_proc_release(&p);
		free(master);
		free(replica);
		free(replica_ok);
		free(job);
		free(text);
	}
	close(fd);
	free(silent);
}
END_TEST

/* ---- ldaps:// (TLS from the first byte) ---- */

/* Both slapds start with the pki's certificate and also listen on ldaps://. */
static void setup_ldaps(void)
{
	char *err = NULL;
	memset(&pair, 0, sizeof pair);
	pki = zsim_pki_new(NULL);
	other = zsim_pki_new(NULL);
	ck_assert(pki && other);
	struct slapd_opts o = { .tls_cert_file = pki->cert_file, .tls_key_file = pki->key_file,
				.tls_ca_file = pki->ca_file, .ldaps = true };
	ck_assert_msg(slapd_pair_start_ex(&pair, SLAPD_PLAIN, "dc=example,dc=com", &o, &err) == 0,
		      "slapd: %s", err ? err : "?");
	ck_assert(pair.s[0].ldaps && pair.s[1].ldaps);
}

/* Master and replica over ldaps://, certificate verified with the test CA. */
START_TEST(test_ldaps_verified)
{
	/* starttls = true changes nothing on ldaps:// (ldapc.h: never StartTLS inside TLS) */
	for (int starttls = 0; starttls < 2; starttls++) {
		char *err = NULL, *out = NULL;
		enum zmb_rc rc = replcheck_uri(pair.s[0].ldaps, pair.s[1].ldaps, starttls,
					       pki->ca_file, true, &err, &out);
		ck_assert_msg(rc == ZMB_OK, "starttls=%d: %s\n%s", starttls, err ? err : "", out);
		/* one master: only the replica's zmreplchk line (121, 246-254), CSNs unindented */
		char *r = xasprintf("Replica: %s Code: 0 Status: In Sync CSNs:\n2", pair.s[1].ldaps);
		ck_assert_msg(!strncmp(out, r, strlen(r)), "%s", out);
		ck_assert_msg(!tu_contains(out, "Master:") && !tu_contains(out, "\t"), "%s", out);
		free(r);
		free(err);
		free(out);
	}
}
END_TEST

/*
 * A certificate the client cannot verify (another CA; no ca_file, so the system CAs) is
 * refused as a TLS failure naming the server, not as "server down" (libldap says
 * "Can't contact LDAP server" for both).
 */
START_TEST(test_ldaps_untrusted_refused)
{
	const char *cas[2] = { other->ca_file, NULL };
	for (int i = 0; i < 2; i++) {
		char *err = NULL, *out = NULL;
		enum zmb_rc rc = replcheck_uri(pair.s[0].ldaps, NULL, false, cas[i], true, &err,
					       &out);
		ck_assert_msg(rc == ZMB_ETLS, "ca %d: rc %s\n%s\n%s", i, zmb_rc_name(rc),
			      err ? err : "", out);
		/* zmreplchk's code 3 (TLS), with the server named; no StartTLS was involved (zmreplchk
		 * itself would say "Server down": Net::LDAP->new fails, line 54, 68-70) */
		char *want = xasprintf("zmbatch: master %s: Code: 3 Status: TLS handshake failed "
				       "(zmreplchk prints no Master line for a single master)\n",
				       pair.s[0].ldaps);
		ck_assert_str_eq(out, want);
		free(want);
		ck_assert_msg(tu_contains(err, pair.s[0].ldaps) && tu_contains(err, "TLS handshake") &&
			      tu_contains(err, "certificate"), "%s", err);
		ck_assert(!tu_contains(err, "cannot connect"));
		ck_assert(!cas[i] || tu_contains(err, cas[i]));
		ck_assert(!tu_contains(out, SLAPD_CONFIG_PW) && !tu_contains(err, SLAPD_CONFIG_PW));
		free(err);
		free(out);
	}
}
END_TEST

START_TEST(test_ldaps_verify_off)
{
	char *err = NULL, *out = NULL;
	enum zmb_rc rc = replcheck_uri(pair.s[0].ldaps, NULL, false, other->ca_file, false, &err,
				       &out);
	ck_assert_msg(rc == ZMB_OK, "%s\n%s", err ? err : "", out);
	ck_assert_str_eq(out, "");   /* one master in sync: nothing to print (zmreplchk 121) */
	free(err);
	free(out);
}
END_TEST

/* Signed by the trusted CA but issued for another host name: refused too. */
START_TEST(test_ldaps_wrong_host_refused)
{
	set_tls(&pair.s[0], pki->ca_file, pki->wrong_cert, pki->wrong_key);
	char *err = NULL, *out = NULL;
	enum zmb_rc rc = replcheck_uri(pair.s[0].ldaps, NULL, false, pki->ca_file, true, &err,
				       &out);
	ck_assert_msg(rc == ZMB_ETLS, "rc %s\n%s\n%s", zmb_rc_name(rc), err ? err : "", out);
	ck_assert_msg(tu_contains(err, pair.s[0].ldaps) && tu_contains(err, "TLS handshake"),
		      "%s", err);
	free(err);
	free(out);
	err = out = NULL;
	/* the same server with verification off: it was the name check that refused */
	rc = replcheck_uri(pair.s[0].ldaps, NULL, false, pki->ca_file, false, &err, &out);
	ck_assert_msg(rc == ZMB_OK, "%s\n%s", err ? err : "", out);
	free(err);
	free(out);
}
END_TEST

/* Nothing listening: still "server down" (code 4, retryable), not a TLS failure. */
START_TEST(test_ldaps_server_down)
{
	int dead;
	char *uri = xasprintf("ldaps://127.0.0.1:%d/", tu_dead_port(&dead));
	char *err = NULL, *out = NULL;
	enum zmb_rc rc = replcheck_uri(uri, NULL, false, pki->ca_file, true, &err, &out);
	close(dead);
	ck_assert_msg(rc == ZMB_ECONNECT, "rc %s\n%s\n%s", zmb_rc_name(rc), err ? err : "", out);
	ck_assert_msg(tu_contains(out, "Code: 4 Status: Server down"), "%s", out);
	ck_assert_msg(tu_contains(err, uri) && tu_contains(err, "cannot connect") &&
		      !tu_contains(err, "TLS"), "%s", err);
	free(err);
	free(out);
	free(uri);
}
END_TEST

/*
 * `zmbatch check` over ldaps://: 0 with the right CA, 69 with another CA, and 69 when
 * ca_file cannot be read, even with LDAPTLS_REQCERT=never in the environment (as
 * ldap.conf's TLS_REQCERT never): libldap must not fall back to its default TLS context.
 */
START_TEST(test_check_command_ldaps)
{
	struct {
		const char *ca_file;
		const char *env;
		const char *verify;
		int want;
		const char *says;
	} cases[] = {
		{ pki->ca_file, NULL, "true", 0, NULL },
		{ other->ca_file, NULL, "true", 69, "TLS handshake failed" },
		{ "/nonexistent/ca.pem", "LDAPTLS_REQCERT=never", "true", 69,
		  "cannot use ca_file '/nonexistent/ca.pem'" },
		/* check does what the run will do: the stage's tls_verify = false is honoured, and said */
		{ other->ca_file, NULL, "false", 0, "(TLS verification OFF)" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *text = xasprintf("job = \"ldaps-check\";\n"
				       "state = { db = \"%s/check.db\"; };\n"
				       "stages = ( { name = \"replcheck\"; type = \"ldap-replcheck\";\n"
				       "  masters = [ \"%s\" ]; replicas = [ \"%s\" ];\n"
				       "  bind_dn = \"cn=config\"; password_file = \"%s\";\n"
				       "  ca_file = \"%s\"; suffix = \"%s\"; tls_verify = %s; } );\n",
				       pair.dir, pair.s[0].ldaps, pair.s[1].ldaps, pair.config_pw_file,
				       cases[i].ca_file, pair.suffix, cases[i].verify);
		char *job = tu_write(pair.dir, "check.cfg", text, 0600);
		char *argv[] = { (char *)tu_zmbatch(), (char *)"check", (char *)"-c", job, NULL };
		char *env[] = { (char *)cases[i].env, NULL };
		struct tu_proc p;
		int rc = tu_run(argv, env, 60, &p);
		ck_assert_msg(rc == cases[i].want, "case %zu: check exit %d, want %d\n%s%s", i, rc,
			      cases[i].want, p.out, p.err);
		ck_assert(tu_contains(p.out, pair.s[0].ldaps) && tu_contains(p.out, pair.s[1].ldaps));
		ck_assert_msg(!cases[i].says || tu_contains(p.out, cases[i].says), "case %zu:\n%s", i,
			      p.out);
		ck_assert(!tu_contains(p.out, SLAPD_CONFIG_PW) && !tu_contains(p.err, SLAPD_CONFIG_PW));
		tu_proc_release(&p);
		free(job);
		free(text);
	}
}
END_TEST

/* ---- TLS required (slapd_opts.require_tls): StartTLS agreements, plaintext refused ---- */

/* Zimbra's layout (delta, suffix ""), both slapds with the pki's certificate, TLS required. */
static void setup_require_tls(void)
{
	char *err = NULL;
	memset(&pair, 0, sizeof pair);
	pki = zsim_pki_new(NULL);
	other = NULL;
	ck_assert(pki);
	struct slapd_opts o = { .tls_cert_file = pki->cert_file, .tls_key_file = pki->key_file,
				.tls_ca_file = pki->ca_file, .require_tls = true };
	ck_assert_msg(slapd_pair_start_ex(&pair, SLAPD_DELTA, "", &o, &err) == 0, "slapd: %s",
		      err ? err : "?");
	ck_assert_ptr_nonnull(pair.ca_dir);
}

/* A connection to uri, StartTLS with the pki's CA first when tls. */
static LDAP *client(const char *uri, bool tls)
{
	LDAP *ld = NULL;
	int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, zero = 0;
	ck_assert_int_eq(ldap_initialize(&ld, uri), LDAP_SUCCESS);
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	if (tls) {
		ck_assert_int_eq(ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, pki->ca_file),
				 LDAP_SUCCESS);
		ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
		ck_assert_int_eq(ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero), LDAP_SUCCESS);
		int rc = ldap_start_tls_s(ld, NULL, NULL);
		ck_assert_msg(rc == LDAP_SUCCESS, "StartTLS on %s: %s", uri, ldap_err2string(rc));
	}
	return ld;
}

static int simple_bind(LDAP *ld, const char *dn, const char *pw)
{
	struct berval cred = { strlen(pw), (char *)pw };
	return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}

/*
 * Every bind of dn in s's stats log had a security layer (" ssf=0" never follows it) and
 * there was at least one: the replication connection really ran over TLS.
 */
static void assert_binds_over_tls(const struct slapd_inst *s, const char *dn)
{
	char *log = slapd_log_read(s);
	char *needle = xasprintf("BIND dn=\"%s\" mech=SIMPLE", dn);
	int n = 0;
	ck_assert_ptr_nonnull(log);
	for (const char *l = log; (l = strstr(l, needle)) != NULL; l++) {
		size_t len = strcspn(l, "\n");
		char *line = xstrndup(l, len);
		ck_assert_msg(!strstr(line, " ssf=0"), "%s: a plaintext bind: %s", s->uri, line);
		free(line);
		n++;
	}
	ck_assert_msg(n > 0, "%s: no bind of %s in the log", s->uri, dn);
	ck_assert_msg(tu_contains(log, "EXT oid=1.3.6.1.4.1.1466.20037"), "%s: no StartTLS", s->uri);
	free(needle);
	free(log);
}

/* The replica's rid=100 is zmldapenablereplica's StartTLS agreement and replicates over it. */
START_TEST(test_require_tls_replicates)
{
	char *cfg = slapd_dump_config(&pair.s[1]);
	char *dir = xasprintf(" tls_cacertdir=%s\n", pair.ca_dir);
	ck_assert_msg(tu_contains(cfg, "olcSyncrepl: {0}rid=100 ") &&
		      tu_contains(cfg, " starttls=critical") && tu_contains(cfg, dir) &&
		      !tu_contains(cfg, "tls_cacert="), "%s", cfg);
	ck_assert(tu_contains(cfg, "olcSecurity: ssf=1"));
	free(dir);
	free(cfg);
	/* the seed came over TLS (the fixture waited for it); a later write does too */
	ck_assert_int_eq(slapd_add_person(&pair.s[0], pair.base, "tina"), 0);
	char *dn = xasprintf("uid=tina,ou=people,%s", pair.base);
	ck_assert_msg(slapd_wait_entry(&pair.s[1], dn, true, 10), "master -> replica over StartTLS");
	free(dn);
	assert_binds_over_tls(&pair.s[0], pair.repl_dn);
}
END_TEST

/*
 * The data DB refuses plaintext: a simple bind of the replication DN and an anonymous
 * search over ldap:// without StartTLS are refused (confidentialityRequired), the same
 * after StartTLS succeed, and cn=config over ldapi:// works (the helpers use it).
 */
START_TEST(test_require_tls_plaintext_refused)
{
	for (int i = 0; i < 2; i++) {
		const struct slapd_inst *s = &pair.s[i];
		LDAP *ld = client(s->uri, false);
		int rc = simple_bind(ld, pair.repl_dn, SLAPD_REPL_PW);
		ck_assert_msg(rc == LDAP_CONFIDENTIALITY_REQUIRED, "%s: plaintext bind: %s", s->uri,
			      ldap_err2string(rc));
		ldap_unbind_ext_s(ld, NULL, NULL);
		ld = client(s->uri, false);
		LDAPMessage *msg = NULL;
		char *attrs[] = { (char *)"1.1", NULL };
		rc = ldap_search_ext_s(ld, pair.base, LDAP_SCOPE_BASE, NULL, attrs, 0, NULL, NULL,
				       NULL, 0, &msg);
		ck_assert_msg(rc == LDAP_CONFIDENTIALITY_REQUIRED, "%s: plaintext search: %s",
			      s->uri, ldap_err2string(rc));
		ldap_msgfree(msg);
		ldap_unbind_ext_s(ld, NULL, NULL);

		ld = client(s->uri, true);
		rc = simple_bind(ld, pair.repl_dn, SLAPD_REPL_PW);
		ck_assert_msg(rc == LDAP_SUCCESS, "%s: bind after StartTLS: %s", s->uri,
			      ldap_err2string(rc));
		msg = NULL;
		rc = ldap_search_ext_s(ld, pair.base, LDAP_SCOPE_BASE, NULL, attrs, 0, NULL, NULL,
				       NULL, 0, &msg);
		ck_assert_msg(rc == LDAP_SUCCESS && ldap_count_entries(ld, msg) == 1,
			      "%s: search after StartTLS: %s", s->uri, ldap_err2string(rc));
		ldap_msgfree(msg);
		ldap_unbind_ext_s(ld, NULL, NULL);

		/* ldapi:// as cn=config: cn=config and the data DB */
		char *cfg = slapd_dump_config(s);
		ck_assert_msg(cfg && tu_contains(cfg, "olcSecurity: ssf=1"), "%s", s->ldapi);
		free(cfg);
		ck_assert_int_eq(slapd_has_entry(s, pair.base), 1);
	}
}
END_TEST

/* The olcSyncrepl value of s whose provider is provider (from cn=config), or NULL; free it. */
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

/*
 * ldap-promote-mmr on the TLS-required pair with the stage's defaults for the agreements
 * (agreement_tls = auto: starttls=critical) and tls_cacertdir = the pair's CA directory;
 * the stage itself talks to both over StartTLS, verified.  Afterwards both agreements are
 * StartTLS ones and a write on either side reaches the other, so replication runs over
 * StartTLS both ways (the data DBs refuse anything else; every replicator bind on each side
 * had a security layer).
 */
START_TEST(test_promote_over_starttls)
{
	struct stage_run sr;
	char *err = NULL;
	char *aldir = xasprintf("%s/accesslog", pair.s[1].dir);
	struct cval *g = tcv_group(NULL, NULL);
	tcv_str(g, "replica", pair.s[1].uri);
	tcv_int(g, "server_id", 2);
	struct cval *m = tcv_list_group(tcv_list(g, "masters"));
	tcv_str(m, "uri", pair.s[0].uri);
	tcv_int(m, "server_id", 1);
	tcv_str(g, "password_file", pair.config_pw_file);
	tcv_str(g, "replication_dn", pair.repl_dn);
	tcv_str(g, "replication_password_file", pair.repl_pw_file);
	tcv_str(g, "suffix", pair.suffix);
	tcv_str(g, "retry", "1 +");
	tcv_str(g, "accesslog_dir", aldir);
	tcv_str(g, "agreement_tls_cacertdir", pair.ca_dir);
	tcv_bool(g, "starttls", true);
	tcv_str(g, "ca_file", pki->ca_file);
	tcv_str(g, "network_timeout", "3s");
	stage_run_init(&sr, "promote", "ldap-promote-mmr", g);
	enum zmb_rc rc = stage_run_go(&sr, &err);
	ck_assert_msg(rc == ZMB_OK, "promote: %s\n%s", err ? err : "", sr.ctx.out.s);
	ck_assert_msg(tu_contains(sr.ctx.out.s, "starttls=critical"), "%s", sr.ctx.out.s);
	ck_assert(!tu_contains(sr.ctx.out.s, SLAPD_REPL_PW) && !tu_contains(err, SLAPD_REPL_PW));
	stage_run_release(&sr);
	free(err);
	free(aldir);

	/* both agreements: StartTLS, the CA directory */
	char *dir = xasprintf(" tls_cacertdir=%s ", pair.ca_dir);
	for (int i = 0; i < 2; i++) {
		char *a = agreement_of(&pair.s[i], pair.s[1 - i].uri);
		ck_assert_msg(a, "%s: no agreement pulling from %s", pair.s[i].uri, pair.s[1 - i].uri);
		char *rid = xasprintf("{0}rid=100 provider=%s ", pair.s[1 - i].uri);
		ck_assert_msg(!strncmp(a, rid, strlen(rid)), "%s: %s", pair.s[i].uri, rid);
		ck_assert_msg(tu_contains(a, " starttls=critical "), "%s: no starttls=critical",
			      pair.s[i].uri);
		ck_assert_msg(i == 1 || tu_contains(a, dir), "%s: not%s", pair.s[i].uri, dir);
		free(rid);
		secret_free(a);
	}
	free(dir);

	/* writes both ways */
	ck_assert_int_eq(slapd_add_person(&pair.s[1], pair.base, "rosa"), 0);
	ck_assert_int_eq(slapd_add_person(&pair.s[0], pair.base, "mark"), 0);
	char *rosa = xasprintf("uid=rosa,ou=people,%s", pair.base);
	char *mark = xasprintf("uid=mark,ou=people,%s", pair.base);
	ck_assert_msg(slapd_wait_entry(&pair.s[0], rosa, true, 10), "replica -> master");
	ck_assert_msg(slapd_wait_entry(&pair.s[1], mark, true, 10), "master -> replica");
	free(rosa);
	free(mark);
	/* each side's replicator binds (the other side's consumer) had a security layer */
	assert_binds_over_tls(&pair.s[0], pair.repl_dn);
	assert_binds_over_tls(&pair.s[1], pair.repl_dn);
}
END_TEST

/* s with every `from` replaced by `to` (caller frees; s is freed). */
static char *subst(char *s, const char *from, const char *to)
{
	struct buf b = BUF_INIT;
	size_t fl = strlen(from);
	for (const char *p = s, *q; ; p = q + fl) {
		q = strstr(p, from);
		if (!q) {
			buf_adds(&b, p);
			break;
		}
		buf_add(&b, p, (size_t)(q - p));
		buf_adds(&b, to);
	}
	free(s);
	return buf_detach(&b);
}

static const char *const mmr_examples[][2] = {
	{ "conf/zimbra-mmr.cfg.example", "/opt/zimbra" },
	{ "conf/carbonio-mmr.cfg.example", "/opt/zextras" },
};

/*
 * The shipped example jobs run as they are against the Zimbra-like pair with
 * StartTLS required, only the host names, paths and ssh replaced: ldap1/ldap2
 * become the pair, the CA directory the pair's, and `ssh` a stub that
 * records what it was asked to run on which node.  The job ends with
 * replication proved both ways; a rerun runs nothing (every stage done).
 */
START_TEST(test_example_jobs_run)
{
	const char *ex = mmr_examples[_i][0], *home = mmr_examples[_i][1];
	char path[512];
	snprintf(path, sizeof path, "%s/%s", tu_srcdir(), ex);
	char *job = tu_read(path);
	ck_assert_msg(job, "%s", path);
	char *sshlog = xasprintf("%s/ssh.log", pair.dir);
	char *stub = xasprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> '%s'\n", sshlog);
	char *ssh = tu_write(pair.dir, "ssh", stub, 0700);
	char *aldir = xasprintf("%s/r/accesslog-example", pair.dir);
	char *cadir = xasprintf("%s/conf/ca", home), *aldflt = xasprintf("%s/data/ldap/accesslog/db", home);
	char *qssh = xasprintf("[ \"%s\", ", ssh);
	job = subst(job, "ldap://ldap1.example.com:389/", pair.s[0].uri);
	job = subst(job, "ldap://ldap2.example.com:389/", pair.s[1].uri);
	job = subst(job, "/etc/zmbatch/ldap_root_password", pair.config_pw_file);
	job = subst(job, "/etc/zmbatch/ldap_replication_password", pair.repl_pw_file);
	job = subst(job, "/var/lib/zmbatch", pair.dir);
	job = subst(job, "/var/log/zmbatch", pair.dir);
	job = subst(job, cadir, pair.ca_dir);
	job = subst(job, aldflt, aldir);
	job = subst(job, "[ \"ssh\", ", qssh);
	/* the example's replication DN is Zimbra's; the fixture's replicator has its own */
	job = subst(job, "replication_password_file =",
		    "replication_dn = \"" "REPLDN" "\"; replication_password_file =");
	job = subst(job, "REPLDN", pair.repl_dn);
	char *jf = tu_write(pair.dir, "example.cfg", job, 0600);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", jf, NULL };
	struct tu_proc pr = { 0 };
	int st = tu_run(argv, NULL, 120, &pr);
	ck_assert_msg(st == 0, "%s: exit %d\nout:\n%s\nerr:\n%s", ex, st, pr.out, pr.err);
	ck_assert_msg(tu_contains(pr.out, "mirror mode: enabled (olcMirrorMode: TRUE)") &&
		      tu_contains(pr.out, "starttls=critical") &&
		      tu_contains(pr.out, "Master Server ID: 2"), "%s", pr.out);
	ck_assert(!tu_contains(pr.out, SLAPD_REPL_PW) && !tu_contains(pr.err, SLAPD_REPL_PW));
	tu_proc_release(&pr);
	char *log1 = tu_read(sshlog);
	ck_assert_msg(log1, "ssh stub never ran");
	const char *want[] = { "@ldap2.example.com mkdir -p ", "@ldap2.example.com ",
			       "@ldap1.example.com ", "@ldap2.example.com ", "@ldap1.example.com " };
	const char *what[] = { aldir, "zmlocalconfig -e ldap_is_master=true",
			       "zmlocalconfig -e 'ldap_master_url=", "zmcontrol restart",
			       "zmcontrol restart" };
	const char *p = log1;
	for (int i = 0; i < 5; i++) {
		const char *e = strchr(p, '\n');
		ck_assert_msg(e, "ssh line %d missing:\n%s", i + 1, log1);
		char *line = xstrndup(p, (size_t)(e - p));
		ck_assert_msg(tu_contains(line, want[i]) && tu_contains(line, what[i]),
			      "ssh line %d: %s", i + 1, line);
		free(line);
		p = e + 1;
	}
	ck_assert_msg(!*p, "more ssh commands than the procedure has:\n%s", log1);
	char *cfg = slapd_dump_config(&pair.s[0]);
	char *cd = xasprintf("tls_cacertdir=%s ", pair.ca_dir);
	ck_assert_msg(tu_contains(cfg, " starttls=critical ") && tu_contains(cfg, cd), "%s", cfg);
	free(cd);
	free(cfg);
	st = tu_run(argv, NULL, 60, &pr);
	ck_assert_msg(st == 0, "rerun exit %d\n%s\n%s", st, pr.out, pr.err);
	tu_proc_release(&pr);
	char *log2 = tu_read(sshlog);
	ck_assert_str_eq(log1, log2);
	free(log1);
	free(log2);
	free(job);
	free(jf);
	free(sshlog);
	free(stub);
	free(ssh);
	free(aldir);
	free(cadir);
	free(aldflt);
	free(qssh);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("ldap_tls");
	TCase *tc = tcase_create("starttls");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_starttls_verified);
	tcase_add_test(tc, test_starttls_untrusted_refused);
	tcase_add_test(tc, test_starttls_server_down);
	tcase_add_test(tc, test_starttls_verify_off);
	tcase_add_test(tc, test_single_master_down);
	tcase_add_test(tc, test_check_command_ldap);
	tcase_add_test(tc, test_check_command_binds_as_the_stage);
	tcase_add_test(tc, test_replcheck_over_ldapi);
	suite_add_tcase(s, tc);
	tc = tcase_create("ldaps");
	tcase_add_checked_fixture(tc, setup_ldaps, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_ldaps_verified);
	tcase_add_test(tc, test_ldaps_untrusted_refused);
	tcase_add_test(tc, test_ldaps_verify_off);
	tcase_add_test(tc, test_ldaps_wrong_host_refused);
	tcase_add_test(tc, test_ldaps_server_down);
	tcase_add_test(tc, test_check_command_ldaps);
	suite_add_tcase(s, tc);
	tc = tcase_create("require_tls");
	tcase_add_checked_fixture(tc, setup_require_tls, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_require_tls_replicates);
	tcase_add_test(tc, test_require_tls_plaintext_refused);
	tcase_add_test(tc, test_promote_over_starttls);
	tcase_add_loop_test(tc, test_example_jobs_run, 0,
			    (int)(sizeof mmr_examples / sizeof *mmr_examples));
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
