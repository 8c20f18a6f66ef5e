/*
 * provision.h - the provision stage's parts (provision.c runs it,
 * provision_attrs.c decides what is copied).
 *
 * Everything here runs in the stage's thread (the main thread).  Strings
 * returned are owned by the caller unless said otherwise.
 */
#ifndef ZMB_PROVISION_H
#define ZMB_PROVISION_H

#include "stage.h"
#include "zprov.h"

/*
 * The attribute policy (README "Provisioning", the allow/deny table):
 * PA_COPY    copied as it is (domain_map applied to address attributes)
 * PA_CREATE  given at creation only, never compared afterwards (zimbraId,
 *            userPassword from the source's LDAP)
 * PA_COS     zimbraCOSId: mapped by the COS's name (cos_map), by provision.c
 * PA_ALIAS   zimbraMailAlias: AddAccountAlias per missing alias
 * PA_DENY    never copied: server-specific, set by the server, ids of other
 *            objects, secrets, anything not on the allow list
 */
enum prov_attr { PA_DENY, PA_COPY, PA_CREATE, PA_COS, PA_ALIAS };
enum prov_attr prov_attr_class(const char *name);

/*
 * The attributes to give the target, from the source's (applyCos=0) ones:
 * PA_COPY values (VALUE-BLOCKED never), addresses mapped with domain_map.
 * *aliases gets the source's zimbraMailAlias values, mapped.
 */
void prov_desired(const struct job *job, const struct zattrs *src, struct zattrs *out,
		  struct strlist *aliases);
/*
 * What to change on an existing target account to match want: every
 * attribute of want whose set of values differs from have's, except
 * zimbraAccountStatus (given at creation only: the cutover owns it); values
 * of boolean/enum/email/id attributes compared without case (ci_attrs).  A
 * copied attribute only the target has is removed ("" value), except what the
 * server sets itself (cn, sn: LdapProvisioning.createAccount 1525-1535; the
 * account-entry signature and the default signature id: keep_on_target).
 * *mods gets them; *diff "attr: 'old' -> 'new'" per attribute, "; "
 * between them (values of the allow list only: never a secret).
 */
void prov_diff(const struct zattrs *want, const struct zattrs *have, struct zattrs *mods,
	       struct buf *diff);

/* Is this COS attribute given to CreateCos (create_cos)?  The deny list: provision_attrs.c. */
bool prov_cos_attr_copied(const char *name);
/* Is this domain attribute given to CreateDomain (create_domains)?  The list: provision_attrs.c. */
bool prov_domain_attr_copied(const char *name);
/* A value as the target gets it: domain_map over address attributes, else a copy. */
char *prov_map_value(const struct job *job, const char *name, const char *value);

/*
 * provision_children.c: signatures and identities (child entries) of the
 * source account that the target account lacks (same id or name), their
 * address attributes mapped.  target NULL: the account is not there yet
 * (every one counts, a dry run's plan).  account_sig_id: the source's
 * zimbraSignatureId (that signature comes with the account's attributes).
 * apply creates them in order, a crashpoint() after each; a rerun finds
 * them by id and creates none.
 */
struct prov_kids {
	struct zchild *v;
	const char **kinds;   /* "signature" / "identity" per entry (static strings) */
	size_t n;
};
void prov_kids_release(struct prov_kids *k);
enum zmb_rc prov_kids_plan(const struct job *job, struct http *sh, struct token_cache *stc,
			   const char *source, struct http *th, struct token_cache *ttc,
			   const char *target, const char *account_sig_id, struct prov_kids *out,
			   char **err);
/* "; signature +'name'" per entry appended to diff */
void prov_kids_describe(const struct prov_kids *k, struct buf *diff);
enum zmb_rc prov_kids_apply(struct http *th, struct token_cache *ttc, const char *target,
			    const struct prov_kids *k, char **err);

#endif
