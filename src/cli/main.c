/*
 * main.c - command table, option parsing, global initialisation.
 *
 * main(): global settings (umask 077, SIGPIPE ignored), the words that need
 * no command (--version, --help), the command by name, its options (each
 * command accepts a subset of one option table), its arguments, then the
 * command itself between curl_global_init() and curl_global_cleanup().
 * Main thread only, before any other thread exists.
 */
#include "cli.h"
#include "job.h"
#include "log.h"
#include "shard.h"
#include "zmb.h"

#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
	OPT_STATE = 256, OPT_THREADS, OPT_STAGE, OPT_DELTA, OPT_MAX_RUNTIME, OPT_UNTIL,
	OPT_DRY_RUN, OPT_RETRY_FAILED, OPT_CA_FILE, OPT_INSECURE, OPT_QUIET,
	OPT_VERBOSE, OPT_FORMAT, OPT_OUTPUT, OPT_STATE_FILTER, OPT_FAILED,
	OPT_HISTORY, OPT_ALL, OPT_DONE, OPT_RESET_MISMATCHED, OPT_HELP, OPT_ROLLBACK,
	OPT_ACCOUNT, OPT_SHARD, OPT_SHARD_COUNT, OPT_SHARD_BY, OPT_MERGE,
};

/* Which options a command accepts, as flags over this table. */
static const struct option all_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "stage", required_argument, NULL, OPT_STAGE },
	{ "delta", no_argument, NULL, OPT_DELTA },
	{ "rollback", no_argument, NULL, OPT_ROLLBACK },
	{ "account", required_argument, NULL, OPT_ACCOUNT },
	{ "max-runtime", required_argument, NULL, OPT_MAX_RUNTIME },
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "retry-failed", no_argument, NULL, OPT_RETRY_FAILED },
	{ "ca-file", required_argument, NULL, OPT_CA_FILE },
	{ "insecure", no_argument, NULL, OPT_INSECURE },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "state-filter", required_argument, NULL, OPT_STATE_FILTER },
	{ "failed", no_argument, NULL, OPT_FAILED },
	{ "history", required_argument, NULL, OPT_HISTORY },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "done", no_argument, NULL, OPT_DONE },
	{ "reset-mismatched", no_argument, NULL, OPT_RESET_MISMATCHED },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "shard", required_argument, NULL, OPT_SHARD },
	{ "shard-count", required_argument, NULL, OPT_SHARD_COUNT },
	{ "shard-by", required_argument, NULL, OPT_SHARD_BY },
	{ "merge", no_argument, NULL, OPT_MERGE },
	{ NULL, 0, NULL, 0 },
};

struct command {
	const char *name;
	int (*fn)(struct cli *);
	const char *opts;     /* space-separated long option names accepted */
	const char *usage;
	const char *help;
};

static const struct command commands[] = {
	{ "run", cmd_run,
	  "config state threads stage delta rollback account max-runtime until dry-run retry-failed ca-file insecure quiet verbose shard shard-count shard-by",
	  "run [-c FILE] [--state DB] [--shard I/N | --shard-count N] [--shard-by hash|server]\n"
	  "            [--threads N] [--stage NAME]\n"
	  "            [--delta | --rollback [--account ADDR]...]\n"
	  "            [--max-runtime DURATION] [--until HH:MM] [--dry-run] [--retry-failed]\n"
	  "            [--ca-file PEM] [--insecure] [--quiet] [--verbose]",
	  "Run the job: its stages in order (default: one 'migrate' stage), resuming\n"
	  "where an earlier run stopped.  Exit 0 when everything is done, 1 when some\n"
	  "accounts or stages failed, 75 when stopped early with work left.\n"
	  "--rollback runs only the cutover stages, backwards: every account they\n"
	  "changed gets back the status and zimbraMailTransport recorded before\n"
	  "(--account ADDR, repeatable: only those source accounts).\n"
	  "--shard I/N: only the accounts whose name hashes to shard I of N (FNV-1a 64\n"
	  "of the lower-cased name, mod N), in a state DB of their own\n"
	  "(state.db -> state.shardI-of-N.db).  Without --shard, JOB_COMPLETION_INDEX\n"
	  "(with --shard-count N or ZMBATCH_SHARD_COUNT) or SLURM_ARRAY_TASK_ID\n"
	  "(with SLURM_ARRAY_TASK_MIN/COUNT) select the shard.\n"
	  "--shard-by server (with a shard): an account belongs to the shard of its\n"
	  "source home mailbox server (zimbraMailHost) instead: the job's mail hosts,\n"
	  "lower-cased and sorted, are dealt round-robin (the k-th to shard k mod N),\n"
	  "so each shard takes whole servers; a shard that gets none has nothing to\n"
	  "do (exit 0).  The DB remembers the mode and the server set: a rerun with\n"
	  "the other mode or after a server was added or removed is refused (78).\n"
	  "--shard-by hash is the default." },
	{ "status", cmd_status, "config state shard shard-count merge",
	  "status [-c FILE] [--state DB] [--shard I/N] | status --merge DB...",
	  "One screen from the state DB: stages, counts by state, bytes, rate, ETA.\n"
	  "Safe while a run is in progress." },
	{ "report", cmd_report, "config state format output shard shard-count merge",
	  "report [-c FILE] [--state DB] [--shard I/N] [--format text|csv|json|prom|html] [--output FILE]",
	  "Write a report from the state DB.  --output writes atomically (temp + rename).\n"
	  "--format html: one self-contained page (charts, failures with what to do,\n"
	  "servers, stages, runs) to open in a browser or print.\n"
	  "report [--format F] [--output FILE] --merge DB...: several shard DBs of one job,\n"
	  "read-only, as one report in any format (the text and JSON also count per DB);\n"
	  "an account in two DBs is an error named in the report (exit 1)." },
	{ "accounts", cmd_accounts, "config state state-filter history shard shard-count",
	  "accounts [-c FILE] [--state DB] [--shard I/N] [--state-filter STATE] [--history ACCOUNT]",
	  "One line per account; --history shows one account's event log." },
	{ "reset", cmd_reset, "config state failed shard shard-count",
	  "reset [-c FILE] [--state DB] [--shard I/N] (ACCOUNT... | --failed)",
	  "Put accounts back to pending (attempts cleared)." },
	{ "convert", cmd_convert, "",
	  "convert ZMZTOZMIG_CONF",
	  "Print the native job file equivalent to a zmztozmig.conf.  Passwords are\n"
	  "not printed: the output names a password file to create instead." },
	{ "check", cmd_check, "config ca-file insecure state",
	  "check [-c FILE]",
	  "Validate the job, reach and authenticate to every server (SOAP and LDAP),\n"
	  "check the directories.  One verdict line per item; exit 0, 69 or 78." },
	{ "verify", cmd_verify, "config state all done reset-mismatched ca-file insecure shard shard-count",
	  "verify [-c FILE] [--state DB] [--shard I/N] [ACCOUNT... | --all | --done] [--reset-mismatched]\n"
	  "            [--ca-file PEM] [--insecure]",
	  "Prove again that mailboxes arrived, moving no data: the source's folder\n"
	  "figures stored at export against the target's now, folder by folder.\n"
	  "--done (default): accounts in state done; --all: every account imported at\n"
	  "least once; or the named accounts.  One line per account (ACCOUNT VERDICT\n"
	  "DETAIL), the verdict recorded in the state DB.  No account's state changes,\n"
	  "unless --reset-mismatched puts mismatched done accounts back to pending.\n"
	  "Exit 0 all ok, 1 some mismatch or unverifiable, 69, 75 (a run holds the lock), 78." },
};

static void usage_all(FILE *f)
{
	fprintf(f, "usage: zmbatch COMMAND [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		fprintf(f, "  zmbatch %s\n", commands[i].usage);
	fprintf(f, "  zmbatch --version | --help | COMMAND --help\n\n"
		   "DURATION: 90s, 45m, 8h or plain seconds.  See zmbatch(1).\n");
}

static bool cmd_accepts(const struct command *c, const char *opt)
{
	size_t n = strlen(opt);
	const char *p = c->opts;
	while ((p = strstr(p, opt)) != NULL) {
		bool start = p == c->opts || p[-1] == ' ';
		bool end = p[n] == '\0' || p[n] == ' ';
		if (start && end)
			return true;
		p += n;
	}
	return false;
}

static int usage_error(const struct command *c, const char *fmt, const char *arg)
{
	fprintf(stderr, "zmbatch: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nusage: zmbatch %s\n(try 'zmbatch %s --help')\n", c->usage, c->name);
	return EXIT_USAGE;
}

/* Parsing goes on (the steps below return an exit code to stop main). */
#define GO_ON (-1)

/* --version, --help or an unknown command; sets *c to the command named. */
static int find_command(int argc, char **argv, const struct command **c)
{
	if (argc < 2) {
		usage_all(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("zmbatch %s\n", ZMB_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage_all(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		if (!strcmp(argv[1], commands[i].name))
			*c = &commands[i];
	if (!*c) {
		fprintf(stderr, "zmbatch: unknown command '%s'\n(try 'zmbatch --help')\n", argv[1]);
		return EXIT_USAGE;
	}
	return GO_ON;
}

/* One option the command accepts, its value checked, into cli. */
static int set_option(const struct command *c, int opt, struct cli *cli)
{
	switch (opt) {
	case 'c': cli->config = optarg; break;
	case OPT_STATE: cli->state = optarg; break;
	case OPT_THREADS: {
		long long n;
		if (parse_ll(optarg, &n) < 0 || n < 1 || n > 256)
			return usage_error(c, "--threads wants a number from 1 to 256, not '%s'", optarg);
		cli->threads = (int)n;
		break;
	}
	case OPT_STAGE: cli->stage = optarg; break;
	case OPT_DELTA: cli->delta = true; break;
	case OPT_ROLLBACK: cli->rollback = true; break;
	case OPT_ACCOUNT:
		if (cli->naccounts >= (int)(sizeof cli->accounts / sizeof *cli->accounts))
			return usage_error(c, "%s", "--account: at most 64 accounts at once");
		cli->accounts[cli->naccounts++] = optarg;
		break;
	case OPT_MAX_RUNTIME:
		if (parse_duration(optarg, &cli->max_runtime) < 0)
			return usage_error(c, "--max-runtime wants a duration (90s, 45m, 8h), not '%s'", optarg);
		break;
	case OPT_UNTIL: {
		int hh, mm;
		if (parse_hhmm(optarg, &hh, &mm) < 0)
			return usage_error(c, "--until wants HH:MM, not '%s'", optarg);
		cli->until = optarg;
		break;
	}
	case OPT_DRY_RUN: cli->dry_run = true; break;
	case OPT_RETRY_FAILED: cli->retry_failed = true; break;
	case OPT_CA_FILE: cli->ca_file = optarg; break;
	case OPT_INSECURE: cli->insecure = true; break;
	case 'q':
	case OPT_QUIET: cli->quiet = true; break;
	case OPT_VERBOSE: cli->verbose = true; break;
	case OPT_FORMAT:
		if (strcmp(optarg, "text") && strcmp(optarg, "csv") &&
		    strcmp(optarg, "json") && strcmp(optarg, "prom") && strcmp(optarg, "html"))
			return usage_error(c, "--format wants text, csv, json, prom or html, not '%s'", optarg);
		cli->format = optarg;
		break;
	case OPT_OUTPUT: cli->output = optarg; break;
	case OPT_STATE_FILTER: cli->state_filter = optarg; break;
	case OPT_FAILED: cli->failed = true; break;
	case OPT_HISTORY: cli->history = optarg; break;
	case OPT_ALL: cli->all = true; break;
	case OPT_DONE: cli->done = true; break;
	case OPT_RESET_MISMATCHED: cli->reset_mismatched = true; break;
	case OPT_SHARD: cli->shard_opt = optarg; break;
	case OPT_SHARD_COUNT: cli->shard_count_opt = optarg; break;
	case OPT_SHARD_BY:
		if (shard_by_parse(optarg, &cli->shard_by) < 0)
			return usage_error(c, "--shard-by wants hash or server, not '%s'", optarg);
		cli->shard_by_opt = optarg;
		break;
	case OPT_MERGE: cli->merge = true; break;
	}
	return GO_ON;
}

/* The options after the command word; the rest are its arguments. */
static int parse_options(const struct command *c, int argc, char **argv, struct cli *cli)
{
	optind = 1;
	opterr = 0;
	int ac = argc - 1;
	char **av = argv + 1;
	int opt, longidx, r;
	while ((opt = getopt_long(ac, av, "+:c:hq", all_opts, &longidx)) != -1) {
		const char *oname = NULL;
		if (opt == '?')
			return usage_error(c, "unknown option '%s'", av[optind - 1]);
		if (opt == ':')
			return usage_error(c, "option '%s' needs a value", av[optind - 1]);
		if (opt == 'h' || opt == OPT_HELP) {
			printf("usage: zmbatch %s\n\n%s\n", c->usage, c->help);
			return 0;
		}
		for (const struct option *o = all_opts; o->name; o++)
			if (o->val == opt)
				oname = o->name;
		if (opt == 'q')
			oname = "quiet";
		if (!oname || !cmd_accepts(c, oname))
			return usage_error(c, "option '%s' is not valid here", av[optind - 1]);
		if ((r = set_option(c, opt, cli)) != GO_ON)
			return r;
	}
	cli->args = av + optind;
	cli->nargs = ac - optind;
	return GO_ON;
}

/* Only convert, reset and verify take arguments. */
static int check_args(const struct command *c, const struct cli *cli)
{
	if (!strcmp(c->name, "convert") && cli->nargs != 1)
		return usage_error(c, "%s", "convert takes exactly one file");
	if (!strcmp(c->name, "reset") && !cli->failed && cli->nargs == 0)
		return usage_error(c, "%s", "reset needs ACCOUNT... or --failed");
	if (!strcmp(c->name, "reset") && cli->failed && cli->nargs > 0)
		return usage_error(c, "%s", "reset takes either ACCOUNT... or --failed, not both");
	if (!strcmp(c->name, "verify") && (cli->all + cli->done + (cli->nargs > 0)) > 1)
		return usage_error(c, "%s", "verify takes one of ACCOUNT..., --all or --done");
	if (cli->merge && cli->nargs == 0)
		return usage_error(c, "%s", "--merge needs the state DBs to merge: --merge DB...");
	if (cli->merge && (cli->state || cli->config || cli->shard_opt || cli->shard_count_opt))
		return usage_error(c, "%s", "--merge takes DB paths only (no -c, --state, --shard)");
	if (strcmp(c->name, "convert") && strcmp(c->name, "reset") && strcmp(c->name, "verify") &&
	    !cli->merge && cli->nargs > 0)
		return usage_error(c, "unexpected argument '%s'", cli->args[0]);
	return GO_ON;
}

static const char *env_lookup(const char *name, void *ctx)
{
	(void)ctx;
	return getenv(name);
}

/* The shard of a command that takes one: --shard, --shard-count, the engines' variables. */
static int resolve_shard(const struct command *c, struct cli *cli)
{
	char *err = NULL;
	if (!cmd_accepts(c, "shard") || cli->merge)   /* --merge names its DBs */
		return GO_ON;
	if (shard_resolve(cli->shard_opt, cli->shard_count_opt, env_lookup, NULL, &cli->shard, &err) < 0) {
		int rc = usage_error(c, "%s", err);
		free(err);
		return rc;
	}
	if (cli->shard_by_opt && cli->shard.count == 0)
		return usage_error(c, "--shard-by %s needs a shard: --shard I/N, JOB_COMPLETION_INDEX or "
				   "SLURM_ARRAY_TASK_ID", cli->shard_by_opt);
	cli->shard.by = cli->shard_by;
	return GO_ON;
}

/* The command, with libcurl's global state around it. */
static int dispatch(const struct command *c, struct cli *cli)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fprintf(stderr, "zmbatch: cannot initialise libcurl\n");
		return EXIT_SOFTWARE;
	}
	int rc = c->fn(cli);
	zlog_close();
	curl_global_cleanup();
	return rc;
}

int main(int argc, char **argv)
{
	struct cli cli;
	const struct command *c = NULL;
	int rc;

	memset(&cli, 0, sizeof cli);
	cli.max_runtime = -1;
	umask(077);
	signal(SIGPIPE, SIG_IGN);

	if ((rc = find_command(argc, argv, &c)) != GO_ON)
		return rc;
	cli.cmd = c->name;
	if ((rc = parse_options(c, argc, argv, &cli)) != GO_ON ||
	    (rc = check_args(c, &cli)) != GO_ON || (rc = resolve_shard(c, &cli)) != GO_ON)
		return rc;
	rc = dispatch(c, &cli);
	free(cli.state_shard);
	return rc;
}
