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

static void set_verdict(struct xfer_worker *w, enum xfer_verdict v, char *detail)
{
	free(w->verdict_detail);
	w->verdict = xfer_verdict_name(v);
	w->verdict_detail = detail;
}

bool xfer_verify_after_import(struct xfer_worker *w, const struct account_row *a,
			      enum acct_state from, enum acct_state back, const char *source_json,
			      long long bytes, long long warnings)
{
	struct xfer *x = w->x;
	const struct xfer_driver *dd = w->dst->end->drv;
	if (!x->job->mig.verify || !dd->folder_counts)
		return true;
	/* the import is complete: from here a crash resumes at the verification */
	if (state_account_imported(w->st, x->run_id, a->id, source_json, bytes))
		log_warn(w->ctx, "cannot record the import: %s", state_errmsg(w->st));
	const char *sj = source_json ? source_json : a->verify_source;
	struct xfer_folder *sv = NULL, *dv = NULL;
	size_t ns = 0, nd = 0;
	char *err = NULL;
	bool go_on = true;
	if (!sj || xfer_figures_parse(sj, &sv, &ns) < 0) {
		set_verdict(w, XFER_VERIFY_UNVERIFIABLE,
			    xasprintf("the source's folders could not be read when the archive was cut: %s",
				      w->source_figures_err ? w->source_figures_err : "no figures recorded"));
	} else if (dd->folder_counts(w->dst, a->target, &dv, &nd, &err) != ZMB_OK) {
		set_verdict(w, XFER_VERIFY_UNVERIFIABLE,
			    xasprintf("the target's folders could not be read: %s", err ? err : "?"));
	} else {
		struct xfer_verify_rules r = { x->job->mig.types, x->target_carbonio, a->delta };
		char *detail = NULL;
		enum xfer_verdict v = xfer_verify_compare(sv, ns, dv, nd, &r, &detail);
		if (v == XFER_VERIFY_MISMATCH && warnings > 0) {
			char *d2 = xasprintf("%s; the import reported %lld warning(s): see the account's "
					     "events", detail, warnings);
			free(detail);
			detail = d2;
		}
		set_verdict(w, v, detail);
		if (v == XFER_VERIFY_MISMATCH) {
			/* a temporary error: imported again with resolve=skip, nothing doubles */
			xfer_account_error(w, a, from, back, ZMB_ETEMP, "verify", w->verdict_detail);
			go_on = false;
		}
	}
	if (go_on && w->verdict)
		log_info(w->ctx, "verify: %s: %s", w->verdict, w->verdict_detail ? w->verdict_detail : "");
	xfer_folders_free(sv, ns);
	xfer_folders_free(dv, nd);
	free(err);
	return go_on;
}
