/*
 * check_e2e_provcheck.c - `zmbatch check` and the LDAP of the provision
 * stage (issue 15): `source.ldap` / `target.ldap` bound as the stage binds,
 * and for the source, when a provision stage copies password hashes
 * (copy_password, the default), one account entry whose userPassword the
 * bind DN may read, asked for its presence only (types only: the hash never
 * reaches zmbatch).  A real slapd (tests/slapd.h) with the Zimbra schema
 * subset and account entries as in check_e2e_provision.c.
 *
 *   ok            both sides bind; the source's userPassword is readable: exit 0,
 *                 the entry named, no hash in the output
 *   refused       a wrong target.ldap password, a server that is not there: FAIL
 *                 lines naming the URL and the bind DN, exit 69
 *   acl           a bind DN that may not read userPassword (none / search only):
 *                 the bind is fine, the userPassword line FAILs, exit 69;
 *                 without copy_password the same DN passes
 *   config        an unreadable password_file: FAIL, exit 78
 * The jobs have only a provision stage: check reaches no SOAP server.
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "slapd.h"
#include "testutil.h"
#include "zmb.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_ALICE "{SSHA}GhVnDRZh4o8t434etcnxHyxXaDIRIjNE"
#define ID_ALICE "11111111-1111-4111-8111-111111111111"
#define BASE "dc=example,dc=com"
#define READER_DN "uid=reader,ou=people," BASE

static struct slapd_pair P;
static char *dir;
static bool have_slapd;

/* slapd with the schema subset, alice (zimbraAccount, with a hash) and a reader
 * entry (plain inetOrgPerson, password "readerpw") */
static void setup(void)
{
	char *err = NULL;
	dir = tu_tmpdir("provcheck");
	ck_assert_ptr_nonnull(dir);
	if (slapd_pair_start(&P, SLAPD_PLAIN, BASE, &err) != 0)
		ck_abort_msg("slapd: %s", err ? err : "?");
	have_slapd = true;
	ck_assert_int_eq(slapd_zimbra_subset(&P.s[0]), 0);
	const char *alice[] = { "objectClass", "inetOrgPerson", "objectClass", "zimbraAccount",
				"uid", "alice", "cn", "alice", "sn", "alice", "zimbraId", ID_ALICE,
				"userPassword", HASH_ALICE, NULL };
	ck_assert_int_eq(slapd_add_entry(&P.s[0], "uid=alice,ou=people," BASE, alice), 0);
	const char *reader[] = { "objectClass", "inetOrgPerson", "uid", "reader", "cn", "reader",
				 "sn", "reader", "userPassword", "readerpw", NULL };
	ck_assert_int_eq(slapd_add_entry(&P.s[0], READER_DN, reader), 0);
	free(tu_write(dir, "reader.pw", "readerpw\n", 0600));
	free(tu_write(dir, "admin.pw", "test123\n", 0600));
}

static void teardown(void)
{
	if (have_slapd)
		slapd_pair_stop(&P);
	have_slapd = false;
	if (dir)
		tu_rmrf(dir);
	free(dir);
	dir = NULL;
}

/* userPassword: bind (auth) for everyone, `who` for logged-in users; the rest readable.
 * (The data DB's root DN cn=config is above the ACLs.) */
static void acl_userpassword(const char *who)
{
	char *a0 = xasprintf("{0}to attrs=userPassword by anonymous auth by users %s", who);
	ck_assert_int_eq(slapd_modify_add(&P.s[0], P.s[0].datadb, "olcAccess", a0), 0);
	ck_assert_int_eq(slapd_modify_add(&P.s[0], P.s[0].datadb, "olcAccess", "{1}to * by * read"), 0);
	free(a0);
}

/* A job with one provision stage; src_ldap / dst_ldap: the `ldap = { }` groups' bodies or NULL. */
static char *write_job(const char *src_ldap, const char *dst_ldap, const char *stage_keys)
{
	char *text = xasprintf(
		"job = \"provcheck\";\n"
		"source = { host = \"127.0.0.1\"; port = 1; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/admin.pw\";%s%s%s };\n"
		"target = { host = \"127.0.0.1\"; port = 1; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/admin.pw\";%s%s%s };\n"
		"migration = { domains = [ \"example.com\" ]; working_dir = \"%s/work\"; };\n"
		"state = { db = \"%s/state.db\"; };\n"
		"stages = ( { name = \"provision\"; type = \"provision\";%s } );\n",
		dir, src_ldap ? "\n  ldap = { " : "", src_ldap ? src_ldap : "", src_ldap ? " };" : "",
		dir, dst_ldap ? "\n  ldap = { " : "", dst_ldap ? dst_ldap : "", dst_ldap ? " };" : "",
		dir, dir, stage_keys ? stage_keys : "");
	char *path = tu_write(dir, "job.cfg", text, 0600);
	free(text);
	return path;
}

/* `ldap = { }` body: url, bind_dn, password_file, base */
static char *ldap_group(const char *url, const char *dn, const char *pwfile)
{
	return xasprintf("url = \"%s\"; bind_dn = \"%s\"; password_file = \"%s\"; base = \"" BASE "\";",
			 url, dn, pwfile);
}

static int check(const char *job, char **out)
{
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 60, "check", "-c", job, NULL);
	*out = xasprintf("%s\n%s", p.out, p.err);
	tu_proc_release(&p);
	return rc;
}

START_TEST(test_ok)
{
	char *src = ldap_group(P.s[0].uri, "cn=config", P.config_pw_file);
	char *dst = ldap_group(P.s[1].uri, "cn=config", P.config_pw_file);
	char *job = write_job(src, dst, NULL), *out = NULL;
	int rc = check(job, &out);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	char *want = xasprintf("ok   source.ldap %s bind as cn=config", P.s[0].uri);
	ck_assert_msg(tu_contains(out, want), "%s", out);
	free(want);
	want = xasprintf("ok   target.ldap %s bind as cn=config", P.s[1].uri);
	ck_assert_msg(tu_contains(out, want), "%s", out);
	free(want);
	want = xasprintf("ok   source.ldap %s as cn=config: userPassword readable below '" BASE
			 "' (copy_password): present on uid=alice,ou=people," BASE " (its value not read)",
			 P.s[0].uri);
	ck_assert_msg(tu_contains(out, want), "%s", out);
	free(want);
	ck_assert_msg(!tu_contains(out, "target.ldap") || !strstr(strstr(out, "target.ldap"), "userPassword"),
		      "the target's hash is not checked\n%s", out);
	ck_assert(!tu_contains(out, "GhVnDRZh4o8t434etcnxHyxXaDIRIjNE"));
	ck_assert(!tu_contains(out, SLAPD_CONFIG_PW));
	ck_assert(tu_contains(out, "check passed"));
	free(out);
	free(job);
	free(src);
	free(dst);
}
END_TEST

START_TEST(test_refused)
{
	/* the target's bind refused */
	char *src = ldap_group(P.s[0].uri, "cn=config", P.config_pw_file);
	char *dst = ldap_group(P.s[1].uri, "cn=config", P.wrong_pw_file);
	char *job = write_job(src, dst, " copy_password = false;"), *out = NULL;
	int rc = check(job, &out);
	ck_assert_msg(rc == 69, "exit %d\n%s", rc, out);
	char *want = xasprintf("FAIL target.ldap %s bind as cn=config", P.s[1].uri);
	ck_assert_msg(tu_contains(out, want), "%s", out);
	free(want);
	ck_assert_msg(tu_contains(out, "simple bind as 'cn=config' failed: Invalid credentials"), "%s", out);
	want = xasprintf("ok   source.ldap %s bind as cn=config", P.s[0].uri);
	ck_assert_msg(tu_contains(out, want), "%s", out);
	free(want);
	ck_assert_msg(!tu_contains(out, "userPassword"), "copy_password = false: no hash check\n%s", out);
	ck_assert(tu_contains(out, "check failed: a server could not be reached"));
	free(out);
	free(job);
	free(dst);

	/* nothing listens on the source's URL */
	free(src);
	src = ldap_group("ldap://127.0.0.1:1/", "uid=zimbra,cn=admins,cn=zimbra", P.config_pw_file);
	job = write_job(src, NULL, NULL);
	rc = check(job, &out);
	ck_assert_msg(rc == 69, "exit %d\n%s", rc, out);
	ck_assert_msg(tu_contains(out, "FAIL source.ldap ldap://127.0.0.1:1/ bind as "
				  "uid=zimbra,cn=admins,cn=zimbra"), "%s", out);
	ck_assert_msg(tu_contains(out, "ldap server ldap://127.0.0.1:1/"), "%s", out);
	free(out);
	free(job);
	free(src);
}
END_TEST

START_TEST(test_acl)
{
	char *pw = xasprintf("%s/reader.pw", dir);
	char *src = ldap_group(P.s[0].uri, READER_DN, pw);
	/* may search for userPassword (alice is found) but not read it */
	acl_userpassword("search");
	char *job = write_job(src, NULL, NULL), *out = NULL;
	int rc = check(job, &out);
	ck_assert_msg(rc == 69, "exit %d\n%s", rc, out);
	char *want = xasprintf("ok   source.ldap %s bind as " READER_DN, P.s[0].uri);
	ck_assert_msg(tu_contains(out, want), "%s", out);
	free(want);
	want = xasprintf("FAIL source.ldap %s as " READER_DN ": userPassword readable below '" BASE
			 "' (copy_password): " READER_DN " may find but not read userPassword of "
			 "uid=alice,ou=people," BASE " (ACL)", P.s[0].uri);
	ck_assert_msg(tu_contains(out, want), "%s", out);
	free(want);
	free(out);
	free(job);

	/* may not even search it: no entry found */
	ck_assert_int_eq(slapd_modify_del(&P.s[0], P.s[0].datadb, "olcAccess"), 0);
	acl_userpassword("none");
	job = write_job(src, NULL, NULL);
	rc = check(job, &out);
	ck_assert_msg(rc == 69, "exit %d\n%s", rc, out);
	ck_assert_msg(tu_contains(out, "no zimbraAccount entry with a userPassword that " READER_DN
				  " may read below '" BASE "'"), "%s", out);
	free(out);
	free(job);

	/* without copy_password the same bind DN is enough */
	job = write_job(src, NULL, " copy_password = false;");
	rc = check(job, &out);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	ck_assert(!tu_contains(out, "userPassword"));
	free(out);
	free(job);
	free(src);
	free(pw);
}
END_TEST

START_TEST(test_config)
{
	char *pw = xasprintf("%s/missing.pw", dir);
	char *dst = ldap_group(P.s[1].uri, "cn=config", pw);
	char *job = write_job(NULL, dst, " copy_password = false;"), *out = NULL;
	int rc = check(job, &out);
	ck_assert_msg(rc == 78, "exit %d\n%s", rc, out);
	ck_assert_msg(tu_contains(out, "FAIL target.ldap password_file"), "%s", out);
	ck_assert_msg(tu_contains(out, "missing.pw"), "%s", out);
	free(out);
	free(job);
	free(dst);
	free(pw);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_provcheck");
	TCase *tc = tcase_create("check");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ok);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_acl);
	tcase_add_test(tc, test_config);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
