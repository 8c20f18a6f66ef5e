/*
 * cli.h - parsed command line shared by the command implementations.
 *
 * main.c parses argv into one `struct cli` and calls the command's function
 * (cmd_*.c).  Each command returns a process exit code (enum zmb_exit).
 * Commands run in the main thread.
 */
#ifndef ZMB_CLI_H
#define ZMB_CLI_H

#include "shard.h"

#include <stdbool.h>

struct cli {
	const char *cmd;           /* "run", "status", ... */
	const char *config;        /* -c FILE */
	const char *state;         /* --state DB */
	int threads;               /* --threads N, 0 = from job */
	const char *stage;         /* --stage NAME */
	bool delta;
	bool rollback;         /* run --rollback: undo the cutover stages' changes */
	const char *accounts[64];  /* run --rollback --account ADDR (repeatable): only these */
	int naccounts;
	long long max_runtime;     /* --max-runtime, -1 = unset */
	const char *until;         /* --until HH:MM */
	bool dry_run;
	bool retry_failed;
	const char *ca_file;       /* --ca-file */
	bool insecure;
	bool quiet;
	bool verbose;
	const char *format;        /* report --format */
	const char *output;        /* report --output */
	const char *state_filter;  /* accounts --state-filter */
	const char *history;       /* accounts --history ACCOUNT */
	bool failed;               /* reset --failed */
	bool all;                  /* verify --all */
	bool done;                 /* verify --done (the default) */
	bool reset_mismatched;     /* verify --reset-mismatched */
	const char *shard_opt;     /* --shard I/N */
	const char *shard_count_opt; /* --shard-count N */
	const char *shard_by_opt;  /* run --shard-by hash|server (NULL: not given, hash) */
	enum shard_by shard_by;    /* its value, copied into shard.by once resolved */
	struct zmb_shard shard;    /* resolved (main.c): count 0 = not sharded */
	char *state_shard;         /* the shard's default DB path (cli_state_path) */
	bool merge;                /* report/status --merge DB... */
	char **args;               /* remaining operands */
	int nargs;
};

int cmd_run(struct cli *cli);
int cmd_status(struct cli *cli);
int cmd_report(struct cli *cli);
int cmd_accounts(struct cli *cli);
int cmd_reset(struct cli *cli);
int cmd_convert(struct cli *cli);
int cmd_check(struct cli *cli);
int cmd_verify(struct cli *cli);

/*
 * Shared by commands: load the job named by cli->config (default
 * ./zmbatch.cfg), apply --ca-file/--insecure/--threads, print the error and
 * return an exit code on failure (0 on success).
 */
struct job;
int cli_load_job(struct cli *cli, bool resolve_secrets, struct job *job);
/* Print a (multi-line) error on stderr, each line as "zmbatch: LINE". */
void cli_print_error(const char *msg);
/* The state DB path: --state, else the job's state.db (with a shard,
 * state.shardI-of-N.db: shard_db_path()). */
const char *cli_state_path(struct cli *cli, const struct job *job);

/*
 * For the read-side commands: load the job (-c, or ./zmbatch.cfg unless
 * --state alone was given), resolve the DB path and make sure the DB exists;
 * prints the error and returns the exit code (0 ok, 78 config, 1 no DB yet).
 * Secrets are not resolved.  report_db_close() must be called whatever it
 * returns.
 */
struct report_db;
int report_db_load(struct cli *cli, struct report_db *r);
/*
 * report/status --merge DB...: the DBs (cli->args), each read-only, as one
 * merged state DB (state_merge_open); *st is the caller's to state_close().
 * Prints the error and returns the exit code: 0, 1 (a DB missing or
 * unreadable), 78 (DBs of two jobs).  *dups = accounts found in two DBs,
 * *untaken = accounts a by-server shard listed that no DB holds (the
 * command exits 1 for either, after its report names them).
 */
struct state;
int cli_merge_open(struct cli *cli, struct state **st, long long *dups, long long *untaken);

#endif
