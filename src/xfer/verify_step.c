/*
 * verify_step.c - the verification step of a transfer (xfer_int.h): the
 * source's figures when the archive is cut, the target's after the import,
 * compared by verify.c; an account is done only when verified (or when
 * migration.verify is off, or the servers could not be asked: then it is
 * done "unverifiable", with the reason).
 */
#include "log.h"
#include "xfer_int.h"

#include <stdlib.h>
#include <string.h>

char *xfer_source_figures(struct xfer_worker *w, const struct account_row *a)
{
	struct xfer *x = w->x;
	const struct xfer_driver *d = w->src->end->drv;
	if (!x->job->mig.verify || !d->folder_counts || !w->dst->end->drv->folder_counts)
		return NULL;
	struct xfer_folder *v = NULL;
	size_t n = 0;
	char *err = NULL;
	if (d->folder_counts(w->src, a->account, &v, &n, &err) != ZMB_OK) {
		/* not the transfer's fault: it goes on, and the verdict will say why */
		free(w->source_figures_err);
		w->source_figures_err = err ? err : xstrdup("no answer");
		log_warn(w->ctx, "cannot read the source's folders for the verification: %s",
			 w->source_figures_err);
		return NULL;
	}
	char *json = xfer_figures_json(v, n);
	xfer_folders_free(v, n);
	return json;
}

/* Per folder, the smaller of two sets of figures (a folder in only one of them: left out). */
static char *figures_min(const char *before, const struct xfer_folder *now, size_t nn)
{
	struct xfer_folder *bv = NULL;
	size_t nb = 0;
	if (xfer_figures_parse(before, &bv, &nb) < 0)
		return xfer_figures_json(now, nn);
	size_t k = 0;
	for (size_t i = 0; i < nb; i++) {
		const struct xfer_folder *m = NULL;
		for (size_t j = 0; j < nn && !m; j++)
			if (now[j].path && !strcmp(now[j].path, bv[i].path))
				m = &now[j];
		if (!m) {
			free(bv[i].path);
			free(bv[i].view);
			continue;
		}
		bv[k] = bv[i];
		if (m->n < bv[k].n)
			bv[k].n = m->n;
		if (m->s < bv[k].s)
			bv[k].s = m->s;
		k++;
	}
	char *json = xfer_figures_json(bv, k);
	xfer_folders_free(bv, k);
	return json;
}

char *xfer_source_figures_after(struct xfer_worker *w, const struct account_row *a, char *before)
{
	const struct xfer_driver *d = w->src->end->drv;
	if (!before)
		return NULL;
	struct xfer_folder *v = NULL;
	size_t n = 0;
	char *err = NULL;
	if (d->folder_counts(w->src, a->account, &v, &n, &err) != ZMB_OK) {
		log_debug(w->ctx, "cannot read the source's folders after the export: %s", err ? err : "?");
		free(err);
		return before;
	}
	char *json = figures_min(before, v, n);
	xfer_folders_free(v, n);
	free(before);
	return json;
}

static void set_verdict(struct xfer_worker *w, enum xfer_verdict v, char *detail)
{
	free(w->verdict_detail);
	w->verdict = xfer_verdict_name(v);
	w->verdict_detail = detail;
}

enum xfer_vstep xfer_verify_judge(struct xfer_worker *w, const struct account_row *a,
				  enum acct_state from, enum acct_state back, const char *sj,
				  long long warnings)
{
	struct xfer *x = w->x;
	const struct xfer_driver *dd = w->dst->end->drv;
	enum xfer_vstep step = XFER_V_DONE;
	struct xfer_folder *sv = NULL, *dv = NULL;
	size_t ns = 0, nd = 0;
	char *err = NULL;
	enum zmb_rc rc;
	if (!sj || xfer_figures_parse(sj, &sv, &ns) < 0) {
		set_verdict(w, XFER_VERIFY_UNVERIFIABLE,
			    xasprintf("the source's folders could not be read when the archive was cut: %s",
				      w->source_figures_err ? w->source_figures_err : "no figures recorded"));
	} else if ((rc = dd->folder_counts(w->dst, a->target, &dv, &nd, &err)) == ZMB_ECANCELED) {
		/* an abort: not the target's answer; left verify_pending for the next run */
		step = XFER_V_PARK;
	} else if (rc != ZMB_OK) {
		set_verdict(w, XFER_VERIFY_UNVERIFIABLE,
			    xasprintf("the target's folders could not be read: %s", err ? err : "?"));
	} else {
		struct xfer_verify_rules r = { x->job->mig.types, x->target_carbonio, a->delta };
		char *detail = NULL;
		enum xfer_verdict v = xfer_verify_compare(sv, ns, dv, nd, &r, &detail);
		if (v == XFER_VERIFY_MISMATCH) {
			/*
			 * Short against the figures taken when the export began: mail deleted
			 * or moved on the live mailbox meanwhile would look lost.  Ask the
			 * source again and count, per folder, the smaller of the two (one more
			 * request, only for a mismatch).
			 */
			char *now = xfer_source_figures_after(w, a, xstrdup(sj));
			struct xfer_folder *mv = NULL;
			size_t nm = 0;
			if (now && xfer_figures_parse(now, &mv, &nm) == 0) {
				free(detail);
				detail = NULL;
				v = xfer_verify_compare(mv, nm, dv, nd, &r, &detail);
			}
			xfer_folders_free(mv, nm);
			free(now);
		}
		if (v == XFER_VERIFY_MISMATCH && warnings > 0) {
			char *d2 = xasprintf("%s; the import reported %lld warning(s): see the account's "
					     "events", detail, warnings);
			free(detail);
			detail = d2;
		}
		set_verdict(w, v, detail);
		if (v == XFER_VERIFY_MISMATCH && a->delta) {
			/* a delta pass runs when users work on the target (after the MX switch):
			 * the verdict is recorded, the account is not imported again */
			log_warn(w->ctx, "verify: mismatch after a delta pass (recorded, not retried): %s",
				 w->verdict_detail);
		} else if (v == XFER_VERIFY_MISMATCH) {
			/* a temporary error: imported again with resolve=skip, nothing doubles */
			xfer_account_error(w, a, from, back, ZMB_ETEMP, "verify", w->verdict_detail);
			step = XFER_V_RETRIED;
		}
	}
	if (step == XFER_V_DONE && w->verdict)
		log_info(w->ctx, "verify: %s: %s", w->verdict, w->verdict_detail ? w->verdict_detail : "");
	xfer_folders_free(sv, ns);
	xfer_folders_free(dv, nd);
	free(err);
	return step;
}
