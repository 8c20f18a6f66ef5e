/*
 * cval.c - typed stage settings (struct cval) and their accessors.
 */
#include "job.h"

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

int cval_str(const struct cval *g, const char *key, const char *def,
	     const char **out, const char *file, char **err)
{
	(void)file; (void)err;
	const struct cval *v = cval_get(g, key);
	*out = v && v->type == CV_STR ? v->str : def;
	return 0;
}

int cval_int(const struct cval *g, const char *key, long long def,
	     long long *out, const char *file, char **err)
{
	(void)file; (void)err;
	const struct cval *v = cval_get(g, key);
	*out = v && v->type == CV_INT ? v->i : def;
	return 0;
}

int cval_bool(const struct cval *g, const char *key, bool def,
	      bool *out, const char *file, char **err)
{
	(void)file; (void)err;
	const struct cval *v = cval_get(g, key);
	*out = v && v->type == CV_BOOL ? v->b : def;
	return 0;
}

int cval_strlist(const struct cval *g, const char *key, struct strlist *out,
		 const char *file, char **err)
{
	(void)file; (void)err;
	const struct cval *v = cval_get(g, key);
	if (v && v->type == CV_STR)
		strlist_add(out, v->str);
	return 0;
}

int cval_duration(const struct cval *g, const char *key, long long def,
		  long long *out, const char *file, char **err)
{
	(void)file; (void)err;
	const struct cval *v = cval_get(g, key);
	*out = v && v->type == CV_INT ? v->i : def;
	return 0;
}
