/*
 * check_e2e_cutover.c - the `cutover` stage (issue 15) against two simulated
 * servers (tests/zsim: ModifyAccountRequest as the real handler, REST that
 * refuses an account in maintenance and lets an admin through `locked`).
 *
 * Source example.com: a1..a4 (a1 with a zimbraMailTransport already set),
 * target example.net: the same, empty and `locked` (pre-staged).  The job has
 * a migrate stage and a cutover stage.
 *
 *   full          migrate; mail delivered to a1 afterwards; cutover: sources
 *                 locked, both transports lmtp:<target mail host>:7025, targets
 *                 active, the new mail on the target (final delta), rows done
 *                 with the previous values, events in --history, counts in
 *                 report/status; a rerun sends no ModifyAccountRequest;
 *                 --dry-run before it changes nothing; --rollback restores the
 *                 recorded values (a1's old transport, unset ones unset,
 *                 targets locked again), a second --rollback sends nothing
 *   batches       batch = 2 and source_status = "maintenance": the first run
 *                 cuts over 2 (exit 75, the stage stays pending), the second
 *                 the other 2 (exit 0); sources end in maintenance
 *   not_eligible  an account that failed migration and one whose verification
 *                 failed are not cut over (no change on either server), named
 *                 in the output; the others are
 *   keys          bad keys fail `check` with file:line
 *   crash         every durable step of a cutover run (CRASH_AT=k, k = 1..N,
 *                 on a copy of the migrated state DB and reset servers): the
 *                 run that follows the crash ends in the same state as an
 *                 uninterrupted one (statuses, transports, rows, previous values)
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct e2e E;
static int NACCT = 4;
#define OLD_TRANSPORT "lmtp:old.example.com:7025"
/* the target simulator is another mail host than the source (zsim.local) and answers
 * GetServerRequest with its zimbraLmtpBindPort: the default template lmtp:%h:%p */
#define DST_HOST "mbox2.example.net"
#define NEW_TRANSPORT "lmtp:" DST_HOST ":7125"
static const char *EXTRA_MIG = "";   /* more keys of the migration group (write_job) */

static char *acct_json(const char *dom, int n, bool target)
{
	struct buf b = BUF_INIT;
	for (int i = 1; i <= n; i++) {
		if (target)
			buf_addf(&b, "%s{\"name\":\"a%d@%s\",\"status\":\"locked\"}", i > 1 ? "," : "", i, dom);
		else
			buf_addf(&b, "%s{\"name\":\"a%d@%s\",\"items\":4,\"item_size\":[300,900],"
				 "\"folders\":[\"Inbox\",\"Sent\"]%s}", i > 1 ? "," : "", i, dom,
				 i == 1 ? ",\"attrs\":{\"zimbraMailTransport\":\"" OLD_TRANSPORT "\"}" : "");
	}
	return buf_detach(&b);
}

static void start(int n)
{
	memset(&E, 0, sizeof E);
	NACCT = n;
	EXTRA_MIG = "";
	char *sa = acct_json("example.com", n, false), *da = acct_json("example.net", n, true);
	char *s = xasprintf("{\"name\":\"src\",\"domains\":[{\"name\":\"example.com\",\"accounts\":[%s]}]}", sa);
	char *d = xasprintf("{\"name\":\"dst\",\"mailhost\":\"" DST_HOST "\",\"lmtp_port\":7125,"
			    "\"domains\":[{\"name\":\"example.net\",\"accounts\":[%s]}]}", da);
	e2e_start(&E, s, d);
	free(sa);
	free(da);
	free(s);
	free(d);
}

static void setup(void)
{
	start(4);
}

static void setup2(void)
{
	start(2);
}

static void teardown(void)
{
	e2e_stop(&E);
}

/* job: migrate + cutover (stage keys `cut`, may be ""). */
static void write_job(const char *cut)
{
	char *text = xasprintf(
		"job = \"cutover\";\n"
		"source = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/src.pw\"; ca_file = \"%s\"; };\n"
		"target = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/dst.pw\"; ca_file = \"%s\"; };\n"
		"migration = {\n"
		"  domains = [ \"example.com\" ]; domain_map = [ \"example.com=example.net\" ];\n"
		"  threads = 1; working_dir = \"%s/work\";\n"
		"  retry_backoff = \"1s\"; retry_backoff_max = \"2s\"; max_attempts = 2;\n"
		"  maintenance_wait = \"3s\"; %s\n"
		"};\n"
		"stages = (\n"
		"  { name = \"migrate\"; type = \"migrate\"; },\n"
		"  { name = \"cutover\"; type = \"cutover\"; %s }\n"
		");\n"
		"state = { db = \"%s\"; };\n"
		"log = { dir = \"%s/log\"; level = \"debug\"; };\n",
		E.src->port, E.dir, E.pki->ca_file, E.dst->port, E.dir, E.pki->ca_file, E.dir, EXTRA_MIG, cut,
		E.db, E.dir);
	free(E.job);
	E.job = tu_write(E.dir, "job.cfg", text, 0600);
	free(text);
}

static long long db(const char *sql)
{
	return e2e_db_count(&E, sql);
}

static void db_exec(const char *sql)
{
	sqlite3 *h = NULL;
	char *msg = NULL;
	ck_assert_int_eq(sqlite3_open(E.db, &h), SQLITE_OK);
	sqlite3_busy_timeout(h, 10000);
	ck_assert_msg(sqlite3_exec(h, sql, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", sql, msg ? msg : "");
	sqlite3_close(h);
}

/* zmbatch ARGS... (NULL-terminated): exit code; output (stdout + stderr) in *out if wanted. */
static int zmb(char **out, ...)
{
	char *argv[12];
	int n = 0;
	argv[n++] = (char *)tu_zmbatch();
	va_list ap;
	va_start(ap, out);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && n < 11)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	struct tu_proc p;
	int rc = tu_run(argv, NULL, 120, &p);
	if (out)
		*out = xasprintf("%s%s", p.out ? p.out : "", p.err ? p.err : "");
	if (rc != 0 && rc != 75)
		fprintf(stderr, "---- zmbatch %s exited %d\n%s\n%s\n", argv[1], rc, p.out, p.err);
	tu_proc_release(&p);
	return rc;
}

static json_t *sim_acct(json_t *stats, const char *name)
{
	json_t *a = json_object_get(json_object_get(stats, "accounts"), name);
	ck_assert_msg(a != NULL, "no account %s in stats", name);
	return a;
}

static const char *status_of(json_t *stats, const char *name)
{
	return json_string_value(json_object_get(sim_acct(stats, name), "status"));
}

/* zimbraMailTransport, "" when unset */
static const char *transport_of(json_t *stats, const char *name)
{
	const char *v = json_string_value(json_object_get(json_object_get(sim_acct(stats, name), "attrs"),
							  "zimbraMailTransport"));
	return v ? v : "";
}

static long long modifies(struct zsim *z)
{
	json_t *s = zsim_stats(z);
	long long n = zsim_stat_int(s, "soap/ModifyAccountRequest");
	json_decref(s);
	return n;
}

static void reset_stats(void)
{
	json_decref(zsim_post(E.src, "/zsim/reset-stats", "{}"));
	json_decref(zsim_post(E.dst, "/zsim/reset-stats", "{}"));
}

static char *src_name(int i)
{
	return xasprintf("a%d@example.com", i);
}

static char *dst_name(int i)
{
	return xasprintf("a%d@example.net", i);
}

/* Account i cut over (or not): both sides as the cutover leaves them. */
static void assert_cut(int i, bool cut, const char *source_status)
{
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	char *s = src_name(i), *d = dst_name(i);
	if (cut) {
		ck_assert_str_eq(status_of(ss, s), source_status);
		ck_assert_str_eq(transport_of(ss, s), NEW_TRANSPORT);
		ck_assert_str_eq(transport_of(ds, d), NEW_TRANSPORT);
		ck_assert_str_eq(status_of(ds, d), "active");
	} else {
		ck_assert_str_eq(status_of(ss, s), "active");
		ck_assert_str_eq(transport_of(ss, s), i == 1 ? OLD_TRANSPORT : "");
		ck_assert_str_eq(transport_of(ds, d), "");
		ck_assert_str_eq(status_of(ds, d), "locked");
	}
	free(s);
	free(d);
	json_decref(ss);
	json_decref(ds);
}

static void migrate_only(void)
{
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, "--stage", "migrate", (char *)NULL), 0);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'done'"), NACCT);
}

START_TEST(full)
{
	write_job("");
	migrate_only();
	/* mail delivered to a1 on the source after the migrate pass */
	json_decref(zsim_post(E.src, "/zsim/add-items", "{\"account\":\"a1@example.com\",\"n\":3}"));

	/* --dry-run: the plan, no change anywhere */
	reset_stats();
	char *out = NULL;
	ck_assert_int_eq(zmb(&out, "run", "-c", E.job, "--dry-run", (char *)NULL), 0);
	ck_assert_msg(tu_contains(out, "the next batch would cut over 4 of 4"), "%s", out);
	free(out);
	ck_assert_int_eq(modifies(E.src) + modifies(E.dst), 0);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover"), 0);
	for (int i = 1; i <= NACCT; i++)
		assert_cut(i, false, NULL);

	ck_assert_int_eq(zmb(&out, "run", "-c", E.job, (char *)NULL), 0);
	ck_assert_msg(tu_contains(out, "a1@example.com -> a1@example.net: cut over"), "%s", out);
	free(out);
	for (int i = 1; i <= NACCT; i++)
		assert_cut(i, true, "maintenance");
	/* the final delta carried the new mail: every pair equal again */
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	for (int i = 1; i <= NACCT; i++) {
		char *s = src_name(i), *d = dst_name(i);
		ck_assert_str_eq(zsim_fingerprint(ss, s), zsim_fingerprint(ds, d));
		free(s);
		free(d);
	}
	ck_assert_int_eq(json_integer_value(json_object_get(sim_acct(ds, "a1@example.net"), "items")), 4 + 3);
	json_decref(ss);
	json_decref(ds);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'done' AND error IS NULL"), NACCT);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover c JOIN accounts a ON a.id = c.account_id"
			    " WHERE a.account = 'a1@example.com' AND c.prev_source_status = 'active' AND"
			    " c.prev_source_transport = '" OLD_TRANSPORT "' AND c.prev_target_status ="
			    " 'locked' AND c.prev_target_transport = '' AND c.target_host = '" DST_HOST "'"),
			 1);
	ck_assert_int_eq(db("SELECT count(*) FROM stages WHERE name = 'cutover' AND state = 'done'"), 1);

	/* history and reports */
	ck_assert_int_eq(zmb(&out, "accounts", "-c", E.job, "--history", "a2@example.com", (char *)NULL), 0);
	ck_assert_msg(tu_contains(out, "cutover: source account locked") &&
		      tu_contains(out, "cutover: final delta pass done") &&
		      tu_contains(out, "cutover: target account active"), "%s", out);
	free(out);
	ck_assert_int_eq(zmb(&out, "report", "-c", E.job, "--format", "json", (char *)NULL), 0);
	json_t *rep = json_loads(out, 0, NULL);
	ck_assert_msg(rep != NULL, "%s", out);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(rep, "cutover"), "done")), NACCT);
	json_decref(rep);
	free(out);
	ck_assert_int_eq(zmb(&out, "report", "-c", E.job, "--format", "prom", (char *)NULL), 0);
	ck_assert_msg(tu_contains(out, "zmbatch_cutover_accounts{step=\"done\"} 4"), "%s", out);
	free(out);
	ck_assert_int_eq(zmb(&out, "status", "-c", E.job, (char *)NULL), 0);
	ck_assert_msg(tu_contains(out, "cutover:    4 done, 0 unfinished"), "%s", out);
	free(out);

	/* a rerun changes nothing */
	reset_stats();
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, (char *)NULL), 0);
	ck_assert_int_eq(modifies(E.src) + modifies(E.dst), 0);
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, "--stage", "cutover", (char *)NULL), 0);
	ck_assert_int_eq(modifies(E.src) + modifies(E.dst), 0);

	/* --rollback: a dry run first, then the recorded values back, then nothing more to do */
	ck_assert_int_eq(zmb(&out, "run", "-c", E.job, "--rollback", "--dry-run", (char *)NULL), 0);
	ck_assert_msg(tu_contains(out, "rollback would restore 4 account(s)"), "%s", out);
	free(out);
	ck_assert_int_eq(modifies(E.src) + modifies(E.dst), 0);
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, "--rollback", "--delta", (char *)NULL), 64);
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, "--rollback", (char *)NULL), 0);
	for (int i = 1; i <= NACCT; i++)
		assert_cut(i, false, NULL);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'rolled_back'"), NACCT);
	ck_assert_int_eq(db("SELECT count(*) FROM stages WHERE name = 'cutover' AND state = 'pending'"), 1);
	reset_stats();
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, "--rollback", (char *)NULL), 0);
	ck_assert_int_eq(modifies(E.src) + modifies(E.dst), 0);
	ck_assert_int_eq(zmb(&out, "accounts", "-c", E.job, "--history", "a1@example.com", (char *)NULL), 0);
	ck_assert_msg(tu_contains(out, "cutover rolled back"), "%s", out);
	free(out);
	/* rolled_back is terminal: an ordinary run does not cut them over again */
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, "--stage", "cutover", (char *)NULL), 0);
	ck_assert_int_eq(modifies(E.src) + modifies(E.dst), 0);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'rolled_back'"), NACCT);
	/* until `reset ACCOUNT`: its row goes, the account is migrated and cut over again */
	ck_assert_int_eq(zmb(NULL, "reset", "-c", E.job, "a1@example.com", (char *)NULL), 0);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover c JOIN accounts a ON a.id = c.account_id"
			    " WHERE a.account = 'a1@example.com'"), 0);
}
END_TEST

START_TEST(batches)
{
	write_job("batch = 2; source_status = \"locked\";");
	migrate_only();
	char *out = NULL;
	ck_assert_int_eq(zmb(&out, "run", "-c", E.job, (char *)NULL), 75);
	ck_assert_msg(tu_contains(out, "batch 1: 2 account(s)") &&
		      tu_contains(out, "one cutover batch per run"), "%s", out);
	free(out);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'done'"), 2);
	assert_cut(1, true, "locked");
	assert_cut(2, true, "locked");
	assert_cut(3, false, NULL);
	assert_cut(4, false, NULL);
	ck_assert_int_eq(db("SELECT count(*) FROM stages WHERE name = 'cutover' AND state = 'pending'"), 1);
	ck_assert_int_eq(zmb(&out, "run", "-c", E.job, (char *)NULL), 0);
	ck_assert_msg(tu_contains(out, "batch 2: 2 account(s)"), "%s", out);
	free(out);
	for (int i = 1; i <= NACCT; i++)
		assert_cut(i, true, "locked");
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'done' AND batch = 2"), 2);
}
END_TEST

START_TEST(not_eligible)
{
	write_job("");
	/* a3's target is missing: its migration fails */
	json_decref(zsim_post(E.dst, "/zsim/delete-account", "{\"name\":\"a3@example.net\"}"));
	ck_assert_int_ne(zmb(NULL, "run", "-c", E.job, "--stage", "migrate", (char *)NULL), 0);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'failed' AND"
			    " account = 'a3@example.com'"), 1);
	/* a4's verification failed (as `zmbatch verify` records it) */
	db_exec("UPDATE accounts SET verify = 'mismatch', verify_detail = 'Inbox: 3 of 4'"
		" WHERE account = 'a4@example.com'");
	reset_stats();
	char *out = NULL;
	/* an account waiting in the queue: refused before any change (75), not after the locks */
	db_exec("UPDATE accounts SET state = 'pending' WHERE account = 'a3@example.com'");
	ck_assert_int_eq(zmb(&out, "run", "-c", E.job, "--stage", "cutover", (char *)NULL), 75);
	ck_assert_msg(tu_contains(out, "1 account(s) wait in the migration queue"), "%s", out);
	free(out);
	ck_assert_int_eq(modifies(E.src) + modifies(E.dst), 0);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover"), 0);
	db_exec("UPDATE accounts SET state = 'failed' WHERE account = 'a3@example.com'");
	/* exit 1 and the stage not done while accounts are left out */
	ck_assert_int_eq(zmb(&out, "run", "-c", E.job, "--stage", "cutover", (char *)NULL), 1);
	ck_assert_msg(tu_contains(out, "not cut over: 1 account(s) that failed migration, 1 that failed "
				  "verification"), "%s", out);
	free(out);
	ck_assert_int_eq(db("SELECT count(*) FROM stages WHERE name = 'cutover' AND state = 'done'"), 0);
	assert_cut(1, true, "maintenance");
	assert_cut(2, true, "maintenance");
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	ck_assert_str_eq(status_of(ss, "a3@example.com"), "active");
	ck_assert_str_eq(status_of(ss, "a4@example.com"), "active");
	ck_assert_str_eq(transport_of(ss, "a4@example.com"), "");
	ck_assert_str_eq(status_of(ds, "a4@example.net"), "locked");
	ck_assert_int_eq(zsim_stat_int(ss, "modify/a3@example.com/zimbraAccountStatus"), 0);
	ck_assert_int_eq(zsim_stat_int(ss, "modify/a4@example.com/zimbraAccountStatus"), 0);
	json_decref(ss);
	json_decref(ds);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover c JOIN accounts a ON a.id = c.account_id"
			    " WHERE a.account IN ('a3@example.com', 'a4@example.com')"), 0);
}
END_TEST

START_TEST(keys)
{
	const char *bad[][2] = {
		{ "batch = 0;", "key 'batch'" },
		{ "source_status = \"closed\";", "key 'source_status'" },
		{ "source_transport = \"lmtp:%h 7025\";", "key 'source_transport'" },
		{ "target_transport = 7;", "target_transport" },
		{ "colour = \"red\";", "key 'colour'" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		write_job(bad[i][0]);
		char *out = NULL;
		int rc = zmb(&out, "run", "-c", E.job, "--dry-run", (char *)NULL);
		ck_assert_msg(rc == 78, "%s: exit %d", bad[i][0], rc);
		char *where = xasprintf("job.cfg:14: stage 'cutover': ");
		ck_assert_msg(tu_contains(out, where) && tu_contains(out, bad[i][1]), "%s: %s", bad[i][0], out);
		free(where);
		free(out);
	}
}
END_TEST

/* ---- crash enumeration ---- */

static char *hooks_run(long k, const char *steps)
{
	return xasprintf("%d", e2e_hooks_run(&E, k, steps, 120));
}

static void copy_file(const char *from, const char *to)
{
	unlink(to);
	char *t = tu_read(from);
	if (!t)
		return;
	FILE *f = fopen(from, "rb");
	FILE *g = fopen(to, "wb");
	ck_assert(f && g);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, n, g), n);
	fclose(f);
	fclose(g);
	free(t);
}

static void db_save(bool restore)
{
	const char *sfx[] = { "", "-wal" };
	for (int i = 0; i < 2; i++) {
		char *a = xasprintf("%s%s", E.db, sfx[i]), *b = xasprintf("%s.saved%s", E.db, sfx[i]);
		if (restore)
			copy_file(b, a);
		else
			copy_file(a, b);
		free(a);
		free(b);
	}
	char *shm = xasprintf("%s-shm", E.db);
	if (restore)
		unlink(shm);
	free(shm);
}

/* Both servers back as before the cutover (what the rollback would do, sent directly). */
static void servers_reset(void)
{
	struct zsim *z[2] = { E.src, E.dst };
	for (int side = 0; side < 2; side++) {
		char *tok = zsim_login(z[side]);
		ck_assert_ptr_nonnull(tok);
		json_t *st = zsim_stats(z[side]);
		for (int i = 1; i <= NACCT; i++) {
			char *name = side ? dst_name(i) : src_name(i);
			const char *id = json_string_value(json_object_get(sim_acct(st, name), "id"));
			const char *tr = side == 0 && i == 1 ? OLD_TRANSPORT : "";
			json_t *req = json_pack("{s:{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}]}}",
						"ModifyAccountRequest", "_jsns", "urn:zimbraAdmin", "id", id,
						"a", "n", "zimbraAccountStatus", "_content",
						side ? "locked" : "active", "n", "zimbraMailTransport",
						"_content", tr);
			json_t *reply = NULL;
			ck_assert_int_eq(zsim_soap(z[side], tok, req, &reply), 200);
			json_decref(reply);
			free(name);
		}
		json_decref(st);
		free(tok);
	}
	reset_stats();
}

/* What the end state of a cutover is, as text (servers + rows). */
static char *end_state(void)
{
	struct buf b = BUF_INIT;
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	for (int i = 1; i <= NACCT; i++) {
		char *s = src_name(i), *d = dst_name(i);
		buf_addf(&b, "%s %s %s | %s %s %s\n", s, status_of(ss, s), transport_of(ss, s), d,
			 status_of(ds, d), transport_of(ds, d));
		free(s);
		free(d);
	}
	json_decref(ss);
	json_decref(ds);
	sqlite3 *h = NULL;
	sqlite3_stmt *q = NULL;
	ck_assert_int_eq(sqlite3_open(E.db, &h), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT a.account, a.state, c.step, c.batch,"
					    " coalesce(c.error, '-'), c.prev_source_status, c.prev_target_status,"
					    " c.prev_source_transport, c.prev_target_transport, c.source_transport,"
					    " c.target_transport FROM cutover c JOIN accounts a ON a.id ="
					    " c.account_id ORDER BY a.seq", -1, &q, NULL), SQLITE_OK);
	while (sqlite3_step(q) == SQLITE_ROW) {
		for (int c = 0; c < 11; c++)
			buf_addf(&b, "%s ", (const char *)sqlite3_column_text(q, c));
		buf_adds(&b, "\n");
	}
	sqlite3_finalize(q);
	sqlite3_close(h);
	return buf_detach(&b);
}

/* One ModifyAccountRequest by the admin (a hand change): attr of account `name` on z. */
static void hand_modify(struct zsim *z, const char *name, const char *attr, const char *value)
{
	char *tok = zsim_login(z);
	ck_assert_ptr_nonnull(tok);
	json_t *st = zsim_stats(z);
	const char *id = json_string_value(json_object_get(sim_acct(st, name), "id"));
	json_t *req = json_pack("{s:{s:s, s:s, s:[{s:s, s:s}]}}", "ModifyAccountRequest", "_jsns",
				"urn:zimbraAdmin", "id", id, "a", "n", attr, "_content", value);
	json_t *reply = NULL;
	ck_assert_int_eq(zsim_soap(z, tok, req, &reply), 200);
	json_decref(reply);
	json_decref(st);
	free(tok);
}

static long long modify_count(struct zsim *z, const char *name, const char *attr)
{
	json_t *st = zsim_stats(z);
	char *k = xasprintf("modify/%s/%s", name, attr);
	long long n = zsim_stat_int(st, k);
	free(k);
	json_decref(st);
	return n;
}

/* migration.mail_transport is set by every migrate import, never by the cutover's final pass */
START_TEST(final_pass_transport)
{
	EXTRA_MIG = "mail_transport = \"smtp:elsewhere.example.net:25\";";
	write_job("");
	migrate_only();
	json_t *ds = zsim_stats(E.dst);
	ck_assert_str_eq(transport_of(ds, "a1@example.net"), "smtp:elsewhere.example.net:25");
	json_decref(ds);
	json_decref(zsim_post(E.src, "/zsim/add-items", "{\"account\":\"a1@example.com\",\"n\":2}"));
	/* a4's source closed before the cutover: skipped with a warning, its target not made active */
	hand_modify(E.src, "a4@example.com", "zimbraAccountStatus", "closed");
	reset_stats();
	char *out = NULL;
	ck_assert_int_eq(zmb(&out, "run", "-c", E.job, "--stage", "cutover", (char *)NULL), 0);
	ck_assert_msg(!tu_contains(out, "changed after 'routed'"), "%s", out);
	ck_assert_msg(tu_contains(out, "warning: a4@example.com: not cut over: the source account's "
				  "status is 'closed'"), "%s", out);
	free(out);
	json_t *ss = zsim_stats(E.src);
	ds = zsim_stats(E.dst);
	ck_assert_str_eq(status_of(ss, "a4@example.com"), "closed");
	ck_assert_str_eq(status_of(ds, "a4@example.net"), "locked");
	ck_assert_str_eq(transport_of(ds, "a4@example.net"), "smtp:elsewhere.example.net:25");
	json_decref(ss);
	json_decref(ds);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'skipped'"), 1);
	for (int i = 1; i <= NACCT - 1; i++) {
		assert_cut(i, true, "maintenance");
		char *d = dst_name(i);
		/* once, at 'routed': the final pass did not set it back, the check did not need to */
		ck_assert_int_eq(modify_count(E.dst, d, "zimbraMailTransport"), 1);
		free(d);
	}
}
END_TEST

/* The final pass fails for a2 (its import refused): a2 rolled back and failed, the others done */
START_TEST(final_pass_fails)
{
	write_job("");
	migrate_only();
	json_decref(zsim_post(E.src, "/zsim/add-items", "{\"account\":\"a2@example.com\",\"n\":2}"));
	json_decref(zsim_post(E.dst, "/zsim/knobs", "{\"faults\":[{\"op\":\"import\",\"account\":"
			      "\"a2@example.net\",\"action\":\"status\",\"status\":500,\"count\":-1}]}"));
	char *out = NULL;
	ck_assert_int_eq(zmb(&out, "run", "-c", E.job, "--stage", "cutover", (char *)NULL), 1);
	ck_assert_msg(tu_contains(out, "a2@example.com: cutover failed: rolling it back"), "%s", out);
	free(out);
	assert_cut(1, true, "maintenance");
	assert_cut(2, false, NULL);
	assert_cut(3, true, "maintenance");
	assert_cut(4, true, "maintenance");
	ck_assert_int_eq(db("SELECT count(*) FROM cutover c JOIN accounts a ON a.id = c.account_id WHERE"
			    " a.account = 'a2@example.com' AND c.step = 'failed' AND c.error LIKE"
			    " 'a2@example.com: %final delta pass%rolled back%'"), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'done'"), 3);
	ck_assert_int_eq(db("SELECT count(*) FROM stages WHERE name = 'cutover' AND state = 'done'"), 0);
	/* the batch is over: a later run is not held up by a2 and does not take it again */
	json_decref(zsim_post(E.dst, "/zsim/knobs", "{\"faults\":[]}"));
	reset_stats();
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, "--stage", "cutover", (char *)NULL), 1);
	ck_assert_int_eq(modifies(E.src) + modifies(E.dst), 0);
	/* reset a2: migrated again, then cut over by the next run */
	ck_assert_int_eq(zmb(NULL, "reset", "-c", E.job, "a2@example.com", (char *)NULL), 0);
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, (char *)NULL), 0);
	assert_cut(2, true, "maintenance");
	ck_assert_int_eq(db("SELECT count(*) FROM stages WHERE name = 'cutover' AND state = 'done'"), 1);
}
END_TEST

/* A value changed by hand after the cutover is not clobbered by --rollback: a conflict */
START_TEST(rollback_conflict)
{
	write_job("");
	migrate_only();
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, (char *)NULL), 0);
	hand_modify(E.src, "a2@example.com", "zimbraMailTransport", "smtp:hand.example.com:25");
	hand_modify(E.dst, "a3@example.net", "zimbraAccountStatus", "closed");
	char *out = NULL;
	/* --account: only a4 first */
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, "--account", "a4@example.com", (char *)NULL), 64);
	ck_assert_int_eq(zmb(&out, "run", "-c", E.job, "--rollback", "--account", "a4@example.com",
			     (char *)NULL), 0);
	ck_assert_msg(tu_contains(out, "rollback: 1 account(s)"), "%s", out);
	free(out);
	assert_cut(4, false, NULL);
	assert_cut(1, true, "maintenance");
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'rolled_back'"), 1);
	ck_assert_int_eq(zmb(&out, "run", "-c", E.job, "--rollback", (char *)NULL), 1);
	char *want = xasprintf("a2@example.com: conflict on source 127.0.0.1:%d: zimbraMailTransport is "
			       "'smtp:hand.example.com:25'", E.src->port);
	ck_assert_msg(tu_contains(out, want), "%s", out);
	free(want);
	want = xasprintf("a3@example.com: conflict on target 127.0.0.1:%d: zimbraAccountStatus is "
			 "'closed'", E.dst->port);
	ck_assert_msg(tu_contains(out, want), "%s", out);
	free(want);
	free(out);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	ck_assert_str_eq(transport_of(ss, "a2@example.com"), "smtp:hand.example.com:25");
	ck_assert_str_eq(status_of(ss, "a2@example.com"), "active");    /* the rest restored */
	ck_assert_str_eq(status_of(ds, "a3@example.net"), "closed");
	ck_assert_str_eq(transport_of(ds, "a3@example.net"), "");
	json_decref(ss);
	json_decref(ds);
	assert_cut(1, false, NULL);
	assert_cut(4, false, NULL);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'rolled_back'"), NACCT);
}
END_TEST

/* --delta and --retry-failed after a cutover leave the cut-over accounts out */
START_TEST(delta_after_cutover)
{
	write_job("batch = 2;");
	migrate_only();
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, (char *)NULL), 75);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'done'"), 2);
	reset_stats();
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, "--stage", "migrate", "--delta", (char *)NULL), 0);
	ck_assert_int_eq(db("SELECT count(*) FROM events WHERE message = 'delta pass: 2 done account(s)"
			    " queued again'"), 1);
	json_t *ss = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_acct(ss, "exports", "a1@example.com", "count"), 0);
	ck_assert_int_eq(zsim_stat_acct(ss, "exports", "a2@example.com", "count"), 0);
	ck_assert_int_gt(zsim_stat_acct(ss, "exports", "a3@example.com", "count"), 0);
	json_decref(ss);
	/* --retry-failed: a cut-over account (failed since, say by a verify) is not requeued */
	db_exec("UPDATE accounts SET state = 'failed' WHERE account = 'a1@example.com'");
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, "--stage", "migrate", "--retry-failed", (char *)NULL),
			 1);
	ck_assert_int_eq(db("SELECT count(*) FROM accounts WHERE state = 'failed' AND"
			    " account = 'a1@example.com'"), 1);
	ss = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_acct(ss, "exports", "a1@example.com", "count"), 0);
	json_decref(ss);
}
END_TEST

/* A crash in the middle of a batch, then --rollback: every account back, the source unlocked */
START_TEST(crash_then_rollback)
{
	write_job("");
	migrate_only();
	/* the step to crash at, from an uncrashed run's step log (its numbers move when the
	 * run gains durable steps): the fifth "cutover modify", i.e. a1 locked and routed
	 * (lock, source transport, target transport), a2 locked and its source transport
	 * just set, not recorded yet; a3, a4 selected */
	db_save(false);
	char *steps = xasprintf("%s/steps.log", E.dir);
	char *r = hooks_run(0, steps);
	ck_assert_str_eq(r, "0");
	free(r);
	char *log = tu_read(steps);
	long k = 0, line = 0, mods = 0;
	char *save = NULL;
	for (char *l = strtok_r(log, "\n", &save); l && !k; l = strtok_r(NULL, "\n", &save)) {
		line++;
		if (strstr(l, "cutover modify") && ++mods == 5)
			k = line;
	}
	ck_assert_msg(k > 0, "no fifth cutover modify in the step log (%ld lines)", line);
	free(log);
	free(steps);
	db_save(true);
	servers_reset();
	r = hooks_run(k, NULL);
	ck_assert_str_eq(r, "99");
	free(r);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'routed'"), 1);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'locked'"), 1);
	json_t *ss = zsim_stats(E.src);
	ck_assert_str_eq(transport_of(ss, "a2@example.com"), NEW_TRANSPORT);
	json_decref(ss);
	ck_assert_int_eq(zmb(NULL, "run", "-c", E.job, "--rollback", (char *)NULL), 0);
	for (int i = 1; i <= NACCT; i++)
		assert_cut(i, false, NULL);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'rolled_back'"), 2);
	ck_assert_int_eq(db("SELECT count(*) FROM cutover WHERE step = 'selected'"), 2);
}
END_TEST

START_TEST(crash)
{
	write_job("");
	migrate_only();
	db_save(false);
	reset_stats();
	char *steps = xasprintf("%s/steps.log", E.dir);
	char *rc = hooks_run(0, steps);
	ck_assert_str_eq(rc, "0");
	free(rc);
	long long ref_mod = modifies(E.src) + modifies(E.dst);
	ck_assert_int_eq(ref_mod, 2 * 5);   /* lock, 2 transports, maintenance, activate */
	char *ref = end_state();
	ck_assert_msg(tu_contains(ref, "done"), "%s", ref);
	char *log = tu_read(steps);
	long n = 0;
	for (const char *p = log; p && *p; p++)
		n += *p == '\n';
	ck_assert_msg(n >= 10, "only %ld steps:\n%s", n, log ? log : "");
	fprintf(stderr, "crash: %ld durable steps in a cutover run:\n%s", n, log);
	for (long k = 1; k <= n; k++) {
		db_save(true);
		servers_reset();
		char *r1 = hooks_run(k, NULL);
		ck_assert_msg(!strcmp(r1, "99"), "k=%ld: the crash run exited %s", k, r1);
		char *r2 = hooks_run(0, NULL);
		ck_assert_msg(!strcmp(r2, "0"), "k=%ld: the run after the crash exited %s", k, r2);
		char *got = end_state();
		ck_assert_msg(!strcmp(got, ref), "k=%ld (%s): end state differs\n--- want\n%s--- got\n%s", k,
			      "see steps.log", ref, got);
		/* each change sent once over both runs: a resumed step reads before it writes */
		long long m = modifies(E.src) + modifies(E.dst);
		ck_assert_msg(m == ref_mod, "k=%ld: %lld ModifyAccountRequest(s) over the crash and the "
			      "resume, %lld without a crash", k, m, ref_mod);
		free(got);
		free(r1);
		free(r2);
	}
	free(log);
	free(ref);
	free(steps);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_cutover");
	struct { const char *name; const TTest *t; } cases[] = {
		{ "full", full }, { "batches", batches }, { "not_eligible", not_eligible }, { "keys", keys },
		{ "final_pass_transport", final_pass_transport }, { "final_pass_fails", final_pass_fails },
		{ "rollback_conflict", rollback_conflict }, { "delta_after_cutover", delta_after_cutover },
		{ "crash_then_rollback", crash_then_rollback },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_add_checked_fixture(tc, setup, teardown);
		tcase_set_timeout(tc, 300);
		tcase_add_test(tc, cases[i].t);
		suite_add_tcase(s, tc);
	}
	TCase *tk = tcase_create("crash");
	tcase_add_checked_fixture(tk, setup2, teardown);
	tcase_set_timeout(tk, 900);
	tcase_add_test(tk, crash);
	suite_add_tcase(s, tk);
	return s;
}

#include "ckmain.h"
