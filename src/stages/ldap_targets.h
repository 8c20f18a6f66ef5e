/*
 * ldap_targets.h - what an LDAP stage connects to, read once for everyone.
 *
 * The stages (ldap_replcheck.c, ldap_promote.c, ldap_verify.c) and
 * `zmbatch check` read an LDAP stage's servers and connection settings
 * through this one reader, so that check binds exactly as the run will:
 * the same URIs, the same bind DN (default "cn=config"), anonymous where the
 * stage binds anonymously (ldap-replcheck's replicas), the same
 * network_timeout and TLS settings.
 *
 * Keys read for every LDAP stage (struct ldap_conn):
 *   bind_dn = "cn=config"; password_file = "/path" (required);
 *   suffix = ""; starttls = false; ca_file = "/path"; tls_verify = true;
 *   network_timeout = "10s"   per LDAP operation (<= 0 means the default)
 * Servers (struct ldap_target), in the order the stage contacts them:
 *   ldap-replcheck:   masters (bound), then replicas not among the masters
 *                     (anonymous)
 *   ldap-promote-mmr: replica, then masters[i].uri (all bound)
 *   ldap-mmr-verify:  servers (all bound)
 *
 * Ownership: a struct ldap_targets owns its array and its URI copies; the
 * other strings of `conn` are borrowed from the stage_conf the targets were
 * read from, which must outlive them.  Main thread only (like the stages).
 */
#ifndef ZMB_LDAP_TARGETS_H
#define ZMB_LDAP_TARGETS_H

#include "job.h"
#include "ldapc.h"

/* Connection settings shared by every LDAP stage. */
struct ldap_conn {
	const char *bind_dn;
	const char *password_file;
	const char *suffix;
	bool starttls;
	const char *ca_file;
	bool tls_verify;
	long long net_timeout;        /* seconds, > 0 */
};

struct ldap_target {
	char *uri;                    /* owned */
	const char *role;             /* "master", "replica" or "server" (static) */
	bool bind;                    /* true: bind as conn.bind_dn; false: anonymous */
};

struct ldap_targets {
	struct ldap_conn conn;
	struct ldap_target *v;
	size_t n;
};

/*
 * Read (and validate, with the stage's own messages) the targets of an LDAP
 * stage.  Returns 0, -1 with *err set (caller frees), or 1 when sc is not an
 * LDAP stage (t left empty).  Release t in every case.
 */
int ldap_stage_targets(const struct stage_conf *sc, const char *file,
		       struct ldap_targets *t, char **err);

/* The libldap options of conn (defined in ldap_common.c). */
void ldap_conn_opts(const struct ldap_conn *conn, struct ldc_opts *o);
/*
 * Open target i and bind as it says (conn.bind_dn with pw, or anonymously);
 * *out NULL on failure, *err "ldap server URI: step ...".  Defined in ldap_common.c.
 */
enum zmb_rc ldap_target_connect(const struct ldap_targets *t, size_t i, const char *pw,
				struct ldc **out, char **err);
/* Free the array and the URIs; t is empty afterwards (defined in ldap_common.c). */
void ldap_targets_release(struct ldap_targets *t);

#endif
