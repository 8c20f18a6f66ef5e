/*
 * target.c - the target account must exist (zmztozmig's rule: we never
 * create accounts): the directory read at the start of a run, the lookups
 * of a worker, and the mail transport set after an import (xfer_int.h).
 */
#include "log.h"
#include "query_migrate.h"
#include "xfer_int.h"

#include <stdlib.h>
#include <string.h>

/*
 * Below this many accounts of one target domain, each account's lookup
 * costs less than listing the whole domain.
 */
#define TDIR_MIN_ACCOUNTS 16

static int cmp_tgt(const void *a, const void *b)
{
	return strcmp(((const struct tgt_entry *)a)->name, ((const struct tgt_entry *)b)->name);
}

static const struct tgt_entry *tdir_find(const struct xfer *x, const char *name)
{
	if (!x->ntdir)
		return NULL;
	struct tgt_entry key = { .name = xstrlower(name), .id = NULL, .status = NULL };
	const struct tgt_entry *e = bsearch(&key, x->tdir, x->ntdir, sizeof *x->tdir, cmp_tgt);
	free(key.name);
	return e;
}

/* Ask the target (GetAccount, with the status into w->tstatus); a missing account gets advice. */
static enum zmb_rc lookup_target(struct xfer_worker *w, const struct account_row *a, char **target_id,
				 char **err)
{
	const struct xfer_driver *drv = w->dst->end->drv;
	enum zmb_rc rc;
	if (drv->account_info) {
		struct xfer_account_info ai;
		rc = drv->account_info(w->dst, a->target, &ai, err);
		if (rc == ZMB_OK) {
			*target_id = ai.id;
			if (ai.status) {
				free(w->tstatus);
				w->tstatus = ai.status;
			}
		}
	} else {
		rc = drv->lookup(w->dst, a->target, target_id, err);
	}
	if (rc == ZMB_ENOACCOUNT) {
		char *e = xasprintf("target account '%s' does not exist on %s:%d (create it first: "
				    "zmbatch, like zmztozmig, never creates accounts)%s%s",
				    a->target, w->x->job->target.host, w->x->job->target.port,
				    *err ? "; " : "", *err ? *err : "");
		free(*err);
		*err = e;
	}
	return rc;
}

enum zmb_rc xfer_check_target(struct xfer_worker *w, const struct account_row *a, char **target_id,
			      bool *from_dir, char **err)
{
	*from_dir = false;
	/* a retry, or an account waiting for maintenance to end, asks again */
	const struct tgt_entry *e = a->attempts == 0 && a->status_wait_since <= 0
		? tdir_find(w->x, a->target) : NULL;
	if (e) {
		*target_id = xstrdup(e->id);
		free(w->tstatus);
		w->tstatus = e->status ? xstrdup(e->status) : NULL;
		*from_dir = true;
		return ZMB_OK;
	}
	return lookup_target(w, a, target_id, err);
}

/*
 * 401/404 are the answers Zimbra gives for a missing account on import
 * (anti-harvest), and for one in maintenance; the account may have been
 * deleted since the directory read.  Either way its status is read again
 * into w->tstatus.
 */
void xfer_recheck_target(struct xfer_worker *w, const struct account_row *a, bool from_dir,
			 enum zmb_rc *rc, char **err)
{
	if (*rc != ZMB_ENOACCOUNT && *rc != ZMB_EAUTHEXP)
		return;
	if (!from_dir) {
		/* looked up just before: only the status may have changed */
		xfer_status_after_error(w, a, false, *rc);
		return;
	}
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
enum zmb_rc xfer_set_transport(struct xfer_worker *w, const struct account_row *a, bool from_dir,
			       const char *target_id, char **err)
{
	const struct xfer_driver *drv = w->dst->end->drv;
	const char *t = w->x->job->mig.mail_transport;
	if (w->x->no_transport || !t || !*t || !target_id)
		return ZMB_OK;
	enum zmb_rc rc = drv->set_attr(w->dst, target_id, "zimbraMailTransport", t, err);
	if (rc == ZMB_ENOACCOUNT && from_dir) {
		char *id = NULL, *e = NULL;
		if (lookup_target(w, a, &id, &e) == ZMB_OK && strcmp(id, target_id) != 0) {
			free(*err);
			*err = NULL;
			rc = drv->set_attr(w->dst, id, "zimbraMailTransport", t, err);
		}
		free(id);
		free(e);
	}
	return rc;
}

/*
 * One directory page per 500 accounts instead of one lookup per account.
 * Only domains with at least TDIR_MIN_ACCOUNTS accounts on their first
 * attempt are listed (the accounts that will use it).  Called before the
 * workers start; they only read the result.
 */
void xfer_tdir_build(struct xfer *x, struct xfer_conn *dst, struct state *st)
{
	const struct job *job = x->job;
	struct strlist doms = STRLIST_INIT;
	size_t cap = 0;

	if (state_mig_target_domains(st, TDIR_MIN_ACCOUNTS, &doms))
		return;
	for (size_t i = 0; i < doms.n && !runctl_must_abort(x->ctl); i++) {
		struct xfer_account *za = NULL;
		size_t nz = 0;
		char *e = NULL;
		if (dst->end->drv->discover(dst, doms.v[i], &za, &nz, &e) == ZMB_OK) {
			for (size_t k = 0; k < nz; k++) {
				if (!za[k].id || !za[k].name)
					continue;
				if (x->ntdir == cap) {
					cap = cap ? 2 * cap : 256;
					x->tdir = xrealloc(x->tdir, cap * sizeof *x->tdir);
				}
				x->tdir[x->ntdir].name = xstrlower(za[k].name);
				x->tdir[x->ntdir].id = xstrdup(za[k].id);
				x->tdir[x->ntdir].status = za[k].status ? xstrdup(za[k].status) : NULL;
				x->ntdir++;
			}
			log_debug(NULL, "target %s:%d: domain %s lists %zu account(s)", job->target.host,
				  job->target.port, doms.v[i], nz);
		} else {
			log_info(NULL, "target %s:%d: cannot list domain %s (%s); each account is "
				 "checked on its own", job->target.host, job->target.port, doms.v[i],
				 e ? e : "?");
		}
		xfer_accounts_free(za, nz);
		free(e);
	}
	strlist_release(&doms);
	if (x->ntdir)
		qsort(x->tdir, x->ntdir, sizeof *x->tdir, cmp_tgt);
}

void xfer_tdir_free(struct xfer *x)
{
	for (size_t i = 0; i < x->ntdir; i++) {
		free(x->tdir[i].name);
		free(x->tdir[i].id);
		free(x->tdir[i].status);
	}
	free(x->tdir);
	x->tdir = NULL;
	x->ntdir = 0;
}
