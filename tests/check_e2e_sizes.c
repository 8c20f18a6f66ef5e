/*
 * check_e2e_sizes.c - end-to-end: how the migrate stage learns the mailbox
 * sizes it orders by (README "Round trips per account").  The source is asked
 * GetQuotaUsageRequest once per page of 500 accounts of each domain; only
 * where that is refused, or misses an account, is GetMailbox (and GetAccount
 * for an account listed by name) asked per account.  Largest-first follows
 * from the sizes whichever way they came, and nothing is asked per account
 * before the first export.
 *
 * Two simulated servers (tests/zsim) and bin/zmbatch, as in
 * check_e2e_migrate.c; requests are counted by type in the source's stats,
 * the export order read from its request log.
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* example.com gets BULK accounts more (29 users and 4 system accounts in all); example.org has 3 */
#define BULK 24
#define NACCOUNTS ((long long)E2E_NUSERS + BULK)

static struct e2e E;

static void setup(void)
{
	memset(&E, 0, sizeof E);
	e2e_start(&E, E2E_SRC_CFG, E2E_DST_CFG);
	/* distinct sizes (1..24 kB in a shuffled order), targets in the mapped domain */
	char body[200];
	for (int i = 0; i < BULK; i++) {
		snprintf(body, sizeof body, "{\"name\":\"bulk%02d@example.com\",\"sizes\":[%d]}", i,
			 (i * 7 % BULK + 1) * 1000);
		json_decref(zsim_post(E.src, "/zsim/add-account", body));
		snprintf(body, sizeof body, "{\"name\":\"bulk%02d@example.net\"}", i);
		json_decref(zsim_post(E.dst, "/zsim/add-account", body));
	}
}

static void teardown(void)
{
	e2e_stop(&E);
}

static int run(int threads, const char *extra_mig)
{
	struct tu_proc p;
	e2e_write_job(&E, threads, extra_mig, NULL);
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	tu_proc_release(&p);
	return rc;
}

static void knobs(const char *json)
{
	json_decref(zsim_post(E.src, "/zsim/knobs", json));
}

/* The source's requests of one SOAP type so far. */
static long long soap_count(json_t *ss, const char *req)
{
	char *k = xasprintf("soap/%s", req);
	long long n = zsim_stat_int(ss, k);
	free(k);
	return n;
}

/* Every account is done, with the size the source has for it. */
static void assert_done_with_source_sizes(json_t *ss)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_open_v2(E.db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT account, size, state FROM accounts", -1, &st, NULL),
			 SQLITE_OK);
	long long rows = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *a = (const char *)sqlite3_column_text(st, 0);
		long long size = sqlite3_column_int64(st, 1);
		long long want = zsim_stat_acct(ss, "accounts", a, "size");
		ck_assert_msg(size == want, "%s: size %lld in the DB, %lld on the source", a, size, want);
		ck_assert_msg(!strcmp((const char *)sqlite3_column_text(st, 2), "done"), "%s: %s", a,
			      (const char *)sqlite3_column_text(st, 2));
		rows++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	ck_assert_int_eq(rows, NACCOUNTS);
}

static bool is_export(json_t *r)
{
	const char *m = json_string_value(json_object_get(r, "method"));
	const char *p = json_string_value(json_object_get(r, "path"));
	return m && p && !strcmp(m, "GET") && !strncmp(p, "/service/home/", 14);
}

/*
 * With one thread the exports follow the claim order: each export's mailbox
 * is no larger than the one before (largest-first).  Returns how many SOAP
 * requests the source answered before the first export began; unless
 * per_account, none of them may be a per-account one.
 */
static long long assert_largest_first(json_t *ss, bool per_account)
{
	json_t *log = json_object_get(ss, "requests"), *r;
	size_t i;
	double first_export = -1;
	long long prev = -1, exports = 0;
	json_array_foreach(log, i, r) {
		if (!is_export(r))
			continue;
		const char *a = json_string_value(json_object_get(r, "account"));
		long long size = zsim_stat_acct(ss, "accounts", a, "size");
		ck_assert_msg(prev < 0 || size <= prev, "export %lld: %s (%lld bytes) after a mailbox of %lld bytes",
			      exports, a, size, prev);
		prev = size;
		if (first_export < 0)
			first_export = json_real_value(json_object_get(r, "t"));
		exports++;
	}
	ck_assert_int_eq(exports, NACCOUNTS);
	long long before = 0;
	json_array_foreach(log, i, r) {
		const char *soap = json_string_value(json_object_get(r, "soap"));
		if (!soap || json_real_value(json_object_get(r, "t")) >= first_export)
			continue;
		ck_assert_msg(per_account || (strcmp(soap, "GetMailboxRequest") &&
					      strcmp(soap, "GetAccountRequest")),
			      "%s before the first export", soap);
		before++;
	}
	return before;
}

/*
 * 32 accounts in two domains: 2 GetQuotaUsage (one page each), no
 * GetMailbox, no GetAccount; the first export after the login, 2
 * SearchDirectory, 2 GetQuotaUsage and the one GetAllServers of the run
 * (src/xfer/zroute.h: one mailbox server, so no per-account routing); a
 * second run asks nothing again.
 */
START_TEST(test_sizes_from_quota_usage)
{
	int rc = run(1, NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	assert_done_with_source_sizes(ss);
	ck_assert_int_eq(soap_count(ss, "GetQuotaUsageRequest"), 2);   /* ceil(33/500) + ceil(3/500) */
	ck_assert_int_eq(soap_count(ss, "GetMailboxRequest"), 0);
	ck_assert_int_eq(soap_count(ss, "GetAccountRequest"), 0);
	ck_assert_int_eq(soap_count(ss, "GetAllServersRequest"), 1);
	ck_assert_int_eq(soap_count(ss, "GetServerRequest"), 0);
	long long before = assert_largest_first(ss, false);
	/* and maybe the first account's folder figures: a verifier thread reads them while
	 * the export starts (src/xfer/verifier.c), so they land just before or just after it */
	ck_assert_msg(before == 1 + 2 + 2 + 1 || before == 1 + 2 + 2 + 1 + 1,
		      "%lld SOAP requests before the first export (AuthRequest, 2 SearchDirectory, "
		      "2 GetQuotaUsage, GetAllServers, perhaps GetFolder expected)", before);
	json_decref(ss);
	json_decref(ds);
	ck_assert_int_eq(run(1, NULL), 0);
	ss = zsim_stats(E.src);
	ck_assert_int_eq(soap_count(ss, "GetQuotaUsageRequest"), 2);
	ck_assert_int_eq(soap_count(ss, "GetMailboxRequest"), 0);
	json_decref(ss);
}
END_TEST

/*
 * A source that refuses GetQuotaUsage (a delegated admin without the
 * getDomainQuotaUsage right): one try per domain, then GetMailbox for each
 * account; the migration completes in the same order.
 */
START_TEST(test_sizes_quota_refused_fallback)
{
	knobs("{\"quota_refuse\":\"service.PERM_DENIED\"}");
	int rc = run(1, NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	assert_done_with_source_sizes(ss);
	ck_assert_int_eq(soap_count(ss, "GetQuotaUsageRequest"), 2);
	ck_assert_int_eq(zsim_stat_int(ss, "soap_faults/service.PERM_DENIED"), 2);
	ck_assert_int_eq(soap_count(ss, "GetMailboxRequest"), NACCOUNTS);
	ck_assert_int_eq(soap_count(ss, "GetAccountRequest"), 0);   /* SearchDirectory gave the ids */
	assert_largest_first(ss, true);
	ck_assert(e2e_tree_contains(&E, "log", "no size listing from the source"));
	json_decref(ss);
	json_decref(ds);
}
END_TEST

/*
 * Pages that end before the domain does (more="1"): the simulator answers at
 * most 5 accounts per GetQuotaUsage, so example.com's 33 take 7 pages and
 * example.org's 3 one; every size still comes from them.
 */
START_TEST(test_sizes_quota_paging)
{
	knobs("{\"quota_page_max\":5}");
	int rc = run(1, NULL);
	ck_assert_msg(rc == 0, "exit %d", rc);
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	e2e_assert_all_migrated(ss, ds);
	assert_done_with_source_sizes(ss);
	ck_assert_int_eq(soap_count(ss, "GetQuotaUsageRequest"), 7 + 1);
	ck_assert_int_eq(soap_count(ss, "GetMailboxRequest"), 0);
	assert_largest_first(ss, false);
	json_decref(ss);
	json_decref(ds);
}
END_TEST

/*
 * Accounts listed by name: the listing of their domain sizes those it
 * knows; one it does not know is looked up on its own (GetAccount), found
 * missing, and fails while the others are done.
 */
START_TEST(test_sizes_listing_misses_account)
{
	/* the standard job with its `domains` line commented out */
	e2e_write_job(&E, 1, "accounts = [ \"alice@example.com\", \"bob@example.com\", "
		      "\"nobody@example.com\" ];", NULL);
	char *job = tu_read(E.job);
	char *d = strstr(job, "  domains = [ \"example.com\", \"example.org\" ];");
	ck_assert_ptr_nonnull(d);
	d[0] = '#';
	free(tu_write(E.dir, "job.cfg", job, 0600));
	free(job);
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 120, "run", "-c", E.job, (char *)NULL);
	tu_proc_release(&p);
	ck_assert_msg(rc == 1, "exit %d, want 1 (nobody@example.com fails)", rc);
	json_t *ss = zsim_stats(E.src);
	ck_assert_int_eq(soap_count(ss, "GetQuotaUsageRequest"), 1);
	ck_assert_int_eq(soap_count(ss, "GetMailboxRequest"), 0);
	ck_assert_int_eq(soap_count(ss, "GetAccountRequest"), 1);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state = 'done'"), 2);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT size FROM accounts WHERE account = 'bob@example.com'"),
			 zsim_stat_acct(ss, "accounts", "bob@example.com", "size"));
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE account = 'nobody@example.com' "
				      "AND state = 'failed'"), 1);
	json_decref(ss);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_sizes");
	TCase *tc = tcase_create("sizes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	/* SIZES_ONLY=test_name runs one test (debugging, make mutate) */
	const char *only = getenv("SIZES_ONLY");
#define ADD(t) do { if (!only || !strcmp(only, #t)) tcase_add_test(tc, t); } while (0)
	ADD(test_sizes_from_quota_usage);
	ADD(test_sizes_quota_refused_fallback);
	ADD(test_sizes_quota_paging);
	ADD(test_sizes_listing_misses_account);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
