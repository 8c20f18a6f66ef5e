/*
 * cutover_io.c - what the cutover stage and its rollback send to the
 * servers (cutover.h): the current values of both accounts, and one change
 * that is sent only when the value differs.  Main thread only.
 */
#include "cutover.h"
#include "log.h"
#include "state_cutover.h"

#include <stdlib.h>
#include <string.h>

static const char *const SRC_ATTRS[] = { "zimbraAccountStatus", "zimbraMailTransport" };
static const char *const DST_ATTRS[] = { "zimbraAccountStatus", "zimbraMailTransport",
					 "zimbraMailHost" };

void cut_cur_release(struct cut_cur *c)
{
	free(c->sid);
	free(c->tid);
	for (int i = 0; i < 2; i++)
		free(c->s[i]);
	for (int i = 0; i < 3; i++)
		free(c->t[i]);
	memset(c, 0, sizeof *c);
}

/* The current values of both accounts (one GetAccountRequest on each side). */
enum zmb_rc cut_read(struct cut *c, const struct cutover_row *r, struct cut_cur *cur, char **err)
{
	memset(cur, 0, sizeof *cur);
	const struct xfer_driver *drv = c->src->end->drv;
	if (!drv->get_attrs) {
		*err = xasprintf("the %s driver cannot read account attributes", drv->name);
		return ZMB_EINTERNAL;
	}
	enum zmb_rc rc = drv->get_attrs(c->src, r->account, SRC_ATTRS, 2, &cur->sid, cur->s, err);
	if (rc == ZMB_OK)
		rc = c->dst->end->drv->get_attrs(c->dst, r->target, DST_ATTRS, 3, &cur->tid, cur->t,
						 err);
	if (rc)
		cut_cur_release(cur);
	return rc;
}

/*
 * attr of account id on conn -> want, unless it is already (cur).  A change
 * is a durable step of its own (crashpoint), counted in c->modifies.
 */
enum zmb_rc cut_set(struct cut *c, struct xfer_conn *conn, const char *id, const char *attr,
		    const char *cur, const char *want, char **err)
{
	if (cur && !strcmp(cur, want))
		return ZMB_OK;
	enum zmb_rc rc = conn->end->drv->set_attr(conn, id, attr, want, err);
	if (rc == ZMB_OK) {
		c->modifies++;
		log_info(c->ctx->sc->name, "%s %s: %s = '%s' (was '%s')", conn->end->srv->role, id,
			 attr, want, cur ? cur : "");
		crashpoint("cutover modify");
	}
	return rc;
}

