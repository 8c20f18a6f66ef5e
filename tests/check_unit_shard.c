/*
 * check_unit_shard.c - shard membership, parsing, DB naming and the
 * engines' variables (src/core/shard.h): links core only.
 *
 * The hash values are pinned: FNV-1a 64 of the lower-cased name is part of
 * the on-disk contract (a shard's DB holds the accounts that hash to it on
 * every machine and version).
 */
#define _GNU_SOURCE
#include "testutil.h"

#include "shard.h"
#include "zmb.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_hash_pinned)
{
	/* FNV-1a 64 reference values: "" is the offset basis, "a" the published one */
	ck_assert_uint_eq(shard_hash(""), 0xcbf29ce484222325ULL);
	ck_assert_uint_eq(shard_hash("a"), 0xaf63dc4c8601ec8cULL);
	ck_assert_uint_eq(shard_hash("alice@example.com"), 0x67023fc4a7ff2a46ULL);
	/* ASCII case does not matter, other bytes are taken as they are */
	ck_assert_uint_eq(shard_hash("Alice@Example.COM"), 0x67023fc4a7ff2a46ULL);
	ck_assert_uint_ne(shard_hash("\xc3\x89lise@example.com"), shard_hash("\xc3\xa9lise@example.com"));
	ck_assert_uint_eq(shard_of("alice@example.com", 4), 2);
	ck_assert_uint_eq(shard_of("bob@example.com", 4), 1);
	ck_assert_uint_eq(shard_of("carol@example.com", 4), 3);
	ck_assert_uint_eq(shard_of("frank@example.org", 3), 0);
	ck_assert_uint_eq(shard_of("anything@example.com", 1), 0);
}
END_TEST

START_TEST(test_has_spreads)
{
	/* every name in exactly one shard, and the shares roughly even */
	unsigned counts[7] = { 0 };
	for (int i = 0; i < 7000; i++) {
		char name[64];
		snprintf(name, sizeof name, "user%04d@example.com", i);
		int in = 0;
		for (unsigned k = 0; k < 7; k++) {
			struct zmb_shard s = { k, 7, SHARD_BY_HASH };
			if (shard_has(&s, name)) {
				in++;
				counts[k]++;
			}
		}
		ck_assert_int_eq(in, 1);
	}
	for (int k = 0; k < 7; k++)
		ck_assert_msg(counts[k] > 850 && counts[k] < 1150, "shard %d has %u of 7000", k, counts[k]);
	struct zmb_shard none = { 0, 0, SHARD_BY_HASH };
	ck_assert(shard_has(&none, "x@example.com"));
}
END_TEST

START_TEST(test_parse)
{
	struct zmb_shard s;
	unsigned n;
	ck_assert_int_eq(shard_parse("0/4", &s), 0);
	ck_assert_uint_eq(s.index, 0);
	ck_assert_uint_eq(s.count, 4);
	ck_assert_int_eq(shard_parse("1023/1024", &s), 0);
	ck_assert_int_eq(shard_parse("0/1", &s), 0);
	const char *bad[] = { "4/4", "1/0", "0/1025", "-1/4", "1/-4", "1", "/4", "1/", "1/4x", " 1/4",
			      "1/ 4", "+1/4", "1//4", "a/b", "", "99999999999/4" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(shard_parse(bad[i], &s) < 0, "'%s' accepted", bad[i]);
	ck_assert_int_eq(shard_parse_count("16", &n), 0);
	ck_assert_uint_eq(n, 16);
	ck_assert_int_lt(shard_parse_count("0", &n), 0);
	ck_assert_int_lt(shard_parse_count("1025", &n), 0);
	ck_assert_int_lt(shard_parse_count("", &n), 0);
}
END_TEST

START_TEST(test_db_path)
{
	struct zmb_shard s = { 2, 4, SHARD_BY_HASH }, none = { 0, 0, SHARD_BY_HASH };
	char *p;
	ck_assert_str_eq((p = shard_db_path("/var/lib/zmbatch/state.db", &s)), "/var/lib/zmbatch/state.shard2-of-4.db");
	free(p);
	ck_assert_str_eq((p = shard_db_path("state.db", &s)), "state.shard2-of-4.db");
	free(p);
	ck_assert_str_eq((p = shard_db_path("/a.b/state", &s)), "/a.b/state.shard2-of-4");
	free(p);
	ck_assert_str_eq((p = shard_db_path("/x/.state", &s)), "/x/.state.shard2-of-4");
	free(p);
	ck_assert_str_eq((p = shard_db_path("/x/job.v2.sqlite", &s)), "/x/job.v2.shard2-of-4.sqlite");
	free(p);
	ck_assert_str_eq((p = shard_db_path("/x/state.db", &none)), "/x/state.db");
	free(p);
	char b[16];
	ck_assert_str_eq(shard_label(&s, b, sizeof b), "2/4");
	ck_assert_str_eq(shard_label(&none, b, sizeof b), "");
}
END_TEST

/* The environment of a test: "NAME=VALUE" entries. */
static const char *tab_env(const char *name, void *ctx)
{
	const char *const *e = ctx;
	size_t n = strlen(name);
	for (; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

/* resolve with env entries; returns the label ("err" on error, err text in *why) */
static const char *res(const char *opt, const char *count, const char *const *env, char *buf, char **why)
{
	struct zmb_shard s;
	char *err = NULL;
	free(*why);
	*why = NULL;
	if (shard_resolve(opt, count, tab_env, (void *)env, &s, &err) < 0) {
		ck_assert_ptr_nonnull(err);
		*why = err;
		return "err";
	}
	ck_assert_ptr_null(err);
	return s.count ? shard_label(&s, buf, 16) : "none";
}

START_TEST(test_resolve)
{
	char b[16];
	char *why = NULL;
	const char *none[] = { NULL };
	ck_assert_str_eq(res(NULL, NULL, none, b, &why), "none");
	ck_assert_str_eq(res("1/4", NULL, none, b, &why), "1/4");
	ck_assert_str_eq(res("1/4", "4", none, b, &why), "1/4");
	ck_assert_str_eq(res("1/4", "3", none, b, &why), "err");
	ck_assert(strstr(why, "--shard 1/4") && strstr(why, "--shard-count 3"));
	ck_assert_str_eq(res("4/4", NULL, none, b, &why), "err");
	ck_assert_str_eq(res(NULL, "4", none, b, &why), "err");     /* a count without an index */
	/* Kubernetes */
	const char *k8s[] = { "JOB_COMPLETION_INDEX=2", "ZMBATCH_SHARD_COUNT=4", NULL };
	ck_assert_str_eq(res(NULL, NULL, k8s, b, &why), "2/4");
	ck_assert_str_eq(res(NULL, "4", k8s, b, &why), "2/4");
	ck_assert_str_eq(res(NULL, "5", k8s, b, &why), "err");      /* the two counts disagree */
	ck_assert(strstr(why, "ZMBATCH_SHARD_COUNT=4"));
	ck_assert_str_eq(res("0/3", NULL, k8s, b, &why), "0/3");   /* explicit wins */
	const char *k8s_nocount[] = { "JOB_COMPLETION_INDEX=2", NULL };
	ck_assert_str_eq(res(NULL, NULL, k8s_nocount, b, &why), "err");
	ck_assert(strstr(why, "JOB_COMPLETION_INDEX=2") && strstr(why, "--shard-count"));
	ck_assert_str_eq(res(NULL, "3", k8s_nocount, b, &why), "2/3");
	ck_assert_str_eq(res(NULL, "2", k8s_nocount, b, &why), "err");   /* index >= count */
	const char *k8s_bad[] = { "JOB_COMPLETION_INDEX=x", "ZMBATCH_SHARD_COUNT=4", NULL };
	ck_assert_str_eq(res(NULL, NULL, k8s_bad, b, &why), "err");
	const char *count_only[] = { "ZMBATCH_SHARD_COUNT=4", NULL };
	ck_assert_str_eq(res(NULL, NULL, count_only, b, &why), "err");
	ck_assert_str_eq(res("1/4", NULL, count_only, b, &why), "1/4");
	const char *empty[] = { "JOB_COMPLETION_INDEX=", "SLURM_ARRAY_TASK_ID=", NULL };
	ck_assert_str_eq(res(NULL, NULL, empty, b, &why), "none");
	/* Slurm: ids from a min other than 0 */
	const char *sl1[] = { "SLURM_ARRAY_TASK_ID=3", "SLURM_ARRAY_TASK_MIN=1", "SLURM_ARRAY_TASK_MAX=4",
			      "SLURM_ARRAY_TASK_COUNT=4", NULL };
	ck_assert_str_eq(res(NULL, NULL, sl1, b, &why), "2/4");
	ck_assert_str_eq(res(NULL, "4", sl1, b, &why), "2/4");
	ck_assert_str_eq(res(NULL, "8", sl1, b, &why), "err");
	const char *sl0[] = { "SLURM_ARRAY_TASK_ID=0", "SLURM_ARRAY_TASK_MIN=0", "SLURM_ARRAY_TASK_MAX=3",
			      "SLURM_ARRAY_TASK_COUNT=4", "SLURM_ARRAY_TASK_STEP=1", NULL };
	ck_assert_str_eq(res(NULL, NULL, sl0, b, &why), "0/4");
	const char *step[] = { "SLURM_ARRAY_TASK_ID=5", "SLURM_ARRAY_TASK_MIN=1", "SLURM_ARRAY_TASK_MAX=7",
			       "SLURM_ARRAY_TASK_COUNT=4", "SLURM_ARRAY_TASK_STEP=2", NULL };
	ck_assert_str_eq(res(NULL, NULL, step, b, &why), "2/4");
	/* --array=1,2,7: count 3, but not one range */
	const char *list[] = { "SLURM_ARRAY_TASK_ID=7", "SLURM_ARRAY_TASK_MIN=1", "SLURM_ARRAY_TASK_MAX=7",
			       "SLURM_ARRAY_TASK_COUNT=3", NULL };
	ck_assert_str_eq(res(NULL, NULL, list, b, &why), "err");
	ck_assert(strstr(why, "--array=0-2"));
	const char *nocount[] = { "SLURM_ARRAY_TASK_ID=1", NULL };
	ck_assert_str_eq(res(NULL, NULL, nocount, b, &why), "err");
	ck_assert_str_eq(res(NULL, "2", nocount, b, &why), "1/2");
	const char *below[] = { "SLURM_ARRAY_TASK_ID=0", "SLURM_ARRAY_TASK_MIN=1", "SLURM_ARRAY_TASK_COUNT=4", NULL };
	ck_assert_str_eq(res(NULL, NULL, below, b, &why), "err");
	const char *both[] = { "SLURM_ARRAY_TASK_ID=1", "SLURM_ARRAY_TASK_COUNT=4", "JOB_COMPLETION_INDEX=1",
			       "ZMBATCH_SHARD_COUNT=4", NULL };
	ck_assert_str_eq(res(NULL, NULL, both, b, &why), "err");
	ck_assert_str_eq(res("1/4", NULL, both, b, &why), "1/4");
	free(why);
}
END_TEST

/* --shard-by server: the set (lower-cased, sorted, unique) and the round-robin deal. */
START_TEST(test_server_deal)
{
	enum shard_by by = SHARD_BY_SERVER;
	ck_assert_int_eq(shard_by_parse("hash", &by), 0);
	ck_assert_int_eq(by, SHARD_BY_HASH);
	ck_assert_int_eq(shard_by_parse("server", &by), 0);
	ck_assert_int_eq(by, SHARD_BY_SERVER);
	ck_assert_int_lt(shard_by_parse("Server", &by), 0);
	ck_assert_int_lt(shard_by_parse("", &by), 0);
	ck_assert_int_lt(shard_by_parse(NULL, &by), 0);
	ck_assert_str_eq(shard_by_name(SHARD_BY_SERVER), "server");
	ck_assert_str_eq(shard_by_name(SHARD_BY_HASH), "hash");

	/* as the accounts list them: repeated, mixed case, one empty */
	struct strlist l = STRLIST_INIT;
	const char *in[] = { "mbox3.example.com", "MBOX1.example.com", "mbox2.example.com", "mbox1.example.com",
			     "", "Mbox3.Example.Com", "mbox10.example.com" };
	for (size_t i = 0; i < sizeof in / sizeof *in; i++)
		strlist_add(&l, in[i]);
	shard_server_set(&l);
	ck_assert_uint_eq(l.n, 4);
	/* byte order: "mbox10" sorts before "mbox2" */
	ck_assert_str_eq(l.v[0], "mbox1.example.com");
	ck_assert_str_eq(l.v[1], "mbox10.example.com");
	ck_assert_str_eq(l.v[2], "mbox2.example.com");
	ck_assert_str_eq(l.v[3], "mbox3.example.com");
	const char *const *v = (const char *const *)l.v;

	/* the k-th server to shard k mod N */
	ck_assert_uint_eq(shard_server_owner(v, l.n, "mbox1.example.com", 3), 0);
	ck_assert_uint_eq(shard_server_owner(v, l.n, "mbox10.example.com", 3), 1);
	ck_assert_uint_eq(shard_server_owner(v, l.n, "mbox2.example.com", 3), 2);
	ck_assert_uint_eq(shard_server_owner(v, l.n, "mbox3.example.com", 3), 0);
	ck_assert_uint_eq(shard_server_owner(v, l.n, "MBOX3.example.COM", 3), 0);   /* any case */
	ck_assert_uint_eq(shard_server_owner(v, l.n, "mbox2.example.com", 2), 0);
	ck_assert_uint_eq(shard_server_owner(v, l.n, "mbox3.example.com", 2), 1);
	/* more shards than servers: the spare ones own nothing */
	for (size_t k = 0; k < l.n; k++)
		ck_assert_uint_eq(shard_server_owner(v, l.n, v[k], 8), k);
	/* unknown home, or a server not in the set: shard 0 */
	ck_assert_uint_eq(shard_server_owner(v, l.n, NULL, 3), 0);
	ck_assert_uint_eq(shard_server_owner(v, l.n, "mbox9.example.com", 3), 0);
	ck_assert_uint_eq(shard_server_owner(v, l.n, "mbox2.example.com", 0), 0);
	ck_assert_uint_eq(shard_server_owner(v, l.n, "mbox2.example.com", 1), 0);
	/* every server in exactly one of N shards, and the shards' loads differ by one at most */
	for (unsigned n = 1; n <= 6; n++) {
		unsigned per[6] = { 0 };
		for (size_t k = 0; k < l.n; k++)
			per[shard_server_owner(v, l.n, v[k], n)]++;
		unsigned lo = per[0], hi = per[0];
		for (unsigned i = 0; i < n; i++) {
			lo = per[i] < lo ? per[i] : lo;
			hi = per[i] > hi ? per[i] : hi;
		}
		ck_assert_msg(hi - lo <= 1, "N=%u: shards hold %u to %u servers", n, lo, hi);
	}
	strlist_release(&l);
	struct strlist e = STRLIST_INIT;
	shard_server_set(&e);
	ck_assert_uint_eq(e.n, 0);
	ck_assert_uint_eq(shard_server_owner(NULL, 0, "x", 3), 0);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("unit_shard");
	TCase *tc = tcase_create("shard");
	tcase_add_test(tc, test_hash_pinned);
	tcase_add_test(tc, test_has_spreads);
	tcase_add_test(tc, test_parse);
	tcase_add_test(tc, test_db_path);
	tcase_add_test(tc, test_resolve);
	tcase_add_test(tc, test_server_deal);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
