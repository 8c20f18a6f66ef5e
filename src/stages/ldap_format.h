/*
 * ldap_format.h - what zmreplchk and zmldapmmrtool -q compute and print, as
 * pure functions (no I/O, no LDAP connection): the ldap-replcheck and
 * ldap-mmr-verify stages read the servers, these say what the scripts would
 * make of it, line for line.  tests/check_unit_ldapfmt.c holds golden
 * output written from the scripts' print statements.
 *
 * The scripts are Zimbra's src/libexec/zmreplchk and zmldapmmrtool
 * (zm-ldap-utilities); Carbonio's copies (carbonio-ldap-utilities, same
 * paths) differ only in /opt/zextras paths and a shorter licence header, so
 * their line numbers are 10 lower.  Line numbers below are Zimbra's.
 *
 * Ownership: a struct rpl_srv owns every pointer in it except `uri`
 * (borrowed; must outlive it); rpl_srv_release() frees them.  Strings
 * returned by the functions are the caller's.  Text goes to a struct buf
 * exactly as the script writes it to stdout: lines ending in '\n'.
 * No global state: any thread may call these; the stages call them from
 * their main thread.
 */
#ifndef ZMB_LDAP_FORMAT_H
#define ZMB_LDAP_FORMAT_H

#include "zmb.h"

#include <stdbool.h>

/* ---- zmreplchk ---- */

/* zmreplchk's codes: masters lines 62-108 and 146-150, replicas 188-240. */
enum rpl_code {
	RPL_OK = 0,          /* CSNs read ("CSNs Retrieved", then "In Sync" or a lag) */
	RPL_STARTTLS = 3,    /* "Could not execute StartTLS (URI)" / "... StartTLS" */
	RPL_DOWN = 4,        /* "Server down" */
	RPL_SEARCH = 5,      /* "Unable to search" */
	RPL_LAG = 6,         /* out of sync by position: the status is compareCSN()'s text */
};

/* One server as zmreplchk sees it. */
struct rpl_srv {
	/* in: what reading the server gave (the caller fills these) */
	const char *uri;
	bool master;
	int probe;                /* RPL_OK when the contextCSNs were read, else 3/4/5 */
	char *probe_text;         /* status text when probe != RPL_OK */
	char *sid_raw;            /* masters: the first olcServerID value as read, NULL = none */
	struct strlist csns;      /* contextCSN values in the order slapd returned them */

	/* out: rpl_judge() */
	struct strlist shown;     /* csns after the #000# filter (lines 110-115, 216-221) */
	int code;                 /* zmreplchk's code, by position (enum rpl_code) */
	char *status;             /* zmreplchk's status text */
	bool compared;            /* compared with the first master (both read) */
	bool in_sync;             /* zmbatch's verdict: by server ID (see rpl_judge) */
	double lag;               /* by server ID: seconds behind the first master (< 0: ahead) */
	char *sid_diff;           /* by server ID, when not in sync: "SID 001 5.000 s
				   * behind, SID 002 missing here, SID 003 only here" */
	char *note;               /* a "zmbatch: ..." line when the two comparisons disagree */
};

void rpl_srv_release(struct rpl_srv *s);

/*
 * The contextCSNs zmreplchk keeps (lines 110-115 masters, 216-221 replicas):
 * with more than one master, every value matching /#000#/ is dropped, except
 * the last one, which the loop never looks at.  Appends to out.
 */
void rpl_filter(const struct strlist *csns, size_t nmasters, struct strlist *out);

/*
 * zmreplchk's compareCSN(x, y) (lines 268-286): the text of x - y in whole
 * seconds (fractions dropped, line 272-273) as Date::Manip 6 prints it.
 * Date::Manip::Calc: "DELTA = DATE2 - DATE1" for DateCalc(DATE1, DATE2), so
 * DateCalc($y,$x) (line 276) is x - y; two dates give an exact delta, "always
 * described in terms of hours, minutes, and seconds" (y/M/w/d are 0, a day
 * lag reads 26h).  Date::Manip 6 signs only a negative delta
 * ("0:0:0:0:-26:1:2", positive "0:0:0:0:26:1:2"), so x older than y reads
 * "0y 0M 0w 0d 26h 1m 2s behind", x newer "0y 0M 0w 0d 26h 1m 2" (the
 * script's "s ahead" branch, line 280, matches a '+' that Date::Manip 5
 * printed and 6 does not), equal seconds "0y 0M 0w 0d 0h 0m 0".
 * Checked against Date::Manip 6.91 running the script's sub; Zimbra ships
 * 6.90 (Zimbra/packages thirdparty/perl-date-manip).  A missing or
 * unparsable CSN (NULL, no ".ffffff" part, an impossible date) makes
 * DateCalc fail and the text is "".  *secs = x - y (0 when "").
 */
char *rpl_compare_csn(const char *x, const char *y, long long *secs);

/*
 * Judge servers s[0..n-1], the nmasters masters first (s[0] is the first
 * master, the reference), as zmreplchk does (code, status, shown; lines
 * 121-159 masters, 226-242 replicas: CSNs compared by position in the
 * lists) and by server ID (compared, in_sync, lag, sid_diff: csn_compare(),
 * SID 000 ignored with two or more masters).  note is set for a server
 * where the two disagree, or that could not be compared.  Returns true when
 * every server was read and every one is in sync with s[0] by server ID:
 * that is the stage's verdict, since slapd does not promise any order of
 * the contextCSN values (a consumer may list them otherwise than its
 * provider, and a SID missing on one side shifts every later position).
 * Call again after the in fields change (the out fields are replaced).
 */
bool rpl_judge(struct rpl_srv *s, size_t n, size_t nmasters);

/*
 * zmreplchk's output (lines 161-173 masters, only with more than one
 * master; 245-255 replicas), then the notes, each a line of its own after
 * all of zmreplchk's, plus one for a single master that could not be read
 * (zmreplchk prints no Master line then).
 */
void rpl_format(const struct rpl_srv *s, size_t n, size_t nmasters, struct buf *out);

/*
 * One line with everything known about s, for the log and the events table:
 * uri=U role=master|replica sid="S" code=C status="T" sync=yes|no|not-compared
 * lag_s=L csns=A,B (caller frees).
 */
char *rpl_detail(const struct rpl_srv *s);

/* ---- zmldapmmrtool -q ---- */

/*
 * rid, provider and starttls of an olcSyncrepl value as zmldapmmrtool
 * parses them (lines 136-141): the text after the first "rid=",
 * "provider=", "starttls=", each up to its first space; NULL when the key
 * is absent (the script prints nothing for it).  Parsed from the value with
 * any credentials= value masked first (ldc_redact), so no part of a
 * password can come out.  Each out pointer gets a string the caller frees.
 */
void mmrq_agreement(const char *val, char **rid, char **uri, char **tls);

enum mmrq_result { MMRQ_OK = 0, MMRQ_NO_SID, MMRQ_NO_AGREEMENT };

/*
 * What zmldapmmrtool -q prints for one server (lines 104-165): "Master
 * Server ID: S" with S the first olcServerID value (sids NULL or empty: the
 * error of line 118 instead), then per olcSyncrepl value "Master
 * replication agreement: K" and "rid: R URI: U TLS: T" (lines 152-153), or
 * the error of line 159 when there is none.  Appends to out.
 */
enum mmrq_result mmrq_format(const struct strlist *sids, const struct strlist *syncrepl,
			     struct buf *out);

#endif
