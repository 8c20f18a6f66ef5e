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
