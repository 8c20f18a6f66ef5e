/*
 * spool.c - the spool strategy for one claimed account (xfer_int.h): the
 * export goes to a file in working_dir, then the same worker imports it.
 *
 *   exporting: target -> reserve -> export -> seal -> import -> finish
 *   importing (an archive left 'exported'):  target -> import -> finish
 *
 * One function per step, each returning the next step, as curl's
 * multi_runsingle dispatches its states; a step that fails records why in
 * the job and returns SPOOL_FAILED, the one failure exit (xfer_account_error
 * with the step's from/back states).  Every durable step is a state
 * transition or a crashpoint(), in the same order as always.
 */
#include "log.h"
#include "testhooks.h"
#include "xfer_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum spool_step {
	SPOOL_TARGET,    /* the target account exists */
	SPOOL_RESERVE,   /* room for the archive is promised in working_dir */
	SPOOL_EXPORT,    /* the export into <account>.tgz.part */
	SPOOL_SEAL,      /* fsync if it must be durable, rename, record 'exported' */
	SPOOL_IMPORT,    /* the import from the complete archive */
	SPOOL_VERIFY,    /* the source's figures against the target's */
	SPOOL_FINISH,    /* done; the archive disposed of */
	SPOOL_FAILED,    /* the one failure exit */
	SPOOL_END
};

/* One account in flight in this worker; released by spool_release. */
struct spool_job {
	struct xfer_worker *w;
	struct account_row *a;
	enum acct_state cur;         /* the claimed state: exporting or importing (from exported) */
	long long mark_ms;           /* the new sync mark: when this attempt started */
	double t0;
	char *target_id;
	bool from_dir;               /* target_id came from the directory read at start */
	long long reserved;          /* bytes promised in x->reserved_bytes */
	long long held;              /* bytes counted in x->held_bytes */
	char *part, *final;          /* spool file names while exporting */
	struct xfer_import_result res;   /* what the import left out */
	int fd;                      /* the open .part (export, seal) */
	struct xfer_export_opts o;
	struct xfer_vjob *vj;        /* the source's folder figures at the export (verifier.c) */
	bool resumed;                /* only the verification is left (imported before a crash) */
	long long bytes;
	/* the failure exit: what failed, where the account goes */
	enum zmb_rc rc;
	char *err;
	const char *step;
	enum acct_state from, back;
};

/* Record a failure for the exit and return SPOOL_FAILED; msg is the job's (or NULL). */
static enum spool_step spool_fail(struct spool_job *j, enum acct_state from, enum acct_state back,
				  enum zmb_rc rc, const char *step, char *msg)
{
	if (msg && msg != j->err) {
		free(j->err);
		j->err = msg;
	}
	j->from = from;
	j->back = back;
	j->rc = rc;
	j->step = step;
	return SPOOL_FAILED;
}

/* Count (n > 0) or uncount (n < 0) a complete archive on disk. */
static void spool_hold(struct xfer *x, long long n)
{
	if (!n)
		return;
	pthread_mutex_lock(&x->mu);
	x->held_bytes += n;
	pthread_mutex_unlock(&x->mu);
}

static void spool_unreserve(struct xfer *x, long long reserved)
{
	if (!reserved)
		return;
	pthread_mutex_lock(&x->mu);
	x->reserved_bytes -= reserved;
	pthread_mutex_unlock(&x->mu);
}

/*
 * The fsync rule.  Normally the worker imports the archive at once
 * (exporting -> importing with spool_path in one transaction: no other
 * worker can claim it in between), from the page cache: it is not
 * fsync()ed, and a small one never reaches the disk before it is deleted.
 * It must be durable when
 *   - a stop was requested: it is left 'exported' for the next run;
 *   - it is a delta export: the transition records its new mark, and if
 *     the archive were lost after that, the next export would start from
 *     the new mark and miss what only this archive held.
 * Whatever a later run imports is checked again before it is sent
 * (spool_import), so an archive cut short by a power failure is exported
 * again.
 */
static bool spool_durable(bool stop_requested, bool delta)
{
	return stop_requested || delta;
}

/*
 * The archive an import was to send is gone or damaged: back to pending, to
 * be exported again, in full: its export's mark is dropped, since the items
 * since the previous mark may have been only in it.  No attempt counted.
 */
static void archive_lost(struct xfer_worker *w, const struct account_row *a, const char *why)
{
	char *ev = xasprintf("%s; exporting again", why);
	struct acct_update u = ACCT_UPDATE_INIT;
	u.spool_path = "";
	u.sync_mark = -1;
	u.event = ev;
	log_warn(w->ctx, "%s", ev);
	state_transition(w->st, w->x->run_id, a->id, ACCT_IMPORTING, ACCT_PENDING, &u);
	free(ev);
}

static enum spool_step spool_target(struct spool_job *j)
{
	enum acct_state back = j->cur == ACCT_IMPORTING ? ACCT_EXPORTED : ACCT_PENDING;
	enum zmb_rc rc = xfer_check_target(j->w, j->a, &j->target_id, &j->from_dir, &j->err);
	if (rc)
		return spool_fail(j, j->cur, back, rc, "check target", NULL);
	/* the source's status as listed; asked again while the account waits */
	xfer_status_source(j->w, j->a, j->a->status_wait_since > 0);
	if (xfer_status_wait(j->w, j->a, j->cur, back))
		return SPOOL_END;
	if (j->cur == ACCT_EXPORTING)
		xfer_status_carbonio_note(j->w, j->a);
	if (j->cur == ACCT_EXPORTING && xfer_chunk_wanted(j->w->x, j->a)) {
		xfer_chunk_account(j->w, j->a, ACCT_EXPORTING, -1, j->from_dir, j->target_id);
		return SPOOL_END;
	}
	/* imported before a crash, not yet verified: only the verification is left */
	if (j->cur == ACCT_IMPORTING && j->a->verify_pending) {
		j->resumed = true;
		return SPOOL_VERIFY;
	}
	return j->cur == ACCT_EXPORTING ? SPOOL_RESERVE : SPOOL_IMPORT;
}

enum fit { FIT_OK, FIT_WAIT, FIT_NEVER };

/*
 * Room for the archive in working_dir, counting what transfers in flight
 * have already been promised.  FIT_WAIT: it would fit once those finish;
 * FIT_NEVER: it does not fit even on an idle disk.  The test build's
 * testhook_free_bytes() may override statvfs.
 */
static enum fit spool_fit(struct xfer *x, const struct account_row *a, long long *reserved, char **why)
{
	*reserved = 0;
	if (a->size <= 0)
		return FIT_OK;
	long long need = a->size + a->size / 10 + 1024 * 1024;
	long long freeb = xfer_free_bytes(x->job->mig.working_dir);
	testhook_free_bytes(&freeb);
	if (freeb < 0)
		return FIT_OK;
	pthread_mutex_lock(&x->mu);
	long long promised = x->reserved_bytes;
	long long held = x->held_bytes;
	/* WAIT when it fits once what this run has in flight is done: the room
	 * promised to exports and the archives on disk waiting for their import */
	enum fit f = freeb - promised >= need ? FIT_OK
		   : freeb + promised + held >= need ? FIT_WAIT : FIT_NEVER;
	if (f == FIT_OK)
		x->reserved_bytes += need;
	pthread_mutex_unlock(&x->mu);
	if (f == FIT_OK)
		*reserved = need;
	else
		*why = xasprintf("not enough space in '%s' for a %lld-byte archive (need %lld with "
				 "margin, %lld free, %lld promised to transfers in flight, %lld in "
				 "archives waiting for their import)",
				 x->job->mig.working_dir, a->size, need, freeb, promised, held);
	return f;
}

/*
 * Preflight: never a half-written file that fills the disk.  A wait is no
 * attempt (back to pending after the backoff); an archive that can never
 * fit is one (so max_attempts ends it with a clear reason).
 */
static enum spool_step spool_reserve(struct spool_job *j)
{
	struct xfer *x = j->w->x;
	char *why = NULL;
	enum fit f = spool_fit(x, j->a, &j->reserved, &why);
	if (f == FIT_WAIT) {
		struct acct_update u = ACCT_UPDATE_INIT;
		u.next_try_at = wall_now() + (double)(x->job->mig.retry_backoff > 0 ? x->job->mig.retry_backoff : 10);
		u.event = why;
		log_info(j->w->ctx, "%s: waiting", why);
		state_transition(j->w->st, x->run_id, j->a->id, ACCT_EXPORTING, ACCT_PENDING, &u);
		free(why);
		return SPOOL_END;
	}
	if (f == FIT_NEVER)
		return spool_fail(j, ACCT_EXPORTING, ACCT_PENDING, ZMB_ENOSPACE, "preflight", why);
	return SPOOL_EXPORT;
}

/* close() of the .part: a late write error is an export error. */
static enum zmb_rc close_part(struct spool_job *j, enum zmb_rc rc)
{
	int fd = j->fd;
	j->fd = -1;
	if (close(fd) < 0 && rc == ZMB_OK) {
		free(j->err);
		j->err = xasprintf("cannot write spool file '%s': %s", j->part, strerror(errno));
		return ZMB_EIO;
	}
	return rc;
}

/* The export into <account>.tgz.part, its gzip checked as it arrives. */
static enum spool_step spool_export(struct spool_job *j)
{
	struct xfer_worker *w = j->w;
	const struct job *job = w->x->job;
	xfer_export_opts(w->x, j->a, &j->o);
	j->o.verify = w->gz;
	j->part = xfer_spool_path(job, j->a->account, ".part");
	j->final = xfer_spool_path(job, j->a->account, "");
	j->fd = open(j->part, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->fd < 0)
		return spool_fail(j, ACCT_EXPORTING, ACCT_PENDING, ZMB_EIO, "export",
				  xasprintf("cannot create spool file '%s': %s", j->part, strerror(errno)));
	bool empty = false;
	j->vj = xfer_vjob_start(w, j->a);   /* read by a verifier while the export starts */
	log_debug(w->ctx, "export from %s:%d%s", job->source.host, job->source.port,
		 j->o.start_ms ? " (delta)" : "");
	enum zmb_rc rc = w->src->end->drv->export_fd(w->src, j->a->account, &j->o, j->fd, &j->bytes,
						     &empty, &j->err);
	/* a clean 200 may still carry a cut-off archive: the bytes were
	 * checked as they were written */
	if (rc == ZMB_OK && !empty)
		rc = gz_check_finish(w->gz, &j->err);
	if (rc == ZMB_OK && !empty)
		return SPOOL_SEAL;
	rc = close_part(j, rc);
	unlink(j->part);
	/* refused for zimbraExportMaxDays: the same claim goes on in windows */
	long long max_days = 0;
	if (xfer_chunk_max_days(w, j->a, rc, &max_days)) {
		xfer_vjob_drop(w->x, j->vj);
		j->vj = NULL;
		spool_unreserve(w->x, j->reserved);
		j->reserved = 0;
		xfer_chunk_account(w, j->a, ACCT_EXPORTING, max_days, j->from_dir, j->target_id);
		return SPOOL_END;
	}
	/* a 404 is also how the source answers for an account in maintenance */
	xfer_status_after_error(w, j->a, true, rc);
	if (rc && xfer_status_wait(w, j->a, ACCT_EXPORTING, ACCT_PENDING))
		return SPOOL_END;
	if (rc)
		return spool_fail(j, ACCT_EXPORTING, ACCT_PENDING, rc, "export", NULL);
	xfer_account_done(w, j->a, ACCT_EXPORTING, 0, mono_now() - j->t0, j->mark_ms,
			  "nothing to migrate (export answered 204)", NULL, 0);
	return SPOOL_END;
}

/*
 * The archive is complete: fsync it if spool_durable says so, rename it to
 * its final name, and record it (exporting -> importing, or -> exported for
 * the next run after a stop request) with its new sync mark.
 */
static enum spool_step spool_seal(struct spool_job *j)
{
	struct xfer_worker *w = j->w;
	struct xfer *x = w->x;
	enum zmb_rc rc = ZMB_OK;
	bool go_on = runctl_may_claim(x->ctl);
	bool durable = spool_durable(!go_on, j->o.start_ms > 0);
	if (durable) {
		if (fsync(j->fd) == 0)
			testhook_fsynced(j->part);
		else if (errno != EINVAL && errno != EROFS) {
			rc = ZMB_EIO;
			free(j->err);
			j->err = xasprintf("cannot fsync spool file '%s': %s", j->part, strerror(errno));
		}
	}
	rc = close_part(j, rc);
	if (rc) {
		unlink(j->part);
		return spool_fail(j, ACCT_EXPORTING, ACCT_PENDING, rc, "export", NULL);
	}
	if (rename(j->part, j->final) < 0) {
		char *e = xasprintf("cannot rename '%s': %s", j->part, strerror(errno));
		unlink(j->part);
		return spool_fail(j, ACCT_EXPORTING, ACCT_PENDING, ZMB_EIO, "export", e);
	}
	if (durable)
		xfer_fsync_dir(x->job->mig.working_dir);
	crashpoint("spool renamed");
	struct acct_update u = ACCT_UPDATE_INIT;
	char *ev = xasprintf("exported %lld bytes to spool%s", j->bytes, go_on ? "; import starting" : "");
	u.spool_path = j->final;
	u.bytes = j->bytes;
	u.sync_mark = j->mark_ms;
	/* what the archive was cut from, for a later verification */
	u.verify_source = xfer_vjob_figures(x, j->vj);
	u.event = ev;
	rc = state_transition(w->st, x->run_id, j->a->id, ACCT_EXPORTING,
			      go_on ? ACCT_IMPORTING : ACCT_EXPORTED, &u);
	free(ev);
	if (rc) {
		log_error(w->ctx, "cannot record export: %s", state_errmsg(w->st));
		return SPOOL_END;
	}
	free(j->a->spool_path);
	j->a->spool_path = xstrdup(j->final);
	j->a->sync_mark = j->mark_ms;
	spool_unreserve(x, j->reserved);
	j->reserved = 0;
	if (!go_on)
		return SPOOL_END;   /* the archive waits on disk for the next run */
	spool_hold(x, j->held = j->bytes);
	return SPOOL_IMPORT;
}

/*
 * An archive an earlier run (or a stopped worker) left: check it whole
 * before sending.  SPOOL_IMPORT to go on; a damaged one is deleted and the
 * account exported again.
 */
static enum spool_step spool_verify(struct spool_job *j, int fd)
{
	struct account_row *a = j->a;
	char *e = NULL;
	enum zmb_rc vr = archive_check_gzip(fd, NULL, &e);
	if (vr == ZMB_ETEMP) {
		char *why = xasprintf("spool file '%s' is damaged (%s)", a->spool_path, e);
		close(fd);
		unlink(a->spool_path);
		archive_lost(j->w, a, why);
		free(why);
		free(e);
		return SPOOL_END;
	} else if (vr) {
		close(fd);
		return spool_fail(j, ACCT_IMPORTING, ACCT_EXPORTED, vr, "import", e);
	}
	return SPOOL_IMPORT;
}

/* The import from the complete archive, then the target's mail transport. */
static enum spool_step spool_import(struct spool_job *j)
{
	struct xfer_worker *w = j->w;
	struct xfer *x = w->x;
	const struct job *job = x->job;
	struct account_row *a = j->a;
	int fd = a->spool_path ? open(a->spool_path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0) {
		/* the archive vanished (deleted by hand) */
		char *e = xasprintf("spool file '%s' is missing: %s", a->spool_path ? a->spool_path : "",
				    strerror(errno));
		archive_lost(w, a, e);
		free(e);
		return SPOOL_END;
	}
	struct stat sb;
	if (!j->held && fstat(fd, &sb) == 0)
		spool_hold(x, j->held = (long long)sb.st_size);
	enum spool_step next;
	if (j->cur == ACCT_IMPORTING && (next = spool_verify(j, fd)) != SPOOL_IMPORT)
		return next;
	j->bytes = 0;
	log_debug(w->ctx, "import into %s on %s:%d (resolve=%s)", a->target, job->target.host,
		 job->target.port, xfer_import_resolve(job, a));
	const struct xfer_driver *drv = w->dst->end->drv;
	enum zmb_rc rc = drv->import_fd(w->dst, a->target, xfer_import_resolve(job, a), fd,
					&j->bytes, &j->res, &j->err);
	close(fd);
	xfer_recheck_target(w, a, j->from_dir, &rc, &j->err);
	/* a 401 is also how the target answers for an account in maintenance */
	if (rc && xfer_status_wait(w, a, ACCT_IMPORTING, ACCT_EXPORTED))
		return SPOOL_END;
	if (rc == ZMB_OK)
		rc = xfer_set_transport(w, a, j->from_dir, j->target_id, &j->err);
	if (rc)
		return spool_fail(j, ACCT_IMPORTING, ACCT_EXPORTED, rc, "import", NULL);
	return SPOOL_VERIFY;
}

/*
 * The verification, handed to a verifier thread, which ends the account
 * (and disposes of the archive); a mismatch is imported again from the
 * archive (resolve=skip).  Verification off: SPOOL_FINISH.
 */
static enum spool_step spool_verify_import(struct spool_job *j)
{
	struct account_row *a = j->a;
	/* a resumed pass in steps has no archive: a mismatch exports again */
	enum acct_state back = a->spool_path && *a->spool_path ? ACCT_EXPORTED : ACCT_PENDING;
	/* a verification resumed after a crash imported nothing now: the import's bytes stand */
	long long mark = j->resumed && a->verify_mark > 0 ? a->verify_mark
		       : a->sync_mark > 0 ? a->sync_mark : j->mark_ms;
	/* an archive exported by an earlier claim: its figures were recorded with it (seal) */
	struct xfer_vjob *vj = j->vj;
	j->vj = NULL;
	if (!vj && !j->resumed && j->cur == ACCT_IMPORTING)
		vj = xfer_vjob_given(j->w, a->verify_source);
	struct xfer_vend e = { ACCT_IMPORTING, back, j->bytes ? j->bytes : a->bytes,
			       (long long)j->res.total, mark, j->resumed, j->t0,
			       a->delta ? "delta pass done" : "migrated", &j->res, 0, a->spool_path,
			       j->held };
	if (!xfer_verify_pass(j->w, a, vj, &e))
		return SPOOL_FINISH;
	j->held = 0;                 /* counted out by the verifier */
	return SPOOL_END;
}

static enum spool_step spool_finish(struct spool_job *j)
{
	struct account_row *a = j->a;
	char *spool = a->spool_path ? xstrdup(a->spool_path) : NULL;
	/* a verification resumed after a crash imported nothing now: the import's bytes stand */
	long long mark = j->resumed && a->verify_mark > 0 ? a->verify_mark
		       : a->sync_mark > 0 ? a->sync_mark : j->mark_ms;
	xfer_account_done(j->w, a, ACCT_IMPORTING, j->bytes ? j->bytes : a->bytes, mono_now() - j->t0,
			  mark, a->delta ? "delta pass done" : "migrated",
			  &j->res, 0);
	if (spool)
		xfer_spool_dispose(j->w->x->job, spool, true, j->w->ctx);
	free(spool);
	return SPOOL_END;
}

void xfer_spool_account(struct xfer_worker *w, struct account_row *a)
{
	struct spool_job j;
	memset(&j, 0, sizeof j);
	j.w = w;
	j.a = a;
	j.cur = a->state;
	j.mark_ms = (long long)(wall_now() * 1000);
	j.t0 = mono_now();
	j.fd = -1;

	enum spool_step s = SPOOL_TARGET;
	while (s != SPOOL_END) {
		switch (s) {
		case SPOOL_TARGET:  s = spool_target(&j); break;
		case SPOOL_RESERVE: s = spool_reserve(&j); break;
		case SPOOL_EXPORT:  s = spool_export(&j); break;
		case SPOOL_SEAL:    s = spool_seal(&j); break;
		case SPOOL_IMPORT:  s = spool_import(&j); break;
		case SPOOL_VERIFY:  s = spool_verify_import(&j); break;
		case SPOOL_FINISH:  s = spool_finish(&j); break;
		case SPOOL_FAILED:
			xfer_account_error(w, a, j.from, j.back, j.rc, j.step, j.err);
			s = SPOOL_END;
			break;
		case SPOOL_END:
			break;
		}
	}
	spool_unreserve(w->x, j.reserved);
	spool_hold(w->x, -j.held);
	free(j.part);
	free(j.final);
	free(j.target_id);
	xfer_vjob_drop(w->x, j.vj);
	free(j.err);
	xfer_import_result_release(&j.res);
}
