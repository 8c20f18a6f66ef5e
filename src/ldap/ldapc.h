/*
 * ldapc.h - a small libldap connection wrapper for the LDAP job stages.
 *
 * `struct ldc` is one connection to one server, owned by the stage that
 * opened it and used by that thread only (libldap handles are not shared).
 * Every verb takes a `step` (what the stage was doing, e.g. "add server id")
 * and on failure sets *err = "ldap server URI: step 'STEP': what failed: text"
 * (caller frees).  Server diagnostics are passed through ldc_redact() so that
 * a `credentials=` value can never reach a message.
 *
 * Result codes: connect/timeout -> ZMB_ECONNECT, bad password -> ZMB_EAUTH,
 * TLS -> ZMB_ETLS, missing entry -> ZMB_ENOTFOUND, anything else ZMB_EPROTO.
 */
#ifndef ZMB_LDAPC_H
#define ZMB_LDAPC_H

#include "zmb.h"

#include <ldap.h>

struct ldc_opts {
	bool starttls;          /* StartTLS on ldap:// (never for ldapi/ldaps) */
	const char *ca_file;    /* CA bundle; NULL = system default */
	bool tls_verify;        /* false = LDAP_OPT_X_TLS_NEVER (Zimbra's verify=none) */
	double timeout;         /* network and operation timeout, seconds */
};

struct ldc {
	LDAP *ld;
	char *uri;
};

struct ldc_attr {
	char *name;
	struct strlist vals;
};

struct ldc_entry {
	char *dn;
	struct ldc_attr *attrs;
	size_t nattrs;
};

struct ldc_result {
	struct ldc_entry *e;
	size_t n;
};
#define LDC_RESULT_INIT { NULL, 0 }

/* A growable LDAPMod array: consecutive adds with the same op+attr share one mod. */
struct ldc_mods {
	LDAPMod **v;
	size_t n;
};
#define LDC_MODS_INIT { NULL, 0 }

/* Open (lazily connects on the first operation). */
enum zmb_rc ldc_open(const char *uri, const struct ldc_opts *o, struct ldc **out, char **err);
/* Simple bind; dn == NULL binds anonymously.  Connects (and StartTLS) first. */
enum zmb_rc ldc_bind(struct ldc *c, const char *dn, const char *pw, char **err);
void ldc_close(struct ldc *c);

/*
 * Search; attrs NULL-terminated (NULL = all user attributes).  A missing base
 * gives ZMB_ENOTFOUND (res empty) with *err set.
 */
enum zmb_rc ldc_search(struct ldc *c, const char *base, int scope, const char *filter,
		       const char *const *attrs, struct ldc_result *res,
		       const char *step, char **err);
void ldc_result_release(struct ldc_result *r);
/*
 * The first entry (size limit 1) matching filter below base: its DN in *dn
 * (caller frees) and whether the bind may see attr on it, asked as types
 * only (attrsonly): no value of attr ever reaches this process.  No entry:
 * ZMB_ENOTFOUND with *dn NULL and *err unset.
 */
enum zmb_rc ldc_probe_attr(struct ldc *c, const char *base, const char *filter, const char *attr,
			   char **dn, bool *present, const char *step, char **err);
/* Values of attr (case-insensitive), NULL if absent. */
const struct strlist *ldc_vals(const struct ldc_entry *e, const char *attr);
/* First value or NULL. */
const char *ldc_val(const struct ldc_entry *e, const char *attr);

void ldc_mods_add(struct ldc_mods *m, int op, const char *attr, const char *val);
void ldc_mods_release(struct ldc_mods *m);
enum zmb_rc ldc_modify(struct ldc *c, const char *dn, struct ldc_mods *m,
		       const char *step, char **err);
/* Add an entry; m holds LDAP_MOD_ADD mods (the attributes). */
enum zmb_rc ldc_add(struct ldc *c, const char *dn, struct ldc_mods *m,
		    const char *step, char **err);
enum zmb_rc ldc_delete(struct ldc *c, const char *dn, const char *step, char **err);

/* Copy of s with every credentials=VALUE replaced by credentials=*** (caller frees). */
char *ldc_redact(const char *s);
/* Normalised URI for comparisons: lower-case scheme and host, no trailing '/' (caller frees). */
char *ldc_uri_norm(const char *uri);
bool ldc_uri_eq(const char *a, const char *b);
/* Is the server on this machine (ldapi://, 127.*, ::1, localhost)? */
bool ldc_uri_is_local(const char *uri);

#endif
