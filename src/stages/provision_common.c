/*
 * provision_common.c - what provision.c and provision_lists.c both use
 * (provision_int.h); its own file so that neither uses the other both ways.
 */
#include "provision_int.h"

void prov_note_failure(struct prov *p, const char *msg)
{
	p->n_failed++;
	if (p->failures.n < 3)
		strlist_add(&p->failures, msg);
	stage_out(p->ctx, "FAILED %s", msg);
}
