/*
 * lock.h - the run lock: flock(2) on "<state db>.lock", held for the whole
 * run and released by the kernel if the process dies (no stale-PID logic).
 *
 * The lock file holds one line "pid=N host=H started=ISO8601 command=C" so a
 * second run can name the holder.  Main thread only.
 */
#ifndef ZMB_LOCK_H
#define ZMB_LOCK_H

#include "zmb.h"

struct run_lock;

/*
 * Take the lock next to db_path without waiting.  ZMB_OK with *out set, or
 * ZMB_EBUSY with *err = "another run holds the lock on DB (pid 123 on host
 * h, started ...)" (the caller exits 75), or ZMB_EIO.
 */
enum zmb_rc lock_acquire(const char *db_path, const char *command,
			 struct run_lock **out, char **err);
void lock_release(struct run_lock *l);   /* NULL-safe */

#endif
