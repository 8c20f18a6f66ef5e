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
 *
 * By server (run --shard-by server): an account belongs to the shard of its
 * source home mailbox server (zimbraMailHost) instead of its name's hash.
 * What is dealt is the source installation's mailbox servers
 * (GetAllServersRequest service=mailbox), lower-cased and sorted in byte
 * order (shard_server_set), round-robin: the k-th goes to shard k mod N
 * (shard_server_owner).  The list depends neither on the accounts nor on
 * when a shard starts.  A shard's first run records it (meta "shard_by" =
 * "server", "shard_servers" = the list, comma-separated; migrate_plan.c)
 * and later runs deal the recorded list, so the deal never changes under a
 * shard; a server added since is only said.  An account whose home is
 * unknown (no such account, no zimbraMailHost) or not in the list belongs
 * to shard 0, in every shard alike; any other lookup error stops the plan.
 * A later run of the DB with the other mode is refused with exit 78.  An
 * account already in the shard's DB stays with it (a mailbox moved to
 * another server meanwhile is named in a warning: the new server's shard
 * cannot know and may take it too; report --merge names such an account).
 * A shard that gets no server has nothing to do and says so (exit 0).  The
 * DB's name, lock and working_dir are those of a hash shard of the same I/N.
 */
#ifndef ZMB_SHARD_H
#define ZMB_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHARD_MAX 1024

/* How accounts are dealt (run --shard-by). */
enum shard_by { SHARD_BY_HASH = 0, SHARD_BY_SERVER };

struct zmb_shard {
	unsigned index;   /* I */
	unsigned count;   /* N; 0 = not sharded */
	enum shard_by by;
};

/* "hash" or "server" into *out: 0 ok, -1 not valid. */
int shard_by_parse(const char *text, enum shard_by *out);
const char *shard_by_name(enum shard_by by);   /* "hash", "server" */
/* Lower-case every name of l, sort (strcmp) and drop duplicates and empty names, in place. */
struct strlist;
void shard_server_set(struct strlist *l);
/*
 * The shard (0..count-1) of server among servers[0..n) (a shard_server_set):
 * its position mod count, compared without ASCII case; 0 for a server not in
 * the set or NULL (home unknown), and when count is 0.
 */
unsigned shard_server_owner(const char *const *servers, size_t n, const char *server, unsigned count);

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
