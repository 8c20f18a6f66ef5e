/*
 * shard.h - splitting one job's accounts over N independent runs.
 *
 * A shard is I/N (0 <= I < N <= SHARD_MAX).  An account belongs to shard
 * shard_of(account, N): FNV-1a 64 (offset basis 0xcbf29ce484222325, prime
 * 0x100000001b3) over the bytes of the account name with ASCII A-Z lowered
 * (no locale, no other byte changed), modulo N.  The function is part of
 * the on-disk contract: the same name lands in the same shard on every
 * machine and every version (tests/check_unit_shard.c pins known values).
 *
 * Each shard keeps its own state DB: shard_db_path() inserts ".shardI-of-N"
 * before the extension of the file name ("state.db" -> "state.shard2-of-4.db"),
 * or appends it when the name has none ("state" -> "state.shard2-of-4").
 *
 * shard_resolve() picks the shard of a command from --shard, --shard-count
 * and the engines' variables (see there).  Pure functions; any thread.
 */
#ifndef ZMB_SHARD_H
#define ZMB_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#define SHARD_MAX 1024

struct zmb_shard {
	unsigned index;   /* I */
	unsigned count;   /* N; 0 = not sharded */
};

uint64_t shard_hash(const char *account);
unsigned shard_of(const char *account, unsigned count);
/* count 0 (not sharded): every account is in. */
bool shard_has(const struct zmb_shard *s, const char *account);

/* "I/N" (decimal, 0 <= I < N <= SHARD_MAX).  0 ok, -1 not valid. */
int shard_parse(const char *text, struct zmb_shard *out);
/* The number N of --shard-count / ZMBATCH_SHARD_COUNT (1..SHARD_MAX).  0 ok, -1 not valid. */
int shard_parse_count(const char *text, unsigned *out);
/* "I/N" into buf (at least 16 bytes); "" when not sharded. */
const char *shard_label(const struct zmb_shard *s, char *buf, unsigned long size);
/* The shard's state DB path (caller frees); a copy of db when not sharded. */
char *shard_db_path(const char *db, const struct zmb_shard *s);

/*
 * The shard of one command, first match wins:
 *   1. opt_shard ("I/N" of --shard): explicit, the engines' variables are not
 *      read; an opt_count that differs from N is an error;
 *   2. JOB_COMPLETION_INDEX (Kubernetes Indexed Job): I; N from opt_count or
 *      ZMBATCH_SHARD_COUNT (both given and different: error; neither: error);
 *   3. SLURM_ARRAY_TASK_ID (Slurm job array): I = (ID - SLURM_ARRAY_TASK_MIN)
 *      / SLURM_ARRAY_TASK_STEP (MIN 0 and STEP 1 when unset); N from
 *      SLURM_ARRAY_TASK_COUNT, opt_count or ZMBATCH_SHARD_COUNT (those given
 *      must agree); an array that is not one evenly stepped range
 *      (SLURM_ARRAY_TASK_MAX) is an error;
 *   4. none of them: not sharded; opt_count or ZMBATCH_SHARD_COUNT alone is
 *      an error (a count without an index).
 * Both JOB_COMPLETION_INDEX and SLURM_ARRAY_TASK_ID set: an error.
 * Empty variables count as unset.  env(name, ctx) reads a variable (getenv
 * in the program, a table in tests).  Returns 0, or -1 with *err (caller
 * frees) for a usage error.
 */
typedef const char *(*shard_env_fn)(const char *name, void *ctx);
int shard_resolve(const char *opt_shard, const char *opt_count, shard_env_fn env, void *ctx,
		  struct zmb_shard *out, char **err);

#endif
