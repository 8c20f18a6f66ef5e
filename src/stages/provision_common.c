/*
 * provision_common.c - what provision.c and provision_lists.c both use
 * (provision_int.h); its own file so that neither uses the other both ways.
 */
#include "provision_int.h"

#include <stdlib.h>
#include <string.h>

void prov_note_failure(struct prov *p, const char *msg)
{
	p->n_failed++;
	if (p->failures.n < 3)
		strlist_add(&p->failures, msg);
	stage_out(p->ctx, "FAILED %s", msg);
}

/* The target refuses a zimbraId given in CreateAccount: carbonio-mailbox 4.0.7-4.12.0
 * (commit 60dcbc7fe4, undone by 2f5e8c5906 in 4.14.0) store/src/main/java/com/zimbra/cs/
 * service/admin/CreateAccount.java:58-62 (INVALID_REQUEST) and LdapProvisioning
 * createAccount (FAILURE, the same text). */
bool prov_id_refused(const char *err)
{
	return err && strstr(err, "passing account zimbraId in attributes is not allowed");
}

enum zmb_rc prov_add_aliases(struct prov *p, const char *kind, const char *name, const char *id,
			     const struct strlist *aliases, char **err)
{
	bool list = !strcmp(kind, "list"), account = !strcmp(kind, "account");
	for (size_t i = 0; i < aliases->n; i++) {
		enum zmb_rc rc = list ? zprov_add_list_alias(p->th, p->ttc, id, aliases->v[i], err)
				      : zprov_add_alias(p->th, p->ttc, id, aliases->v[i], err);
		if (rc == ZMB_ENOTFOUND) {
			const char *at = strrchr(aliases->v[i], '@');
			char *e = xasprintf("%s '%s': alias %s: its domain %s does not exist on the "
					    "target %s:%d (account.NO_SUCH_DOMAIN)%s", kind, name,
					    aliases->v[i], at ? at + 1 : "?", p->job->target.host,
					    p->job->target.port,
					    account ? ": create it there or set create_domains = true" : "");
			free(*err);
			*err = e;
		}
		if (rc)
			return rc;
		crashpoint(list ? "provision: list alias added on the target"
			   : account ? "provision: alias added on the target"
				     : "provision: resource alias added on the target");
	}
	return ZMB_OK;
}

enum zmb_rc prov_id_taken(struct prov *p, const char *kind, const char *name, const char *sid,
			  const char *target, char **err)
{
	char *other = NULL;
	enum zmb_rc rc = zprov_get_account_by_id(p->th, p->ttc, sid, &other, err);
	if (rc == ZMB_OK) {
		*err = xasprintf("%s '%s': zimbraId %s is already the target's %s %s: creating %s "
				 "with it would give two entries one id (Zimbra does not check); "
				 "rename or remove %s on the target, or keep_zimbra_id = \"never\"",
				 kind, name, sid, kind, other, target, other);
		free(other);
		return ZMB_ECONFLICT;
	}
	if (rc == ZMB_ENOACCOUNT) {
		free(*err);
		*err = NULL;
		return ZMB_OK;
	}
	return rc;
}
