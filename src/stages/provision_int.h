/*
 * provision_int.h - what provision.c and provision_lists.c share: the stage's
 * settings and its run (main thread only, as the stage).
 */
#ifndef ZMB_PROVISION_INT_H
#define ZMB_PROVISION_INT_H

#include "provision.h"

enum existing { EX_UPDATE, EX_SKIP, EX_FAIL };
/* keep_zimbra_id: send the source's zimbraId in CreateAccount ("try": without it when
 * the target refuses it, "required": the account fails then), or never send it */
enum keep_id { KZ_TRY, KZ_REQUIRED, KZ_NEVER };

struct prov_conf {
	enum existing existing;
	struct strlist cos_from, cos_to;   /* cos_map, source name -> target name */
	bool copy_password;
	int line_copy_password;
	bool create_domains;       /* create the accounts' domains missing on the target */
	bool create_cos;           /* create a COS missing on the target from the source's */
	enum keep_id keep_id;
	bool lists;                /* the static distribution lists of the accounts' domains */
	bool resources;            /* the calendar resources of the accounts' domains */
};

struct prov {
	struct stage_ctx *ctx;
	const struct job *job;
	struct prov_conf k;
	struct state *st;              /* NULL in a dry run: nothing is written */
	struct http *sh, *th;
	struct token_cache *stc, *ttc;
	struct ldc *lc;                /* source LDAP, NULL without copy_password */
	struct ldc *tlc;               /* target LDAP (target.ldap with copy_password): the
					* hash is set there, not given to CreateAccount */
	struct strlist scos_id, scos_name;   /* source COS id -> name (cache) */
	struct strlist tcos_name, tcos_id;   /* target COS name -> id (cache; "" = missing) */
	long long n_created, n_updated, n_unchanged, n_skipped, n_failed;
	struct strlist failures;       /* first few failures, for the stage's error */
	struct strlist domains_seen;   /* source domains prov_domain() ran for (create_domains) */
	bool warned_id_refused;        /* the target refuses a given zimbraId: warned once */
};

/* One object failed: counted, the first few kept, "FAILED msg" printed. */
void prov_note_failure(struct prov *p, const char *msg);
/*
 * provision_lists.c: the static distribution lists of the source domains
 * `domains` (GetAllDistributionLists), after the accounts.  Fatal errors only
 * (as prov_account); a list's own failure is recorded and counted.
 */
enum zmb_rc prov_lists(struct prov *p, const struct strlist *domains);
/*
 * provision_resources.c: the calendar resources of the source domains
 * `domains` (GetAllCalendarResources), after the accounts, before the lists
 * (a list may hold a resource).  Fatal errors only, as prov_lists.
 */
enum zmb_rc prov_resources(struct prov *p, const struct strlist *domains);
/* Is this calendar resource attribute given to CreateCalendarResource? */
bool prov_resource_attr_copied(const char *name);
/* The target's refusal of a zimbraId given at creation (Carbonio 4.0.7-4.12.0). */
bool prov_id_refused(const char *err);
/*
 * Before creating `kind` ("account", "resource") name -> target with the
 * source's zimbraId sid: is sid already another target entry's id?  Zimbra
 * does not keep ids unique (zm-mailbox ldap/SpecialAttrs.java:62-72, "GIGO"),
 * a create would make a second entry with it.  ZMB_OK: free; ZMB_ECONFLICT:
 * taken, *err says by whom (the object fails); another code: the server
 * could not be asked (*err).
 */
/*
 * Add each alias to the target's `kind` ("account", "resource": AddAccountAlias;
 * "list": AddDistributionListAlias) with id `id`, a crashpoint after each.
 * account.NO_SUCH_DOMAIN (the alias's domain is not on the target:
 * LdapProvisioning addAlias) -> ZMB_ENOTFOUND with *err naming alias, domain
 * and server.
 */
enum zmb_rc prov_add_aliases(struct prov *p, const char *kind, const char *name, const char *id,
			     const struct strlist *aliases, char **err);
enum zmb_rc prov_id_taken(struct prov *p, const char *kind, const char *name, const char *sid,
			  const char *target, char **err);
/* Is this list attribute given to CreateDistributionList?  The list: provision_lists.c. */
bool prov_list_attr_copied(const char *name);

#endif
