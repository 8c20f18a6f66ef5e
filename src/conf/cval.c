/*
 * cval.c - typed stage settings (struct cval) and their accessors.
 *
 * A cval tree is built by the native job file reader (src/conf/conf_libconfig.c)
 * from the libconfig tree, and handed to the stage validators.  The accessors below
 * are what the validators use: each checks the type and reports
 * "file:line: key 'name': expected ..." on a mismatch.  All functions are
 * pure (no shared state); the tree is read-only once the job is loaded.
 */
#include "job.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const struct cval *cval_get(const struct cval *group, const char *name)
{
	if (!group || group->type != CV_GROUP || !name)
		return NULL;
	for (size_t i = 0; i < group->n; i++)
		if (group->items[i].name && !strcmp(group->items[i].name, name))
			return &group->items[i];
	return NULL;
}

void cval_release(struct cval *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++)
		cval_release(&v->items[i]);
	free(v->items);
	free(v->name);
	free(v->str);
	memset(v, 0, sizeof *v);
}

void cval_copy(const struct cval *src, struct cval *dst)
{
	*dst = *src;
	dst->name = xstrdup(src->name);
	dst->str = xstrdup(src->str);
	dst->items = NULL;
	if (src->n) {
		dst->items = xcalloc(src->n, sizeof *dst->items);
		for (size_t i = 0; i < src->n; i++)
			cval_copy(&src->items[i], &dst->items[i]);
	}
}

/* "file:line: key 'k': <msg>" (line of the value, else of the group). */
static int cval_fail(const struct cval *g, const struct cval *v, const char *key,
		     const char *file, char **err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static int cval_fail(const struct cval *g, const struct cval *v, const char *key,
		     const char *file, char **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	int line = v && v->line ? v->line : (g ? g->line : 0);
	if (err) {
		if (line > 0)
			*err = xasprintf("%s:%d: key '%s': %s", file ? file : "?", line, key, msg);
		else
			*err = xasprintf("%s: key '%s': %s", file ? file : "?", key, msg);
	}
	free(msg);
	return -1;
}

int cval_str(const struct cval *g, const char *key, const char *def,
	     const char **out, const char *file, char **err)
{
	const struct cval *v = cval_get(g, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (v->type != CV_STR)
		return cval_fail(g, v, key, file, err, "expected a string");
	*out = v->str;
	return 0;
}

int cval_int(const struct cval *g, const char *key, long long def,
	     long long *out, const char *file, char **err)
{
	const struct cval *v = cval_get(g, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (v->type != CV_INT)
		return cval_fail(g, v, key, file, err, "expected an integer");
	*out = v->i;
	return 0;
}

int cval_bool(const struct cval *g, const char *key, bool def,
	      bool *out, const char *file, char **err)
{
	const struct cval *v = cval_get(g, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (v->type != CV_BOOL)
		return cval_fail(g, v, key, file, err, "expected true or false");
	*out = v->b;
	return 0;
}

int cval_strlist(const struct cval *g, const char *key, struct strlist *out,
		 const char *file, char **err)
{
	const struct cval *v = cval_get(g, key);
	if (!v)
		return 0;
	if (v->type == CV_STR) {
		strlist_add(out, v->str);
		return 0;
	}
	if (v->type != CV_LIST)
		return cval_fail(g, v, key, file, err, "expected a string or a list of strings");
	for (size_t i = 0; i < v->n; i++)
		if (v->items[i].type != CV_STR)
			return cval_fail(g, &v->items[i], key, file, err,
					 "element %zu: expected a string", i + 1);
	for (size_t i = 0; i < v->n; i++)
		strlist_add(out, v->items[i].str);
	return 0;
}

int cval_duration(const struct cval *g, const char *key, long long def,
		  long long *out, const char *file, char **err)
{
	const struct cval *v = cval_get(g, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (v->type == CV_INT) {
		if (v->i < 0)
			return cval_fail(g, v, key, file, err, "must not be negative");
		*out = v->i;
		return 0;
	}
	long long secs;
	if (v->type != CV_STR || parse_duration(v->str, &secs) < 0)
		return cval_fail(g, v, key, file, err,
				 "expected a duration like \"90s\", \"45m\", \"8h\", \"1h30m\" or seconds");
	*out = secs;
	return 0;
}
