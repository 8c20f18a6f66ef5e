/*
 * ldap_promote.h - the ldap-promote-mmr stage between its two files:
 * ldap_promote.c reads the keys, reads every server and plans (server ids,
 * mode, rids, TLS of the agreements, the attributes each server's schema
 * knows) before the first write; ldap_promote_apply.c makes the cn=config
 * writes, each one read before written, each followed by its crashpoint()
 * and its output line "ROLE URI: STEP: WHAT".
 *
 * What is written follows the real scripts (Zimbra/zm-ldap-utilities and
 * zextras/carbonio-ldap-utilities, src/libexec/): zmldappromote-replica-mmr
 * on the replica, zmldapenable-mmr on each old master.
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
	long long rid;                /* -1: default (100, or next free from rid_base) */
	long long replica_rid;
	const char *accesslog_dir;    /* NULL: the stage's */
	int line;
};

/* TLS of the agreements the stage writes (agreement_tls). */
enum pm_tls { PM_TLS_AUTO, PM_TLS_STARTTLS, PM_TLS_PLAIN };

/* The stage's keys; strings are borrowed from the stage_conf unless said. */
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
	const char *flavor;           /* "zimbra" / "carbonio" / NULL: detect */
	const char *localconfig;      /* the replica's localconfig.xml, or NULL */
	const char *accesslog_dir;    /* NULL: <home>/data/ldap/accesslog/db */
	const char *sp_checkpoint;
	const char *sp_sessionlog;
	enum pm_tls tls;
	bool tls_explicit_plain;      /* agreement_tls = "plain" or agreement_starttls = false */
	const char *agreement_tls_cacertdir;   /* NULL: <home>/conf/ca */
	const char *agreement_tls_cacert;
	long long rid_base;           /* -1: not given (rid 100, error if taken) */
	long long accesslog_maxsize;
	int create_dir;               /* create_accesslog_dir: -1 auto (local URIs), 0, 1 */
};

/* What the run resolved from the keys, localconfig and the servers. */
struct pm_plan {
	const char *home;             /* "/opt/zimbra" or "/opt/zextras" */
	char *accesslog_dir;          /* owned */
	char *cacertdir;              /* owned */
	bool starttls;                /* starttls=critical in ldap:// agreements */
	bool delta;                   /* delta-syncrepl (accesslog) layout */
	const char *mirror_attr;      /* "olcMirrorMode" (or "olcMultiProvider" if only that) */
};

/* olcServerID n->want_sid on cn=config unless the server has one. */
enum zmb_rc pm_server_id(struct stage_ctx *ctx, struct node *n, char **err);
/*
 * The accesslog database (zmldappromote-replica-mmr's attributes) unless
 * there is one; the first write on a server, so that a missing directory
 * leaves the server untouched.  A directory slapd cannot find ends in a
 * message naming host, path and the command that creates it.
 */
enum zmb_rc pm_accesslog_db(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
			    const struct pm_plan *pl, char **err);
/*
 * The rest of the provider side: syncprov on the accesslog DB; the data
 * DB's syncprov (checkpoint/sessionlog brought to the job's values); the
 * accesslog overlay right after syncprov (`{1}accesslog` on Zimbra).
 */
enum zmb_rc pm_provider(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
			const struct pm_plan *pl, char **err);
/*
 * Add the agreements `provs[i]` (rid rids[i]) and turn mirror mode on, in
 * one modify (slapd refuses it on a DB without olcSyncrepl); then drop
 * olcUpdateRef.
 */
enum zmb_rc pm_multiprovider(struct stage_ctx *ctx, struct node *n, const struct pm_conf *k,
			     const struct pm_plan *pl, const char *const *provs,
			     const long long *rids, size_t np, const char *repl_pw, char **err);
/* State DB meta key noting that this stage added the accesslog DB on uri (caller frees). */
char *pm_note_key(const struct stage_ctx *ctx, const char *uri);
/* The olcSyncrepl value zmldapenable-mmr writes (contains the password: secret_free it). */
char *pm_agreement(const struct pm_conf *k, const struct pm_plan *pl, const char *provider,
		   long long rid, const char *repl_pw);

#endif
