/*
 * import_answer.c - parse the callback= answer of a REST tgz import
 * (import_answer.h).
 */
#include "import_answer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

const char *import_verdict_name(enum import_verdict v)
{
	switch (v) {
	case IMPORT_SUCCESS: return "success";
	case IMPORT_WARN: return "warn";
	case IMPORT_FAIL: return "fail";
	}
	return "?";
}

void import_answer_release(struct import_answer *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		free(a->faults[i].code);
		free(a->faults[i].reason);
		free(a->faults[i].item);
	}
	free(a->faults);
	memset(a, 0, sizeof *a);
}

/* A server string as one short printable line (NULL in -> dflt). */
static char *clean_text(const char *s, const char *dflt)
{
	if (!s)
		return dflt ? xstrdup(dflt) : NULL;
	size_t n = strlen(s);
	if (n > IMPORT_MAX_TEXT)
		n = IMPORT_MAX_TEXT;
	char *r = xstrndup(s, n);
	for (char *p = r; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return r;
}

/* First occurrence of needle (nlen > 0) in hay[0..hlen), NULL if none. */
static const char *find_bytes(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	if (nlen == 0 || hlen < nlen)
		return NULL;
	for (size_t i = 0; i + nlen <= hlen; i++)
		if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0)
			return hay + i;
	return NULL;
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static const char *jstr(json_t *o, const char *k1, const char *k2)
{
	json_t *v = json_object_get(o, k1);
	if (k2)
		v = json_object_get(v, k2);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* One SOAP JS fault object into *f. */
static void read_fault(json_t *o, struct import_fault *f)
{
	json_t *error = json_object_get(json_object_get(o, "Detail"), "Error");
	f->code = clean_text(jstr(error, "Code", NULL), "?");
	f->reason = clean_text(jstr(o, "Reason", "Text"), "");
	const char *cv = jstr(o, "Code", "Value");
	f->sender = cv && strstr(cv, "Sender") != NULL;
	json_t *args = json_object_get(error, "a");
	size_t i;
	json_t *a;
	json_array_foreach(args, i, a) {
		const char *n = jstr(a, "n", NULL);
		const char *v = jstr(a, "_content", NULL);
		if (n && v && (strcmp(n, "path") == 0 || strcmp(n, "filename") == 0)) {
			f->item = clean_text(v, NULL);
			break;
		}
	}
}

enum zmb_rc import_answer_parse(const char *body, size_t len, const char *callback, bool cut,
				struct import_answer *out, char **err)
{
	enum zmb_rc rc = ZMB_EPROTO;
	const char *why = NULL;
	char *call = xasprintf("window.parent.%s(", callback ? callback : "");
	const char *end = body ? body + len : NULL;
	const char *p = body ? find_bytes(body, len, call, strlen(call)) : NULL;
	size_t cap = 0;

	memset(out, 0, sizeof *out);
	if (!p) {
		why = len ? "no callback call in the answer" : "an empty answer";
		goto out;
	}
	p = skip_ws(p + strlen(call), end);
	if (p >= end || (*p != '\'' && *p != '"')) {
		why = "no result word";
		goto out;
	}
	char q = *p++;
	const char *w = p;
	while (p < end && *p != q && p - w < 16)
		p++;
	if (p >= end || *p != q) {
		why = "an unterminated result word";
		goto out;
	}
	size_t wl = (size_t)(p - w);
	if (wl == 7 && memcmp(w, "success", 7) == 0)
		out->verdict = IMPORT_SUCCESS;
	else if (wl == 4 && memcmp(w, "warn", 4) == 0)
		out->verdict = IMPORT_WARN;
	else if (wl == 4 && memcmp(w, "fail", 4) == 0)
		out->verdict = IMPORT_FAIL;
	else {
		why = "an unknown result word";
		goto out;
	}
	p++;
	for (;;) {
		p = skip_ws(p, end);
		if (p < end && *p == ')')
			break;
		if ((p >= end || *p != ',') && cut) {
			out->cut = true;
			break;
		}
		if (p >= end || *p != ',') {
			why = "a cut-off or malformed fault list";
			goto out;
		}
		p = skip_ws(p + 1, end);
		json_error_t je;
		json_t *o = json_loadb(p, (size_t)(end - p), JSON_DISABLE_EOF_CHECK, &je);
		if (!json_is_object(o) || je.position <= 0 || (size_t)je.position > (size_t)(end - p)) {
			json_decref(o);
			if (cut) {
				out->cut = true;
				break;
			}
			why = "a fault that is not a JSON object";
			goto out;
		}
		p += je.position;
		out->total++;
		if (out->n < IMPORT_MAX_FAULTS) {
			if (out->n == cap) {
				cap = cap ? 2 * cap : 8;
				out->faults = xrealloc(out->faults, cap * sizeof *out->faults);
			}
			memset(&out->faults[out->n], 0, sizeof *out->faults);
			read_fault(o, &out->faults[out->n]);
			out->n++;
		}
		json_decref(o);
	}
	if (out->verdict == IMPORT_FAIL && out->total == 0) {
		why = "'fail' without a fault";
		goto out;
	}
	if (out->verdict == IMPORT_WARN && out->total == 0) {
		why = "'warn' without a fault";
		goto out;
	}
	rc = ZMB_OK;
out:
	if (rc) {
		import_answer_release(out);
		*err = xasprintf("import answer: %s", why ? why : "malformed");
	}
	free(call);
	return rc;
}
