/*
 * status.c - an account's zimbraAccountStatus on both sides, judged before
 * and after a transfer (xfer_int.h).
 *
 * Real servers (zm-mailbox service/UserServlet.java checkTargetAccountStatus,
 * 502-516; carbonio-mailbox 388-404): 'maintenance' is refused to everyone
 * (account.MAINTENANCE_MODE), answered on REST with the admin cookie as 404
 * on an export and 401 on an import (sendError 345-366) - the same answers
 * as for a missing account.  locked, closed, pending and lockout let an
 * admin token through.  So maintenance is a wait, not a failure and not an
 * attempt (a move or restore is in progress), bounded by
 * migration.maintenance_wait; the other statuses only go into the report.
 */
#include "log.h"
#include "xfer_int.h"

#include <stdlib.h>
#include <string.h>

static bool is_maintenance(const char *s)
{
	return s && strcmp(s, "maintenance") == 0;
}

bool xfer_status_wait(struct xfer_worker *w, const struct account_row *a, enum acct_state from,
		      enum acct_state back)
{
	struct xfer *x = w->x;
	const struct job *job = x->job;
	const char *side = is_maintenance(w->tstatus) ? "target" : is_maintenance(w->sstatus) ? "source"
			 : NULL;
	if (!side)
		return false;
	const char *name = side[0] == 't' ? a->target : a->account;
	double now = wall_now();
	double since = a->status_wait_since > 0 ? a->status_wait_since : now;
	struct acct_update u = ACCT_UPDATE_INIT;
	u.source_status = w->sstatus;
	u.target_status = w->tstatus;
	char *ev = NULL, *text = NULL;
	if (job->mig.maintenance_wait > 0 && now - since >= (double)job->mig.maintenance_wait) {
		text = xasprintf("the %s account %s is in maintenance (zimbraAccountStatus=maintenance: a "
				 "move or restore in progress, the server refuses every transfer) for "
				 "%.0f s, longer than migration.maintenance_wait (%lld s)", side, name,
				 now - since, job->mig.maintenance_wait);
		ev = xasprintf("failed: %s", text);
		u.error = text;
		u.error_class = "maintenance";
		u.event = ev;
		u.wait_since = -1;
		xfer_account_failed(w, a, from, back, &u);
	} else {
		double base = (double)(job->mig.retry_backoff > 0 ? job->mig.retry_backoff : 30);
		double wait = base / 2 + (double)(rand64() % 1000) / 1000.0 * base / 2;
		ev = xasprintf("the %s account %s is in maintenance (zimbraAccountStatus=maintenance): "
			       "waiting, no attempt used; checked again in %.0f s (waiting for %.0f s of "
			       "migration.maintenance_wait %lld s)", side, name, wait, now - since,
			       job->mig.maintenance_wait);
		u.next_try_at = now + wait;
		u.wait_since = since;
		u.event = ev;
		log_info(w->ctx, "%s", ev);
		if (state_transition(w->st, x->run_id, a->id, from, back, &u))
			log_error(w->ctx, "cannot record state: %s", state_errmsg(w->st));
	}
	free(ev);
	free(text);
	return true;
}

/* A status read now replaces the one the worker had (NULL: not read, keep). */
static void set_status(char **slot, char *fresh)
{
	if (!fresh)
		return;
	free(*slot);
	*slot = fresh;
}

void xfer_status_source(struct xfer_worker *w, const struct account_row *a, bool ask)
{
	free(w->sstatus);
	w->sstatus = a->source_status ? xstrdup(a->source_status) : NULL;
	if (!ask || !w->src->end->drv->account_info)
		return;
	struct xfer_account_info ai;
	char *e = NULL;
	if (w->src->end->drv->account_info(w->src, a->account, &ai, &e) == ZMB_OK) {
		set_status(&w->sstatus, ai.status);
		ai.status = NULL;
	}
	free(ai.id);
	free(ai.status);
	free(e);
}

void xfer_status_after_error(struct xfer_worker *w, const struct account_row *a, bool source,
			     enum zmb_rc rc)
{
	if (rc != ZMB_ENOACCOUNT && rc != ZMB_EAUTHEXP)
		return;
	struct xfer_conn *c = source ? w->src : w->dst;
	if (!c->end->drv->account_info)
		return;
	struct xfer_account_info ai;
	char *e = NULL;
	if (c->end->drv->account_info(c, source ? a->account : a->target, &ai, &e) == ZMB_OK) {
		set_status(source ? &w->sstatus : &w->tstatus, ai.status);
		ai.status = NULL;
	}
	free(ai.id);
	free(ai.status);
	free(e);
}

void xfer_status_carbonio_note(struct xfer_worker *w, const struct account_row *a)
{
	struct xfer *x = w->x;
	const char *types = x->job->mig.types;
	if (!x->target_carbonio || a->delta)
		return;
	bool tasks = !types || !*types || strstr(types, "task");
	bool docs = !types || !*types || strstr(types, "document");
	if (!tasks && !docs)
		return;
	/* only when the account has such items: one search for each kind, at most one hit */
	const struct xfer_driver *d = w->src->end->drv;
	char *e = NULL, *found = NULL;
	if (d->item_ids) {
		struct strlist t = STRLIST_INIT, dc = STRLIST_INIT;
		bool more = false;
		enum zmb_rc rc = tasks ? d->item_ids(w->src, a->account, "task", 0, 1, &t, &more, &e)
				       : ZMB_OK;
		if (!rc && docs)
			rc = d->item_ids(w->src, a->account, "document", 0, 1, &dc, &more, &e);
		if (rc == ZMB_OK) {
			if (!t.n && !dc.n) {
				strlist_release(&t);
				strlist_release(&dc);
				return;
			}
			found = xasprintf("%s%s%s", t.n ? "tasks" : "", t.n && dc.n ? " and " : "",
					  dc.n ? "Briefcase documents" : "");
		}
		strlist_release(&t);
		strlist_release(&dc);
	}
	char *ev = found
		? xasprintf("the target is Carbonio%s%s: this account has %s, and Carbonio's import cannot "
			    "make them (carbonio-mailbox MailItem.constructItem has no such case; "
			    "ArchiveFormatter.addItem reports each as formatter.UNKNOWN_ERROR): they will "
			    "not be migrated", x->target_version ? " " : "",
			    x->target_version ? x->target_version : "", found)
		: xasprintf("the target is Carbonio%s%s: its import has no branch for tasks and "
			    "Briefcase documents (carbonio-mailbox ArchiveFormatter.addItem) and drops "
			    "such items of this account without a warning%s%s%s",
			    x->target_version ? " " : "", x->target_version ? x->target_version : "",
			    e ? " (could not check whether it has any: " : "", e ? e : "", e ? ")" : "");
	log_warn(w->ctx, "%s", ev);
	state_event(w->st, x->run_id, a->id, NULL, "warn", ev);
	free(ev);
	free(found);
	free(e);
}
