/*
 * provision_attrs.c - which account attributes the provision stage copies
 * (contract in provision.h; the table in the README is this file).
 *
 * Sources (zm-mailbox HEAD, store/conf/attrs/zimbra-attrs.xml unless said):
 * - server-specific, never copied: zimbraMailHost (377: the home mailbox
 *   server), zimbraMailTransport (1436: lmtp:host:port of that server),
 *   zimbraMailboxLocatorId; set by the server at creation:
 *   zimbraCreateTimestamp (4186, immutable; LdapProvisioning.java 1462),
 *   zimbraPasswordModifiedTime (501; 1548), zimbraMailDeliveryAddress, mail,
 *   uid (refused by CreateAccount: sInvalidAccountCreateModifyAttrs
 *   245-249), objectClass; zimbraLastLogonTimestamp (786, ephemeral).
 * - secrets: SOAP answers VALUE-BLOCKED for them (Provisioning.java
 *   sanitizedAttrValue 464-481): userPassword comes from LDAP instead,
 *   the others (data source passwords, two-factor secrets, app passwords)
 *   are never copied.
 * - ids of other objects: zimbraCOSId is mapped by the COS's name;
 *   zimbraPrefDefaultCalendarId is a folder id of the mailbox, which an
 *   import does not keep (a guess from REST import creating new items:
 *   not copied).
 * - copied: what the user sees and sets (zimbraPref*: 1868 and the rest),
 *   names and contact fields (displayName 215 ...), status (356), quota
 *   (416), forwarding (399, 1868), filters (zimbraMailSieveScript 468,
 *   zimbraMailOutgoingSieveScript 5276), the account-entry signature
 *   (zimbraSignatureId 2585 / zimbraSignatureName: the first signature lives
 *   on the account entry itself, LdapSignature.getAccountSignature; further
 *   signatures and identities are child entries, not copied).
 */
#include "provision.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const copy_exact[] = {
	"displayName", "cn", "sn", "givenName", "initials", "description", "zimbraNotes",
	"telephoneNumber", "homePhone", "mobile", "pager", "facsimileTelephoneNumber",
	"title", "company", "ou", "street", "l", "st", "postalCode", "co",
	"physicalDeliveryOfficeName", "zimbraAccountStatus", "zimbraMailQuota",
	"zimbraMailForwardingAddress", "zimbraFeatureMailForwardingEnabled",
	"zimbraMailSieveScript", "zimbraMailOutgoingSieveScript",
	"zimbraSignatureId", "zimbraSignatureName", "zimbraHideInGal", NULL
};

/* zimbraPref* that are not copied: ids of mailbox items an import renumbers */
static const char *const pref_deny[] = { "zimbraPrefDefaultCalendarId", NULL };

/* address-valued attributes: domain_map applies (comma-separated lists too) */
static const char *const address_attrs[] = {
	"zimbraMailForwardingAddress", "zimbraPrefMailForwardingAddress", "zimbraPrefFromAddress",
	"zimbraPrefReplyToAddress", "zimbraPrefAllowAddressForDelegatedSender",
	"zimbraPrefCalendarForwardInvitesTo", "zimbraCalResContactEmail", NULL
};

/*
 * Domain attributes given to CreateDomain (create_domains = true): what a new
 * server can use as it is.  Not copied: zimbraId (the server makes a new one,
 * LdapProvisioning.createDomain 2810-2811), zimbraDomainName, zimbraDomainType
 * (immutable, local), zimbraCreateTimestamp, host names of the old servers
 * (zimbraVirtualHostname 1909, zimbraPublicServiceHostname 2023, ...), external
 * LDAP/GAL and authentication settings naming other hosts (zimbraAuthMech 513,
 * zimbraAuthLdap*, zimbraGal*), certificates and DKIM; zimbraDomainDefaultCOSId
 * is mapped by the COS's name (provision.c).
 */
static const char *const domain_copy[] = {
	"description", "zimbraNotes", "zimbraDomainStatus", "zimbraGalMaxResults", NULL
};

/*
 * A COS is a bag of policy (features, limits, preference defaults): created
 * (create_cos = true) with every attribute of the source's except its
 * identity and what names servers of the old installation: zimbraId and
 * cn (copyCos sets its own, LdapProvisioning 3189-3192, 3233-3236),
 * zimbraCreateTimestamp, zimbraMailHostPool (ids of the old mailbox servers),
 * and secrets (VALUE-BLOCKED).
 */
static const char *const cos_deny[] = {
	"zimbraId", "cn", "objectClass", "zimbraCreateTimestamp", "zimbraMailHostPool", NULL
};

static bool in(const char *const *list, const char *n);

bool prov_cos_attr_copied(const char *n)
{
	return !in(cos_deny, n);
}

bool prov_domain_attr_copied(const char *n)
{
	return in(domain_copy, n) || !strncasecmp(n, "zimbraPref", 10) ||
	       !strncasecmp(n, "zimbraSkin", 10);
}

static bool in(const char *const *list, const char *n)
{
	for (size_t i = 0; list[i]; i++)
		if (!strcasecmp(list[i], n))
			return true;
	return false;
}

enum prov_attr prov_attr_class(const char *n)
{
	if (!strcasecmp(n, "zimbraId") || !strcasecmp(n, "userPassword"))
		return PA_CREATE;
	if (!strcasecmp(n, "zimbraCOSId"))
		return PA_COS;
	if (!strcasecmp(n, "zimbraMailAlias"))
		return PA_ALIAS;
	if (in(copy_exact, n))
		return PA_COPY;
	if (!strncasecmp(n, "zimbraPref", 10) && !in(pref_deny, n))
		return PA_COPY;
	return PA_DENY;
}

/* domain_map over one address or a comma-separated list of them */
static char *map_addresses(const struct job *job, const char *v)
{
	struct buf b = BUF_INIT;
	const char *p = v;
	for (;;) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		char *one = xstrndup(p, len);
		char *t = strtrim(one);
		char *m = job_map_account(job, t);
		buf_addf(&b, "%s%s", b.len ? "," : "", m);
		free(m);
		free(one);
		if (!c)
			break;
		p = c + 1;
	}
	return buf_detach(&b);
}

char *prov_map_value(const struct job *job, const char *name, const char *value)
{
	return in(address_attrs, name) ? map_addresses(job, value) : xstrdup(value);
}

void prov_desired(const struct job *job, const struct zattrs *src, struct zattrs *out,
		  struct strlist *aliases)
{
	for (size_t i = 0; i < src->n; i++) {
		const char *n = src->v[i].n, *v = src->v[i].v;
		if (!strcmp(v, "VALUE-BLOCKED"))
			continue;
		enum prov_attr c = prov_attr_class(n);
		if (c == PA_ALIAS && aliases) {
			strlist_add_nodup(aliases, job_map_account(job, v));
		} else if (c == PA_COPY && in(address_attrs, n)) {
			char *m = map_addresses(job, v);
			zattrs_add(out, n, m);
			free(m);
		} else if (c == PA_COPY) {
			zattrs_add(out, n, v);
		}
	}
}

/*
 * Copied attributes whose values Zimbra compares without case: those of type boolean,
 * enum, email, emailp, cs_emailp, id (zm-mailbox AttributeManagerUtil.java:425-453:
 * caseIgnoreMatch / caseIgnoreIA5Match, and the server parses them so), among the
 * zimbraPref* and copy_exact attributes of class account or mailRecipient in store/conf/attrs/
 * zimbra-attrs.xml at HEAD.  The others (string: display names, signatures, sieve
 * scripts, whose case the user sees or the server acts on) are compared exactly.
 */
static const char *const ci_attrs[] = {
	"zimbraFeatureMailForwardingEnabled", "zimbraHideInGal", "zimbraMailForwardingAddress",
	"zimbraPrefAcceptedClientTOS", "zimbraPrefAccountTreeOpen",
	"zimbraPrefAdminConsoleWarnOnExit", "zimbraPrefAdvancedClientEnforceMinDisplay",
	"zimbraPrefAllowAddressForDelegatedSender", "zimbraPrefAppleIcalDelegationEnabled",
	"zimbraPrefAutoAddAddressEnabled", "zimbraPrefAutocompleteAddressBubblesEnabled",
	"zimbraPrefAutoCompleteQuickCompletionOnComma", "zimbraPrefBriefcaseReadingPaneLocation",
	"zimbraPrefCalendarAcceptSignatureId", "zimbraPrefCalendarAllowCancelEmailToSelf",
	"zimbraPrefCalendarAllowedTargetsForInviteDeniedAutoReply",
	"zimbraPrefCalendarAllowForwardedInvite", "zimbraPrefCalendarAllowPublishMethodInvite",
	"zimbraPrefCalendarAlwaysShowMiniCal", "zimbraPrefCalendarApptAllowAtendeeEdit",
	"zimbraPrefCalendarApptVisibility", "zimbraPrefCalendarAutoAcceptSignatureId",
	"zimbraPrefCalendarAutoAddInvites", "zimbraPrefCalendarAutoDeclineSignatureId",
	"zimbraPrefCalendarAutoDenySignatureId", "zimbraPrefCalendarDeclineSignatureId",
	"zimbraPrefCalendarInitialView", "zimbraPrefCalendarNotifyDelegatedChanges",
	"zimbraPrefCalendarReminderEmail", "zimbraPrefCalendarReminderFlashTitle",
	"zimbraPrefCalendarReminderMobile", "zimbraPrefCalendarReminderSendEmail",
	"zimbraPrefCalendarReminderSoundsEnabled", "zimbraPrefCalendarReminderYMessenger",
	"zimbraPrefCalendarSendInviteDeniedAutoReply", "zimbraPrefCalendarShowDeclinedMeetings",
	"zimbraPrefCalendarShowPastDueReminders", "zimbraPrefCalendarTentativeSignatureId",
	"zimbraPrefCalendarToasterEnabled", "zimbraPrefCalendarUseQuickAdd",
	"zimbraPrefCalenderScaling", "zimbraPrefChatEnabled", "zimbraPrefChatPlaySound",
	"zimbraPrefChildVisibleAccount", "zimbraPrefClientType", "zimbraPrefColorMessagesEnabled",
	"zimbraPrefComposeDirection", "zimbraPrefComposeFormat", "zimbraPrefComposeInNewWindow",
	"zimbraPrefContactsDisableAutocompleteOnContactGroupMembers",
	"zimbraPrefContactsExpandAppleContactGroups", "zimbraPrefContactsInitialView",
	"zimbraPrefConversationOrder", "zimbraPrefConvReadingPaneLocation",
	"zimbraPrefConvShowCalendar", "zimbraPrefDedupeMessagesSentToSelf",
	"zimbraPrefDelegatedSendSaveTarget", "zimbraPrefDeleteInviteOnReply",
	"zimbraPrefDisplayExternalImages", "zimbraPrefDisplayTimeInMailList",
	"zimbraPrefExternalSendersType", "zimbraPrefFileSharingApplication",
	"zimbraPrefFolderColorEnabled", "zimbraPrefFolderTreeOpen",
	"zimbraPrefForwardIncludeOriginalText", "zimbraPrefForwardReplyFormat",
	"zimbraPrefForwardReplyInOriginalFormat", "zimbraPrefForwardReplySignatureId",
	"zimbraPrefFromAddressType", "zimbraPrefGalAutoCompleteEnabled",
	"zimbraPrefGalSearchEnabled", "zimbraPrefGetMailAction", "zimbraPrefGroupMailBy",
	"zimbraPrefImapEnabled", "zimbraPrefImapSearchFoldersEnabled", "zimbraPrefIMAutoLogin",
	"zimbraPrefIMFlashIcon", "zimbraPrefIMFlashTitle", "zimbraPrefIMHideBlockedBuddies",
	"zimbraPrefIMHideOfflineBuddies", "zimbraPrefIMIdleStatus", "zimbraPrefIMInstantNotify",
	"zimbraPrefIMLogChats", "zimbraPrefIMLogChatsEnabled", "zimbraPrefIMNotifyPresence",
	"zimbraPrefIMNotifyStatus", "zimbraPrefIMReportIdle", "zimbraPrefIMSoundsEnabled",
	"zimbraPrefIMToasterEnabled", "zimbraPrefIncludeSharedItemsInSearch",
	"zimbraPrefIncludeSpamInSearch", "zimbraPrefIncludeTrashInSearch",
	"zimbraPrefMailFlashIcon", "zimbraPrefMailFlashTitle", "zimbraPrefMailForwardingAddress",
	"zimbraPrefMailLocalDeliveryDisabled", "zimbraPrefMailRequestReadReceipts",
	"zimbraPrefMailSelectAfterDelete", "zimbraPrefMailSendReadReceipts",
	"zimbraPrefMailSignatureEnabled", "zimbraPrefMailSignatureStyle",
	"zimbraPrefMailSoundsEnabled", "zimbraPrefMailToasterEnabled",
	"zimbraPrefMandatorySpellCheckEnabled", "zimbraPrefMessageIdDedupingEnabled",
	"zimbraPrefMessageViewHtmlPreferred", "zimbraPrefNewMailNotificationAddress",
	"zimbraPrefNewMailNotificationEnabled", "zimbraPrefOpenMailInNewWindow",
	"zimbraPrefOutOfOfficeDirectAddress", "zimbraPrefOutOfOfficeExternalReplyEnabled",
	"zimbraPrefOutOfOfficeFreeBusyStatus", "zimbraPrefOutOfOfficeReplyEnabled",
	"zimbraPrefOutOfOfficeStatusAlertOnLogin", "zimbraPrefOutOfOfficeSuppressExternalReply",
	"zimbraPrefPasswordRecoveryAddress", "zimbraPrefPasswordRecoveryAddressStatus",
	"zimbraPrefPop3DeleteOption", "zimbraPrefPop3Enabled", "zimbraPrefPop3IncludeSpam",
	"zimbraPrefPowerPasteEnabled", "zimbraPrefReadingPaneEnabled",
	"zimbraPrefReadingPaneLocation", "zimbraPrefReplyIncludeOriginalText",
	"zimbraPrefReplyToEnabled", "zimbraPrefSaveToSent", "zimbraPrefSearchTreeOpen",
	"zimbraPrefSharedAddrBookAutoCompleteEnabled", "zimbraPrefShortEmailAddress",
	"zimbraPrefShowAllNewMailNotifications", "zimbraPrefShowCalendarWeek",
	"zimbraPrefShowChatsFolderInMail", "zimbraPrefShowComposeDirection",
	"zimbraPrefShowFragments", "zimbraPrefShowSearchString",
	"zimbraPrefShowSelectionCheckbox", "zimbraPrefSlackCalendarReminderEnabled",
	"zimbraPrefSpellIgnoreAllCaps", "zimbraPrefStandardClientAccessibilityMode",
	"zimbraPrefTabInEditorEnabled", "zimbraPrefTagTreeOpen", "zimbraPrefTasksFilterBy",
	"zimbraPrefTasksReadingPaneLocation", "zimbraPrefUseDefaultIdentitySettings",
	"zimbraPrefUseKeyboardShortcuts", "zimbraPrefUseRfc2231", "zimbraPrefUseSendMsgShortcut",
	"zimbraPrefUseTimeZoneListInCalendar", "zimbraPrefWarnOnExit",
	"zimbraPrefWhenInFoldersEnabled", "zimbraPrefWhenSentToEnabled",
	"zimbraPrefZimletTreeOpen", "zimbraPrefZmgPushNotificationEnabled", "zimbraSignatureId", NULL
};

static bool same_values(const struct zattrs *a, const struct zattrs *b, const char *n)
{
	struct strlist x = STRLIST_INIT, y = STRLIST_INIT;
	zattrs_values(a, n, &x);
	zattrs_values(b, n, &y);
	bool same = x.n == y.n, ci = in(ci_attrs, n);
	for (size_t i = 0; same && i < x.n; i++)
		same = ci ? strlist_has_ci(&y, x.v[i]) : strlist_has(&y, x.v[i]);
	strlist_release(&x);
	strlist_release(&y);
	return same;
}

/*
 * Given at creation, never updated: zimbraAccountStatus.  After the first
 * provisioning the target's status belongs to the cutover (source locked or
 * in maintenance, target active); an update copying the source's would undo it.
 */
static const char *const create_only[] = { "zimbraAccountStatus", NULL };

/*
 * A copied attribute the target has and the source not is removed by an update,
 * except what the server sets itself: cn, sn (LdapProvisioning.createAccount
 * 1525-1535; inetOrgPerson needs them), the signature kept on the account entry
 * and the default signature id a first CreateSignature sets (createSignature
 * 8130-8172, LdapSignatureBase.java:110-112), the create-only status.
 */
static const char *const keep_on_target[] = {
	"cn", "sn", "zimbraSignatureId", "zimbraSignatureName", "zimbraPrefMailSignature",
	"zimbraPrefMailSignatureHTML", "zimbraPrefDefaultSignatureId", "zimbraAccountStatus",
	NULL
};

static bool removable(const char *n)
{
	return prov_attr_class(n) == PA_COPY && !in(keep_on_target, n);
}

static bool seen_before(const struct zattrs *a, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (!strcasecmp(a->v[j].n, a->v[i].n))
			return true;
	return false;
}

/* 'v1','v2' of n in a (or "(none)"), for the diff line; long values cut */
static void show_values(struct buf *b, const struct zattrs *a, const char *n)
{
	size_t k = 0;
	for (size_t i = 0; i < a->n; i++) {
		if (strcasecmp(a->v[i].n, n))
			continue;
		const char *v = a->v[i].v;
		size_t len = strlen(v);
		buf_addf(b, "%s'%.*s%s'", k++ ? "," : "", len > 60 ? 60 : (int)len, v,
			 len > 60 ? "..." : "");
	}
	if (!k)
		buf_adds(b, "(none)");
}

void prov_diff(const struct zattrs *want, const struct zattrs *have, struct zattrs *mods,
	       struct buf *diff)
{
	for (size_t i = 0; i < want->n; i++) {
		const char *n = want->v[i].n;
		if (seen_before(want, i) || in(create_only, n) || same_values(want, have, n))
			continue;
		for (size_t j = i; j < want->n; j++)
			if (!strcasecmp(want->v[j].n, n))
				zattrs_add(mods, n, want->v[j].v);
		buf_addf(diff, "%s%s: ", diff->len ? "; " : "", n);
		show_values(diff, have, n);
		buf_adds(diff, " -> ");
		show_values(diff, want, n);
	}
	/* copied attributes only the target has: removed ("" deletes, ModifyAccount) */
	for (size_t i = 0; i < have->n; i++) {
		const char *n = have->v[i].n;
		if (seen_before(have, i) || zattrs_get(want, n) || !removable(n) ||
		    !strcmp(have->v[i].v, "VALUE-BLOCKED"))
			continue;
		zattrs_add(mods, n, "");
		buf_addf(diff, "%s%s: ", diff->len ? "; " : "", n);
		show_values(diff, have, n);
		buf_adds(diff, " -> (none)");
	}
}
