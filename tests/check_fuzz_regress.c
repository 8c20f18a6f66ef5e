/*
 * check_fuzz_regress.c - replay every fuzz seed (tests/fuzz/corpus/<t>/) and
 * every input that once crashed a target (tests/fuzz/regress/<t>/) through
 * the same entry points as the libFuzzer targets, built with the normal
 * compiler: found crashes stay fixed and the seeds stay valid.  Run it under
 * `make asan` to get the sanitizers too.
 *
 * The targets are #included here with LLVMFuzzerTestOneInput renamed, so
 * one runner holds all of them (no libFuzzer needed).  A target signals a
 * broken invariant with abort(), which Check reports as a failed test.
 */
#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "zmb.h"

int fz_conf_one(const uint8_t *data, size_t size);
int fz_legacy_one(const uint8_t *data, size_t size);
int fz_soap_one(const uint8_t *data, size_t size);
int fz_gzip_one(const uint8_t *data, size_t size);
int fz_ldap_one(const uint8_t *data, size_t size);
int fz_localconfig_one(const uint8_t *data, size_t size);
int fz_import_one(const uint8_t *data, size_t size);

#define LLVMFuzzerTestOneInput fz_conf_one
#include "fuzz/fuzz_conf.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_legacy_one
#include "fuzz/fuzz_legacy.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_soap_one
#include "fuzz/fuzz_soap.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_gzip_one
#include "fuzz/fuzz_gzip.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_ldap_one
#include "fuzz/fuzz_ldap.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_localconfig_one
#include "fuzz/fuzz_localconfig.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_import_one
#include "fuzz/fuzz_import.c"
#undef LLVMFuzzerTestOneInput

struct fz_target {
	const char *name;
	int (*one)(const uint8_t *data, size_t size);
};

static const struct fz_target fz_targets[] = {
	{ "conf", fz_conf_one },
	{ "legacy", fz_legacy_one },
	{ "soap", fz_soap_one },
	{ "gzip", fz_gzip_one },
	{ "ldap", fz_ldap_one },
	{ "localconfig", fz_localconfig_one },
	{ "import", fz_import_one },
};
#define NTARGETS (sizeof fz_targets / sizeof *fz_targets)

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Feed every regular file of dir (sorted, dot files skipped); returns the count. */
static size_t replay_dir(const struct fz_target *t, const char *dir)
{
	struct strlist names = STRLIST_INIT;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			strlist_add(&names, de->d_name);
	closedir(d);
	if (names.n)
		qsort(names.v, names.n, sizeof *names.v, name_cmp);
	size_t fed = 0;
	for (size_t i = 0; i < names.n; i++) {
		char *path = xasprintf("%s/%s", dir, names.v[i]);
		struct stat st;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			FILE *f = fopen(path, "rb");
			ck_assert_msg(f != NULL, "cannot open %s", path);
			uint8_t *data = xmalloc((size_t)st.st_size + 1);
			size_t n = fread(data, 1, (size_t)st.st_size, f);
			fclose(f);
			ck_assert_msg(n == (size_t)st.st_size, "short read of %s", path);
			/* on a crash Check names the last input printed here */
			fprintf(stderr, "fuzz replay %s: %s (%zu bytes)\n", t->name, path, n);
			t->one(data, n);
			free(data);
			fed++;
		}
		free(path);
	}
	strlist_release(&names);
	return fed;
}

/* One loop test per target: _i indexes fz_targets. */
START_TEST(test_corpus)
{
	const struct fz_target *t = &fz_targets[_i];
	char *dir = xasprintf("%s/tests/fuzz/corpus/%s", tu_srcdir(), t->name);
	size_t n = replay_dir(t, dir);
	ck_assert_msg(n > 0, "no seed inputs in %s", dir);
	free(dir);
}
END_TEST

/* A target with a regress folder has at least one input in it (an empty or
 * unreadable folder would replay nothing and pass). */
START_TEST(test_regress)
{
	const struct fz_target *t = &fz_targets[_i];
	char *dir = xasprintf("%s/tests/fuzz/regress/%s", tu_srcdir(), t->name);
	struct stat st;
	if (stat(dir, &st) == 0) {
		ck_assert_msg(S_ISDIR(st.st_mode), "%s is not a folder", dir);
		size_t n = replay_dir(t, dir);
		ck_assert_msg(n > 0, "no input in %s: a regress folder holds the inputs that once "
			      "crashed the target", dir);
	}
	free(dir);
}
END_TEST

/*
 * The crashes fuzzing found (README, "How to run each") stay in the tree:
 * without this, deleting tests/fuzz/regress would make test_regress pass
 * with nothing replayed.
 */
static const struct {
	const char *target, *file;
} known_crashes[] = {
	{ "legacy", "domainmap-equals.conf" },   /* DomainMap with '=' in a domain */
	{ "soap", "mailbox-size-huge-real" },    /* out-of-range mailbox size */
};

START_TEST(test_known_crashes_kept)
{
	for (size_t i = 0; i < sizeof known_crashes / sizeof *known_crashes; i++) {
		char *path = xasprintf("%s/tests/fuzz/regress/%s/%s", tu_srcdir(),
				       known_crashes[i].target, known_crashes[i].file);
		struct stat st;
		ck_assert_msg(stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0,
			      "regression input %s is missing", path);
		free(path);
	}
}
END_TEST

/* The replay would pass vacuously if a target were missing from the table. */
START_TEST(test_every_target_listed)
{
	char *dir = xasprintf("%s/tests/fuzz", tu_srcdir());
	DIR *d = opendir(dir);
	ck_assert_msg(d != NULL, "cannot open %s", dir);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (strncmp(de->d_name, "fuzz_", 5) || l < 8 || strcmp(de->d_name + l - 2, ".c"))
			continue;
		bool found = false;
		for (size_t i = 0; i < NTARGETS; i++)
			if (l - 7 == strlen(fz_targets[i].name) &&
			    !strncmp(de->d_name + 5, fz_targets[i].name, l - 7))
				found = true;
		ck_assert_msg(found, "%s/%s is not replayed by check_fuzz_regress", dir, de->d_name);
	}
	closedir(d);
	free(dir);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("fuzz_regress");
	TCase *tc = tcase_create("replay");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_corpus, 0, (int)NTARGETS);
	tcase_add_loop_test(tc, test_regress, 0, (int)NTARGETS);
	tcase_add_test(tc, test_every_target_listed);
	tcase_add_test(tc, test_known_crashes_kept);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
