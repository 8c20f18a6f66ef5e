/*
 * ldap_targets.c - ldap_stage_targets(): the targets of any LDAP stage, read
 * by that stage's own key parser (contract in ldap_targets.h).
 */
#include "ldap_common.h"

#include <string.h>

static const struct {
	const char *type;
	int (*read)(const struct stage_conf *sc, const char *file, struct ldap_targets *t,
		    char **err);
} readers[] = {
	{ "ldap-replcheck", ldap_replcheck_targets },
	{ "ldap-promote-mmr", ldap_promote_targets },
	{ "ldap-mmr-verify", ldap_verify_targets },
};

int ldap_stage_targets(const struct stage_conf *sc, const char *file,
		       struct ldap_targets *t, char **err)
{
	memset(t, 0, sizeof *t);
	for (size_t i = 0; i < sizeof readers / sizeof readers[0]; i++)
		if (sc->type && !strcmp(sc->type, readers[i].type))
			return readers[i].read(sc, file, t, err) ? -1 : 0;
	return 1;
}
