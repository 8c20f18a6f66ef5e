/*
 * migrate.c - the `migrate` stage: discovery, plan, worker pool.
 *
 * Data flow (main thread unless said otherwise):
 *   1. log in to both servers (one token cache per server, shared by all
 *      threads); failure here, before any account work, is "unavailable";
 *   2. discovery: explicit accounts + accounts_file + every non-system
 *      account of `domains`; for accounts not yet in the DB (or without a
 *      size) ask the source for the zimbraId and the mailbox size; upsert
 *      everything in one transaction;
 *   3. spool housekeeping: *.part files are removed, complete spool files
 *      whose account is not 'exported' are moved/deleted;
 *   4. N worker threads, each with its own SQLite connection and its own
 *      curl handles, claim accounts from the DB until nothing is left or a
 *      stop is requested; the main thread shows progress meanwhile;
 *   5. verdict: every account terminal -> done (exit 0) or some failed
 *      (exit 1); work left after a stop -> exit 75.
 *
 * Per account (worker thread), every durable step is a state transition:
 *   spool:  exporting -> [spool file renamed] -> exported -> importing -> done
 *   stream: importing (export piped into import) -> done
 * Errors are classified (zmb_rc_class): permanent -> failed; temporary ->
 * back to the last durable state with exponential backoff and jitter, until
 * max_attempts; a stop request -> back to the last durable state, no attempt
 * counted.
 */
#define _GNU_SOURCE
#include "archive.h"
#include "http.h"
#include "job.h"
#include "log.h"
#include "rest.h"
#include "runctl.h"
#include "soap.h"
#include "stage.h"
#include "state.h"
#include "token.h"
#include "zmb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* Shared by the workers of one migrate stage; immutable but for `mu` parts. */
/* A target account seen in the target's directory when the run started. */
struct tgt_entry {
	char *name;   /* lower case */
	char *id;     /* zimbraId */
};

/*
 * Below this many accounts of one target domain, each account's GetAccount
 * costs less than listing the whole domain.
 */
#define TDIR_MIN_ACCOUNTS 16

struct migrate {
	const struct job *job;
	const char *state_path;
	int64_t run_id;
	struct run_ctl *ctl;
	struct token_cache *src_tc;
	struct token_cache *dst_tc;
	bool stream;
	enum claim_order order;
	struct tgt_entry *tdir;      /* target accounts listed at start, sorted by name; */
	size_t ntdir;                /* read-only once the workers run (see tdir_build) */

	pthread_mutex_t mu;          /* guards the fields below */
	pthread_cond_t cv;           /* an account finished or a worker exited */
	struct state_wlock dbw;      /* this run's SQLite writers queue on it (state_set_write_lock) */
	long long reserved_bytes;    /* spool space promised to in-flight exports */
	long long held_bytes;        /* complete archives on disk, waiting for or in their import */
	int in_flight;
	int exited;                  /* workers that have left their loop */
	long long done_now;          /* accounts finished by this run */
	long long failed_now;
	long long bytes_now;
	int fatal_workers;           /* workers that could not start */
};

/* consecutive failed claims (each after SQLite's busy wait) before a worker gives up */
#define MAX_CLAIM_FAILURES 5

struct worker {
	struct migrate *m;
	int index;
	pthread_t thread;
	struct state *st;
	struct http *src;
	struct http *dst;
	struct gz_check *gz;         /* checks each export's gzip as it arrives */
	char ctx[300];               /* log context "account a@b" */
};

int migrate_validate(const struct stage_conf *sc, const char *file, char **err)
{
	/* a migrate stage has no keys of its own: it uses the job's migration group */
	for (size_t i = 0; i < sc->settings.n; i++) {
		const struct cval *v = &sc->settings.items[i];
		if (v->name && strcmp(v->name, "name") && strcmp(v->name, "type")) {
			*err = xasprintf("%s:%d: stage '%s': unknown key '%s' (a migrate stage "
					 "takes its settings from the 'migration' group)",
					 file, v->line, sc->name, v->name);
			return -1;
		}
	}
	return 0;
}

/* ---- helpers ---- */

static double backoff_seconds(const struct job *job, int attempts, enum zmb_rc rc)
{
	double base = (double)(job->mig.retry_backoff > 0 ? job->mig.retry_backoff : 30);
	double max = (double)(job->mig.retry_backoff_max > 0 ? job->mig.retry_backoff_max : 900);
	if (rc == ZMB_EBUSY)  /* the DoS filter wants us to go away for a while */
		base *= 2;
	double d = base * pow(2.0, attempts > 0 ? attempts - 1 : 0);
	if (d > max)
		d = max;
	/* full jitter in [d/2, d] so that throttled workers do not come back together */
	double j = (double)(rand64() % 1000) / 1000.0;
	return d / 2 + j * d / 2;
}

static char *spool_path(const struct job *job, const char *account, const char *suffix)
{
	char *safe = path_safe_name(account);
	char *p = xasprintf("%s/%s.tgz%s", job->mig.working_dir, safe, suffix);
	free(safe);
	return p;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	if (r == 0)
		testhook_fsynced(dir);
	return r;
}

/* Move (rename, or copy-less fallback: unlink) a finished spool file. */
static void spool_dispose(const struct job *job, const char *path, bool success, const char *ctx)
{
	if (!path || !*path)
		return;
	const char *dir = success ? (job->mig.keep_success_files ? job->mig.success_dir : NULL)
				  : job->mig.failed_dir;
	if (dir && *dir) {
		const char *base = strrchr(path, '/');
		base = base ? base + 1 : path;
		char *dst = xasprintf("%s/%s", dir, base);
		/* a kept archive is a record: make it durable (imported ones were not fsync()ed) */
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (fsync(fd) == 0)
				testhook_fsynced(path);
			close(fd);
		}
		if (mkdir_p(dir, 0700) == 0 && rename(path, dst) == 0) {
			fsync_dir(dir);
			crashpoint("spool moved");
			free(dst);
			return;
		}
		log_warn(ctx, "cannot move spool file '%s' to '%s': %s", path, dir, strerror(errno));
		free(dst);
		if (!success)
			return;  /* keep a failed archive where it is rather than lose it */
	}
	if (unlink(path) == 0)
		crashpoint("spool removed");
}

/* Free bytes in the filesystem of dir, -1 if unknown. */
static long long free_bytes(const char *dir)
{
	struct statvfs sv;
	if (statvfs(dir, &sv) < 0)
		return -1;
	return (long long)sv.f_bavail * (long long)sv.f_frsize;
}

/* ---- one account ---- */

/*
 * Schedule a retry or fail the account after `rc`.  `from` is the in-flight
 * state, `back` the durable state to return to (pending or exported).
 */
static void account_error(struct worker *w, const struct account_row *a, enum acct_state from,
			  enum acct_state back, enum zmb_rc rc, const char *step, const char *msg)
{
	struct migrate *m = w->m;
	const struct job *job = m->job;
	struct acct_update u = ACCT_UPDATE_INIT;
	char *text = xasprintf("%s: %s", step, msg ? msg : zmb_rc_str(rc));
	char *ev = NULL;
	enum zmb_retry cls = zmb_rc_class(rc);

	u.error = text;
	u.error_class = zmb_rc_class_name(rc);
	if (rc == ZMB_ECANCELED) {
		/* not the account's fault: no attempt counted */
		ev = xasprintf("%s interrupted by %s; back to %s", step,
			       atomic_load(&m->ctl->stop_reason) ? atomic_load(&m->ctl->stop_reason) : "stop",
			       acct_state_name(back));
		u.event = ev;
		u.error = NULL;
		u.error_class = NULL;
		log_info(w->ctx, "%s", ev);
		if (state_transition(w->st, m->run_id, a->id, from, back, &u))
			log_error(w->ctx, "cannot record state: %s", state_errmsg(w->st));
		goto out;
	}
	u.add_attempt = true;
	int attempts = a->attempts + 1;
	if (cls == ZMB_RETRY_NEVER || attempts >= job->mig.max_attempts) {
		ev = xasprintf("failed permanently after %d attempt(s): %s", attempts, text);
		u.event = ev;
		/*
		 * The export recorded its new mark when its archive was complete;
		 * the import never happened.  A later --retry-failed or reset must
		 * not start after that mark: export everything again (skip).
		 */
		if (back == ACCT_EXPORTED)
			u.sync_mark = -1;
		log_error(w->ctx, "%s", ev);
		if (state_transition(w->st, m->run_id, a->id, from, ACCT_FAILED, &u))
			log_error(w->ctx, "cannot record state: %s", state_errmsg(w->st));
		else if (back == ACCT_EXPORTED && a->spool_path)
			spool_dispose(job, a->spool_path, false, w->ctx);
		pthread_mutex_lock(&m->mu);
		m->failed_now++;
		pthread_mutex_unlock(&m->mu);
	} else {
		double wait = backoff_seconds(job, attempts, rc);
		u.next_try_at = wall_now() + wait;
		ev = xasprintf("attempt %d/%d failed (%s), retry in %.0f s: %s", attempts,
			       job->mig.max_attempts, zmb_rc_class_name(rc), wait, text);
		u.event = ev;
		log_warn(w->ctx, "%s", ev);
		atomic_fetch_add(&m->ctl->retries, 1);
		if (state_transition(w->st, m->run_id, a->id, from, back, &u))
			log_error(w->ctx, "cannot record state: %s", state_errmsg(w->st));
	}
out:
	free(ev);
	free(text);
}

static void account_done(struct worker *w, const struct account_row *a, enum acct_state from,
			 long long bytes, double seconds, long long mark_ms, const char *what)
{
	struct migrate *m = w->m;
	struct acct_update u = ACCT_UPDATE_INIT;
	char *ev = xasprintf("%s: %lld bytes in %.1f s", what, bytes, seconds);
	u.error = "";
	u.error_class = "";
	u.bytes = bytes;
	u.seconds = seconds;
	u.sync_mark = mark_ms;
	u.spool_path = "";
	u.add_attempt = true;
	u.event = ev;
	if (state_transition(w->st, m->run_id, a->id, from, ACCT_DONE, &u)) {
		log_error(w->ctx, "cannot record done: %s", state_errmsg(w->st));
	} else {
		log_info(w->ctx, "%s", ev);
		pthread_mutex_lock(&m->mu);
		m->done_now++;
		m->bytes_now += bytes;
		pthread_mutex_unlock(&m->mu);
		atomic_fetch_add(&m->ctl->bytes, bytes);
	}
	free(ev);
}

static int cmp_tgt(const void *a, const void *b)
{
	return strcmp(((const struct tgt_entry *)a)->name, ((const struct tgt_entry *)b)->name);
}

static const char *tdir_find(const struct migrate *m, const char *name)
{
	if (!m->ntdir)
		return NULL;
	struct tgt_entry key = { .name = xstrlower(name), .id = NULL };
	const struct tgt_entry *e = bsearch(&key, m->tdir, m->ntdir, sizeof *m->tdir, cmp_tgt);
	free(key.name);
	return e ? e->id : NULL;
}

/* The target must exist (zmztozmig's rule: we never create accounts): GetAccount. */
static enum zmb_rc lookup_target(struct worker *w, const struct account_row *a, char **target_id, char **err)
{
	enum zmb_rc rc = soap_get_account(w->dst, w->m->dst_tc, a->target, target_id, err);
	if (rc == ZMB_ENOACCOUNT) {
		char *e = xasprintf("target account '%s' does not exist on %s:%d (create it first: "
				    "zmbatch, like zmztozmig, never creates accounts)%s%s",
				    a->target, w->m->job->target.host, w->m->job->target.port,
				    *err ? "; " : "", *err ? *err : "");
		free(*err);
		*err = e;
	}
	return rc;
}

/*
 * The target must exist.  On an account's first attempt the directory read
 * at the start of the run answers (no round trip); on a retry, or for an
 * account the directory did not list, GetAccount asks.  *from_dir tells
 * which: an import refused after a directory answer is checked again
 * (recheck_target), since the account may have been deleted since.
 */
static enum zmb_rc check_target(struct worker *w, const struct account_row *a, char **target_id,
				bool *from_dir, char **err)
{
	*from_dir = false;
	const char *id = a->attempts == 0 ? tdir_find(w->m, a->target) : NULL;
	if (id) {
		*target_id = xstrdup(id);
		*from_dir = true;
		return ZMB_OK;
	}
	return lookup_target(w, a, target_id, err);
}

/*
 * An import into a target taken from the directory failed with 401/404 (the
 * answers Zimbra gives for a missing account, anti-harvest): ask GetAccount,
 * and if the account is gone report that instead of the bare HTTP status.
 */
static void recheck_target(struct worker *w, const struct account_row *a, bool from_dir,
			   enum zmb_rc *rc, char **err)
{
	if (!from_dir || (*rc != ZMB_ENOACCOUNT && *rc != ZMB_EAUTHEXP))
		return;
	char *id = NULL, *e = NULL;
	if (lookup_target(w, a, &id, &e) == ZMB_ENOACCOUNT) {
		free(*err);
		*err = e;
		*rc = ZMB_ENOACCOUNT;
		e = NULL;
	}
	free(id);
	free(e);
}

/*
 * ModifyAccount zimbraMailTransport after the import.  An id from the
 * directory read at the start may be stale (the target deleted and made
 * again under the same name since: the import went by name and worked);
 * then the id is looked up again and the change tried once more.
 */
static enum zmb_rc set_transport(struct worker *w, const struct account_row *a, bool from_dir,
				 const char *target_id, char **err)
{
	const char *t = w->m->job->mig.mail_transport;
	if (!t || !*t || !target_id)
		return ZMB_OK;
	enum zmb_rc rc = soap_modify_account(w->dst, w->m->dst_tc, target_id, "zimbraMailTransport", t, err);
	if (rc == ZMB_ENOACCOUNT && from_dir) {
		char *id = NULL, *e = NULL;
		if (lookup_target(w, a, &id, &e) == ZMB_OK && strcmp(id, target_id) != 0) {
			free(*err);
			*err = NULL;
			rc = soap_modify_account(w->dst, w->m->dst_tc, id, "zimbraMailTransport", t, err);
		}
		free(id);
		free(e);
	}
	return rc;
}

/*
 * A delta pass always imports with resolve=skip, whatever the job says: with
 * "reset" the target's folders would be emptied first (mail delivered there
 * since the first pass included) and only the delta put back; with
 * "replace"/"modify" the overlap window would rewrite items already there.
 */
static const char *import_resolve(const struct job *job, const struct account_row *a)
{
	return a->delta ? "skip" : job->mig.resolve;
}

static void export_opts(const struct migrate *m, const struct account_row *a, struct rest_export_opts *o)
{
	memset(o, 0, sizeof *o);
	o->types = m->job->mig.types;
	if (a->delta && a->sync_mark > 0) {
		long long start = a->sync_mark - m->job->mig.delta_overlap * 1000;
		o->start_ms = start > 0 ? start : 1;
	}
}

enum fit { FIT_OK, FIT_WAIT, FIT_NEVER };

/*
 * Preflight for spool mode: reserve room for the archive in working_dir,
 * counting what transfers in flight have already been promised.  FIT_WAIT:
 * it would fit once those finish (no attempt counted); FIT_NEVER: it does
 * not fit even on an idle disk (an attempt, so max_attempts ends it with a
 * clear reason instead of waiting forever).  Never a half-written file that
 * fills the disk.  The test build's testhook_free_bytes() may override statvfs.
 */
static enum fit spool_reserve(struct worker *w, const struct account_row *a, long long *reserved,
			      char **why)
{
	struct migrate *m = w->m;
	*reserved = 0;
	if (a->size <= 0)
		return FIT_OK;
	long long need = a->size + a->size / 10 + 1024 * 1024;
	long long freeb = free_bytes(m->job->mig.working_dir);
	testhook_free_bytes(&freeb);
	if (freeb < 0)
		return FIT_OK;
	pthread_mutex_lock(&m->mu);
	long long promised = m->reserved_bytes;
	long long held = m->held_bytes;
	/* WAIT when it fits once what this run has in flight is done: the room
	 * promised to exports and the archives on disk waiting for their import */
	enum fit f = freeb - promised >= need ? FIT_OK
		   : freeb + promised + held >= need ? FIT_WAIT : FIT_NEVER;
	if (f == FIT_OK)
		m->reserved_bytes += need;
	pthread_mutex_unlock(&m->mu);
	if (f == FIT_OK)
		*reserved = need;
	else
		*why = xasprintf("not enough space in '%s' for a %lld-byte archive (need %lld with "
				 "margin, %lld free, %lld promised to transfers in flight, %lld in "
				 "archives waiting for their import)",
				 m->job->mig.working_dir, a->size, need, freeb, promised, held);
	return f;
}

/* Count (n > 0) or uncount (n < 0) a complete archive on disk. */
static void spool_hold(struct migrate *m, long long n)
{
	if (!n)
		return;
	pthread_mutex_lock(&m->mu);
	m->held_bytes += n;
	pthread_mutex_unlock(&m->mu);
}

/*
 * The archive an import was to send is gone or damaged: back to pending, to
 * be exported again, in full: its export's mark is dropped, since the items
 * since the previous mark may have been only in it.  No attempt counted.
 */
static void archive_lost(struct worker *w, const struct account_row *a, const char *why)
{
	char *ev = xasprintf("%s; exporting again", why);
	struct acct_update u = ACCT_UPDATE_INIT;
	u.spool_path = "";
	u.sync_mark = -1;
	u.event = ev;
	log_warn(w->ctx, "%s", ev);
	state_transition(w->st, w->m->run_id, a->id, ACCT_IMPORTING, ACCT_PENDING, &u);
	free(ev);
}

static void spool_unreserve(struct migrate *m, long long reserved)
{
	if (!reserved)
		return;
	pthread_mutex_lock(&m->mu);
	m->reserved_bytes -= reserved;
	pthread_mutex_unlock(&m->mu);
}

static void process_spool(struct worker *w, struct account_row *a)
{
	struct migrate *m = w->m;
	const struct job *job = m->job;
	char *err = NULL, *target_id = NULL, *part = NULL, *final = NULL;
	enum zmb_rc rc;
	long long reserved = 0, held = 0;
	long long mark_ms = (long long)(wall_now() * 1000);
	double t0 = mono_now();
	enum acct_state cur = a->state;   /* exporting or importing (from exported) */
	bool from_dir = false;

	rc = check_target(w, a, &target_id, &from_dir, &err);
	if (rc) {
		account_error(w, a, cur, cur == ACCT_IMPORTING ? ACCT_EXPORTED : ACCT_PENDING, rc,
			      "check target", err);
		goto out;
	}

	if (cur == ACCT_EXPORTING) {
		char *why = NULL;
		enum fit f = spool_reserve(w, a, &reserved, &why);
		if (f == FIT_WAIT) {
			struct acct_update u = ACCT_UPDATE_INIT;
			u.next_try_at = wall_now() + (double)(job->mig.retry_backoff > 0 ? job->mig.retry_backoff : 10);
			u.event = why;
			log_info(w->ctx, "%s: waiting", why);
			state_transition(w->st, m->run_id, a->id, ACCT_EXPORTING, ACCT_PENDING, &u);
			free(why);
			goto out;
		} else if (f == FIT_NEVER) {
			account_error(w, a, ACCT_EXPORTING, ACCT_PENDING, ZMB_ENOSPACE, "preflight", why);
			free(why);
			goto out;
		}
		struct rest_export_opts o;
		export_opts(m, a, &o);
		o.verify = w->gz;
		part = spool_path(job, a->account, ".part");
		final = spool_path(job, a->account, "");
		int fd = open(part, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			char *e = xasprintf("cannot create spool file '%s': %s", part, strerror(errno));
			account_error(w, a, ACCT_EXPORTING, ACCT_PENDING, ZMB_EIO, "export", e);
			free(e);
			goto out;
		}
		long long bytes = 0;
		bool empty = false;
		log_debug(w->ctx, "export from %s:%d%s", job->source.host, job->source.port,
			 o.start_ms ? " (delta)" : "");
		rc = rest_export_file(w->src, m->src_tc, a->account, &o, fd, &bytes, &empty, &err);
		/* a clean 200 may still carry a cut-off archive: the bytes were
		 * checked as they were written */
		if (rc == ZMB_OK && !empty)
			rc = gz_check_finish(w->gz, &err);
		/*
		 * Normally this worker imports the archive at once (exporting ->
		 * importing with spool_path in one transaction: no other worker
		 * can claim it in between), from the page cache: it is not
		 * fsync()ed, and a small one never reaches the disk before it is
		 * deleted.  After a stop request it is left 'exported' for the
		 * next run, and is made durable first.  Whatever a later run
		 * imports is checked again before it is sent (see below), so an
		 * archive cut short by a power failure is exported again.
		 */
		bool go_on = runctl_may_claim(m->ctl);
		/*
		 * A delta export is made durable too: the transition below records
		 * its new mark, and if the archive were lost after that, the next
		 * export would start from the new mark and miss what only this
		 * archive held.
		 */
		bool durable = !go_on || o.start_ms > 0;
		if (rc == ZMB_OK && !empty && durable) {
			if (fsync(fd) == 0)
				testhook_fsynced(part);
			else if (errno != EINVAL && errno != EROFS) {
				rc = ZMB_EIO;
				err = xasprintf("cannot fsync spool file '%s': %s", part, strerror(errno));
			}
		}
		if (close(fd) < 0 && rc == ZMB_OK) {
			rc = ZMB_EIO;
			err = xasprintf("cannot write spool file '%s': %s", part, strerror(errno));
		}
		if (rc) {
			unlink(part);
			account_error(w, a, ACCT_EXPORTING, ACCT_PENDING, rc, "export", err);
			goto out;
		}
		if (empty) {
			unlink(part);
			account_done(w, a, ACCT_EXPORTING, 0, mono_now() - t0, mark_ms,
				     "nothing to migrate (export answered 204)");
			goto out;
		}
		if (rename(part, final) < 0) {
			char *e = xasprintf("cannot rename '%s': %s", part, strerror(errno));
			unlink(part);
			account_error(w, a, ACCT_EXPORTING, ACCT_PENDING, ZMB_EIO, "export", e);
			free(e);
			goto out;
		}
		if (durable)
			fsync_dir(job->mig.working_dir);
		crashpoint("spool renamed");
		struct acct_update u = ACCT_UPDATE_INIT;
		char *ev = xasprintf("exported %lld bytes to spool%s", bytes, go_on ? "; import starting" : "");
		u.spool_path = final;
		u.bytes = bytes;
		u.sync_mark = mark_ms;
		u.event = ev;
		rc = state_transition(w->st, m->run_id, a->id, ACCT_EXPORTING,
				      go_on ? ACCT_IMPORTING : ACCT_EXPORTED, &u);
		free(ev);
		if (rc) {
			log_error(w->ctx, "cannot record export: %s", state_errmsg(w->st));
			goto out;
		}
		free(a->spool_path);
		a->spool_path = xstrdup(final);
		a->sync_mark = mark_ms;
		spool_unreserve(m, reserved);
		reserved = 0;
		if (!go_on)
			goto out;   /* the archive waits on disk for the next run */
		spool_hold(m, held = bytes);
	}

	/* importing from the complete spool file */
	int fd = a->spool_path ? open(a->spool_path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0) {
		/* the archive vanished (deleted by hand) */
		char *e = xasprintf("spool file '%s' is missing: %s", a->spool_path ? a->spool_path : "",
				    strerror(errno));
		archive_lost(w, a, e);
		free(e);
		goto out;
	}
	struct stat sb;
	if (!held && fstat(fd, &sb) == 0)
		spool_hold(m, held = (long long)sb.st_size);
	if (cur == ACCT_IMPORTING) {
		/* an archive an earlier run (or a stopped worker) left: check it whole before sending */
		char *e = NULL;
		enum zmb_rc vr = archive_check_gzip(fd, NULL, &e);
		if (vr == ZMB_ETEMP) {
			char *why = xasprintf("spool file '%s' is damaged (%s)", a->spool_path, e);
			close(fd);
			unlink(a->spool_path);
			archive_lost(w, a, why);
			free(why);
			free(e);
			goto out;
		} else if (vr) {
			close(fd);
			account_error(w, a, ACCT_IMPORTING, ACCT_EXPORTED, vr, "import", e);
			free(e);
			goto out;
		}
	}
	long long bytes = 0;
	log_debug(w->ctx, "import into %s on %s:%d (resolve=%s)", a->target, job->target.host,
		 job->target.port, import_resolve(job, a));
	rc = rest_import_file(w->dst, m->dst_tc, a->target, import_resolve(job, a), fd, &bytes, &err);
	close(fd);
	recheck_target(w, a, from_dir, &rc, &err);
	if (rc == ZMB_OK)
		rc = set_transport(w, a, from_dir, target_id, &err);
	if (rc) {
		account_error(w, a, ACCT_IMPORTING, ACCT_EXPORTED, rc, "import", err);
		goto out;
	}
	char *spool = xstrdup(a->spool_path);
	account_done(w, a, ACCT_IMPORTING, bytes, mono_now() - t0,
		     a->sync_mark > 0 ? a->sync_mark : mark_ms, a->delta ? "delta pass done" : "migrated");
	spool_dispose(job, spool, true, w->ctx);
	free(spool);
out:
	spool_unreserve(m, reserved);
	spool_hold(m, -held);
	free(part);
	free(final);
	free(target_id);
	free(err);
}

static void process_stream(struct worker *w, struct account_row *a)
{
	struct migrate *m = w->m;
	const struct job *job = m->job;
	char *err = NULL, *target_id = NULL;
	long long mark_ms = (long long)(wall_now() * 1000);
	double t0 = mono_now();
	bool from_dir = false;
	enum zmb_rc rc = check_target(w, a, &target_id, &from_dir, &err);
	if (rc) {
		account_error(w, a, ACCT_IMPORTING, ACCT_PENDING, rc, "check target", err);
		goto out;
	}
	struct rest_export_opts o;
	export_opts(m, a, &o);   /* no gzip check: the target's import parses the stream */
	long long bytes = 0;
	bool empty = false;
	log_debug(w->ctx, "streaming %s:%d -> %s on %s:%d%s", job->source.host, job->source.port,
		 a->target, job->target.host, job->target.port, o.start_ms ? " (delta)" : "");
	rc = rest_stream(w->src, m->src_tc, w->dst, m->dst_tc, a->account, a->target, &o,
			 import_resolve(job, a), &bytes, &empty, &err);
	recheck_target(w, a, from_dir, &rc, &err);
	if (rc == ZMB_OK && !empty)
		rc = set_transport(w, a, from_dir, target_id, &err);
	if (rc) {
		account_error(w, a, ACCT_IMPORTING, ACCT_PENDING, rc, "stream", err);
		goto out;
	}
	account_done(w, a, ACCT_IMPORTING, bytes, mono_now() - t0, mark_ms,
		     empty ? "nothing to migrate (export answered 204)" :
		     a->delta ? "delta pass done" : "migrated");
out:
	free(target_id);
	free(err);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct migrate *m = w->m;
	char *err = NULL;

	if (state_open(m->state_path, NULL, STATE_WRITE, &w->st, &err)) {
		log_error(NULL, "worker %d: cannot open state DB: %s", w->index, err ? err : "?");
		pthread_mutex_lock(&m->mu);
		m->fatal_workers++;
		pthread_mutex_unlock(&m->mu);
		goto out;
	}
	state_set_write_lock(w->st, &m->dbw);
	w->src = http_new(&m->job->source, m->job, m->ctl);
	w->dst = http_new(&m->job->target, m->job, m->ctl);
	w->gz = gz_check_new();

	int claim_failures = 0;
	while (runctl_may_claim(m->ctl)) {
		struct account_row a;
		double wait = -1;
		memset(&a, 0, sizeof a);
		enum zmb_rc rc = state_claim(w->st, m->run_id, m->order, m->stream, wall_now(), &a, &wait);
		if (rc == ZMB_ENOTFOUND) {
			pthread_mutex_lock(&m->mu);
			if (wait < 0 && m->in_flight == 0) {
				pthread_mutex_unlock(&m->mu);
				break;          /* nothing pending, nothing that could come back */
			}
			/*
			 * Something is in backoff, or in flight and may come back:
			 * sleep until its backoff ends (at most 1 s, to notice stop
			 * requests), or until another worker finishes an account.
			 */
			double s = wait < 0 || wait > 1.0 ? 1.0 : wait;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			long long ns = ts.tv_nsec + (long long)(s * 1e9);
			ts.tv_sec += (time_t)(ns / 1000000000LL);
			ts.tv_nsec = (long)(ns % 1000000000LL);
			pthread_cond_timedwait(&m->cv, &m->mu, &ts);
			pthread_mutex_unlock(&m->mu);
			continue;
		}
		if (rc) {
			log_error(NULL, "worker %d: claim failed: %s", w->index, state_errmsg(w->st));
			/* busy is already waited for inside SQLite; a state DB that keeps
			 * failing (disk full, read-only, I/O error) must end the run, not
			 * spin forever: the accounts stay for the next run */
			if (++claim_failures >= MAX_CLAIM_FAILURES) {
				log_error(NULL, "worker %d: giving up after %d failed claims in a row", w->index,
					  claim_failures);
				/* the DB is unusable for everyone: stop claiming everywhere */
				runctl_request_stop(m->ctl, "state database errors", false);
				break;
			}
			struct timespec ts = { 1, 0 };
			nanosleep(&ts, NULL);
			continue;
		}
		claim_failures = 0;
		pthread_mutex_lock(&m->mu);
		m->in_flight++;
		pthread_mutex_unlock(&m->mu);
		snprintf(w->ctx, sizeof w->ctx, "account %s", a.account);
		if (m->stream)
			process_stream(w, &a);
		else
			process_spool(w, &a);
		pthread_mutex_lock(&m->mu);
		m->in_flight--;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
		state_account_release(&a);
	}
out:
	http_free(w->src);
	http_free(w->dst);
	gz_check_free(w->gz);
	state_close(w->st);
	free(err);
	pthread_mutex_lock(&m->mu);
	m->exited++;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* ---- discovery ---- */

static enum zmb_rc read_accounts_file(const char *path, struct strlist *out, char **err)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		*err = xasprintf("cannot read accounts_file '%s': %s", path, strerror(errno));
		return ZMB_ECONFIG;
	}
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0;
	enum zmb_rc rc = ZMB_OK;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (memchr(line, '\0', (size_t)len)) {
			/* C strings would silently cut the name at the NUL */
			*err = xasprintf("%s:%d: account name contains a NUL byte", path, lineno);
			rc = ZMB_ECONFIG;
			break;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		strtrim(line);
		if (!*line)
			continue;
		if (!strchr(line, '@') || strchr(line, ' ') || strchr(line, '/')) {
			*err = xasprintf("%s:%d: '%s' is not an account address", path, lineno, line);
			rc = ZMB_ECONFIG;
			break;
		}
		strlist_add(out, line);
	}
	free(line);
	fclose(f);
	return rc;
}

struct found {
	char *account;
	char *id;       /* may be NULL: looked up later */
	size_t seq;     /* position as listed/discovered */
	long long size; /* -1 unknown */
	bool need_size; /* ask the source (new account, or pending without a size) */
	enum zmb_rc lookup_rc;
	char *lookup_err;
};

static enum zmb_rc discover(struct migrate *m, struct stage_ctx *ctx, struct http *src,
			    struct found **out, size_t *nout, char **err)
{
	const struct job *job = m->job;
	struct strlist names = STRLIST_INIT;
	struct found *f = NULL;
	size_t n = 0, cap = 0;
	enum zmb_rc rc = ZMB_OK;

	for (size_t i = 0; i < job->mig.accounts.n; i++)
		strlist_add(&names, job->mig.accounts.v[i]);
	if (job->mig.accounts_file && (rc = read_accounts_file(job->mig.accounts_file, &names, err)))
		goto out;
	for (size_t i = 0; i < names.n; i++) {
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			f = xrealloc(f, cap * sizeof *f);
		}
		memset(&f[n], 0, sizeof f[n]);
		f[n].account = xstrlower(names.v[i]);
		f[n].seq = n;
		n++;
	}
	for (size_t d = 0; d < job->mig.domains.n; d++) {
		struct zaccount *za = NULL;
		size_t nz = 0;
		rc = soap_list_accounts(src, m->src_tc, job->mig.domains.v[d], &za, &nz, err);
		if (rc)
			goto out;
		stage_out(ctx, "domain %s: %zu account(s) (system accounts excluded)", job->mig.domains.v[d], nz);
		for (size_t i = 0; i < nz; i++) {
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				f = xrealloc(f, cap * sizeof *f);
			}
			memset(&f[n], 0, sizeof f[n]);
			f[n].account = xstrlower(za[i].name);
			f[n].seq = n;
			f[n].id = za[i].id;
			za[i].id = NULL;
			n++;
			free(za[i].name);
			free(za[i].mailhost);
		}
		free(za);
	}
out:
	strlist_release(&names);
	*out = f;
	*nout = n;
	return rc;
}

static void found_free(struct found *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(f[i].account);
		free(f[i].id);
		free(f[i].lookup_err);
	}
	free(f);
}

/* Size lookups, spread over a few threads (each its own curl handle). */
struct sizer {
	struct migrate *m;
	struct found **todo;
	size_t ntodo;
	atomic_size_t next;
	atomic_bool fatal;
};

static void *sizer_main(void *arg)
{
	struct sizer *z = arg;
	struct http *h = http_new(&z->m->job->source, z->m->job, z->m->ctl);
	for (;;) {
		size_t k = atomic_fetch_add(&z->next, 1);
		if (k >= z->ntodo || atomic_load(&z->fatal) || runctl_must_abort(z->m->ctl))
			break;
		struct found *f = z->todo[k];
		char *id = f->id ? xstrdup(f->id) : NULL;
		enum zmb_rc r = ZMB_OK;
		if (!id)
			r = soap_get_account(h, z->m->src_tc, f->account, &id, &f->lookup_err);
		if (r == ZMB_OK)
			r = soap_mailbox_size(h, z->m->src_tc, id, &f->size, &f->lookup_err);
		if (r)
			f->size = -1;
		f->lookup_rc = r;
		if (r == ZMB_EAUTH || r == ZMB_ETLS || r == ZMB_ECONNECT)
			atomic_store(&z->fatal, true);
		free(id);
	}
	http_free(h);
	return NULL;
}

static int cmp_found_name(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	int c = strcmp(x->account, y->account);
	return c ? c : (x->seq < y->seq ? -1 : x->seq > y->seq);
}

static int cmp_found_seq(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Upsert discovered accounts.  Sizes are asked only for accounts the DB does
 * not know yet (or knows without a size) and that have not started, so a
 * resumed run of 10k accounts costs no 10k SOAP calls; the lookups that are
 * needed run on several threads.  Duplicates are dropped by sorting (no
 * quadratic search over 100k names).  *n is updated to the unique count.
 */
static enum zmb_rc plan(struct migrate *m, struct stage_ctx *ctx, struct state *st,
			struct found *f, size_t *np, long long *total_size, char **err)
{
	const struct job *job = m->job;
	enum zmb_rc rc = ZMB_OK;
	long long unknown_sizes = 0;
	size_t n = *np, u = 0;
	struct found **todo = NULL;
	size_t ntodo = 0;

	*total_size = 0;
	/* 1. unique accounts, first listing wins */
	qsort(f, n, sizeof *f, cmp_found_name);
	for (size_t i = 0; i < n; i++) {
		if (u > 0 && !strcmp(f[u - 1].account, f[i].account)) {
			free(f[i].account);
			free(f[i].id);
			continue;
		}
		f[u++] = f[i];
	}
	*np = n = u;
	qsort(f, n, sizeof *f, cmp_found_seq);

	/* 2. what does the DB know already? */
	todo = xcalloc(n ? n : 1, sizeof *todo);
	for (size_t i = 0; i < n; i++) {
		struct account_row row;
		memset(&row, 0, sizeof row);
		bool known = st && state_account_get(st, f[i].account, &row) == ZMB_OK;
		f[i].size = known ? row.size : -1;
		f[i].need_size = !known || (row.size < 0 && row.state == ACCT_PENDING);
		state_account_release(&row);
		if (f[i].need_size)
			todo[ntodo++] = &f[i];
	}

	/* 3. ask the source for the sizes it has to tell */
	if (ntodo > 0) {
		struct sizer z = { .m = m, .todo = todo, .ntodo = ntodo };
		atomic_init(&z.next, 0);
		atomic_init(&z.fatal, false);
		int nt = job->mig.threads > 0 ? job->mig.threads : 1;
		if (nt > 16)
			nt = 16;
		if ((size_t)nt > ntodo)
			nt = (int)ntodo;
		pthread_t th[16];
		int started = 0;
		for (int i = 0; i < nt; i++)
			if (pthread_create(&th[i], NULL, sizer_main, &z) == 0)
				started++;
		if (started == 0)
			sizer_main(&z);
		for (int i = 0; i < started; i++)
			pthread_join(th[i], NULL);
		if (ntodo > 200)
			stage_out(ctx, "mailbox sizes of %zu account(s) read from the source", ntodo);
	}
	for (size_t i = 0; i < n; i++) {
		enum zmb_rc r = f[i].lookup_rc;
		if (r == ZMB_ENOACCOUNT) {
			stage_out(ctx, "warning: source account '%s' does not exist on %s:%d; it will fail",
				  f[i].account, job->source.host, job->source.port);
		} else if (r == ZMB_EAUTH || r == ZMB_ETLS || r == ZMB_ECONNECT) {
			*err = xasprintf("source %s:%d: %s", job->source.host, job->source.port,
					 f[i].lookup_err ? f[i].lookup_err : zmb_rc_str(r));
			rc = r;
			goto out;
		} else if (r) {
			log_warn(f[i].account, "mailbox size unknown: %s",
				 f[i].lookup_err ? f[i].lookup_err : zmb_rc_str(r));
		}
	}

	/* 4. one transaction for every row */
	if (st && (rc = state_begin(st)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		long long size = f[i].size;
		if (size > 0)
			*total_size += size;
		else if (size < 0)
			unknown_sizes++;
		char *target = job_map_account(job, f[i].account);
		if (st && (rc = state_account_upsert(st, f[i].account, target, (int64_t)f[i].seq, size))) {
			*err = xasprintf("cannot record account '%s': %s", f[i].account, state_errmsg(st));
			free(target);
			state_rollback(st);
			goto out;
		}
		if (ctx->dry_run)
			stage_out(ctx, "  %-40s -> %-40s %12lld bytes", f[i].account, target, size);
		free(target);
	}
	if (st && (rc = state_commit(st))) {
		*err = xasprintf("cannot commit discovery: %s", state_errmsg(st));
		state_rollback(st);
		goto out;
	}
	stage_out(ctx, "%zu account(s) planned, %lld bytes known%s", n, *total_size,
		  unknown_sizes ? " (some sizes unknown)" : "");
out:
	free(todo);
	return rc;
}

/* Clean working_dir of what a dead run may have left. */
static void spool_housekeeping(struct migrate *m, struct state *st)
{
	const struct job *job = m->job;
	DIR *d = opendir(job->mig.working_dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char *path = xasprintf("%s/%s", job->mig.working_dir, de->d_name);
		if (len > 9 && !strcmp(de->d_name + len - 9, ".tgz.part")) {
			log_info(NULL, "removing partial spool file '%s' left by an earlier run", path);
			unlink(path);
		} else if (len > 4 && !strcmp(de->d_name + len - 4, ".tgz")) {
			/* a complete archive: keep it only if its account waits for import */
			sqlite3_stmt *q = NULL;
			bool keep = false;
			if (sqlite3_prepare_v2(state_db(st),
					       "SELECT 1 FROM accounts WHERE spool_path = ?1 AND state = 'exported'",
					       -1, &q, NULL) == SQLITE_OK) {
				sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
				keep = sqlite3_step(q) == SQLITE_ROW;
			}
			sqlite3_finalize(q);
			if (!keep) {
				log_info(NULL, "spool file '%s' belongs to no pending import: disposing of it", path);
				spool_dispose(job, path, true, NULL);
			}
		}
		free(path);
	}
	closedir(d);
}

/* ---- progress ---- */

/* What the progress line shows; counts are re-read from the DB at most once a second. */
struct progress {
	double t0;                  /* mono time the workers started */
	long long remaining0;       /* planned bytes not yet done when they started */
	long long c[ACCT_NSTATES];
	double counted_at;
};

static void progress_line(struct migrate *m, struct state *st, struct progress *pg, bool tty, bool log)
{
	double now = mono_now();
	if ((log || now - pg->counted_at >= 1.0) && state_counts(st, pg->c) == ZMB_OK)
		pg->counted_at = now;
	long long total = 0;
	for (int i = 0; i < ACCT_NSTATES; i++)
		total += pg->c[i];
	pthread_mutex_lock(&m->mu);
	long long bytes = m->bytes_now;
	int inflight = m->in_flight;
	pthread_mutex_unlock(&m->mu);
	double el = now - pg->t0;
	double rate = el > 0 ? bytes / el : 0;
	long long left = pg->remaining0 - bytes;
	char eta[32] = "ETA --";
	if (left <= 0)
		snprintf(eta, sizeof eta, "ETA 0s");
	else if (rate > 0) {
		long long s = (long long)(left / rate);
		snprintf(eta, sizeof eta, "ETA %lldh%02lldm%02llds", s / 3600, s / 60 % 60, s % 60);
	}
	char *line = xasprintf("%lld/%lld done, %lld failed, %d in flight, %.2f GB moved, %.1f MB/s, %s",
			       pg->c[ACCT_DONE], total, pg->c[ACCT_FAILED], inflight, bytes / 1e9,
			       rate / 1e6, eta);
	if (tty) {
		fprintf(stderr, "\r\033[K%s", line);
		fflush(stderr);
	}
	if (log)
		log_info("progress", "%s", line);
	free(line);
}

static void tty_clear(void)
{
	fputs("\r\033[K", stderr);
}

/*
 * Read the target's directory for the target domains of this run, so that
 * a worker needs no GetAccount round trip per account (one SearchDirectory
 * page per 500 accounts instead).  Only domains with at least
 * TDIR_MIN_ACCOUNTS accounts on their first attempt are listed.  A domain that cannot be
 * listed is not an error: its accounts are checked one by one as before.
 * Called before the workers start; they only read the result.
 */
static void tdir_build(struct migrate *m, struct http *dst, struct state *st)
{
	const struct job *job = m->job;
	struct strlist doms = STRLIST_INIT;
	sqlite3_stmt *q = NULL;
	size_t cap = 0;

	/* accounts on their first attempt are the ones that will use it */
	if (sqlite3_prepare_v2(state_db(st),
			       "SELECT lower(substr(target, instr(target, '@') + 1)) AS d FROM accounts"
			       " WHERE attempts = 0 AND instr(target, '@') > 0"
			       " AND state IN ('pending', 'exporting', 'exported', 'importing')"
			       " GROUP BY d HAVING count(*) >= ?1 ORDER BY d", -1, &q, NULL) != SQLITE_OK) {
		sqlite3_finalize(q);
		return;
	}
	sqlite3_bind_int(q, 1, TDIR_MIN_ACCOUNTS);
	while (sqlite3_step(q) == SQLITE_ROW)
		strlist_add(&doms, (const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);

	for (size_t i = 0; i < doms.n && !runctl_must_abort(m->ctl); i++) {
		struct zaccount *za = NULL;
		size_t nz = 0;
		char *e = NULL;
		if (soap_list_accounts(dst, m->dst_tc, doms.v[i], &za, &nz, &e) == ZMB_OK) {
			for (size_t k = 0; k < nz; k++) {
				if (!za[k].id || !za[k].name)
					continue;
				if (m->ntdir == cap) {
					cap = cap ? 2 * cap : 256;
					m->tdir = xrealloc(m->tdir, cap * sizeof *m->tdir);
				}
				m->tdir[m->ntdir].name = xstrlower(za[k].name);
				m->tdir[m->ntdir].id = xstrdup(za[k].id);
				m->ntdir++;
			}
			log_debug(NULL, "target %s:%d: domain %s lists %zu account(s)", job->target.host,
				  job->target.port, doms.v[i], nz);
		} else {
			log_info(NULL, "target %s:%d: cannot list domain %s (%s); each account is "
				 "checked on its own", job->target.host, job->target.port, doms.v[i],
				 e ? e : "?");
		}
		zaccounts_free(za, nz);
		free(e);
	}
	strlist_release(&doms);
	if (m->ntdir)
		qsort(m->tdir, m->ntdir, sizeof *m->tdir, cmp_tgt);
}

static void tdir_free(struct migrate *m)
{
	for (size_t i = 0; i < m->ntdir; i++) {
		free(m->tdir[i].name);
		free(m->tdir[i].id);
	}
	free(m->tdir);
	m->tdir = NULL;
	m->ntdir = 0;
}

enum zmb_rc migrate_run(struct stage_ctx *ctx, char **err)
{
	const struct job *job = ctx->job;
	struct migrate m;
	struct http *src = NULL, *dst = NULL;
	struct found *found = NULL;
	size_t nfound = 0;
	struct worker *workers = NULL;
	enum zmb_rc rc = ZMB_OK;
	char *tok = NULL;
	int nthreads = job->mig.threads > 0 ? job->mig.threads : 1;

	memset(&m, 0, sizeof m);
	pthread_mutex_init(&m.mu, NULL);
	pthread_cond_init(&m.cv, NULL);
	state_wlock_init(&m.dbw);
	if (ctx->st && !ctx->dry_run)
		state_set_write_lock(ctx->st, &m.dbw);
	m.job = job;
	m.state_path = ctx->state_path;
	m.run_id = ctx->run_id;
	m.ctl = ctx->ctl;
	m.stream = job->mig.transfer == TRANSFER_STREAM;
	m.order = job->mig.order == ORDER_AS_LISTED ? CLAIM_AS_LISTED : CLAIM_LARGEST_FIRST;
	m.src_tc = token_cache_new(&job->source, job->token_refresh_margin, ctx->ctl);
	m.dst_tc = token_cache_new(&job->target, job->token_refresh_margin, ctx->ctl);

	if (!m.stream && !ctx->dry_run) {
		const char *dirs[3] = { job->mig.working_dir, job->mig.success_dir, job->mig.failed_dir };
		for (int i = 0; i < 3; i++) {
			if (dirs[i] && *dirs[i] && mkdir_p(dirs[i], 0700) < 0) {
				*err = xasprintf("cannot create directory '%s': %s", dirs[i], strerror(errno));
				rc = ZMB_ECONFIG;   /* a path to fix, not a state DB to wait for */
				goto out;
			}
		}
	}

	/* 1. both servers must answer and accept our credentials before any work */
	src = http_new(&job->source, job, ctx->ctl);
	dst = http_new(&job->target, job, ctx->ctl);
	struct {
		const struct server *s;
		struct token_cache *tc;
		struct http *h;
	} ends[2] = { { &job->source, m.src_tc, src }, { &job->target, m.dst_tc, dst } };
	for (int i = 0; i < 2; i++) {
		char *e = NULL;
		rc = token_get(ends[i].tc, ends[i].h, &tok, &e);
		free(tok);
		tok = NULL;
		if (rc) {
			*err = xasprintf("%s %s:%d: cannot log in as '%s': %s", ends[i].s->role,
					 ends[i].s->host, ends[i].s->port, ends[i].s->admin_user,
					 e ? e : zmb_rc_str(rc));
			free(e);
			ctx->exit_hint = EXIT_UNAVAILABLE;
			goto out;
		}
		stage_out(ctx, "%s %s:%d: logged in as %s", ends[i].s->role, ends[i].s->host,
			  ends[i].s->port, ends[i].s->admin_user);
	}

	/* 2. discovery and plan */
	rc = discover(&m, ctx, src, &found, &nfound, err);
	if (rc) {
		if (rc == ZMB_EAUTH || rc == ZMB_ECONNECT || rc == ZMB_ETLS)
			ctx->exit_hint = EXIT_UNAVAILABLE;
		goto out;
	}
	long long total = 0;
	rc = plan(&m, ctx, ctx->dry_run ? NULL : ctx->st, found, &nfound, &total, err);
	if (rc) {
		if (rc == ZMB_EAUTH || rc == ZMB_ECONNECT || rc == ZMB_ETLS)
			ctx->exit_hint = EXIT_UNAVAILABLE;
		goto out;
	}
	if (ctx->dry_run) {
		stage_out(ctx, "dry run: order %s, %d thread(s), transfer %s",
			  m.order == CLAIM_AS_LISTED ? "as-listed" : "largest-first", nthreads,
			  m.stream ? "stream" : "spool");
		if (!m.stream)
			stage_out(ctx, "dry run: spool space needed at most about %lld bytes in '%s' "
				  "(the largest %d archives at once)", total, job->mig.working_dir, nthreads);
		goto out;
	}
	if (!m.stream)
		spool_housekeeping(&m, ctx->st);
	tdir_build(&m, dst, ctx->st);

	/* 3. workers */
	bool tty = isatty(2) && !ctx->quiet;
	if (tty)
		zlog_set_tty_hook(tty_clear);
	workers = xcalloc((size_t)nthreads, sizeof *workers);
	int started = 0;
	for (int i = 0; i < nthreads; i++) {
		workers[i].m = &m;
		workers[i].index = i;
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
			log_error(NULL, "cannot start worker thread %d: %s", i, strerror(errno));
			break;
		}
		started++;
	}
	struct progress pg;
	memset(&pg, 0, sizeof pg);
	pg.t0 = mono_now();
	{
		/* bytes still to move, for the ETA (bytes-weighted, like `status`) */
		sqlite3_stmt *q = NULL;
		if (sqlite3_prepare_v2(state_db(ctx->st), "SELECT coalesce(sum(size), 0) FROM accounts"
				       " WHERE size > 0 AND state IN ('pending','exporting','exported','importing')",
				       -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
			pg.remaining0 = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
	double last_log = pg.t0;
	double interval = job->progress_interval > 0 ? (double)job->progress_interval : 300;
	for (;;) {
		/* wake on a worker's exit at once; otherwise every 250 ms for progress */
		pthread_mutex_lock(&m.mu);
		if (m.exited < started) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 250 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&m.cv, &m.mu, &ts);
		}
		bool all_exited = m.exited >= started;
		pthread_mutex_unlock(&m.mu);
		if (all_exited)
			break;
		bool log_now = atomic_exchange(&ctx->ctl->progress_request, 0) ||
			       (!tty && mono_now() - last_log >= interval);
		if (log_now)
			last_log = mono_now();
		if (tty || log_now)
			progress_line(&m, ctx->st, &pg, tty, log_now);
	}
	for (int i = 0; i < started; i++)
		pthread_join(workers[i].thread, NULL);
	if (tty) {
		tty_clear();
		zlog_set_tty_hook(NULL);
	}
	progress_line(&m, ctx->st, &pg, false, true);

	/* 4. verdict from the DB: what is left? */
	long long c[ACCT_NSTATES];
	if ((rc = state_counts(ctx->st, c))) {
		*err = xasprintf("cannot count accounts: %s", state_errmsg(ctx->st));
		goto out;
	}
	long long left = c[ACCT_PENDING] + c[ACCT_EXPORTED] + c[ACCT_EXPORTING] + c[ACCT_IMPORTING];
	stage_out(ctx, "accounts: %lld done, %lld failed, %lld skipped, %lld left", c[ACCT_DONE],
		  c[ACCT_FAILED], c[ACCT_SKIPPED], left);
	if (started == 0 || m.fatal_workers == started) {
		*err = xstrdup("no worker could start");
		rc = ZMB_EINTERNAL;
	} else if (left > 0) {
		ctx->exit_hint = EXIT_TEMPFAIL;
	} else if (c[ACCT_FAILED] > 0) {
		ctx->exit_hint = EXIT_PARTIAL;
		*err = xasprintf("%lld account(s) failed permanently (see 'zmbatch report')", c[ACCT_FAILED]);
	}
out:
	if (!ctx->dry_run && ctx->st) {
		/* per-server login counters for reports (servers table) */
		struct { const char *role; const struct server *s; struct token_cache *tc; } sv[2] = {
			{ "source", &job->source, m.src_tc }, { "target", &job->target, m.dst_tc } };
		for (int i = 0; i < 2; i++) {
			long long req = 0, ok = 0;
			token_counts(sv[i].tc, &req, &ok);
			char *host = xasprintf("%s:%d", sv[i].s->host, sv[i].s->port);
			if (req > 0 && state_server_count(ctx->st, sv[i].role, host, req,
							  ok > 1 ? ok - 1 : 0, req - ok))
				log_warn(NULL, "cannot record login counters: %s", state_errmsg(ctx->st));
			free(host);
			log_debug(NULL, "%s: %lld AuthRequest(s), %lld ok", sv[i].role, req, ok);
		}
	}
	free(workers);
	found_free(found, nfound);
	tdir_free(&m);
	http_free(src);
	http_free(dst);
	token_cache_free(m.src_tc);
	token_cache_free(m.dst_tc);
	if (ctx->st && !ctx->dry_run)
		state_set_write_lock(ctx->st, NULL);
	pthread_cond_destroy(&m.cv);
	state_wlock_destroy(&m.dbw);
	pthread_mutex_destroy(&m.mu);
	return rc;
}
