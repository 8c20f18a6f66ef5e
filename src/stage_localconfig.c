/* stage_localconfig.c - placeholder until implemented (see issues). */
#include "stage.h"

int localconfig_validate(const struct stage_conf *sc, const char *file, char **err)
{
	(void)sc; (void)file; (void)err;
	return 0;
}

enum zmb_rc localconfig_run(struct stage_ctx *ctx, char **err)
{
	(void)ctx;
	*err = xstrdup("stage type not implemented yet");
	return ZMB_EINTERNAL;
}

