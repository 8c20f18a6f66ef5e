/*
 * check_e2e_provdl.c - the `provision` stage's distribution lists and calendar
 * resources (issue 15) end to end against two simulators (tests/zsim: their
 * handlers follow zm-mailbox's, cited there).  No LDAP: copy_password = false.
 *
 *   lists        an empty target: every static list of the accounts' domains
 *                created (a new zimbraId: the real server makes one), the
 *                allowed attributes (domain_map applied, server-specific ones
 *                not copied), its alias, its members mapped across domains, a
 *                nested list (a member naming a list of the job that comes
 *                later); its owner (alice@example.com) granted ownDistList on
 *                the target as alice@example.net (domain_map); the calendar resources
 *                created with their type, the same zimbraId, their allowed
 *                attributes and alias; a rerun sends no create / modify /
 *                member / alias / GrantRight call
 *   existing     a list already on the target lacking a member and with
 *                another displayName and without its owner: update adds the
 *                member, keeps the one only the target has, sets the attribute,
 *                grants the owner (bob@example.net), records the diff; a rerun
 *                sends nothing; skip leaves it
 *   dry_run      the plan per list and resource, nothing written on the target
 *                or in the DB
 *   crash        a crash at every durable step (accounts, resources, lists),
 *                then a plain run: the same end state, each list and resource
 *                created once, each owner granted once
 * Test cases: main (lists, existing, dry_run), crash.
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ID_STAFF "aaaaaaaa-1111-4111-8111-111111111111"
#define ID_ROOM "bbbbbbbb-2222-4222-8222-222222222222"
#define ID_BEAMER "cccccccc-3333-4333-8333-333333333333"

/* staff@example.com holds all@example.org, a list that comes after it (example.org's
 * lists are read after example.com's): nesting whatever the order */
static const char *const SRC_CFG =
	"{\"name\":\"src\",\"mailhost\":\"mbox-src.example.com\",\"domains\":["
	"{\"name\":\"example.com\",\"accounts\":["
	"{\"name\":\"alice@example.com\",\"attrs\":{\"displayName\":\"Alice\"}},"
	"{\"name\":\"bob@example.com\"}],"
	"\"resources\":[{\"name\":\"room1@example.com\",\"id\":\"" ID_ROOM "\","
	"\"aliases\":[\"boardroom@example.com\"],\"attrs\":{\"displayName\":\"Room 1\","
	"\"zimbraCalResType\":\"Location\",\"zimbraCalResCapacity\":\"12\","
	"\"zimbraCalResLocationDisplayName\":\"HQ, 2nd floor\",\"zimbraCalResAutoAcceptDecline\":\"TRUE\","
	"\"zimbraCalResContactEmail\":\"alice@example.com\",\"zimbraMailHost\":\"mbox-src.example.com\","
	"\"zimbraPrefTimeZoneId\":\"Europe/Berlin\"}}],"
	"\"lists\":[{\"name\":\"staff@example.com\",\"id\":\"" ID_STAFF "\","
	"\"aliases\":[\"team@example.com\"],\"owners\":[\"alice@example.com\"],"
	"\"members\":[\"alice@example.com\",\"carol@example.org\",\"all@example.org\"],"
	"\"attrs\":{\"displayName\":\"Staff\",\"description\":\"Everyone at Example\","
	"\"zimbraHideInGal\":\"TRUE\",\"zimbraDistributionListSubscriptionPolicy\":\"APPROVAL\","
	"\"zimbraPrefReplyToAddress\":\"staff@example.com\",\"zimbraPrefReplyToEnabled\":\"TRUE\","
	"\"zimbraMailHost\":\"mbox-src.example.com\",\"zimbraNotes\":\"n\"}}]},"
	"{\"name\":\"example.org\",\"accounts\":[{\"name\":\"carol@example.org\"}],"
	"\"resources\":[{\"name\":\"beamer@example.org\",\"id\":\"" ID_BEAMER "\",\"attrs\":{"
	"\"displayName\":\"Beamer\",\"zimbraCalResType\":\"Equipment\"}}],"
	"\"lists\":[{\"name\":\"all@example.org\",\"owners\":[\"bob@example.com\"],\"members\":[\"bob@example.com\","
	"\"ext@gmail.com\",\"carol@example.org\"],\"attrs\":{\"displayName\":\"All\"}}]}]}";

static const char *const DST_CFG =
	"{\"name\":\"dst\",\"mailhost\":\"mbox-dst.example.net\","
	"\"domains\":[{\"name\":\"example.net\"},{\"name\":\"example.org\"}]}";

/* all@example.org there already: carol missing, joiner only there, another name */
static const char *const DST_HAS_ALL_CFG =
	"{\"name\":\"dst\",\"mailhost\":\"mbox-dst.example.net\","
	"\"domains\":[{\"name\":\"example.net\"},{\"name\":\"example.org\","
	"\"lists\":[{\"name\":\"all@example.org\",\"members\":[\"bob@example.net\","
	"\"ext@gmail.com\",\"joiner@example.org\"],\"attrs\":{\"displayName\":\"Everybody\"}}]}]}";

static struct e2e E;

static void setup(void)
{
	memset(&E, 0, sizeof E);
	e2e_start(&E, SRC_CFG, DST_CFG);
}

static void teardown(void)
{
	e2e_stop(&E);
}

/* Replace the target by a new one from cfg (same CA); the job is written anew. */
static void new_target(const char *cfg)
{
	zsim_stop(E.dst);
	struct zsim_opts o = { .name = "dst", .config_json = cfg, .pki = E.pki };
	E.dst = zsim_start(&o);
	ck_assert_msg(E.dst != NULL, "target did not start");
}

static const char *stage_keys = "";

static void write_job(void)
{
	char *text = xasprintf(
		"job = \"provdl\";\n"
		"source = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/src.pw\"; ca_file = \"%s\"; };\n"
		"target = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/dst.pw\"; ca_file = \"%s\"; };\n"
		"migration = {\n"
		"  domains = [ \"example.com\", \"example.org\" ];\n"
		"  domain_map = [ \"example.com=example.net\" ];\n"
		"  threads = 2; working_dir = \"%s/work\";\n"
		"  retry_backoff = \"1s\"; retry_backoff_max = \"2s\"; max_attempts = 2;\n"
		"};\n"
		"state = { db = \"%s\"; };\n"
		"log = { dir = \"%s/log\"; level = \"debug\"; };\n"
		"stages = ( { name = \"provision\"; type = \"provision\"; copy_password = false;%s } );\n",
		E.src->port, E.dir, E.pki->ca_file, E.dst->port, E.dir, E.pki->ca_file, E.dir, E.db,
		E.dir, stage_keys);
	free(E.job);
	E.job = tu_write(E.dir, "job.cfg", text, 0600);
	free(text);
}

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

static json_t *target_list(const char *name)
{
	char *body = xasprintf("{\"name\":\"%s\"}", name);
	char *path = xstrdup("/zsim/list");
	const char *hdr[] = { "Content-Type: application/json", NULL };
	char *resp = NULL;
	long st = zsim_http(E.dst, "POST", path, hdr, body, strlen(body), &resp, NULL, NULL);
	json_t *j = st == 200 && resp ? json_loads(resp, 0, NULL) : NULL;
	free(resp);
	free(path);
	free(body);
	return j;
}

/* The target's whole account entry (GET /zsim/account): resources are accounts. */
static json_t *target_account(const char *name)
{
	char *path = xasprintf("/zsim/account?name=%s", name), *body = NULL;
	long st = zsim_http(E.dst, "GET", path, NULL, NULL, 0, &body, NULL, NULL);
	free(path);
	json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
	free(body);
	return j;
}

static const char *lattr(json_t *l, const char *n)
{
	json_t *v = json_object_get(json_object_get(l, "attrs"), n);
	if (json_is_array(v))
		v = json_array_get(v, 0);
	return json_string_value(v);
}

/* The members (sorted by zsim) as "a,b,c". */
static char *members(json_t *l)
{
	struct buf b = BUF_INIT;
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(l, "members"), i, m)
		buf_addf(&b, "%s%s", i ? "," : "", json_string_value(m));
	return buf_detach(&b);
}

static long long dst_calls(const char *req)
{
	return e2e_soap_calls(E.dst, req);
}

static long long list_writes(void)
{
	return dst_calls("CreateDistributionListRequest") +
	       dst_calls("ModifyDistributionListRequest") +
	       dst_calls("AddDistributionListMemberRequest") +
	       dst_calls("AddDistributionListAliasRequest") +
	       dst_calls("GrantRightRequest");
}

/* The list's owners on the target as "a,b". */
static char *owners(json_t *l)
{
	struct buf b = BUF_INIT;
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(l, "owners"), i, o)
		buf_addf(&b, "%s%s", i ? "," : "", json_string_value(o));
	return buf_detach(&b);
}

static long long all_writes(void)
{
	return list_writes() + dst_calls("CreateAccountRequest") +
	       dst_calls("CreateCalendarResourceRequest") +
	       dst_calls("ModifyCalendarResourceRequest") +
	       dst_calls("ModifyAccountRequest") + dst_calls("AddAccountAliasRequest");
}

START_TEST(test_lists)
{
	stage_keys = "";
	write_job();
	char *out = NULL;
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	ck_assert_msg(tu_contains(out, "created list staff@example.net") &&
		      tu_contains(out, "created list all@example.org"), "%s", out);
	ck_assert_msg(!tu_contains(out, "NOTE list"), "%s", out);
	json_t *staff = target_list("staff@example.net");
	ck_assert_msg(staff != NULL, "staff@example.net missing\n%s", out);
	/* the owner, mapped by domain_map: alice@example.com -> alice@example.net */
	char *ow = owners(staff);
	ck_assert_str_eq(ow, "alice@example.net");
	free(ow);
	/* a new id: CreateDistributionList does not keep one (LdapProvisioning 4574) */
	ck_assert_str_ne(json_string_value(json_object_get(staff, "id")), ID_STAFF);
	ck_assert_str_eq(lattr(staff, "displayName"), "Staff");
	ck_assert_str_eq(lattr(staff, "description"), "Everyone at Example");
	ck_assert_str_eq(lattr(staff, "zimbraHideInGal"), "TRUE");
	ck_assert_str_eq(lattr(staff, "zimbraDistributionListSubscriptionPolicy"), "APPROVAL");
	ck_assert_str_eq(lattr(staff, "zimbraPrefReplyToAddress"), "staff@example.net");
	ck_assert_str_eq(lattr(staff, "zimbraNotes"), "n");
	ck_assert_ptr_null(lattr(staff, "zimbraMailHost"));   /* server-specific */
	json_t *al = json_object_get(json_object_get(staff, "attrs"), "zimbraMailAlias");
	ck_assert_int_eq(json_array_size(al), 2);
	ck_assert_str_eq(json_string_value(json_array_get(al, 1)), "team@example.net");
	char *m = members(staff);
	ck_assert_str_eq(m, "alice@example.net,all@example.org,carol@example.org");
	free(m);
	json_t *all = target_list("all@example.org");
	ck_assert_ptr_nonnull(all);
	m = members(all);
	ck_assert_str_eq(m, "bob@example.net,carol@example.org,ext@gmail.com");
	free(m);
	ow = owners(all);
	ck_assert_str_eq(ow, "bob@example.net");
	free(ow);
	json_decref(staff);
	json_decref(all);
	/* all lists created before any member: two creates, then two member calls */
	ck_assert_int_eq(dst_calls("CreateDistributionListRequest"), 2);
	ck_assert_int_eq(dst_calls("AddDistributionListMemberRequest"), 2);
	ck_assert_int_eq(dst_calls("AddDistributionListAliasRequest"), 1);
	ck_assert_int_eq(dst_calls("GrantRightRequest"), 2);   /* one owner per list */
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE kind = 'list'"
				      " AND state = 'done' AND outcome = 'created' AND ours = 1"), 2);
	/* calendar resources: their type, the same zimbraId, the allowed attributes */
	json_t *room = target_account("room1@example.net");
	ck_assert_msg(room != NULL, "room1@example.net missing\n%s", out);
	ck_assert_str_eq(json_string_value(json_object_get(room, "id")), ID_ROOM);
	ck_assert_str_eq(lattr(room, "zimbraCalResType"), "Location");
	ck_assert_str_eq(lattr(room, "zimbraAccountCalendarUserType"), "RESOURCE");
	ck_assert_str_eq(lattr(room, "zimbraCalResCapacity"), "12");
	ck_assert_str_eq(lattr(room, "zimbraCalResLocationDisplayName"), "HQ, 2nd floor");
	ck_assert_str_eq(lattr(room, "zimbraCalResContactEmail"), "alice@example.net");
	ck_assert_str_eq(lattr(room, "zimbraPrefTimeZoneId"), "Europe/Berlin");
	ck_assert_str_ne(lattr(room, "zimbraMailHost"), "mbox-src.example.com");
	ck_assert_int_eq(json_array_size(json_object_get(room, "aliases")), 1);
	json_decref(room);
	json_t *beamer = target_account("beamer@example.org");
	ck_assert_ptr_nonnull(beamer);
	ck_assert_str_eq(json_string_value(json_object_get(beamer, "id")), ID_BEAMER);
	ck_assert_str_eq(lattr(beamer, "zimbraCalResType"), "Equipment");
	json_decref(beamer);
	ck_assert_int_eq(dst_calls("CreateCalendarResourceRequest"), 2);
	/* resources are not accounts of the job: no CreateAccount for them */
	ck_assert_int_eq(dst_calls("CreateAccountRequest"), 3);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE"
				      " kind = 'resource' AND outcome = 'created' AND ours = 1"), 2);
	free(out);

	/* rerun: read only */
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	rc = run(&out, "--stage", "provision");
	ck_assert_msg(rc == 0 && all_writes() == 0, "exit %d, %lld writes\n%s", rc, all_writes(), out);
	ck_assert_int_eq(dst_calls("GetDistributionListRequest"), 2);
	ck_assert_int_eq(dst_calls("GetCalendarResourceRequest"), 2);
	ck_assert_int_eq(dst_calls("GrantRightRequest"), 0);
	free(out);
}
END_TEST

START_TEST(test_existing)
{
	new_target(DST_HAS_ALL_CFG);
	stage_keys = " existing = \"skip\";";
	write_job();
	char *out = NULL;
	int rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	json_t *all = target_list("all@example.org");
	char *m = members(all);
	ck_assert_str_eq(m, "bob@example.net,ext@gmail.com,joiner@example.org");
	free(m);
	char *ow = owners(all);
	ck_assert_str_eq(ow, "");   /* skip: its owner not granted either */
	free(ow);
	json_decref(all);
	ck_assert_int_eq(dst_calls("CreateDistributionListRequest"), 1);   /* staff only */
	ck_assert_int_eq(dst_calls("GrantRightRequest"), 1);               /* staff's alice */
	ck_assert_int_eq(dst_calls("ModifyDistributionListRequest"), 0);
	free(out);

	stage_keys = " existing = \"update\";";
	write_job();
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	unlink(E.db);
	rc = run(&out, NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	ck_assert_msg(tu_contains(out, "member +carol@example.org; owner +bob@example.net") &&
		      tu_contains(out, "displayName: 'Everybody' -> 'All'"), "%s", out);
	all = target_list("all@example.org");
	m = members(all);
	/* carol added; joiner (only on the target) kept */
	ck_assert_str_eq(m, "bob@example.net,carol@example.org,ext@gmail.com,joiner@example.org");
	free(m);
	ck_assert_str_eq(lattr(all, "displayName"), "All");
	ow = owners(all);
	ck_assert_str_eq(ow, "bob@example.net");
	free(ow);
	json_decref(all);
	/* staff (alice an owner already) sends none: read before write */
	ck_assert_int_eq(dst_calls("GrantRightRequest"), 1);
	ck_assert_int_eq(dst_calls("CreateDistributionListRequest"), 0);
	ck_assert_int_eq(dst_calls("ModifyDistributionListRequest"), 1);
	ck_assert_int_eq(dst_calls("AddDistributionListMemberRequest"), 1);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_events e JOIN "
				      "provision_objects o ON o.id = e.object_id WHERE o.kind = 'list'"
				      " AND e.message LIKE 'update list all@example.org:%member +carol%'"), 1);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE kind = 'list'"
				      " AND name = 'all@example.org' AND outcome = 'updated'"), 1);
	free(out);

	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
	rc = run(&out, "--stage", "provision");
	ck_assert_msg(rc == 0 && all_writes() == 0, "exit %d, %lld writes\n%s", rc, all_writes(), out);
	ck_assert_int_eq(dst_calls("GetDistributionListRequest"), 2);
	free(out);
}
END_TEST

START_TEST(test_dry_run)
{
	new_target(DST_HAS_ALL_CFG);
	stage_keys = "";
	write_job();
	char *out = NULL;
	int rc = run(&out, "--dry-run", NULL);
	ck_assert_msg(rc == 0, "exit %d\n%s", rc, out);
	ck_assert_msg(tu_contains(out, "create  list staff@example.com -> staff@example.net "
				  "(8 attribute value(s), 1 alias(es), 3 member(s); owner(s) alice@example.net)") &&
		      tu_contains(out, "update  list all@example.org -> all@example.org: displayName: "
				  "'Everybody' -> 'All'; member +carol@example.org; owner +bob@example.net"),
		      "%s", out);
	ck_assert_msg(tu_contains(out, "create  resource room1@example.com -> room1@example.net "
				  "(zimbraId " ID_ROOM ", Location, 8 attribute value(s), 1 alias(es))"),
		      "%s", out);
	ck_assert_int_eq(all_writes(), 0);
	long long n = -1;
	ck_assert_msg(!e2e_db_try(&E, "SELECT count(*) FROM provision_objects WHERE kind IN"
				  " ('list', 'resource')",
				  &n) || n == 0, "%lld list rows after a dry run", n);
	free(out);
}
END_TEST

/* ---- crash at every durable step ---- */

static char *target_state(void)
{
	static const char *const names[] = { "staff@example.net", "all@example.org" };
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < 2; i++) {
		json_t *l = target_list(names[i]);
		if (!l) {
			buf_addf(&b, "%s: missing\n", names[i]);
			continue;
		}
		json_object_del(json_object_get(l, "attrs"), "zimbraCreateTimestamp");
		char *s = json_dumps(l, JSON_SORT_KEYS | JSON_COMPACT);
		buf_addf(&b, "%s\n", s);
		free(s);
		json_decref(l);
	}
	static const char *const res[] = { "room1@example.net", "beamer@example.org" };
	for (size_t i = 0; i < 2; i++) {
		json_t *a = target_account(res[i]);
		if (!a) {
			buf_addf(&b, "%s: missing\n", res[i]);
			continue;
		}
		json_object_del(json_object_get(a, "attrs"), "zimbraCreateTimestamp");
		json_object_del(json_object_get(a, "attrs"), "zimbraPasswordModifiedTime");
		char *s = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT);
		buf_addf(&b, "%s\n", s);
		free(s);
		json_decref(a);
	}
	return buf_detach(&b);
}

static int run_hooks(long k, const char *steps)
{
	return e2e_hooks_run(&E, k, steps, 60);
}

static void reset_all(void)
{
	new_target(DST_CFG);
	write_job();
	unlink(E.db);
	char *p = xasprintf("%s-wal", E.db);
	unlink(p);
	free(p);
	p = xasprintf("%s-shm", E.db);
	unlink(p);
	free(p);
}

START_TEST(test_crash)
{
	stage_keys = "";
	write_job();
	char *steps = xasprintf("%s/steps", E.dir);
	ck_assert_int_eq(run_hooks(0, steps), 0);
	char *want = target_state();
	ck_assert_msg(!tu_contains(want, "missing"), "%s", want);
	char *log = tu_read(steps);
	ck_assert_ptr_nonnull(log);
	long total = 0;
	for (const char *s = log; *s; s++)
		total += *s == '\n';
	/* plan, creating + created + done per list, its alias, its members */
	ck_assert_msg(tu_contains(log, "list created") && tu_contains(log, "list members added") &&
		      tu_contains(log, "list alias added") && tu_contains(log, "list owner granted") &&
		      tu_contains(log, "resource created") &&
		      tu_contains(log, "resource alias added"), "steps:\n%s", log);
	for (long k = 1; k <= total; k++) {
		reset_all();
		int rc = run_hooks(k, NULL);
		ck_assert_msg(rc == 99, "step %ld: exit %d (expected the crash)", k, rc);
		rc = run_hooks(0, NULL);
		ck_assert_msg(rc == 0, "step %ld: resumed run exit %d", k, rc);
		char *got = target_state();
		ck_assert_msg(!strcmp(got, want), "step %ld: end state differs\nwant %s\ngot  %s", k,
			      want, got);
		free(got);
		json_t *st = zsim_stats(E.dst);
		ck_assert_msg(zsim_stat_int(st, "soap/CreateDistributionListRequest") == 2 &&
			      zsim_stat_int(st, "soap/CreateCalendarResourceRequest") == 2 &&
			      /* each owner granted once: read before write after a crash */
			      zsim_stat_int(st, "soap/GrantRightRequest") == 2 &&
			      zsim_stat_int(st, "soap_faults/account.DISTRIBUTION_LIST_EXISTS") == 0 &&
			      zsim_stat_int(st, "soap_faults/account.ACCOUNT_EXISTS") == 0,
			      "step %ld: a list or resource created twice or a fault", k);
		json_decref(st);
		ck_assert_msg(e2e_db_count(&E, "SELECT count(*) FROM provision_objects WHERE"
					   " kind IN ('list', 'resource') AND state = 'done' AND"
					   " outcome = 'created'") == 4,
			      "step %ld: not every list and resource recorded as created\n%s", k, log);
	}
	free(log);
	free(want);
	free(steps);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_provdl");
	TCase *tc = tcase_create("main");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lists);
	tcase_add_test(tc, test_existing);
	tcase_add_test(tc, test_dry_run);
	suite_add_tcase(s, tc);
	tc = tcase_create("crash");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_crash);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
