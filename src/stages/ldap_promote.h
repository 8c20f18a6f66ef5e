/*
 * ldap_promote.h - the ldap-promote-mmr stage between its two files:
 * ldap_promote.c reads the keys, reads every server and plans (server ids,
 * mode, rids) before the first write; ldap_promote_apply.c makes the
 * cn=config writes, each one read before written, each followed by its
 * crashpoint() and its output line "ROLE URI: STEP: WHAT".
 *
 * Main thread only.  The writers update the struct node they were given
 * (sid, aldb, multiprov, ...) so that a later step sees what an earlier one
 * wrote; on failure *err is "ldap server URI: step 'STEP': ..." (caller
 * frees, the stage prefixes "ldap-promote-mmr: ").
 */
#ifndef ZMB_LDAP_PROMOTE_H
#define ZMB_LDAP_PROMOTE_H

#include "ldap_common.h"

struct pm_master {
	const char *uri;
	long long sid;
	long long rid;
	long long replica_rid;
	const char *accesslog_dir;
	int line;
};

/* The stage's keys; strings are borrowed from the stage_conf. */
struct pm_conf {
	struct ldap_targets t;        /* the replica, then the masters in order */
	const char *replica;
	long long server_id;
	struct pm_master *m;
	size_t nm;
	const char *repl_dn;
	const char *repl_pw_file;
	const char *retry;
	const char *mode;
	const char *accesslog_dir;
	const char *sp_checkpoint;
	const char *sp_sessionlog;
	const char *agreement_tls_cacert;
	long long rid_base;
	long long accesslog_maxsize;
	bool agreement_starttls;
};

/* olcServerID n->want_sid on cn=config unless the server has one. */
enum zmb_rc pm_server_id(struct stage_ctx *ctx, struct node *n, char **err);
/*
 * The provider side: with delta, the accesslog DB and its syncprov; the
 * syncprov overlay on the data DB (checkpoint/sessionlog brought to the
 * job's values); with delta, the accesslog overlay on the data DB.
 */
enum zmb_rc pm_provider(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
			bool delta, char **err);
/*
 * Add the agreements `provs[i]` (rid rids[i]) and turn multi-provider on, in
 * one modify (slapd refuses olcMultiProvider on a DB without olcSyncrepl);
 * then drop olcUpdateRef.
 */
enum zmb_rc pm_multiprovider(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
			     const char *const *provs, const long long *rids, size_t np,
			     const char *repl_pw, bool delta, char **err);

#endif
