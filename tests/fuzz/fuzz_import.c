/*
 * fuzz_import.c - the answer of a REST import sent with callback= (a
 * hostile server's text): import_answer_parse() on arbitrary bytes, whole
 * and cut at the caller's cap.
 *
 * Invariants checked: an error has a message; an accepted answer keeps at
 * most IMPORT_MAX_FAULTS faults, each string at most IMPORT_MAX_TEXT bytes,
 * printable, one line; 'success' has no fault and 'fail' at least one.
 */
#include "fuzz_util.h"

#include "import_answer.h"

static void fz_import_check_text(const char *s)
{
	if (!s)
		return;
	if (strlen(s) > IMPORT_MAX_TEXT)
		fz_fail("import", "a fault string longer than IMPORT_MAX_TEXT", s);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			fz_fail("import", "a control character in a fault string", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int cut = 0; cut < 2; cut++) {
		struct import_answer a;
		char *err = NULL;
		enum zmb_rc rc = import_answer_parse((const char *)data, size, IMPORT_CALLBACK,
						     cut != 0, &a, &err);
		if (rc != ZMB_OK) {
			if (!err)
				fz_fail("import", "error without a message", zmb_rc_name(rc));
			free(err);
			continue;
		}
		if (a.n > IMPORT_MAX_FAULTS || a.total < a.n)
			fz_fail("import", "fault counts out of bounds", "");
		if (a.verdict == IMPORT_SUCCESS && a.n)
			fz_fail("import", "'success' with faults", "");
		if (a.verdict == IMPORT_FAIL && !a.n)
			fz_fail("import", "'fail' without a fault", "");
		for (size_t i = 0; i < a.n; i++) {
			if (!a.faults[i].code || !a.faults[i].reason)
				fz_fail("import", "a fault without code or reason", "");
			fz_import_check_text(a.faults[i].code);
			fz_import_check_text(a.faults[i].reason);
			fz_import_check_text(a.faults[i].item);
		}
		import_answer_release(&a);
		free(err);
	}
	return 0;
}
