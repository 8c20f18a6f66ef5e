/*
 * check_ldap_crash.c - crash-point enumeration of the ldap-promote-mmr
 * stage against two real slapd instances (issue 7).
 *
 * The stage calls crashpoint() after each successful cn=config write
 * (src/stages/ldap_promote_apply.c), the state DB after each COMMIT.  A job with only the
 * promote stage runs through bin/zmbatch:
 *   1. on a fresh master + replica pair, an uninterrupted run counts the
 *      durable steps N and gives the reference cn=config of both servers;
 *   2. for every k in 1..N, on a fresh pair: a run crashing at k (exit 99),
 *      a run without (exit 0); both servers' cn=config, in a canonical form
 *      (no timestamps/CSNs, temp dir and ports replaced by names), equal
 *      the reference; writes replicate both ways; a forced rerun of the
 *      stage writes nothing (cn=config byte-identical incl. timestamps).
 *
 * One process, one thread: the step order is the same in every run (checked
 * against the reference's step names).
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "slapd.h"
#include "testutil.h"
#include "zmb.h"

#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct slapd_pair pair;
static char *bin;         /* private copy of the binary under test */
static char *bindir;

static void setup(void)
{
	memset(&pair, 0, sizeof pair);
	bindir = tu_tmpdir("ldapcrash");
	ck_assert_ptr_nonnull(bindir);
	bin = xasprintf("%s/zmbatch", bindir);
	/* the same binary for the whole enumeration, even if bin/zmbatch is relinked meanwhile */
	char *cmd = xasprintf("cp '%s' '%s'", tu_zmbatch_hooks(), bin);
	ck_assert_msg(system(cmd) == 0, "cannot copy %s", tu_zmbatch_hooks());
	free(cmd);
}

static void teardown(void)
{
	slapd_pair_stop(&pair);
	tu_rmrf(bindir);
	free(bindir);
	free(bin);
	bindir = bin = NULL;
}

static void pair_start(enum slapd_layout layout, const char *suffix)
{
	char *err = NULL;
	if (slapd_pair_start(&pair, layout, suffix, &err))
		ck_abort_msg("fixture: %s", err);
}

/* The job: only the promote stage, state DB and accesslog dir in the pair's dir. */
static char *write_job(void)
{
	char *job = xasprintf(
		"job = \"ldap-crash\";\n"
		"state = { db = \"%s/state.db\"; };\n"
		"log = { dir = \"%s/log\"; level = \"debug\"; };\n"
		"stages = (\n"
		" { name = \"promote\"; type = \"ldap-promote-mmr\"; replica = \"%s\"; server_id = 2;\n"
		"   masters = ( { uri = \"%s\"; server_id = 1; } ); password_file = \"%s\";\n"
		"   replication_dn = \"%s\"; replication_password_file = \"%s\";\n"
		"   suffix = \"%s\"; retry = \"1 +\"; network_timeout = \"3s\";\n"
		"   agreement_tls = \"plain\";\n"   /* this pair has no TLS */
		"   accesslog_dir = \"%s/r/accesslog\"; }\n"
		");\n",
		pair.dir, pair.dir, pair.s[1].uri, pair.s[0].uri, pair.config_pw_file, pair.repl_dn,
		pair.repl_pw_file, pair.suffix, pair.dir);
	char *path = tu_write(pair.dir, "job.conf", job, 0600);
	free(job);
	return path;
}

/* bin run -c job [--stage promote]; crash at k when k > 0; step log when steps. */
static int run_job(const char *job, long k, const char *steps, bool force, const char *what)
{
	char *argv[] = { bin, (char *)"run", (char *)"-c", (char *)job,
			 force ? (char *)"--stage" : NULL, (char *)"promote", NULL };
	char *env[3] = { NULL, NULL, NULL };
	int ne = 0;
	if (k > 0)
		env[ne++] = xasprintf("ZMBATCH_CRASH_AT=%ld", k);
	if (steps)
		env[ne++] = xasprintf("ZMBATCH_STEP_LOG=%s", steps);
	struct tu_proc p;
	int rc = tu_run(argv, env, 60, &p);
	if (rc != 0 && !(k > 0 && rc == 99))
		fprintf(stderr, "---- %s: zmbatch exited %d\n---- stdout:\n%s\n---- stderr:\n%s\n",
			what, rc, p.out, p.err);
	ck_assert_msg(!tu_contains(p.out, SLAPD_REPL_PW) && !tu_contains(p.err, SLAPD_REPL_PW) &&
		      !tu_contains(p.out, SLAPD_CONFIG_PW) && !tu_contains(p.err, SLAPD_CONFIG_PW),
		      "%s: a password in the output", what);
	tu_proc_release(&p);
	for (int i = 0; i < ne; i++)
		free(env[i]);
	return rc;
}

/* Replace every occurrence of from by to in *s. */
static void subst(char **s, const char *from, const char *to)
{
	struct buf b = BUF_INIT;
	const char *p = *s, *q;
	size_t fl = strlen(from);
	while ((q = strstr(p, from)) != NULL) {
		buf_add(&b, p, (size_t)(q - p));
		buf_adds(&b, to);
		p = q + fl;
	}
	buf_adds(&b, p);
	free(*s);
	*s = buf_detach(&b);
}

/*
 * cn=config of server i without what differs between two equal promotions
 * on two different pairs: timestamps and CSNs dropped, the temp dir and the
 * two ports replaced by names.
 */
static char *canon_config(int i)
{
	static const char *const drop[] = { "modifyTimestamp: ", "createTimestamp: ", "entryCSN: ",
					    "modifiersName: ", "creatorsName: ", "entryUUID: ",
					    "contextCSN: ", NULL };
	char *raw = slapd_dump_config(&pair.s[i]);
	ck_assert_msg(raw != NULL, "cannot read cn=config of %s", pair.s[i].uri);
	struct buf b = BUF_INIT;
	for (char *line = strtok(raw, "\n"); line; line = strtok(NULL, "\n")) {
		bool skip = false;
		for (size_t d = 0; drop[d] && !skip; d++)
			skip = strncmp(line, drop[d], strlen(drop[d])) == 0;
		if (!skip)
			buf_addf(&b, "%s\n", line);
	}
	free(raw);
	char *s = buf_detach(&b);
	subst(&s, pair.dir, "@DIR@");
	for (int j = 0; j < 2; j++) {
		char port[32];
		snprintf(port, sizeof port, "127.0.0.1:%d", pair.s[j].port);
		subst(&s, port, j == 0 ? "@MASTER@" : "@REPLICA@");
	}
	return s;
}

/* One integer from the pair's state DB (-1 if no row). */
static long long db_int(const char *sql)
{
	char *path = xasprintf("%s/state.db", pair.dir);
	long long n = e2e_db_int(path, sql);
	free(path);
	return n;
}

static long count_lines(const char *s)
{
	long n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* "k what" lines -> "what" lines */
static char *step_names(const char *log)
{
	struct buf b = BUF_INIT;
	for (const char *p = log; p && *p;) {
		const char *nl = strchr(p, '\n');
		const char *sp = strchr(p, ' ');
		if (!nl)
			nl = p + strlen(p);
		if (sp && sp < nl)
			buf_addf(&b, "%.*s\n", (int)(nl - sp - 1), sp + 1);
		p = *nl ? nl + 1 : nl;
	}
	return buf_detach(&b);
}

/* Writes on either side reach the other; tag makes the entries unique. */
static void assert_replication(const char *tag, const char *what)
{
	char *u0 = xasprintf("m%s", tag), *u1 = xasprintf("r%s", tag);
	ck_assert_int_eq(slapd_add_person(&pair.s[1], pair.base, u1), 0);
	ck_assert_int_eq(slapd_add_person(&pair.s[0], pair.base, u0), 0);
	char *d1 = xasprintf("uid=%s,ou=people,%s", u1, pair.base);
	char *d0 = xasprintf("uid=%s,ou=people,%s", u0, pair.base);
	ck_assert_msg(slapd_wait_entry(&pair.s[0], d1, true, 15), "%s: replica -> master", what);
	ck_assert_msg(slapd_wait_entry(&pair.s[1], d0, true, 15), "%s: master -> replica", what);
	free(u0);
	free(u1);
	free(d0);
	free(d1);
}

static void enumerate(enum slapd_layout layout, const char *suffix)
{
	const char *mode = layout == SLAPD_DELTA ? "delta" : "plain";
	char what[128];

	/* 1. reference */
	pair_start(layout, suffix);
	char *job = write_job();
	char *steps = xasprintf("%s/steps", pair.dir);
	snprintf(what, sizeof what, "%s reference promotion", mode);
	ck_assert_msg(run_job(job, 0, steps, false, what) == 0, "%s: exit status", what);
	char *ref_log = tu_read(steps);
	ck_assert_ptr_nonnull(ref_log);
	char *ref_names = step_names(ref_log);
	long n = count_lines(ref_log);
	ck_assert_msg(tu_contains(ref_log, "ldap agreement") && tu_contains(ref_log, "ldap server id"),
		      "%s: no cn=config write among the steps:\n%s", what, ref_log);
	char *ref0 = canon_config(0), *ref1 = canon_config(1);
	ck_assert_msg(tu_contains(ref0, "olcMultiProvider: TRUE") &&
		      tu_contains(ref1, "olcMultiProvider: TRUE"), "%s: not promoted", what);
	assert_replication("ref", what);
	fprintf(stderr, "%s: %ld durable steps\n%s", mode, n, ref_log);
	if (getenv("ZMB_TEST_VERBOSE"))
		fprintf(stderr, "---- master cn=config:\n%s---- replica cn=config:\n%s", ref0, ref1);
	free(job);
	free(steps);
	slapd_pair_stop(&pair);

	/* 2. crash after every step */
	for (long k = 1; k <= n; k++) {
		snprintf(what, sizeof what, "%s crash at step %ld/%ld", mode, k, n);
		pair_start(layout, suffix);
		job = write_job();
		steps = xasprintf("%s/steps", pair.dir);
		int rc = run_job(job, k, steps, false, what);
		char *log = tu_read(steps);
		ck_assert_msg(rc == 99, "%s: first run exited %d, not 99; steps:\n%s", what, rc,
			      log ? log : "");
		ck_assert_msg(count_lines(log) == k, "%s: %ld steps before the crash", what,
			      count_lines(log));
		char *names = step_names(log);
		ck_assert_msg(strncmp(names, ref_names, strlen(names)) == 0,
			      "%s: step order differs from the reference:\n%s", what, log);

		rc = run_job(job, 0, NULL, false, what);
		ck_assert_msg(rc == 0, "%s: resumed run exited %d (output above)", what, rc);
		char *c0 = canon_config(0), *c1 = canon_config(1);
		ck_assert_msg(strcmp(c0, ref0) == 0, "%s: master cn=config differs:\n---- got:\n%s"
			      "---- want:\n%s", what, c0, ref0);
		ck_assert_msg(strcmp(c1, ref1) == 0, "%s: replica cn=config differs:\n---- got:\n%s"
			      "---- want:\n%s", what, c1, ref1);
		assert_replication("k", what);
		ck_assert_msg(db_int("SELECT count(*) FROM stages WHERE name = 'promote' AND state = 'done'")
			      == 1, "%s: the promote stage is not recorded done", what);
		ck_assert_msg(db_int("SELECT count(*) FROM runs WHERE exit_status <> 0") == 0,
			      "%s: a run recorded a non-zero exit status", what);

		/* the stage forced to run again: no write at all (timestamps included) */
		char *b0 = slapd_dump_config(&pair.s[0]), *b1 = slapd_dump_config(&pair.s[1]);
		rc = run_job(job, 0, NULL, true, what);
		ck_assert_msg(rc == 0, "%s: forced rerun exited %d", what, rc);
		char *a0 = slapd_dump_config(&pair.s[0]), *a1 = slapd_dump_config(&pair.s[1]);
		ck_assert_msg(strcmp(a0, b0) == 0 && strcmp(a1, b1) == 0,
			      "%s: a rerun wrote to cn=config", what);

		free(a0);
		free(a1);
		free(b0);
		free(b1);
		free(c0);
		free(c1);
		free(names);
		free(log);
		free(job);
		free(steps);
		slapd_pair_stop(&pair);
	}
	free(ref0);
	free(ref1);
	free(ref_log);
	free(ref_names);
}

START_TEST(test_crash_every_step_plain)
{
	enumerate(SLAPD_PLAIN, "dc=example,dc=com");
}
END_TEST

START_TEST(test_crash_every_step_delta)
{
	/* accesslog DB, overlays and delta agreements: the most cn=config writes */
	enumerate(SLAPD_DELTA, "");
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("ldap_crash");
	TCase *tc = tcase_create("promote");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_crash_every_step_plain);
	tcase_add_test(tc, test_crash_every_step_delta);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
