/*
 * ldap_format.c - zmreplchk's and zmldapmmrtool -q's comparisons and
 * output, as pure functions (contracts and script references in
 * ldap_format.h).  Uses the CSN helpers of ldap_cnconfig.c and ldc_redact();
 * nothing here talks to a server.
 */
#include "ldap_format.h"
#include "ldap_common.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void rpl_srv_release(struct rpl_srv *s)
{
	free(s->probe_text);
	free(s->sid_raw);
	strlist_release(&s->csns);
	strlist_release(&s->shown);
	free(s->status);
	free(s->sid_diff);
	free(s->note);
	s->probe_text = s->sid_raw = s->status = s->sid_diff = s->note = NULL;
	s->probe = s->code = RPL_OK;
	s->compared = s->in_sync = false;
	s->lag = 0;
}

/* ------------------------------------------------------------------ */
/* zmreplchk: what it keeps, how it compares two CSNs                  */

void rpl_filter(const struct strlist *csns, size_t nmasters, struct strlist *out)
{
	/* zmreplchk 110-115: for ($i=0; $i < $#csns; $i++) { next if >1 master
	 * and /#000#/; keep } then the last one unconditionally */
	for (size_t i = 0; i < csns->n; i++) {
		if (i + 1 < csns->n && nmasters > 1 && strstr(csns->v[i], "#000#"))
			continue;
		strlist_add(out, csns->v[i]);
	}
}

/*
 * compareCSN's date (lines 270-275): cut at the first '#', then at the
 * first '.', append "Z"; Date::Manip parses "YYYYmmddHHMMSSZ" as UTC.  A CSN
 * without '.' becomes "...ZZ", which does not parse.  false when unparsable.
 */
static bool csn_whole_secs(const char *csn, long long *secs)
{
	if (!csn)
		return false;
	size_t n = strcspn(csn, "#");
	const char *dot = memchr(csn, '.', n);
	if (dot)
		n = (size_t)(dot - csn);
	if (!dot || n != 14 || strspn(csn, "0123456789") < 14)
		return false;
	struct tm tm, back;
	memset(&tm, 0, sizeof tm);
	char d[15];
	memcpy(d, csn, 14);
	d[14] = '\0';
	if (sscanf(d, "%4d%2d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec) != 6)
		return false;
	int y = tm.tm_year, mo = tm.tm_mon, da = tm.tm_mday, h = tm.tm_hour, mi = tm.tm_min,
	    se = tm.tm_sec;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	/* an impossible date (Feb 30, 25:00) does not parse either */
	if (!gmtime_r(&t, &back) || back.tm_year + 1900 != y || back.tm_mon + 1 != mo ||
	    back.tm_mday != da || back.tm_hour != h || back.tm_min != mi || back.tm_sec != se)
		return false;
	*secs = (long long)t;
	return true;
}

char *rpl_compare_csn(const char *x, const char *y, long long *secs)
{
	long long tx, ty;
	*secs = 0;
	if (!csn_whole_secs(x, &tx) || !csn_whole_secs(y, &ty))
		return xstrdup("");      /* DateCalc failed: line 276 gives "" */
	long long d = tx - ty;      /* DateCalc($y,$x) = x - y */
	long long a = d < 0 ? -d : d;
	*secs = d;
	/* "0:0:0:0:H:MN:S", '-' before the first non-zero field when negative;
	 * line 277-279 removes the '-' and appends "s behind", line 284 names the
	 * first six fields */
	return xasprintf("0y 0M 0w 0d %lldh %lldm %lld%s", a / 3600, a / 60 % 60, a % 60,
			 d < 0 ? "s behind" : "");
}

/* ------------------------------------------------------------------ */
/* zmreplchk: judging                                                  */

static void set_status(struct rpl_srv *s, int code, const char *text)
{
	s->code = code;
	free(s->status);
	s->status = xstrdup(text);
}

/* s->csns[i] or NULL past the end (Perl's undef). */
static const char *at(const struct strlist *l, size_t i)
{
	return i < l->n ? l->v[i] : NULL;
}

/* Masters, lines 121-159 (only run with more than one master). */
static void judge_masters(struct rpl_srv *s, size_t nmasters)
{
	int prim = s[0].probe;                  /* $primcurstatus, line 124 */
	const struct strlist *l = &s[0].shown;  /* @lcsns: empty when the master failed */
	for (size_t j = 1; j < nmasters; j++) {
		int cur = s[j].probe;
		char *delta = NULL;
		bool lag = false;
		for (size_t i = 0; i < l->n; i++) {
			if (cur || prim)
				continue;
			const char *nc = at(&s[j].shown, i);
			if (nc && !strcmp(l->v[i], nc))
				continue;
			long long secs;
			free(delta);
			delta = rpl_compare_csn(l->v[i], nc, &secs);   /* the last one wins */
			lag = true;
		}
		if (lag) {
			set_status(&s[0], RPL_LAG, delta);
			set_status(&s[j], RPL_LAG, delta);
		} else {
			/* the text only: a code 6 from an earlier master stays (line 152-153) */
			if (prim == RPL_OK)
				set_status(&s[0], s[0].code, "In Sync");
			if (cur == RPL_OK)
				set_status(&s[j], s[j].code, "In Sync");
		}
		free(delta);
	}
}

/* One replica, lines 226-242: against the first master's CSNs, by position. */
static void judge_replica(struct rpl_srv *r, const struct rpl_srv *m0)
{
	/* $mstatus{$masters[0]}[2] is unset when the first master failed */
	static const struct strlist none = STRLIST_INIT;
	const struct strlist *p = m0->probe == RPL_OK ? &m0->shown : &none;
	for (size_t i = 0; i < r->shown.n; i++) {
		const char *pc = at(p, i);
		if (pc && !strcmp(r->shown.v[i], pc)) {
			if (r->code != RPL_LAG)
				set_status(r, RPL_OK, "In Sync");
		} else {
			long long secs;
			char *delta = rpl_compare_csn(r->shown.v[i], pc, &secs);
			set_status(r, RPL_LAG, delta);
			free(delta);
		}
	}
}

/* "SID 001 5.000 s behind, SID 002 missing here, SID 003 only here" (s against ref), or NULL. */
static char *sid_diff(const struct strlist *ref, const struct strlist *s, bool skip000)
{
	struct buf b = BUF_INIT;
	const struct strlist *sets[2] = { ref, s };
	struct strlist seen = STRLIST_INIT;
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < sets[k]->n; i++) {
			char sid[4];
			if (!csn_sid(sets[k]->v[i], sid) || (skip000 && !strcmp(sid, "000")) ||
			    strlist_has(&seen, sid))
				continue;
			strlist_add(&seen, sid);
			const char *a = NULL, *c = NULL;
			for (size_t j = 0; j < ref->n; j++) {
				char t[4];
				if (!a && csn_sid(ref->v[j], t) && !strcmp(t, sid))
					a = ref->v[j];
			}
			for (size_t j = 0; j < s->n; j++) {
				char t[4];
				if (!c && csn_sid(s->v[j], t) && !strcmp(t, sid))
					c = s->v[j];
			}
			if (a && c && !strcmp(a, c))
				continue;
			if (b.len)
				buf_adds(&b, ", ");
			if (a && c) {
				double d = csn_time(a) - csn_time(c);
				buf_addf(&b, "SID %s %.3f s %s", sid, d < 0 ? -d : d,
					 d >= 0 ? "behind" : "ahead");
			} else {
				buf_addf(&b, "SID %s %s", sid, a ? "missing here" : "only here");
			}
		}
	}
	strlist_release(&seen);
	return b.len ? buf_detach(&b) : (buf_release(&b), NULL);
}

/* The zmbatch line for s[i] (not the reference), or NULL when there is nothing to say. */
static char *judge_note(const struct rpl_srv *s, size_t i)
{
	const struct rpl_srv *r = &s[0], *x = &s[i];
	if (x->probe != RPL_OK)
		return NULL;                    /* its own line says what failed */
	if (!x->compared)
		return xasprintf("zmbatch: %s: not compared with %s (%s)", x->uri, r->uri,
				 r->status ? r->status : "");
	bool pos = x->code == RPL_OK;
	if (pos == x->in_sync)
		return NULL;
	if (x->in_sync)
		return xasprintf("zmbatch: %s: in sync with %s by server ID; by position "
				 "(zmreplchk) not: %s; zmbatch goes by server ID", x->uri, r->uri,
				 csn_same_set(&x->shown, &r->shown)
				 ? "the same contextCSNs in another order"
				 : "the lists differ in order or in SID 000 values");
	return xasprintf("zmbatch: %s: not in sync with %s by server ID (%s); by position "
			 "(zmreplchk) In Sync; zmbatch goes by server ID", x->uri, r->uri,
			 x->sid_diff ? x->sid_diff : "?");
}

bool rpl_judge(struct rpl_srv *s, size_t n, size_t nmasters)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		struct rpl_srv *x = &s[i];
		strlist_release(&x->shown);
		free(x->sid_diff);
		free(x->note);
		x->sid_diff = x->note = NULL;
		x->compared = x->in_sync = false;
		x->lag = 0;
		if (x->probe == RPL_OK) {
			rpl_filter(&x->csns, nmasters, &x->shown);
			/* lines 107-108; a replica's code is set by the comparison */
			set_status(x, RPL_OK, "CSNs Retrieved");
		} else {
			set_status(x, x->probe, x->probe_text ? x->probe_text : "");
		}
	}
	if (nmasters > 1)
		judge_masters(s, nmasters);
	for (size_t i = nmasters; i < n; i++)
		if (s[i].probe == RPL_OK)
			judge_replica(&s[i], &s[0]);

	/* by server ID, against the first master */
	bool skip000 = nmasters >= 2, all = s[0].probe == RPL_OK, masters = all;
	for (size_t i = 1; i < n; i++) {
		struct rpl_srv *x = &s[i];
		if (x->probe != RPL_OK || s[0].probe != RPL_OK) {
			all = false;
			if (i < nmasters)
				masters = false;
		} else {
			x->compared = true;
			x->in_sync = csn_compare(&s[0].csns, &x->csns, skip000, &x->lag);
			if (!x->in_sync) {
				x->sid_diff = sid_diff(&s[0].csns, &x->csns, skip000);
				all = false;
				if (i < nmasters)
					masters = false;
			}
		}
		x->note = judge_note(s, i);
	}
	s[0].compared = s[0].probe == RPL_OK;
	s[0].in_sync = masters;
	return all;
}

/* ------------------------------------------------------------------ */
/* zmreplchk: printing                                                 */

/* " CSNs:\n" + the CSNs joined by "\n" (the `s/:/\n/g` of lines 169, 251) + "\n" */
static void put_csns(const struct rpl_srv *x, struct buf *out)
{
	if (x->probe == RPL_OK) {     /* $mstatus{..}[2] defined only when read */
		buf_adds(out, " CSNs:\n");
		for (size_t i = 0; i < x->shown.n; i++)
			buf_addf(out, "%s%s", i ? "\n" : "", x->shown.v[i]);
	}
	buf_adds(out, "\n");
}

void rpl_format(const struct rpl_srv *s, size_t n, size_t nmasters, struct buf *out)
{
	if (nmasters > 1) {
		for (size_t i = 0; i < nmasters && i < n; i++) {
			const struct rpl_srv *x = &s[i];
			/* line 164: $mstatus[3], set on line 117 only once the CSNs were read;
			 * "0" when the server has no olcServerID (line 83) */
			const char *sid = x->probe != RPL_OK ? "" : x->sid_raw ? x->sid_raw : "0";
			buf_addf(out, "Master: %s ServerID: %s Code: %d Status: %s", x->uri, sid,
				 x->code, x->status ? x->status : "");
			put_csns(x, out);
		}
	}
	for (size_t i = nmasters; i < n; i++) {
		const struct rpl_srv *x = &s[i];
		buf_addf(out, "Replica: %s Code: %d Status: %s", x->uri, x->code,
			 x->status ? x->status : "");
		put_csns(x, out);
	}
	if (nmasters == 1 && n && s[0].probe != RPL_OK)
		buf_addf(out, "zmbatch: master %s: Code: %d Status: %s (zmreplchk prints no "
			 "Master line for a single master)\n", s[0].uri, s[0].code,
			 s[0].status ? s[0].status : "");
	for (size_t i = 1; i < n; i++)
		if (s[i].note)
			buf_addf(out, "%s\n", s[i].note);
}

char *rpl_detail(const struct rpl_srv *s)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "uri=%s role=%s sid=\"%s\" code=%d status=\"%s\" sync=%s lag_s=%.3f csns=",
		 s->uri, s->master ? "master" : "replica", s->sid_raw ? s->sid_raw : "",
		 s->code, s->status ? s->status : "",
		 !s->compared ? "not-compared" : s->in_sync ? "yes" : "no", s->lag);
	for (size_t i = 0; i < s->csns.n; i++)
		buf_addf(&b, "%s%s", i ? "," : "", s->csns.v[i]);
	if (s->sid_diff)
		buf_addf(&b, " differs=\"%s\"", s->sid_diff);
	return buf_detach(&b);
}

/* ------------------------------------------------------------------ */
/* zmldapmmrtool -q                                                    */

/* split(/KEY/, $_, 2) then split(/ /, ..., 2): after the first KEY up to a space. */
static char *after_key(const char *val, const char *key)
{
	const char *p = strstr(val, key);
	if (!p)
		return NULL;
	p += strlen(key);
	return xstrndup(p, strcspn(p, " "));
}

void mmrq_agreement(const char *val, char **rid, char **uri, char **tls)
{
	char *v = ldc_redact(val);
	*rid = after_key(v, "rid=");
	*uri = after_key(v, "provider=");
	*tls = after_key(v, "starttls=");
	free(v);
}

enum mmrq_result mmrq_format(const struct strlist *sids, const struct strlist *syncrepl,
			     struct buf *out)
{
	if (!sids || !sids->n) {
		buf_adds(out, "Error: No Server ID found.  This does not appear to be a "
			 "multi-master server.\n");
		return MMRQ_NO_SID;
	}
	buf_addf(out, "Master Server ID: %s\n", sids->v[0]);
	if (!syncrepl || !syncrepl->n) {
		buf_adds(out, "Error: No sync replication entries found\n");
		return MMRQ_NO_AGREEMENT;
	}
	for (size_t k = 0; k < syncrepl->n; k++) {
		char *rid, *uri, *tls;
		mmrq_agreement(syncrepl->v[k], &rid, &uri, &tls);
		buf_addf(out, "Master replication agreement: %zu\n", k + 1);
		buf_addf(out, "rid: %s URI: %s TLS: %s\n", rid ? rid : "", uri ? uri : "",
			 tls ? tls : "");
		free(rid);
		free(uri);
		free(tls);
	}
	return MMRQ_OK;
}
