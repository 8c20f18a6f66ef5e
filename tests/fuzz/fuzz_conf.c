/*
 * fuzz_conf.c - the native job file path: conf_load() on a file (format
 * detection by votes, libconfig 1.5, the big-integer guard, every key's
 * validation, the stage validators, conf_finish()).
 *
 * Invariant checked: a job file that loads is written out by
 * conf_write_native() (`zmbatch convert`) into a file that loads again.
 */
#include "fuzz_util.h"

#include "job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct job job, again;
	char *err = NULL, *err2 = NULL, *out = NULL, *path2 = NULL;
	size_t outlen = 0;
	char *path = fz_file("job.conf", data, size);

	if (conf_load(path, false, &job, &err) == ZMB_OK) {
		FILE *m = open_memstream(&out, &outlen);
		if (!m)
			abort();
		conf_write_native(&job, m);
		fclose(m);
		path2 = fz_file("converted.conf", out, outlen);
		if (conf_load(path2, false, &again, &err2) != ZMB_OK)
			fz_fail("conf", "converted job file does not load", err2);
		job_release(&again);
		job_release(&job);
	}
	free(err);
	free(err2);
	free(out);
	free(path2);
	free(path);
	return 0;
}
