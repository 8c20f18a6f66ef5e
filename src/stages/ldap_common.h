/*
 * ldap_common.h - what the three LDAP stages share: key
 * validation, connecting, secrets (ldap_common.c); CSN, olcSyncrepl and
 * cn=config helpers, one server's cn=config as read (ldap_cnconfig.c).
 *
 * The stages themselves: ldap_replcheck.c, ldap_promote.c (+ the cn=config
 * writes in ldap_promote_apply.c), ldap_verify.c; their keys are documented
 * at the top of each file, the shared ones in ldap_targets.h.
 *
 * Everything here runs in the main thread (the stage's); a struct node and
 * its struct ldc belong to the stage run that made them.  Strings returned
 * as "caller frees" are xmalloc'ed; *err messages are "ldap server URI:
 * step 'STEP': ..." unless said otherwise.
 */
#ifndef ZMB_LDAP_COMMON_H
#define ZMB_LDAP_COMMON_H

#include "ldap_targets.h"
#include "ldapc.h"
#include "stage.h"


/* ---- ldap_common.c: validation ---- */

/* Turn "file:line: key 'k': msg" into "file:line: stage 'NAME': key 'k': msg"; returns -1. */
int ldap_key_err(const struct stage_conf *sc, char **err);
/* *err = "file:line: stage 'NAME': key 'KEY': MSG" (line of v, else of the stage); -1. */
int ldap_vfail(const struct stage_conf *sc, const struct cval *v, const char *file,
	       const char *key, char **err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/* The keys of struct ldap_conn; password_file required when need_pw. */
int ldap_conn_parse(const struct stage_conf *sc, const char *file, bool need_pw,
		    struct ldap_conn *c, char **err);
/* Key `key` as a list of at least `min` ldap://, ldaps:// or ldapi:// URIs (appended to out). */
int ldap_uri_list(const struct stage_conf *sc, const char *file, const char *key, size_t min,
		  struct strlist *out, char **err);
/* Append a target (the URI is copied). */
void ldap_target_add(struct ldap_targets *t, const char *uri, const char *role, bool bind);

/* The per-type readers behind ldap_stage_targets() (one in each stage's file). */
int ldap_replcheck_targets(const struct stage_conf *sc, const char *file,
			   struct ldap_targets *t, char **err);
int ldap_promote_targets(const struct stage_conf *sc, const char *file,
			 struct ldap_targets *t, char **err);
int ldap_verify_targets(const struct stage_conf *sc, const char *file,
			struct ldap_targets *t, char **err);

/* ---- ldap_common.c: connecting ---- */

void ldap_sleep(double s);
/* Open uri and bind as dn (NULL: anonymously); *out NULL on failure. */
enum zmb_rc ldap_open_bind(const char *uri, const struct ldc_opts *o, const char *dn,
			   const char *pw, struct ldc **out, char **err);
/* Read a password file into *pw (secret_free it) and mask it in the log; *err = "WHAT: ...". */
enum zmb_rc ldap_read_secret(const char *path, const char *what, char **pw, char **err);

/* ---- ldap_cnconfig.c: CSNs ---- */

/* SID of a CSN "YYYYmmddHHMMSS.ffffffZ#cccccc#SID#mmmmmm" into sid[4]. */
bool csn_sid(const char *csn, char sid[4]);
/* The CSN's time in seconds since the epoch (0 when unparsable). */
double csn_time(const char *csn);
/*
 * Compare s against ref per SID.  Returns true when in sync; *lag is the
 * largest time difference (positive: s is behind).
 */
bool csn_compare(const struct strlist *ref, const struct strlist *s, bool skip000, double *lag);
/* The same non-empty set of CSNs. */
bool csn_same_set(const struct strlist *a, const struct strlist *b);

/* ---- ldap_cnconfig.c: olcSyncrepl, olcServerID, DNs ---- */

/* Word after `key=` in an olcSyncrepl value (quotes removed), or NULL; caller frees. */
char *sr_token(const char *val, const char *key);
/* rid= of an olcSyncrepl value, -1 if none. */
long long sr_rid(const char *val);
bool sr_provider_is(const char *val, const char *uri);
/* The server's own ID from olcServerID values ("N" or "N URL"); caller frees. */
char *sid_pick(const struct strlist *vals, const char *uri);
/* Is the live olcServerID (decimal, 0x hex or 0 octal) the number want? */
bool sid_equal(const char *live, long long want);
bool dn_eq(const char *a, const char *b);
/* "olcDatabase={2}mdb,cn=config" -> 2 ; -1 if unparsable. */
int db_index(const char *dn);

/* ---- ldap_cnconfig.c: rids ---- */

/* A growable set of rids already chosen in this run. */
struct rid_set {
	long long *v;
	size_t n, cap;
};
#define RID_SET_INIT { NULL, 0, 0 }
void rid_set_add(struct rid_set *s, long long rid);
bool rid_set_has(const struct rid_set *s, long long rid);
void rid_set_release(struct rid_set *s);
/* The olcSyncrepl value with this rid (and its provider in *prov, caller frees), or NULL. */
const char *rid_owner(const struct strlist *sr, long long rid, char **prov);
/* Lowest rid >= base (<= 999) used neither in sr nor in taken (may be NULL); -1 if none. */
long long rid_next_free(const struct strlist *sr, long long base, const struct rid_set *taken);

/* ---- ldap_cnconfig.c: one server's cn=config ---- */

/* What the stages know about one server's cn=config. */
struct node {
	const char *uri;
	const char *role;             /* "replica" / "master" / "server" */
	long long want_sid;
	long long rid;                /* master: rid of the agreement pulling from the replica */
	long long replica_rid;        /* replica's agreement pulling from this master */
	const char *accesslog_dir;
	struct ldc *c;
	char *sid;                    /* live olcServerID (own), NULL if none */
	char *datadb;                 /* DN of the data DB */
	char *rootdn;
	char *aldb;                   /* DN of the accesslog DB, NULL if none */
	struct strlist syncrepl;      /* olcSyncrepl values of the data DB */
	bool multiprov;
	bool updateref;
	long long new_rid;            /* rid chosen for the agreement to add, -1 none */
	long long new_replica_rid;
	bool aldb_ours;               /* the accesslog DB was added by this job (state DB note) */
	bool need_aldb;               /* the plan adds an accesslog DB here */
	struct strlist schema;        /* lower-case attribute type names the server knows;
				       * empty until node_read_schema() (kept by node_read) */
	char *version;                /* "slapd 2.5.13..." from cn=monitor, NULL if unreadable */
};

/*
 * The attribute types the server knows, read once from its subschema
 * subentry (root DSE subschemaSubentry, normally cn=Subschema), and its
 * version from cn=monitor when that database exists.  cn=schema,cn=config
 * is not enough: it lists the loaded schema files, not slapd's own olc*
 * attributes nor those of its modules (checked against slapd 2.5).
 */
enum zmb_rc node_read_schema(struct node *n, char **err);
/* Does the server's schema have attr (case-insensitive)?  true while unread. */
bool node_knows(const struct node *n, const char *attr);
/* The names (lower-cased) of one attributeTypes value: NAME 'a' or NAME ( 'a' 'b' ). */
void schema_names(const char *def, struct strlist *out);

/* Forget what was read and close the connection. */
void node_release(struct node *n);
/* Read server ID, data DB (by suffix), accesslog DB, agreements. */
enum zmb_rc node_read(struct node *n, const char *suffix, bool need_db, char **err);
/*
 * DN of the child of db with objectClass oc (caller frees), NULL if none;
 * with copy, the entry itself too (the caller frees its parts).
 */
enum zmb_rc find_overlay(struct node *n, const char *db, const char *oc, char **dn,
			 struct ldc_entry *copy, const char *step, char **err);

#endif
