/*
 * fuzz_ldap.c - LDAP value parsing of the ldap stages: olcSyncrepl tokens
 * (rid=, provider=, credentials=, starttls=, syncdata=, quoting, the {N}
 * ordering prefix), olcServerID values, database DNs ({N}), DN comparison,
 * contextCSN strings (SID, time) and the lag between two CSN sets
 * (ldap_mmr_parse_for_fuzz, including subschema attributeTypes NAMEs), plus ldapc.c's credentials redaction and URI
 * normalisation.
 *
 * Invariant checked: ldc_redact() leaves no credentials= value of a
 * syncrepl line in its output.
 */
#include "fuzz_util.h"

#include "ldapc.h"
#include "stage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fz_text(data, size);
	ldap_mmr_parse_for_fuzz(text);

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
		free(line);
	}
	free(text);
	return 0;
}
