/*
 * provision_lists.c - the provision stage's distribution lists (issue 15):
 * the static lists of the accounts' source domains, after the accounts.
 *
 * What the real server does (zm-mailbox HEAD; the calls: zprov.h):
 * - a list created by CreateDistributionList always gets a NEW zimbraId
 *   (LdapProvisioning createDistributionList 4574: generateUUID after
 *   mapToAttrs), so no id is sent.  Consequence: shares granted to the list
 *   (folder ACLs whose grantee is its old id) do not follow; the new id is in
 *   the 'created' event;
 * - members are addresses, not entries (addDistributionListMembers
 *   7501-7580: any address, one already there skipped): a nested list is a
 *   member address that names a list.  Still, every list is created (pass 1)
 *   before any member is added (pass 2), so that a member naming a list of the
 *   job is one when it is added, whatever the order of the lists.
 *
 * Per list (a row of provision_objects, kind 'list', state_prov.h):
 *   pass 1: GetDistributionList of the mapped name on the target;
 *     missing: 'creating' committed, CreateDistributionList with the allowed
 *       attributes (list_copy below, domain_map applied), a crashpoint, then
 *       AddDistributionListAlias per alias;
 *     present and not ours: `existing` decides (skip / fail / update: the
 *       allowed attributes that differ, ModifyDistributionList; missing
 *       aliases added; the diff recorded as an event before it is sent);
 *     ours ('creating' or created by this job): compared and completed.
 *   pass 2: AddDistributionListMember with the members (domain_map applied)
 *     the target's list lacks, in one call; then the owners (domain_map
 *     applied) the target's list lacks, one GrantRight ownDistList each
 *     (zprov_grant_list_owner: the real call and why, zprov.c), then 'done'.
 * Owners: the source's <owners> of GetDistributionList (encodeOwners 217-235)
 * against the target's; the grantee is the mapped owner by name, so it is the
 * target's account (provisioned before the lists).  A grant is idempotent on
 * the real server (ZimbraACL.grant 155-185: an ACE already there is left, no
 * fault), and a rerun after a crash between a grant and 'done' reads the
 * owner on the target and sends none.
 * Conservative update: attributes the target's list has and the source's
 * not, members, aliases and owners only the target has, are left (users may have
 * joined the target's list after the cutover).  Nothing missing: no call; a
 * rerun sends only GetDistributionList.  --dry-run prints create / update
 * (the diff) / skip / same per list and writes nothing.
 *
 * Not provisioned: dynamic groups (a warning each); other grants on a list
 * (zimbraACE, see list_copy).
 */
#include "provision_int.h"
#include "log.h"
#include "runctl.h"
#include "state_prov.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * The list attributes copied (zimbra-attrs.xml at zm-mailbox HEAD, classes
 * distributionList / mailRecipient): displayName 215, description 207,
 * zimbraNotes 391, zimbraMailStatus 411, zimbraHideInGal 1913,
 * zimbraDistributionListSubscriptionPolicy 6314, ...UnsubscriptionPolicy
 * 6318, zimbraDistributionListSendShareMessageToNewMembers 4303,
 * zimbraPrefReplyToAddress 636 (domain_map), zimbraPrefReplyToDisplay 2143,
 * zimbraPrefReplyToEnabled 2147.  Not copied: zimbraId, mail, uid, cn (the
 * server sets them, createDistributionList 4574-4595), zimbraMailAlias (the
 * aliases: AddDistributionListAlias), zimbraMailForwardingAddress (the
 * members: AddDistributionListMember), zimbraMailHost (377, server),
 * zimbraCreateTimestamp, zimbraIsACLGroup (6176: requiredIn group, i.e.
 * dynamic groups, immutable), zimbraACE (grants naming ids of the old
 * installation), anything else.
 */
static const char *const list_copy[] = {
	"displayName", "description", "zimbraNotes", "zimbraMailStatus", "zimbraHideInGal",
	"zimbraDistributionListSubscriptionPolicy", "zimbraDistributionListUnsubscriptionPolicy",
	"zimbraDistributionListSendShareMessageToNewMembers", "zimbraPrefReplyToAddress",
	"zimbraPrefReplyToDisplay", "zimbraPrefReplyToEnabled", NULL
};

bool prov_list_attr_copied(const char *n)
{
	for (size_t i = 0; list_copy[i]; i++)
		if (!strcasecmp(list_copy[i], n))
			return true;
	return false;
}

struct plist {
	struct zlist src;
	char *target;
	struct prov_row row;
	struct zlist tgt;            /* the target's (found, or id of the one just created) */
	struct strlist add;          /* pass 2: members to add */
	struct strlist grant;        /* pass 2: owners to grant ownDistList */
	char *diff;                  /* pass 2 of an update: what differed */
	bool act;                    /* pass 2 runs for it */
	const char *outcome;         /* pass 2: "created" / "updated" */
};

static void plist_release(struct plist *l)
{
	zlist_release(&l->src);
	zlist_release(&l->tgt);
	free(l->target);
	state_prov_release(&l->row);
	strlist_release(&l->add);
	strlist_release(&l->grant);
	free(l->diff);
}

static void count(struct prov *p, const char *outcome)
{
	if (!outcome)
		return;
	if (!strcmp(outcome, "created"))
		p->n_created++;
	else if (!strcmp(outcome, "updated"))
		p->n_updated++;
	else if (!strcmp(outcome, "unchanged"))
		p->n_unchanged++;
	else if (!strcmp(outcome, "skipped"))
		p->n_skipped++;
}

/* The addresses of from mapped by domain_map into to, each once. */
static void map_addrs(const struct prov *p, const struct strlist *from, struct strlist *to)
{
	for (size_t i = 0; i < from->n; i++) {
		char *t = job_map_account(p->job, from->v[i]);
		if (strlist_has_ci(to, t))
			free(t);
		else
			strlist_add_nodup(to, t);
	}
}

/* What the target's list should have: allowed attributes, aliases, members, owners, all
 * mapped. */
static void desired(const struct prov *p, const struct zlist *s, struct zattrs *want,
		    struct strlist *aliases, struct strlist *members, struct strlist *owners)
{
	for (size_t i = 0; i < s->a.n; i++) {
		if (!strcmp(s->a.v[i].v, "VALUE-BLOCKED") || !prov_list_attr_copied(s->a.v[i].n))
			continue;
		char *v = prov_map_value(p->job, s->a.v[i].n, s->a.v[i].v);
		zattrs_add(want, s->a.v[i].n, v);
		free(v);
	}
	struct strlist al = STRLIST_INIT;
	zattrs_values(&s->a, "zimbraMailAlias", &al);
	for (size_t i = 0; i < al.n; i++) {
		if (streq_ci(al.v[i], s->name))
			continue;
		char *t = job_map_account(p->job, al.v[i]);
		if (strlist_has_ci(aliases, t))
			free(t);
		else
			strlist_add_nodup(aliases, t);
	}
	strlist_release(&al);
	map_addrs(p, &s->members, members);
	map_addrs(p, &s->owners, owners);
}

/* The ones of want that have lacks (have NULL: all). */
static void missing(const struct strlist *want, const struct strlist *have, struct strlist *out)
{
	for (size_t i = 0; i < want->n; i++)
		if (!have || !strlist_has_ci(have, want->v[i]))
			strlist_add(out, want->v[i]);
}

/*
 * Pass 1 for one list: create it (and its aliases) or compare it.  Fatal
 * errors only; the list's own failure is recorded (l->act stays false).
 */
static enum zmb_rc pass1(struct prov *p, struct plist *l)
{
	struct stage_ctx *ctx = p->ctx;
	struct zattrs want = ZATTRS_INIT, have = ZATTRS_INIT, mods = ZATTRS_INIT;
	struct strlist aliases = STRLIST_INIT, members = STRLIST_INIT, add_al = STRLIST_INIT;
	struct strlist have_al = STRLIST_INIT, owners = STRLIST_INIT;
	struct buf diff = BUF_INIT, ob = BUF_INIT;
	char *err = NULL, *msg = NULL;
	const char *outcome = NULL;
	enum zmb_rc rc, fatal = ZMB_OK;

	if (ctx->st && state_prov_get(ctx->st, ctx->sc->name, "list", l->src.name, &l->row) != ZMB_OK)
		memset(&l->row, 0, sizeof l->row);
	bool resumed_create = streq(l->row.state, "creating");
	bool already_done = streq(l->row.state, "done");
	desired(p, &l->src, &want, &aliases, &members, &owners);

	rc = zprov_get_list(p->th, p->ttc, l->target, &l->tgt, &err);
	if (rc && rc != ZMB_ENOTFOUND) {
		fatal = rc;
		goto out;
	}
	if (rc == ZMB_ENOTFOUND) {
		/* ---- create ---- */
		free(err);
		err = NULL;
		if (ctx->dry_run) {
			for (size_t i = 0; i < owners.n; i++)
				buf_addf(&ob, "%s%s", i ? ", " : "; owner(s) ", owners.v[i]);
			stage_out(ctx, "create  list %s -> %s (%zu attribute value(s), %zu alias(es), "
				  "%zu member(s)%s)", l->src.name, l->target, want.n, aliases.n, members.n,
				  ob.len ? ob.s : "");
			outcome = "created";
			goto out;
		}
		msg = xasprintf("creating list %s on the target", l->target);
		if (state_prov_creating(p->st, ctx->run_id, l->row.id, msg)) {
			fatal = ZMB_ESTATE;
			goto out;
		}
		memset(&l->tgt, 0, sizeof l->tgt);
		rc = zprov_create_list(p->th, p->ttc, l->target, &want, &l->tgt.id, &err);
		if (rc) {
			if (rc == ZMB_ECONFLICT || rc == ZMB_ENOTFOUND || rc == ZMB_EPROTO) {
				char *e = xasprintf("list '%s': %s: %s", l->src.name, l->target, err);
				free(err);
				err = e;
				goto failed;
			}
			fatal = rc;
			goto out;
		}
		/* a change on the target is durable: a step of the crash enumeration */
		crashpoint("provision: list created on the target");
		l->tgt.name = xstrdup(l->target);
		if ((rc = prov_add_aliases(p, "list", l->src.name, l->tgt.id, &aliases, &err))) {
			if (rc == ZMB_ECONFLICT || rc == ZMB_ENOTFOUND || rc == ZMB_EPROTO)
				goto failed;
			fatal = rc;
			goto out;
		}
		missing(&members, NULL, &l->add);
		missing(&owners, NULL, &l->grant);
		l->act = true;
		l->outcome = "created";
		goto out;
	}

	/* ---- the list exists on the target ---- */
	if (!streq_ci(l->tgt.name, l->target)) {
		err = xasprintf("list '%s': %s is an alias of the target's list %s: not touched",
				l->src.name, l->target, l->tgt.name);
		goto failed;
	}
	bool ours = l->row.ours;   /* created by this job (its id is the target's own) */
	if (!ours && p->k.existing == EX_SKIP) {
		if (ctx->dry_run)
			stage_out(ctx, "skip    list %s -> %s (exists on the target; existing = "
				  "\"skip\")", l->src.name, l->target);
		if (already_done && streq(l->row.outcome, "skipped")) {
			p->n_skipped++;
			goto out;
		}
		msg = xasprintf("list %s exists on the target: left as it is (existing = \"skip\")",
				l->target);
		outcome = "skipped";
		goto done;
	}
	if (!ours && p->k.existing == EX_FAIL) {
		err = xasprintf("list '%s': %s already exists on the target (existing = \"fail\")",
				l->src.name, l->target);
		goto failed;
	}
	/* attributes: only those of want compared (an attribute only the target's list has
	 * is left); aliases and members: only the missing ones added */
	for (size_t i = 0; i < l->tgt.a.n; i++)
		if (zattrs_get(&want, l->tgt.a.v[i].n))
			zattrs_add(&have, l->tgt.a.v[i].n, l->tgt.a.v[i].v);
	prov_diff(&want, &have, &mods, &diff);
	zattrs_values(&l->tgt.a, "zimbraMailAlias", &have_al);
	missing(&aliases, &have_al, &add_al);
	missing(&members, &l->tgt.members, &l->add);
	missing(&owners, &l->tgt.owners, &l->grant);
	for (size_t i = 0; i < add_al.n; i++)
		buf_addf(&diff, "%salias +%s", diff.len ? "; " : "", add_al.v[i]);
	for (size_t i = 0; i < l->add.n; i++)
		buf_addf(&diff, "%smember +%s", diff.len ? "; " : "", l->add.v[i]);
	for (size_t i = 0; i < l->grant.n; i++)
		buf_addf(&diff, "%sowner +%s", diff.len ? "; " : "", l->grant.v[i]);
	if (!mods.n && !add_al.n && !l->add.n && !l->grant.n) {
		if (ctx->dry_run)
			stage_out(ctx, "same    list %s -> %s", l->src.name, l->target);
		if (already_done) {
			p->n_unchanged++;
			goto out;
		}
		outcome = resumed_create ? "created" : "unchanged";
		msg = resumed_create ? xasprintf("created list %s (completed after a restart)",
						 l->target)
				     : NULL;
		goto done;
	}
	if (ctx->dry_run) {
		stage_out(ctx, "update  list %s -> %s: %s", l->src.name, l->target, diff.s);
		outcome = "updated";
		goto out;
	}
	msg = xasprintf("update list %s: %s", l->target, diff.s);
	if (state_prov_event(p->st, ctx->run_id, l->row.id, "info", msg)) {
		fatal = ZMB_ESTATE;
		goto out;
	}
	if (mods.n) {
		if ((rc = zprov_modify_list(p->th, p->ttc, l->tgt.id, &mods, &err))) {
			if (rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND)
				goto failed;
			fatal = rc;
			goto out;
		}
		crashpoint("provision: list modified on the target");
	}
	if ((rc = prov_add_aliases(p, "list", l->src.name, l->tgt.id, &add_al, &err))) {
		if (rc == ZMB_ECONFLICT || rc == ZMB_ENOTFOUND || rc == ZMB_EPROTO)
			goto failed;
		fatal = rc;
		goto out;
	}
	l->act = true;
	l->outcome = resumed_create ? "created" : "updated";
	l->diff = xstrdup(diff.s);
	goto out;

failed:
	if (!ctx->dry_run && p->st && state_prov_failed(p->st, ctx->run_id, l->row.id, err)) {
		fatal = ZMB_ESTATE;
		goto out;
	}
	prov_note_failure(p, err);
	goto out;
done:
	if (!ctx->dry_run && state_prov_done(p->st, ctx->run_id, l->row.id, outcome, msg)) {
		fatal = ZMB_ESTATE;
		goto out;
	}
	if (msg && !ctx->dry_run)
		stage_out(ctx, "%s", msg);
out:
	if (ctx->dry_run || !l->act)
		count(p, fatal ? NULL : outcome);
	if (fatal) {
		if (!err)
			err = xstrdup(ctx->st ? state_errmsg(ctx->st) : zmb_rc_str(fatal));
		log_error(l->src.name, "provision: %s", err);
		prov_note_failure(p, err);
	}
	zattrs_release(&want);
	zattrs_release(&have);
	zattrs_release(&mods);
	strlist_release(&aliases);
	strlist_release(&members);
	strlist_release(&add_al);
	strlist_release(&have_al);
	strlist_release(&owners);
	buf_release(&diff);
	buf_release(&ob);
	free(err);
	free(msg);
	return fatal;
}

/* Pass 2 for one list: the missing members, then 'done'. */
static enum zmb_rc pass2(struct prov *p, struct plist *l)
{
	struct stage_ctx *ctx = p->ctx;
	char *err = NULL, *msg = NULL;
	enum zmb_rc rc;

	if (l->add.n) {
		rc = zprov_add_list_members(p->th, p->ttc, l->tgt.id, &l->add, &err);
		if (rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND) {
			char *e = xasprintf("list '%s': adding its members: %s", l->src.name, err);
			if (state_prov_failed(p->st, ctx->run_id, l->row.id, e))
				rc = ZMB_ESTATE;
			else
				rc = ZMB_OK;
			prov_note_failure(p, e);
			free(e);
			goto out;
		}
		if (rc) {
			log_error(l->src.name, "provision: %s", err);
			prov_note_failure(p, err);
			goto out;
		}
		crashpoint("provision: list members added on the target");
	}
	for (size_t i = 0; i < l->grant.n; i++) {
		rc = zprov_grant_list_owner(p->th, p->ttc, l->tgt.id, l->grant.v[i], &err);
		if (rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND) {
			char *e = xasprintf("list '%s': granting ownDistList to its owner %s: %s",
					    l->src.name, l->grant.v[i], err);
			if (state_prov_failed(p->st, ctx->run_id, l->row.id, e))
				rc = ZMB_ESTATE;
			else
				rc = ZMB_OK;
			prov_note_failure(p, e);
			free(e);
			goto out;
		}
		if (rc) {
			log_error(l->src.name, "provision: %s", err);
			prov_note_failure(p, err);
			goto out;
		}
		crashpoint("provision: list owner granted on the target");
	}
	if (!strcmp(l->outcome, "created"))
		msg = xasprintf("created list %s (zimbraId %s on the target, %zu member(s) added, "
				"%zu owner(s) granted)", l->target, l->tgt.id, l->add.n, l->grant.n);
	else
		msg = xasprintf("updated list %s: %s", l->target, l->diff ? l->diff : "");
	if (state_prov_done(p->st, ctx->run_id, l->row.id, l->outcome, msg)) {
		rc = ZMB_ESTATE;
		goto out;
	}
	stage_out(ctx, "%s", msg);
	count(p, l->outcome);
	rc = ZMB_OK;
out:
	free(err);
	free(msg);
	return rc;
}

enum zmb_rc prov_lists(struct prov *p, const struct strlist *domains)
{
	struct stage_ctx *ctx = p->ctx;
	struct plist *v = NULL;
	size_t n = 0, alloc = 0;
	char *err = NULL;
	enum zmb_rc rc = ZMB_OK;

	for (size_t d = 0; d < domains->n && rc == ZMB_OK; d++) {
		struct zlist *got = NULL;
		size_t ng = 0;
		if ((rc = zprov_all_lists(p->sh, p->stc, domains->v[d], &got, &ng, &err))) {
			log_error(NULL, "provision: the lists of %s: %s", domains->v[d], err);
			prov_note_failure(p, err);
			break;
		}
		for (size_t i = 0; i < ng; i++) {
			if (got[i].dynamic) {
				log_warn(got[i].name, "provision: a dynamic group: not provisioned");
				stage_out(ctx, "WARNING list %s is a dynamic group: not provisioned",
					  got[i].name);
				continue;
			}
			if (n == alloc) {
				alloc = alloc ? alloc * 2 : 16;
				v = xrealloc(v, alloc * sizeof *v);
			}
			memset(&v[n], 0, sizeof v[n]);
			v[n].src = got[i];
			memset(&got[i], 0, sizeof got[i]);
			v[n].target = job_map_account(p->job, v[n].src.name);
			n++;
		}
		zlists_free(got, ng);
	}
	if (rc)
		goto out;
	if (p->st && n) {
		if ((rc = state_begin(p->st)))
			goto out;
		for (size_t i = 0; i < n && rc == ZMB_OK; i++)
			rc = state_prov_plan(p->st, ctx->sc->name, "list", v[i].src.name, v[i].target);
		if (rc || (rc = state_commit(p->st))) {
			state_rollback(p->st);
			rc = ZMB_ESTATE;
			goto out;
		}
	}
	if (n)
		stage_out(ctx, "%zu distribution list(s) to provision", n);
	/* pass 1: every list exists before any member is added (nested lists) */
	for (size_t i = 0; i < n; i++) {
		if (!runctl_may_claim(ctx->ctl)) {
			rc = ZMB_ECANCELED;
			goto out;
		}
		if ((rc = pass1(p, &v[i])))
			goto out;
	}
	/* pass 2: the members */
	for (size_t i = 0; i < n; i++) {
		if (!v[i].act)
			continue;
		if ((rc = pass2(p, &v[i])))
			goto out;
	}
out:
	for (size_t i = 0; i < n; i++)
		plist_release(&v[i]);
	free(v);
	free(err);
	return rc;
}
