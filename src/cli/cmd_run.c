/*
 * cmd_run.c - `zmbatch run`: lock, state DB, crash recovery, signals, time
 * window, the stage pipeline, exit codes.
 *
 * Signals are handled in one place: the main thread blocks SIGINT, SIGTERM,
 * SIGHUP and SIGUSR1 before any thread exists (every thread inherits the
 * mask), and one signal thread takes them with sigwait():
 *   SIGTERM/SIGINT  first: graceful stop (no new account; in-flight ones get
 *                   `grace` seconds); second: abort now
 *   SIGHUP          reopen the log file (logrotate)
 *   SIGUSR1         log a progress line
 */
#define _GNU_SOURCE
#include "cli.h"
#include "job.h"
#include "lock.h"
#include "log.h"
#include "runctl.h"
#include "stage.h"
#include "state.h"
#include "zmb.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct sigctx {
	struct run_ctl *ctl;
	sigset_t set;
	pthread_t thread;
	bool started;
	atomic_bool quit;   /* set by run_signals_stop: the next SIGUSR2 ends the thread */
	int term_signals;   /* SIGTERM/SIGINT seen (signal thread only) */
};

static void *signal_thread(void *arg)
{
	struct sigctx *sc = arg;
	for (;;) {
		int sig = 0;
		if (sigwait(&sc->set, &sig) != 0)
			continue;
		switch (sig) {
		case SIGTERM:
		case SIGINT: {
			/* the first one is graceful (also after the window ended), the second aborts */
			bool second = ++sc->term_signals > 1;
			runctl_request_stop(sc->ctl, sig == SIGTERM ? "SIGTERM" : "SIGINT", second);
			if (second)
				log_warn(NULL, "second %s: aborting in-flight transfers now",
					 sig == SIGTERM ? "SIGTERM" : "SIGINT");
			else
				log_warn(NULL, "%s received: no new accounts; in-flight ones may finish "
					 "(grace %.0f s); send it again to abort now",
					 sig == SIGTERM ? "SIGTERM" : "SIGINT", sc->ctl->grace);
			break;
		}
		case SIGHUP:
			zlog_reopen();
			log_info(NULL, "SIGHUP: log file reopened");
			break;
		case SIGUSR1:
			atomic_store(&sc->ctl->progress_request, 1);
			break;
		case SIGUSR2:
			/* run_signals_stop() ends this thread; one from outside is ignored
			 * (leaving would leave SIGTERM blocked with nobody to take it) */
			if (atomic_load(&sc->quit))
				return NULL;
			break;
		}
	}
	return NULL;
}

/*
 * Block the run's signals at once, before the lock and crash recovery: one
 * that arrives then stays pending and is taken by the signal thread when it
 * starts (a SIGTERM during recovery is a graceful stop, exit 75, not death
 * by the default action).
 */
static void run_signals_block(struct sigctx *sc)
{
	sigemptyset(&sc->set);
	sigaddset(&sc->set, SIGTERM);
	sigaddset(&sc->set, SIGINT);
	sigaddset(&sc->set, SIGHUP);
	sigaddset(&sc->set, SIGUSR1);
	sigaddset(&sc->set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &sc->set, NULL);
	atomic_init(&sc->quit, false);
}

static void run_signals_start(struct sigctx *sc, struct run_ctl *ctl)
{
	sc->ctl = ctl;
	sc->started = pthread_create(&sc->thread, NULL, signal_thread, sc) == 0;
}

static void run_signals_stop(struct sigctx *sc)
{
	if (!sc->started)
		return;
	atomic_store(&sc->quit, true);
	pthread_kill(sc->thread, SIGUSR2);
	pthread_join(sc->thread, NULL);
	sc->started = false;
}

/* Seconds from now until the next local HH:MM (tomorrow if already past). */
static double until_seconds(const char *hhmm)
{
	int hh, mm;
	if (parse_hhmm(hhmm, &hh, &mm) < 0)
		return 0;
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = 0;
	tm.tm_isdst = -1;
	time_t t = mktime(&tm);
	if (t <= now) {
		tm.tm_mday += 1;
		tm.tm_isdst = -1;
		t = mktime(&tm);
	}
	return difftime(t, now);
}

static char *command_line(const struct cli *cli)
{
	struct buf b = BUF_INIT;
	buf_adds(&b, "run");
	if (cli->stage)
		buf_addf(&b, " --stage %s", cli->stage);
	if (cli->delta)
		buf_adds(&b, " --delta");
	if (cli->rollback)
		buf_adds(&b, " --rollback");
	if (cli->retry_failed)
		buf_adds(&b, " --retry-failed");
	if (cli->dry_run)
		buf_adds(&b, " --dry-run");
	if (cli->threads)
		buf_addf(&b, " --threads %d", cli->threads);
	if (cli->max_runtime >= 0)
		buf_addf(&b, " --max-runtime %llds", cli->max_runtime);
	if (cli->until)
		buf_addf(&b, " --until %s", cli->until);
	if (cli->shard.count)
		buf_addf(&b, " --shard %u/%u", cli->shard.index, cli->shard.count);
	if (cli->shard.count && cli->shard.by == SHARD_BY_SERVER)
		buf_adds(&b, " --shard-by server");
	return buf_detach(&b);
}

/* Every run says when a server's traffic can be read or altered on the way. */
static void warn_tls(const struct job *job)
{
	const struct server *s[2] = { &job->source, &job->target };
	for (int i = 0; i < 2; i++) {
		if (s[i]->scheme && !strcmp(s[i]->scheme, "http"))
			log_warn(s[i]->role, "scheme = \"http\" for %s:%d: the admin password and "
				 "token travel in clear text; use https", s[i]->host, s[i]->port);
		else if (!s[i]->tls_verify)
			log_warn(s[i]->role, "TLS certificate verification is OFF for %s:%d "
				 "(tls_verify = false or --insecure): the admin password and "
				 "token can be intercepted; prefer ca_file or pinned_pubkey",
				 s[i]->host, s[i]->port);
	}
}

/* Run one stage: its row, its output, its verdict.  Returns the exit code it asks for. */
static int run_stage(struct stage_ctx *ctx, const struct stage_conf *sc,
		     struct state *st, int64_t run_id, bool *stop_pipeline)
{
	const struct stage_type *t = stage_type_find(sc->type);
	int hint = 0;

	ctx->sc = sc;
	buf_reset(&ctx->out);
	if (!ctx->dry_run && state_stage_begin(st, sc->name, run_id) != ZMB_OK)
		log_warn(sc->name, "cannot record stage start: %s", state_errmsg(st));
	log_info(sc->name, "stage '%s' (%s) starting", sc->name, sc->type);
	double t0 = mono_now();
	struct stage_result res = t ? t->run(ctx) : (struct stage_result){ ZMB_EINTERNAL, 0, NULL };
	double dt = mono_now() - t0;
	enum zmb_rc rc = res.rc;
	char *err = res.err;

	if (rc == ZMB_OK && res.exit == EXIT_TEMPFAIL) {
		/* stopped early with work left: the stage stays pending; a reason
		 * of the stage's own (a server throttling past the bound) is an error */
		if (err)
			log_error(sc->name, "%s", err);
		log_warn(sc->name, "stage '%s' stopped early (%s); a later run continues",
			 sc->name, atomic_load(&ctx->ctl->stop_reason) ? atomic_load(&ctx->ctl->stop_reason) : "stop");
		if (!ctx->dry_run)
			state_stage_reset(st, sc->name);
		*stop_pipeline = true;
		hint = EXIT_TEMPFAIL;
	} else if (rc == ZMB_OK && res.exit == 0 && ctx->rollback) {
		/* rolled back: the stage is to be done again by a later run */
		log_info(sc->name, "stage '%s' rolled back in %.1f s", sc->name, dt);
		if (!ctx->dry_run)
			state_stage_reset(st, sc->name);
	} else if (rc == ZMB_OK && res.exit == 0) {
		log_info(sc->name, "stage '%s' done in %.1f s", sc->name, dt);
		if (!ctx->dry_run)
			state_stage_end(st, sc->name, true, ctx->out.s, NULL);
	} else {
		const char *msg = err ? err : zmb_rc_str(rc);
		if (rc == ZMB_OK && res.exit == EXIT_PARTIAL && !err)
			msg = "some accounts failed permanently (see 'zmbatch report')";
		log_error(sc->name, "stage '%s' (%s) failed: %s", sc->name, sc->type, msg);
		if (!ctx->dry_run)
			state_stage_end(st, sc->name, false, ctx->out.s, msg);
		*stop_pipeline = true;
		if (rc == ZMB_ECANCELED) {
			hint = EXIT_TEMPFAIL;
			if (!ctx->dry_run)
				state_stage_reset(st, sc->name);
		} else if (res.exit == EXIT_UNAVAILABLE) {
			hint = EXIT_UNAVAILABLE;
		} else if (res.exit == EXIT_CONFIG) {
			hint = EXIT_CONFIG;   /* e.g. a by-server shard's DB of another server set */
		} else if (rc == ZMB_EINTERNAL) {
			hint = EXIT_SOFTWARE;     /* 70: e.g. no worker thread could start */
		} else if ((t->flags & STAGE_DB_TEMPFAIL) && (rc == ZMB_ESTATE || rc == ZMB_EIO)) {
			/* the state DB failed (full, busy, I/O): the accounts are safe in it
			 * and a later run continues: 75, as for SQLITE_FULL mid-run */
			hint = EXIT_TEMPFAIL;
			if (!ctx->dry_run)
				state_stage_reset(st, sc->name);
		} else {
			hint = EXIT_PARTIAL;
		}
	}
	free(err);
	return hint;
}

/* Accounts waiting to be migrated (pending or exported) in the state DB. */
static bool queue_waiting(struct state *st)
{
	long long c[ACCT_NSTATES];
	return st && state_counts(st, c) == ZMB_OK && c[ACCT_PENDING] + c[ACCT_EXPORTED] > 0;
}

/* One `zmbatch run`: what its steps share (main thread only). */
struct run {
	struct cli *cli;
	struct job job;
	struct run_lock *lock;
	struct state *st;
	struct sigctx sig;
	struct run_ctl ctl;
	struct stage_ctx ctx;
	char *cmdline;
	const char *db;      /* the state DB path (cli or job owned) */
	int64_t run_id;
};

/* The log file, and what every run says first.  Returns an exit code (0 = go on). */
static int run_open_log(struct run *r)
{
	struct job *job = &r->job;
	char *err = NULL;
	int level = zlog_level_parse(job->log_level);
	if (level < 0)
		level = ZLOG_INFO;
	if (r->cli->verbose)
		level = ZLOG_DEBUG;
	if (zlog_open(job->log_dir, level, r->cli->quiet, &err) < 0) {
		fprintf(stderr, "zmbatch: %s\n", err);
		free(err);
		return EXIT_CONFIG;
	}
	zlog_add_secret(job->source.password);
	zlog_add_secret(job->target.password);
	for (size_t i = 0; i < job->warnings.n; i++)
		log_warn(NULL, "%s", job->warnings.v[i]);
	warn_tls(job);
	testhooks_announce();
	return 0;
}

/* The time window: --max-runtime / --until, whichever ends first. */
static void run_window(struct run *r)
{
	double deadline = 0;
	if (r->job.max_runtime > 0)
		deadline = mono_now() + (double)r->job.max_runtime;
	if (r->job.until) {
		double d = mono_now() + until_seconds(r->job.until);
		if (deadline == 0 || d < deadline)
			deadline = d;
	}
	runctl_init(&r->ctl, deadline, (double)r->job.grace);
}

/* The run lock beside the state DB (not for a dry run). */
static int run_lock(struct run *r)
{
	char *err = NULL;
	char *dir = xstrdup(r->db);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir_p(dir, 0700) < 0)
			log_warn(NULL, "cannot create directory '%s': %s", dir, strerror(errno));
	}
	free(dir);
	int exit_code = 0;
	enum zmb_rc lrc = lock_acquire(r->db, r->cmdline, &r->lock, &err);
	if (lrc == ZMB_EBUSY) {
		log_error(NULL, "%s; exiting without changes", err);
		exit_code = EXIT_TEMPFAIL;
	} else if (lrc) {
		log_error(NULL, "%s", err);
		exit_code = EXIT_SOFTWARE;
	}
	free(err);
	return exit_code;
}

/* The state DB: read-only and optional for a dry run. */
static int run_open_state(struct run *r)
{
	char *err = NULL;
	char *ident = job_identity(&r->job);
	bool dry = r->cli->dry_run;
	enum zmb_rc src = state_open(r->db, ident, dry ? STATE_READONLY : STATE_WRITE, &r->st, &err);
	free(ident);
	int exit_code = 0;
	if (src && dry) {
		r->st = NULL;   /* nothing has run yet: a dry run plans without a DB */
	} else if (src) {
		log_error(NULL, "%s", err ? err : zmb_rc_str(src));
		exit_code = src == ZMB_ECONFIG ? EXIT_CONFIG : EXIT_SOFTWARE;
	} else {
		/* a DB of another shard (or of the whole job) is refused: 78, as for
		 * a DB of another job */
		char label[16];
		shard_label(&r->cli->shard, label, sizeof label);
		if ((src = state_check_shard(r->st, label)) != ZMB_OK ||
		    (r->cli->shard.count &&
		     (src = state_check_shard_by(r->st, shard_by_name(r->cli->shard.by))) != ZMB_OK)) {
			log_error(NULL, "%s", state_errmsg(r->st));
			exit_code = src == ZMB_ECONFIG ? EXIT_CONFIG : EXIT_SOFTWARE;
		}
	}
	free(err);
	return exit_code;
}

/* Crash recovery, the run's row, and what --retry-failed / --delta queue. */
static int run_prepare_state(struct run *r)
{
	struct state *st = r->st;
	int n = 0;
	if (state_recover(st, &n) != ZMB_OK) {
		log_error(NULL, "crash recovery failed on '%s': %s", r->db, state_errmsg(st));
		return EXIT_SOFTWARE;
	}
	if (n > 0)
		log_warn(NULL, "an earlier run stopped mid-way: %d row(s) returned to their last durable state", n);
	if (state_run_begin(st, r->cmdline, &r->run_id) != ZMB_OK) {
		log_error(NULL, "cannot record the run in '%s': %s", r->db, state_errmsg(st));
		return EXIT_SOFTWARE;
	}
	if (r->cli->retry_failed && !r->cli->rollback) {
		int nf = 0;
		if (state_reset_failed(st, &nf) != ZMB_OK) {
			log_error(NULL, "--retry-failed: cannot requeue the failed accounts: %s",
				  state_errmsg(st));
			return EXIT_TEMPFAIL;
		}
		log_info(NULL, "--retry-failed: %d failed account(s) requeued", nf);
	}
	if (r->cli->delta) {
		int nd = 0;
		if (state_queue_delta(st, &nd) != ZMB_OK) {
			log_error(NULL, "--delta: cannot queue the delta pass: %s", state_errmsg(st));
			return EXIT_TEMPFAIL;
		}
		log_info(NULL, "--delta: %d migrated account(s) queued for a delta pass", nd);
	}
	return 0;
}

/* Everything before the first stage.  Returns an exit code (0 = go on). */
static int run_setup(struct run *r)
{
	int ex = run_open_log(r);
	if (ex)
		return ex;
	r->db = cli_state_path(r->cli, &r->job);
	r->cmdline = command_line(r->cli);
	run_window(r);
	if (!r->cli->dry_run && (ex = run_lock(r)) != 0)
		return ex;
	if ((ex = run_open_state(r)) != 0)
		return ex;
	if (!r->cli->dry_run && (ex = run_prepare_state(r)) != 0)
		return ex;
	return 0;
}

/* A done stage is skipped, unless --stage names it or (a stage that works the
 * account queue) accounts wait in it: `reset ACCOUNT`, --delta, --retry-failed. */
static bool stage_skipped(const struct run *r, const struct stage_conf *sc)
{
	if (r->cli->rollback)   /* only the cutover stages, done or not */
		return strcmp(sc->type, "cutover") != 0;
	const struct stage_type *t = stage_type_find(sc->type);
	bool queue = t && (t->flags & STAGE_WORKS_QUEUE) &&
		     (r->cli->delta || r->cli->retry_failed || queue_waiting(r->st));
	struct stage_row row;
	memset(&row, 0, sizeof row);
	bool skip = !r->cli->stage && !queue && r->st &&
		    state_stage_get(r->st, sc->name, &row) == ZMB_OK && row.state == STAGE_DONE;
	state_stage_release(&row);
	if (skip)
		log_info(sc->name, "stage '%s' already done, skipped (use --stage %s to run it again)",
			 sc->name, sc->name);
	return skip;
}

/* The stages in job order (or the one --stage names).  Returns the exit code. */
static int run_pipeline(struct run *r)
{
	struct cli *cli = r->cli;
	struct stage_ctx *ctx = &r->ctx;
	ctx->job = &r->job;
	ctx->st = r->st;
	ctx->state_path = r->db;
	ctx->run_id = r->run_id;
	ctx->ctl = &r->ctl;
	ctx->dry_run = cli->dry_run;
	ctx->delta = cli->delta;
	ctx->quiet = cli->quiet;
	ctx->rollback = cli->rollback;
	ctx->accounts = cli->accounts;
	ctx->naccounts = cli->naccounts;
	ctx->shard = cli->shard;
	if (cli->shard.count)
		log_info(NULL, "shard %u/%u: state DB %s", cli->shard.index, cli->shard.count, r->db);

	bool found_stage = cli->stage == NULL;
	bool stop = false;
	int worst = 0;
	for (size_t j = 0; j < r->job.nstages && !stop; j++) {
		/* a rollback undoes the stages in the reverse order */
		size_t i = cli->rollback ? r->job.nstages - 1 - j : j;
		const struct stage_conf *sc = &r->job.stages[i];
		if (cli->stage && strcmp(cli->stage, sc->name) != 0)
			continue;
		found_stage = true;
		if (r->st && !cli->dry_run)
			state_stage_ensure(r->st, sc->name, sc->type, (int)i);
		if (stage_skipped(r, sc))
			continue;
		if (cli->shard.count && strcmp(sc->type, "migrate") && strcmp(sc->type, "cutover"))
			log_warn(sc->name, "stage '%s' (%s) is not split by shards: shard %u/%u runs it "
				 "whole, as every other shard does (run it once, unsharded or with --stage)",
				 sc->name, sc->type, cli->shard.index, cli->shard.count);
		if (!runctl_may_claim(&r->ctl)) {
			worst = EXIT_TEMPFAIL;
			break;
		}
		int hint = run_stage(ctx, sc, r->st, r->run_id, &stop);
		if (hint == EXIT_UNAVAILABLE || (hint && worst != EXIT_UNAVAILABLE &&
						  (worst == 0 || hint == EXIT_TEMPFAIL)))
			worst = hint;
	}
	if (!found_stage) {
		log_error(NULL, "no stage named '%s' in %s", cli->stage, r->job.path);
		worst = EXIT_USAGE;
	}
	bool any_cutover = false;
	for (size_t i = 0; i < r->job.nstages; i++)
		any_cutover |= !strcmp(r->job.stages[i].type, "cutover");
	if (cli->rollback && !any_cutover) {
		log_error(NULL, "--rollback: %s has no cutover stage: nothing to roll back", r->job.path);
		worst = EXIT_USAGE;
	}
	return worst;
}

/* The run's row, the last line, and every resource (NULL-safe). */
static void run_finish(struct run *r, int exit_code)
{
	run_signals_stop(&r->sig);
	if (r->st && r->run_id) {
		state_run_count(r->st, r->run_id, atomic_load(&r->ctl.token_refreshes),
				atomic_load(&r->ctl.retries), atomic_load(&r->ctl.bytes));
		state_run_end(r->st, r->run_id, exit_code);
	}
	if (exit_code != EXIT_CONFIG && exit_code != EXIT_USAGE)
		log_info(NULL, "run finished, exit %d (%s)", exit_code,
			 exit_code == 0 ? "everything done" :
			 exit_code == EXIT_PARTIAL ? "some accounts or stages failed: see 'zmbatch report'" :
			 exit_code == EXIT_TEMPFAIL ? "stopped early with work left: run again to continue" :
			 exit_code == EXIT_UNAVAILABLE ? "a server could not be reached or authentication failed" :
			 "error");
	buf_release(&r->ctx.out);
	state_close(r->st);
	lock_release(r->lock);
	free(r->cmdline);
	job_release(&r->job);
}

/*
 * A shard spools in a folder of its own below working_dir
 * (<working_dir>/shardI-of-N): the spool housekeeping at the start of a run
 * removes the partial files and the archives no import waits for, which in
 * a shared folder would be the other shards' work in flight.  success_dir
 * and failed_dir stay shared (their files are named by account).
 */
static void shard_working_dir(struct job *job, const struct zmb_shard *s)
{
	if (!s->count || !job->mig.working_dir || !*job->mig.working_dir)
		return;
	char *dir = xasprintf("%s/shard%u-of-%u", job->mig.working_dir, s->index, s->count);
	free(job->mig.working_dir);
	job->mig.working_dir = dir;
}

int cmd_run(struct cli *cli)
{
	struct run r;
	memset(&r, 0, sizeof r);
	r.cli = cli;
	/* from the first moment: a SIGTERM while locking or recovering is a graceful stop */
	run_signals_block(&r.sig);
	if (cli->naccounts > 0 && !cli->rollback) {
		fprintf(stderr, "zmbatch run: --account selects the accounts of a --rollback\n");
		return EXIT_USAGE;
	}
	if (cli->rollback && (cli->delta || cli->retry_failed)) {
		fprintf(stderr, "zmbatch run: --rollback cannot be combined with --delta or "
			"--retry-failed\n");
		return EXIT_USAGE;
	}
	int rc = cli_load_job(cli, true, &r.job);
	if (rc)
		return rc;
	shard_working_dir(&r.job, &cli->shard);
	int exit_code = run_setup(&r);
	if (exit_code == 0) {
		run_signals_start(&r.sig, &r.ctl);
		exit_code = run_pipeline(&r);
	}
	run_finish(&r, exit_code);
	return exit_code;
}
