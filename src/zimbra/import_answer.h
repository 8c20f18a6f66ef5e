/*
 * import_answer.h - the answer of a REST tgz import sent with callback=NAME.
 *
 * Real servers (zm-mailbox service/formatter/Formatter.java updateClient,
 * 339-455; the same in carbonio-mailbox 336-456): with callback= the import
 * always answers HTTP 200 text/html
 *
 *   <html>...<body onload='onLoad()'><script>function onLoad() {
 *       window.parent.NAME('success'|'warn'|'fail',
 *   	FAULT,
 *   	FAULT);
 *   }</script></body></html>
 *
 * where each FAULT is a SOAP JS fault (SoapJSProtocol.soapFault):
 * {"Code":{"Value":"soap:Sender"},"Reason":{"Text":"..."},
 *  "Detail":{"Error":{"Code":"mail.QUOTA_EXCEEDED","a":[{"n":"path","t":"STR","_content":"..."}]}}}.
 * 'fail': the first fault is the fatal error, then the warnings; 'warn': one
 * fault per item that could not be imported (ArchiveFormatter.addError);
 * 'success': none.  Without callback= the server drops the warnings.
 *
 * The body is hostile text: lengths are bounded (IMPORT_MAX_FAULTS faults
 * kept, each string cut at IMPORT_MAX_TEXT bytes and made one printable
 * line), and an answer that does not have this form is ZMB_EPROTO.
 *
 * Pure functions, any thread; the caller owns the answer
 * (import_answer_release, NULL-safe).
 */
#ifndef ZMB_IMPORT_ANSWER_H
#define ZMB_IMPORT_ANSWER_H

#include "zmb.h"

#include <stddef.h>

/* the name zmbatch passes as callback= (matches ^[a-zA-Z0-9_.-]+$) */
#define IMPORT_CALLBACK "zmbatchImport"
#define IMPORT_MAX_FAULTS 200
#define IMPORT_MAX_TEXT 300

enum import_verdict { IMPORT_SUCCESS = 0, IMPORT_WARN, IMPORT_FAIL };

struct import_fault {
	char *code;     /* Detail.Error.Code, e.g. "mail.QUOTA_EXCEEDED"; never NULL */
	char *reason;   /* Reason.Text; never NULL */
	char *item;     /* the a[] argument "path" or "filename"; NULL if none */
	bool sender;    /* Code.Value soap:Sender (the archive's fault, not the server's) */
};

struct import_answer {
	enum import_verdict verdict;
	struct import_fault *faults;   /* the first IMPORT_MAX_FAULTS */
	size_t n;
	size_t total;                  /* faults in the answer, >= n */
	bool cut;                      /* the body was cut at the caller's cap: total is a floor */
};

/*
 * Parse an import answer body (len bytes, not NUL-terminated) for callback
 * name `callback`.  `cut`: the caller kept only the first len bytes of a
 * longer body; a fault list broken off at the end is then accepted (out->cut).
 * ZMB_OK with *out filled, or ZMB_EPROTO with *err (caller frees) saying
 * what is wrong; *out is then empty.
 */
enum zmb_rc import_answer_parse(const char *body, size_t len, const char *callback, bool cut,
				struct import_answer *out, char **err);
void import_answer_release(struct import_answer *a);
/* "success", "warn", "fail" */
const char *import_verdict_name(enum import_verdict v);

#endif
