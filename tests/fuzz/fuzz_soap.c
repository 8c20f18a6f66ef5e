/*
 * fuzz_soap.c - SOAP answers (JSON via jansson) as soap_auth(),
 * soap_list_accounts(), soap_get_account(), soap_mailbox_size() and
 * soap_modify_account() judge them: Fault/Detail/Error/Code and
 * Reason/Text, HTTP status classes, the <Foo>Response member, AuthResponse
 * authToken/lifetime, SearchDirectoryResponse accounts/attrs/more,
 * GetAccountResponse id, GetMailboxResponse mbox.s.
 *
 * Input: byte 0 picks the request, byte 1 the HTTP status, the rest is the
 * response body.
 */
#include "fuzz_util.h"

#include "soap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const soap_reqs[] = { "AuthRequest", "SearchDirectoryRequest",
						 "GetAccountRequest", "GetMailboxRequest",
						 "ModifyAccountRequest" };
	static const long soap_status[] = { 200, 200, 200, 200, 200, 200, 500, 503, 401, 404, 204, 302 };
	if (size < 2)
		return 0;
	const char *req = soap_reqs[data[0] % (sizeof soap_reqs / sizeof *soap_reqs)];
	long status = soap_status[data[1] % (sizeof soap_status / sizeof *soap_status)];
	char *err = NULL;
	enum zmb_rc rc = soap_parse_for_fuzz(req, status, (const char *)data + 2, size - 2, &err);
	if (rc != ZMB_OK && !err)
		fz_fail("soap", "error without a message", zmb_rc_name(rc));
	if (rc == ZMB_OK && status != 200)
		fz_fail("soap", "a non-200 answer was accepted", req);
	free(err);
	return 0;
}
