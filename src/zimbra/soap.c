/*
 * soap.c - Zimbra admin SOAP in its JSON form (jansson builds and parses).
 */
#include "soap.h"
#include "log.h"

#include <jansson.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define SOAP_PATH "/service/admin/soap"
#define SOAP_CAP ((size_t)64 << 20)
#define PAGE 500
#define MAX_RESULTS 1000000000LL

/* A JSON value holding a string: "x", {"_content":"x"}, [{"_content":"x"}], 12. */
static const char *jstr(json_t *v)
{
	if (json_is_array(v))
		v = json_array_get(v, 0);
	if (json_is_object(v))
		v = json_object_get(v, "_content");
	if (json_is_string(v))
		return json_string_value(v);
	return NULL;
}

static bool jnum(json_t *v, long long *out)
{
	if (json_is_array(v))
		v = json_array_get(v, 0);
	if (json_is_object(v))
		v = json_object_get(v, "_content");
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!(d > -9.2e18 && d < 9.2e18))   /* the cast would be undefined */
			return false;
		*out = (long long)d;
		return true;
	}
	if (json_is_string(v))
		return parse_ll(json_string_value(v), out) == 0;
	return false;
}

static bool jtrue(json_t *v)
{
	if (json_is_array(v))
		v = json_array_get(v, 0);
	if (json_is_object(v))
		v = json_object_get(v, "_content");
	if (json_is_true(v))
		return true;
	if (json_is_integer(v))
		return json_integer_value(v) != 0;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		return streq_ci(s, "true") || streq(s, "1");
	}
	return false;
}

/* First element of a non-unique element (array) or the element itself. */
static json_t *jfirst(json_t *v)
{
	return json_is_array(v) ? json_array_get(v, 0) : v;
}

static enum zmb_rc fault_rc(const char *code, bool is_auth)
{
	if (!code)
		return ZMB_EPROTO;
	if (!strcmp(code, "service.AUTH_EXPIRED") || !strcmp(code, "service.AUTH_REQUIRED"))
		return is_auth ? ZMB_EAUTH : ZMB_EAUTHEXP;
	if (!strcmp(code, "account.AUTH_FAILED"))
		return ZMB_EAUTH;
	if (!strcmp(code, "service.PERM_DENIED"))
		return is_auth ? ZMB_EAUTH : ZMB_EPROTO;
	if (!strcmp(code, "account.NO_SUCH_ACCOUNT"))
		return ZMB_ENOACCOUNT;
	/*
	 * Zimbra's catch-all server-side error ("system failure: ..." from an
	 * LDAP or database hiccup) is a Receiver fault: retried with backoff,
	 * not a permanent failure of the account.
	 */
	if (!strcmp(code, "service.TEMPORARILY_UNAVAILABLE") || !strcmp(code, "service.FAILURE"))
		return ZMB_ETEMP;
	return ZMB_EPROTO;
}

/*
 * Judge one answer to `req` (HTTP status + body) and return the Body member
 * <resp> (a new reference in *out).  No I/O: also the entry for fuzzing.
 */
static enum zmb_rc soap_answer(const char *label, const char *req, long status, const char *data,
			       size_t len, json_t **out, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	json_t *root = NULL;
	char *e = NULL;
	bool is_auth = !strcmp(req, "AuthRequest");

	json_error_t jerr;
	root = json_loadb(data, len, 0, &jerr);
	json_t *body = root ? json_object_get(root, "Body") : NULL;
	json_t *fault = body ? json_object_get(body, "Fault") : NULL;
	if (fault) {
		json_t *detail = json_object_get(fault, "Detail");
		json_t *error = detail ? json_object_get(detail, "Error") : NULL;
		const char *code = error ? jstr(json_object_get(error, "Code")) : NULL;
		json_t *reason = json_object_get(fault, "Reason");
		const char *text_r = reason ? jstr(json_object_get(reason, "Text")) : NULL;
		rc = status == 503 || status == 429 ? ZMB_EBUSY : fault_rc(code, is_auth);
		e = zlog_redact(text_r ? text_r : "");
		*err = xasprintf("%s: %s: fault %s: %s", label, req, code ? code : "(no code)", e);
		goto out;
	}
	if (status == 503 || status == 429) {
		*err = xasprintf("%s: %s: http %ld (%s)", label, req, status,
				 status == 503 ? "server busy" : "throttled: too many requests");
		rc = ZMB_EBUSY;
		goto out;
	}
	if (status >= 500) {
		*err = xasprintf("%s: %s: http %ld", label, req, status);
		rc = ZMB_ETEMP;
		goto out;
	}
	if (status == 401) {
		*err = xasprintf("%s: %s: http 401", label, req);
		rc = is_auth ? ZMB_EAUTH : ZMB_EAUTHEXP;
		goto out;
	}
	if (status != 200) {
		*err = xasprintf("%s: %s: unexpected http %ld", label, req, status);
		rc = ZMB_EPROTO;
		goto out;
	}
	if (!body) {
		*err = xasprintf("%s: %s: bad JSON answer%s%s", label, req,
				 root ? "" : ": ", root ? "" : jerr.text);
		rc = ZMB_EPROTO;
		goto out;
	}
	/* FooRequest -> FooResponse */
	size_t rl = strlen(req);
	char *rname = xasprintf("%.*sResponse", (int)(rl > 7 ? rl - 7 : rl), req);
	json_t *r = json_object_get(body, rname);
	if (!r) {
		*err = xasprintf("%s: %s: answer has no %s", label, req, rname);
		rc = ZMB_EPROTO;
	} else {
		*out = json_incref(r);
	}
	free(rname);
out:
	free(e);
	json_decref(root);
	return rc;
}

/*
 * Send one envelope {"Header":{"context":...},"Body":{<req>:...}} and return
 * the Body member <resp> (a new reference in *out).  token may be NULL.
 * The envelope text may contain the password: it is wiped after sending.
 */
static enum zmb_rc soap_exchange(struct http *h, const char *req, json_t *req_body,
				 const char *token, const char *as_account, json_t **out, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	struct buf resp = BUF_INIT;
	json_t *env = NULL;
	char *text = NULL;
	long status = 0;

	json_t *ctx = json_pack("{s:s, s:{s:s}}", "_jsns", "urn:zimbra", "format", "type", "js");
	if (token)
		json_object_set_new(ctx, "authToken", json_pack("{s:s}", "_content", token));
	/* act on this account's mailbox: ZimbraSoapContext (zm-mailbox store/src/java/com/
	 * zimbra/soap/ZimbraSoapContext.java 340-385, validateDelegatedAccess 515-550) lets
	 * an admin token with rights on the account use its mail SOAP this way */
	if (as_account)
		json_object_set_new(ctx, "account", json_pack("{s:s, s:s}", "by", "name", "_content",
							      as_account));
	env = json_pack("{s:{s:o}, s:{s:O}}", "Header", "context", ctx, "Body", req, req_body);
	if (!env) {
		*err = xasprintf("%s: %s: cannot build request", http_label(h), req);
		rc = ZMB_EINTERNAL;
		goto out;
	}
	text = json_dumps(env, JSON_COMPACT);
	if (!text)
		abort();
	for (;;) {
		if ((rc = http_gate(h, err)))
			goto out;
		rc = http_post_small(h, SOAP_PATH, "application/json; charset=utf-8", text, strlen(text),
				     SOAP_CAP, &status, &resp, req, err);
		if (!http_gate_done(h, rc ? 0 : status))
			break;
		/* throttled (429/503): sent again once the server's pause is over */
	}
	if (rc)
		goto out;

	rc = soap_answer(http_label(h), req, status, resp.s, resp.len, out, err);
out:
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	if (resp.s)
		explicit_bzero(resp.s, resp.len);   /* AuthResponse holds a token */
	buf_release(&resp);
	json_decref(env);
	return rc;
}

/* Authenticated call with one retry after AUTH_EXPIRED/AUTH_REQUIRED. */
static enum zmb_rc soap_call_as(struct http *h, struct token_cache *tc, const char *as_account,
				const char *req, json_t *req_body, json_t **out, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		char *tok = NULL;
		rc = token_get(tc, h, &tok, err);
		if (rc)
			break;
		rc = soap_exchange(h, req, req_body, tok, as_account, out, err);
		if (rc == ZMB_EAUTHEXP && attempt == 0) {
			token_invalidate(tc, tok);
			secret_free(tok);
			free(*err);
			*err = NULL;
			continue;
		}
		secret_free(tok);
		break;
	}
	json_decref(req_body);
	return rc;
}

static enum zmb_rc soap_call(struct http *h, struct token_cache *tc, const char *req,
			     json_t *req_body, json_t **out, char **err)
{
	return soap_call_as(h, tc, NULL, req, req_body, out, err);
}

enum zmb_rc soap_request(struct http *h, struct token_cache *tc, const char *req,
			 json_t *req_body, json_t **out, char **err)
{
	return soap_call(h, tc, req, req_body, out, err);
}

enum zmb_rc soap_request_as(struct http *h, struct token_cache *tc, const char *account,
			    const char *req, json_t *req_body, json_t **out, char **err)
{
	return soap_call_as(h, tc, account, req, req_body, out, err);
}

static enum zmb_rc auth_answer(const char *label, json_t *resp, char **token,
			       long long *lifetime_ms, char **err)
{
	const char *tok = jstr(json_object_get(resp, "authToken"));
	long long life = 0;
	if (!tok || !*tok || !jnum(json_object_get(resp, "lifetime"), &life) || life <= 0) {
		*err = xasprintf("%s: AuthRequest: answer without authToken or lifetime", label);
		return ZMB_EPROTO;
	}
	*token = xstrdup(tok);
	*lifetime_ms = life;
	return ZMB_OK;
}

enum zmb_rc soap_auth(struct http *h, char **token, long long *lifetime_ms, char **err)
{
	const struct server *srv = http_server(h);
	json_t *resp = NULL;
	enum zmb_rc rc;

	json_t *req = json_pack("{s:s, s:s, s:s}", "_jsns", "urn:zimbraAdmin", "name",
				srv->admin_user ? srv->admin_user : "", "password",
				srv->password ? srv->password : "");
	rc = soap_exchange(h, "AuthRequest", req, NULL, NULL, &resp, err);
	json_decref(req);
	if (rc)
		goto out;
	rc = auth_answer(http_label(h), resp, token, lifetime_ms, err);
	if (!rc)
		zlog_add_secret(*token);
out:
	json_decref(resp);
	return rc;
}

struct token_cache *token_cache_new(const struct server *srv, long long refresh_margin_s,
				    struct run_ctl *ctl)
{
	return token_cache_new_login(srv, refresh_margin_s, ctl, soap_auth);
}

void zaccounts_free(struct zaccount *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].id);
		free(v[i].mailhost);
		free(v[i].status);
	}
	free(v);
}

/* Value of <a n="name"> in an admin object's "a" array. */
static const char *attr_of(json_t *obj, const char *name)
{
	json_t *a = json_object_get(obj, "a");
	if (json_is_object(a)) {
		const char *n = jstr(json_object_get(a, "n"));
		return streq(n, name) ? jstr(a) : NULL;
	}
	size_t i;
	json_t *it;
	json_array_foreach(a, i, it) {
		const char *n = jstr(json_object_get(it, "n"));
		if (streq(n, name))
			return jstr(it);
	}
	return NULL;
}

/*
 * zimbraAccountStatus as a short lower-case word (zimbra-attrs.xml 356-371:
 * active, maintenance, locked, closed, lockout, pending); anything longer or
 * with other characters is kept as "other", a missing one is NULL.
 */
static char *status_word(const char *v)
{
	if (!v)
		return NULL;
	size_t n = strlen(v);
	bool ok = n > 0 && n <= 20;
	for (size_t i = 0; ok && i < n; i++)
		ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z');
	return ok ? xstrlower(v) : xstrdup("other");
}

/*
 * Append the accounts of one SearchDirectoryResponse page to *v (*cnt used of
 * *alloc); *page = entries on the page.  Returns the page's "more" flag.
 */
static bool search_page(json_t *resp, struct zaccount **v, size_t *cnt, size_t *alloc, size_t *page)
{
	json_t *accts = json_object_get(resp, "account");
	if (json_is_object(accts)) {
		json_t *arr = json_array();
		json_array_append(arr, accts);
		accts = arr;
	} else {
		json_incref(accts);
	}
	size_t i;
	json_t *a;
	json_array_foreach(accts, i, a) {
		(*page)++;
		const char *name = jstr(json_object_get(a, "name"));
		const char *id = jstr(json_object_get(a, "id"));
		if (!id)
			id = attr_of(a, "zimbraId");
		if (!name || !id)
			continue;
		const char *sys = attr_of(a, "zimbraIsSystemAccount");
		const char *res = attr_of(a, "zimbraIsSystemResource");
		if (streq_ci(sys, "TRUE") || streq_ci(res, "TRUE"))
			continue;
		if (*cnt == *alloc) {
			*alloc = *alloc ? *alloc * 2 : 64;
			*v = xrealloc(*v, *alloc * sizeof(**v));
		}
		(*v)[*cnt].name = xstrdup(name);
		(*v)[*cnt].id = xstrdup(id);
		(*v)[*cnt].mailhost = xstrdup(attr_of(a, "zimbraMailHost"));
		(*v)[*cnt].status = status_word(attr_of(a, "zimbraAccountStatus"));
		(*cnt)++;
	}
	json_decref(accts);
	return jtrue(json_object_get(resp, "more"));
}

enum zmb_rc soap_list_accounts(struct http *h, struct token_cache *tc, const char *domain,
			       struct zaccount **out, size_t *n, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	struct zaccount *v = NULL;
	size_t cnt = 0, alloc = 0;
	long long offset = 0;

	for (;;) {
		json_t *resp = NULL;
		json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:s}",
					"_jsns", "urn:zimbraAdmin", "domain", domain, "types", "accounts",
					"attrs", "zimbraId,zimbraIsSystemAccount,zimbraIsSystemResource,zimbraMailHost,"
					"zimbraAccountStatus",
					"limit", (json_int_t)PAGE, "offset", (json_int_t)offset,
					"maxResults", (json_int_t)MAX_RESULTS, "applyCos", 0,
					"sortBy", "name");
		rc = soap_call(h, tc, "SearchDirectoryRequest", req, &resp, err);
		if (rc) {
			if (*err && strstr(*err, "account.TOO_MANY_SEARCH_RESULTS")) {
				char *e = xasprintf("%s (domain %s has more accounts than the server lets one "
						    "search return: raise zimbra_directory_max_search_result "
						    "with zmlocalconfig, or list the accounts in accounts_file)",
						    *err, domain);
				free(*err);
				*err = e;
			} else if (rc == ZMB_ENOACCOUNT) {
				rc = ZMB_EPROTO;
			}
			goto out;
		}
		size_t page = 0;
		bool more = search_page(resp, &v, &cnt, &alloc, &page);
		json_decref(resp);
		if (!more || page == 0)
			break;
		offset += (long long)page;
	}
	*out = v;
	*n = cnt;
	v = NULL;
	cnt = 0;
out:
	zaccounts_free(v, cnt);
	return rc;
}

static enum zmb_rc account_answer(const char *label, const char *name, json_t *resp, char **id,
				  char **status, char **mailhost, char **err)
{
	json_t *acct = jfirst(json_object_get(resp, "account"));
	const char *v = acct ? jstr(json_object_get(acct, "id")) : NULL;
	if (!v && acct)
		v = attr_of(acct, "zimbraId");
	if (!v) {
		*err = xasprintf("%s: GetAccountRequest: answer for %s has no id", label, name);
		return ZMB_EPROTO;
	}
	*id = xstrdup(v);
	if (status)
		*status = status_word(attr_of(acct, "zimbraAccountStatus"));
	if (mailhost) {
		const char *mh = attr_of(acct, "zimbraMailHost");
		*mailhost = mh && *mh ? xstrdup(mh) : NULL;
	}
	return ZMB_OK;
}

/* GetAccountRequest asking zimbraId, plus zimbraAccountStatus / zimbraMailHost when wanted. */
static enum zmb_rc get_account(struct http *h, struct token_cache *tc, const char *name,
			       char **id, char **status, char **mailhost, char **err)
{
	json_t *resp = NULL;
	char attrs[96];
	snprintf(attrs, sizeof attrs, "zimbraId%s%s", status ? ",zimbraAccountStatus" : "",
		 mailhost ? ",zimbraMailHost" : "");
	json_t *req = json_pack("{s:s, s:i, s:s, s:{s:s, s:s}}", "_jsns", "urn:zimbraAdmin",
				"applyCos", 0, "attrs", attrs, "account", "by", "name", "_content", name);
	enum zmb_rc rc = soap_call(h, tc, "GetAccountRequest", req, &resp, err);
	if (rc)
		goto out;
	rc = account_answer(http_label(h), name, resp, id, status, mailhost, err);
out:
	json_decref(resp);
	return rc;
}

enum zmb_rc soap_get_account(struct http *h, struct token_cache *tc, const char *name,
			     char **id, char **err)
{
	return get_account(h, tc, name, id, NULL, NULL, err);
}

enum zmb_rc soap_get_account_attrs(struct http *h, struct token_cache *tc, const char *name,
				   const char *const *attrs, size_t n, char **id, char **values,
				   char **err)
{
	json_t *resp = NULL;
	struct buf want = BUF_INIT;
	buf_adds(&want, "zimbraId");
	for (size_t i = 0; i < n; i++)
		buf_addf(&want, ",%s", attrs[i]);
	json_t *req = json_pack("{s:s, s:i, s:s, s:{s:s, s:s}}", "_jsns", "urn:zimbraAdmin",
				"applyCos", 0, "attrs", want.s, "account", "by", "name", "_content", name);
	buf_release(&want);
	enum zmb_rc rc = soap_call(h, tc, "GetAccountRequest", req, &resp, err);
	char *zid = NULL;
	if (rc == ZMB_OK)
		rc = account_answer(http_label(h), name, resp, &zid, NULL, NULL, err);
	if (rc == ZMB_OK) {
		json_t *acct = jfirst(json_object_get(resp, "account"));
		for (size_t i = 0; i < n; i++) {
			const char *v = attr_of(acct, attrs[i]);
			values[i] = xstrdup(v ? v : "");
		}
		*id = zid;
	}
	json_decref(resp);
	return rc;
}

enum zmb_rc soap_get_account_status(struct http *h, struct token_cache *tc, const char *name,
				    char **id, char **status, char **err)
{
	return get_account(h, tc, name, id, status, NULL, err);
}

enum zmb_rc soap_get_account_home(struct http *h, struct token_cache *tc, const char *name,
				  char **id, char **mailhost, char **err)
{
	return get_account(h, tc, name, id, NULL, mailhost, err);
}

/*
 * GetVersionInfoRequest (admin): info.type/version/release/platform.  The
 * product is "carbonio" when any of them names Carbonio (an inference: the
 * shape of Carbonio's answer is not settled by its source read for issue
 * 13), else "zimbra".
 */
enum zmb_rc soap_version_info(struct http *h, struct token_cache *tc, char **product,
			      char **version, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s}", "_jsns", "urn:zimbraAdmin");
	enum zmb_rc rc = soap_call(h, tc, "GetVersionInfoRequest", req, &resp, err);
	if (rc)
		goto out;
	json_t *info = jfirst(json_object_get(resp, "info"));
	const char *fields[] = { "type", "version", "release", "platform" };
	bool carbonio = false;
	for (size_t i = 0; info && i < sizeof fields / sizeof *fields; i++) {
		const char *v = jstr(json_object_get(info, fields[i]));
		char *low = v ? xstrlower(v) : NULL;
		if (low && strstr(low, "carbonio"))
			carbonio = true;
		free(low);
	}
	const char *ver = info ? jstr(json_object_get(info, "version")) : NULL;
	*product = xstrdup(carbonio ? "carbonio" : "zimbra");
	*version = ver ? xstrndup(ver, 80) : NULL;
out:
	json_decref(resp);
	return rc;
}

enum zmb_rc soap_get_server(struct http *h, struct token_cache *tc, const char *name,
			    char **host, int *port, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:i, s:s, s:{s:s, s:s}}", "_jsns", "urn:zimbraAdmin",
				"applyConfig", 1, "attrs", "zimbraServiceHostname,zimbraAdminPort",
				"server", "by", "name", "_content", name);
	enum zmb_rc rc = soap_call(h, tc, "GetServerRequest", req, &resp, err);
	if (rc)
		goto out;
	json_t *srv = jfirst(json_object_get(resp, "server"));
	const char *hn = srv ? attr_of(srv, "zimbraServiceHostname") : NULL;
	const char *ps = srv ? attr_of(srv, "zimbraAdminPort") : NULL;
	long long p = 7071;   /* zimbra-attrs.xml: zimbraAdminPort defaults to 7071 */
	if (!hn || !*hn || (ps && (parse_ll(ps, &p) || p < 1 || p > 65535))) {
		*err = xasprintf("%s: GetServerRequest: answer for %s has no zimbraServiceHostname "
				 "or a bad zimbraAdminPort", http_label(h), name);
		rc = ZMB_EPROTO;
		goto out;
	}
	*host = xstrdup(hn);
	*port = (int)p;
out:
	json_decref(resp);
	return rc;
}

enum zmb_rc soap_get_server_lmtp_port(struct http *h, struct token_cache *tc, const char *name,
				      int *port, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:i, s:s, s:{s:s, s:s}}", "_jsns", "urn:zimbraAdmin",
				"applyConfig", 1, "attrs", "zimbraLmtpBindPort",
				"server", "by", "name", "_content", name);
	*port = 0;
	enum zmb_rc rc = soap_call(h, tc, "GetServerRequest", req, &resp, err);
	if (rc)
		goto out;
	json_t *srv = jfirst(json_object_get(resp, "server"));
	const char *ps = srv ? attr_of(srv, "zimbraLmtpBindPort") : NULL;
	long long p = 0;
	if (ps && *ps) {
		if (parse_ll(ps, &p) || p < 1 || p > 65535) {
			*err = xasprintf("%s: GetServerRequest: %s has a bad zimbraLmtpBindPort '%s'",
					 http_label(h), name, ps);
			rc = ZMB_EPROTO;
			goto out;
		}
		*port = (int)p;
	}
out:
	json_decref(resp);
	return rc;
}

enum zmb_rc soap_mailbox_servers(struct http *h, struct token_cache *tc, struct strlist *names,
				 char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:s, s:i}", "_jsns", "urn:zimbraAdmin", "service", "mailbox",
				"applyConfig", 0);
	enum zmb_rc rc = soap_call(h, tc, "GetAllServersRequest", req, &resp, err);
	if (rc)
		goto out;
	json_t *v = json_object_get(resp, "server");
	if (json_is_object(v)) {
		const char *n = jstr(json_object_get(v, "name"));
		if (n && *n)
			strlist_add(names, n);
	}
	size_t i;
	json_t *it;
	json_array_foreach(v, i, it) {
		const char *n = jstr(json_object_get(it, "name"));
		if (n && *n)
			strlist_add(names, n);
	}
out:
	json_decref(resp);
	return rc;
}

enum zmb_rc soap_noop(struct http *h, struct token_cache *tc, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s}", "_jsns", "urn:zimbraAdmin");
	enum zmb_rc rc = soap_call(h, tc, "NoOpRequest", req, &resp, err);
	json_decref(resp);
	return rc;
}

static enum zmb_rc mailbox_answer(const char *label, const char *id, json_t *resp,
				  long long *bytes, char **err)
{
	json_t *mbox = jfirst(json_object_get(resp, "mbox"));
	long long s = 0;
	if (!mbox || !jnum(json_object_get(mbox, "s"), &s) || s < 0) {
		*err = xasprintf("%s: GetMailboxRequest: answer for %s has no size", label, id);
		return ZMB_EPROTO;
	}
	*bytes = s;
	return ZMB_OK;
}

enum zmb_rc soap_mailbox_size(struct http *h, struct token_cache *tc, const char *id,
			      long long *bytes, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:{s:s}}", "_jsns", "urn:zimbraAdmin", "mbox", "id", id);
	enum zmb_rc rc = soap_call(h, tc, "GetMailboxRequest", req, &resp, err);
	if (rc)
		goto out;
	rc = mailbox_answer(http_label(h), id, resp, bytes, err);
out:
	json_decref(resp);
	return rc;
}

enum zmb_rc soap_modify_account(struct http *h, struct token_cache *tc, const char *id,
				const char *attr, const char *value, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "_jsns", "urn:zimbraAdmin", "id", id,
				"a", "n", attr, "_content", value ? value : "");
	enum zmb_rc rc = soap_call(h, tc, "ModifyAccountRequest", req, &resp, err);
	json_decref(resp);
	return rc;
}

/* ---- GetQuotaUsageRequest: the sizes of a domain's mailboxes, a page at a time ---- */

void zquotas_free(struct zquota *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].id);
	}
	free(v);
}

/*
 * The accounts of one GetQuotaUsageResponse (<account name id used limit/>,
 * more, searchTotal).  An entry without a name or a usable `used` is left
 * out: its account is then sized some other way.  No account at all is a
 * valid answer (an empty page).
 */
static void quota_answer(json_t *resp, struct zquota **out, size_t *n, bool *more, long long *total)
{
	json_t *accts = json_object_get(resp, "account");
	size_t cnt = json_is_array(accts) ? json_array_size(accts) : json_is_object(accts) ? 1 : 0;
	struct zquota *v = xcalloc(cnt ? cnt : 1, sizeof *v);
	size_t k = 0;
	for (size_t i = 0; i < cnt; i++) {
		json_t *a = json_is_array(accts) ? json_array_get(accts, i) : accts;
		const char *name = jstr(json_object_get(a, "name"));
		long long used = -1, limit = 0;
		if (!name || !*name || !jnum(json_object_get(a, "used"), &used) || used < 0)
			continue;
		if (!jnum(json_object_get(a, "limit"), &limit) || limit < 0)
			limit = 0;
		v[k].name = xstrdup(name);
		v[k].id = xstrdup(jstr(json_object_get(a, "id")));
		v[k].used = used;
		v[k].limit = limit;
		k++;
	}
	long long t = -1;
	if (!jnum(json_object_get(resp, "searchTotal"), &t) || t < 0)
		t = -1;
	*out = v;
	*n = k;
	*more = jtrue(json_object_get(resp, "more"));
	*total = t;
}

enum zmb_rc soap_quota_usage(struct http *h, struct token_cache *tc, const char *domain,
			     long long offset, long long limit, struct zquota **out, size_t *n,
			     bool *more, long long *total, char **err)
{
	json_t *resp = NULL;
	/* real: zm-mailbox service/admin/GetQuotaUsage.java handle() reads these attributes */
	json_t *req = json_pack("{s:s, s:s, s:i, s:s, s:i, s:I, s:I}", "_jsns", "urn:zimbraAdmin",
				"domain", domain, "allServers", 1, "sortBy", "totalUsed",
				"sortAscending", 0, "offset", (json_int_t)offset, "limit",
				(json_int_t)limit);
	enum zmb_rc rc = soap_call(h, tc, "GetQuotaUsageRequest", req, &resp, err);
	if (rc == ZMB_OK)
		quota_answer(resp, out, n, more, total);
	json_decref(resp);
	return rc;
}

/* ---- an account's mailbox, through mail SOAP acting as the account ---- */

/*
 * An item id as the server gives it, as the digits to send in list=: an
 * admin acting on an account gets ids qualified with that account's zimbraId
 * ("<zimbraId>:<id>": ToXML's ItemIdFormatter qualifies every id whose
 * mailbox is not the authenticated account's), the bare id otherwise.
 * NULL for anything else.
 */
static const char *item_id(const char *v)
{
	if (!v || !*v || strlen(v) > 80)
		return NULL;
	const char *colon = strrchr(v, ':');
	if (colon) {
		for (const char *p = v; p < colon; p++)
			if (!isxdigit((unsigned char)*p) && *p != '-')
				return NULL;
		v = colon + 1;
	}
	if (!*v || strlen(v) > 20)
		return NULL;
	for (const char *p = v; *p; p++)
		if (*p < '0' || *p > '9')
			return NULL;
	return v;
}

/* The id of v (number or string) into ids, if it is an item id. */
static void take_id(json_t *v, struct strlist *ids)
{
	json_t *j = json_object_get(v, "id");
	char num[32];
	const char *s = jstr(j);
	long long n;
	if (!s && jnum(j, &n)) {
		snprintf(num, sizeof num, "%lld", n);
		s = num;
	}
	if ((s = item_id(s)) != NULL)
		strlist_add(ids, s);
}

/*
 * GetFolderResponse: folder elements nest (zm-mailbox service/mail/GetFolder.java,
 * ToXML.encodeFolder): each has "folder", "search" (search folders) and
 * "link" (mountpoints) children.  folder_walk() calls visit(f, depth, arg) on
 * f and every element below it through the children named in kids (the
 * first nkids of folder_kids); the top of an answer ("folder" of the
 * response, an object or an array) is depth 0.  Depth is bounded: a hostile
 * answer cannot recurse the stack away.
 */
static const char *const folder_kids[] = { "folder", "search", "link" };

typedef void folder_visit(json_t *f, int depth, void *arg);

static void folder_walk(json_t *f, size_t nkids, int depth, folder_visit *visit, void *arg)
{
	if (!json_is_object(f) || depth > 256)
		return;
	visit(f, depth, arg);
	for (size_t k = 0; k < nkids; k++) {
		json_t *arr = json_object_get(f, folder_kids[k]);
		if (json_is_object(arr))
			folder_walk(arr, nkids, depth + 1, visit, arg);
		for (size_t i = 0; i < json_array_size(arr); i++)
			folder_walk(json_array_get(arr, i), nkids, depth + 1, visit, arg);
	}
}

/* The "folder" member of an answer (an object or an array); false when it has none. */
static bool folder_walk_top(json_t *resp, size_t nkids, folder_visit *visit, void *arg)
{
	json_t *arr = json_object_get(resp, "folder");
	if (json_is_object(arr))
		folder_walk(arr, nkids, 0, visit, arg);
	for (size_t i = 0; i < json_array_size(arr); i++)
		folder_walk(json_array_get(arr, i), nkids, 0, visit, arg);
	return json_is_object(arr) || json_array_size(arr) > 0;
}

static void visit_id(json_t *f, int depth, void *ids)
{
	/* not the top (USER_ROOT, id 1): every mailbox has it, and it is no one's to create */
	if (depth > 0)
		take_id(f, ids);
}

static void tree_answer(json_t *folders, json_t *tags, struct strlist *ids)
{
	folder_walk_top(folders, 3, visit_id, ids);
	json_t *arr = json_object_get(tags, "tag");   /* absent when the mailbox has no tag */
	if (json_is_object(arr))
		take_id(arr, ids);
	for (size_t i = 0; i < json_array_size(arr); i++)
		take_id(json_array_get(arr, i), ids);
}

enum zmb_rc soap_tree_ids(struct http *h, struct token_cache *tc, const char *account,
			  struct strlist *ids, char **err)
{
	json_t *fresp = NULL, *tresp = NULL;
	json_t *req = json_pack("{s:s}", "_jsns", "urn:zimbraMail");
	enum zmb_rc rc = soap_call_as(h, tc, account, "GetFolderRequest", req, &fresp, err);
	if (!rc) {
		req = json_pack("{s:s}", "_jsns", "urn:zimbraMail");
		rc = soap_call_as(h, tc, account, "GetTagRequest", req, &tresp, err);
	}
	if (!rc)
		tree_answer(fresp, tresp, ids);
	if (!rc && !json_array_size(json_object_get(fresp, "folder")) &&
	    !json_is_object(json_object_get(fresp, "folder"))) {
		*err = xasprintf("%s: GetFolderRequest for %s: no folder in the answer", http_label(h),
				 account);
		rc = ZMB_EPROTO;
	}
	json_decref(fresp);
	json_decref(tresp);
	return rc;
}

/*
 * SearchResponse: hits are grouped by element name (zm-mailbox
 * service/mail/Search.java -> ToXML): m message, c conversation, cn contact,
 * doc document, w wiki, appt appointment, task, chat, note; "d" is the item
 * date in ms, "more" says another page follows.
 */
static void search_answer(json_t *resp, struct strlist *ids, long long *oldest, bool *more)
{
	static const char *const hits[] = { "m", "cn", "doc", "w", "appt", "task", "chat", "note" };
	for (size_t k = 0; k < sizeof hits / sizeof *hits; k++) {
		json_t *arr = json_object_get(resp, hits[k]);
		size_t n = json_is_object(arr) ? 1 : json_array_size(arr);
		for (size_t i = 0; i < n; i++) {
			json_t *v = json_is_object(arr) ? arr : json_array_get(arr, i);
			if (ids)
				take_id(v, ids);
			long long d;
			/* a hit dated 0 (1970) or undated still exists: the windows start at 1 */
			if (oldest && (!jnum(json_object_get(v, "d"), &d) || d < 1))
				d = 1;
			if (oldest && (!*oldest || d < *oldest))
				*oldest = d;
		}
	}
	if (more)
		*more = jtrue(json_object_get(resp, "more"));
}

enum zmb_rc soap_search_items(struct http *h, struct token_cache *tc, const char *account,
			      const char *types, bool oldest_first, long long offset, long long limit,
			      struct strlist *ids, long long *oldest_ms, bool *more, char **err)
{
	json_t *resp = NULL;
	/* is:anywhere: Trash and Junk too (a plain search leaves them out) */
	json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "_jsns", "urn:zimbraMail",
				"query", "is:anywhere", "types", types, "sortBy",
				/* a stable order for offset paging: "none" has no ORDER BY (DbSearch) */
				oldest_first ? "dateAsc" : "idAsc", "offset", (json_int_t)offset,
				"limit", (json_int_t)limit);
	if (oldest_ms)
		*oldest_ms = 0;
	if (more)
		*more = false;
	enum zmb_rc rc = soap_call_as(h, tc, account, "SearchRequest", req, &resp, err);
	if (!rc)
		search_answer(resp, ids, oldest_ms, more);
	json_decref(resp);
	return rc;
}

void zfolders_free(struct zfolder *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].path);
		free(v[i].view);
	}
	free(v);
}

/*
 * One folder with its figures: path from absFolderPath without the leading
 * '/' (ToXML.encodeFolder), view, n (items), s (bytes).  Walked through
 * "folder" children only: search folders and mountpoints hold nothing of
 * their own and are not listed.
 */
struct figures_acc {
	struct zfolder *v;
	size_t n, alloc;
};

static void visit_figures(json_t *f, int depth, void *arg)
{
	struct figures_acc *acc = arg;
	const char *p = jstr(json_object_get(f, "absFolderPath"));
	if (!p || depth == 0)
		return;
	if (acc->n == acc->alloc) {
		acc->alloc = acc->alloc ? acc->alloc * 2 : 32;
		acc->v = xrealloc(acc->v, acc->alloc * sizeof *acc->v);
	}
	struct zfolder *z = &acc->v[acc->n++];
	while (*p == '/')
		p++;
	z->path = xstrndup(p, 1024);
	const char *view = jstr(json_object_get(f, "view"));
	z->view = view ? xstrndup(view, 40) : NULL;
	if (!jnum(json_object_get(f, "n"), &z->n) || z->n < 0)
		z->n = 0;
	if (!jnum(json_object_get(f, "s"), &z->s) || z->s < 0)
		z->s = 0;
}

enum zmb_rc soap_folder_counts(struct http *h, struct token_cache *tc, const char *account,
			       struct zfolder **out, size_t *n, char **err)
{
	json_t *resp = NULL;
	json_t *req = json_pack("{s:s}", "_jsns", "urn:zimbraMail");
	*out = NULL;
	*n = 0;
	enum zmb_rc rc = soap_call_as(h, tc, account, "GetFolderRequest", req, &resp, err);
	if (!rc) {
		struct figures_acc acc = { NULL, 0, 0 };
		bool any = folder_walk_top(resp, 1, visit_figures, &acc);
		*out = acc.v;
		*n = acc.n;
		if (!any) {
			*err = xasprintf("%s: GetFolderRequest for %s: no folder in the answer",
					 http_label(h), account);
			rc = ZMB_EPROTO;
		}
	}
	json_decref(resp);
	return rc;
}

enum zmb_rc soap_export_max_days(struct http *h, struct token_cache *tc, const char *account,
				 long long *days, char **err)
{
	json_t *resp = NULL;
	/* applyCos=1: the value in effect (the attribute is inherited from the COS and
	 * the domain: zimbra-attrs.xml, zimbraExportMaxDays, accountCosDomainInherited) */
	json_t *req = json_pack("{s:s, s:i, s:s, s:{s:s, s:s}}", "_jsns", "urn:zimbraAdmin",
				"applyCos", 1, "attrs", "zimbraExportMaxDays", "account", "by",
				"name", "_content", account);
	*days = 0;
	enum zmb_rc rc = soap_call(h, tc, "GetAccountRequest", req, &resp, err);
	if (!rc) {
		const char *v = attr_of(jfirst(json_object_get(resp, "account")), "zimbraExportMaxDays");
		long long d = v ? strtoll(v, NULL, 10) : 0;
		*days = d > 0 && d < 1000000 ? d : 0;
	}
	json_decref(resp);
	return rc;
}

enum zmb_rc soap_parse_for_fuzz(const char *req, long status, const char *body, size_t n,
				char **err)
{
	const char *label = "fuzz 127.0.0.1:7071";
	json_t *resp = NULL;
	enum zmb_rc rc = soap_answer(label, req, status, body, n, &resp, err);
	if (rc)
		goto out;
	if (!strcmp(req, "AuthRequest")) {
		char *tok = NULL;
		long long life = 0;
		rc = auth_answer(label, resp, &tok, &life, err);
		secret_free(tok);
	} else if (!strcmp(req, "SearchDirectoryRequest")) {
		struct zaccount *v = NULL;
		size_t cnt = 0, alloc = 0, page = 0;
		search_page(resp, &v, &cnt, &alloc, &page);
		zaccounts_free(v, cnt);
	} else if (!strcmp(req, "GetAccountRequest")) {
		char *id = NULL, *st = NULL, *mh = NULL;
		rc = account_answer(label, "user@example.com", resp, &id, &st, &mh, err);
		free(id);
		free(st);
		free(mh);
	} else if (!strcmp(req, "GetMailboxRequest")) {
		long long bytes = 0;
		rc = mailbox_answer(label, "0", resp, &bytes, err);
	} else if (!strcmp(req, "GetQuotaUsageRequest")) {
		struct zquota *v = NULL;
		size_t cnt = 0;
		bool more = false;
		long long total = 0;
		quota_answer(resp, &v, &cnt, &more, &total);
		zquotas_free(v, cnt);
	} else if (!strcmp(req, "GetFolderRequest")) {
		struct strlist ids = STRLIST_INIT;
		tree_answer(resp, resp, &ids);
		strlist_release(&ids);
		struct figures_acc acc = { NULL, 0, 0 };
		folder_walk_top(resp, 1, visit_figures, &acc);
		zfolders_free(acc.v, acc.n);
	} else if (!strcmp(req, "SearchRequest")) {
		struct strlist ids = STRLIST_INIT;
		long long oldest = 0;
		bool more = false;
		search_answer(resp, &ids, &oldest, &more);
		strlist_release(&ids);
	}
out:
	json_decref(resp);
	return rc;
}
