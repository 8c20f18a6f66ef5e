/*
 * testhooks.h - fault-injection hooks for the test suites.
 *
 * The shipped binary (bin/zmbatch) is built with the inert variant: every
 * hook does nothing and no environment variable changes its behaviour.  The
 * test build (Makefile: $(B)/zmbatch-testhooks and the test runners) compiles
 * testhooks.c with -DZMBATCH_TESTING, where:
 *   ZMBATCH_CRASH_AT=k       the k-th crashpoint() _exit(99)s (crash enumeration)
 *   ZMBATCH_STEP_LOG=FILE    crashpoint() appends "k what" per step (to count them)
 *   ZMBATCH_TEST_FREE_BYTES=N  testhook_free_bytes() reports N free bytes in working_dir
 *   ZMBATCH_FSYNC_LOG=FILE   testhook_fsynced() appends "k path" per fsync, k = the
 *                            durable steps (crashpoint() calls) completed before it
 * and testhooks_announce() logs a loud warning at start when any is set.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef ZMB_TESTHOOKS_H
#define ZMB_TESTHOOKS_H

#include <stdbool.h>

/*
 * Call after every durable state change (each committed transaction, each
 * rename).  Inert in the shipped binary.
 */
void crashpoint(const char *what);

/* Record that path (a file or a directory) was fsync()ed successfully.
 * Inert in the shipped binary. */
void testhook_fsynced(const char *path);

/* Replace *freeb by the test's fake free-space figure; false (and *freeb
 * untouched) when none is set or in the shipped binary. */
bool testhook_free_bytes(long long *freeb);

/*
 * Durable steps must come in one order from run to run (ZMBATCH_CRASH_AT or
 * ZMBATCH_STEP_LOG is set): a worker that hands an account to a verifier
 * thread waits for it to be ended before it claims the next, so the
 * verifier's commits do not race the worker's.  false in the shipped binary.
 */
bool testhook_serial_steps(void);

/* Log a warning naming every test hook in effect (test build only).  Call
 * once at the start of a command, after the logger is open. */
void testhooks_announce(void);

#endif
