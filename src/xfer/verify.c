/*
 * verify.c - did the mailbox arrive (xfer.h "verification"): the source's
 * folder figures, taken when the archive was cut, against the target's after
 * the import, folder by folder.
 *
 * The rule (README "Verification"): every folder the export carried must
 * hold at least as many items on the target as on the source.  At least,
 * not exactly: the target may already hold mail from earlier passes or mail
 * delivered since.  Not compared, each with its reason in the detail:
 *   - Trash and Junk (and below): a searched export follows the logged-in
 *     admin's zimbraPrefIncludeTrashInSearch / IncludeSpamInSearch, and
 *     users and the server's purge policies empty them between passes;
 *   - folders whose view is a type the job does not export (migration.types);
 *   - on a Carbonio target, task and document folders (its import cannot
 *     make those items: carbonio-mailbox MailItem.constructItem).
 * A delta pass compares the total over the compared folders instead: it
 * does not carry moves (README "Delta passes"), so a message moved on the
 * source since the first pass is one folder short on the target, not lost.
 *
 * Counts cannot prove that each item's content is equal; the import's own
 * answer (callback=) names the items it could not import.
 */
#include "xfer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *xfer_figures_json(const struct xfer_folder *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s, s:s?, s:I, s:I}", "path", v[i].path ? v[i].path : "",
						   "view", v[i].view, "n", (json_int_t)v[i].n,
						   "s", (json_int_t)v[i].s));
	char *s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	if (!s)
		abort();
	return s;
}

int xfer_figures_parse(const char *text, struct xfer_folder **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	json_t *a = text ? json_loads(text, 0, NULL) : NULL;
	if (!json_is_array(a)) {
		json_decref(a);
		return -1;
	}
	size_t k = json_array_size(a);
	struct xfer_folder *v = xcalloc(k ? k : 1, sizeof *v);
	for (size_t i = 0; i < k; i++) {
		json_t *o = json_array_get(a, i);
		const char *p = json_string_value(json_object_get(o, "path"));
		const char *w = json_string_value(json_object_get(o, "view"));
		v[i].path = xstrdup(p ? p : "");
		v[i].view = w ? xstrdup(w) : NULL;
		v[i].n = json_integer_value(json_object_get(o, "n"));
		v[i].s = json_integer_value(json_object_get(o, "s"));
	}
	json_decref(a);
	*out = v;
	*n = k;
	return 0;
}

static bool under(const char *path, const char *top)
{
	size_t n = strlen(top);
	return !strncasecmp(path, top, n) && (path[n] == 0 || path[n] == '/');
}

/* Does the job export items of this folder's view? (types NULL/"" = all) */
static bool view_selected(const char *types, const char *view)
{
	if (!types || !*types)
		return true;
	const char *t = !view || !strcmp(view, "message") || !strcmp(view, "conversation") ? "message"
		      : view;
	return strstr(types, t) != NULL;
}

static const struct xfer_folder *find(const struct xfer_folder *v, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].path && !strcasecmp(v[i].path, path))   /* folder names ignore case */
			return &v[i];
	return NULL;
}

enum xfer_verdict xfer_verify_compare(const struct xfer_folder *src, size_t ns,
				      const struct xfer_folder *dst, size_t nd,
				      const struct xfer_verify_rules *r, char **detail)
{
	struct buf skipped = BUF_INIT;
	long long worst = 0, short_folders = 0, total_s = 0, total_d = 0, compared = 0;
	const struct xfer_folder *wf = NULL;
	long long wt = 0;
	for (size_t i = 0; i < ns; i++) {
		const struct xfer_folder *f = &src[i];
		if (f->n <= 0 || !f->path)
			continue;
		const char *why = NULL;
		if (under(f->path, "Trash") || under(f->path, "Junk"))
			why = "Trash/Junk";
		else if (!view_selected(r->types, f->view))
			why = "type not exported";
		else if (r->target_carbonio && f->view &&
			 (!strcmp(f->view, "task") || !strcmp(f->view, "document")))
			why = "Carbonio cannot import";
		if (why) {
			buf_addf(&skipped, "%s%s (%lld, %s)", skipped.len ? ", " : "", f->path, f->n, why);
			continue;
		}
		const struct xfer_folder *t = find(dst, nd, f->path);
		long long tn = t ? t->n : 0;
		compared++;
		total_s += f->n;
		total_d += tn;
		if (tn < f->n) {
			short_folders++;
			if (f->n - tn > worst) {
				worst = f->n - tn;
				wf = f;
				wt = tn;
			}
		}
	}
	enum xfer_verdict v;
	if (r->totals_only)
		v = total_d >= total_s ? XFER_VERIFY_OK : XFER_VERIFY_MISMATCH;
	else
		v = short_folders ? XFER_VERIFY_MISMATCH : XFER_VERIFY_OK;
	char *sk = skipped.len ? buf_detach(&skipped) : NULL;
	buf_release(&skipped);
	if (v == XFER_VERIFY_MISMATCH && r->totals_only)
		*detail = xasprintf("%lld item(s) in %lld compared folder(s) on the source, %lld on the "
				    "target%s%s", total_s, compared, total_d, sk ? "; not compared: " : "",
				    sk ? sk : "");
	else if (v == XFER_VERIFY_MISMATCH && short_folders > 1)
		*detail = xasprintf("%s: source %lld item(s), target %lld (%lld missing); %lld more "
				    "folder(s) short", wf->path, wf->n, wt, wf->n - wt, short_folders - 1);
	else if (v == XFER_VERIFY_MISMATCH)
		*detail = xasprintf("%s: source %lld item(s), target %lld (%lld missing)", wf->path,
				    wf->n, wt, wf->n - wt);
	else
		*detail = xasprintf("%lld folder(s), %lld item(s) on the source, %lld on the target%s%s",
				    compared, total_s, total_d, sk ? "; not compared: " : "", sk ? sk : "");
	free(sk);
	return v;
}

const char *xfer_verdict_name(enum xfer_verdict v)
{
	switch (v) {
	case XFER_VERIFY_OK: return "ok";
	case XFER_VERIFY_MISMATCH: return "mismatch";
	case XFER_VERIFY_UNVERIFIABLE: return "unverifiable";
	}
	return "?";
}
