/*
 * provision_resources.c - the provision stage's calendar resources (issue
 * 15): locations and equipment of the accounts' source domains, after the
 * accounts and before the lists.
 *
 * A calendar resource is an account of its own kind (zm-mailbox
 * LdapProvisioning createCalendarResource 6472-6491 calls createAccount with
 * the same SpecialAttrs): CreateCalendarResource keeps a zimbraId given in
 * its attributes as CreateAccount does, so the resource keeps its id and the
 * appointments that book it still point at it.  GetAllAccounts leaves
 * resources out (getAllAccounts 7041: allAccountsOnly), so the accounts of
 * the job never include them; their mailboxes (the resources' calendars) are
 * migrated only if listed in the job's accounts.
 *
 * Per resource (a row of provision_objects, kind 'resource', schema 011):
 * GetCalendarResource applyCos=0 on the source (GetAllCalendarResources
 * applies the COS: names only from it) and on the target;
 *   missing: the id checked free on the target (GetAccount by=id: Zimbra
 *     keeps no id unique), 'creating' committed, CreateCalendarResource with
 *     the allowed attributes (res_copy below; domain_map applied) and the
 *     source's zimbraId (keep_zimbra_id as for accounts: a target that refuses
 *     it gets the resource without it under "try", the new id recorded), a
 *     crashpoint, then AddAccountAlias per alias;
 *   present, not ours: `existing` (skip / fail / update: the allowed
 *     attributes that differ, ModifyCalendarResource, missing aliases);
 *   ours: compared and completed.
 * No password: a resource is booked by invitation, nobody logs in to it (the
 * target's has none; set one there if an administrator needs to).  Its COS is
 * not mapped: the target domain's default applies.  A rerun sends only
 * GetCalendarResource; --dry-run prints create / update / skip / same.
 */
#include "provision_int.h"
#include "log.h"
#include "runctl.h"
#include "state_prov.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Copied (zimbra-attrs.xml at zm-mailbox HEAD, class calendarResource):
 * displayName 215 and zimbraCalResType 1724 (both requiredIn), the
 * auto-accept policy zimbraCalResAutoAcceptDecline 1728,
 * zimbraCalResAutoDeclineIfBusy 1766, zimbraCalResAutoDeclineRecurring 1770,
 * zimbraCalResMaxNumConflictsAllowed 4295, zimbraCalResMaxPercentConflictsAllowed
 * 4299; where it is: zimbraCalResLocationDisplayName 1774, zimbraCalResSite
 * 1783, zimbraCalResBuilding 1787, zimbraCalResFloor 1791, zimbraCalResRoom
 * 1795, zimbraCalResCapacity 1799; who looks after it: zimbraCalResContactName
 * 1803, zimbraCalResContactEmail 1807 (domain_map), zimbraCalResContactPhone
 * 1811; zimbraLocale 1876, description, zimbraNotes, zimbraHideInGal,
 * zimbraAccountStatus (at creation only, as for accounts); the zimbraPref*
 * of the account allow list (provision_attrs.c: e.g. the time zone the
 * auto-accept works in, zimbraPrefCalendarForwardInvitesTo).  Not copied:
 * zimbraAccountCalendarUserType (the create sets RESOURCE), zimbraMailHost,
 * zimbraMailTransport, zimbraCOSId, zimbraCreateTimestamp, userPassword and
 * the other secrets, anything else.
 */
static const char *const res_copy[] = {
	"displayName", "zimbraCalResType", "zimbraCalResAutoAcceptDecline",
	"zimbraCalResAutoDeclineIfBusy", "zimbraCalResAutoDeclineRecurring",
	"zimbraCalResMaxNumConflictsAllowed", "zimbraCalResMaxPercentConflictsAllowed",
	"zimbraCalResLocationDisplayName", "zimbraCalResSite", "zimbraCalResBuilding",
	"zimbraCalResFloor", "zimbraCalResRoom", "zimbraCalResCapacity",
	"zimbraCalResContactName", "zimbraCalResContactEmail", "zimbraCalResContactPhone",
	"zimbraLocale", "description", "zimbraNotes", "zimbraHideInGal", "zimbraAccountStatus",
	NULL
};

bool prov_resource_attr_copied(const char *n)
{
	for (size_t i = 0; res_copy[i]; i++)
		if (!strcasecmp(res_copy[i], n))
			return true;
	return !strncasecmp(n, "zimbraPref", 10) && prov_attr_class(n) == PA_COPY;
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

/* One resource, start to end; fatal errors only (as prov_account). */
static enum zmb_rc prov_resource(struct prov *p, const char *name)
{
	struct stage_ctx *ctx = p->ctx;
	struct prov_row row;
	struct zattrs src = ZATTRS_INIT, tgt = ZATTRS_INIT, want = ZATTRS_INIT, have = ZATTRS_INIT;
	struct zattrs mods = ZATTRS_INIT, create = ZATTRS_INIT;
	struct strlist aliases = STRLIST_INIT, have_al = STRLIST_INIT, add = STRLIST_INIT;
	struct buf diff = BUF_INIT;
	char *sid = NULL, *tid = NULL, *canon = NULL, *err = NULL, *msg = NULL;
	char *target = job_map_account(p->job, name);
	const char *outcome = NULL;
	enum zmb_rc rc, fatal = ZMB_OK;

	memset(&row, 0, sizeof row);
	if (ctx->st && state_prov_get(ctx->st, ctx->sc->name, "resource", name, &row) != ZMB_OK)
		memset(&row, 0, sizeof row);
	bool resumed_create = streq(row.state, "creating");
	bool already_done = streq(row.state, "done");

	if ((rc = zprov_get_resource(p->sh, p->stc, name, &sid, NULL, &src, &err))) {
		if (rc == ZMB_ENOTFOUND)
			goto failed;
		fatal = rc;
		goto out;
	}
	for (size_t i = 0; i < src.n; i++) {
		if (!strcmp(src.v[i].v, "VALUE-BLOCKED") || !prov_resource_attr_copied(src.v[i].n))
			continue;
		char *v = prov_map_value(p->job, src.v[i].n, src.v[i].v);
		zattrs_add(&want, src.v[i].n, v);
		free(v);
	}
	struct strlist sal = STRLIST_INIT;
	zattrs_values(&src, "zimbraMailAlias", &sal);
	for (size_t i = 0; i < sal.n; i++) {
		char *t = job_map_account(p->job, sal.v[i]);
		if (strlist_has_ci(&aliases, t))
			free(t);
		else
			strlist_add_nodup(&aliases, t);
	}
	strlist_release(&sal);

	rc = zprov_get_resource(p->th, p->ttc, target, &tid, &canon, &tgt, &err);
	if (rc && rc != ZMB_ENOTFOUND) {
		fatal = rc;
		goto out;
	}
	if (rc == ZMB_ENOTFOUND) {
		/* ---- create ---- */
		free(err);
		err = NULL;
		if (ctx->dry_run) {
			stage_out(ctx, "create  resource %s -> %s (zimbraId %s, %s, %zu attribute "
				  "value(s), %zu alias(es))", name, target, sid,
				  zattrs_get(&want, "zimbraCalResType") ? zattrs_get(&want, "zimbraCalResType")
									: "?",
				  want.n, aliases.n);
			outcome = "created";
			goto out;
		}
		if (p->k.keep_id != KZ_NEVER &&
		    (rc = prov_id_taken(p, "resource", name, sid, target, &err))) {
			if (rc == ZMB_ECONFLICT)
				goto failed;
			fatal = rc;
			goto out;
		}
		for (size_t i = 0; i < want.n; i++)
			zattrs_add(&create, want.v[i].n, want.v[i].v);
		if (p->k.keep_id != KZ_NEVER)
			zattrs_add(&create, "zimbraId", sid);
		msg = xasprintf("creating resource %s on the target (zimbraId %s)", target, sid);
		if (state_prov_creating(p->st, ctx->run_id, row.id, msg)) {
			fatal = ZMB_ESTATE;
			goto out;
		}
		free(tid);
		tid = NULL;
		rc = zprov_create_resource(p->th, p->ttc, target, &create, &tid, &err);
		if (rc == ZMB_EPROTO && prov_id_refused(err) && p->k.keep_id == KZ_TRY) {
			/* Carbonio 4.0.7-4.12.0: createAccount refuses it (provision.c, accounts) */
			free(err);
			err = NULL;
			free(msg);
			msg = xasprintf("creating resource %s without the source's zimbraId %s (the "
					"target refuses it)", target, sid);
			if (state_prov_target_id(p->st, ctx->run_id, row.id, "?", msg)) {
				fatal = ZMB_ESTATE;
				goto out;
			}
			zattrs_del(&create, "zimbraId");
			rc = zprov_create_resource(p->th, p->ttc, target, &create, &tid, &err);
			if (rc == ZMB_OK) {
				free(msg);
				msg = xasprintf("%s has the target's new zimbraId %s (the source's: %s)",
						target, tid ? tid : "?", sid);
				if (state_prov_target_id(p->st, ctx->run_id, row.id, tid ? tid : "?", msg)) {
					fatal = ZMB_ESTATE;
					goto out;
				}
			}
		}
		if (rc) {
			if (rc == ZMB_ECONFLICT || rc == ZMB_ENOTFOUND || rc == ZMB_EPROTO) {
				char *e = xasprintf("resource '%s': %s: %s", name, target, err);
				free(err);
				err = e;
				goto failed;
			}
			fatal = rc;
			goto out;
		}
		crashpoint("provision: resource created on the target");
		if ((rc = prov_add_aliases(p, "resource", name, tid ? tid : sid, &aliases, &err))) {
			if (rc == ZMB_ECONFLICT || rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND)
				goto failed;
			fatal = rc;
			goto out;
		}
		free(msg);
		msg = xasprintf("created resource %s (%s, zimbraId %s, %zu attribute value(s), %zu "
				"alias(es))", target, zattrs_get(&want, "zimbraCalResType") ?
				zattrs_get(&want, "zimbraCalResType") : "?", tid ? tid : sid, want.n,
				aliases.n);
		outcome = "created";
		goto done;
	}

	/* ---- present on the target ---- */
	if (canon && !streq_ci(canon, target)) {
		err = xasprintf("resource '%s': %s is an alias of %s on the target: not touched", name,
				target, canon);
		goto failed;
	}
	bool ours = row.ours &&
		    (streq_ci(tid, sid) ||
		     (row.target_id && (streq(row.target_id, "?") ? resumed_create
								   : streq_ci(tid, row.target_id))));
	if (!ours && p->k.existing == EX_SKIP) {
		if (ctx->dry_run)
			stage_out(ctx, "skip    resource %s -> %s (exists on the target; existing = "
				  "\"skip\")", name, target);
		if (already_done && streq(row.outcome, "skipped")) {
			p->n_skipped++;
			goto out;
		}
		msg = xasprintf("resource %s exists on the target: left as it is (existing = "
				"\"skip\")", target);
		outcome = "skipped";
		goto done;
	}
	if (!ours && p->k.existing == EX_FAIL) {
		err = xasprintf("resource '%s': %s already exists on the target (existing = \"fail\")",
				name, target);
		goto failed;
	}
	/* conservative, as lists: the allowed attributes of the source compared, those only
	 * the target has left (zimbraAccountStatus at creation only: prov_diff) */
	for (size_t i = 0; i < tgt.n; i++)
		if (zattrs_get(&want, tgt.v[i].n))
			zattrs_add(&have, tgt.v[i].n, tgt.v[i].v);
	prov_diff(&want, &have, &mods, &diff);
	zattrs_values(&tgt, "zimbraMailAlias", &have_al);
	for (size_t i = 0; i < aliases.n; i++)
		if (!strlist_has_ci(&have_al, aliases.v[i])) {
			strlist_add(&add, aliases.v[i]);
			buf_addf(&diff, "%salias +%s", diff.len ? "; " : "", aliases.v[i]);
		}
	if (!mods.n && !add.n) {
		if (ctx->dry_run)
			stage_out(ctx, "same    resource %s -> %s", name, target);
		if (already_done) {
			p->n_unchanged++;
			goto out;
		}
		outcome = resumed_create ? "created" : "unchanged";
		msg = resumed_create ? xasprintf("created resource %s (completed after a restart)",
						 target)
				     : NULL;
		goto done;
	}
	if (ctx->dry_run) {
		stage_out(ctx, "update  resource %s -> %s: %s", name, target, diff.s);
		outcome = "updated";
		goto out;
	}
	msg = xasprintf("update resource %s: %s", target, diff.s);
	if (state_prov_event(p->st, ctx->run_id, row.id, "info", msg)) {
		fatal = ZMB_ESTATE;
		goto out;
	}
	if (mods.n) {
		if ((rc = zprov_modify_resource(p->th, p->ttc, tid, &mods, &err))) {
			if (rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND)
				goto failed;
			fatal = rc;
			goto out;
		}
		crashpoint("provision: resource modified on the target");
	}
	if ((rc = prov_add_aliases(p, "resource", name, tid, &add, &err))) {
		if (rc == ZMB_ECONFLICT || rc == ZMB_EPROTO || rc == ZMB_ENOTFOUND)
			goto failed;
		fatal = rc;
		goto out;
	}
	free(msg);
	msg = xasprintf("updated resource %s: %s", target, diff.s);
	outcome = resumed_create ? "created" : "updated";
	goto done;

failed:
	if (!ctx->dry_run && p->st && state_prov_failed(p->st, ctx->run_id, row.id, err)) {
		fatal = ZMB_ESTATE;
		goto out;
	}
	prov_note_failure(p, err);
	goto out;
done:
	if (!ctx->dry_run && state_prov_done(p->st, ctx->run_id, row.id, outcome, msg)) {
		fatal = ZMB_ESTATE;
		goto out;
	}
	if (msg && !ctx->dry_run)
		stage_out(ctx, "%s", msg);
out:
	if (fatal) {
		outcome = NULL;
		if (!err)
			err = xstrdup(ctx->st ? state_errmsg(ctx->st) : zmb_rc_str(fatal));
		log_error(name, "provision: %s", err);
		prov_note_failure(p, err);
	}
	count(p, outcome);
	state_prov_release(&row);
	zattrs_release(&src);
	zattrs_release(&tgt);
	zattrs_release(&want);
	zattrs_release(&have);
	zattrs_release(&mods);
	zattrs_release(&create);
	strlist_release(&aliases);
	strlist_release(&have_al);
	strlist_release(&add);
	buf_release(&diff);
	free(sid);
	free(tid);
	free(canon);
	free(err);
	free(msg);
	free(target);
	return fatal;
}

enum zmb_rc prov_resources(struct prov *p, const struct strlist *domains)
{
	struct stage_ctx *ctx = p->ctx;
	struct strlist names = STRLIST_INIT;
	char *err = NULL;
	enum zmb_rc rc = ZMB_OK;

	for (size_t d = 0; d < domains->n && rc == ZMB_OK; d++) {
		struct zentry *got = NULL;
		size_t ng = 0;
		if ((rc = zprov_all_resources(p->sh, p->stc, domains->v[d], &got, &ng, &err))) {
			log_error(NULL, "provision: the calendar resources of %s: %s", domains->v[d], err);
			prov_note_failure(p, err);
			break;
		}
		for (size_t i = 0; i < ng; i++)
			if (!strlist_has_ci(&names, got[i].name))
				strlist_add(&names, got[i].name);
		zentries_free(got, ng);
	}
	if (rc)
		goto out;
	if (p->st && names.n) {
		if ((rc = state_begin(p->st)))
			goto out;
		for (size_t i = 0; i < names.n && rc == ZMB_OK; i++) {
			char *t = job_map_account(p->job, names.v[i]);
			rc = state_prov_plan(p->st, ctx->sc->name, "resource", names.v[i], t);
			free(t);
		}
		if (rc || (rc = state_commit(p->st))) {
			state_rollback(p->st);
			rc = ZMB_ESTATE;
			goto out;
		}
	}
	if (names.n)
		stage_out(ctx, "%zu calendar resource(s) to provision", names.n);
	for (size_t i = 0; i < names.n; i++) {
		if (!runctl_may_claim(ctx->ctl)) {
			rc = ZMB_ECANCELED;
			goto out;
		}
		if ((rc = prov_resource(p, names.v[i])))
			goto out;
	}
out:
	strlist_release(&names);
	free(err);
	return rc;
}
