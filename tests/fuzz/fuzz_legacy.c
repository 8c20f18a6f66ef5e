/*
 * fuzz_legacy.c - the zmztozmig.conf reader: conf_is_legacy() (format
 * detection), conf_legacy_parse() and conf_finish() on the result.
 *
 * Invariant checked: a legacy file that is accepted converts
 * (conf_write_native) into a native job file that loads.
 */
#include "fuzz_util.h"

#include "job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct job job, again;
	char *err = NULL, *err2 = NULL, *out = NULL, *path2 = NULL;
	size_t outlen = 0;
	char *text = fz_text(data, size);
	char *path = xasprintf("%s/zmztozmig.conf", fz_tmpdir());

	(void)conf_is_legacy(text);
	enum zmb_rc rc = conf_legacy_parse(path, text, &job, &err);
	if (rc == ZMB_OK) {
		rc = conf_finish(&job, false, &err);
		if (rc == ZMB_OK) {
			FILE *m = open_memstream(&out, &outlen);
			if (!m)
				abort();
			conf_write_native(&job, m);
			fclose(m);
			path2 = fz_file("converted.conf", out, outlen);
			if (conf_load(path2, false, &again, &err2) != ZMB_OK)
				fz_fail("legacy", "converted zmztozmig.conf does not load", err2);
			job_release(&again);
		}
	}
	job_release(&job);
	free(err);
	free(err2);
	free(out);
	free(path2);
	free(path);
	free(text);
	return 0;
}
