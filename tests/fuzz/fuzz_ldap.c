/*
 * fuzz_ldap.c - LDAP value parsing of the ldap stages: olcSyncrepl tokens
 * (rid=, provider=, credentials=, starttls=, syncdata=, quoting, the {N}
 * ordering prefix), olcServerID values, database DNs ({N}), DN comparison,
 * contextCSN strings (SID, time) and the lag between two CSN sets
 * (ldap_mmr_parse_for_fuzz, with subschema attributeTypes NAMEs), zmreplchk's and zmldapmmrtool -q's
 * comparisons and lines (ldap_format.h: each input line a CSN of one of
 * three servers, or an olcSyncrepl value), plus ldapc.c's credentials
 * redaction and URI normalisation.
 *
 * Invariants checked: ldc_redact() leaves no credentials= value of a
 * syncrepl line in its output, and zmldapmmrtool -q's lines of such an
 * agreement do not depend on the password in it.
 */
#include "fuzz_util.h"

#include "ldap_format.h"
#include "ldapc.h"
#include "stage.h"

/* The lines of text as three servers' CSNs (masters first) and as olcSyncrepl values. */
static void fuzz_format(const char *text)
{
	struct rpl_srv s[3];
	struct strlist lines = STRLIST_INIT;
	memset(s, 0, sizeof s);
	const char *uris[3] = { "ldap://m1/", "ldap://m2/", "ldap://r1/" };
	for (size_t i = 0; i < 3; i++) {
		s[i].uri = uris[i];
		s[i].master = i < 2;
	}
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		char *l = xstrndup(p, n);
		strlist_add(&s[lines.n % 3].csns, l);
		strlist_add_nodup(&lines, l);
		p += n + (p[n] == '\n');
	}
	if (lines.n % 5 == 4)
		s[1].probe = RPL_DOWN;
	for (size_t nm = 1; nm <= 2; nm++) {
		struct buf b = BUF_INIT;
		(void)rpl_judge(s, 3, nm);
		rpl_format(s, 3, nm, &b);
		for (size_t i = 0; i < 3; i++)
			free(rpl_detail(&s[i]));
		buf_release(&b);
	}
	for (size_t i = 0; i + 1 < lines.n && i < 16; i++) {
		long long secs;
		free(rpl_compare_csn(lines.v[i], lines.v[i + 1], &secs));
	}
	struct buf b = BUF_INIT;
	(void)mmrq_format(&lines, &lines, &b);
	buf_release(&b);
	for (size_t i = 0; i < 3; i++)
		rpl_srv_release(&s[i]);
	strlist_release(&lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fz_text(data, size);
	ldap_mmr_parse_for_fuzz(text);
	fuzz_format(text);

	char *red = ldc_redact(text);
	free(red);
	char *norm = ldc_uri_norm(text);
	free(norm);
	(void)ldc_uri_is_local(text);
	(void)ldc_uri_eq(text, "ldap://127.0.0.1:389");

	/* a well-formed agreement around the input: its password must vanish */
	if (size >= 6 && !memchr(text, '"', size) && !strchr(text, '\\') &&
	    strlen(text) == size) {
		char *line = xasprintf("{0}rid=101 provider=ldap://h:389 binddn=\"cn=x\" "
				       "credentials=\"%s\" searchbase=\"\"", text);
		red = ldc_redact(line);
		if (strcmp(red, "{0}rid=101 provider=ldap://h:389 binddn=\"cn=x\" credentials=*** "
			   "searchbase=\"\""))
			fz_fail("ldap", "ldc_redact did not hide exactly the credentials", NULL);
		free(red);
		struct strlist sids = STRLIST_INIT, sr = STRLIST_INIT;
		struct buf q = BUF_INIT;
		strlist_add(&sids, "1");
		strlist_add(&sr, line);
		mmrq_format(&sids, &sr, &q);
		if (strcmp(q.s, "Master Server ID: 1\nMaster replication agreement: 1\n"
			   "rid: 101 URI: ldap://h:389 TLS: \n"))
			fz_fail("ldap", "zmldapmmrtool -q lines depend on the password", NULL);
		buf_release(&q);
		strlist_release(&sids);
		strlist_release(&sr);
		free(line);
	}
	free(text);
	return 0;
}
