/*
 * testutil.h - helpers shared by the Check suites.
 *
 * Call these from test bodies or checked fixtures (inside the forked child),
 * never before srunner_run_all().
 */
#ifndef ZMB_TESTUTIL_H
#define ZMB_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* mkdtemp under $TMPDIR (or /tmp); caller frees; removed by tu_rmrf. */
char *tu_tmpdir(const char *tag);
void tu_rmrf(const char *path);
/* Write a file (mode 0600 unless mode given); path is dir/name; caller frees result. */
char *tu_write(const char *dir, const char *name, const char *text, unsigned mode);
/* Read a whole file; NULL if missing; caller frees. */
char *tu_read(const char *path);
/* The zmbatch binary under test ($ZMBATCH_BIN, else bin/zmbatch). */
const char *tu_zmbatch(void);
/* the test build of zmbatch ($ZMBATCH_HOOKS_BIN, else build/release/zmbatch-testhooks):
 * the only one that obeys ZMBATCH_CRASH_AT, ZMBATCH_STEP_LOG, ZMBATCH_TEST_FREE_BYTES */
const char *tu_zmbatch_hooks(void);
/*
 * Say that the current test could not run here and passes without checking
 * anything.  Call it from the test function itself (TU_SKIP takes the test's
 * name from __func__).  tests/run-tests counts these "SKIP: test: why" lines
 * and fails the run unless ALLOW_SKIP names the test (see tests/run-tests).
 */
void tu_skip(const char *func, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define TU_SKIP(...) tu_skip(__func__, __VA_ARGS__)
/* Source tree root ($ZMB_SRCDIR, else "."). */
const char *tu_srcdir(void);

struct tu_proc {
	int status;      /* exit code, or 128+signal */
	char *out;       /* captured stdout (NUL-terminated) */
	char *err;       /* captured stderr */
};
/*
 * Run argv (argv[0] searched in PATH unless it has a '/') with extra
 * environment entries env ("K=V", NULL-terminated, may be NULL), capture
 * stdout/stderr, wait at most timeout_s seconds (then SIGKILL, status 137).
 */
int tu_run(char *const argv[], char *const env[], double timeout_s, struct tu_proc *p);
/* Start argv in the background (stdout/stderr to files out_path/err_path, may be NULL). */
pid_t tu_spawn(char *const argv[], char *const env[], const char *out_path, const char *err_path);
/* Wait for pid at most timeout_s; returns exit status (128+sig), or -1 on timeout. */
int tu_wait(pid_t pid, double timeout_s);
void tu_proc_release(struct tu_proc *p);
/* A free TCP port on 127.0.0.1 (bind to 0, read back, close). */
int tu_free_port(void);
/* A loopback port where nothing listens and nobody else can start to: it is
 * bound by *fd (not listening, so a connect is refused) until the caller
 * closes *fd.  For "server down" tests, instead of a port found free. */
int tu_dead_port(int *fd);
/* Does haystack contain needle? NULL-safe. */
bool tu_contains(const char *haystack, const char *needle);
/* Sleep for seconds (double). */
void tu_sleep(double s);

#endif
