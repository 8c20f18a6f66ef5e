/*
 * check_e2e_chunks.c - end-to-end: a pass exported in pieces (README "Huge
 * mailboxes and zimbraExportMaxDays") and what a delta pass carries (README
 * "Delta passes: what they carry"), against simulators whose export follows
 * zm-mailbox ArchiveFormatter.formatCallback (tests/zsim/zsim.py: windows
 * with after: from start + 1000 ms, appointments only when inside the
 * window, every task in every window, no folders in a windowed export,
 * list= without any check, zimbraExportMaxDays as HTTP 500).
 *
 * The mailbox "big" holds messages over 100 days, an empty folder, an
 * appointment that spans two months (in no 30-day window) and a task: each
 * must arrive whichever way the pass is cut.
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DAY 86400000LL

static struct e2e E;

/* %s: big's own attributes */
static const char *SRC_CFG =
	"{\"name\":\"src\",\"domains\":["
	"{\"name\":\"example.com\",\"accounts\":[{\"name\":\"big@example.com\",\"attrs\":{%s}}]},"
	"{\"name\":\"example.org\",\"accounts\":[{\"name\":\"tiny@example.org\",\"items\":2}]}]}";
static const char *DST_CFG =
	"{\"name\":\"dst\",\"domains\":["
	"{\"name\":\"example.net\",\"accounts\":[{\"name\":\"big@example.net\"}]},"
	"{\"name\":\"example.org\",\"accounts\":[{\"name\":\"tiny@example.org\"}]}]}";

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *post(struct zsim *z, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static json_t *post(struct zsim *z, const char *path, const char *fmt, ...)
{
	va_list ap;
	char *body;
	va_start(ap, fmt);
	if (vasprintf(&body, fmt, ap) < 0)
		abort();
	va_end(ap);
	json_t *r = zsim_post(z, path, body);
	ck_assert_msg(r != NULL, "%s %s: no answer", path, body);
	free(body);
	return r;
}

/* The first id an add-items answer gives. */
static long long first_id(json_t *r)
{
	long long id = json_integer_value(json_array_get(json_object_get(r, "ids"), 0));
	json_decref(r);
	ck_assert(id > 0);
	return id;
}

static long long T0;          /* the oldest message's date */
static long long MSG_OLD;     /* an old Inbox message (moved in the delta test) */
static long long MSG_DEL;     /* another (deleted in the delta test) */
static long long APPT;        /* the long appointment */

/* big@example.com: 15 messages over 100 days in two folders, an empty folder, a long appointment, a task. */
static void fill_big(void)
{
	T0 = now_ms() - 105 * DAY;
	for (int k = 0; k < 15; k++) {
		long long id = first_id(post(E.src, "/zsim/add-items",
					     "{\"account\":\"big@example.com\",\"n\":1,\"size\":%d,"
					     "\"folder\":\"%s\",\"date\":%lld}", 1500 + 100 * k,
					     k % 3 ? "Inbox" : "Archive/Old", T0 + k * 7 * DAY));
		if (k == 1)
			MSG_OLD = id;
		if (k == 2 + 2)
			MSG_DEL = id;
	}
	json_decref(post(E.src, "/zsim/add-folder", "{\"account\":\"big@example.com\",\"folder\":\"Projects/Empty\"}"));
	APPT = first_id(post(E.src, "/zsim/add-items",
			     "{\"account\":\"big@example.com\",\"type\":\"appointment\",\"n\":1,"
			     "\"uid\":\"long-appt\",\"subject\":\"two months\",\"date\":%lld,"
			     "\"start\":%lld,\"end\":%lld}", T0, T0 + 10 * DAY, T0 + 70 * DAY));
	json_decref(post(E.src, "/zsim/add-items",
			 "{\"account\":\"big@example.com\",\"type\":\"task\",\"n\":1,\"uid\":\"task-1\","
			 "\"subject\":\"a task\",\"date\":%lld}", T0 + 3 * DAY));
}

static void start(const char *attrs)
{
	memset(&E, 0, sizeof E);
	char *src = xasprintf(SRC_CFG, attrs);
	e2e_start(&E, src, DST_CFG);
	free(src);
	fill_big();
}

static void setup(void)
{
	start("");
}

/* the real attribute on the account (zimbra-attrs.xml: accountCosDomainInherited) */
static void setup_max_days(void)
{
	start("\"zimbraExportMaxDays\":\"30\"");
}

static void teardown(void)
{
	e2e_stop(&E);
}

static json_t *items(struct zsim *z, const char *account)
{
	json_t *j = zsim_items(z, account);
	ck_assert_msg(j != NULL, "items of %s", account);
	return j;
}

/* The identity of an item across servers: type, folder, and its digest or uid (or subject). */
static char *item_key(json_t *it)
{
	const char *type = json_string_value(json_object_get(it, "type"));
	const char *folder = json_string_value(json_object_get(it, "folder"));
	const char *k = json_string_value(json_object_get(it, "digest"));
	if (!k)
		k = json_string_value(json_object_get(it, "uid"));
	if (!k)
		k = json_string_value(json_object_get(it, "subject"));
	return xasprintf("%s|%s|%s", type ? type : "?", folder ? folder : "?", k ? k : "?");
}

static bool has_key(json_t *list, const char *key)
{
	size_t i;
	json_t *it;
	json_array_foreach(list, i, it) {
		char *k = item_key(it);
		bool eq = !strcmp(k, key);
		free(k);
		if (eq)
			return true;
	}
	return false;
}

static bool has_folder(json_t *box, const char *path)
{
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(box, "folders"), i, f)
		if (!strcmp(json_string_value(json_object_get(f, "path")), path))
			return true;
	return false;
}

/* Every item and folder of the source account is on the target, once. */
static void assert_same(const char *src, const char *dst)
{
	json_t *s = items(E.src, src), *d = items(E.dst, dst);
	json_t *si = json_object_get(s, "items"), *di = json_object_get(d, "items");
	size_t i;
	json_t *it;
	json_array_foreach(si, i, it) {
		char *k = item_key(it);
		ck_assert_msg(has_key(di, k), "%s: %s is not on the target", dst, k);
		free(k);
	}
	ck_assert_msg(json_array_size(di) == json_array_size(si), "%s: %zu items, the source has %zu",
		      dst, json_array_size(di), json_array_size(si));
	json_array_foreach(json_object_get(s, "folders"), i, it) {
		const char *p = json_string_value(json_object_get(it, "path"));
		ck_assert_msg(has_folder(d, p), "%s: folder %s is not on the target", dst, p);
	}
	json_decref(s);
	json_decref(d);
}

static int run(const char *extra_mig, const char *arg)
{
	struct tu_proc p;
	e2e_write_job(&E, 2, extra_mig, NULL);
	int rc = arg ? e2e_zmbatch(&p, 120, "run", "-c", E.job, arg, (char *)NULL)
		     : e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	tu_proc_release(&p);
	return rc;
}

/* Exports of `account` in the source's request log whose query contains `has` (NULL: any). */
static long long exports(json_t *ss, const char *account, const char *has, long status)
{
	json_t *r;
	size_t i;
	long long n = 0;
	json_array_foreach(json_object_get(ss, "requests"), i, r) {
		const char *m = json_string_value(json_object_get(r, "method"));
		const char *p = json_string_value(json_object_get(r, "path"));
		const char *q = json_string_value(json_object_get(r, "query"));
		const char *a = json_string_value(json_object_get(r, "account"));
		if (!m || strcmp(m, "GET") || !p || strncmp(p, "/service/home/", 14) || !a ||
		    strcmp(a, account))
			continue;
		if (has && (!q || !strstr(q, has)))
			continue;
		if (status && json_integer_value(json_object_get(r, "status")) != status)
			continue;
		n++;
	}
	return n;
}

/* stats imports.<account>.resolve.<r> */
static long long jnum_path(json_t *ds, const char *account, const char *r)
{
	return json_integer_value(json_object_get(json_object_get(json_object_get(json_object_get(
		ds, "imports"), account), "resolve"), r));
}

static long long db(const char *sql)
{
	return e2e_db_count(&E, sql);
}

#define BIG "(SELECT id FROM accounts WHERE account = 'big@example.com')"

/*
 * zimbraExportMaxDays = 30 on the account: the whole export is refused once
 * (HTTP 500), zimbraExportMaxDays is read, and the same claim goes on in
 * steps: the tree and the calendar by id, then windows of at most 30 days,
 * each overlapping the one before by 1000 ms.  Everything arrives, the empty
 * folder and the two-month appointment too; no attempt is used.
 */
START_TEST(test_export_max_days)
{
	bool stream = _i == 1;
	int rc = run(stream ? "transfer = \"stream\";" : NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	assert_same("big@example.com", "big@example.net");
	assert_same("tiny@example.org", "tiny@example.org");
	json_t *ss = zsim_stats(E.src);
	ck_assert_int_eq(exports(ss, "big@example.com", NULL, 500), 1);
	ck_assert_int_eq(exports(ss, "big@example.com", "list=", 0), 2);   /* tree, calendar */
	json_decref(ss);
	ck_assert_int_eq(db("SELECT attempts FROM accounts WHERE account = 'big@example.com'"), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done'"), 2);
	long long total = db("SELECT chunks_total FROM accounts WHERE account = 'big@example.com'");
	ck_assert_int_eq(db("SELECT chunks_done FROM accounts WHERE account = 'big@example.com'"), total);
	ck_assert_int_ge(total, 2 + 4);    /* 105 days in 30-day windows */
	ck_assert_int_eq(db("SELECT kind = 'tree' FROM chunks WHERE idx = 0 AND account_id = " BIG), 1);
	ck_assert_int_eq(db("SELECT kind = 'calendar' FROM chunks WHERE idx = 1 AND account_id = " BIG), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM chunks WHERE kind = 'window' AND (end_ms IS NULL OR"
			    " end_ms - start_ms > 30 * 86400000) AND account_id = " BIG), 0);
	/* consecutive windows overlap by the second after: loses */
	ck_assert_int_eq(db("SELECT count(*) FROM chunks a JOIN chunks b ON b.account_id = a.account_id"
			    " AND b.idx = a.idx + 1 WHERE a.kind = 'window' AND b.start_ms != a.end_ms - 1000"
			    " AND a.account_id = " BIG), 0);
	ck_assert_int_eq(db("SELECT count(*) FROM chunks WHERE done = 0"), 0);
	/* the tiny account was one whole export */
	ck_assert_int_eq(db("SELECT chunks_total FROM accounts WHERE account = 'tiny@example.org'"), 0);
	ck_assert(e2e_tree_contains(&E, "log", "zimbraExportMaxDays is 30"));
}
END_TEST

/*
 * migration.chunk = "20d", a crash right after the third step is recorded
 * done, then a run that goes on: the steps done are not exported again, and
 * the target ends with the source's content.
 */
START_TEST(test_chunks_resume_after_crash)
{
	char *steps = xasprintf("%s/steps", E.dir);
	e2e_write_job(&E, 1, "chunk = \"20d\";", NULL);
	/* a first run only to learn the step numbers (the same job, on a copy of the target state) */
	char *argv[] = { (char *)tu_zmbatch_hooks(), (char *)"run", (char *)"-c", E.job, NULL };
	char *env[3] = { NULL, NULL, NULL };
	if (asprintf(&env[0], "ZMBATCH_STEP_LOG=%s", steps) < 0)
		abort();
	struct tu_proc p;
	ck_assert_int_eq(tu_run(argv, env, 120, &p), 0);
	tu_proc_release(&p);
	char *log = tu_read(steps);
	ck_assert_ptr_nonnull(log);
	long k = 0, seen = 0;
	for (char *l = log; l && *l;) {
		char *nl = strchr(l, '\n');
		if (strstr(l, "chunk done") && (!nl || strstr(l, "chunk done") < nl) && ++seen == 3) {
			k = strtol(l, NULL, 10);
			break;
		}
		l = nl ? nl + 1 : NULL;
	}
	free(log);
	ck_assert_msg(k > 0, "no third 'chunk done' step");
	long long total = db("SELECT chunks_total FROM accounts WHERE account = 'big@example.com'");
	ck_assert_int_ge(total, 5);
	/* start again from nothing: empty targets, no state */
	json_decref(post(E.dst, "/zsim/delete-account", "{\"name\":\"big@example.net\"}"));
	json_decref(post(E.dst, "/zsim/add-account", "{\"name\":\"big@example.net\"}"));
	json_decref(post(E.dst, "/zsim/delete-account", "{\"name\":\"tiny@example.org\"}"));
	json_decref(post(E.dst, "/zsim/add-account", "{\"name\":\"tiny@example.org\"}"));
	unlink(E.db);
	char *wal = xasprintf("%s-wal", E.db);
	unlink(wal);
	free(wal);
	free(env[0]);
	if (asprintf(&env[0], "ZMBATCH_CRASH_AT=%ld", k) < 0)
		abort();
	ck_assert_int_eq(tu_run(argv, env, 120, &p), 99);
	tu_proc_release(&p);
	ck_assert_int_eq(db("SELECT chunks_done FROM accounts WHERE account = 'big@example.com'"), 3);
	json_decref(zsim_post(E.src, "/zsim/reset-stats", "{}"));
	ck_assert_int_eq(run("chunk = \"20d\";", NULL), 0);
	json_t *ss = zsim_stats(E.src);
	/* steps 1-3 (tree, calendar, first window) are not sent again */
	ck_assert_int_eq(exports(ss, "big@example.com", "list=", 0), 0);
	ck_assert_int_eq(exports(ss, "big@example.com", NULL, 0), total - 3);
	json_decref(ss);
	assert_same("big@example.com", "big@example.net");
	ck_assert_int_eq(db("SELECT chunks_done = chunks_total FROM accounts WHERE account = 'big@example.com'"), 1);
	free(env[0]);
	free(steps);
}
END_TEST

/*
 * migration.chunk_bytes = "8k": big (about 34 kB) is cut into windows of
 * about 8 kB worth of its 105 days, the last one open; tiny (4 kB) is one
 * whole export.
 */
START_TEST(test_chunk_bytes)
{
	ck_assert_int_eq(run("chunk_bytes = \"8k\";", NULL), 0);
	assert_same("big@example.com", "big@example.net");
	assert_same("tiny@example.org", "tiny@example.org");
	long long wins = db("SELECT count(*) FROM chunks WHERE kind = 'window' AND account_id = " BIG);
	ck_assert_msg(wins >= 4, "%lld windows", wins);
	ck_assert_int_eq(db("SELECT count(*) FROM chunks WHERE kind = 'window' AND end_ms IS NULL AND"
			    " account_id = " BIG), 1);
	ck_assert_int_eq(db("SELECT end_ms IS NULL FROM chunks WHERE account_id = " BIG
			    " ORDER BY idx DESC LIMIT 1"), 1);
	ck_assert_int_eq(db("SELECT chunks_total FROM accounts WHERE account = 'tiny@example.org'"), 0);
}
END_TEST

/*
 * A delta pass after a whole first pass: new mail in a new folder, an empty
 * new folder, an edited appointment and a new task arrive; a move and a
 * deletion are not carried, and the account's event says so.
 */
START_TEST(test_delta_carries)
{
	ck_assert_int_eq(run(NULL, NULL), 0);
	assert_same("big@example.com", "big@example.net");
	ck_assert_int_eq(db("SELECT chunks_total FROM accounts WHERE account = 'big@example.com'"), 0);
	/* changes on the source */
	json_decref(post(E.src, "/zsim/add-folder", "{\"account\":\"big@example.com\",\"folder\":\"Later/Empty\"}"));
	json_decref(post(E.src, "/zsim/add-items", "{\"account\":\"big@example.com\",\"n\":2,"
			 "\"folder\":\"Fresh/Sub\"}"));
	json_decref(post(E.src, "/zsim/edit-item", "{\"account\":\"big@example.com\",\"id\":%lld,"
			 "\"subject\":\"moved to Friday\"}", APPT));
	json_decref(post(E.src, "/zsim/add-items", "{\"account\":\"big@example.com\",\"type\":\"task\","
			 "\"n\":1,\"uid\":\"task-2\",\"subject\":\"new task\",\"date\":%lld}", T0));
	json_decref(post(E.src, "/zsim/move-item", "{\"account\":\"big@example.com\",\"id\":%lld,"
			 "\"folder\":\"Moved\"}", MSG_OLD));
	json_decref(post(E.src, "/zsim/delete-item", "{\"account\":\"big@example.com\",\"id\":%lld}", MSG_DEL));
	ck_assert_int_eq(run(NULL, "--delta"), 0);

	json_t *s = items(E.src, "big@example.com"), *d = items(E.dst, "big@example.net");
	json_t *di = json_object_get(d, "items");
	ck_assert(has_folder(d, "Later/Empty"));
	ck_assert(has_folder(d, "Fresh/Sub"));
	size_t i;
	json_t *it;
	long long fresh = 0, tasks = 0;
	bool appt_edited = false;
	json_array_foreach(di, i, it) {
		const char *f = json_string_value(json_object_get(it, "folder"));
		const char *type = json_string_value(json_object_get(it, "type"));
		const char *subj = json_string_value(json_object_get(it, "subject"));
		if (f && !strcmp(f, "Fresh/Sub"))
			fresh++;
		if (type && !strcmp(type, "task"))
			tasks++;
		if (type && !strcmp(type, "appointment") && subj && !strcmp(subj, "moved to Friday"))
			appt_edited = true;
	}
	ck_assert_int_eq(fresh, 2);
	ck_assert_int_eq(tasks, 2);
	ck_assert_msg(appt_edited, "the edited appointment was not carried (resolve=modify)");
	/* not carried: the moved message is still in Inbox and not in Moved; the deleted one stays */
	long long in_moved = 0;
	json_array_foreach(di, i, it) {
		const char *f = json_string_value(json_object_get(it, "folder"));
		if (f && !strcmp(f, "Moved"))
			in_moved++;
	}
	ck_assert_int_eq(in_moved, 0);
	ck_assert_int_eq((long long)json_array_size(di), (long long)json_array_size(json_object_get(s, "items")) + 1);
	json_decref(s);
	json_decref(d);
	ck_assert_int_ge(db("SELECT count(*) FROM events WHERE message LIKE '%not carried: messages moved%'"
			    " AND account_id = " BIG), 1);
	/* the calendar went with resolve=modify, the rest with skip */
	json_t *ds = zsim_stats(E.dst);
	ck_assert_int_ge(jnum_path(ds, "big@example.net", "modify"), 1);
	json_decref(ds);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_chunks");
	TCase *tc = tcase_create("max_days");
	tcase_add_checked_fixture(tc, setup_max_days, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_loop_test(tc, test_export_max_days, 0, 2);
	suite_add_tcase(s, tc);
	tc = tcase_create("chunks");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_chunks_resume_after_crash);
	tcase_add_test(tc, test_chunk_bytes);
	tcase_add_test(tc, test_delta_carries);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
