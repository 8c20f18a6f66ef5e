/*
 * provision_children.c - the signatures and identities of an account (LDAP
 * child entries, zprov.h) that the target account lacks, created there with
 * the source's ids so that zimbraPrefDefaultSignatureId and the like keep
 * pointing at them.  Contract in provision.h.
 *
 * Left to the account's own attributes (provision_attrs.c): the signature
 * kept on the account entry (zimbraSignatureId/zimbraSignatureName +
 * zimbraPrefMailSignature*; LdapSignature.getAccountSignature) and the
 * DEFAULT identity (the account itself, LdapProvisioning createIdentity
 * refuses the name: IDENTITY_EXISTS).
 */
#include "provision.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void prov_kids_release(struct prov_kids *k)
{
	zchildren_free(k->v, k->n);
	free(k->kinds);
	memset(k, 0, sizeof *k);
}

static bool has_child(const struct zchild *v, size_t n, const struct zchild *c)
{
	for (size_t i = 0; i < n; i++)
		if (streq_ci(v[i].id, c->id) || streq_ci(v[i].name, c->name))
			return true;
	return false;
}

/*
 * The attributes CreateIdentity takes: those of the identity class
 * (LdapProvisioning validateIdentityAttrs 7822-7829: anything else is
 * INVALID_REQUEST "unable to modify attr") minus the immutable ones, which
 * createIdentity's preModify refuses (7867-7869 checkImmutable;
 * AttributeInfo.java:303-305; zimbraCreateTimestamp immutable,
 * zimbra-attrs.xml:4186).  GetIdentities answers every attribute of the entry
 * (ToXML.encodeIdentity 235-241: objectClass, zimbraCreateTimestamp too);
 * objectClass is dropped by createIdentity itself (7850) but not sent either.
 * The list: the attributes with "identity" in optionalIn/requiredIn of
 * store/conf/attrs/zimbra-attrs.xml at zm-mailbox HEAD, the immutable one left out.
 */
static bool identity_attr(const char *n)
{
	static const char *const ok[] = {
		"zimbraPrefMailSignature", "zimbraPrefMailSignatureEnabled", "zimbraPrefSaveToSent",
		"zimbraPrefReplyToAddress", "zimbraPrefSentMailFolder",
		"zimbraPrefForwardReplyPrefixChar", "zimbraPrefReplyIncludeOriginalText",
		"zimbraPrefForwardIncludeOriginalText", "zimbraPrefMailSignatureStyle",
		"zimbraPrefFromDisplay", "zimbraPrefFromAddress", "zimbraPrefReplyToDisplay",
		"zimbraPrefReplyToEnabled", "zimbraPrefWhenSentToEnabled",
		"zimbraPrefWhenSentToAddresses", "zimbraPrefWhenInFoldersEnabled",
		"zimbraPrefWhenInFolderIds", "zimbraPrefUseDefaultIdentitySettings",
		"zimbraPrefBccAddress", "zimbraPrefIdentityName", "zimbraPrefForwardReplyFormat",
		"zimbraPrefIdentityId", "zimbraPrefDefaultSignatureId",
		"zimbraPrefReadReceiptsToAddress", "zimbraPrefForwardReplySignatureId",
		"zimbraPrefCalendarAutoAcceptSignatureId", "zimbraPrefCalendarAutoDeclineSignatureId",
		"zimbraPrefCalendarAutoDenySignatureId", "zimbraPrefCalendarAcceptSignatureId",
		"zimbraPrefCalendarTentativeSignatureId", "zimbraPrefCalendarDeclineSignatureId",
		"zimbraPrefFromAddressType", NULL
	};
	for (size_t i = 0; ok[i]; i++)
		if (!strcasecmp(ok[i], n))
			return true;
	return false;
}

static void copy_child(struct prov_kids *out, const char *kind, const struct job *job,
		       const struct zchild *c)
{
	bool identity = !strcmp(kind, "identity");
	out->v = xrealloc(out->v, (out->n + 1) * sizeof *out->v);
	out->kinds = xrealloc(out->kinds, (out->n + 1) * sizeof *out->kinds);
	struct zchild *d = &out->v[out->n];
	memset(d, 0, sizeof *d);
	d->id = xstrdup(c->id);
	d->name = xstrdup(c->name);
	for (size_t i = 0; i < c->a.n; i++) {
		if (identity && !identity_attr(c->a.v[i].n))
			continue;
		char *v = prov_map_value(job, c->a.v[i].n, c->a.v[i].v);
		zattrs_add(&d->a, c->a.v[i].n, v);
		free(v);
	}
	out->kinds[out->n++] = kind;
}

enum zmb_rc prov_kids_plan(const struct job *job, struct http *sh, struct token_cache *stc,
			   const char *source, struct http *th, struct token_cache *ttc,
			   const char *target, const char *account_sig_id, struct prov_kids *out,
			   char **err)
{
	static const char *const kinds[] = { "signature", "identity" };
	enum zmb_rc rc = ZMB_OK;
	for (size_t k = 0; k < 2 && rc == ZMB_OK; k++) {
		struct zchild *s = NULL, *t = NULL;
		size_t ns = 0, nt = 0;
		rc = zprov_get_children(sh, stc, source, kinds[k], &s, &ns, err);
		if (rc == ZMB_OK && target)
			rc = zprov_get_children(th, ttc, target, kinds[k], &t, &nt, err);
		for (size_t i = 0; rc == ZMB_OK && i < ns; i++) {
			bool sig = k == 0;
			if (sig && account_sig_id && streq_ci(s[i].id, account_sig_id))
				continue;   /* on the account entry: copied with its attributes */
			if (!sig && !strcasecmp(s[i].name, "DEFAULT"))
				continue;   /* the account itself */
			if (!has_child(t, nt, &s[i]))
				copy_child(out, kinds[k], job, &s[i]);
		}
		zchildren_free(s, ns);
		zchildren_free(t, nt);
	}
	return rc;
}

void prov_kids_describe(const struct prov_kids *k, struct buf *diff)
{
	for (size_t i = 0; i < k->n; i++)
		buf_addf(diff, "%s%s +'%s'", diff->len ? "; " : "", k->kinds[i], k->v[i].name);
}

enum zmb_rc prov_kids_apply(struct http *th, struct token_cache *ttc, const char *target,
			    const struct prov_kids *k, char **err)
{
	for (size_t i = 0; i < k->n; i++) {
		enum zmb_rc rc = zprov_create_child(th, ttc, target, k->kinds[i], &k->v[i], err);
		if (rc)
			return rc;
		crashpoint("provision: signature or identity created on the target");
	}
	return ZMB_OK;
}
