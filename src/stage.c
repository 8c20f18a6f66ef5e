/*
 * stage.c - registry of stage types.
 */
#include "stage.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct stage_type types[] = {
	{ "migrate", migrate_validate, migrate_run },
	{ "ldap-replcheck", ldap_replcheck_validate, ldap_replcheck_run },
	{ "ldap-promote-mmr", ldap_promote_validate, ldap_promote_run },
	{ "ldap-mmr-verify", ldap_verify_validate, ldap_verify_run },
	{ "localconfig", localconfig_validate, localconfig_run },
	{ "exec", exec_validate, exec_run },
};

const struct stage_type *stage_type_find(const char *name)
{
	for (size_t i = 0; name && i < sizeof types / sizeof *types; i++)
		if (!strcmp(types[i].name, name))
			return &types[i];
	return NULL;
}

const char *stage_type_names(void)
{
	return "migrate, ldap-replcheck, ldap-promote-mmr, ldap-mmr-verify, localconfig, exec";
}

void stage_out(struct stage_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *line = xvasprintf(fmt, ap);
	va_end(ap);
	if (!ctx->quiet) {
		fputs(line, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	}
	buf_adds(&ctx->out, line);
	buf_adds(&ctx->out, "\n");
	free(line);
}
