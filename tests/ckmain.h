/*
 * ckmain.h - shared main() for Check runners.
 *
 * Each tests/check_<area>.c includes this once after defining
 *   static Suite *make_suite(void);
 * and gets a main() that runs it in CK_FORK mode with CK_ENV verbosity.
 */
#ifndef ZMB_CKMAIN_H
#define ZMB_CKMAIN_H
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

static Suite *make_suite(void);

int main(void)
{
	/* unbuffered: libcheck forks, buffered output would be duplicated */
	setvbuf(stdout, NULL, _IONBF, 0);
	SRunner *sr = srunner_create(make_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
#endif
