/*
 * stream.c - the stream strategy for one claimed account (xfer_int.h): the
 * export is piped into the import, no disk; one durable step, importing ->
 * done, or back to pending.
 */
#include "log.h"
#include "xfer_int.h"

#include <stdlib.h>

void xfer_stream_account(struct xfer_worker *w, struct account_row *a)
{
	struct xfer *x = w->x;
	const struct job *job = x->job;
	char *err = NULL, *target_id = NULL;
	struct xfer_vjob *vj = NULL;
	long long mark_ms = (long long)(wall_now() * 1000);
	double t0 = mono_now();
	bool from_dir = false;
	struct xfer_import_result res = { NULL, 0, 0 };
	enum zmb_rc rc = xfer_check_target(w, a, &target_id, &from_dir, &err);
	if (rc) {
		xfer_account_error(w, a, ACCT_IMPORTING, ACCT_PENDING, rc, "check target", err);
		goto out;
	}
	xfer_status_source(w, a, a->status_wait_since > 0);
	if (xfer_status_wait(w, a, ACCT_IMPORTING, ACCT_PENDING))
		goto out;
	if (a->verify_pending) {
		/* imported before a crash, not yet verified: only the verification is left;
		 * the pass ends with its export's mark, not the time it resumed */
		struct xfer_vend e = { ACCT_IMPORTING, ACCT_PENDING, a->bytes, 0,
				       a->verify_mark > 0 ? a->verify_mark : mark_ms, true, t0,
				       a->delta ? "delta pass done" : "migrated", NULL, 0, NULL, 0 };
		if (!xfer_verify_pass(w, a, NULL, &e))
			xfer_account_done(w, a, ACCT_IMPORTING, e.bytes, mono_now() - t0, e.mark_ms,
					  e.what, NULL, 0);
		goto out;
	}
	xfer_status_carbonio_note(w, a);
	if (xfer_chunk_wanted(x, a)) {
		xfer_chunk_account(w, a, ACCT_IMPORTING, -1, from_dir, target_id);
		goto out;
	}
	struct xfer_export_opts o;
	xfer_export_opts(x, a, &o);   /* no gzip check: the target's import parses the stream */
	long long bytes = 0;
	bool empty = false;
	log_debug(w->ctx, "streaming %s:%d -> %s on %s:%d%s", job->source.host, job->source.port,
		 a->target, job->target.host, job->target.port, o.start_ms ? " (delta)" : "");
	/* the source's figures, read by a verifier while the export starts */
	vj = xfer_vjob_start(w, a);
	rc = w->src->end->drv->stream(w->src, w->dst, a->account, a->target, &o,
				      xfer_import_resolve(job, a), &bytes, &empty, &res, &err);
	long long max_days = 0;
	if (xfer_chunk_max_days(w, a, rc, &max_days)) {
		/* refused for zimbraExportMaxDays before any byte was imported: the pass in
		 * steps reads the source's figures again when it starts */
		xfer_vjob_drop(x, vj);
		vj = NULL;
		xfer_chunk_account(w, a, ACCT_IMPORTING, max_days, from_dir, target_id);
		goto out;
	}
	xfer_recheck_target(w, a, from_dir, &rc, &err);
	/* 404 export / 401 import: maybe maintenance (the export's side is not told apart here) */
	xfer_status_after_error(w, a, true, rc);
	if (rc && xfer_status_wait(w, a, ACCT_IMPORTING, ACCT_PENDING))
		goto out;
	if (rc == ZMB_OK && !empty)
		rc = xfer_set_transport(w, a, from_dir, target_id, &err);
	if (rc) {
		xfer_account_error(w, a, ACCT_IMPORTING, ACCT_PENDING, rc, "stream", err);
		goto out;
	}
	if (!empty) {
		/* verified and ended by a verifier thread, off this worker's path */
		struct xfer_vend e = { ACCT_IMPORTING, ACCT_PENDING, bytes, (long long)res.total, mark_ms,
				       false, t0, a->delta ? "delta pass done" : "migrated", &res, 0,
				       NULL, 0 };
		bool handed = xfer_verify_pass(w, a, vj, &e);
		vj = NULL;
		if (handed)
			goto out;
	}
	xfer_account_done(w, a, ACCT_IMPORTING, bytes, mono_now() - t0, mark_ms,
			  empty ? "nothing to migrate (export answered 204)" :
			  a->delta ? "delta pass done" : "migrated", &res, 0);
out:
	xfer_vjob_drop(x, vj);
	xfer_import_result_release(&res);
	free(target_id);
	free(err);
}
