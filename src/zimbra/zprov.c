/*
 * zprov.c - admin SOAP calls of the provision stage (contract in zprov.h).
 */
#include "zprov.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void zattrs_add(struct zattrs *a, const char *n, const char *v)
{
	if (a->n == a->alloc) {
		a->alloc = a->alloc ? a->alloc * 2 : 16;
		a->v = xrealloc(a->v, a->alloc * sizeof *a->v);
	}
	a->v[a->n].n = xstrdup(n);
	a->v[a->n].v = xstrdup(v ? v : "");
	a->n++;
}

void zattrs_release(struct zattrs *a)
{
	for (size_t i = 0; a->v && i < a->n; i++) {
		free(a->v[i].n);
		secret_free(a->v[i].v);
	}
	free(a->v);
	a->v = NULL;
	a->n = a->alloc = 0;
}

void zattrs_del(struct zattrs *a, const char *n)
{
	size_t k = 0;
	for (size_t i = 0; i < a->n; i++) {
		if (!strcasecmp(a->v[i].n, n)) {
			explicit_bzero(a->v[i].v, strlen(a->v[i].v));
			free(a->v[i].n);
			free(a->v[i].v);
			continue;
		}
		a->v[k++] = a->v[i];
	}
	a->n = k;
}

const char *zattrs_get(const struct zattrs *a, const char *n)
{
	for (size_t i = 0; i < a->n; i++)
		if (!strcasecmp(a->v[i].n, n))
			return a->v[i].v;
	return NULL;
}

void zattrs_values(const struct zattrs *a, const char *n, struct strlist *out)
{
	for (size_t i = 0; i < a->n; i++)
		if (!strcasecmp(a->v[i].n, n))
			strlist_add(out, a->v[i].v);
}

/* "x", {"_content":"x"} */
static const char *jtext(json_t *v)
{
	if (json_is_object(v))
		v = json_object_get(v, "_content");
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *jfirst(json_t *v)
{
	return json_is_array(v) ? json_array_get(v, 0) : v;
}

/* The "a" members of an admin object: [{"n":..,"_content":..}] or one object. */
static void read_attrs(json_t *obj, struct zattrs *out)
{
	json_t *a = json_object_get(obj, "a");
	if (json_is_object(a)) {
		const char *n = jtext(json_object_get(a, "n"));
		if (n)
			zattrs_add(out, n, jtext(a));
		return;
	}
	size_t i;
	json_t *it;
	json_array_foreach(a, i, it) {
		const char *n = jtext(json_object_get(it, "n"));
		if (n)
			zattrs_add(out, n, jtext(it));
	}
}

static json_t *attrs_json(const struct zattrs *a)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < a->n; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s}", "n", a->v[i].n, "_content",
						     a->v[i].v));
	return arr;
}

/* A fault named in *err (soap_answer's "fault CODE: ") as our own code. */
static enum zmb_rc fault_map(enum zmb_rc rc, const char *err)
{
	if (rc != ZMB_EPROTO || !err)
		return rc;
	if (strstr(err, "fault account.ACCOUNT_EXISTS:"))
		return ZMB_ECONFLICT;
	if (strstr(err, "fault account.NO_SUCH_COS:"))
		return ZMB_ENOTFOUND;
	if (strstr(err, "fault account.NO_SUCH_DOMAIN:") ||
	    strstr(err, "fault account.NO_SUCH_DISTRIBUTION_LIST:") ||
	    strstr(err, "fault account.NO_SUCH_CALENDAR_RESOURCE:"))
		return ZMB_ENOTFOUND;
	if (strstr(err, "fault account.DISTRIBUTION_LIST_EXISTS:"))
		return ZMB_ECONFLICT;
	if (strstr(err, "fault account.DOMAIN_EXISTS:") ||
	    strstr(err, "fault account.COS_EXISTS:") ||
	    strstr(err, "fault account.SIGNATURE_EXISTS:") ||
	    strstr(err, "fault account.IDENTITY_EXISTS:"))
		return ZMB_ECONFLICT;
	return rc;
}

static const char *answer_id(json_t *obj)
{
	const char *id = obj ? jtext(json_object_get(obj, "id")) : NULL;
	return id && *id ? id : NULL;
}

static enum zmb_rc get_account(struct http *h, struct token_cache *tc, const char *by,
			       const char *name, char **id, char **canon, struct zattrs *attrs,
			       char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:i, s:{s:s, s:s}}", "_jsns", "urn:zimbraAdmin",
				"applyCos", 0, "account", "by", by, "_content", name);
	enum zmb_rc rc = soap_request(h, tc, "GetAccountRequest", req, &resp, err);
	if (rc)
		goto out;
	json_t *acct = jfirst(json_object_get(resp, "account"));
	const char *v = answer_id(acct);
	if (!v) {
		*err = xasprintf("%s: GetAccountRequest: answer for %s has no id", http_label(h), name);
		rc = ZMB_EPROTO;
		goto out;
	}
	*id = xstrdup(v);
	if (canon)
		*canon = xstrdup(jtext(json_object_get(acct, "name")));
	if (attrs)
		read_attrs(acct, attrs);
out:
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

enum zmb_rc zprov_get_account(struct http *h, struct token_cache *tc, const char *name,
			      char **id, char **canon, struct zattrs *attrs, char **err)
{
	return get_account(h, tc, "name", name, id, canon, attrs, err);
}

enum zmb_rc zprov_get_account_by_id(struct http *h, struct token_cache *tc, const char *id,
				    char **name, char **err)
{
	char *got = NULL;
	enum zmb_rc rc = get_account(h, tc, "id", id, &got, name, NULL, err);
	free(got);
	return rc;
}

/* {"_jsns": admin, key: value, "a": [attrs]}: a Create (key "name") or Modify (key "id") request. */
static json_t *attrs_req(const char *key, const char *value, const struct zattrs *attrs)
{
	return json_pack("{s:s, s:s, s:o}", "_jsns", "urn:zimbraAdmin", key, value, "a",
			 attrs_json(attrs));
}

/*
 * Send req (stolen) as reqname.  With elem, the answer's first <elem> must
 * carry an id (*id gets a copy when id is not NULL): the create answers of
 * CreateAccount, CreateCos, CreateDistributionList, CreateCalendarResource
 * (ToXML.encode*); name is only for the message.
 */
static enum zmb_rc send_attrs(struct http *h, struct token_cache *tc, const char *reqname,
			      json_t *req, const char *elem, const char *name, char **id, char **err)
{
	json_t *resp = NULL;
	enum zmb_rc rc = soap_request(h, tc, reqname, req, &resp, err);
	if (rc == ZMB_OK && elem) {
		const char *v = answer_id(jfirst(json_object_get(resp, elem)));
		if (!v) {
			*err = xasprintf("%s: %s: answer for %s has no id", http_label(h), reqname, name);
			rc = ZMB_EPROTO;
		} else if (id) {
			*id = xstrdup(v);
		}
	}
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

enum zmb_rc zprov_create_account(struct http *h, struct token_cache *tc, const char *name,
				 const struct zattrs *attrs, char **id, char **err)
{
	return send_attrs(h, tc, "CreateAccountRequest", attrs_req("name", name, attrs), "account", name,
			  id, err);
}

enum zmb_rc zprov_modify_account(struct http *h, struct token_cache *tc, const char *id,
				 const struct zattrs *attrs, char **err)
{
	return send_attrs(h, tc, "ModifyAccountRequest", attrs_req("id", id, attrs), NULL, id, NULL, err);
}

enum zmb_rc zprov_flush_account(struct http *h, struct token_cache *tc, const char *id,
				char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:{s:s, s:i, s:[{s:s, s:s}]}}", "_jsns", "urn:zimbraAdmin",
				"cache", "type", "account", "allServers", 1, "entry", "by", "id",
				"_content", id);
	enum zmb_rc rc = soap_request(h, tc, "FlushCacheRequest", req, &resp, err);
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

enum zmb_rc zprov_add_alias(struct http *h, struct token_cache *tc, const char *id,
			    const char *alias, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:s, s:s}", "_jsns", "urn:zimbraAdmin", "id", id,
				"alias", alias);
	enum zmb_rc rc = soap_request(h, tc, "AddAccountAliasRequest", req, &resp, err);
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

enum zmb_rc zprov_get_cos(struct http *h, struct token_cache *tc, const char *by,
			  const char *key, char **id, char **name, struct zattrs *attrs, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:{s:s, s:s}}", "_jsns", "urn:zimbraAdmin",
				"cos", "by", by, "_content", key);
	if (!attrs)
		json_object_set_new(req, "attrs", json_string("cn"));
	enum zmb_rc rc = soap_request(h, tc, "GetCosRequest", req, &resp, err);
	if (rc)
		goto out;
	json_t *cos = jfirst(json_object_get(resp, "cos"));
	const char *cid = answer_id(cos);
	const char *cname = cos ? jtext(json_object_get(cos, "name")) : NULL;
	if (!cid || !cname) {
		*err = xasprintf("%s: GetCosRequest: answer for %s has no id or name", http_label(h), key);
		rc = ZMB_EPROTO;
		goto out;
	}
	if (id)
		*id = xstrdup(cid);
	if (name)
		*name = xstrdup(cname);
	if (attrs)
		read_attrs(cos, attrs);
out:
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

/* ---- signatures and identities (zprov.h) ---- */

void zchildren_free(struct zchild *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].id);
		free(v[i].name);
		zattrs_release(&v[i].a);
	}
	free(v);
}

static bool is_signature(const char *kind)
{
	return !strcmp(kind, "signature");
}

/* One <signature> (content[type,_content]) or <identity> (a[name,_content]). */
static void read_child(json_t *e, bool sig, struct zchild *c)
{
	memset(c, 0, sizeof *c);
	c->id = xstrdup(jtext(json_object_get(e, "id")));
	c->name = xstrdup(jtext(json_object_get(e, "name")));
	json_t *list = json_object_get(e, sig ? "content" : "a");
	if (json_is_object(list)) {
		json_t *one = list;
		list = json_array();
		json_array_append(list, one);
	} else {
		json_incref(list);
	}
	size_t i;
	json_t *it;
	json_array_foreach(list, i, it) {
		const char *n = jtext(json_object_get(it, sig ? "type" : "name"));
		if (n)
			zattrs_add(&c->a, n, jtext(it));
	}
	json_decref(list);
}

enum zmb_rc zprov_get_children(struct http *h, struct token_cache *tc, const char *account,
			       const char *kind, struct zchild **out, size_t *n, char **err)
{
	bool sig = is_signature(kind);
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s}", "_jsns", "urn:zimbraAccount");
	enum zmb_rc rc = soap_request_as(h, tc, account, sig ? "GetSignaturesRequest"
							      : "GetIdentitiesRequest",
					 req, &resp, err);
	if (rc)
		return fault_map(rc, *err);
	json_t *list = json_object_get(resp, sig ? "signature" : "identity");
	size_t cnt = json_is_array(list) ? json_array_size(list) : list ? 1 : 0;
	struct zchild *v = xcalloc(cnt ? cnt : 1, sizeof *v);
	size_t k = 0;
	for (size_t i = 0; i < cnt; i++) {
		json_t *e = json_is_array(list) ? json_array_get(list, i) : list;
		if (jtext(json_object_get(e, "id")) && jtext(json_object_get(e, "name")))
			read_child(e, sig, &v[k++]);
	}
	json_decref(resp);
	*out = v;
	*n = k;
	return ZMB_OK;
}

enum zmb_rc zprov_create_child(struct http *h, struct token_cache *tc, const char *account,
			       const char *kind, const struct zchild *c, char **err)
{
	bool sig = is_signature(kind);
	json_t *list = json_array();
	for (size_t i = 0; i < c->a.n; i++)
		json_array_append_new(list, json_pack("{s:s, s:s}", sig ? "type" : "name",
						      c->a.v[i].n, "_content", c->a.v[i].v));
	json_t *e = sig ? json_pack("{s:s, s:s, s:o}", "name", c->name, "id", c->id, "content", list)
			: json_pack("{s:s, s:o}", "name", c->name, "a", list);
	json_t *req = json_pack("{s:s, s:o}", "_jsns", "urn:zimbraAccount", sig ? "signature"
										: "identity", e);
	json_t *resp = NULL;
	enum zmb_rc rc = soap_request_as(h, tc, account, sig ? "CreateSignatureRequest"
							      : "CreateIdentityRequest",
					 req, &resp, err);
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

/* ---- domains (zprov.h) ---- */

enum zmb_rc zprov_get_domain(struct http *h, struct token_cache *tc, const char *name,
			     struct zattrs *attrs, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:i, s:{s:s, s:s}}", "_jsns", "urn:zimbraAdmin",
				"applyConfig", 0, "domain", "by", "name", "_content", name);
	enum zmb_rc rc = soap_request(h, tc, "GetDomainRequest", req, &resp, err);
	if (rc == ZMB_OK)
		read_attrs(jfirst(json_object_get(resp, "domain")), attrs);
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

enum zmb_rc zprov_create_domain(struct http *h, struct token_cache *tc, const char *name,
				const struct zattrs *attrs, char **err)
{
	return send_attrs(h, tc, "CreateDomainRequest", attrs_req("name", name, attrs), NULL, name, NULL,
			  err);
}

enum zmb_rc zprov_create_cos(struct http *h, struct token_cache *tc, const char *name,
			     const struct zattrs *attrs, char **id, char **err)
{
	json_t *req = json_pack("{s:s, s:{s:s}, s:o}", "_jsns", "urn:zimbraAdmin", "name",
				"_content", name, "a", attrs_json(attrs));
	return send_attrs(h, tc, "CreateCosRequest", req, "cos", name, id, err);
}

/* ---- distribution lists (zprov.h) ---- */

void zlist_release(struct zlist *l)
{
	if (!l)
		return;
	free(l->id);
	free(l->name);
	zattrs_release(&l->a);
	strlist_release(&l->members);
	strlist_release(&l->owners);
	memset(l, 0, sizeof *l);
}

void zlists_free(struct zlist *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		zlist_release(&v[i]);
	free(v);
}

static bool jtrue(json_t *v)
{
	const char *s = jtext(v);
	return json_is_true(v) || (s && (!strcmp(s, "1") || !strcasecmp(s, "true")));
}

/* One <dl> of an answer; false without a name or an id. */
static bool read_list(json_t *e, struct zlist *l)
{
	const char *id = answer_id(e), *name = e ? jtext(json_object_get(e, "name")) : NULL;
	memset(l, 0, sizeof *l);
	if (!id || !name)
		return false;
	l->id = xstrdup(id);
	l->name = xstrlower(name);
	l->dynamic = jtrue(json_object_get(e, "dynamic"));
	read_attrs(e, &l->a);
	/* GetDistributionList.encodeOwners 217-235: <owners><owner type id name/></owners> */
	json_t *ow = json_object_get(jfirst(json_object_get(e, "owners")), "owner"), *o;
	size_t k;
	if (json_is_object(ow) && jtext(json_object_get(ow, "name")))
		strlist_add(&l->owners, jtext(json_object_get(ow, "name")));
	json_array_foreach(ow, k, o)
		if (jtext(json_object_get(o, "name")))
			strlist_add(&l->owners, jtext(json_object_get(o, "name")));
	json_t *m = json_object_get(e, "dlm");
	if (m && !json_is_array(m)) {
		const char *t = jtext(m);
		if (t && *t)
			strlist_add_nodup(&l->members, xstrlower(t));
		return true;
	}
	size_t i;
	json_t *it;
	json_array_foreach(m, i, it) {
		const char *t = jtext(it);
		if (t && *t && !strlist_has_ci(&l->members, t))
			strlist_add_nodup(&l->members, xstrlower(t));
	}
	return true;
}

enum zmb_rc zprov_all_lists(struct http *h, struct token_cache *tc, const char *domain,
			    struct zlist **out, size_t *n, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:{s:s, s:s}}", "_jsns", "urn:zimbraAdmin", "domain", "by",
				"name", "_content", domain);
	enum zmb_rc rc = soap_request(h, tc, "GetAllDistributionListsRequest", req, &resp, err);
	if (rc)
		goto out;
	json_t *dl = json_object_get(resp, "dl");
	size_t cnt = json_is_array(dl) ? json_array_size(dl) : dl ? 1 : 0;
	struct zlist *v = cnt ? xcalloc(cnt, sizeof *v) : NULL;
	for (size_t i = 0; i < cnt; i++) {
		if (!read_list(json_is_array(dl) ? json_array_get(dl, i) : dl, &v[i])) {
			*err = xasprintf("%s: GetAllDistributionListsRequest %s: a list without a name "
					 "or an id", http_label(h), domain);
			zlists_free(v, cnt);
			rc = ZMB_EPROTO;
			goto out;
		}
	}
	*out = v;
	*n = cnt;
out:
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

enum zmb_rc zprov_get_list(struct http *h, struct token_cache *tc, const char *name,
			   struct zlist *out, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:i, s:{s:s, s:s}}", "_jsns", "urn:zimbraAdmin", "limit", 0,
				"dl", "by", "name", "_content", name);
	enum zmb_rc rc = soap_request(h, tc, "GetDistributionListRequest", req, &resp, err);
	if (rc == ZMB_OK && !read_list(jfirst(json_object_get(resp, "dl")), out)) {
		*err = xasprintf("%s: GetDistributionListRequest: answer for %s has no name or id",
				 http_label(h), name);
		rc = ZMB_EPROTO;
	}
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

enum zmb_rc zprov_create_list(struct http *h, struct token_cache *tc, const char *name,
			      const struct zattrs *attrs, char **id, char **err)
{
	return send_attrs(h, tc, "CreateDistributionListRequest", attrs_req("name", name, attrs), "dl",
			  name, id, err);
}

enum zmb_rc zprov_modify_list(struct http *h, struct token_cache *tc, const char *id,
			      const struct zattrs *attrs, char **err)
{
	return send_attrs(h, tc, "ModifyDistributionListRequest", attrs_req("id", id, attrs), NULL, id,
			  NULL, err);
}

enum zmb_rc zprov_add_list_members(struct http *h, struct token_cache *tc, const char *id,
				   const struct strlist *members, char **err)
{
	json_t *resp = NULL, *dlm = json_array();
	for (size_t i = 0; i < members->n; i++)
		json_array_append_new(dlm, json_pack("{s:s}", "_content", members->v[i]));
	json_t *req = json_pack("{s:s, s:s, s:o}", "_jsns", "urn:zimbraAdmin", "id", id, "dlm", dlm);
	enum zmb_rc rc = soap_request(h, tc, "AddDistributionListMemberRequest", req, &resp, err);
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

enum zmb_rc zprov_add_list_alias(struct http *h, struct token_cache *tc, const char *id,
				 const char *alias, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:s, s:s}", "_jsns", "urn:zimbraAdmin", "id", id,
				"alias", alias);
	enum zmb_rc rc = soap_request(h, tc, "AddDistributionListAliasRequest", req, &resp, err);
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

/*
 * The owners of a list are the users granted the user right ownDistList on it
 * (store-conf/conf/rights/zimbra-user-rights.xml 57: userRight, targetType dl;
 * GetDistributionList.encodeOwners 217-235 lists them from the grants).  The admin
 * call: GrantRightRequest (service/admin/GrantRight.java 45-77 ->
 * RightCommand.grantRightInternal 1384-1431): target <target type=dl by=id>, grantee
 * <grantee type=usr by=name> (GranteeType.lookupGrantee 147-157: not found ->
 * account.NO_SUCH_ACCOUNT), <right>ownDistList</right>; it works with an admin token,
 * unlike DistributionListActionRequest op=addOwners (urn:zimbraAccount,
 * service/account/DistributionListAction.java 110-114: the authenticated account
 * must own the list already, else PERM_DENIED).  Idempotent: ACLUtil.grantRight 131-156
 * -> ZimbraACL.grant 155-185 leaves an ACE of the same grantee, right and modifier as
 * it is (returns false), and GrantRight answers an empty response (75), no fault.
 */
enum zmb_rc zprov_grant_list_owner(struct http *h, struct token_cache *tc, const char *id,
				   const char *owner, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}, s:{s:s}}",
				"_jsns", "urn:zimbraAdmin",
				"target", "type", "dl", "by", "id", "_content", id,
				"grantee", "type", "usr", "by", "name", "_content", owner,
				"right", "_content", "ownDistList");
	enum zmb_rc rc = soap_request(h, tc, "GrantRightRequest", req, &resp, err);
	json_decref(resp);
	if (rc == ZMB_EPROTO && *err && strstr(*err, "fault account.NO_SUCH_ACCOUNT:"))
		return ZMB_ENOTFOUND;
	return fault_map(rc, rc ? *err : NULL);
}

/* ---- calendar resources (zprov.h) ---- */

void zentries_free(struct zentry *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].id);
		free(v[i].name);
	}
	free(v);
}

enum zmb_rc zprov_all_resources(struct http *h, struct token_cache *tc, const char *domain,
				struct zentry **out, size_t *n, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:{s:s, s:s}}", "_jsns", "urn:zimbraAdmin", "domain", "by",
				"name", "_content", domain);
	enum zmb_rc rc = soap_request(h, tc, "GetAllCalendarResourcesRequest", req, &resp, err);
	if (rc)
		goto out;
	json_t *cr = json_object_get(resp, "calresource");
	size_t cnt = json_is_array(cr) ? json_array_size(cr) : cr ? 1 : 0;
	struct zentry *v = cnt ? xcalloc(cnt, sizeof *v) : NULL;
	for (size_t i = 0; i < cnt; i++) {
		json_t *e = json_is_array(cr) ? json_array_get(cr, i) : cr;
		const char *id = answer_id(e), *name = jtext(json_object_get(e, "name"));
		if (!id || !name) {
			*err = xasprintf("%s: GetAllCalendarResourcesRequest %s: a resource without a "
					 "name or an id", http_label(h), domain);
			zentries_free(v, cnt);
			rc = ZMB_EPROTO;
			goto out;
		}
		v[i].id = xstrdup(id);
		v[i].name = xstrlower(name);
	}
	*out = v;
	*n = cnt;
out:
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

enum zmb_rc zprov_get_resource(struct http *h, struct token_cache *tc, const char *name,
			       char **id, char **canon, struct zattrs *attrs, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:i, s:{s:s, s:s}}", "_jsns", "urn:zimbraAdmin",
				"applyCos", 0, "calresource", "by", "name", "_content", name);
	enum zmb_rc rc = soap_request(h, tc, "GetCalendarResourceRequest", req, &resp, err);
	if (rc)
		goto out;
	json_t *e = jfirst(json_object_get(resp, "calresource"));
	const char *v = answer_id(e);
	if (!v) {
		*err = xasprintf("%s: GetCalendarResourceRequest: answer for %s has no id",
				 http_label(h), name);
		rc = ZMB_EPROTO;
		goto out;
	}
	*id = xstrdup(v);
	if (canon)
		*canon = xstrdup(jtext(json_object_get(e, "name")));
	if (attrs)
		read_attrs(e, attrs);
out:
	json_decref(resp);
	return fault_map(rc, rc ? *err : NULL);
}

enum zmb_rc zprov_create_resource(struct http *h, struct token_cache *tc, const char *name,
				  const struct zattrs *attrs, char **id, char **err)
{
	return send_attrs(h, tc, "CreateCalendarResourceRequest", attrs_req("name", name, attrs),
			  "calresource", name, id, err);
}

enum zmb_rc zprov_modify_resource(struct http *h, struct token_cache *tc, const char *id,
				  const struct zattrs *attrs, char **err)
{
	return send_attrs(h, tc, "ModifyCalendarResourceRequest", attrs_req("id", id, attrs), NULL, id,
			  NULL, err);
}
