/*
 * check_e2e_provision.c - the `provision` stage (issue 15) end to end: two
 * simulated servers (tests/zsim, whose CreateAccount/ModifyAccount/
 * AddAccountAlias/GetCos follow zm-mailbox's handlers) and, for the password
 * hashes, a real slapd (tests/slapd.h) holding the source's account entries.
 *
 *   provision_then_migrate  an empty target: every account created with the same
 *                           zimbraId, the allowed attributes (domain_map applied),
 *                           the COS mapped by name, aliases, the password hash from
 *                           LDAP (the user's old password logs in on the target),
 *                           signatures and identities with their ids;
 *                           server-specific attributes not copied; then migrated.
 *                           A rerun (--stage provision): zero create/modify/alias
 *                           calls.  No hash, no LDAP password in the work tree,
 *                           the log, the DB or the output.
 *   existing                a target account that exists already: skip leaves it,
 *                           fail fails it (exit 1) naming it, update sends one
 *                           ModifyAccount with the diff, recorded as an event;
 *                           a rerun sends none
 *   dry_run                 prints create / update (with the diff) / skip per
 *                           account, changes nothing on the target or in the DB
 *   cos                     a COS missing on the target: the account fails naming
 *                           account and COS; cos_map renames it
 *   alias_target            the target name is an alias of another target account:
 *                           the object fails, that account is left alone
 *   crash                   a crash at every durable step of the stage, then a
 *                           plain run: the same end state, each account created
 *                           exactly once (no second CreateAccount, no fault)
 *   config                  bad keys: file:line errors
 * Test cases: main (the first), policy (existing, dry_run, cos, config), crash.
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "job.h"
#include "slapd.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <jansson.h>
#include <ldap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* {SSHA} / {SSHA512} of the users' old passwords (salts fixed; made with Python's hashlib
 * the way PasswordUtil.generateSSHA does: base64(digest(password + salt) + salt)) */
#define HASH_ALICE "{SSHA}GhVnDRZh4o8t434etcnxHyxXaDIRIjNE"   /* pw-alice */
#define HASH_BOB "{SSHA}IoGPsvHa66fzCptajHNngCKwaTBVZneI"     /* pw-bob */
#define HASH_CAROL "{SSHA512}2GDx3gvUUSE4JJYQkXibHd9JaSG7Qks2aA4++/npmdWb0wMk+6CMF6OMl/pCe9hj5D" \
	"Yni0ssno/rO7CbkgwlggECAwQFBgcI"                         /* pw-carol */

#define ID_ALICE "11111111-1111-4111-8111-111111111111"
#define ID_BOB "22222222-2222-4222-8222-222222222222"
#define ID_CAROL "33333333-3333-4333-8333-333333333333"
#define SIG_OWN "44444444-4444-4444-8444-444444444444"    /* on alice's account entry */
#define SIG_WORK "55555555-5555-4555-8555-555555555555"   /* a child entry */
#define IDN_BOSS "66666666-6666-4666-8666-666666666666"

static const char *const SRC_CFG =
	"{\"name\":\"src\",\"mailhost\":\"mbox-src.example.com\","
	"\"cos\":[{\"name\":\"gold\",\"attrs\":{\"zimbraMailQuota\":\"5242880\","
	"\"zimbraFeatureCalendarEnabled\":\"FALSE\",\"zimbraMailHostPool\":\"old-server-id\"}},"
	"{\"name\":\"silver\"}],\"domains\":["
	"{\"name\":\"example.com\",\"cos\":\"gold\",\"attrs\":{\"description\":\"Example Inc.\","
	"\"zimbraPrefTimeZoneId\":\"Europe/Berlin\",\"zimbraVirtualHostname\":\"mail.example.com\"},"
	"\"accounts\":["
	"{\"name\":\"alice@example.com\",\"id\":\"" ID_ALICE "\",\"items\":4,\"item_size\":800,"
	"\"cos\":\"gold\",\"aliases\":[\"ally@example.com\"],"
	"\"signatures\":[{\"name\":\"work\",\"id\":\"" SIG_WORK "\",\"html\":\"<b>A.</b>\","
	"\"text\":\"A.\"}],"
	"\"identities\":[{\"name\":\"boss\",\"id\":\"" IDN_BOSS "\",\"attrs\":{"
	"\"zimbraPrefFromAddress\":\"boss@example.com\",\"zimbraPrefDefaultSignatureId\":\"" SIG_WORK "\"}}],"
	"\"attrs\":{"
	"\"zimbraSignatureId\":\"" SIG_OWN "\",\"zimbraSignatureName\":\"own\","
	"\"zimbraPrefAllowAddressForDelegatedSender\":\"ally@example.com\","
	"\"zimbraPrefCalendarAutoAcceptSignatureId\":\"" SIG_WORK "\","
	"\"displayName\":\"Alice Liddell\",\"zimbraPrefMailSignature\":\"-- alice\","
	"\"zimbraPrefHtmlEditorDefaultFontSize\":\"12pt\","
	"\"zimbraMailSieveScript\":\"require \\\"fileinto\\\";\","
	"\"zimbraMailForwardingAddress\":\"bob@example.com\","
	"\"zimbraMailTransport\":\"lmtp:mbox-src.example.com:7025\","
	"\"zimbraCreateTimestamp\":\"20200101000000Z\",\"zimbraMailQuota\":\"1048576\","
	"\"zimbraHideInGal\":\"FALSE\","
	"\"zimbraPrefDefaultCalendarId\":\"10\",\"zimbraDataSourcePassword\":\"dspw\"}},"
	"{\"name\":\"bob@example.com\",\"id\":\"" ID_BOB "\",\"items\":2,"
	"\"signatures\":[{\"name\":\"b\",\"id\":\"77777777-7777-4777-8777-777777777777\",\"text\":\"B\"}],"
	"\"attrs\":{\"displayName\":\"Bob\"}}]},"
	"{\"name\":\"example.org\",\"accounts\":["
	"{\"name\":\"carol@example.org\",\"id\":\"" ID_CAROL "\",\"items\":3,\"attrs\":{"
	"\"displayName\":\"Carol\",\"zimbraPrefFromAddress\":\"carol@example.org\"}}]}]}";

static const char *const DST_CFG =
	"{\"name\":\"dst\",\"mailhost\":\"mbox-dst.example.net\",\"cos\":[{\"name\":\"gold\"}],"
	"\"domains\":[{\"name\":\"example.net\"},{\"name\":\"example.org\"}]}";

/* a new server: no domain, no account, only the default COS (create_domains and
 * create_cos make the rest) */
static const char *const DST_EMPTY_CFG =
	"{\"name\":\"dst\",\"mailhost\":\"mbox-dst.example.net\"}";

static const char *const TARGETS[] = { "alice@example.net", "bob@example.net",
				       "carol@example.org" };

static struct e2e E;
static struct slapd_pair P;
static bool have_slapd;
/* write_job: the source's LDAP base; target.ldap (the same slapd, another subtree) */
static const char *src_base = "dc=example,dc=com";
static bool with_target_ldap;

static void setup(void)
{
	memset(&E, 0, sizeof E);
	src_base = "dc=example,dc=com";
	with_target_ldap = false;
	e2e_start(&E, SRC_CFG, DST_CFG);
}

/* Replace the target by an empty one (same CA). */
static void empty_target(void)
{
	zsim_stop(E.dst);
	struct zsim_opts o = { .name = "dst", .config_json = DST_EMPTY_CFG, .pki = E.pki };
	E.dst = zsim_start(&o);
	ck_assert_msg(E.dst != NULL, "empty target did not start");
}

static void teardown(void)
{
	if (have_slapd)
		slapd_pair_stop(&P);
	have_slapd = false;
	e2e_stop(&E);
}

/* ---- the source's LDAP ---- */

static LDAP *ldap_admin(void)
{
	LDAP *ld = NULL;
	ck_assert_int_eq(ldap_initialize(&ld, P.s[0].ldapi), LDAP_SUCCESS);
	int v = 3;
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v);
	struct berval cred = { strlen(SLAPD_CONFIG_PW), (char *)SLAPD_CONFIG_PW };
	ck_assert_int_eq(ldap_sasl_bind_s(ld, "cn=config", LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL),
			 LDAP_SUCCESS);
	return ld;
}

/* Add dn with attributes kv = { name, value, ... NULL }; a name repeated in a row is one
 * attribute with several values. */
static void ldap_add_kv(LDAP *ld, const char *dn, const char *const *kv)
{
	LDAPMod mods[16], *pm[17];
	char *vals[16][8];
	size_t nm = 0;
	for (size_t i = 0; kv[i]; i += 2) {
		if (nm && !strcmp(mods[nm - 1].mod_type, kv[i])) {
			size_t k = 0;
			while (vals[nm - 1][k])
				k++;
			vals[nm - 1][k] = (char *)kv[i + 1];
			vals[nm - 1][k + 1] = NULL;
			continue;
		}
		mods[nm].mod_op = LDAP_MOD_ADD;
		mods[nm].mod_type = (char *)kv[i];
		vals[nm][0] = (char *)kv[i + 1];
		vals[nm][1] = NULL;
		mods[nm].mod_values = vals[nm];
		pm[nm] = &mods[nm];
		nm++;
	}
	pm[nm] = NULL;
	int lrc = ldap_add_ext_s(ld, dn, pm, NULL, NULL);
	ck_assert_msg(lrc == LDAP_SUCCESS, "add %s: %s", dn, ldap_err2string(lrc));
}

/*
 * A real slapd with the subset of Zimbra's schema the stage reads: the attribute
 * zimbraId and the auxiliary class zimbraAccount (Zimbra's zimbra.schema is generated
 * from zimbra-attrs.xml; zimbraId is attr id 1, hence 1.3.6.1.4.1.19348.1.1.1; the
 * class's OID and its MAY list here are our own subset, not a copy).  The account
 * entries are inetOrgPerson + zimbraAccount under ou=people, as Zimbra's
 * uid=NAME,ou=people,dc=DOMAIN entries, with their userPassword hashes.
 */
static void start_ldap(void)
{
	char *err = NULL;
	if (slapd_pair_start(&P, SLAPD_PLAIN, "dc=example,dc=com", &err) != 0)
		ck_abort_msg("slapd: %s", err ? err : "?");
	have_slapd = true;
	LDAP *ld = ldap_admin();
	const char *schema[] = {
		"objectClass", "olcSchemaConfig", "cn", "zimbra-subset",
		"olcAttributeTypes", "( 1.3.6.1.4.1.19348.1.1.1 NAME 'zimbraId' "
		"DESC 'Zimbra Systems Unique ID' EQUALITY caseIgnoreMatch "
		"SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256} SINGLE-VALUE )",
		"olcObjectClasses", "( 1.3.6.1.4.1.19348.2.2 NAME 'zimbraAccount' "
		"DESC 'Zimbra account (test subset)' SUP top AUXILIARY MAY ( zimbraId ) )",
		NULL
	};
	ldap_add_kv(ld, "cn=zimbra-subset,cn=schema,cn=config", schema);
	static const char *const users[][3] = { { "alice", ID_ALICE, HASH_ALICE },
						{ "bob", ID_BOB, HASH_BOB },
						{ "carol", ID_CAROL, HASH_CAROL } };
	for (size_t i = 0; i < 3; i++) {
		char *dn = xasprintf("uid=%s,ou=people,dc=example,dc=com", users[i][0]);
		const char *kv[] = { "objectClass", "inetOrgPerson", "objectClass", "zimbraAccount",
				     "uid", users[i][0], "cn", users[i][0], "sn", users[i][0],
				     "zimbraId", users[i][1], "userPassword", users[i][2], NULL };
		ldap_add_kv(ld, dn, kv);
		free(dn);
	}
	ldap_unbind_ext_s(ld, NULL, NULL);
}

/* ---- job and runs ---- */

/* stage_keys go into the provision stage; with_ldap adds source.ldap; migrate too */
static void write_job(const char *stage_keys, bool with_ldap, bool migrate)
{
	char *ldap = with_ldap
		? xasprintf("  ldap = { url = \"%s\"; bind_dn = \"cn=config\";\n"
			    "    password_file = \"%s\"; base = \"%s\"; };\n",
			    P.s[0].uri, P.config_pw_file, src_base)
		: xstrdup("");
	char *tldap = with_target_ldap
		? xasprintf("  ldap = { url = \"%s\"; bind_dn = \"cn=config\";\n"
			    "    password_file = \"%s\"; base = \"ou=target,dc=example,dc=com\"; };\n",
			    P.s[0].uri, P.config_pw_file)
		: xstrdup("");
	char *text = xasprintf(
		"job = \"provision\";\n"
		"source = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/src.pw\"; ca_file = \"%s\";\n%s};\n"
		"target = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/dst.pw\"; ca_file = \"%s\";\n%s};\n"
		"migration = {\n"
		"  domains = [ \"example.com\", \"example.org\" ];\n"
		"  domain_map = [ \"example.com=example.net\" ];\n"
		"  threads = 2; working_dir = \"%s/work\";\n"
		"  retry_backoff = \"1s\"; retry_backoff_max = \"2s\"; max_attempts = 2;\n"
		"};\n"
		"state = { db = \"%s\"; };\n"
		"log = { dir = \"%s/log\"; level = \"debug\"; };\n"
		"stages = ( { name = \"provision\"; type = \"provision\";%s%s }%s );\n",
		E.src->port, E.dir, E.pki->ca_file, ldap, E.dst->port, E.dir, E.pki->ca_file, tldap, E.dir,
		E.db, E.dir, with_ldap ? "" : " copy_password = false;", stage_keys ? stage_keys : "",
		migrate ? ",\n  { name = \"migrate\"; type = \"migrate\"; }" : "");
	free(E.job);
	E.job = tu_write(E.dir, "job.cfg", text, 0600);
	free(text);
	free(ldap);
	free(tldap);
}

/* zmbatch run -c job [a1 [a2]]; *out = stdout + stderr (caller frees) */
static int run(char **out, const char *a1, const char *a2)
{
	struct tu_proc p;
	int rc = a2 ? e2e_zmbatch(&p, 120, "run", "-c", E.job, a1, a2, NULL)
		: a1 ? e2e_zmbatch(&p, 120, "run", "-c", E.job, a1, NULL)
		     : e2e_zmbatch(&p, 120, "run", "-c", E.job, NULL);
	if (out)
		*out = xasprintf("%s\n%s", p.out, p.err);
	tu_proc_release(&p);
	return rc;
}

/* The target's whole entry (GET /zsim/account); NULL when missing. */
static json_t *target_account(const char *name)
{
	char *path = xasprintf("/zsim/account?name=%s", name), *body = NULL;
	long st = zsim_http(E.dst, "GET", path, NULL, NULL, 0, &body, NULL, NULL);
	free(path);
	json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
	free(body);
	return j;
}

static const char *jattr(json_t *acct, const char *n)
{
	json_t *v = json_object_get(json_object_get(acct, "attrs"), n);
	if (json_is_array(v))
		v = json_array_get(v, 0);
	return json_string_value(v);
}

static long long dst_calls(const char *req)
{
	return e2e_soap_calls(E.dst, req);
}

static long long modify_calls(void)
{
	return dst_calls("CreateDomainRequest") +
	       dst_calls("CreateAccountRequest") + dst_calls("ModifyAccountRequest") +
	       dst_calls("AddAccountAliasRequest") + dst_calls("CreateSignatureRequest") +
	       dst_calls("CreateIdentityRequest");
}

/* A user's own AuthRequest (urn:zimbraAccount) on the target: true if it logs in. */
static bool user_login(const char *name, const char *pw)
{
	json_t *req = json_pack("{s:{s:s, s:{s:s, s:s}, s:s}}", "AuthRequest", "_jsns",
				"urn:zimbraAccount", "account", "by", "name", "_content", name,
				"password", pw);
	json_t *reply = NULL;
	long st = zsim_soap(E.dst, NULL, req, &reply);
	bool ok = st == 200 && json_object_get(json_object_get(reply, "Body"), "AuthResponse");
	json_decref(reply);
	return ok;
}

static bool secret_anywhere(const char *out, const char *s)
{
	return tu_contains(out, s) || e2e_tree_contains(&E, ".", s);
}

static json_t *target_domain(const char *name)
{
	char *body = xasprintf("{\"name\":\"%s\"}", name);
	json_t *d = zsim_post(E.dst, "/zsim/domain", body);
	free(body);
	return d;
}

START_TEST(test_provision_then_migrate)
{
	start_ldap();
	empty_target();
	write_job(" create_domains = true; create_cos = true;", true, true);
	char *out = NULL;
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);

	/* the domains: made, with what a new server can use; the old host names not */
	json_t *dn = target_domain("example.net");
	ck_assert_ptr_nonnull(dn);
	json_t *da = json_object_get(dn, "attrs");
	ck_assert_str_eq(json_string_value(json_object_get(da, "description")), "Example Inc.");
	ck_assert_str_eq(json_string_value(json_object_get(da, "zimbraPrefTimeZoneId")), "Europe/Berlin");
	ck_assert_ptr_null(json_object_get(da, "zimbraVirtualHostname"));
	ck_assert_ptr_nonnull(json_string_value(json_object_get(da, "zimbraDomainDefaultCOSId")));
	json_decref(dn);
	dn = target_domain("example.org");
	ck_assert_ptr_nonnull(json_object_get(dn, "attrs"));
	json_decref(dn);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE kind = 'domain'"
				      " AND state = 'done' AND outcome = 'created'"), 2);

	/* alice: same zimbraId, COS by name, what the user sees, domain_map, aliases, hash */
	json_t *a = target_account("alice@example.net");
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(json_string_value(json_object_get(a, "id")), ID_ALICE);
	ck_assert_str_eq(jattr(a, "displayName"), "Alice Liddell");
	ck_assert_str_eq(jattr(a, "zimbraPrefMailSignature"), "-- alice");
	ck_assert_str_eq(jattr(a, "zimbraPrefHtmlEditorDefaultFontSize"), "12pt");
	ck_assert_str_eq(jattr(a, "zimbraMailSieveScript"), "require \"fileinto\";");
	ck_assert_str_eq(jattr(a, "zimbraMailQuota"), "1048576");
	ck_assert_str_eq(jattr(a, "zimbraMailForwardingAddress"), "bob@example.net");
	ck_assert_str_eq(jattr(a, "userPassword"), HASH_ALICE);
	/* never copied: server-specific, set by the server, a folder id, a secret */
	ck_assert_str_eq(jattr(a, "zimbraMailHost"), "mbox-dst.example.net");
	ck_assert_ptr_null(jattr(a, "zimbraMailTransport"));
	ck_assert_str_ne(jattr(a, "zimbraCreateTimestamp"), "20200101000000Z");
	ck_assert_ptr_null(jattr(a, "zimbraPrefDefaultCalendarId"));
	ck_assert_ptr_null(jattr(a, "zimbraDataSourcePassword"));
	/* signatures and identities: the same ids, the child ones created, addresses mapped */
	ck_assert_str_eq(jattr(a, "zimbraSignatureId"), SIG_OWN);
	json_t *sg = json_object_get(a, "signatures");
	ck_assert_int_eq(json_array_size(sg), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(sg, 0), "id")), SIG_WORK);
	char *sgs = json_dumps(sg, JSON_COMPACT);
	ck_assert_msg(tu_contains(sgs, "\"text/html\"") && tu_contains(sgs, "<b>A.</b>"), "%s", sgs);
	free(sgs);
	json_t *idn = json_object_get(a, "identities");
	ck_assert_int_eq(json_array_size(idn), 1);
	json_t *ia = json_object_get(json_array_get(idn, 0), "attrs");
	ck_assert_str_eq(json_string_value(json_object_get(ia, "zimbraPrefIdentityId")), IDN_BOSS);
	ck_assert_str_eq(json_string_value(json_object_get(ia, "zimbraPrefFromAddress")),
			 "boss@example.net");
	ck_assert_str_eq(json_string_value(json_object_get(ia, "zimbraPrefDefaultSignatureId")),
			 SIG_WORK);
	/* sent after the aliases and signatures they name (the server's callbacks check) */
	ck_assert_str_eq(jattr(a, "zimbraPrefAllowAddressForDelegatedSender"), "ally@example.net");
	ck_assert_str_eq(jattr(a, "zimbraPrefCalendarAutoAcceptSignatureId"), SIG_WORK);
	/* the identity got identity attributes only (not the source's objectClass, create time) */
	ck_assert_ptr_null(json_object_get(ia, "objectClass"));
	ck_assert_str_ne(json_string_value(json_object_get(ia, "zimbraCreateTimestamp")) ?
			 json_string_value(json_object_get(ia, "zimbraCreateTimestamp")) : "-",
			 "20200101000000Z");
	json_t *al = json_object_get(a, "aliases");
	ck_assert_int_eq(json_array_size(al), 1);
	ck_assert_str_eq(json_string_value(json_array_get(al, 0)), "ally@example.net");
	/* the target's own gold, not the source's id */
	json_t *cos = NULL;
	json_t *q = json_pack("{s:{s:s, s:{s:s, s:s}}}", "GetCosRequest", "_jsns", "urn:zimbraAdmin",
			      "cos", "by", "name", "_content", "gold");
	char *tok = zsim_login(E.dst);
	ck_assert_int_eq(zsim_soap(E.dst, tok, q, &cos), 200);
	const char *gold = json_string_value(json_object_get(json_array_get(json_object_get(
		json_object_get(json_object_get(cos, "Body"), "GetCosResponse"), "cos"), 0), "id"));
	ck_assert_ptr_nonnull(gold);
	ck_assert_str_eq(jattr(a, "zimbraCOSId"), gold);
	/* gold was made (create_cos) with the source's settings, not its server pool */
	char *cs = json_dumps(cos, JSON_COMPACT);
	ck_assert_msg(tu_contains(cs, "\"zimbraMailQuota\", \"_content\": \"5242880\"") ||
		      tu_contains(cs, "\"zimbraMailQuota\",\"_content\":\"5242880\""), "%s", cs);
	ck_assert_msg(tu_contains(cs, "zimbraFeatureCalendarEnabled") &&
		      !tu_contains(cs, "zimbraMailHostPool"), "%s", cs);
	free(cs);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE kind = 'cos'"
				      " AND name = 'gold' AND state = 'done' AND outcome = 'created'"), 1);
	json_decref(cos);
	free(tok);
	json_decref(a);
	json_t *c = target_account("carol@example.org");
	ck_assert_str_eq(json_string_value(json_object_get(c, "id")), ID_CAROL);
	ck_assert_str_eq(jattr(c, "zimbraPrefFromAddress"), "carol@example.org");
	ck_assert_str_eq(jattr(c, "userPassword"), HASH_CAROL);
	json_decref(c);

	/* the users' old passwords work on the target ({SSHA} and {SSHA512}) */
	ck_assert(user_login("alice@example.net", "pw-alice"));
	ck_assert(user_login("bob@example.net", "pw-bob"));
	ck_assert(user_login("carol@example.org", "pw-carol"));
	ck_assert(!user_login("alice@example.net", "pw-bob"));

	/* the state DB: three objects created, their events; then migrated */
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE kind = 'account'"
				      " AND state = 'done' AND outcome = 'created' AND ours = 1"), 3);
	ck_assert_int_ge(e2e_db_count(&E, "SELECT count(*) FROM provision_events"), 6);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state = 'done'"), 3);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	for (size_t i = 0; i < 3; i++) {
		static const char *const src[] = { "alice@example.com", "bob@example.com",
						   "carol@example.org" };
		ck_assert_str_eq(zsim_fingerprint(ss, src[i]), zsim_fingerprint(ds, TARGETS[i]));
	}
	json_decref(ss);
	json_decref(ds);

	/* secrets: no hash, no LDAP password, in the output, the log, the DB, the work tree */
	ck_assert(!secret_anywhere(out, HASH_ALICE));
	ck_assert(!secret_anywhere(out, "GhVnDRZh4o8t434etcnxHyxX"));
	ck_assert(!secret_anywhere(out, HASH_CAROL + 10));
	ck_assert(!secret_anywhere(out, SLAPD_CONFIG_PW));
	ck_assert(!secret_anywhere(out, "dspw"));
	free(out);

	/* a rerun compares only: no create, modify or alias call */
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	rc = run(&out, "--stage", "provision");
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	ck_assert_msg(modify_calls() == 0, "rerun changed the target\n%s", out);
	ck_assert_int_eq(dst_calls("GetAccountRequest"), 3);
	ck_assert_int_eq(dst_calls("CreateDomainRequest") + dst_calls("CreateCosRequest"), 0);
	/* bob's only signature: not made his default by the target (the source has none) */
	json_t *bb = target_account("bob@example.net");
	ck_assert_int_eq(json_array_size(json_object_get(bb, "signatures")), 1);
	ck_assert_ptr_null(jattr(bb, "zimbraPrefDefaultSignatureId"));
	json_decref(bb);
	ck_assert_msg(tu_contains(out, "0 created, 0 updated, 3 unchanged"), "%s", out);
	ck_assert(!secret_anywhere(out, HASH_ALICE));
	free(out);
}
END_TEST

/* alice exists on the target already, with another id and display name */
static void precreate_alice(void)
{
	/* a boolean alike but for its case (not a change), a copied attribute the source
	 * lacks (removed by an update) */
	json_t *r = zsim_post(E.dst, "/zsim/add-account",
			      "{\"name\":\"alice@example.net\",\"status\":\"locked\","
			      "\"attrs\":{\"displayName\":\"Old Alice\","
			      "\"zimbraPrefHtmlEditorDefaultFontSize\":\"12pt\","
			      "\"zimbraPrefSkin\":\"carbon\",\"zimbraHideInGal\":\"false\","
			      "\"zimbraPrefMailSignature\":\"-- alice\"}}");
	ck_assert_ptr_nonnull(r);
	json_decref(r);
}

START_TEST(test_existing)
{
	precreate_alice();
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	char *out = NULL;

	write_job(" existing = \"skip\";", false, false);
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	ck_assert_int_eq(dst_calls("CreateAccountRequest"), 2);
	/* bob's only: his first signature is not left his default (the source has none) */
	ck_assert_int_eq(dst_calls("ModifyAccountRequest"), 1);
	json_t *a = target_account("alice@example.net");
	ck_assert_str_eq(jattr(a, "displayName"), "Old Alice");
	json_decref(a);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE"
				      " name = 'alice@example.com' AND outcome = 'skipped' AND ours = 0"), 1);
	free(out);

	/* fail: exit 1, alice failed with the reason, the others untouched (already done) */
	write_job(" existing = \"fail\";", false, false);
	rc = run(&out, "--stage", "provision");
	ck_assert_msg(rc == 1 && tu_contains(out, "alice@example.net already exists on the target"),
		      "exit %d\n%s", rc, out);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE"
				      " name = 'alice@example.com' AND state = 'failed' AND attempts = 1 AND"
				      " last_error LIKE '%existing = \"fail\"%'"), 1);
	free(out);

	/* update: one ModifyAccount with what differs (displayName, COS, ...), the alias added,
	 * the diff in the events; the attribute the target has alike is not in it */
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	write_job(" existing = \"update\";", false, false);
	rc = run(&out, "--stage", "provision");
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	/* two: the diff, then after the alias and signatures what names them
	 * (zimbraPrefAllowAddressForDelegatedSender, ...SignatureId) */
	ck_assert_int_eq(dst_calls("ModifyAccountRequest"), 2);
	ck_assert_int_eq(dst_calls("AddAccountAliasRequest"), 1);
	a = target_account("alice@example.net");
	ck_assert_str_eq(jattr(a, "zimbraPrefAllowAddressForDelegatedSender"), "ally@example.net");
	ck_assert_ptr_null(jattr(a, "zimbraPrefSkin"));        /* only the target had it */
	ck_assert_str_eq(jattr(a, "zimbraHideInGal"), "false");  /* TRUE/false: alike */
	json_decref(a);
	ck_assert_int_eq(dst_calls("CreateAccountRequest"), 0);
	a = target_account("alice@example.net");
	ck_assert_str_eq(jattr(a, "displayName"), "Alice Liddell");
	ck_assert_str_eq(jattr(a, "zimbraMailForwardingAddress"), "bob@example.net");
	/* the status is the target's (the cutover's), never updated from the source */
	ck_assert_str_eq(jattr(a, "zimbraAccountStatus"), "locked");
	ck_assert_str_ne(json_string_value(json_object_get(a, "id")), ID_ALICE);  /* cannot change */
	json_decref(a);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_events e JOIN"
				      " provision_objects o ON o.id = e.object_id WHERE"
				      " o.name = 'alice@example.com' AND e.message LIKE"
				      " '%displayName: ''Old Alice'' -> ''Alice Liddell''%'"
				      " AND e.message LIKE '%alias +ally@example.net%'"
				      " AND e.message NOT LIKE '%zimbraPrefMailSignature%'"
				      " AND e.message LIKE '%zimbraPrefSkin: ''carbon'' -> (none)%'"
				      " AND e.message NOT LIKE '%zimbraHideInGal%'"), 2);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE"
				      " name = 'alice@example.com' AND state = 'done' AND outcome = 'updated'"),
			 1);
	ck_assert_msg(tu_contains(out, "zimbraId"), "the differing zimbraId is warned about\n%s", out);
	free(out);

	/* again: nothing differs, no call */
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	rc = run(&out, "--stage", "provision");
	ck_assert_msg(rc == 0 && modify_calls() == 0, "exit %d\n%s", rc, out);
	free(out);
}
END_TEST

/*
 * After the cutover users work on the target: a provision rerun with
 * existing = "update" must not put the source's attributes back over what a
 * user changed there (the account's cutover row is 'done').
 */
START_TEST(test_cut_over_left_alone)
{
	empty_target();
	write_job(" create_domains = true; create_cos = true;", false, true);
	/* the same job with a cutover stage after the migration */
	char *job = tu_read(E.job);
	char *end = strstr(job, " );\n");
	ck_assert_ptr_nonnull(end);
	*end = '\0';
	char *text = xasprintf("%s,\n  { name = \"cutover\"; type = \"cutover\"; source_status = \"locked\"; } );\n",
			       job);
	free(E.job);
	E.job = tu_write(E.dir, "job.cfg", text, 0600);
	free(text);
	free(job);
	char *out = NULL;
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	free(out);
	ck_assert_int_ge(e2e_db_count(&E, "SELECT count(*) FROM cutover c JOIN accounts a ON a.id ="
				      " c.account_id WHERE a.account = 'alice@example.com' AND c.step = 'done'"), 1);
	/* alice renames herself on the target */
	json_t *a = target_account("alice@example.net");
	ck_assert_ptr_nonnull(a);
	char *tok = zsim_login(E.dst);
	json_t *req = json_pack("{s:{s:s, s:s, s:[{s:s, s:s}]}}", "ModifyAccountRequest", "_jsns",
				"urn:zimbraAdmin", "id", json_string_value(json_object_get(a, "id")), "a",
				"n", "displayName", "_content", "Alice on the target");
	json_decref(a);
	json_t *reply = NULL;
	ck_assert_int_eq(zsim_soap(E.dst, tok, req, &reply), 200);
	json_decref(reply);
	free(tok);
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	rc = run(&out, "--stage", "provision");
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	free(out);
	ck_assert_int_eq(modify_calls(), 0);
	a = target_account("alice@example.net");
	ck_assert_str_eq(jattr(a, "displayName"), "Alice on the target");
	json_decref(a);
}
END_TEST

START_TEST(test_dry_run)
{
	precreate_alice();
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	write_job(NULL, false, false);
	char *out = NULL;
	int rc = run(&out, "--dry-run", NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	ck_assert_msg(tu_contains(out, "create  bob@example.com -> bob@example.net (zimbraId " ID_BOB)
		      && tu_contains(out, "create  carol@example.org -> carol@example.org")
		      && tu_contains(out, "update  alice@example.com -> alice@example.net: ")
		      && tu_contains(out, "displayName: 'Old Alice' -> 'Alice Liddell'")
		      && tu_contains(out, "alias +ally@example.net"), "%s", out);
	ck_assert_int_eq(modify_calls(), 0);
	ck_assert_ptr_null(target_account("bob@example.net"));
	long long n = -1;
	ck_assert(!e2e_db_try(&E, "SELECT count(*) FROM provision_objects", &n) || n == 0);
	free(out);

	write_job(" existing = \"skip\";", false, false);
	rc = run(&out, "--dry-run", NULL);
	ck_assert_msg(rc == 0 && tu_contains(out, "skip    alice@example.com -> alice@example.net"),
		      "exit %d\n%s", rc, out);
	ck_assert_int_eq(modify_calls(), 0);
	free(out);
}
END_TEST

START_TEST(test_cos)
{
	/* bob's COS is silver: the target has no silver */
	json_t *r = zsim_post(E.src, "/zsim/delete-account", "{\"name\":\"bob@example.com\"}");
	json_decref(r);
	r = zsim_post(E.src, "/zsim/add-account", "{\"name\":\"bob@example.com\",\"id\":\"" ID_BOB
		      "\",\"cos\":\"silver\",\"attrs\":{\"displayName\":\"Bob\"}}");
	json_decref(r);
	write_job(NULL, false, false);
	char *out = NULL;
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 1 && tu_contains(out, "account 'bob@example.com': class of service "
					     "'silver' does not exist on the target (account.NO_SUCH_COS)"),
		      "exit %d\n%s", rc, out);
	ck_assert_ptr_null(target_account("bob@example.net"));
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE"
				      " state = 'failed' AND last_error LIKE '%silver%'"), 1);
	free(out);

	write_job(" cos_map = [ \"silver=gold\" ];", false, false);
	rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	json_t *b = target_account("bob@example.net");
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_nonnull(jattr(b, "zimbraCOSId"));
	json_decref(b);
	free(out);
}
END_TEST

/* the target name is an alias of another target account: that account is not touched */
START_TEST(test_alias_target)
{
	json_decref(zsim_post(E.dst, "/zsim/add-account",
			      "{\"name\":\"other@example.net\",\"aliases\":[\"bob@example.net\"],"
			      "\"attrs\":{\"displayName\":\"Other\"}}"));
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	write_job(NULL, false, false);
	char *out = NULL;
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 1 && tu_contains(out, "account 'bob@example.com': bob@example.net is an "
					     "alias of other@example.net on the target"), "exit %d\n%s", rc, out);
	/* one: alice's held-back attributes after her aliases; other's untouched */
	ck_assert_int_eq(dst_calls("ModifyAccountRequest"), 1);
	json_t *o = target_account("other@example.net");
	ck_assert_str_eq(jattr(o, "displayName"), "Other");
	json_decref(o);
	free(out);
}
END_TEST

/* The target refuses a zimbraId in CreateAccount (Carbonio 4.0.7-4.12.0, zsim knob
 * refuse_zimbra_id): "required" fails the accounts, "try" creates them with new ids,
 * warns once naming the server, records the new ids; a rerun changes nothing. */
START_TEST(test_carbonio_id)
{
	json_decref(zsim_post(E.dst, "/zsim/knobs", "{\"refuse_zimbra_id\":true}"));
	char *out = NULL;
	write_job(" keep_zimbra_id = \"required\";", false, false);
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 1 && tu_contains(out, "account 'bob@example.com': the target 127.0.0.1:")
		      && tu_contains(out, "refuses to keep the source's zimbraId " ID_BOB), "exit %d\n%s",
		      rc, out);
	ck_assert_ptr_null(target_account("bob@example.net"));
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE kind = "
				      "'account' AND state = 'failed' AND attempts = 1"), 3);
	free(out);

	write_job(" keep_zimbra_id = \"try\";", false, false);
	rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	const char *w = strstr(out, "refuses a zimbraId in CreateAccount");
	ck_assert_msg(w && !strstr(w + 1, "WARNING the target"), "one warning\n%s", out);
	ck_assert_msg(tu_contains(out, "shares and appointment links"), "%s", out);
	json_t *b = target_account("bob@example.net");
	ck_assert_ptr_nonnull(b);
	const char *bid = json_string_value(json_object_get(b, "id"));
	ck_assert_str_ne(bid, ID_BOB);
	char *q = xasprintf("SELECT count(*) FROM provision_objects WHERE name = 'bob@example.com'"
			    " AND state = 'done' AND outcome = 'created' AND target_id = '%s'", bid);
	ck_assert_int_eq(e2e_db_count(&E, q), 1);
	free(q);
	json_decref(b);
	free(out);

	/* a rerun knows them as its own: no call, no warning about differing ids */
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	rc = run(&out, "--stage", "provision");
	ck_assert_msg(rc == 0 && modify_calls() == 0 &&
		      tu_contains(out, "0 created, 0 updated, 3 unchanged"), "exit %d\n%s", rc, out);
	free(out);
}
END_TEST

/* The source's zimbraId is another target account's: the account fails naming both,
 * nothing created (zsim, like Zimbra, would accept the duplicate). */
START_TEST(test_dup_id)
{
	json_decref(zsim_post(E.dst, "/zsim/add-account", "{\"name\":\"other@example.net\",\"id\":\""
			      ID_BOB "\",\"attrs\":{\"displayName\":\"Other\"}}"));
	write_job(NULL, false, false);
	char *out = NULL;
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 1 && tu_contains(out, "account 'bob@example.com': zimbraId " ID_BOB
					     " is already the target's account other@example.net: "
					     "creating bob@example.net"), "exit %d\n%s", rc, out);
	ck_assert_ptr_null(target_account("bob@example.net"));
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE name = "
				      "'bob@example.com' AND state = 'failed' AND last_error LIKE "
				      "'%other@example.net%'"), 1);
	free(out);
	/* the simulator, as the real server (SpecialAttrs.java:62-72), takes the duplicate */
	char *tok = zsim_login(E.dst);
	json_t *req = json_pack("{s:{s:s, s:s, s:[{s:s, s:s}]}}", "CreateAccountRequest", "_jsns",
				"urn:zimbraAdmin", "name", "dup@example.net", "a", "n", "zimbraId",
				"_content", ID_BOB);
	json_t *reply = NULL;
	ck_assert_int_eq(zsim_soap(E.dst, tok, req, &reply), 200);
	json_decref(reply);
	free(tok);
}
END_TEST

/* An alias in a domain the target lacks: the account fails (attempt counted, the
 * alias, domain and server named), never left 'creating'; create_domains makes it. */
START_TEST(test_alias_domain)
{
	json_decref(zsim_post(E.src, "/zsim/delete-account", "{\"name\":\"bob@example.com\"}"));
	json_decref(zsim_post(E.src, "/zsim/add-account", "{\"name\":\"bob@example.com\",\"id\":\""
			      ID_BOB "\",\"aliases\":[\"bobby@other.test\"],"
			      "\"attrs\":{\"displayName\":\"Bob\"}}"));
	/* the source has the domain (an account of it, not selected) */
	json_decref(zsim_post(E.src, "/zsim/add-account", "{\"name\":\"x@other.test\"}"));
	write_job(NULL, false, false);
	char *out = NULL;
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 1 && tu_contains(out, "account 'bob@example.com': alias bobby@other.test: "
					     "its domain other.test does not exist on the target "
					     "127.0.0.1:"), "exit %d\n%s", rc, out);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE name = "
				      "'bob@example.com' AND state = 'failed' AND attempts = 1 AND "
				      "last_error LIKE '%bobby@other.test%other.test%127.0.0.1%'"), 1);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE state = "
				      "'creating'"), 0);
	free(out);

	write_job(" create_domains = true;", false, false);
	rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	json_t *b = target_account("bob@example.net");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(b, "aliases"), 0)),
			 "bobby@other.test");
	json_decref(b);
	json_t *d = target_domain("other.test");
	ck_assert_ptr_nonnull(json_object_get(d, "attrs"));
	json_decref(d);
	free(out);
}
END_TEST

/* copy_password on, no userPassword in the source's LDAP: the account fails. */
START_TEST(test_no_hash)
{
	start_ldap();
	LDAP *ld = ldap_admin();
	LDAPMod m = { .mod_op = LDAP_MOD_DELETE, .mod_type = (char *)"userPassword" };
	LDAPMod *pm[] = { &m, NULL };
	ck_assert_int_eq(ldap_modify_ext_s(ld, "uid=bob,ou=people,dc=example,dc=com", pm, NULL, NULL),
			 LDAP_SUCCESS);
	ldap_unbind_ext_s(ld, NULL, NULL);
	write_job(NULL, true, false);
	char *out = NULL;
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 1 && tu_contains(out, "account 'bob@example.com': the source's LDAP (")
		      && tu_contains(out, "returned no userPassword"), "exit %d\n%s", rc, out);
	ck_assert_ptr_null(target_account("bob@example.net"));
	json_t *c = target_account("carol@example.org");
	ck_assert_ptr_nonnull(c);
	json_decref(c);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE name = "
				      "'bob@example.com' AND state = 'failed' AND last_error LIKE "
				      "'%no userPassword%'"), 1);
	free(out);
}
END_TEST

/* userPassword of dn in the slapd (NULL if none; caller frees) */
static char *ldap_password(const char *dn)
{
	LDAP *ld = ldap_admin();
	char *attrs[] = { (char *)"userPassword", NULL };
	LDAPMessage *res = NULL;
	char *out = NULL;
	if (ldap_search_ext_s(ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL,
			      NULL, 0, &res) == LDAP_SUCCESS) {
		LDAPMessage *e = ldap_first_entry(ld, res);
		struct berval **v = e ? ldap_get_values_len(ld, e, "userPassword") : NULL;
		if (v && v[0])
			out = xstrndup(v[0]->bv_val, v[0]->bv_len);
		ldap_value_free_len(v);
	}
	ldap_msgfree(res);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return out;
}

/* target.ldap: the account created without userPassword (CreateAccount's handler logs
 * its attributes), the hash set on the target's entry over LDAP, the cache flushed. */
START_TEST(test_target_ldap)
{
	start_ldap();
	LDAP *ld = ldap_admin();
	const char *ou[] = { "objectClass", "organizationalUnit", "ou", "target", NULL };
	ldap_add_kv(ld, "ou=target,dc=example,dc=com", ou);
	/* what the target's CreateAccount makes in its LDAP (same ids: keep_zimbra_id) */
	static const char *const users[][2] = { { "alice", ID_ALICE }, { "bob", ID_BOB },
						{ "carol", ID_CAROL } };
	for (size_t i = 0; i < 3; i++) {
		char *dn = xasprintf("uid=%s,ou=target,dc=example,dc=com", users[i][0]);
		const char *kv[] = { "objectClass", "inetOrgPerson", "objectClass", "zimbraAccount",
				     "uid", users[i][0], "cn", users[i][0], "sn", users[i][0],
				     "zimbraId", users[i][1], NULL };
		ldap_add_kv(ld, dn, kv);
		free(dn);
	}
	ldap_unbind_ext_s(ld, NULL, NULL);
	src_base = "ou=people,dc=example,dc=com";
	with_target_ldap = true;
	write_job(NULL, true, false);
	char *out = NULL;
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	ck_assert_msg(!tu_contains(out, "audit log"), "%s", out);
	json_t *a = target_account("alice@example.net");
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_null(jattr(a, "userPassword"));   /* never given to CreateAccount */
	json_decref(a);
	char *pw = ldap_password("uid=alice,ou=target,dc=example,dc=com");
	ck_assert_msg(pw && !strcmp(pw, HASH_ALICE), "%s", pw ? "other hash" : "none");
	free(pw);
	pw = ldap_password("uid=carol,ou=target,dc=example,dc=com");
	ck_assert_msg(pw && !strcmp(pw, HASH_CAROL), "carol");
	free(pw);
	ck_assert_int_eq(dst_calls("FlushCacheRequest"), 3);
	ck_assert(!secret_anywhere(out, HASH_ALICE));
	free(out);
	/* a rerun: nothing set again */
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	rc = run(&out, "--stage", "provision");
	ck_assert_msg(rc == 0 && dst_calls("FlushCacheRequest") == 0 && modify_calls() == 0,
		      "exit %d\n%s", rc, out);
	free(out);
}
END_TEST

/* ---- crash at every durable step ---- */

/* The target's accounts as one comparable text (timestamps of creation left out). */
static char *target_state(void)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < 3; i++) {
		json_t *a = target_account(TARGETS[i]);
		if (!a) {
			buf_addf(&b, "%s: missing\n", TARGETS[i]);
			continue;
		}
		json_t *at = json_object_get(a, "attrs");
		json_object_del(at, "zimbraCreateTimestamp");
		json_object_del(at, "zimbraPasswordModifiedTime");
		char *s = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT);
		buf_addf(&b, "%s\n", s);
		free(s);
		json_decref(a);
	}
	json_t *q = json_pack("{s:{s:s, s:{s:s, s:s}}}", "GetCosRequest", "_jsns", "urn:zimbraAdmin",
			      "cos", "by", "name", "_content", "gold");
	json_t *cos = NULL;
	char *tok = zsim_login(E.dst);
	zsim_soap(E.dst, tok, q, &cos);
	free(tok);
	json_t *c0 = json_array_get(json_object_get(json_object_get(json_object_get(cos, "Body"),
								     "GetCosResponse"), "cos"), 0);
	json_t *ca = json_object_get(c0, "a");
	size_t ci;
	json_t *cv;
	json_array_foreach(ca, ci, cv)
		if (strcmp(json_string_value(json_object_get(cv, "n")), "zimbraId"))
			buf_addf(&b, "cos %s=%s\n", json_string_value(json_object_get(cv, "n")),
				 json_string_value(json_object_get(cv, "_content")));
	json_decref(cos);
	static const char *const doms[] = { "example.net", "example.org" };
	for (size_t i = 0; i < 2; i++) {
		json_t *d = target_domain(doms[i]);
		json_object_del(json_object_get(d, "attrs"), "zimbraCreateTimestamp");
		char *s = json_dumps(d, JSON_SORT_KEYS | JSON_COMPACT);
		buf_addf(&b, "%s\n", s ? s : "missing domain");
		free(s);
		json_decref(d);
	}
	return buf_detach(&b);
}

/* The first line of a that b lacks and of b that a lacks (static buffer, shortened). */
static const char *first_diff(const char *a, const char *b)
{
	static char out[1500];
	const char *la = a, *lb = b;
	while (*la && *lb) {
		size_t na = strcspn(la, "\n"), nb = strcspn(lb, "\n");
		if (na != nb || strncmp(la, lb, na)) {
			snprintf(out, sizeof out, "want %.*s\ngot  %.*s", (int)(na > 700 ? 700 : na), la,
				 (int)(nb > 700 ? 700 : nb), lb);
			return out;
		}
		la += na + (la[na] == '\n');
		lb += nb + (lb[nb] == '\n');
	}
	return "one is a prefix of the other";
}

static void reset_target(void)
{
	static const char *const doms[] = { "example.net", "example.org" };
	for (size_t i = 0; i < 2; i++) {
		char *body = xasprintf("{\"name\":\"%s\"}", doms[i]);
		json_decref(zsim_post(E.dst, "/zsim/delete-domain", body));
		free(body);
	}
	json_decref(zsim_post(E.dst, "/zsim/delete-cos", "{\"name\":\"gold\"}"));
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	unlink(E.db);
	char *p = xasprintf("%s-wal", E.db);
	unlink(p);
	free(p);
	p = xasprintf("%s-shm", E.db);
	unlink(p);
	free(p);
}

static int run_hooks(long k, const char *steps)
{
	return e2e_hooks_run(&E, k, steps, 60);
}

START_TEST(test_crash)
{
	start_ldap();
	empty_target();
	write_job(" create_domains = true; create_cos = true;", true, false);
	char *steps = xasprintf("%s/steps", E.dir);
	ck_assert_int_eq(run_hooks(0, steps), 0);
	char *want = target_state();
	ck_assert_msg(!tu_contains(want, "missing"), "%s", want);
	char *log = tu_read(steps);
	ck_assert_ptr_nonnull(log);
	long total = 0;
	for (const char *s = log; *s; s++)
		total += *s == '\n';
	ck_assert_int_ge(total, 7);   /* plan + (creating + done) x 3, besides the run's own */
	for (long k = 1; k <= total; k++) {
		reset_target();
		int rc = run_hooks(k, NULL);
		ck_assert_msg(rc == 99, "step %ld: exit %d (expected the crash)", k, rc);
		rc = run_hooks(0, NULL);
		ck_assert_msg(rc == 0, "step %ld: resumed run exit %d", k, rc);
		char *got = target_state();
		ck_assert_msg(!strcmp(got, want), "step %ld: end state differs\n%s", k,
			      first_diff(want, got));
		free(got);
		/* each account created once: a crash after the create is completed, not repeated */
		ck_assert_msg(dst_calls("CreateAccountRequest") == 3, "step %ld: %lld creates", k,
			      dst_calls("CreateAccountRequest"));
		json_t *st = zsim_stats(E.dst);
		ck_assert_msg(zsim_stat_int(st, "soap_faults/account.ACCOUNT_EXISTS") == 0 &&
			      zsim_stat_int(st, "soap_faults/account.DOMAIN_EXISTS") == 0 &&
			      zsim_stat_int(st, "soap_faults/account.COS_EXISTS") == 0,
			      "step %ld: ACCOUNT_EXISTS or DOMAIN_EXISTS on the target", k);
		json_decref(st);
		ck_assert_msg(dst_calls("CreateDomainRequest") == 2, "step %ld: %lld domain creates", k,
			      dst_calls("CreateDomainRequest"));
		ck_assert_msg(dst_calls("CreateCosRequest") == 1, "step %ld: %lld COS creates", k,
			      dst_calls("CreateCosRequest"));
		ck_assert_msg(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE"
					   " state = 'done' AND outcome = 'created'") == 6,
			      "step %ld: not every object recorded as created\n%s", k, log);
	}
	free(log);
	free(want);
	free(steps);
}
END_TEST

/* ---- configuration errors ---- */

static char *load_err(const char *text)
{
	char *path = tu_write(E.dir, "bad.cfg", text, 0600);
	struct job job;
	char *err = NULL;
	enum zmb_rc rc = conf_load(path, false, &job, &err);
	ck_assert_int_eq(rc, ZMB_ECONFIG);
	job_release(&job);
	free(path);
	return err;
}

START_TEST(test_config)
{
	const char *head = "job = \"x\";\n"
			   "source = { host = \"a\"; admin_user = \"u\"; admin_password = \"p\";%s };\n"
			   "target = { host = \"b\"; admin_user = \"u\"; admin_password = \"p\"; };\n"
			   "migration = { domains = [ \"example.com\" ]; working_dir = \"/tmp\"; };\n"
			   "stages = (\n  { name = \"p\"; type = \"provision\";\n    %s }\n);\n";
	struct { const char *src, *stage, *want; } cases[] = {
		{ "", "existing = \"maybe\";", "bad.cfg:7: stage 'p': key 'existing': must be one of" },
		{ "", "cos_map = [ \"gold\" ];", "bad.cfg:7: stage 'p': key 'cos_map': 'gold': expected" },
		{ "", "cos_map = [ \"a=b\", \"A=c\" ];", "key 'cos_map': COS 'A' mapped twice" },
		{ "", "colour = 1;", "bad.cfg:7: stage 'p': key 'colour': unknown key" },
		{ "", "copy_password = \"yes\";", "bad.cfg:7: stage 'p': key 'copy_password'" },
		{ " ldap = { bind_dn = \"x\"; password_file = \"/x\"; };", "",
		  "bad.cfg:2: key 'source.ldap.url': required" },
		{ " ldap = { url = \"http://x\"; password_file = \"/x\"; };", "",
		  "key 'source.ldap.url': expected an ldap://" },
		{ " ldap = { url = \"ldap://x\"; pw = 1; };", "", "unknown key 'source.ldap.pw'" },
		{ "", "keep_zimbra_id = \"maybe\";", "bad.cfg:7: stage 'p': key 'keep_zimbra_id': must be" },
		/* cleartext to another host: refused where the url is */
		{ " ldap = { url = \"ldap://ldap.example.com\"; password_file = \"/x\"; };", "",
		  "bad.cfg:2: key 'source.ldap.url': ldap:// to another host without starttls" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *text = xasprintf(head, cases[i].src, cases[i].stage);
		char *err = load_err(text);
		ck_assert_msg(err && strstr(err, cases[i].want), "case %zu: want '%s', got '%s'", i,
			      cases[i].want, err ? err : "(none)");
		free(err);
		free(text);
	}
	/* a good one: source.ldap read with its defaults */
	char *text = xasprintf(head, " ldap = { url = \"ldap://x\"; password_file = \"pw\";"
			       " allow_cleartext = true; };",
			       "existing = \"skip\"; cos_map = [ \"a=b\" ];");
	char *path = tu_write(E.dir, "good.cfg", text, 0600);
	struct job job;
	char *err = NULL;
	ck_assert_msg(conf_load(path, false, &job, &err) == ZMB_OK, "%s", err ? err : "");
	ck_assert_str_eq(job.source.ldap.bind_dn, "uid=zimbra,cn=admins,cn=zimbra");
	ck_assert_str_eq(job.source.ldap.base, "");
	ck_assert(job.source.ldap.password_file[0] == '/');
	ck_assert_ptr_null(job.target.ldap.url);
	job_release(&job);
	free(path);
	free(text);
	/* loopback, ldapi://, starttls: no allow_cleartext needed */
	static const char *const fine[] = { "ldap://127.0.0.1:389/", "ldap://localhost",
					    "ldap://[::1]:389", "ldapi:///", "ldap:///" };
	for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
		char *src = xasprintf(" ldap = { url = \"%s\"; password_file = \"pw\"; };", fine[i]);
		text = xasprintf(head, src, "");
		path = tu_write(E.dir, "good.cfg", text, 0600);
		ck_assert_msg(conf_load(path, false, &job, &err) == ZMB_OK, "%s: %s", fine[i],
			      err ? err : "");
		job_release(&job);
		free(path);
		free(text);
		free(src);
	}
	text = xasprintf(head, " ldap = { url = \"ldap://ldap.example.com\"; starttls = true;"
			 " password_file = \"pw\"; };", "");
	path = tu_write(E.dir, "good.cfg", text, 0600);
	ck_assert_msg(conf_load(path, false, &job, &err) == ZMB_OK, "%s", err ? err : "");
	job_release(&job);
	free(path);
	free(text);

	/* copy_password (default true) without source.ldap: the run says where, before any call */
	write_job(NULL, false, false);
	char *jt = tu_read(E.job);
	char *cut = strstr(jt, " copy_password = false;");
	ck_assert_ptr_nonnull(cut);
	memmove(cut, cut + strlen(" copy_password = false;"), strlen(cut + strlen(" copy_password = false;")) + 1);
	free(tu_write(E.dir, "job.cfg", jt, 0600));
	free(jt);
	char *out = NULL;
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc != 0 && tu_contains(out, "job.cfg:16: stage 'provision': key 'copy_password': "
					     "needs the source's LDAP"), "exit %d\n%s", rc, out);
	ck_assert_int_eq(dst_calls("GetAccountRequest"), 0);
	free(out);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_provision");
	/* three cases, so that a mutation can run only the one guarding it (CK_RUN_CASE) */
	TCase *tc = tcase_create("main");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_provision_then_migrate);
	suite_add_tcase(s, tc);
	tc = tcase_create("policy");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_existing);
	tcase_add_test(tc, test_cut_over_left_alone);
	tcase_add_test(tc, test_dry_run);
	tcase_add_test(tc, test_cos);
	tcase_add_test(tc, test_alias_target);
	tcase_add_test(tc, test_config);
	tcase_add_test(tc, test_carbonio_id);
	tcase_add_test(tc, test_dup_id);
	tcase_add_test(tc, test_alias_domain);
	tcase_add_test(tc, test_no_hash);
	tcase_add_test(tc, test_target_ldap);
	suite_add_tcase(s, tc);
	tc = tcase_create("crash");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_crash);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
