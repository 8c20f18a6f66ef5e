/*
 * chunk.c - a pass exported in pieces ("chunks", xfer_int.h): planned once,
 * each step a durable row of the state database (schema 006), so a pass
 * interrupted anywhere resumes at its first step not done.
 *
 * Why pieces, and why these (zm-mailbox store/src/java/com/zimbra/cs/
 * service/formatter/ArchiveFormatter.java, formatCallback):
 *   - zimbraExportMaxDays > 0 refuses any whole-mailbox export: start and
 *     end must be given and end - start <= maxDays x 86,400,000 ms
 *     (298-309; mail.EXPORT_PERIOD_NOT_SPECIFIED / _TOO_LONG, HTTP 500);
 *   - a window turns into "after:<start> before:<end>" (310-317), and
 *     DateQuery (index/query/DateQuery.java 265-268) makes after:<ms>
 *     match from ms + 1000: consecutive windows overlap by 1000 ms here,
 *     or the items of that second would be in none;
 *   - appointments are in a window only when they start and end inside it
 *     (appt-start:>= / appt-end:<), and every task is in every window
 *     ("is:local", 345-350): both are sent apart, by id (list=), which the
 *     formatter saves without any window or zimbraExportMaxDays check
 *     (requestedItems branch, 273-279);
 *   - folders, search folders, mountpoints and tags are written only when
 *     the query is empty (324-335): never in a window.  The first step
 *     sends them by id (list=), so empty folders, views, colours and shares
 *     arrive as with a whole export.
 * A list= id that no longer exists makes the formatter stop saving the rest
 * of the list without an error (UserServletUtil.resolveItems leaves it null,
 * saveItem throws, warn() swallows it): ids are read right before each
 * export, not at planning time.
 *
 * Every --delta pass is planned as steps too (README "Delta passes"): the
 * tree (new and empty folders), the calendar whole with resolve=modify
 * (edited appointments and tasks), and the items dated since the last mark.
 */
#include "log.h"
#include "testhooks.h"
#include "xfer_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define DAY_MS 86400000LL
/*
 * A list= export's ids: at most LIST_PAGE ids and LIST_BYTES of text, so the
 * request line stays well under Jetty's request header limit
 * (zimbraHttpRequestHeaderSize, 8192 by default: zimbra-attrs.xml).
 */
#define LIST_PAGE 400
#define LIST_BYTES 4000
/* a server answering "more" for ever: pages beyond this are an error */
#define MAX_LIST_PAGES 20000
/* more windows than this is a plan gone wrong (1 day windows since 1970 are ~20,000) */
#define MAX_WINDOWS 40000

/* The item types a pass exports outside the calendar step. */
static const char *const window_all[] = { "message", "contact", "document", "wiki", "chat",
					   "note", NULL };
static const char *const calendar_all[] = { "appointment", "task", NULL };

static bool types_has(const char *types, const char *t)
{
	if (!types || !*types)
		return true;
	size_t n = strlen(t);
	for (const char *p = types; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *te = e;
		while (te > p && te[-1] == ' ')
			te--;
		if ((size_t)(te - p) == n && !strncasecmp(p, t, n))
			return true;
		p = e;
	}
	return false;
}

/* The job's types (NULL = all) restricted to one group, comma-joined; "" if none. */
static char *types_of(const char *job_types, const char *const *group)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; group[i]; i++)
		if (types_has(job_types, group[i]))
			buf_addf(&b, "%s%s", b.len ? "," : "", group[i]);
	return b.s ? buf_detach(&b) : xstrdup("");
}

static char *join_ids(const struct strlist *l)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < l->n; i++)
		buf_addf(&b, "%s%s", i ? "," : "", l->v[i]);
	return buf_detach(&b);
}

bool xfer_chunk_wanted(const struct xfer *x, const struct account_row *a)
{
	const struct xfer_driver *d = x->src->drv;
	if (!d->tree_ids || !d->item_ids || !d->oldest || !d->export_max_days)
		return false;
	const struct migration *m = &x->job->mig;
	if (a->chunks_total > 0 && a->chunks_done < a->chunks_total)
		return true;                       /* a planned pass not finished */
	/* every step done, but the pass did not end (transport, a crash before the import
	 * was recorded): only its end is left; a verification mismatch plans it again */
	if (a->chunks_total > 0 && !(a->last_error && !strncmp(a->last_error, "verify:", 7)))
		return true;
	if (a->delta && a->sync_mark > 0)
		return true;
	return m->chunk > 0 || (m->chunk_bytes > 0 && a->size > m->chunk_bytes);
}

static void fmt_day(long long ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%d", &tm);
}

/* One step's name for events and errors: "step 3/12 (window 2019-01-01..2020-01-01)". */
static char *step_name(const struct chunk_row *c, size_t n)
{
	char a[16], b[16];
	if (c->kind != CHUNK_WINDOW)
		return xasprintf("step %d/%zu (%s)", c->idx + 1, n, chunk_kind_name(c->kind));
	fmt_day(c->start_ms, a, sizeof a);
	if (!c->end_ms)
		return xasprintf("step %d/%zu (window from %s)", c->idx + 1, n, a);
	fmt_day(c->end_ms, b, sizeof b);
	return xasprintf("step %d/%zu (window %s..%s)", c->idx + 1, n, a, b);
}

/*
 * The plan of a new pass: tree, calendar, then windows from the oldest item
 * (a full pass) or from the last mark less the overlap (a delta pass) to
 * now, each at most `max_days` long when the server has such a limit.
 */
static enum zmb_rc plan(struct xfer_worker *w, const struct account_row *a, long long max_days,
			struct chunk_row **out, size_t *n, char **why, char **err)
{
	struct xfer *x = w->x;
	const struct migration *m = &x->job->mig;
	const struct xfer_driver *d = x->src->drv;
	long long mark = (long long)(wall_now() * 1000);
	char *wtypes = types_of(m->types, window_all);
	char *ctypes = types_of(m->types, calendar_all);
	enum zmb_rc rc = ZMB_OK;
	long long start, len = 0;

	if (max_days < 0 && (rc = d->export_max_days(w->src, a->account, &max_days, err)))
		goto out;
	if (a->delta && a->sync_mark > 0) {
		start = a->sync_mark - m->delta_overlap * 1000;
	} else {
		long long oldest = 0;
		if (*wtypes && (rc = d->oldest(w->src, a->account, wtypes, &oldest, err)))
			goto out;
		start = oldest > 0 ? oldest - 1000 : mark - DAY_MS;
	}
	if (start < 1)
		start = 1;
	if (m->chunk > 0)
		len = m->chunk * 1000;
	else if (m->chunk_bytes > 0 && a->size > m->chunk_bytes && mark > start)
		len = (long long)((double)(mark - start) * ((double)m->chunk_bytes / (double)a->size));
	if (max_days > 0 && (len <= 0 || len > max_days * DAY_MS))
		len = max_days * DAY_MS;
	if (len > 0 && len < DAY_MS)
		len = DAY_MS;

	size_t cap = 16, k = 0;
	struct chunk_row *v = xcalloc(cap, sizeof *v);
	v[k++].kind = CHUNK_TREE;
	if (*ctypes)
		v[k++].kind = CHUNK_CALENDAR;
	size_t nwin = 0;
	for (long long s = start; *wtypes;) {
		if (k == cap)
			v = xrealloc(v, (cap *= 2) * sizeof *v);
		memset(&v[k], 0, sizeof v[k]);
		v[k].kind = CHUNK_WINDOW;
		v[k].start_ms = s;
		nwin++;
		/* no server limit: the last window is open, and takes what is dated later */
		if (len <= 0 || (max_days <= 0 && s + len >= mark)) {
			k++;
			break;
		}
		v[k++].end_ms = s + len;
		/* with a limit every window is closed: the last one reaches a day past now */
		if (s + len >= mark + DAY_MS)
			break;
		if (nwin >= MAX_WINDOWS) {
			free(v);
			*err = xasprintf("%s: export windows of %lld day(s) from %lld would be more than %d",
					 a->account, len / DAY_MS, start, MAX_WINDOWS);
			rc = ZMB_ECONFIG;
			goto out;
		}
		s = s + len - 1000;   /* after:<ms> starts at ms + 1000: overlap by that second */
	}
	for (size_t i = 0; i < k; i++) {
		v[i].idx = (int)i;
		v[i].mark_ms = mark;
	}
	*out = v;
	*n = k;
	char day[16];
	fmt_day(start, day, sizeof day);
	*why = xasprintf("%s in %zu steps: folder tree%s, %zu window(s) %s%lld day(s) from %s%s%s",
			 a->delta && a->sync_mark > 0 ? "delta pass" : "export", k,
			 *ctypes ? ", calendar by id" : "", nwin, len > 0 ? "of " : "",
			 len > 0 ? len / DAY_MS : 0, day,
			 max_days > 0 ? " (zimbraExportMaxDays=" : "",
			 max_days > 0 ? "set)" : "");
	if (len <= 0) {
		free(*why);
		*why = xasprintf("%s in %zu steps: folder tree%s, items dated from %s",
				 a->delta && a->sync_mark > 0 ? "delta pass" : "export", k,
				 *ctypes ? ", calendar by id" : "", day);
	}
	if (a->delta && a->sync_mark > 0) {
		/* what the real formatter cannot give a delta (it filters on the item date) */
		char *t = xasprintf("%s; not carried: messages moved, flags and tags changed, items "
				    "deleted on the source since the last pass", *why);
		free(*why);
		*why = t;
	}
out:
	free(wtypes);
	free(ctypes);
	return rc;
}

/* One export + import of a step (spool file or stream), with ids/window in o. */
struct step_io {
	long long bytes;            /* bytes sent to the target by this step */
	long long warnings;         /* import warnings recorded */
	enum zmb_rc rc;
	char *err;
	bool export_failed;         /* the error came from the source */
};

/* Record an import's warnings as events of the account. */
static long long record_warnings(struct xfer_worker *w, const struct account_row *a,
				 const struct xfer_import_result *res, const char *step)
{
	for (size_t i = 0; i < res->n; i++) {
		char *ev = xasprintf("import warning (%s): %s", step, res->warnings[i]);
		log_warn(w->ctx, "%s", ev);
		state_event(w->st, w->x->run_id, a->id, NULL, "warn", ev);
		free(ev);
	}
	if (res->total > res->n) {
		char *ev = xasprintf("import warning (%s): %zu more not recorded", step, res->total - res->n);
		state_event(w->st, w->x->run_id, a->id, NULL, "warn", ev);
		free(ev);
	}
	return (long long)res->total;
}

static void transfer_once(struct xfer_worker *w, const struct account_row *a,
			  const struct xfer_export_opts *o, const char *resolve, const char *step,
			  struct step_io *io)
{
	struct xfer *x = w->x;
	const struct xfer_driver *sd = w->src->end->drv, *dd = w->dst->end->drv;
	struct xfer_import_result res = { NULL, 0, 0 };
	long long bytes = 0;
	bool empty = false;
	if (x->stream) {
		io->rc = sd->stream(w->src, w->dst, a->account, a->target, o, resolve, &bytes, &empty,
				    &res, &io->err);
	} else {
		char *path = xfer_spool_path(x->job, a->account, ".chunk");
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			io->rc = ZMB_EIO;
			io->err = xasprintf("cannot create spool file '%s': %s", path, strerror(errno));
			free(path);
			return;
		}
		struct xfer_export_opts eo = *o;
		eo.verify = w->gz;
		io->rc = sd->export_fd(w->src, a->account, &eo, fd, &bytes, &empty, &io->err);
		if (io->rc == ZMB_OK && !empty)
			io->rc = gz_check_finish(w->gz, &io->err);
		io->export_failed = io->rc != ZMB_OK;
		if (io->rc == ZMB_OK && !empty) {
			log_debug(w->ctx, "%s: exported %lld bytes; importing", step, bytes);
			bytes = 0;
			if (lseek(fd, 0, SEEK_SET) < 0) {
				io->rc = ZMB_EIO;
				io->err = xasprintf("cannot rewind '%s': %s", path, strerror(errno));
			} else {
				io->rc = dd->import_fd(w->dst, a->target, resolve, fd, &bytes, &res, &io->err);
			}
		}
		close(fd);
		unlink(path);
		free(path);
	}
	if (io->rc == ZMB_OK && !empty)
		io->warnings += record_warnings(w, a, &res, step);
	if (io->rc == ZMB_OK)
		io->bytes += bytes;
	xfer_import_result_release(&res);
}

/* The calendar step: appointment and task ids, page by page, each page sent with resolve=modify. */
static void calendar_step(struct xfer_worker *w, const struct account_row *a, const char *types,
			  const char *step, struct step_io *io, long long *items)
{
	const struct xfer_driver *d = w->src->end->drv;
	bool more = true;
	long pages = 0;
	for (long long off = 0; more && io->rc == ZMB_OK;) {
		if (++pages > MAX_LIST_PAGES) {
			io->rc = ZMB_EPROTO;
			io->err = xasprintf("more than %d pages of calendar items: the server keeps "
					    "answering more", MAX_LIST_PAGES);
			break;
		}
		struct strlist ids = STRLIST_INIT;
		io->rc = d->item_ids(w->src, a->account, types, off, LIST_PAGE, &ids, &more, &io->err);
		io->export_failed = io->rc != ZMB_OK;
		if (io->rc == ZMB_OK && ids.n) {
			char *list = join_ids(&ids);   /* 400 ids of up to 10 digits: 4.4 KB at most */
			struct xfer_export_opts o = { .ids = list };
			/* modify: an appointment or task edited since the last pass is rewritten */
			transfer_once(w, a, &o, "modify", step, io);
			free(list);
			*items += (long long)ids.n;
			off += (long long)ids.n;
		}
		if (!ids.n)
			more = false;
		strlist_release(&ids);
	}
}

/* The resolve of a step: reset only for the first (it empties the target); delta always skip. */
static const char *step_resolve(const struct job *job, const struct account_row *a,
				const struct chunk_row *c)
{
	const char *r = xfer_import_resolve(job, a);
	if (r && !strcmp(r, "reset") && c->idx > 0)
		return "skip";
	return r;
}

static void run_step(struct xfer_worker *w, const struct account_row *a, const struct chunk_row *c,
		     const char *step, struct step_io *io, long long *items)
{
	struct xfer *x = w->x;
	const struct migration *m = &x->job->mig;
	const struct xfer_driver *d = w->src->end->drv;
	if (c->kind == CHUNK_TREE) {
		struct strlist ids = STRLIST_INIT;
		io->rc = d->tree_ids(w->src, a->account, &ids, &io->err);
		io->export_failed = io->rc != ZMB_OK;
		/* in pages, in tree order: a parent is always in a page before its folders */
		for (size_t i = 0; io->rc == ZMB_OK && i < ids.n;) {
			struct buf b = BUF_INIT;
			size_t k = 0;
			for (; i < ids.n && k < LIST_PAGE && b.len + strlen(ids.v[i]) + 1 < LIST_BYTES; i++, k++)
				buf_addf(&b, "%s%s", k ? "," : "", ids.v[i]);
			char *list = buf_detach(&b);
			struct xfer_export_opts o = { .ids = list };
			transfer_once(w, a, &o, step_resolve(x->job, a, c), step, io);
			free(list);
		}
		*items = (long long)ids.n;
		strlist_release(&ids);
	} else if (c->kind == CHUNK_CALENDAR) {
		char *types = types_of(m->types, calendar_all);
		calendar_step(w, a, types, step, io, items);
		free(types);
	} else {
		char *types = types_of(m->types, window_all);
		struct xfer_export_opts o = { .types = types, .start_ms = c->start_ms, .end_ms = c->end_ms };
		transfer_once(w, a, &o, step_resolve(x->job, a, c), step, io);
		free(types);
	}
}

bool xfer_chunk_max_days(struct xfer_worker *w, const struct account_row *a, enum zmb_rc rc,
			 long long *max_days)
{
	const struct xfer_driver *d = w->src->end->drv;
	char *err = NULL;
	*max_days = 0;
	/* the refusal is a 500 (formatCallback throws, UserServlet.doGet wraps it in a
	 * ServletException): a server error, whose body text is not known from source */
	if (rc != ZMB_ETEMP || !d->export_max_days || !d->tree_ids)
		return false;
	if (d->export_max_days(w->src, a->account, max_days, &err) != ZMB_OK) {
		log_debug(w->ctx, "cannot read zimbraExportMaxDays: %s", err ? err : "?");
		free(err);
		*max_days = 0;
		return false;
	}
	if (*max_days > 0)
		log_info(w->ctx, "the export was refused and zimbraExportMaxDays is %lld: exporting in "
			 "windows", *max_days);
	return *max_days > 0;
}

void xfer_chunk_account(struct xfer_worker *w, struct account_row *a, enum acct_state cur,
			long long max_days, bool from_dir, const char *target_id)
{
	struct xfer *x = w->x;
	struct chunk_row *v = NULL;
	size_t n = 0;
	char *err = NULL, *why = NULL;
	struct xfer_vjob *vj = NULL;
	double t0 = mono_now();
	enum zmb_rc rc = ZMB_OK;

	bool finish = a->chunks_total > 0 && !(a->last_error && !strncmp(a->last_error, "verify:", 7));
	if ((finish || (a->chunks_total > 0 && a->chunks_done < a->chunks_total)) &&
	    (rc = state_chunks_get(w->st, a->id, &v, &n)) != ZMB_OK) {
		log_error(w->ctx, "cannot read the steps: %s", state_errmsg(w->st));
		xfer_account_error(w, a, cur, ACCT_PENDING, ZMB_ESTATE, "plan", state_errmsg(w->st));
		return;
	}
	if (n == 0) {
		rc = plan(w, a, max_days, &v, &n, &why, &err);
		if (rc) {
			xfer_status_after_error(w, a, true, rc);
			if (!xfer_status_wait(w, a, cur, ACCT_PENDING))
				xfer_account_error(w, a, cur, ACCT_PENDING, rc, "plan the export", err);
			goto out;
		}
		log_info(w->ctx, "%s", why);
		if (state_chunks_plan(w->st, x->run_id, a->id, v, n, why)) {
			xfer_account_error(w, a, cur, ACCT_PENDING, ZMB_ESTATE, "plan", state_errmsg(w->st));
			goto out;
		}
		a->chunks_total = (int)n;
		a->chunks_done = 0;
	}

	/* the source's figures when the pass starts (or resumes), read by a verifier */
	vj = xfer_vjob_start(w, a);
	long long total = 0, warnings = 0;
	for (size_t i = 0; i < n; i++) {
		struct chunk_row *c = &v[i];
		if (c->done) {
			total += c->bytes;
			warnings += c->warnings;
			continue;
		}
		char *step = step_name(c, n);
		if (!runctl_may_claim(x->ctl)) {
			/* a stop between steps: the done ones stay done */
			xfer_account_error(w, a, cur, ACCT_PENDING, ZMB_ECANCELED, step, NULL);
			free(step);
			goto out;
		}
		struct step_io io = { 0, 0, ZMB_OK, NULL, false };
		long long items = 0;
		run_step(w, a, c, step, &io, &items);
		if (io.rc) {
			if (io.export_failed)
				xfer_status_after_error(w, a, true, io.rc);
			else
				xfer_recheck_target(w, a, from_dir, &io.rc, &io.err);
			if (!xfer_status_wait(w, a, cur, ACCT_PENDING)) {
				char *what = xasprintf("%s %s", step, io.export_failed ? "export" : "import");
				xfer_account_error(w, a, cur, ACCT_PENDING, io.rc, what, io.err);
				free(what);
			}
			free(io.err);
			free(step);
			goto out;
		}
		char *ev = xasprintf("%s done: %lld bytes%s", step, io.bytes,
				     io.warnings ? " with import warnings" : "");
		log_info(w->ctx, "%s", ev);
		rc = state_chunk_done(w->st, x->run_id, a->id, c->idx, io.bytes, items, io.warnings, ev);
		free(ev);
		free(step);
		if (rc) {
			log_error(w->ctx, "cannot record the step: %s", state_errmsg(w->st));
			goto out;
		}
		c->done = true;   /* the commit was the crashpoint "chunk done" */
		total += io.bytes;
		warnings += io.warnings;
	}
	if ((rc = xfer_set_transport(w, a, from_dir, target_id, &err)) != ZMB_OK) {
		xfer_account_error(w, a, cur, ACCT_PENDING, rc, "set transport", err);
		goto out;
	}
	char *what = xasprintf("%s in %zu steps", a->delta ? "delta pass done" : "migrated", n);
	struct xfer_vend e = { cur, ACCT_PENDING, total, warnings, v[0].mark_ms, false, t0, what,
			       NULL, warnings, NULL, 0 };
	if (!xfer_verify_pass(w, a, vj, &e))
		xfer_account_done(w, a, cur, total, mono_now() - t0, v[0].mark_ms, what, NULL, warnings);
	vj = NULL;
	free(what);
out:
	free(v);
	free(why);
	xfer_vjob_drop(x, vj);
	free(err);
}
