/* ldap_mmr.c - placeholder until implemented (see issues). */
#include "stage.h"

int ldap_replcheck_validate(const struct stage_conf *sc, const char *file, char **err)
{
	(void)sc; (void)file; (void)err;
	return 0;
}

enum zmb_rc ldap_replcheck_run(struct stage_ctx *ctx, char **err)
{
	(void)ctx;
	*err = xstrdup("stage type not implemented yet");
	return ZMB_EINTERNAL;
}

int ldap_promote_validate(const struct stage_conf *sc, const char *file, char **err)
{
	(void)sc; (void)file; (void)err;
	return 0;
}

enum zmb_rc ldap_promote_run(struct stage_ctx *ctx, char **err)
{
	(void)ctx;
	*err = xstrdup("stage type not implemented yet");
	return ZMB_EINTERNAL;
}

int ldap_verify_validate(const struct stage_conf *sc, const char *file, char **err)
{
	(void)sc; (void)file; (void)err;
	return 0;
}

enum zmb_rc ldap_verify_run(struct stage_ctx *ctx, char **err)
{
	(void)ctx;
	*err = xstrdup("stage type not implemented yet");
	return ZMB_EINTERNAL;
}

