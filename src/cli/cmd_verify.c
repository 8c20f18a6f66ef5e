/*
 * cmd_verify.c - `zmbatch verify [ACCOUNT... | --all | --done]
 * [--reset-mismatched]`: prove again that mailboxes arrived, without moving
 * any data (README "Verification").
 *
 * Which accounts: --done (the default) those in state done; --all those
 * imported at least once (done, or not in flight with the source's figures
 * stored by an export that was imported: any state but exporting, exported,
 * importing); or the named ones (each must be in the DB: one unknown name
 * and nothing is verified, exit 1, as for `reset`).
 *
 * For each: the source's figures are those stored at export time
 * (accounts.verify_source: what was exported, not a source that has moved
 * on); an account without them has the source asked now, and the line says
 * so.  The target's figures are asked now (driver folder_counts, acting as
 * the target account).  xfer_verify_compare() judges with the run's rules:
 * migration.types, a Carbonio target (driver product), and the account's
 * delta flag (a delta pass compares totals).  A side that cannot be asked
 * makes the account 'unverifiable', with the reason.  The verdict is
 * recorded (state_account_verdict: verify, verify_detail, verified_at and a
 * "verify: VERDICT: DETAIL" event); the account's state is left alone,
 * unless --reset-mismatched puts a mismatched done account back to pending
 * (state_reset_account: the next `run` migrates it again in full).
 *
 * Output: one line per account "ACCOUNT  VERDICT  DETAIL", then a summary.
 * Takes the run lock (a run in progress -> 75, nothing done) and records a
 * row in `runs` (command "verify ...", not counted as a run by the reports).
 * Exit: 0 every account ok (or none to verify); 1 some mismatch or
 * unverifiable, an unknown account, no state DB yet, a DB error; 64 usage;
 * 69 a server cannot be reached or refuses the login before any account is
 * verified; 75 the lock is held; 78 configuration error.
 */
#include "cli.h"
#include "driver.h"
#include "job.h"
#include "lock.h"
#include "log.h"
#include "query_report.h"
#include "report.h"
#include "runctl.h"
#include "state.h"
#include "xfer.h"
#include "zmb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One side: its end and connection, made on first use. */
struct side {
	const struct server *srv;
	struct xfer_end *end;
	struct xfer_conn *conn;
	bool failed;                /* the login failed */
};

struct verify_run {
	struct cli *cli;
	struct report_db r;
	struct run_ctl ctl;
	struct side src, dst;
	bool carbonio;
	int64_t run_id;
	long long n[3];             /* by enum xfer_verdict */
	int reset;
	int exit_code;
};

/* One printable line of s (control characters become spaces; NULL -> ""). */
static char *flat_line(const char *s)
{
	char *o = xstrdup(s ? s : "");
	for (char *p = o; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return o;
}

static void collect(void *arg, const struct qr_account *row)
{
	strlist_add(arg, row->account);
}

/* Log in to one side (once): 0, or 69 with the reason printed. */
static int side_open(struct verify_run *v, struct side *s)
{
	char *e = NULL;
	if (s->conn)
		return 0;
	if (s->failed)
		return EXIT_UNAVAILABLE;
	s->end = xfer_driver_zimbra.end_new(s->srv, &v->r.job, &v->ctl);
	s->conn = s->end->drv->conn_new(s->end);
	enum zmb_rc rc = s->end->drv->login(s->conn, &e);
	if (rc) {
		fprintf(stderr, "zmbatch: %s %s:%d: cannot log in as '%s': %s\n", s->srv->role,
			s->srv->host, s->srv->port, s->srv->admin_user, e ? e : zmb_rc_str(rc));
		free(e);
		s->failed = true;
		return EXIT_UNAVAILABLE;
	}
	return 0;
}

static void side_close(struct side *s)
{
	if (s->conn)
		s->end->drv->conn_free(s->conn);
	if (s->end)
		s->end->drv->end_free(s->end);
	s->conn = NULL;
	s->end = NULL;
}

/* The accounts to verify, by name, into *out; 0 or an exit code (printed). */
static int select_accounts(struct verify_run *v, struct strlist *out)
{
	struct cli *cli = v->cli;
	char *err = NULL;
	if (cli->nargs > 0) {
		int unknown = 0;
		for (int i = 0; i < cli->nargs; i++) {
			struct account_row row;
			enum zmb_rc rc = state_account_get(v->r.st, cli->args[i], &row);
			state_account_release(&row);
			if (rc == ZMB_ENOTFOUND) {
				fprintf(stderr, "zmbatch: no account '%s' in state database '%s'\n",
					cli->args[i], v->r.path);
				unknown++;
			} else if (rc) {
				fprintf(stderr, "zmbatch: cannot read account '%s' from '%s': %s\n",
					cli->args[i], v->r.path, state_errmsg(v->r.st));
				return EXIT_PARTIAL;
			} else {
				strlist_add(out, cli->args[i]);
			}
		}
		if (unknown) {
			fprintf(stderr, "zmbatch: nothing verified\n");
			return EXIT_PARTIAL;
		}
		return 0;
	}
	enum zmb_rc rc = qr_accounts(state_db(v->r.st), cli->all ? -1 : ACCT_DONE, collect, out, &err);
	if (rc) {
		fprintf(stderr, "zmbatch: %s\n", err ? err : zmb_rc_str(rc));
		free(err);
		return EXIT_PARTIAL;
	}
	return 0;
}

/* --all: imported at least once (see the top of this file). */
static bool imported_once(const struct account_row *a)
{
	if (a->state == ACCT_DONE)
		return true;
	return a->verify_source && a->state != ACCT_EXPORTING && a->state != ACCT_EXPORTED &&
	       a->state != ACCT_IMPORTING;
}

/* The source's figures: stored at export, else asked now (*asked). */
static enum zmb_rc source_figures(struct verify_run *v, const struct account_row *a,
				  struct xfer_folder **f, size_t *n, bool *asked, char **err)
{
	*asked = false;
	if (a->verify_source && xfer_figures_parse(a->verify_source, f, n) == 0)
		return ZMB_OK;
	*asked = true;
	if (side_open(v, &v->src)) {
		*err = xasprintf("source: cannot log in to %s:%d", v->src.srv->host, v->src.srv->port);
		return ZMB_EAUTH;
	}
	char *e = NULL;
	enum zmb_rc rc = v->src.end->drv->folder_counts(v->src.conn, a->account, f, n, &e);
	if (rc)
		*err = e ? e : xasprintf("source: %s", zmb_rc_str(rc));
	else
		free(e);
	return rc;
}

/* Verify one account: the verdict recorded and printed. */
static void verify_one(struct verify_run *v, const struct account_row *a)
{
	struct xfer_folder *sf = NULL, *df = NULL;
	size_t ns = 0, nd = 0;
	char *err = NULL, *detail = NULL;
	bool asked = false;
	enum xfer_verdict verdict = XFER_VERIFY_UNVERIFIABLE;
	const char *target = a->target && *a->target ? a->target : a->account;

	enum zmb_rc rc = source_figures(v, a, &sf, &ns, &asked, &err);
	if (!rc) {
		char *e = NULL;
		rc = v->dst.end->drv->folder_counts(v->dst.conn, target, &df, &nd, &e);
		/* the driver's error names the side: "target HOST:PORT: STEP: ..." */
		if (rc)
			err = e ? e : xasprintf("target: %s", zmb_rc_str(rc));
		else
			free(e);
	}
	if (rc) {
		detail = err;
		err = NULL;
	} else {
		struct xfer_verify_rules rules = {
			.types = v->r.job.mig.types,
			.target_carbonio = v->carbonio,
			.totals_only = a->delta,
		};
		char *d = NULL;
		verdict = xfer_verify_compare(sf, ns, df, nd, &rules, &d);
		detail = asked ? xasprintf("%s (source figures asked now: none stored from the export)", d)
			       : xstrdup(d);
		free(d);
	}
	char *flat = flat_line(detail);
	const char *name = xfer_verdict_name(verdict);
	char *event = xasprintf("verify: %s: %s", name, flat);
	if (state_account_verdict(v->r.st, v->run_id, a->id, name, flat, event)) {
		fprintf(stderr, "zmbatch: cannot record the verdict of '%s' in '%s': %s\n", a->account,
			v->r.path, state_errmsg(v->r.st));
		v->exit_code = EXIT_PARTIAL;
	}
	v->n[verdict]++;
	printf("%s  %s  %s\n", a->account, name, flat);
	if (verdict == XFER_VERIFY_MISMATCH && v->cli->reset_mismatched && a->state == ACCT_DONE) {
		int n = 0;
		if (state_reset_account(v->r.st, a->account, &n))
			fprintf(stderr, "zmbatch: cannot reset account '%s' in '%s': %s\n", a->account,
				v->r.path, state_errmsg(v->r.st));
		else if (n > 0) {
			printf("%s  reset to pending (the next run migrates it again in full)\n",
			       a->account);
			v->reset += n;
		}
	}
	free(event);
	free(flat);
	free(detail);
	free(err);
	xfer_folders_free(sf, ns);
	xfer_folders_free(df, nd);
}

/* Which product the target is: a Carbonio target leaves task/document folders out. */
static void target_product(struct verify_run *v)
{
	char *product = NULL, *version = NULL, *e = NULL;
	const struct xfer_driver *d = v->dst.end->drv;
	if (d->product && d->product(v->dst.conn, &product, &version, &e) == ZMB_OK)
		v->carbonio = product && !strcmp(product, "carbonio");
	free(product);
	free(version);
	free(e);
}

/* Every selected account; returns the exit code. */
static int verify_all(struct verify_run *v, const struct strlist *names)
{
	int ex = side_open(v, &v->dst);
	if (ex)
		return ex;
	target_product(v);
	size_t seen = 0;
	for (size_t i = 0; i < names->n; i++) {
		struct account_row a;
		enum zmb_rc rc = state_account_get(v->r.st, names->v[i], &a);
		if (rc) {
			fprintf(stderr, "zmbatch: cannot read account '%s' from '%s': %s\n", names->v[i],
				v->r.path, state_errmsg(v->r.st));
			v->exit_code = EXIT_PARTIAL;
		} else if (acct_in_flight(a.state) && v->cli->nargs > 0) {
			printf("%s  -  %s: a run holds it or died (the next run recovers it); "
			       "not verified\n", a.account, acct_state_name(a.state));
			v->exit_code = EXIT_PARTIAL;
		} else if (v->cli->nargs > 0 || !v->cli->all || imported_once(&a)) {
			seen++;
			verify_one(v, &a);
		}
		state_account_release(&a);
	}
	long long bad = v->n[XFER_VERIFY_MISMATCH] + v->n[XFER_VERIFY_UNVERIFIABLE];
	if (seen == 0)
		printf("no account to verify\n");
	else
		printf("verified %zu account%s: %lld ok, %lld mismatch, %lld unverifiable%s\n", seen,
		       seen == 1 ? "" : "s", v->n[XFER_VERIFY_OK], v->n[XFER_VERIFY_MISMATCH],
		       v->n[XFER_VERIFY_UNVERIFIABLE], bad && !v->cli->reset_mismatched
		       ? " (no account's state changed; --reset-mismatched puts mismatched ones back to pending)"
		       : "");
	if (v->cli->reset_mismatched)
		printf("reset %d mismatched account%s to pending\n", v->reset, v->reset == 1 ? "" : "s");
	return bad ? EXIT_PARTIAL : v->exit_code;
}

/* The job (secrets resolved: verify logs in) and the DB path; 0 or an exit code. */
static int verify_load(struct verify_run *v)
{
	struct stat sb;
	int ex = cli_load_job(v->cli, true, &v->r.job);
	if (ex)
		return ex;
	v->r.have_job = true;
	v->r.job_name = v->r.job.name;
	v->r.path = cli_state_path(v->cli, &v->r.job);
	shard_label(&v->cli->shard, v->r.shard, sizeof v->r.shard);
	if (!v->r.path || !*v->r.path) {
		fprintf(stderr, "zmbatch: no state database configured (state.db in the job, or --state)\n");
		return EXIT_CONFIG;
	}
	if (stat(v->r.path, &sb) != 0) {
		if (errno == ENOENT)
			fprintf(stderr, "zmbatch: no state database at '%s': nothing has run yet\n",
				v->r.path);
		else
			fprintf(stderr, "zmbatch: cannot reach state database '%s': %s\n", v->r.path,
				strerror(errno));
		return EXIT_PARTIAL;
	}
	return 0;
}

static char *command_line(const struct cli *cli)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "verify");
	if (cli->all)
		buf_addf(&b, " --all");
	if (cli->reset_mismatched)
		buf_addf(&b, " --reset-mismatched");
	for (int i = 0; i < cli->nargs; i++)
		buf_addf(&b, " %s", cli->args[i]);
	char *s = buf_detach(&b);
	buf_release(&b);
	return s;
}

int cmd_verify(struct cli *cli)
{
	struct verify_run v;
	struct run_lock *lock = NULL;
	struct strlist names = { 0 };
	char *err = NULL, *cmdline = NULL;

	memset(&v, 0, sizeof v);
	v.cli = cli;
	v.src.srv = &v.r.job.source;
	v.dst.srv = &v.r.job.target;
	int ex = verify_load(&v);
	if (ex)
		goto out;
	zlog_open(NULL, ZLOG_ERROR, true, NULL);
	zlog_add_secret(v.r.job.source.password);
	zlog_add_secret(v.r.job.target.password);
	runctl_init(&v.ctl, 0, 0);
	cmdline = command_line(cli);

	enum zmb_rc rc = lock_acquire(v.r.path, cmdline, &lock, &err);
	if (rc) {
		fprintf(stderr, "zmbatch: %s\n", err ? err : zmb_rc_str(rc));
		ex = rc == ZMB_EBUSY ? EXIT_TEMPFAIL : EXIT_PARTIAL;
		goto out;
	}
	if ((ex = report_db_open(&v.r, STATE_WRITE)) != 0)
		goto out;
	if ((ex = select_accounts(&v, &names)) != 0)
		goto out;
	if (state_run_begin(v.r.st, cmdline, &v.run_id)) {
		fprintf(stderr, "zmbatch: cannot record the verification in '%s': %s\n", v.r.path,
			state_errmsg(v.r.st));
		ex = EXIT_PARTIAL;
		goto out;
	}
	ex = verify_all(&v, &names);
	state_run_end(v.r.st, v.run_id, ex);
out:
	side_close(&v.src);
	side_close(&v.dst);
	strlist_release(&names);
	free(cmdline);
	free(err);
	report_db_close(&v.r);
	lock_release(lock);
	return ex;
}
