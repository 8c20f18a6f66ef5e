/* migrate.c - placeholder until implemented (see issues). */
#include "stage.h"

int migrate_validate(const struct stage_conf *sc, const char *file, char **err)
{
	(void)sc; (void)file; (void)err;
	return 0;
}

enum zmb_rc migrate_run(struct stage_ctx *ctx, char **err)
{
	(void)ctx;
	*err = xstrdup("stage type not implemented yet");
	return ZMB_EINTERNAL;
}

