/*
 * check_unit_verify.c - the verification rule (src/xfer/verify.c, README
 * "Verification"): >= per folder, what is left out and why, totals for a
 * delta pass, the figures' JSON form.  Links core and the one module.
 */
#include "testutil.h"

#include "xfer.h"
#include "zmb.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define F(p, v, n) { (char *)(p), (char *)(v), (n), (n) * 1000 }

static const struct xfer_folder SRC[] = {
	F("Inbox", "message", 30), F("Archive/2023", NULL, 12), F("Trash", "message", 9),
	F("Junk", "message", 4), F("Tasks", "task", 3), F("Briefcase", "document", 2),
	F("Empty", "message", 0),
};
#define NSRC (sizeof SRC / sizeof *SRC)

static enum xfer_verdict cmp(const struct xfer_folder *dst, size_t nd, const char *types,
			     bool carbonio, bool totals, char **detail)
{
	struct xfer_verify_rules r = { types, carbonio, totals };
	return xfer_verify_compare(SRC, NSRC, dst, nd, &r, detail);
}

/* The target holds as much or more everywhere (Trash/Junk not at all): ok, and the detail says what was left out. */
START_TEST(test_at_least_is_ok)
{
	const struct xfer_folder dst[] = { F("inbox", "message", 31), F("Archive/2023", NULL, 12),
					   F("Tasks", "task", 3), F("Briefcase", "document", 2) };
	char *d = NULL;
	ck_assert_int_eq(cmp(dst, 4, NULL, false, false, &d), XFER_VERIFY_OK);   /* case ignored */
	ck_assert_msg(strstr(d, "4 folder(s), 47 item(s) on the source, 48 on the target") &&
		      strstr(d, "Trash (9, Trash/Junk)") && strstr(d, "Junk (4, Trash/Junk)"), "%s", d);
	free(d);
}
END_TEST

/* The worst folder is named with its figures, and how many more are short. */
START_TEST(test_mismatch_names_worst_folder)
{
	const struct xfer_folder dst[] = { F("Inbox", "message", 27), F("Archive/2023", NULL, 2) };
	char *d = NULL;
	ck_assert_int_eq(cmp(dst, 2, NULL, false, false, &d), XFER_VERIFY_MISMATCH);
	ck_assert_msg(!strncmp(d, "Archive/2023: source 12 item(s), target 2 (10 missing); 3 more folder(s) short",
			       80), "%s", d);
	free(d);
}
END_TEST

/* Types the job does not export, and a Carbonio target's task/document folders, are left out with the reason. */
START_TEST(test_types_and_carbonio)
{
	const struct xfer_folder dst[] = { F("Inbox", "message", 30), F("Archive/2023", NULL, 12) };
	char *d = NULL;
	ck_assert_int_eq(cmp(dst, 2, "message,contact", false, false, &d), XFER_VERIFY_OK);
	ck_assert_msg(strstr(d, "Tasks (3, type not exported)"), "%s", d);
	free(d);
	ck_assert_int_eq(cmp(dst, 2, NULL, true, false, &d), XFER_VERIFY_OK);
	ck_assert_msg(strstr(d, "Tasks (3, Carbonio cannot import)") &&
		      strstr(d, "Briefcase (2, Carbonio cannot import)"), "%s", d);
	free(d);
	ck_assert_int_eq(cmp(dst, 2, NULL, false, false, &d), XFER_VERIFY_MISMATCH);
	free(d);
}
END_TEST

/* A delta pass: a message moved between folders is no loss; a total short is. */
START_TEST(test_delta_totals)
{
	const struct xfer_folder moved[] = { F("Inbox", "message", 29), F("Archive/2023", NULL, 13),
					     F("Tasks", "task", 3), F("Briefcase", "document", 2) };
	char *d = NULL;
	ck_assert_int_eq(cmp(moved, 4, NULL, false, true, &d), XFER_VERIFY_OK);
	free(d);
	ck_assert_int_eq(cmp(moved, 4, NULL, false, false, &d), XFER_VERIFY_MISMATCH);
	free(d);
	const struct xfer_folder lost[] = { F("Inbox", "message", 29), F("Archive/2023", NULL, 12),
					    F("Tasks", "task", 3), F("Briefcase", "document", 2) };
	ck_assert_int_eq(cmp(lost, 4, NULL, false, true, &d), XFER_VERIFY_MISMATCH);
	ck_assert_msg(strstr(d, "47 item(s) in 4 compared folder(s) on the source, 46 on the target"), "%s", d);
	free(d);
}
END_TEST

/* Figures survive their JSON form; anything else is refused. */
START_TEST(test_figures_json)
{
	char *j = xfer_figures_json(SRC, NSRC);
	struct xfer_folder *v = NULL;
	size_t n = 0;
	ck_assert_int_eq(xfer_figures_parse(j, &v, &n), 0);
	ck_assert_uint_eq(n, NSRC);
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(v[i].path, SRC[i].path);
		ck_assert(!SRC[i].view == !v[i].view);
		ck_assert_int_eq(v[i].n, SRC[i].n);
		ck_assert_int_eq(v[i].s, SRC[i].s);
	}
	xfer_folders_free(v, n);
	free(j);
	ck_assert_int_eq(xfer_figures_parse("{\"path\":1}", &v, &n), -1);
	ck_assert_int_eq(xfer_figures_parse(NULL, &v, &n), -1);
	ck_assert_int_eq(xfer_figures_parse("not json", &v, &n), -1);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("unit_verify");
	TCase *tc = tcase_create("verify");
	tcase_add_test(tc, test_at_least_is_ok);
	tcase_add_test(tc, test_mismatch_names_worst_folder);
	tcase_add_test(tc, test_types_and_carbonio);
	tcase_add_test(tc, test_delta_totals);
	tcase_add_test(tc, test_figures_json);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
