/*
 * zprov.h - the admin SOAP calls of the provision stage: accounts with all
 * their attributes, aliases, classes of service.
 *
 * Who may call: the thread owning h and tc (the provision stage runs in the
 * main thread).  Out-parameters are owned by the caller and untouched on
 * error; *err is set on every error (caller frees).  Result codes as in
 * soap.h, plus: fault account.ACCOUNT_EXISTS -> ZMB_ECONFLICT,
 * account.NO_SUCH_COS -> ZMB_ENOTFOUND (the fault code stays in *err).
 *
 * What the real server does (zm-mailbox, read at HEAD of Zimbra/zm-mailbox):
 * - GetAccountRequest applyCos=0 (service/admin/GetAccount.java:86) gives
 *   the account's own attributes, not the values inherited from its COS;
 *   a password hash is answered as "VALUE-BLOCKED" (Provisioning.java
 *   sanitizedAttrValue 464-481, used by ToXML.encodeAttrs 145).
 * - CreateAccountRequest keeps a zimbraId given in its attributes
 *   (ldap/SpecialAttrs.java handleZimbraId 50-78; LdapProvisioning
 *   createAccount 1327, 1455-1461) and stores a userPassword attribute as
 *   given ("password is a hash i.e. from autoprov", 1541-1547); zimbraCOSId
 *   must be an id (CreateAccount.java checkCos 110-121, NO_SUCH_COS);
 *   uid, zimbraMailAlias, zimbraMailDeliveryAddress are refused
 *   (sInvalidAccountCreateModifyAttrs, 245-249, 1379-1383); an existing
 *   name answers account.ACCOUNT_EXISTS (1576-1577).
 * - AddAccountAliasRequest of an alias the account already has answers
 *   account.ACCOUNT_EXISTS (LdapProvisioning addAlias 2520-2563): add only
 *   what is missing.
 */
#ifndef ZMB_ZPROV_H
#define ZMB_ZPROV_H

#include "soap.h"

/* Attributes as the admin SOAP carries them: one (name, value) per value. */
struct zattr {
	char *n;
	char *v;
};
struct zattrs {
	struct zattr *v;
	size_t n, alloc;
};
#define ZATTRS_INIT { NULL, 0, 0 }
void zattrs_add(struct zattrs *a, const char *n, const char *v);   /* copies both */
/* Frees everything; values are wiped first (a set may hold a password hash). */
void zattrs_release(struct zattrs *a);
/* Every value of n (case-insensitive) removed. */
void zattrs_del(struct zattrs *a, const char *n);
/* First value of n (case-insensitive), NULL if absent. */
const char *zattrs_get(const struct zattrs *a, const char *n);
/* Every value of n appended to out. */
void zattrs_values(const struct zattrs *a, const char *n, struct strlist *out);

/* GetAccountRequest by name, applyCos=0, every attribute: *id, *attrs (appended),
 * *canon (may be NULL) the account's own name: another one when `name` is one of its
 * aliases (getAccountByName finds aliases too).  Missing -> ZMB_ENOACCOUNT. */
enum zmb_rc zprov_get_account(struct http *h, struct token_cache *tc, const char *name,
			      char **id, char **canon, struct zattrs *attrs, char **err);
/* GetAccountRequest by=id (GetAccount.java: getAccountBy id): *name the account's own
 * name; missing -> ZMB_ENOACCOUNT.  Zimbra does not keep zimbraId unique
 * (ldap/SpecialAttrs.java:62-72 "GIGO"): the provision stage asks before it creates. */
enum zmb_rc zprov_get_account_by_id(struct http *h, struct token_cache *tc, const char *id,
				    char **name, char **err);
/* CreateAccountRequest name + attrs (no <password>: a userPassword attr is the hash). */
enum zmb_rc zprov_create_account(struct http *h, struct token_cache *tc, const char *name,
				 const struct zattrs *attrs, char **id, char **err);
/* ModifyAccountRequest id + attrs (a multi-valued attribute: all its values; "" deletes). */
enum zmb_rc zprov_modify_account(struct http *h, struct token_cache *tc, const char *id,
				 const struct zattrs *attrs, char **err);
/* FlushCacheRequest type=account, allServers=1, the account by id (service/admin/
 * FlushCache.java doFlushCache 85-96, CacheSelector): after its entry was changed
 * over LDAP, past the servers' account caches. */
enum zmb_rc zprov_flush_account(struct http *h, struct token_cache *tc, const char *id,
				char **err);
/* AddAccountAliasRequest. */
enum zmb_rc zprov_add_alias(struct http *h, struct token_cache *tc, const char *id,
			    const char *alias, char **err);
/* GetCosRequest by "name" or "id": *id and *name of the COS (either may be NULL);
 * with attrs, every attribute of it too (appended). */
enum zmb_rc zprov_get_cos(struct http *h, struct token_cache *tc, const char *by,
			  const char *key, char **id, char **name, struct zattrs *attrs, char **err);
/* CreateCosRequest: a copy of the target's "default" COS with attrs on top
 * (LdapProvisioning createCos 3164-3166, copyCos: new zimbraId); *id the new one.
 * account.COS_EXISTS -> ZMB_ECONFLICT. */
enum zmb_rc zprov_create_cos(struct http *h, struct token_cache *tc, const char *name,
			     const struct zattrs *attrs, char **id, char **err);

/*
 * Domains (GetDomain.java 56-75, CreateDomain.java 50-90, LdapProvisioning
 * createDomain 2725-2830: a new zimbraId always, account.DOMAIN_EXISTS).
 * get: by name, applyConfig=0 (the domain's own values); missing ->
 * ZMB_ENOTFOUND.  create: DOMAIN_EXISTS -> ZMB_ECONFLICT.
 */
enum zmb_rc zprov_get_domain(struct http *h, struct token_cache *tc, const char *name,
			     struct zattrs *attrs, char **err);
enum zmb_rc zprov_create_domain(struct http *h, struct token_cache *tc, const char *name,
				const struct zattrs *attrs, char **err);

/*
 * Signatures and identities: LDAP child entries of the account
 * (LdapProvisioning createSignature 8107-8190: zimbraSignatureName=NAME,<account DN>;
 * createIdentity 7847-7900 likewise), read and made with the user's own
 * requests, an admin acting as the account (soap_request_as):
 * GetSignaturesRequest / CreateSignatureRequest (service/account/
 * GetSignatures.java, CreateSignature.java: an id given is kept, 8135-8163),
 * GetIdentitiesRequest / CreateIdentityRequest (a zimbraPrefIdentityId given
 * is kept, 7883-7886; "DEFAULT" is the account itself, IDENTITY_EXISTS).
 * The account-entry signature and the DEFAULT identity come with the
 * account's attributes; these calls carry the others.
 */
struct zchild {
	char *id;
	char *name;
	struct zattrs a;   /* signature: (MIME type, text) per content; identity: its attributes */
};
void zchildren_free(struct zchild *v, size_t n);   /* NULL-safe */
/* kind "signature" or "identity": every one of the account's; *out *n entries. */
enum zmb_rc zprov_get_children(struct http *h, struct token_cache *tc, const char *account,
			       const char *kind, struct zchild **out, size_t *n, char **err);
/* Create one with its id (signature: content per type; identity: attrs incl. the id). */
enum zmb_rc zprov_create_child(struct http *h, struct token_cache *tc, const char *account,
			       const char *kind, const struct zchild *c, char **err);

/*
 * Static distribution lists (zm-mailbox HEAD):
 * - GetAllDistributionListsRequest <domain by=name> (service/admin/
 *   GetAllDistributionLists.java 52-127): every list of the domain, its
 *   attributes without the members (hideMembers: zimbraMailForwardingAddress,
 *   GetDistributionList.java 196-203), then its members as <dlm> (121-124);
 *   dynamic groups come too (dynamic = 1).
 * - GetDistributionListRequest <dl by=name> (GetDistributionList.java 78-137,
 *   limit 0: every member): by name matches zimbraMailAlias, so an alias finds
 *   its list (UBIDLdapFilterFactory.distributionListByName 1068-1073).
 *   Missing -> account.NO_SUCH_DISTRIBUTION_LIST -> ZMB_ENOTFOUND.
 * - CreateDistributionListRequest (CreateDistributionList.java 57-92,
 *   LdapProvisioning createDistributionList 4534-4630): the list ALWAYS gets a
 *   new zimbraId (generateUUID at 4574 overrides a given one); mail and
 *   zimbraMailAlias are its name; an address in use ->
 *   account.DISTRIBUTION_LIST_EXISTS -> ZMB_ECONFLICT; the domain missing ->
 *   account.NO_SUCH_DOMAIN -> ZMB_ENOTFOUND.
 * - AddDistributionListMemberRequest (AddDistributionListMember.java 50-84,
 *   LdapProvisioning addDistributionListMembers 7501-7580): members are
 *   addresses (need not exist), one already there is skipped, the list's own
 *   addresses are refused; new members get a share notification mail when the
 *   list has zimbraDistributionListSendShareMessageToNewMembers (default TRUE).
 * - AddDistributionListAliasRequest (-> addAliasInternal 2460-2570, as for
 *   accounts): an address in use -> account.ACCOUNT_EXISTS -> ZMB_ECONFLICT.
 */
struct zlist {
	char *id;
	char *name;
	bool dynamic;
	struct zattrs a;          /* its attributes (zimbraMailAlias: its name and aliases) */
	struct strlist members;   /* <dlm> */
	struct strlist owners;    /* <owners><owner name=..>: the users with ownDistList */
};
void zlist_release(struct zlist *l);   /* NULL-safe; the struct itself is the caller's */
void zlists_free(struct zlist *v, size_t n);
enum zmb_rc zprov_all_lists(struct http *h, struct token_cache *tc, const char *domain,
			    struct zlist **out, size_t *n, char **err);
enum zmb_rc zprov_get_list(struct http *h, struct token_cache *tc, const char *name,
			   struct zlist *out, char **err);
enum zmb_rc zprov_create_list(struct http *h, struct token_cache *tc, const char *name,
			      const struct zattrs *attrs, char **id, char **err);
enum zmb_rc zprov_modify_list(struct http *h, struct token_cache *tc, const char *id,
			      const struct zattrs *attrs, char **err);
/* One AddDistributionListMemberRequest with every address of members (n >= 1). */
enum zmb_rc zprov_add_list_members(struct http *h, struct token_cache *tc, const char *id,
				   const struct strlist *members, char **err);
enum zmb_rc zprov_add_list_alias(struct http *h, struct token_cache *tc, const char *id,
				 const char *alias, char **err);
/* GrantRightRequest: the right ownDistList on the list (by id) to the user owner (by
 * name), i.e. makes owner an owner of the list.  Granted already: ZMB_OK (the real
 * server leaves the ACL as it is, no fault; zprov.c).  The user missing on the target:
 * ZMB_ENOTFOUND (account.NO_SUCH_ACCOUNT). */
enum zmb_rc zprov_grant_list_owner(struct http *h, struct token_cache *tc, const char *id,
				   const char *owner, char **err);

/*
 * Calendar resources: accounts of their own kind (LdapProvisioning
 * createCalendarResource 6472-6491: zimbraAccountCalendarUserType RESOURCE,
 * then createAccount with the same SpecialAttrs, so a given zimbraId is kept
 * and an address in use is account.ACCOUNT_EXISTS -> ZMB_ECONFLICT).
 * GetAllCalendarResourcesRequest <domain by=name> (GetAllCalendarResources.java
 * 47-65; GetAllAccounts leaves them out: allAccountsOnly) gives the names and
 * ids (its attributes have the COS's values applied: read each one with get);
 * GetCalendarResourceRequest by name, applyCos=0; missing (or an ordinary
 * account) -> account.NO_SUCH_CALENDAR_RESOURCE -> ZMB_ENOTFOUND;
 * CreateCalendarResourceRequest name + attrs (no password);
 * ModifyCalendarResourceRequest id + attrs.  Aliases: AddAccountAliasRequest
 * (a resource is an account).
 */
struct zentry {
	char *id;
	char *name;
};
void zentries_free(struct zentry *v, size_t n);
enum zmb_rc zprov_all_resources(struct http *h, struct token_cache *tc, const char *domain,
				struct zentry **out, size_t *n, char **err);
enum zmb_rc zprov_get_resource(struct http *h, struct token_cache *tc, const char *name,
			       char **id, char **canon, struct zattrs *attrs, char **err);
enum zmb_rc zprov_create_resource(struct http *h, struct token_cache *tc, const char *name,
				  const struct zattrs *attrs, char **id, char **err);
enum zmb_rc zprov_modify_resource(struct http *h, struct token_cache *tc, const char *id,
				  const struct zattrs *attrs, char **err);

#endif
