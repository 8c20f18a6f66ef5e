/*
 * provision_common.c - what provision.c and provision_lists.c both use
 * (provision_int.h); its own file so that neither uses the other both ways.
 */
#include "provision_int.h"

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
