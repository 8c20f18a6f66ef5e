/*
 * check_ldap_tls.c - StartTLS for the LDAP stages against a real slapd
 * configured with a test CA (tests/zsim.h makes the certificates): the
 * certificate is verified by default, a server signed by another CA is
 * refused with a message naming the step, tls_verify = false opts out.
 */
#include "slapd.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <ldap.h>
#include <stdlib.h>
#include <string.h>

static struct slapd_pair pair;
static struct zsim_pki *pki;     /* the CA that signed slapd's certificate */
static struct zsim_pki *other;   /* an unrelated CA */

/* Give the master a certificate through cn=config (all three in one modify). */
static void enable_tls(const struct slapd_inst *s)
{
	LDAP *ld = NULL;
	int v3 = LDAP_VERSION3;
	ck_assert_int_eq(ldap_initialize(&ld, s->uri), LDAP_SUCCESS);
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	struct berval pw = { strlen(SLAPD_CONFIG_PW), (char *)SLAPD_CONFIG_PW };
	ck_assert_int_eq(ldap_sasl_bind_s(ld, "cn=config", LDAP_SASL_SIMPLE, &pw, NULL, NULL, NULL),
			 LDAP_SUCCESS);
	char *ca[] = { pki->ca_file, NULL }, *crt[] = { pki->cert_file, NULL }, *key[] = { pki->key_file, NULL };
	LDAPMod m1 = { LDAP_MOD_REPLACE, (char *)"olcTLSCACertificateFile", { ca } };
	LDAPMod m2 = { LDAP_MOD_REPLACE, (char *)"olcTLSCertificateFile", { crt } };
	LDAPMod m3 = { LDAP_MOD_REPLACE, (char *)"olcTLSCertificateKeyFile", { key } };
	LDAPMod *mods[] = { &m1, &m2, &m3, NULL };
	int rc = ldap_modify_ext_s(ld, "cn=config", mods, NULL, NULL);
	ck_assert_msg(rc == LDAP_SUCCESS, "enabling TLS on slapd: %s", ldap_err2string(rc));
	ldap_unbind_ext_s(ld, NULL, NULL);
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

static enum zmb_rc replcheck_tls(const char *ca_file, bool verify, char **err, char **out)
{
	struct stage_run sr;
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "masters", pair.s[0].uri, NULL);
	tcv_str(g, "password_file", pair.config_pw_file);
	tcv_str(g, "suffix", pair.suffix);
	tcv_bool(g, "starttls", true);
	if (ca_file)
		tcv_str(g, "ca_file", ca_file);
	tcv_bool(g, "tls_verify", verify);
	stage_run_init(&sr, "tls", "ldap-replcheck", g);
	enum zmb_rc rc = stage_run_go(&sr, err);
	*out = xstrdup(sr.ctx.out.s ? sr.ctx.out.s : "");
	stage_run_release(&sr);
	return rc;
}

START_TEST(test_starttls_verified)
{
	char *err = NULL, *out = NULL;
	enum zmb_rc rc = replcheck_tls(pki->ca_file, true, &err, &out);
	ck_assert_msg(rc == ZMB_OK, "%s\n%s", err ? err : "", out);
	ck_assert(tu_contains(out, "Code: 0"));
	free(err);
	free(out);
}
END_TEST

START_TEST(test_starttls_untrusted_refused)
{
	char *err = NULL, *out = NULL;
	enum zmb_rc rc = replcheck_tls(other->ca_file, true, &err, &out);
	ck_assert_int_ne(rc, ZMB_OK);
	/* zmreplchk's code 3 "StartTLS failed", with the server named */
	ck_assert_msg(tu_contains(out, "Code: 3") || tu_contains(err, "StartTLS"), "%s\n%s",
		      err ? err : "", out);
	ck_assert(tu_contains(out, pair.s[0].uri) || tu_contains(err, pair.s[0].uri));
	ck_assert(!tu_contains(out, SLAPD_CONFIG_PW) && !tu_contains(err, SLAPD_CONFIG_PW));
	free(err);
	free(out);
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
	char *uri = xasprintf("ldap://127.0.0.1:%d/", tu_free_port());
	struct cval *g = tcv_group(NULL, NULL);
	tcv_strs(g, "masters", uri, NULL);
	tcv_str(g, "password_file", pair.config_pw_file);
	tcv_str(g, "suffix", pair.suffix);
	stage_run_init(&sr, "down", "ldap-replcheck", g);
	enum zmb_rc rc = stage_run_go(&sr, &err);
	ck_assert_int_ne(rc, ZMB_OK);
	ck_assert(tu_contains(sr.ctx.out.s, "Code: 4"));
	ck_assert(tu_contains(err, uri));
	stage_run_release(&sr);
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
	ck_assert(tu_contains(sr.ctx.out.s, "Master: ldapi://"));
	ck_assert(tu_contains(sr.ctx.out.s, "In Sync"));
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

static Suite *make_suite(void)
{
	Suite *s = suite_create("ldap_tls");
	TCase *tc = tcase_create("starttls");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_starttls_verified);
	tcase_add_test(tc, test_starttls_untrusted_refused);
	tcase_add_test(tc, test_starttls_verify_off);
	tcase_add_test(tc, test_single_master_down);
	tcase_add_test(tc, test_check_command_ldap);
	tcase_add_test(tc, test_replcheck_over_ldapi);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
