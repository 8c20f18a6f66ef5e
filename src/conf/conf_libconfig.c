/*
 * conf_libconfig.c - libconfig text -> struct cval tree (conf_internal.h).
 *
 * libconfig is confined to this file: the parsed tree is copied into a
 * `struct cval` tree (names, typed values, line numbers) right after
 * parsing and the libconfig tree is destroyed; the native reader reads every
 * key from the copy.  Main thread only.
 */
#include "conf_internal.h"

#include <ctype.h>
#include <libconfig.h>
#include <stdlib.h>
#include <string.h>

/*
 * libconfig 1.5 silently truncates a decimal integer beyond 32 bits that has
 * no 'L' suffix.  Find such a literal on a line (outside strings/comments) so
 * the reader can refuse it instead of using a wrong number.
 */
static bool line_has_big_int(const char *text, int line)
{
	const char *p = text;
	for (int l = 1; l < line && p; l++) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (!p)
		return false;
	bool in_str = false;
	for (; *p && *p != '\n'; p++) {
		if (in_str) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"')
				in_str = false;
			continue;
		}
		if (*p == '"') {
			in_str = true;
			continue;
		}
		if (*p == '#' || (*p == '/' && (p[1] == '/' || p[1] == '*')))
			return false;
		if (isdigit((unsigned char)*p) && (p == text || !isalnum((unsigned char)p[-1]))) {
			if (*p == '0' && (p[1] == 'x' || p[1] == 'X'))
				return false;
			const char *d = p;
			while (isdigit((unsigned char)*p))
				p++;
			if (*p != 'L' && *p != '.' && *p != 'e' && *p != 'E' &&
			    (p - d > 10 || (p - d == 10 && strncmp(d, "2147483647", 10) > 0)))
				return true;
			p--;
		}
	}
	return false;
}

static void cv_from_setting(const config_setting_t *s, struct cval *out, int parent_line)
{
	memset(out, 0, sizeof *out);
	const char *name = config_setting_name(s);
	out->name = name ? xstrdup(name) : NULL;
	out->line = config_setting_source_line(s) ? (int)config_setting_source_line(s) : parent_line;
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		out->type = CV_INT;
		out->i = config_setting_get_int64(s);
		break;
	case CONFIG_TYPE_FLOAT:
		out->type = CV_FLOAT;
		out->f = config_setting_get_float(s);
		break;
	case CONFIG_TYPE_BOOL:
		out->type = CV_BOOL;
		out->b = config_setting_get_bool(s) != 0;
		out->i = out->b;
		break;
	case CONFIG_TYPE_STRING:
		out->type = CV_STR;
		out->str = xstrdup(config_setting_get_string(s));
		break;
	default: {
		out->type = config_setting_is_group(s) ? CV_GROUP : CV_LIST;
		int n = config_setting_length(s);
		out->items = xcalloc(n > 0 ? (size_t)n : 1, sizeof *out->items);
		for (int i = 0; i < n; i++)
			cv_from_setting(config_setting_get_elem(s, (unsigned)i), &out->items[i], out->line);
		out->n = n > 0 ? (size_t)n : 0;
		break;
	}
	}
}

/* The first int literal that libconfig truncated: "FILE:LINE: ..." in *err. */
static int check_big_ints(const char *path, const struct cval *v, const char *text, char **err)
{
	if (v->type == CV_INT && v->line > 0 && v->i >= -2147483648LL && v->i <= 2147483647LL &&
	    line_has_big_int(text, v->line)) {
		*err = xasprintf("%s:%d: %s%s%sinteger too large: write it with an L suffix "
				 "or as a string (\"10G\", \"48h\")", path, v->line,
				 v->name ? "key '" : "", v->name ? v->name : "", v->name ? "': " : "");
		return -1;
	}
	for (size_t i = 0; i < v->n; i++)
		if (check_big_ints(path, &v->items[i], text, err))
			return -1;
	return 0;
}

enum zmb_rc conf_libconfig_read(const char *path, const char *text, struct cval *root,
				char **err)
{
	enum zmb_rc rc = ZMB_ECONFIG;
	config_t cfg;
	char *dir = job_file_dir(path);

	memset(root, 0, sizeof *root);
	config_init(&cfg);
	config_set_include_dir(&cfg, dir);
	if (config_read_string(&cfg, text) != CONFIG_TRUE) {
		const char *f = config_error_file(&cfg);
		*err = xasprintf("%s:%d: %s", f ? f : path, config_error_line(&cfg),
				 config_error_text(&cfg) ? config_error_text(&cfg) : "syntax error");
		goto out;
	}
	cv_from_setting(config_root_setting(&cfg), root, 0);
	if (check_big_ints(path, root, text, err))
		goto out;
	rc = ZMB_OK;
out:
	config_destroy(&cfg);
	free(dir);
	return rc;
}
