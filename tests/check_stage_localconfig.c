/*
 * check_stage_localconfig.c - the localconfig stage on a fixture localconfig.xml.
 */
#include "slapd.h"
#include "testutil.h"
#include "zmb.h"

#include <check.h>
#include <dirent.h>
#include <libxml/parser.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char fixture[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"\n"
	"<localconfig>\n"
	"  <key name=\"ldap_url\">\n"
	"    <value>ldap://ldap1.example.com:389</value>\n"
	"  </key>\n"
	"  <key name=\"ldap_master_url\">\n"
	"    <value>ldap://ldap1.example.com:389</value>\n"
	"  </key>\n"
	"  <key name=\"ldap_root_password\">\n"
	"    <value>s3cr&amp;t</value>\n"
	"  </key>\n"
	"  <key name=\"zimbra_home\">\n"
	"    <value>/opt/zextras</value>\n"
	"  </key>\n"
	"</localconfig>\n";

struct res {
	enum zmb_rc rc;
	char *err;
	char *out;
};

static struct res run_lc(const char *file, bool two_keys)
{
	struct cval *g = tcv_group(NULL, NULL);
	tcv_str(g, "file", file);
	struct cval *set = tcv_group(g, "set");
	tcv_str(set, "ldap_master_url", "ldap://ldap1.example.com:389 ldap://ldap2.example.com:389");
	if (two_keys) {
		tcv_bool(set, "ldap_is_master", true);
		tcv_str(set, "ldap_root_password", "n3w<pw>&");
	}
	struct stage_run sr;
	struct res r = { 0, NULL, NULL };
	stage_run_init(&sr, "lc", "localconfig", g);
	r.rc = stage_run_go(&sr, &r.err);
	r.out = xstrdup(sr.ctx.out.s ? sr.ctx.out.s : "");
	stage_run_release(&sr);
	return r;
}

static int count_backups(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += strstr(e->d_name, ".bak") != NULL;
	if (d)
		closedir(d);
	return n;
}

/* value of key in the file, through libxml2 (not string matching) */
static char *lc_value(const char *file, const char *key)
{
	xmlDocPtr doc = xmlReadFile(file, NULL, XML_PARSE_NONET);
	char *r = NULL;
	if (!doc)
		return NULL;
	for (xmlNodePtr c = xmlDocGetRootElement(doc)->children; c; c = c->next) {
		xmlChar *n = c->type == XML_ELEMENT_NODE ? xmlGetProp(c, (const xmlChar *)"name") : NULL;
		if (n && !strcmp((char *)n, key))
			for (xmlNodePtr v = c->children; v; v = v->next)
				if (v->type == XML_ELEMENT_NODE) {
					xmlChar *t = xmlNodeGetContent(v);
					r = xstrdup((char *)t);
					xmlFree(t);
				}
		xmlFree(n);
	}
	xmlFreeDoc(doc);
	return r;
}

START_TEST(test_set_backup_idempotent)
{
	char *dir = tu_tmpdir("lc");
	char *f = tu_write(dir, "localconfig.xml", fixture, 0640);
	struct res r = run_lc(f, true);
	ck_assert_msg(r.rc == ZMB_OK, "%s", r.err);
	ck_assert(tu_contains(r.out, "ldap_master_url: changed"));
	ck_assert(tu_contains(r.out, "ldap_is_master: added"));
	ck_assert(tu_contains(r.out, "ldap_root_password: changed (value hidden)"));
	ck_assert(!tu_contains(r.out, "n3w") && !tu_contains(r.out, "s3cr"));
	free(r.err);
	free(r.out);

	char *v = lc_value(f, "ldap_master_url");
	ck_assert_str_eq(v, "ldap://ldap1.example.com:389 ldap://ldap2.example.com:389");
	free(v);
	v = lc_value(f, "ldap_is_master");
	ck_assert_str_eq(v, "true");
	free(v);
	v = lc_value(f, "ldap_root_password");
	ck_assert_str_eq(v, "n3w<pw>&");
	free(v);
	v = lc_value(f, "zimbra_home");
	ck_assert_str_eq(v, "/opt/zextras");    /* other keys kept */
	free(v);
	char *text = tu_read(f);
	ck_assert_msg(tu_contains(text, "  <key name=\"ldap_is_master\">\n    <value>true</value>\n  </key>\n</localconfig>"),
		      "formatting:\n%s", text);
	ck_assert(tu_contains(text, "n3w&lt;pw&gt;&amp;"));
	free(text);
	struct stat st;
	ck_assert_int_eq(stat(f, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640);   /* mode kept */
	ck_assert_int_eq(count_backups(dir), 1);

	/* the backup holds the original bytes */
	DIR *d = opendir(dir);
	for (struct dirent *e; (e = readdir(d));) {
		if (!strstr(e->d_name, ".bak"))
			continue;
		char *bp = xasprintf("%s/%s", dir, e->d_name);
		char *b = tu_read(bp);
		ck_assert_str_eq(b, fixture);
		free(b);
		free(bp);
	}
	closedir(d);

	/* second run: no change, same bytes, same mtime, no new backup */
	char *before = tu_read(f);
	struct stat st1;
	stat(f, &st1);
	tu_sleep(0.02);
	r = run_lc(f, true);
	ck_assert_msg(r.rc == ZMB_OK, "%s", r.err);
	ck_assert(tu_contains(r.out, "unchanged"));
	ck_assert(!tu_contains(r.out, "written"));
	free(r.err);
	free(r.out);
	char *after = tu_read(f);
	struct stat st2;
	stat(f, &st2);
	ck_assert_str_eq(before, after);
	ck_assert(st1.st_mtim.tv_sec == st2.st_mtim.tv_sec && st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec);
	ck_assert(st1.st_ino == st2.st_ino);
	ck_assert_int_eq(count_backups(dir), 1);
	free(before);
	free(after);
	free(f);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_missing_file)
{
	char *dir = tu_tmpdir("lc");
	char *f = xasprintf("%s/nope.xml", dir);
	struct res r = run_lc(f, false);
	ck_assert_int_eq(r.rc, ZMB_ENOTFOUND);
	ck_assert_msg(tu_contains(r.err, f) && tu_contains(r.err, "No such file"), "%s", r.err);
	free(r.err);
	free(r.out);
	free(f);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_not_localconfig)
{
	char *dir = tu_tmpdir("lc");
	char *f = tu_write(dir, "a.xml", "<config><key name=\"x\"/></config>\n", 0600);
	struct res r = run_lc(f, false);
	ck_assert_int_eq(r.rc, ZMB_EPROTO);
	ck_assert_msg(tu_contains(r.err, "not a localconfig file"), "%s", r.err);
	free(r.err);
	free(r.out);
	char *g = tu_write(dir, "b.xml", "<localconfig><key name=\"x\">\n<value>1</valu>\n", 0600);
	r = run_lc(g, false);
	ck_assert_int_eq(r.rc, ZMB_EPROTO);
	ck_assert_msg(tu_contains(r.err, "not well-formed") && tu_contains(r.err, g), "%s", r.err);
	free(r.err);
	free(r.out);
	char *text = tu_read(g);
	ck_assert_str_eq(text, "<localconfig><key name=\"x\">\n<value>1</valu>\n");   /* untouched */
	free(text);
	ck_assert_int_eq(count_backups(dir), 0);
	free(f);
	free(g);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_validate)
{
	struct stage_run sr;
	char *err = NULL;
	struct cval *g = tcv_group(NULL, NULL);
	tcv_str(g, "file", "/x/localconfig.xml");
	stage_run_init(&sr, "lc", "localconfig", g);
	ck_assert_int_eq(localconfig_validate(&sr.sc, "job.conf", &err), -1);
	ck_assert_msg(tu_contains(err, "job.conf:1: stage 'lc': key 'set'"), "%s", err);
	free(err);
	stage_run_release(&sr);
}
END_TEST

/*
 * files = [ ... ]: the same keys on several nodes' files (the vendor procedure
 * sets ldap_master_url and ldap_url on every node), each changed atomically;
 * a second run changes none; `file` and `files` together are refused.
 */
START_TEST(test_files_several_nodes)
{
	char *dir = tu_tmpdir("lc");
	char *a = tu_write(dir, "ldap1.xml", fixture, 0600);
	char *b = tu_write(dir, "ldap2.xml", fixture, 0640);
	for (int round = 0; round < 2; round++) {
		struct cval *g = tcv_group(NULL, NULL);
		tcv_strs(g, "files", a, b, NULL);
		struct cval *set = tcv_group(g, "set");
		tcv_str(set, "ldap_url", "ldap://ldap1.example.com:389 ldap://ldap2.example.com:389");
		struct stage_run sr;
		char *err = NULL;
		stage_run_init(&sr, "lc", "localconfig", g);
		ck_assert_msg(stage_run_go(&sr, &err) == ZMB_OK, "%s", err);
		const char *out = sr.ctx.out.s ? sr.ctx.out.s : "";
		if (round == 0)
			ck_assert_msg(tu_contains(out, "ldap1.xml: 1 key(s) written") &&
				      tu_contains(out, "ldap2.xml: 1 key(s) written"), "%s", out);
		else
			ck_assert_msg(!tu_contains(out, "written"), "second run wrote:\n%s", out);
		stage_run_release(&sr);
	}
	for (int i = 0; i < 2; i++) {
		char *v = lc_value(i ? b : a, "ldap_url");
		ck_assert_str_eq(v, "ldap://ldap1.example.com:389 ldap://ldap2.example.com:389");
		free(v);
	}
	struct stat st;
	ck_assert_int_eq(stat(b, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640);
	struct stage_run sr;
	char *err = NULL;
	struct cval *g = tcv_group(NULL, NULL);
	tcv_str(g, "file", a);
	tcv_strs(g, "files", b, NULL);
	struct cval *set = tcv_group(g, "set");
	tcv_str(set, "ldap_url", "x");
	stage_run_init(&sr, "lc", "localconfig", g);
	ck_assert_int_eq(localconfig_validate(&sr.sc, "job.conf", &err), -1);
	ck_assert_msg(tu_contains(err, "key 'files': give either file or files"), "%s", err);
	free(err);
	stage_run_release(&sr);
	free(a);
	free(b);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("stage_localconfig");
	TCase *tc = tcase_create("localconfig");
	tcase_add_test(tc, test_set_backup_idempotent);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_not_localconfig);
	tcase_add_test(tc, test_validate);
	tcase_add_test(tc, test_files_several_nodes);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
