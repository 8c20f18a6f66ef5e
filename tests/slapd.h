/*
 * slapd.h - test fixture: two private slapd instances on 127.0.0.1 in the
 * "master + replica" starting state (what zmldapenablereplica leaves), plus
 * small helpers the stage suites share (a hand-built cval tree, a stage
 * context).
 *
 * Call from checked fixtures or test bodies only (inside Check's forked
 * child).  Each slapd is our own child, started with PR_SET_PDEATHSIG so it
 * dies with the test process even when a failed ck_assert exits the child
 * before the teardown runs; slapd_pair_stop() stops them by PID (TERM, then
 * KILL) and removes the temp dir.  An atexit hook does the same on exit().
 *
 * Layouts: SLAPD_PLAIN (syncprov on the master, plain consumer) and
 * SLAPD_DELTA (accesslog DB on the master, delta-syncrepl consumer carrying
 * syncprov, as Zimbra replicas do).  suffix "dc=example,dc=com" or "" (the
 * Zimbra/Carbonio layout; entries then live under cn=zimbra).  Database and
 * overlay indexes are Zimbra's (details and sources in slapd.c): {1}monitor,
 * data DB {2}mdb, on a delta master {2}mdb cn=accesslog and data DB {3}mdb;
 * the data DB's overlays {0}syncprov [{1}accesslog] then dynlist, unique
 * (slapd_inst.datadb names the data DB entry).
 * cn=config and the data DB share the root DN cn=config (password in
 * config_pw_file); the replicator is REPL_DN with the password in
 * repl_pw_file.  Consumers use retry="1 +".
 *
 * Every instance listens on ldap://127.0.0.1:PORT/ and on an ldapi:// socket
 * (the helpers below connect there, as cn=config).
 * slapd_pair_start_ex() can also give both a server certificate from the
 * start (olcTLS* in cn=config, so StartTLS works) and an additional
 * ldaps://127.0.0.1:PORT/ listener (struct slapd_opts).
 */
#ifndef ZMB_TEST_SLAPD_H
#define ZMB_TEST_SLAPD_H

#include "job.h"
#include "runctl.h"
#include "stage.h"

#include <stdbool.h>
#include <sys/types.h>

enum slapd_layout { SLAPD_PLAIN, SLAPD_DELTA };

struct slapd_inst {
	pid_t pid;
	int port;
	char *dir;        /* <pair dir>/<name> : slapd.d/ db/ accesslog/ slapd.log */
	char *uri;        /* ldap://127.0.0.1:PORT/ */
	char *ldapi;      /* ldapi://%2F...%2Fldapi/ (a socket in dir; slapd listens there too) */
	int ldaps_port;   /* 0 unless slapd_opts.ldaps */
	char *ldaps;      /* ldaps://127.0.0.1:LDAPS_PORT/ when slapd_opts.ldaps, else NULL */
	char *log;        /* <dir>/slapd.log: slapd's stderr at the stats level (see slapd_log_ops) */
	char *datadb;     /* "olcDatabase={N}mdb,cn=config": the data DB's entry at start (a
			   * promotion that adds an accesslog DB ahead of it shifts N) */
};

struct slapd_pair {
	char *dir;
	char *suffix;     /* data DB suffix */
	char *base;       /* where entries live: suffix, or cn=zimbra for "" */
	char *repl_dn;
	enum slapd_layout layout;
	struct slapd_inst s[2];   /* [0] master (provider), [1] replica (consumer) */
	char *config_pw_file;
	char *repl_pw_file;
	char *wrong_pw_file;
	char *ca_dir;     /* <dir>/ca holding a copy of slapd_opts.tls_ca_file (ca.pem), like
			   * Zimbra's /opt/zimbra/conf/ca; NULL without TLS files.  The replica's
			   * rid=100 names it as tls_cacertdir= */
};

#define SLAPD_CONFIG_PW "configpw"
#define SLAPD_REPL_PW "replpw"

/* Opt-in extras for slapd_pair_start_ex(); all zero = what slapd_pair_start() does. */
struct slapd_opts {
	/* PEM files (borrowed; read by slapd at start and restart).  Set all three or none:
	 * both instances get the certificate and key as olcTLSCertificateFile / ...KeyFile in
	 * the initial cn=config, so StartTLS works from the first connection; the CA goes
	 * only to slapd_pair.ca_dir (why: slapd.c, config_ldif). */
	const char *tls_cert_file;
	const char *tls_key_file;
	const char *tls_ca_file;
	/* Also listen on ldaps://127.0.0.1:PORT/ (slapd_inst.ldaps); needs the TLS files.
	 * Start (and restart) waits until a TLS handshake on it succeeds. */
	bool ldaps;
	/* TLS required (needs the TLS files): the data DB of both refuses plaintext TCP
	 * (olcSecurity: ssf=1; ldapi:// still works, the helpers below use it), and the
	 * replica's rid=100 pulls with starttls=critical tls_cacertdir=<ca_dir>, as
	 * zmldapenablereplica writes it when StartTLS is required. */
	bool require_tls;
};

/* Start both, seed the master, wait until the replica holds the seed.  0 / -1 (+ *err). */
int slapd_pair_start(struct slapd_pair *p, enum slapd_layout layout, const char *suffix,
		     char **err);
/* The same with extras (o may be NULL). */
int slapd_pair_start_ex(struct slapd_pair *p, enum slapd_layout layout, const char *suffix,
			const struct slapd_opts *o, char **err);
void slapd_pair_stop(struct slapd_pair *p);
int slapd_inst_restart(struct slapd_pair *p, int i, char **err);

/* cn=config (no schema) as text: every entry, every attribute incl. modifyTimestamp. */
char *slapd_dump_config(const struct slapd_inst *s);
/* Add/modify/read helpers over libldap as cn=config.  0 / -1. */
int slapd_add_person(const struct slapd_inst *s, const char *base, const char *uid);
/* 1 present, 0 absent, -1 error */
int slapd_has_entry(const struct slapd_inst *s, const char *dn);
/* Wait up to timeout_s for dn to appear (want=true) or vanish. true on success. */
bool slapd_wait_entry(const struct slapd_inst *s, const char *dn, bool want, double timeout_s);
/* Apply an LDIF-less modify: add one value of attr on dn. 0 / -1. */
int slapd_modify_add(const struct slapd_inst *s, const char *dn, const char *attr,
		     const char *val);

/* Delete every value of attr on dn. 0 / -1. */
int slapd_modify_del(const struct slapd_inst *s, const char *dn, const char *attr);
/* Add dn with av = { attr, value, attr, value, ..., NULL } (a repeated attr adjacent:
 * several values) as cn=config.  0 / -1. */
int slapd_add_entry(const struct slapd_inst *s, const char *dn, const char *const *av);
/*
 * The subset of Zimbra's schema the provision stage and `check` read, added to
 * cn=schema: the attribute zimbraId (Zimbra's attr id 1: 1.3.6.1.4.1.19348.1.1.1) and
 * the auxiliary class zimbraAccount (its OID and MAY list are our own test subset, not
 * a copy; the same as check_e2e_provision.c's start_ldap).  0 / -1.
 */
int slapd_zimbra_subset(const struct slapd_inst *s);

/*
 * The stats log (OpenLDAP's "stats" level: every slapd of the fixture runs with -d stats,
 * stderr into s->log).  Lines look like
 *   6b1183b5.39d5bb71 0x7f72... conn=1001 op=1 MOD dn="olcDatabase={2}mdb,cn=config"
 *   6b1183b5.39d6543f 0x7f72... conn=1001 op=1 MOD attr=olcSyncrepl olcMirrorMode
 *   ... conn=1002 op=3 ADD dn="olcOverlay={1}accesslog,olcDatabase={3}mdb,cn=config"
 * Only operations of LDAP clients are logged (not what syncrepl applies), and the log
 * grows across slapd_inst_restart().
 */
char *slapd_log_read(const struct slapd_inst *s);   /* whole log (free it); NULL if none */
bool slapd_log_has(const struct slapd_inst *s, const char *needle);
/*
 * Append one string per client operation of type verb ("ADD", "DEL", "MOD", "MODRDN") in
 * log order: the DN without quotes; for "MOD" the DN, ':' and the attribute names of that
 * modify, each after a space ("olcDatabase={2}mdb,cn=config: olcSyncrepl olcMirrorMode").
 */
void slapd_log_ops(const struct slapd_inst *s, const char *verb, struct strlist *out);

/* ---- hand-built stage settings (what conf_load would produce) ---- */
struct cval *tcv_group(struct cval *parent, const char *key);  /* parent NULL: new root */
void tcv_str(struct cval *g, const char *key, const char *val);
void tcv_int(struct cval *g, const char *key, long long v);
void tcv_bool(struct cval *g, const char *key, bool v);
/* key = [ vals... ] (NULL-terminated) */
void tcv_strs(struct cval *g, const char *key, ...);
/* key = ( ) : returns the list; tcv_list_group adds a { } element */
struct cval *tcv_list(struct cval *g, const char *key);
struct cval *tcv_list_group(struct cval *list);

/* A stage context around settings (the stage_conf owns a copy of nothing: settings moved in). */
struct stage_run {
	struct job job;
	struct stage_conf sc;
	struct run_ctl ctl;
	struct stage_ctx ctx;
};
void stage_run_init(struct stage_run *r, const char *name, const char *type,
		    struct cval *settings);
/* Validate then run; returns rc (validation failure -> ZMB_ECONFIG); *err as the stage set it. */
enum zmb_rc stage_run_go(struct stage_run *r, char **err);
void stage_run_release(struct stage_run *r);

#endif
