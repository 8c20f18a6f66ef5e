/*
 * stage.h - job stages: the registry of stage types and the pipeline.
 *
 * A job is a list of stages (`stages = ( ... )`, default one "migrate").
 * Each stage type provides:
 *   validate(): called by conf_load() in the main thread, before anything
 *               runs; checks the stage's own keys (sc->settings) and returns
 *               0, or -1 with *err = "file:line: stage 'name': key: message".
 *   run():      called by the pipeline in the main thread; may start threads
 *               of its own (migrate does), must join them before returning.
 *               Writes human output lines with stage_out() (they go to stdout
 *               and into the stage row's `output` column).  Returns ZMB_OK,
 *               or an error with *err naming server and step.  A stage must
 *               be idempotent: a second run of a done stage changes nothing.
 */
#ifndef ZMB_STAGE_H
#define ZMB_STAGE_H

#include "job.h"
#include "shard.h"
#include "zmb.h"
#include <stdatomic.h>
#include <stdint.h>

struct state;
struct run_ctl;   /* run control: stop flag, deadline (src/core/runctl.h) */

struct stage_ctx {
	const struct job *job;
	const struct stage_conf *sc;
	struct state *st;          /* main-thread connection */
	const char *state_path;    /* to open per-thread connections */
	int64_t run_id;
	struct run_ctl *ctl;       /* stop requests, window; never NULL in run() */
	struct buf out;            /* collected output (stage_out appends) */
	bool dry_run;
	bool delta;
	bool quiet;
	bool rollback;             /* run --rollback: a cutover stage undoes its changes */
	const char *const *accounts;   /* run --rollback --account: only these (naccounts 0 = all) */
	int naccounts;
	struct zmb_shard shard;    /* run --shard I/N: only its accounts (count 0 = all) */
};

/*
 * What a stage's run() returns: one verdict, read by the pipeline
 * (cli/cmd_run.c run_stage).  rc: what went wrong (ZMB_OK if nothing did);
 * exit: the exit code the stage asks for even when rc is ZMB_OK (0; EXIT_PARTIAL:
 * some accounts failed permanently; EXIT_TEMPFAIL: stopped with work left;
 * EXIT_UNAVAILABLE: a server unreachable or refusing the login); err: the
 * reason, owned by the result (the caller frees it).
 */
struct stage_result {
	enum zmb_rc rc;
	int exit;
	char *err;
};

/* Print one output line of the stage (stdout + stored in the DB). */
void stage_out(struct stage_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* stage_out() each line of text (lines end in '\n'; the last one may not; NULL = none). */
void stage_out_text(struct stage_ctx *ctx, const char *text);

/* What the pipeline (cli/cmd_run.c) does differently for a type, as git's
 * command table carries RUN_SETUP | NEED_WORK_TREE. */
enum stage_flags {
	/* works the account queue of the state DB: a done stage runs again while
	 * accounts wait in it (reset ACCOUNT, --delta, --retry-failed) */
	STAGE_WORKS_QUEUE = 1 << 0,
	/* a failure of the state DB (ZMB_ESTATE, ZMB_EIO) leaves its work safe in
	 * the DB: exit 75, and the next run goes on */
	STAGE_DB_TEMPFAIL = 1 << 1,
};

struct stage_type {
	const char *name;
	int (*validate)(const struct stage_conf *sc, const char *file, char **err);
	struct stage_result (*run)(struct stage_ctx *ctx);
	unsigned flags;   /* enum stage_flags */
};

/* NULL if unknown. */
const struct stage_type *stage_type_find(const char *name);
/* "migrate, ldap-replcheck, ..." for messages (static string). */
const char *stage_type_names(void);

/* Stage implementations (each in its own file). */
int migrate_validate(const struct stage_conf *sc, const char *file, char **err);
struct stage_result migrate_run(struct stage_ctx *ctx);
int ldap_replcheck_validate(const struct stage_conf *sc, const char *file, char **err);
struct stage_result ldap_replcheck_run(struct stage_ctx *ctx);
int ldap_promote_validate(const struct stage_conf *sc, const char *file, char **err);
struct stage_result ldap_promote_run(struct stage_ctx *ctx);
int ldap_verify_validate(const struct stage_conf *sc, const char *file, char **err);
struct stage_result ldap_verify_run(struct stage_ctx *ctx);
int localconfig_validate(const struct stage_conf *sc, const char *file, char **err);
struct stage_result localconfig_run(struct stage_ctx *ctx);
/*
 * localconfig.xml for the other stages (stage_localconfig.c; main thread).
 * get: *val = the key's value (caller frees), NULL when the key is absent;
 * errors name the file and step.  set: names[i] = values[i] exactly as the
 * localconfig stage does it (unchanged keys untouched, backup, temp file +
 * rename, output lines through ctx, nothing written with ctx->dry_run).
 */
enum zmb_rc localconfig_get(const char *path, const char *key, char **val, char **err);
enum zmb_rc localconfig_set(struct stage_ctx *ctx, const char *path, const char *const *names,
			    const char *const *values, size_t n, bool backup, char **err);
int exec_validate(const struct stage_conf *sc, const char *file, char **err);
struct stage_result exec_run(struct stage_ctx *ctx);
/* provision: accounts (attributes, zimbraId, COS, aliases, password hash) to the target */
int provision_validate(const struct stage_conf *sc, const char *file, char **err);
struct stage_result provision_run(struct stage_ctx *ctx);
/* cutover.c: the cutover stage (issue 15); with ctx->rollback, its --rollback */
int cutover_validate(const struct stage_conf *sc, const char *file, char **err);
struct stage_result cutover_run(struct stage_ctx *ctx);

/*
 * For tests and fuzzing: run the LDAP value parsers of ldap_cnconfig.c (olcSyncrepl
 * tokens rid=/provider=/credentials=..., olcServerID, database DNs,
 * contextCSNs and the lag between two CSN sets) over every line of text;
 * the first line is taken as the server URI.  Results are discarded.
 */
void ldap_mmr_parse_for_fuzz(const char *text);

#endif
