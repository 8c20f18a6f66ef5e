/*
 * driver.c - what every driver shares (driver.h).
 */
#include "driver.h"

#include <stdlib.h>

void xfer_accounts_free(struct xfer_account *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free(v[i].id);
		free(v[i].status);
		free(v[i].mailhost);
	}
	free(v);
}

void xfer_import_result_release(struct xfer_import_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->warnings[i]);
	free(r->warnings);
	r->warnings = NULL;
	r->n = r->total = 0;
}

void xfer_sizes_free(struct xfer_size *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free(v[i].id);
	}
	free(v);
}

void xfer_folders_free(struct xfer_folder *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].path);
		free(v[i].view);
	}
	free(v);
}

int xfer_verifier_threads(const struct job *job)
{
	int n = job->mig.threads > 0 ? job->mig.threads : 1;
	int nv = (n + 3) / 4;
	if (!job->mig.verify)
		return 0;
	return nv < 2 ? 2 : nv > 4 ? 4 : nv;
}
