/*
 * check_unit_ldapfmt.c - golden output of zmreplchk and zmldapmmrtool -q
 * (src/stages/ldap_format.h): no server, links core, ldap and the two
 * stage modules ldap_format and ldap_cnconfig only.
 *
 * Every golden string below is what the script prints for the same
 * servers, written from its print statements (zmreplchk 161-173 masters,
 * 245-255 replicas; zmldapmmrtool 115-159) and cited per test, line numbers
 * of Zimbra's zm-ldap-utilities src/libexec/ (Carbonio's copies: 10 lower).
 * The zmreplchk ones were also produced by the script itself, run on Perl
 * with Date::Manip 6.91 and a stand-in Net::LDAP serving the same CSNs
 * (zmbatch's "zmbatch: " lines excepted: they are ours).
 */
#include "testutil.h"

#include "ldap_format.h"
#include "zmb.h"

#include <check.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define M1 "ldap://m1:389/"
#define M2 "ldap://m2:389/"
#define M3 "ldap://m3:389/"
#define R1 "ldap://r1:389/"

/* contextCSNs: SID 000 (a server without olcServerID), 001 and 002 */
#define Z0  "20231201000000.000000Z#000000#000#000000"
#define A1  "20240101120000.000001Z#000000#001#000000"
#define A1b "20240101120005.000001Z#000000#001#000000"   /* A1 + 5 s */
#define A1d "20240102140102.000001Z#000000#001#000000"   /* A1 + 26 h 1 m 2 s */
#define B2  "20240101120007.000002Z#000000#002#000000"   /* A1 + 7 s */

/* A set of servers, masters first, as the stage hands them over. */
struct fx {
	struct rpl_srv s[4];
	size_t n, nmasters;
	bool ok;                /* rpl_judge()'s verdict */
	struct buf out;         /* rpl_format()'s text */
};

static struct fx F;

static void fx_setup(void)
{
	memset(&F, 0, sizeof F);
}

static void fx_teardown(void)
{
	for (size_t i = 0; i < F.n; i++)
		rpl_srv_release(&F.s[i]);
	buf_release(&F.out);
}

/* A server whose contextCSNs (NULL-terminated) were read; sid NULL = no olcServerID. */
static void srv(const char *uri, bool master, const char *sid, ...)
{
	struct rpl_srv *s = &F.s[F.n++];
	s->uri = uri;
	s->master = master;
	s->sid_raw = xstrdup(sid);
	if (master)
		F.nmasters++;
	va_list ap;
	va_start(ap, sid);
	for (const char *c; (c = va_arg(ap, const char *));)
		strlist_add(&s->csns, c);
	va_end(ap);
}

/* A server that could not be read (code 3, 4 or 5 with that text). */
static void failed(const char *uri, bool master, int code, const char *text)
{
	struct rpl_srv *s = &F.s[F.n++];
	s->uri = uri;
	s->master = master;
	s->probe = code;
	s->probe_text = xstrdup(text);
	if (master)
		F.nmasters++;
}

static void judge_and_print(void)
{
	F.ok = rpl_judge(F.s, F.n, F.nmasters);
	rpl_format(F.s, F.n, F.nmasters, &F.out);
}

/* ---- compareCSN() (zmreplchk 268-286) ---- */

static void assert_lag(const char *x, const char *y, const char *want, long long want_secs)
{
	long long secs = -1;
	char *t = rpl_compare_csn(x, y, &secs);
	ck_assert_str_eq(t, want);
	ck_assert_int_eq(secs, want_secs);
	free(t);
}

START_TEST(test_compare_csn)
{
	/* line 276 DateCalc($y,$x) = x - y; negative: line 277-279 "s behind" */
	assert_lag(A1, A1b, "0y 0M 0w 0d 0h 0m 5s behind", -5);
	/* positive: Date::Manip 6 prints no '+', so line 280's "s ahead" never comes */
	assert_lag(A1b, A1, "0y 0M 0w 0d 0h 0m 5", 5);
	/* exact mode: a day and more in hours (Date::Manip::Calc: an exact delta is
	 * hours, minutes and seconds) */
	assert_lag(A1, A1d, "0y 0M 0w 0d 26h 1m 2s behind", -(26 * 3600 + 62));
	assert_lag(A1, "20250101120000.000001Z#000000#001#000000", "0y 0M 0w 0d 8784h 0m 0s behind",
		   -8784LL * 3600);
	/* line 272-273 drop the fraction: whole seconds; different CSNs, same second */
	assert_lag("20240101120000.999999Z#000000#001#000000", A1, "0y 0M 0w 0d 0h 0m 0", 0);
	/* a missing CSN (Perl's undef past the end of a list) or one Date::Manip cannot
	 * parse (no fraction: "...ZZ"; Feb 30) makes DateCalc fail: "" */
	assert_lag(A1, NULL, "", 0);
	assert_lag(NULL, A1, "", 0);
	assert_lag("20240101120000Z#000000#001#000000", A1, "", 0);
	assert_lag("20240230120000.000000Z#000000#001#000000", A1, "", 0);
	assert_lag("20240229120000.000000Z#000000#001#000000",
		   "20240228120000.000000Z#000000#001#000000", "0y 0M 0w 0d 24h 0m 0", 86400);
}
END_TEST

/* ---- what zmreplchk keeps (110-115, 216-221) ---- */

static char *joined(const struct strlist *l)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < l->n; i++)
		buf_addf(&b, "%s%s", i ? " " : "", l->v[i]);
	return buf_detach(&b);
}

static void assert_filter(size_t nmasters, const char *want, ...)
{
	struct strlist in = STRLIST_INIT, out = STRLIST_INIT;
	va_list ap;
	va_start(ap, want);
	for (const char *c; (c = va_arg(ap, const char *));)
		strlist_add(&in, c);
	va_end(ap);
	rpl_filter(&in, nmasters, &out);
	char *got = joined(&out);
	ck_assert_str_eq(got, want);
	free(got);
	strlist_release(&in);
	strlist_release(&out);
}

START_TEST(test_filter_sid000)
{
	/* two masters: #000# dropped (line 112) ... */
	assert_filter(2, A1 " " B2, Z0, A1, B2, NULL);
	/* ... except the last value, which the loop (i < $#csns) never looks at */
	assert_filter(2, A1 " " B2 " " Z0, A1, Z0, B2, Z0, NULL);
	assert_filter(2, Z0, Z0, NULL);
	/* one master: nothing dropped */
	assert_filter(1, Z0 " " A1 " " B2, Z0, A1, B2, NULL);
}
END_TEST

/* ---- zmreplchk's output ---- */

/* Lines 121-173: two masters, same CSNs; SID 000 dropped from both (line 112). */
START_TEST(test_two_masters_in_sync)
{
	srv(M1, true, "1", Z0, A1, B2, NULL);
	srv(M2, true, "2", Z0, A1, B2, NULL);
	judge_and_print();
	ck_assert(F.ok);
	ck_assert_str_eq(F.out.s,
			 "Master: " M1 " ServerID: 1 Code: 0 Status: In Sync CSNs:\n"
			 A1 "\n" B2 "\n"
			 "Master: " M2 " ServerID: 2 Code: 0 Status: In Sync CSNs:\n"
			 A1 "\n" B2 "\n");
}
END_TEST

/*
 * Lines 142-150: delta = compareCSN(master0, masterJ) = master0 - masterJ, on
 * both lines: the first master is 5 s older, "behind".
 */
START_TEST(test_master_behind_5s)
{
	srv(M1, true, "1", Z0, A1, B2, NULL);
	srv(M2, true, "2", Z0, A1b, B2, NULL);
	judge_and_print();
	ck_assert(!F.ok);
	ck_assert_str_eq(F.out.s,
			 "Master: " M1 " ServerID: 1 Code: 6 Status: 0y 0M 0w 0d 0h 0m 5s behind CSNs:\n"
			 A1 "\n" B2 "\n"
			 "Master: " M2 " ServerID: 2 Code: 6 Status: 0y 0M 0w 0d 0h 0m 5s behind CSNs:\n"
			 A1b "\n" B2 "\n");
	/* by server ID: the second master is 5 s ahead of the first */
	ck_assert(F.s[1].compared && !F.s[1].in_sync);
	ck_assert(F.s[1].lag < -4.99 && F.s[1].lag > -5.01);
	ck_assert_str_eq(F.s[1].sid_diff, "SID 001 5.000 s ahead");
	ck_assert_ptr_null(F.s[1].note);   /* both comparisons say "not in sync" */
}
END_TEST

/* Line 238: compareCSN(replica, master0); a lag over a day is in hours only. */
START_TEST(test_replica_lag_over_a_day)
{
	srv(M1, true, "1", A1d, B2, NULL);
	srv(R1, false, NULL, A1, B2, NULL);
	judge_and_print();
	ck_assert(!F.ok);
	ck_assert_str_eq(F.out.s,
			 "Replica: " R1 " Code: 6 Status: 0y 0M 0w 0d 26h 1m 2s behind CSNs:\n"
			 A1 "\n" B2 "\n");
	ck_assert_str_eq(F.s[1].sid_diff, "SID 001 93662.000 s behind");
}
END_TEST

/* Line 121: no Master line with one master; line 112/218: SID 000 kept then. */
START_TEST(test_one_master_replica_in_sync)
{
	srv(M1, true, "1", Z0, A1, B2, NULL);
	srv(R1, false, NULL, Z0, A1, B2, NULL);
	judge_and_print();
	ck_assert(F.ok);
	ck_assert_str_eq(F.out.s,
			 "Replica: " R1 " Code: 0 Status: In Sync CSNs:\n"
			 Z0 "\n" A1 "\n" B2 "\n");
	ck_assert(!tu_contains(F.out.s, "Master:"));
}
END_TEST

/* Lines 231-241, 245-255: a replica 5 s behind, then 5 s ahead. */
START_TEST(test_replica_behind_and_ahead)
{
	srv(M1, true, NULL, A1b, NULL);
	srv(R1, false, NULL, A1, NULL);
	judge_and_print();
	ck_assert(!F.ok);
	ck_assert_str_eq(F.out.s,
			 "Replica: " R1 " Code: 6 Status: 0y 0M 0w 0d 0h 0m 5s behind CSNs:\n" A1 "\n");
	ck_assert(F.s[1].lag > 4.99 && F.s[1].lag < 5.01);   /* positive: behind */
	fx_teardown();
	fx_setup();
	srv(M1, true, NULL, A1, NULL);
	srv(R1, false, NULL, A1b, NULL);
	judge_and_print();
	ck_assert(!F.ok);
	/* the replica is newer: no sign from Date::Manip 6, no " ahead" (line 280) */
	ck_assert_str_eq(F.out.s, "Replica: " R1 " Code: 6 Status: 0y 0M 0w 0d 0h 0m 5 CSNs:\n" A1b "\n");
}
END_TEST

/*
 * Code 4 (lines 68-72, 194-198): no CSNs part at all, and an empty ServerID
 * ($mstatus[3] is set on line 117 only).  The first master, compared with
 * nobody, is "In Sync" (line 152-153).
 */
START_TEST(test_server_down)
{
	srv(M1, true, "1", A1, B2, NULL);
	failed(M2, true, 4, "Server down");
	failed(R1, false, 4, "Server down");
	judge_and_print();
	ck_assert(!F.ok);
	ck_assert_str_eq(F.out.s,
			 "Master: " M1 " ServerID: 1 Code: 0 Status: In Sync CSNs:\n"
			 A1 "\n" B2 "\n"
			 "Master: " M2 " ServerID:  Code: 4 Status: Server down\n"
			 "Replica: " R1 " Code: 4 Status: Server down\n");
}
END_TEST

/*
 * The first master down: the second one is "In Sync" for zmreplchk (line
 * 137 skips, 155-156), the replica is compared with an empty list, so
 * compareCSN(csn, undef) = "" (line 238-240).  zmbatch says why.
 */
START_TEST(test_first_master_down)
{
	failed(M1, true, 4, "Server down");
	srv(M2, true, "2", A1, B2, NULL);
	srv(R1, false, NULL, A1, B2, NULL);
	judge_and_print();
	ck_assert(!F.ok);
	ck_assert_str_eq(F.out.s,
			 "Master: " M1 " ServerID:  Code: 4 Status: Server down\n"
			 "Master: " M2 " ServerID: 2 Code: 0 Status: In Sync CSNs:\n"
			 A1 "\n" B2 "\n"
			 "Replica: " R1 " Code: 6 Status:  CSNs:\n"
			 A1 "\n" B2 "\n"
			 "zmbatch: " M2 ": not compared with " M1 " (Server down)\n"
			 "zmbatch: " R1 ": not compared with " M1 " (Server down)\n");
	ck_assert(!F.s[1].compared && !F.s[2].compared);
}
END_TEST

/* One master that cannot be read: zmreplchk prints nothing for it (line 121), zmbatch does. */
START_TEST(test_single_master_down)
{
	failed(M1, true, 4, "Server down");
	judge_and_print();
	ck_assert(!F.ok);
	ck_assert_str_eq(F.out.s, "zmbatch: master " M1 ": Code: 4 Status: Server down "
			 "(zmreplchk prints no Master line for a single master)\n");
}
END_TEST

/*
 * SID 000 as the last value stays (line 115), in the middle it goes
 * (line 112); ServerID 0 for a master without olcServerID (line 83).
 */
START_TEST(test_sid000_filtering)
{
	srv(M1, true, NULL, A1, Z0, B2, Z0, NULL);
	srv(M2, true, NULL, A1, B2, Z0, NULL);
	judge_and_print();
	ck_assert(F.ok);
	ck_assert_str_eq(F.out.s,
			 "Master: " M1 " ServerID: 0 Code: 0 Status: In Sync CSNs:\n"
			 A1 "\n" B2 "\n" Z0 "\n"
			 "Master: " M2 " ServerID: 0 Code: 0 Status: In Sync CSNs:\n"
			 A1 "\n" B2 "\n" Z0 "\n");
	/* by server ID SID 000 is ignored altogether with two masters */
	fx_teardown();
	fx_setup();
	srv(M1, true, NULL, Z0, A1, B2, NULL);
	srv(M2, true, NULL, A1, B2, NULL);
	judge_and_print();
	ck_assert(F.ok);
	ck_assert_ptr_null(F.s[1].note);
}
END_TEST

/*
 * The same CSNs in another order: by position (line 232) zmreplchk sees a
 * lag (the last differing pair wins: compareCSN(A1, B2) = 7 s behind); by
 * server ID they are in sync, and that decides.
 */
START_TEST(test_order_differs_same_set)
{
	srv(M1, true, "1", A1, B2, NULL);
	srv(R1, false, NULL, B2, A1, NULL);
	judge_and_print();
	ck_assert(F.ok);
	ck_assert_str_eq(F.out.s,
			 "Replica: " R1 " Code: 6 Status: 0y 0M 0w 0d 0h 0m 7s behind CSNs:\n"
			 B2 "\n" A1 "\n"
			 "zmbatch: " R1 ": in sync with " M1 " by server ID; by position (zmreplchk) "
			 "not: the same contextCSNs in another order; zmbatch goes by server ID\n");
	ck_assert(F.s[1].in_sync && F.s[1].code == RPL_LAG);
}
END_TEST

/*
 * A SID on the master only: the position loop runs over the replica's
 * list (line 231), finds A1 = A1 and says In Sync; by server ID SID 002 is
 * missing, and the replica is not in sync.
 */
START_TEST(test_sid_on_one_side_only)
{
	srv(M1, true, "1", A1, B2, NULL);
	srv(R1, false, NULL, A1, NULL);
	judge_and_print();
	ck_assert(!F.ok);
	ck_assert_str_eq(F.out.s,
			 "Replica: " R1 " Code: 0 Status: In Sync CSNs:\n" A1 "\n"
			 "zmbatch: " R1 ": not in sync with " M1 " by server ID (SID 002 missing here); "
			 "by position (zmreplchk) In Sync; zmbatch goes by server ID\n");
	/* lag: a SID missing on one side counts against that side's newest CSN
	 * (csn_compare()): B2 is 7 s newer than the replica's A1 */
	char *d = rpl_detail(&F.s[1]);
	ck_assert_str_eq(d, "uri=" R1 " role=replica sid=\"\" code=0 status=\"In Sync\" sync=no "
			 "lag_s=7.000 csns=" A1 " differs=\"SID 002 missing here\"");
	free(d);
}
END_TEST

/*
 * Three masters, the second one lags: lines 146-150 give the first master
 * code 6, then line 152-153 (third master equal) set its text back to "In
 * Sync" but not its code.
 */
START_TEST(test_three_masters_code_and_text)
{
	srv(M1, true, "1", A1, B2, NULL);
	srv(M2, true, "2", A1b, B2, NULL);
	srv(M3, true, "3", A1, B2, NULL);
	judge_and_print();
	ck_assert(!F.ok);
	ck_assert_str_eq(F.out.s,
			 "Master: " M1 " ServerID: 1 Code: 6 Status: In Sync CSNs:\n"
			 A1 "\n" B2 "\n"
			 "Master: " M2 " ServerID: 2 Code: 6 Status: 0y 0M 0w 0d 0h 0m 5s behind CSNs:\n"
			 A1b "\n" B2 "\n"
			 "Master: " M3 " ServerID: 3 Code: 0 Status: In Sync CSNs:\n"
			 A1 "\n" B2 "\n");
}
END_TEST

/* Line 86: the first olcServerID value as it is ("N URL" in an MMR cn=config). */
START_TEST(test_server_id_as_read)
{
	srv(M1, true, "1 ldap://m1:389/", A1, B2, NULL);
	srv(M2, true, NULL, A1, B2, NULL);
	judge_and_print();
	ck_assert_str_eq(F.out.s,
			 "Master: " M1 " ServerID: 1 ldap://m1:389/ Code: 0 Status: In Sync CSNs:\n"
			 A1 "\n" B2 "\n"
			 "Master: " M2 " ServerID: 0 Code: 0 Status: In Sync CSNs:\n"
			 A1 "\n" B2 "\n");
	char *d = rpl_detail(&F.s[0]);
	ck_assert_str_eq(d, "uri=" M1 " role=master sid=\"1 ldap://m1:389/\" code=0 "
			 "status=\"In Sync\" sync=yes lag_s=0.000 csns=" A1 "," B2);
	free(d);
}
END_TEST

/* The StartTLS texts of lines 63 (masters, with the URI) and 189 (replicas), code 3. */
START_TEST(test_starttls_failed)
{
	srv(M1, true, "1", A1, NULL);
	failed(M2, true, 3, "Could not execute StartTLS (" M2 ")");
	failed(R1, false, 3, "Could not execute StartTLS");
	judge_and_print();
	ck_assert(!F.ok);
	ck_assert_str_eq(F.out.s,
			 "Master: " M1 " ServerID: 1 Code: 0 Status: In Sync CSNs:\n" A1 "\n"
			 "Master: " M2 " ServerID:  Code: 3 Status: Could not execute StartTLS (" M2 ")\n"
			 "Replica: " R1 " Code: 3 Status: Could not execute StartTLS\n");
}
END_TEST

/* Judging twice (the stage polls) gives the same text, nothing left over. */
START_TEST(test_judge_again)
{
	srv(M1, true, "1", A1, B2, NULL);
	srv(R1, false, NULL, B2, A1, NULL);
	judge_and_print();
	char *first = xstrdup(F.out.s);
	buf_reset(&F.out);
	judge_and_print();
	ck_assert_str_eq(F.out.s, first);
	free(first);
}
END_TEST

/* ---- zmldapmmrtool -q ---- */

#define SR_TLS "{0}rid=100 provider=ldap://ldap2.example.com:389 bindmethod=simple timeout=0 " \
	"network-timeout=0 binddn=\"uid=zmreplica,cn=admins,cn=zimbra\" credentials=\"s3cret\" " \
	"starttls=critical filter=\"(objectclass=*)\" searchbase=\"\" logbase=cn=accesslog " \
	"scope=sub schemachecking=off type=refreshAndPersist retry=\"60 +\" syncdata=accesslog"
#define SR_PLAIN "{1}rid=001 provider=ldaps://ldap3.example.com:636/ bindmethod=simple " \
	"binddn=\"uid=zmreplica,cn=admins,cn=zimbra\" credentials=xstarttls=leak searchbase=\"\" " \
	"type=refreshAndPersist retry=\"60 +\""
#define SR_NORID "{2}provider=ldap://ldap4.example.com:389 credentials=x"

static char *mmrq(const char *sid0, const char *sid1, ...)
{
	struct strlist sids = STRLIST_INIT, sr = STRLIST_INIT;
	if (sid0)
		strlist_add(&sids, sid0);
	if (sid1)
		strlist_add(&sids, sid1);
	va_list ap;
	va_start(ap, sid1);
	for (const char *v; (v = va_arg(ap, const char *));)
		strlist_add(&sr, v);
	va_end(ap);
	struct buf b = BUF_INIT;
	mmrq_format(&sids, &sr, &b);
	strlist_release(&sids);
	strlist_release(&sr);
	return buf_detach(&b);
}

/*
 * Lines 115, 152-153: rid, URI and TLS split out as lines 136-141 do (the
 * rid as written, "001"; TLS empty without starttls=; nothing for a missing
 * rid=).  Where a credentials= value holds "starttls=", the script prints
 * that part of the password ("TLS: leak"); zmbatch masks credentials first.
 */
START_TEST(test_mmrtool_query)
{
	char *out = mmrq("1", NULL, SR_TLS, SR_PLAIN, SR_NORID, NULL);
	ck_assert_str_eq(out, "Master Server ID: 1\n"
			 "Master replication agreement: 1\n"
			 "rid: 100 URI: ldap://ldap2.example.com:389 TLS: critical\n"
			 "Master replication agreement: 2\n"
			 "rid: 001 URI: ldaps://ldap3.example.com:636/ TLS: \n"
			 "Master replication agreement: 3\n"
			 "rid:  URI: ldap://ldap4.example.com:389 TLS: \n");
	ck_assert(!tu_contains(out, "s3cret") && !tu_contains(out, "leak"));
	free(out);
	char *rid, *uri, *tls;
	mmrq_agreement(SR_TLS, &rid, &uri, &tls);
	ck_assert_str_eq(rid, "100");
	ck_assert_str_eq(uri, "ldap://ldap2.example.com:389");
	ck_assert_str_eq(tls, "critical");
	free(rid);
	free(uri);
	free(tls);
	mmrq_agreement(SR_NORID, &rid, &uri, &tls);
	ck_assert_ptr_null(rid);
	ck_assert_ptr_null(tls);
	free(uri);
}
END_TEST

/* Line 115: the first olcServerID value as it is; line 159: no agreement. */
START_TEST(test_mmrtool_no_agreement)
{
	char *out = mmrq("1 ldap://ldap1.example.com:389/", "2 ldap://ldap2.example.com:389/", NULL);
	ck_assert_str_eq(out, "Master Server ID: 1 ldap://ldap1.example.com:389/\n"
			 "Error: No sync replication entries found\n");
	free(out);
}
END_TEST

/* Line 118 (two spaces after "found."), and nothing else after it (line 119 exits). */
START_TEST(test_mmrtool_no_server_id)
{
	char *out = mmrq(NULL, NULL, SR_TLS, NULL);
	ck_assert_str_eq(out, "Error: No Server ID found.  This does not appear to be a "
			 "multi-master server.\n");
	free(out);
	struct buf b = BUF_INIT;
	ck_assert_int_eq(mmrq_format(NULL, NULL, &b), MMRQ_NO_SID);
	buf_release(&b);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("unit_ldapfmt");
	TCase *tc = tcase_create("replchk");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_test(tc, test_compare_csn);
	tcase_add_test(tc, test_filter_sid000);
	tcase_add_test(tc, test_two_masters_in_sync);
	tcase_add_test(tc, test_master_behind_5s);
	tcase_add_test(tc, test_replica_lag_over_a_day);
	tcase_add_test(tc, test_one_master_replica_in_sync);
	tcase_add_test(tc, test_replica_behind_and_ahead);
	tcase_add_test(tc, test_server_down);
	tcase_add_test(tc, test_first_master_down);
	tcase_add_test(tc, test_single_master_down);
	tcase_add_test(tc, test_sid000_filtering);
	tcase_add_test(tc, test_order_differs_same_set);
	tcase_add_test(tc, test_sid_on_one_side_only);
	tcase_add_test(tc, test_three_masters_code_and_text);
	tcase_add_test(tc, test_server_id_as_read);
	tcase_add_test(tc, test_starttls_failed);
	tcase_add_test(tc, test_judge_again);
	suite_add_tcase(s, tc);
	tc = tcase_create("mmrtool");
	tcase_add_test(tc, test_mmrtool_query);
	tcase_add_test(tc, test_mmrtool_no_agreement);
	tcase_add_test(tc, test_mmrtool_no_server_id);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
