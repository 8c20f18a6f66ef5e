/*
 * check_log.c - the logger: whole lines, secret redaction (including
 * secrets that look like the redaction marker), log file mode, reopen after
 * the file was renamed away (logrotate).
 */
#include "log.h"
#include "testutil.h"
#include "zmb.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

START_TEST(test_redact_basic)
{
	zlog_add_secret("s3cr3t-pass");
	zlog_add_secret("0_abcdef_0123");
	char *r = zlog_redact("login with s3cr3t-pass, token 0_abcdef_0123 and s3cr3t-pass again");
	ck_assert_str_eq(r, "login with ***, token *** and *** again");
	free(r);
	zlog_close();
}
END_TEST

START_TEST(test_redact_marker_like_secret_terminates)
{
	/* a secret equal to the marker, or containing it, must not loop */
	zlog_add_secret("***");
	zlog_add_secret("a***b");
	char *r = zlog_redact("x *** y a***b z");
	ck_assert_ptr_nonnull(r);
	ck_assert(strstr(r, "a***b") == NULL);
	free(r);
	zlog_close();
}
END_TEST

START_TEST(test_short_secrets_ignored)
{
	/* a 1-2 character "secret" would redact every line; it is not registered */
	zlog_add_secret("a");
	char *r = zlog_redact("a normal line");
	ck_assert_str_eq(r, "a normal line");
	free(r);
	zlog_close();
}
END_TEST

START_TEST(test_log_file_redacted_and_private)
{
	char *dir = tu_tmpdir("log");
	char *err = NULL;
	ck_assert_int_eq(zlog_open(dir, ZLOG_DEBUG, true, &err), 0);
	zlog_add_secret("hunter2-password");
	log_info("account a@example.com", "password is %s", "hunter2-password");
	log_debug(NULL, "debug line");
	char *path = xasprintf("%s/zmbatch.log", dir);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	char *text = tu_read(path);
	ck_assert(!tu_contains(text, "hunter2"));
	ck_assert(tu_contains(text, "[account a@example.com] password is ***"));
	ck_assert(tu_contains(text, "DEBUG debug line"));
	zlog_close();
	free(text);
	free(path);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* logrotate: the file is renamed away, then SIGHUP -> zlog_reopen() */
START_TEST(test_reopen_after_rename)
{
	char *dir = tu_tmpdir("log");
	char *err = NULL;
	ck_assert_int_eq(zlog_open(dir, ZLOG_INFO, true, &err), 0);
	char *path = xasprintf("%s/zmbatch.log", dir);
	char *rotated = xasprintf("%s/zmbatch.log.1", dir);
	log_info(NULL, "line before the rotation");
	ck_assert_int_eq(rename(path, rotated), 0);
	/* until the reopen, lines still go to the renamed file (the open descriptor) */
	log_info(NULL, "line between rename and reopen");
	ck_assert_int_ne(access(path, F_OK), 0);
	zlog_reopen();
	log_warn(NULL, "line after the reopen");

	struct stat st;
	ck_assert_msg(stat(path, &st) == 0, "no new log file at %s after the reopen", path);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	char *fresh = tu_read(path);
	char *old = tu_read(rotated);
	ck_assert_ptr_nonnull(fresh);
	ck_assert_ptr_nonnull(old);
	ck_assert_msg(tu_contains(fresh, "WARN  line after the reopen"), "new file: %s", fresh);
	ck_assert(!tu_contains(fresh, "before the rotation"));
	ck_assert(!tu_contains(fresh, "between rename and reopen"));
	ck_assert(tu_contains(old, "line before the rotation"));
	ck_assert(tu_contains(old, "line between rename and reopen"));
	ck_assert_msg(!tu_contains(old, "after the reopen"), "the renamed file still gets lines");
	zlog_close();
	free(fresh);
	free(old);
	free(rotated);
	free(path);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");
	tcase_add_test(tc, test_redact_basic);
	tcase_add_test(tc, test_redact_marker_like_secret_terminates);
	tcase_add_test(tc, test_short_secrets_ignored);
	tcase_add_test(tc, test_log_file_redacted_and_private);
	tcase_add_test(tc, test_reopen_after_rename);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
