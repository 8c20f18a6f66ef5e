/*
 * check_e2e_html.c - end-to-end: `zmbatch report --format html` of a real
 * job, drawn by a real browser.
 *
 * Two simulated servers (tests/zsim) and bin/zmbatch, as in
 * check_e2e_migrate.c: a run where the target refuses two imports (two
 * failed accounts), then the report written with --output and loaded by
 * Debian's chromium --headless --dump-dom: the DOM the browser built must
 * hold every section, the four charts, and the figures of the JSON report
 * of the same DB.  Then a copy of the DB with hostile text put in by this
 * test (an account named "<script>...", an error text that closes an
 * attribute and opens an <img>, a job name with markup): in the browser's
 * DOM those are text, and no element they name exists.  Last,
 * bin/report-screenshot draws the page to a PNG.
 *
 * The browser: $ZMBATCH_CHROMIUM, else /usr/bin/chromium (bin/setup
 * installs it).  Without it the tests fail when CI=true (the CI must run
 * them) and are skipped with a message otherwise.  Each browser run gets a
 * private profile in the test's temp dir and a timeout.
 * ZMBATCH_HTML_KEEP=DIR keeps the pages (e2e.html, hostile.html) there.
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EVIL_ACCT "<script>alert(1)</script>@x"
#define EVIL_ERR "\"><img src=x onerror=alert(1)>"
#define EVIL_JOB "<h1 id=pwned>job"

static struct e2e E;

static void setup(void)
{
	memset(&E, 0, sizeof E);
	e2e_start(&E, E2E_SRC_CFG, E2E_DST_CFG);
}

static void teardown(void)
{
	e2e_stop(&E);
}

/* The browser, or NULL (then the test fails under CI=true, else it is skipped). */
static const char *chromium(const char *test)
{
	const char *b = getenv("ZMBATCH_CHROMIUM");
	if (!b || !*b)
		b = "/usr/bin/chromium";
	if (access(b, X_OK) == 0)
		return b;
	const char *ci = getenv("CI");
	ck_assert_msg(!ci || strcmp(ci, "true") != 0,
		      "%s is missing and CI=true: bin/setup installs chromium", b);
	tu_skip(test, "no browser at %s (bin/setup installs chromium; ZMBATCH_CHROMIUM=PATH picks "
		"another; under CI=true this fails)", b);
	return NULL;
}

/* The DOM chromium builds from the page at path (--dump-dom); caller frees. */
static char *browser_dom(const char *browser, const char *path)
{
	char *profile = xasprintf("%s/chromium-profile", E.dir);
	char *udd = xasprintf("--user-data-dir=%s", profile);
	char *url = xasprintf("file://%s", path);
	char *argv[] = { (char *)"timeout", (char *)"-k", (char *)"5", (char *)"90", (char *)browser,
			 (char *)"--headless", (char *)"--no-sandbox", (char *)"--disable-gpu",
			 (char *)"--no-first-run", (char *)"--disable-background-networking",
			 (char *)"--disable-component-update", udd, (char *)"--dump-dom", url, NULL };
	struct tu_proc p;
	int rc = tu_run(argv, NULL, 120, &p);
	ck_assert_msg(rc == 0, "chromium exit %d: %s", rc, p.err);
	ck_assert_msg(tu_contains(p.out, "</html>"), "no DOM from chromium: %.300s", p.err);
	char *dom = xstrdup(p.out);
	tu_proc_release(&p);
	free(profile);
	free(udd);
	free(url);
	return dom;
}

static int count_of(const char *s, const char *needle)
{
	int n = 0;
	for (const char *q = s; (q = strstr(q, needle)) != NULL; q += strlen(needle))
		n++;
	return n;
}

/* The integer in the first <data value="N"> after marker (which occurs once). */
static long long dom_value(const char *dom, const char *marker)
{
	ck_assert_msg(count_of(dom, marker) == 1, "%s: %d times in the DOM", marker, count_of(dom, marker));
	const char *q = strstr(dom, marker) + strlen(marker);
	const char *d = strstr(q, "<data value=\"");
	ck_assert_msg(d && d - q < 80, "no value after %s", marker);
	return strtoll(d + 13, NULL, 10);
}

/* report --format html --output path of db (the page kept when ZMBATCH_HTML_KEEP is set). */
static void write_report(const char *db, const char *path, const char *keep_as)
{
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 60, "report", "--state", db, "--format", "html", "--output", path,
			     (char *)NULL);
	ck_assert_msg(rc == 0, "report exit %d", rc);
	ck_assert_str_eq(p.out, "");
	tu_proc_release(&p);
	const char *keep = getenv("ZMBATCH_HTML_KEEP");
	if (keep) {
		char *page = tu_read(path);
		char *dst = xasprintf("%s/%s.html", keep, keep_as);
		FILE *f = fopen(dst, "w");
		if (f) {
			fputs(page, f);
			fclose(f);
		}
		free(dst);
		free(page);
	}
}

/* The JSON report of db (parsed; caller decrefs). */
static json_t *json_report(const char *db)
{
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 60, "report", "--state", db, "--format", "json", (char *)NULL);
	ck_assert_msg(rc == 0, "report json exit %d", rc);
	json_t *j = json_loads(p.out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	tu_proc_release(&p);
	return j;
}

static long long jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	ck_assert_msg(json_is_integer(v), "json: %s", key);
	return json_integer_value(v);
}

/* Two imports refused: 6 done, 2 failed (exit 1). */
static void run_job(void)
{
	json_decref(zsim_post(E.dst, "/zsim/knobs", "{\"faults\":["
			      "{\"op\":\"import\",\"account\":\"bob@example.net\",\"action\":\"import_fail\","
			      "\"code\":\"formatter.INVALID_FORMAT\",\"reason\":\"invalid file format\",\"count\":-1},"
			      "{\"op\":\"import\",\"account\":\"grace@example.org\",\"action\":\"import_fail\","
			      "\"code\":\"mail.QUOTA_EXCEEDED\",\"reason\":\"mailbox exceeded quota\",\"count\":-1}]}"));
	e2e_write_job(&E, 2, NULL, NULL);
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	tu_proc_release(&p);
	ck_assert_msg(rc == 1, "run exit %d", rc);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state = 'failed'"), 2);
}

static const char *const sections[] = { "summary", "progress", "throughput", "failures", "sizes",
					"slowest", "servers", "stages", "runs" };

/*
 * The e2e job's report in the browser: each section, each chart as an <svg>
 * with its title, the counts and bytes of the JSON report, the two failed
 * accounts with their reasons, the servers' logins, the runs.
 */
START_TEST(test_html_in_browser)
{
	const char *browser = chromium(__func__);
	if (!browser)
		return;
	run_job();
	char *page = xasprintf("%s/report.html", E.dir);
	write_report(E.db, page, "e2e");
	char *dom = browser_dom(browser, page);
	json_t *j = json_report(E.db);
	json_t *counts = json_object_get(j, "counts");

	for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
		char *id = xasprintf("<section id=\"%s\">", sections[i]);
		ck_assert_msg(count_of(dom, id) == 1, "%s: %d times in the DOM", id, count_of(dom, id));
		free(id);
	}
	static const char *const figs[] = { "progress", "throughput", "failures", "sizes" };
	for (size_t i = 0; i < 4; i++) {
		char *fig = xasprintf("<figure id=\"fig-%s\"><svg viewBox=", figs[i]);
		ck_assert_msg(tu_contains(dom, fig), "no chart %s in the DOM", figs[i]);
		free(fig);
	}
	ck_assert_int_eq(count_of(dom, "<svg "), 4);
	ck_assert_int_eq(count_of(dom, "<script"), 0);
	/* the figures: the JSON's, and the run's */
	ck_assert_int_eq(dom_value(dom, "id=\"k-done\""), jint(counts, "done"));
	ck_assert_int_eq(dom_value(dom, "id=\"k-done\""), (long long)E2E_NUSERS - 2);
	ck_assert_int_eq(dom_value(dom, "id=\"k-failed\""), 2);
	ck_assert_int_eq(dom_value(dom, "<span id=\"bytes-done\">"), jint(j, "bytes_done"));
	ck_assert_int_eq(dom_value(dom, "<span id=\"bytes-total\">"), jint(j, "bytes_total"));
	ck_assert_int_eq(dom_value(dom, "<span id=\"progress-total\">"), jint(counts, "done"));
	ck_assert_int_eq(dom_value(dom, "<span id=\"throughput-total\">"), jint(j, "bytes_done"));
	ck_assert(jint(j, "bytes_done") > 0);
	/* the failed accounts with the target's reason and what to do */
	ck_assert_int_eq(count_of(dom, "<tr class=\"problem\">"), 2);
	ck_assert(tu_contains(dom, "bob@example.com"));
	ck_assert(tu_contains(dom, "formatter.INVALID_FORMAT"));
	ck_assert(tu_contains(dom, "grace@example.org"));
	ck_assert(tu_contains(dom, "<code>zmbatch run --retry-failed</code>"));
	/* the servers' logins, the migrate stage, the one run with exit 1 */
	json_t *servers = json_object_get(j, "servers");
	ck_assert_uint_ge(json_array_size(servers), 2);
	ck_assert_int_eq(count_of(strstr(dom, "<section id=\"servers\">"), "<tr><td>source</td>") +
			 count_of(strstr(dom, "<section id=\"servers\">"), "<tr><td>target</td>"), 2);
	ck_assert(tu_contains(dom, "<td>migrate</td><td>migrate</td>"));
	ck_assert(tu_contains(dom, "<td>exit 1</td>"));
	/* a band of the run behind the progress lines */
	ck_assert_int_eq(count_of(dom, "<rect class=\"run\""), 1);

	/* the screenshot script draws it */
	char *png = xasprintf("%s/report.png", E.dir);
	char *script = xasprintf("%s/bin/report-screenshot", tu_srcdir());
	char *argv[] = { script, page, png, (char *)"800,1200", NULL };
	char *env[] = { xasprintf("CHROMIUM=%s", browser), NULL };
	struct tu_proc p;
	int rc = tu_run(argv, env, 150, &p);
	ck_assert_msg(rc == 0, "report-screenshot exit %d: %s", rc, p.err);
	tu_proc_release(&p);
	char *img = tu_read(png);
	ck_assert_msg(img && !memcmp(img, "\x89PNG", 4), "no PNG written");
	free(img);
	free(env[0]);
	free(script);
	free(png);
	json_decref(j);
	free(dom);
	free(page);
}
END_TEST

static void sql(sqlite3 *db, const char *q)
{
	char *e = NULL;
	ck_assert_msg(sqlite3_exec(db, q, NULL, NULL, &e) == SQLITE_OK, "%s: %s", q, e ? e : "?");
}

/*
 * Text from servers is text: in a copy of the e2e DB, an account named
 * EVIL_ACCT (pending, the largest), bob's error replaced by EVIL_ERR, and a
 * job name with markup.  The browser's DOM holds them escaped, and no
 * <script>, <img> or h1#pwned element exists.
 */
START_TEST(test_html_hostile_text_in_browser)
{
	const char *browser = chromium(__func__);
	if (!browser)
		return;
	run_job();
	char *copy = xasprintf("%s/hostile.db", E.dir);
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(E.db, &db), SQLITE_OK);
	char *q = xasprintf("VACUUM INTO '%s'", copy);
	sql(db, q);
	free(q);
	sqlite3_close(db);
	ck_assert_int_eq(sqlite3_open(copy, &db), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db, "UPDATE accounts SET last_error = ?1 WHERE account = "
					    "'bob@example.com'", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, EVIL_ERR, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	ck_assert_int_eq(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO accounts (account, target, seq, size, state, "
					    "updated_at) VALUES (?1, ?1, 99, 1e12, 'pending', 1e9)", -1, &st,
					    NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, EVIL_ACCT, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta (key, value) VALUES "
					    "('job_name', ?1)", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, EVIL_JOB, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);

	char *page = xasprintf("%s/hostile.html", E.dir);
	write_report(copy, page, "hostile");
	char *raw = tu_read(page);
	ck_assert(!tu_contains(raw, "<script") && !tu_contains(raw, "<img") && !tu_contains(raw, "<h1 id=pwned"));
	free(raw);
	char *dom = browser_dom(browser, page);
	/* rendered as text: the DOM serializer escapes < > & in text nodes */
	ck_assert_msg(tu_contains(dom, "&lt;script&gt;alert(1)&lt;/script&gt;@x"), "the hostile name is not text");
	ck_assert_msg(tu_contains(dom, "\"&gt;&lt;img src=x onerror=alert(1)&gt;"), "the hostile error is not text");
	ck_assert_msg(tu_contains(dom, "zmbatch report: &lt;h1 id=pwned&gt;job"), "the hostile job name is not text");
	ck_assert_msg(!tu_contains(dom, "<script"), "a <script> element exists");
	ck_assert_msg(!tu_contains(dom, "<img"), "an <img> element exists");
	ck_assert_msg(!tu_contains(dom, "id=\"pwned\"") && !tu_contains(dom, "id=pwned>"), "an h1#pwned exists");
	ck_assert_msg(!tu_contains(dom, "onerror=\""), "an onerror attribute exists");
	/* the hostile account is the largest still to migrate: a row of its own, as text */
	const char *lg = strstr(dom, "<table id=\"largest\">");
	ck_assert_ptr_nonnull(lg);
	ck_assert(strstr(lg, "&lt;script&gt;") < strstr(lg, "</table>"));
	/* and the page is the same page: every section still there */
	for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
		char *id = xasprintf("<section id=\"%s\">", sections[i]);
		ck_assert_msg(count_of(dom, id) == 1, "%s: %d times in the DOM", id, count_of(dom, id));
		free(id);
	}
	free(dom);
	free(page);
	free(copy);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_html");
	TCase *tc = tcase_create("html");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_html_in_browser);
	tcase_add_test(tc, test_html_hostile_text_in_browser);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
