/*
 * stage.c - the registry of stage types, the top of the stages layer: it
 * names every type (the types themselves use only stage_out.c below it), and
 * hands itself to the job readers as their stage catalogue (conf_load,
 * conf_finish), so that src/conf/ does not depend on the stages.
 */
#include "stage.h"

#include <stdlib.h>
#include <string.h>

static const struct stage_type types[] = {
	{ "migrate", migrate_validate, migrate_run, STAGE_WORKS_QUEUE | STAGE_DB_TEMPFAIL },
	{ "ldap-replcheck", ldap_replcheck_validate, ldap_replcheck_run, 0 },
	{ "ldap-promote-mmr", ldap_promote_validate, ldap_promote_run, 0 },
	{ "ldap-mmr-verify", ldap_verify_validate, ldap_verify_run, 0 },
	{ "localconfig", localconfig_validate, localconfig_run, 0 },
	{ "exec", exec_validate, exec_run, 0 },
	{ "provision", provision_validate, provision_run, 0 },
	{ "cutover", cutover_validate, cutover_run, STAGE_DB_TEMPFAIL },
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
	return "migrate, ldap-replcheck, ldap-promote-mmr, ldap-mmr-verify, localconfig, exec, provision, cutover";
}

static bool catalog_known(const char *type)
{
	return stage_type_find(type) != NULL;
}

static int catalog_validate(const struct stage_conf *sc, const char *job_path, char **err)
{
	const struct stage_type *t = stage_type_find(sc->type);
	return t && t->validate ? t->validate(sc, job_path, err) : 0;
}

static const struct stage_catalog catalog = { catalog_known, stage_type_names, catalog_validate };

enum zmb_rc conf_load(const char *path, bool resolve_secrets, struct job *job, char **err)
{
	return conf_read(path, resolve_secrets, &catalog, job, err);
}

enum zmb_rc conf_finish(struct job *job, bool resolve_secrets, char **err)
{
	return conf_finish_with(job, resolve_secrets, &catalog, err);
}
