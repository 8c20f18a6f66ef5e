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

/* The source account's id and values (one GetAccountRequest). */
enum zmb_rc cut_read_src(struct cut *c, const struct cutover_row *r, struct cut_cur *cur, char **err)
{
	const struct xfer_driver *drv = c->src->end->drv;
	if (!drv->get_attrs) {
		*err = xasprintf("the %s driver cannot read account attributes", drv->name);
		return ZMB_EINTERNAL;
	}
	return drv->get_attrs(c->src, r->account, SRC_ATTRS, 2, &cur->sid, cur->s, err);
}

/* The target account's id and values (one GetAccountRequest). */
enum zmb_rc cut_read_dst(struct cut *c, const struct cutover_row *r, struct cut_cur *cur, char **err)
{
	const struct xfer_driver *drv = c->dst->end->drv;
	if (!drv->get_attrs) {
		*err = xasprintf("the %s driver cannot read account attributes", drv->name);
		return ZMB_EINTERNAL;
	}
	return drv->get_attrs(c->dst, r->target, DST_ATTRS, 3, &cur->tid, cur->t, err);
}

/* The current values of both accounts (one GetAccountRequest on each side). */
enum zmb_rc cut_read(struct cut *c, const struct cutover_row *r, struct cut_cur *cur, char **err)
{
	memset(cur, 0, sizeof *cur);
	enum zmb_rc rc = cut_read_src(c, r, cur, err);
	if (rc == ZMB_OK)
		rc = cut_read_dst(c, r, cur, err);
	if (rc)
		cut_cur_release(cur);
	return rc;
}

/* The template with every %h replaced by host, %p by port and %% by %. */
char *cutover_transport(const char *tmpl, const char *host, int port)
{
	struct buf b = BUF_INIT;
	for (const char *p = tmpl; *p; p++) {
		if (p[0] == '%' && p[1] == 'h') {
			buf_adds(&b, host ? host : "");
			p++;
		} else if (p[0] == '%' && p[1] == 'p') {
			buf_addf(&b, "%d", port);
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			buf_adds(&b, "%");
			p++;
		} else {
			buf_addf(&b, "%c", *p);
		}
	}
	return buf_detach(&b);
}

/*
 * The LMTP port of mailbox server `host` as Zimbra itself computes an
 * account's transport: zm-mailbox callback/MailHost.java:104-108 and
 * ldap/LdapProvisioning.java:1682-1690 setMailHost take
 * server.getIntAttr(zimbraLmtpBindPort, Config.D_LMTP_BIND_PORT = 7025)
 * (util/Config.java:42; zimbra-attrs.xml id 24, serverInherited, global
 * value 7025).  One GetServerRequest per host and run (cached); a server
 * that does not answer or has no value: 7025.
 */
int cut_lmtp_port(struct cut *c, const char *host)
{
	for (size_t i = 0; i < c->nports; i++)
		if (!strcmp(c->ports[i].host, host))
			return c->ports[i].port;
	int port = 0;
	char *e = NULL;
	const struct xfer_driver *drv = c->dst->end->drv;
	if (!drv->lmtp_port || drv->lmtp_port(c->dst, host, &port, &e) != ZMB_OK || port <= 0) {
		if (e)
			log_warn(c->ctx->sc->name, "zimbraLmtpBindPort of %s: %s; taking 7025", host, e);
		port = 7025;
	}
	free(e);
	c->ports = xrealloc(c->ports, (c->nports + 1) * sizeof *c->ports);
	c->ports[c->nports].host = xstrdup(host);
	c->ports[c->nports++].port = port;
	return port;
}

/*
 * The transports the cutover sets for row r: as recorded at 'routed', else
 * (a row before it, or one that crashed between the change and its record)
 * from the templates, the recorded target host and its LMTP port.
 */
void cut_transports(struct cut *c, const struct cutover_row *r, char **sv, char **tv)
{
	const char *host = r->target_host ? r->target_host : "";
	int port = *host ? cut_lmtp_port(c, host) : 7025;
	*sv = r->source_transport && *r->source_transport
		      ? xstrdup(r->source_transport)
		      : cutover_transport(c->k.source_transport, host, port);
	*tv = r->target_transport && *r->target_transport
		      ? xstrdup(r->target_transport)
		      : cutover_transport(c->k.target_transport, host, port);
}

/*
 * attr of account id on conn -> want, unless it is already (cur).  A change
 * is a durable step of its own (crashpoint), counted in c->modifies.
 */
enum zmb_rc cut_set(struct cut *c, struct xfer_conn *conn, const char *name, const char *id,
		    const char *attr, const char *cur, const char *want, char **err)
{
	if (cur && !strcmp(cur, want))
		return ZMB_OK;
	enum zmb_rc rc = conn->end->drv->set_attr(conn, id, attr, want, err);
	if (rc == ZMB_OK) {
		c->modifies++;
		log_info(c->ctx->sc->name, "%s %s: %s = '%s' (was '%s')", conn->end->srv->role,
			 name ? name : id, attr, want, cur ? cur : "");
		crashpoint("cutover modify");
	}
	return rc;
}

