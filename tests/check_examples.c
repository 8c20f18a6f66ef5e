/*
 * check_examples.c - every example job file shipped in conf/ (and shown in
 * the README) loads: a documented example that does not parse is a bug.
 */
#include "job.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const examples[] = {
	"conf/zmbatch.cfg.example",
	"conf/zmztozmig.conf.example",
	"conf/carbonio-mmr.cfg.example",
	"conf/zimbra-mmr.cfg.example",
	"conf/zimbra-to-carbonio.cfg.example",
};

static const char *const mmr_examples[] = {
	"conf/zimbra-mmr.cfg.example",
	"conf/carbonio-mmr.cfg.example",
};

START_TEST(test_example_loads)
{
	char path[512];
	struct job job;
	char *err = NULL;
	snprintf(path, sizeof path, "%s/%s", tu_srcdir(), examples[_i]);
	enum zmb_rc rc = conf_load(path, false, &job, &err);
	ck_assert_msg(rc == ZMB_OK, "%s: %s", path, err ? err : "?");
	ck_assert_int_gt((int)job.nstages, 0);
	job_release(&job);
	free(err);
}
END_TEST

/* The vendor order (README's table): check, accesslog dir, promote, ldap_master, restart, verify. */
START_TEST(test_mmr_example_stages)
{
	char path[512];
	struct job job;
	char *err = NULL;
	snprintf(path, sizeof path, "%s/%s", tu_srcdir(), mmr_examples[_i]);
	ck_assert_int_eq(conf_load(path, false, &job, &err), ZMB_OK);
	const char *types[] = { "ldap-replcheck", "exec", "ldap-promote-mmr", "exec", "exec",
				"exec", "exec", "ldap-mmr-verify" };
	const char *names[] = { "replcheck", "accesslog-dir", "promote", "ldap-master-ldap2",
				"ldap-master-ldap1", "restart-ldap2", "restart-ldap1", "verify" };
	ck_assert_int_eq((int)job.nstages, 8);
	for (int i = 0; i < 8; i++) {
		ck_assert_str_eq(job.stages[i].type, types[i]);
		ck_assert_str_eq(job.stages[i].name, names[i]);
	}
	job_release(&job);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("examples");
	TCase *tc = tcase_create("examples");
	tcase_add_loop_test(tc, test_example_loads, 0, (int)(sizeof examples / sizeof *examples));
	tcase_add_loop_test(tc, test_mmr_example_stages, 0,
			    (int)(sizeof mmr_examples / sizeof *mmr_examples));
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
