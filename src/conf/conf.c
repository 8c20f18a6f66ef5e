/*
 * conf.c - job files: the native libconfig reader, defaults and validation
 * shared with the legacy reader (src/conf/conf_legacy.c), and the native
 * writer used by `convert`.  The job model itself is job.c.
 *
 * libconfig is confined to this file: the parsed tree is copied into a
 * `struct cval` tree (with line numbers) right after parsing, and every key is
 * read from that copy.  Every error is "FILE:LINE: key 'group.key': message";
 * every function returns ZMB_ECONFIG on a configuration error.
 *
 * Main thread only (loading); the resulting job is then read-only.
 */
#define _GNU_SOURCE
#include "job.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define JOB_FILE_MAX (4 * 1024 * 1024)

/* ---- reading the file ---- */

static enum zmb_rc read_text(const char *path, char **text, char **err)
{
	enum zmb_rc rc = ZMB_ECONFIG;
	struct buf b = BUF_INIT;
	FILE *f = fopen(path, "r");
	if (!f) {
		*err = xasprintf("%s: cannot read job file: %s", path, strerror(errno));
		goto out;
	}
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		buf_add(&b, chunk, n);
		if (b.len > JOB_FILE_MAX) {
			*err = xasprintf("%s: job file is larger than %d bytes", path, JOB_FILE_MAX);
			goto out;
		}
	}
	if (ferror(f)) {
		*err = xasprintf("%s: cannot read job file: %s", path, strerror(errno));
		goto out;
	}
	if (b.len && memchr(b.s, '\0', b.len)) {
		*err = xasprintf("%s: job file contains a NUL byte (not a text file)", path);
		goto out;
	}
	*text = buf_detach(&b);
	rc = ZMB_OK;
out:
	if (f)
		fclose(f);
	if (b.s)
		explicit_bzero(b.s, b.alloc);
	buf_release(&b);
	return rc;
}

/* Keys of a zmztozmig.conf that cannot be mistaken for native keys. */
static const char *const legacy_marker_keys[] = {
	"SourceZCSServer", "SourceAdminUser", "SourceAdminPwd", "SourceAdminPort",
	"TargetZCSServer", "TargetAdminUser", "TargetAdminPwd", "TargetAdminPort",
	"Threads", "WorkingDirectory", "FailedDirectory", "SuccessDirectory",
	"LogDirectory", "KeepSuccessFiles", "ZimbraMailTransport", "DomainMap",
	"Domains", "Accounts", NULL
};

/*
 * A zmztozmig.conf has bare `Key=Value` lines with zmztozmig's keys; a native
 * file has `key = value;`, quoted strings and groups.  Some words are both
 * ("threads" is a native key too), so each significant line votes: legacy
 * when it names a zmztozmig key with a bare value and no trailing ';', native
 * when it has libconfig punctuation.  Ties go to native.
 */
bool conf_is_legacy(const char *text)
{
	const char *p = text ? text : "";
	int legacy = 0, native = 0;
	bool in_comment = false;
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		const char *s = p;
		const char *e = p + len;
		p = eol ? eol + 1 : e;
		while (s < e && isspace((unsigned char)*s))
			s++;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (in_comment) {
			if (memmem(s, (size_t)(e - s), "*/", 2))
				in_comment = false;
			continue;
		}
		if (s == e || *s == '#' || (e - s >= 2 && s[0] == '/' && s[1] == '/'))
			continue;
		if (e - s >= 2 && s[0] == '/' && s[1] == '*') {
			in_comment = !memmem(s + 2, (size_t)(e - s - 2), "*/", 2);
			native++;
			continue;
		}
		if (strchr("{}()[]", *s) || e[-1] == ';' || e[-1] == '{' || e[-1] == '(' ||
		    e[-1] == ',') {
			native++;
			continue;
		}
		/* the key: letters only, then optional blanks, then '=' */
		const char *k = s;
		while (s < e && isalpha((unsigned char)*s))
			s++;
		size_t klen = (size_t)(s - k);
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		if (!klen || s == e || (*s != '=' && *s != ':'))
			continue;
		const char *v = s + 1;
		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		if (*s == ':' || (v < e && strchr("\"{([", *v))) {
			native++;
			continue;
		}
		for (size_t i = 0; legacy_marker_keys[i]; i++)
			if (strlen(legacy_marker_keys[i]) == klen &&
			    !strncasecmp(legacy_marker_keys[i], k, klen)) {
				legacy++;
				break;
			}
	}
	return legacy > native;
}

/* ---- native reader: libconfig -> cval ---- */

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

static void cv_copy(const struct cval *src, struct cval *dst)
{
	*dst = *src;
	dst->name = xstrdup(src->name);
	dst->str = xstrdup(src->str);
	dst->items = NULL;
	if (src->n) {
		dst->items = xcalloc(src->n, sizeof *dst->items);
		for (size_t i = 0; i < src->n; i++)
			cv_copy(&src->items[i], &dst->items[i]);
	}
}

/* native parse context */
struct np {
	const char *path;
	struct job *job;
	char **err;
	int failed;
	const struct stage_catalog *cat;
};

static int np_fail(struct np *np, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int np_fail(struct np *np, int line, const char *fmt, ...)
{
	if (np->failed++)
		return -1;          /* keep the first error */
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (line > 0)
		*np->err = xasprintf("%s:%d: %s", np->path, line, msg);
	else
		*np->err = xasprintf("%s: %s", np->path, msg);
	free(msg);
	return -1;
}

static char *dotted(const char *grp, const char *key)
{
	return grp && *grp ? xasprintf("%s.%s", grp, key) : xstrdup(key);
}

static int np_bad(struct np *np, const struct cval *v, const char *grp, const char *key,
		  const char *msg)
{
	char *k = dotted(grp, key);
	np_fail(np, v->line, "key '%s': %s", k, msg);
	free(k);
	return -1;
}

static int check_keys(struct np *np, const struct cval *g, const char *grp,
		      const char *const *allowed)
{
	for (size_t i = 0; i < g->n; i++) {
		const struct cval *v = &g->items[i];
		bool ok = false;
		for (size_t j = 0; allowed[j] && !ok; j++)
			ok = !strcmp(allowed[j], v->name);
		if (!ok) {
			struct buf known = BUF_INIT;
			for (size_t j = 0; allowed[j]; j++)
				buf_addf(&known, "%s%s", j ? ", " : "", allowed[j]);
			char *k = dotted(grp, v->name);
			np_fail(np, v->line, "unknown key '%s' (known keys%s%s: %s)", k,
				grp && *grp ? " of " : "", grp && *grp ? grp : "", known.s);
			free(k);
			buf_release(&known);
			return -1;
		}
	}
	return 0;
}

static const struct cval *get_group(struct np *np, const struct cval *root, const char *key)
{
	const struct cval *v = cval_get(root, key);
	if (v && v->type != CV_GROUP) {
		np_bad(np, v, NULL, key, "expected a group { ... }");
		return NULL;
	}
	return v;
}

static int get_str(struct np *np, const struct cval *g, const char *grp, const char *key,
		   char **out)
{
	const struct cval *v = cval_get(g, key);
	if (!v)
		return 0;
	if (v->type != CV_STR)
		return np_bad(np, v, grp, key, "expected a string");
	if (!*v->str)
		return np_bad(np, v, grp, key, "must not be empty");
	free(*out);
	*out = xstrdup(v->str);
	return 0;
}

static int get_int(struct np *np, const struct cval *g, const char *grp, const char *key,
		   long long min, long long max, long long *out)
{
	const struct cval *v = cval_get(g, key);
	if (!v)
		return 0;
	if (v->type != CV_INT)
		return np_bad(np, v, grp, key, "expected an integer");
	if (v->i < min || v->i > max) {
		char *m = xasprintf("must be %lld..%lld", min, max);
		np_bad(np, v, grp, key, m);
		free(m);
		return -1;
	}
	*out = v->i;
	return 0;
}

static int get_int_i(struct np *np, const struct cval *g, const char *grp, const char *key,
		     int min, int max, int *out)
{
	long long x = *out;
	if (get_int(np, g, grp, key, min, max, &x))
		return -1;
	*out = (int)x;
	return 0;
}

static int get_bool(struct np *np, const struct cval *g, const char *grp, const char *key,
		    bool *out)
{
	const struct cval *v = cval_get(g, key);
	if (!v)
		return 0;
	if (v->type != CV_BOOL)
		return np_bad(np, v, grp, key, "expected true or false");
	*out = v->b;
	return 0;
}

static int get_duration(struct np *np, const struct cval *g, const char *grp, const char *key,
			long long *out)
{
	const struct cval *v = cval_get(g, key);
	if (!v)
		return 0;
	long long secs;
	if (v->type == CV_INT && v->i >= 0)
		secs = v->i;
	else if (v->type != CV_STR || parse_duration(v->str, &secs) < 0)
		return np_bad(np, v, grp, key,
			      "expected a duration like \"90s\", \"45m\", \"8h\", \"1h30m\" or seconds");
	*out = secs;
	return 0;
}

static int get_bytes(struct np *np, const struct cval *g, const char *grp, const char *key,
		     long long *out)
{
	const struct cval *v = cval_get(g, key);
	if (!v)
		return 0;
	long long n;
	if (v->type == CV_INT && v->i >= 0)
		n = v->i;
	else if (v->type != CV_STR || parse_bytes(v->str, &n) < 0)
		return np_bad(np, v, grp, key,
			      "expected a size like \"512k\", \"10M\", \"1G\" or bytes");
	*out = n;
	return 0;
}

static int get_strlist(struct np *np, const struct cval *g, const char *grp, const char *key,
		       struct strlist *out)
{
	const struct cval *v = cval_get(g, key);
	if (!v)
		return 0;
	if (v->type == CV_STR) {
		if (!*v->str)
			return np_bad(np, v, grp, key, "must not be empty");
		strlist_add(out, v->str);
		return 0;
	}
	if (v->type != CV_LIST)
		return np_bad(np, v, grp, key, "expected a string or a list of strings");
	for (size_t i = 0; i < v->n; i++) {
		const struct cval *e = &v->items[i];
		if (e->type != CV_STR || !*e->str) {
			char *m = xasprintf("element %zu: expected a non-empty string", i + 1);
			np_bad(np, e, grp, key, m);
			free(m);
			return -1;
		}
		strlist_add(out, e->str);
	}
	return 0;
}

/* One of a fixed set of words. */
static int get_enum(struct np *np, const struct cval *g, const char *grp, const char *key,
		    const char *const *words, int *out)
{
	const struct cval *v = cval_get(g, key);
	if (!v)
		return 0;
	if (v->type == CV_STR)
		for (int i = 0; words[i]; i++)
			if (!strcmp(words[i], v->str)) {
				*out = i;
				return 0;
			}
	struct buf b = BUF_INIT;
	buf_adds(&b, "must be one of ");
	for (int i = 0; words[i]; i++)
		buf_addf(&b, "%s\"%s\"", i ? ", " : "", words[i]);
	np_bad(np, v, grp, key, b.s);
	buf_release(&b);
	return -1;
}

static const char *const server_keys[] = {
	"host", "port", "admin_user", "admin_password_file", "admin_password_env",
	"admin_password", "ca_file", "pinned_pubkey", "tls_verify", "scheme", NULL
};

static void parse_server(struct np *np, const struct cval *g, struct server *s)
{
	const char *grp = s->role;
	if (!g)
		return;
	s->line = g->line;
	if (check_keys(np, g, grp, server_keys))
		return;
	get_str(np, g, grp, "host", &s->host);
	get_int_i(np, g, grp, "port", 1, 65535, &s->port);
	get_str(np, g, grp, "admin_user", &s->admin_user);
	get_str(np, g, grp, "admin_password_file", &s->password_file);
	get_str(np, g, grp, "admin_password_env", &s->password_env);
	const struct cval *pw = cval_get(g, "admin_password");
	if (pw) {
		if (pw->type != CV_STR || !*pw->str)
			np_bad(np, pw, grp, "admin_password", "expected a non-empty string");
		else {
			secret_free(s->password);
			s->password = xstrdup(pw->str);
			s->password_inline = true;
		}
	}
	get_str(np, g, grp, "ca_file", &s->ca_file);
	get_str(np, g, grp, "pinned_pubkey", &s->pinned_pubkey);
	get_bool(np, g, grp, "tls_verify", &s->tls_verify);
	static const char *const schemes[] = { "https", "http", NULL };
	int sc = -1;
	get_enum(np, g, grp, "scheme", schemes, &sc);
	if (sc >= 0) {
		free(s->scheme);
		s->scheme = xstrdup(schemes[sc]);
	}
}

static const char *const migration_keys[] = {
	"accounts", "accounts_file", "domains", "domain_map", "threads", "working_dir",
	"success_dir", "failed_dir", "keep_success_files", "transfer", "resolve", "types",
	"max_attempts", "order", "mail_transport", "max_bytes_per_second",
	"max_bytes_per_second_total", "retry_backoff",
	"retry_backoff_max", "delta_overlap", "low_speed_time", "low_speed_limit",
	"buffer_size", NULL
};

static void add_map(struct migration *m, const char *from, size_t flen, const char *to)
{
	m->maps = xrealloc(m->maps, (m->nmaps + 1) * sizeof *m->maps);
	m->maps[m->nmaps].from = xstrndup(from, flen);
	m->maps[m->nmaps].to = xstrdup(to);
	strtrim(m->maps[m->nmaps].from);
	strtrim(m->maps[m->nmaps].to);
	m->nmaps++;
}

static void parse_migration(struct np *np, const struct cval *g, struct migration *m)
{
	const char *grp = "migration";
	if (!g)
		return;
	m->line = g->line;
	if (check_keys(np, g, grp, migration_keys))
		return;
	get_strlist(np, g, grp, "accounts", &m->accounts);
	get_str(np, g, grp, "accounts_file", &m->accounts_file);
	get_strlist(np, g, grp, "domains", &m->domains);

	struct strlist maps = STRLIST_INIT;
	const struct cval *mv = cval_get(g, "domain_map");
	if (!get_strlist(np, g, grp, "domain_map", &maps)) {
		for (size_t i = 0; i < maps.n; i++) {
			const char *eq = strchr(maps.v[i], '=');
			if (!eq || eq == maps.v[i] || !eq[1] || strchr(eq + 1, '=')) {
				char *msg = xasprintf("'%s': expected \"from.example.com=to.example.com\"",
						      maps.v[i]);
				np_bad(np, mv, grp, "domain_map", msg);
				free(msg);
				break;
			}
			add_map(m, maps.v[i], (size_t)(eq - maps.v[i]), eq + 1);
		}
	}
	strlist_release(&maps);

	get_int_i(np, g, grp, "threads", 1, 256, &m->threads);
	get_str(np, g, grp, "working_dir", &m->working_dir);
	get_str(np, g, grp, "success_dir", &m->success_dir);
	get_str(np, g, grp, "failed_dir", &m->failed_dir);
	get_bool(np, g, grp, "keep_success_files", &m->keep_success_files);
	static const char *const transfers[] = { "spool", "stream", NULL };
	int t = (int)m->transfer;
	if (!get_enum(np, g, grp, "transfer", transfers, &t))
		m->transfer = (enum transfer_mode)t;
	static const char *const resolves[] = { "skip", "modify", "replace", "reset", NULL };
	int r = -1;
	if (!get_enum(np, g, grp, "resolve", resolves, &r) && r >= 0) {
		free(m->resolve);
		m->resolve = xstrdup(resolves[r]);
	}
	get_str(np, g, grp, "types", &m->types);
	get_int_i(np, g, grp, "max_attempts", 1, 1000, &m->max_attempts);
	static const char *const orders[] = { "largest-first", "as-listed", NULL };
	int o = (int)m->order;
	if (!get_enum(np, g, grp, "order", orders, &o))
		m->order = (enum order_mode)o;
	get_str(np, g, grp, "mail_transport", &m->mail_transport);
	get_bytes(np, g, grp, "max_bytes_per_second", &m->max_bytes_per_second);
	get_bytes(np, g, grp, "max_bytes_per_second_total", &m->max_bytes_per_second_total);
	get_duration(np, g, grp, "retry_backoff", &m->retry_backoff);
	get_duration(np, g, grp, "retry_backoff_max", &m->retry_backoff_max);
	get_duration(np, g, grp, "delta_overlap", &m->delta_overlap);
	get_duration(np, g, grp, "low_speed_time", &m->low_speed_time);
	get_bytes(np, g, grp, "low_speed_limit", &m->low_speed_limit);
	get_bytes(np, g, grp, "buffer_size", &m->buffer_size);
	const struct cval *bs = cval_get(g, "buffer_size");
	if (bs && !np->failed && (m->buffer_size < 4096 || m->buffer_size > (1LL << 30)))
		np_bad(np, bs, grp, "buffer_size", "must be 4k..1G");
}

static bool stage_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

static void parse_stages(struct np *np, const struct cval *v)
{
	struct job *job = np->job;
	if (v->type != CV_LIST) {
		np_bad(np, v, NULL, "stages", "expected a list ( { name = \"...\"; type = \"...\"; }, ... )");
		return;
	}
	if (v->n == 0) {
		np_bad(np, v, NULL, "stages", "must list at least one stage (or be left out)");
		return;
	}
	job->stages = xcalloc(v->n, sizeof *job->stages);
	for (size_t i = 0; i < v->n && !np->failed; i++) {
		const struct cval *g = &v->items[i];
		char where[32];
		snprintf(where, sizeof where, "stages[%zu]", i);
		if (g->type != CV_GROUP) {
			np_fail(np, g->line, "%s: expected a group { name = \"...\"; type = \"...\"; }", where);
			break;
		}
		const struct cval *nm = cval_get(g, "name");
		const struct cval *ty = cval_get(g, "type");
		if (!nm) {
			np_fail(np, g->line, "%s: missing key 'name'", where);
			break;
		}
		if (nm->type != CV_STR || !stage_name_ok(nm->str)) {
			np_bad(np, nm, where, "name",
			       "expected a non-empty string of letters, digits, '-', '_' or '.'");
			break;
		}
		for (size_t j = 0; j < job->nstages; j++)
			if (!strcmp(job->stages[j].name, nm->str)) {
				np_fail(np, nm->line, "stage '%s': duplicate stage name (first defined on line %d)",
					nm->str, job->stages[j].line);
				break;
			}
		if (np->failed)
			break;
		if (!ty) {
			np_fail(np, g->line, "stage '%s': missing key 'type' (one of %s)", nm->str,
				np->cat->names());
			break;
		}
		if (ty->type != CV_STR || !np->cat->known(ty->str)) {
			np_fail(np, ty->line, "stage '%s': key 'type': unknown stage type%s%s%s (known: %s)",
				nm->str, ty->type == CV_STR ? " '" : "",
				ty->type == CV_STR ? ty->str : "", ty->type == CV_STR ? "'" : "",
				np->cat->names());
			break;
		}
		struct stage_conf *sc = &job->stages[job->nstages++];
		sc->name = xstrdup(nm->str);
		sc->type = xstrdup(ty->str);
		sc->line = g->line;
		cv_copy(g, &sc->settings);
	}
}

static const char *const top_keys[] = {
	"job", "source", "target", "migration", "token", "state", "log", "run", "stages", NULL
};

static void parse_native(struct np *np, const struct cval *root)
{
	struct job *job = np->job;
	if (check_keys(np, root, NULL, top_keys))
		return;
	get_str(np, root, NULL, "job", &job->name);
	if (job->name && strchr(job->name, '|'))
		np_bad(np, cval_get(root, "job"), NULL, "job", "must not contain '|'");
	parse_server(np, get_group(np, root, "source"), &job->source);
	parse_server(np, get_group(np, root, "target"), &job->target);
	parse_migration(np, get_group(np, root, "migration"), &job->mig);

	const struct cval *g;
	static const char *const token_keys[] = { "refresh_margin", NULL };
	if ((g = get_group(np, root, "token")) && !check_keys(np, g, "token", token_keys))
		get_duration(np, g, "token", "refresh_margin", &job->token_refresh_margin);

	static const char *const state_keys[] = { "db", NULL };
	if ((g = get_group(np, root, "state")) && !check_keys(np, g, "state", state_keys))
		get_str(np, g, "state", "db", &job->state_db);

	static const char *const log_keys[] = { "dir", "level", NULL };
	if ((g = get_group(np, root, "log")) && !check_keys(np, g, "log", log_keys)) {
		get_str(np, g, "log", "dir", &job->log_dir);
		static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
		int l = -1;
		if (!get_enum(np, g, "log", "level", levels, &l) && l >= 0)
			job->log_level = xstrdup(levels[l]);
	}

	static const char *const run_keys[] = { "max_runtime", "until", "grace",
						"progress_interval", NULL };
	if ((g = get_group(np, root, "run")) && !check_keys(np, g, "run", run_keys)) {
		get_duration(np, g, "run", "max_runtime", &job->max_runtime);
		get_str(np, g, "run", "until", &job->until);
		int hh, mm;
		if (job->until && parse_hhmm(job->until, &hh, &mm) < 0)
			np_bad(np, cval_get(g, "until"), "run", "until", "expected \"HH:MM\" (00:00..23:59)");
		get_duration(np, g, "run", "grace", &job->grace);
		get_duration(np, g, "run", "progress_interval", &job->progress_interval);
		const struct cval *pi = cval_get(g, "progress_interval");
		if (pi && !np->failed && job->progress_interval < 1)
			np_bad(np, pi, "run", "progress_interval", "must be at least 1 second");
	}

	const struct cval *st = cval_get(root, "stages");
	if (st && !np->failed)
		parse_stages(np, st);
}

static int check_big_ints(struct np *np, const struct cval *v, const char *text)
{
	if (v->type == CV_INT && v->line > 0 && v->i >= -2147483648LL && v->i <= 2147483647LL &&
	    line_has_big_int(text, v->line))
		return np_fail(np, v->line, "%s%s%sinteger too large: write it with an L suffix "
			       "or as a string (\"10G\", \"48h\")", v->name ? "key '" : "",
			       v->name ? v->name : "", v->name ? "': " : "");
	for (size_t i = 0; i < v->n; i++)
		if (check_big_ints(np, &v->items[i], text))
			return -1;
	return 0;
}

static char *dir_of(const char *path)
{
	const char *sl = strrchr(path, '/');
	if (!sl)
		return xstrdup(".");
	if (sl == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(sl - path));
}

static enum zmb_rc native_parse(const char *path, const char *text,
				const struct stage_catalog *cat, struct job *job, char **err)
{
	config_t cfg;
	struct cval root = { 0 };
	struct np np = { path, job, err, 0, cat };
	char *dir = dir_of(path);

	config_init(&cfg);
	config_set_include_dir(&cfg, dir);
	if (config_read_string(&cfg, text) != CONFIG_TRUE) {
		const char *f = config_error_file(&cfg);
		*err = xasprintf("%s:%d: %s", f ? f : path, config_error_line(&cfg),
				 config_error_text(&cfg) ? config_error_text(&cfg) : "syntax error");
		np.failed = 1;
		goto out;
	}
	cv_from_setting(config_root_setting(&cfg), &root, 0);
	if (check_big_ints(&np, &root, text))
		goto out;
	parse_native(&np, &root);
out:
	/* the tree may hold an inline password: wipe it */
	for (size_t i = 0; i < root.n; i++) {
		const struct cval *g = &root.items[i];
		const struct cval *pw = cval_get(g, "admin_password");
		if (pw && pw->type == CV_STR && pw->str)
			explicit_bzero(pw->str, strlen(pw->str));
	}
	cval_release(&root);
	config_destroy(&cfg);
	free(dir);
	return np.failed ? ZMB_ECONFIG : ZMB_OK;
}

enum zmb_rc conf_read(const char *path, bool resolve_secrets, const struct stage_catalog *cat,
		      struct job *job, char **err)
{
	enum zmb_rc rc;
	char *text = NULL;

	job_init(job);
	*err = NULL;
	if (!path || !*path) {
		*err = xstrdup("no job file given");
		return ZMB_ECONFIG;
	}
	rc = read_text(path, &text, err);
	if (rc)
		goto out;
	if (conf_is_legacy(text)) {
		rc = conf_legacy_parse(path, text, job, err);
	} else {
		job->path = xstrdup(path);
		rc = native_parse(path, text, cat, job, err);
	}
	if (rc)
		goto out;
	rc = conf_finish_with(job, resolve_secrets, cat, err);
out:
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	if (rc)
		job_release(job);
	return rc;
}

/* ---- defaults and validation shared by both formats ---- */

/* The name of a setting as the user wrote it (legacy keys for a zmztozmig.conf). */
static const char *key_name(const struct job *job, const char *native)
{
	static const struct { const char *native, *legacy; } tab[] = {
		{ "source.host", "SourceZCSServer" },
		{ "source.admin_user", "SourceAdminUser" },
		{ "source.admin_password", "SourceAdminPwd" },
		{ "source.port", "SourceAdminPort" },
		{ "target.host", "TargetZCSServer" },
		{ "target.admin_user", "TargetAdminUser" },
		{ "target.admin_password", "TargetAdminPwd" },
		{ "target.port", "TargetAdminPort" },
		{ "migration.threads", "Threads" },
		{ "migration.working_dir", "WorkingDirectory" },
		{ "migration.failed_dir", "FailedDirectory" },
		{ "migration.success_dir", "SuccessDirectory" },
		{ "migration.resolve", "resolve" },
		{ "migration.types", "types" },
		{ "migration.accounts", "Accounts" },
		{ "migration.domains", "Domains" },
		{ "log.dir", "LogDirectory" },
	};
	if (job->legacy)
		for (size_t i = 0; i < sizeof tab / sizeof *tab; i++)
			if (!strcmp(tab[i].native, native))
				return tab[i].legacy;
	return native;
}

static enum zmb_rc finish_fail(const struct job *job, int line, char **err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static enum zmb_rc finish_fail(const struct job *job, int line, char **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	const char *path = job->path ? job->path : "?";
	if (line > 0)
		*err = xasprintf("%s:%d: %s", path, line, msg);
	else
		*err = xasprintf("%s: %s", path, msg);
	free(msg);
	return ZMB_ECONFIG;
}

/* Relative paths in a job file are relative to the file's directory. */
static void absolutize(const struct job *job, char **p)
{
	if (!*p || (*p)[0] == '/' || !job->path)
		return;
	char *dir = dir_of(job->path);
	char *abs = xasprintf("%s/%s", dir, *p);
	free(dir);
	free(*p);
	*p = abs;
}

static bool file_readable_by_others(const char *path)
{
	struct stat st;
	return path && stat(path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO));
}

static enum zmb_rc finish_server(struct job *job, struct server *s, bool required,
				 bool resolve_secrets, char **err)
{
	char k[64];
	bool present = s->host || s->admin_user || s->password || s->password_file ||
		       s->password_env;
	if (!required && !present)
		return ZMB_OK;
	if (!s->host) {
		snprintf(k, sizeof k, "%s.host", s->role);
		return finish_fail(job, s->line, err, "missing key '%s' (%s server host name)",
				   key_name(job, k), s->role);
	}
	if (!s->admin_user) {
		snprintf(k, sizeof k, "%s.admin_user", s->role);
		return finish_fail(job, s->line, err, "missing key '%s' (%s admin account)",
				   key_name(job, k), s->role);
	}
	int nsrc = (s->password_inline ? 1 : 0) + (s->password_file ? 1 : 0) +
		   (s->password_env ? 1 : 0);
	if (nsrc == 0) {
		if (job->legacy)
			return finish_fail(job, s->line, err, "missing key '%s'",
					   s->role[0] == 's' ? "SourceAdminPwd" : "TargetAdminPwd");
		return finish_fail(job, s->line, err,
				   "%s: missing password: set one of admin_password_file, "
				   "admin_password_env or admin_password", s->role);
	}
	if (nsrc > 1)
		return finish_fail(job, s->line, err,
				   "%s: set only one of admin_password_file, admin_password_env, "
				   "admin_password", s->role);
	if (s->pinned_pubkey && strncmp(s->pinned_pubkey, "sha256//", 8) != 0)
		return finish_fail(job, s->line, err,
				   "key '%s.pinned_pubkey': expected \"sha256//BASE64=\"", s->role);
	if (!s->scheme)
		s->scheme = xstrdup("https");
	absolutize(job, &s->ca_file);
	absolutize(job, &s->password_file);
	/* tls_verify = false is warned about by run/check themselves (also --insecure) */
	if (s->password_inline && file_readable_by_others(job->path))
		strlist_add_nodup(&job->warnings,
				  xasprintf("%s: the %s admin password is written in a file readable "
					    "by group or others; run: chmod 600 '%s' (or use "
					    "admin_password_file)", job->path, s->role, job->path));
	if (!resolve_secrets)
		return ZMB_OK;
	if (s->password_file) {
		char *e = NULL;
		secret_free(s->password);
		s->password = NULL;
		if (secret_read_file(s->password_file, &s->password, &e)) {
			enum zmb_rc rc = finish_fail(job, s->line, err, "key '%s.admin_password_file': %s",
						     s->role, e ? e : "cannot read");
			free(e);
			return rc;
		}
	} else if (s->password_env) {
		const char *v = getenv(s->password_env);
		if (!v || !*v)
			return finish_fail(job, s->line, err,
					   "key '%s.admin_password_env': environment variable '%s' "
					   "is not set or empty", s->role, s->password_env);
		secret_free(s->password);
		s->password = xstrdup(v);
	}
	return ZMB_OK;
}

enum zmb_rc conf_finish_with(struct job *job, bool resolve_secrets, const struct stage_catalog *cat,
			     char **err)
{
	enum zmb_rc rc;
	struct migration *m = &job->mig;

	*err = NULL;
	if (!job->name)
		job->name = xstrdup(job->legacy ? "zmztozmig" : "zmbatch");
	if (job->nstages == 0) {
		job->stages = xcalloc(1, sizeof *job->stages);
		job->nstages = 1;
		job->stages[0].name = xstrdup("migrate");
		job->stages[0].type = xstrdup("migrate");
		job->stages[0].settings.type = CV_GROUP;
	}
	bool has_migrate = false;
	for (size_t i = 0; i < job->nstages; i++)
		if (streq(job->stages[i].type, "migrate"))
			has_migrate = true;

	if ((rc = finish_server(job, &job->source, has_migrate, resolve_secrets, err)))
		return rc;
	if ((rc = finish_server(job, &job->target, has_migrate, resolve_secrets, err)))
		return rc;

	if (!m->resolve)
		m->resolve = xstrdup("skip");
	if (!streq(m->resolve, "skip") && !streq(m->resolve, "modify") &&
	    !streq(m->resolve, "replace") && !streq(m->resolve, "reset"))
		return finish_fail(job, m->line, err, "key '%s': must be skip, modify, replace or reset",
				   key_name(job, "migration.resolve"));
	if (m->threads < 1 || m->threads > 256)
		return finish_fail(job, m->line, err, "key '%s': must be 1..256",
				   key_name(job, "migration.threads"));
	if (m->retry_backoff_max < m->retry_backoff)
		return finish_fail(job, m->line, err,
				   "key 'migration.retry_backoff_max': must not be less than retry_backoff");
	for (size_t i = 0; i < m->nmaps; i++)
		if (!*m->maps[i].from || !*m->maps[i].to || strchr(m->maps[i].to, '@') ||
		    strchr(m->maps[i].from, '=') || strchr(m->maps[i].to, '='))
			return finish_fail(job, m->line, err,
					   "domain map '%s' -> '%s': expected two domain names",
					   m->maps[i].from, m->maps[i].to);

	absolutize(job, &m->accounts_file);
	absolutize(job, &m->working_dir);
	absolutize(job, &m->success_dir);
	absolutize(job, &m->failed_dir);
	absolutize(job, &job->state_db);
	absolutize(job, &job->log_dir);

	if (has_migrate) {
		if (!m->accounts.n && !m->accounts_file && !m->domains.n) {
			if (job->legacy)
				return finish_fail(job, 0, err, "missing key 'Accounts' (a list of accounts, "
						   "or Accounts=all with Domains)");
			return finish_fail(job, m->line, err,
					   "migration: set at least one of accounts, accounts_file, domains");
		}
		if (m->transfer == TRANSFER_SPOOL && !m->working_dir)
			return finish_fail(job, m->line, err, "missing key '%s' (needed for transfer = \"spool\")",
					   key_name(job, "migration.working_dir"));
	}
	if (!job->state_db) {
		if (!m->working_dir)
			return finish_fail(job, 0, err,
					   "missing key 'state.db' (or migration.working_dir for the default "
					   "<working_dir>/zmbatch.db)");
		size_t n = strlen(m->working_dir);
		while (n > 1 && m->working_dir[n - 1] == '/')
			n--;
		job->state_db = xasprintf("%.*s/zmbatch.db", (int)n, m->working_dir);
	}
	if (!job->log_level)
		job->log_level = xstrdup("info");

	for (size_t i = 0; i < job->nstages; i++) {
		struct stage_conf *sc = &job->stages[i];
		if (!cat->known(sc->type))
			return finish_fail(job, sc->line, err, "stage '%s': unknown stage type '%s' (known: %s)",
					   sc->name, sc->type, cat->names());
		char *e = NULL;
		if (cat->validate(sc, job->path, &e) != 0) {
			if (e)
				*err = e;
			else
				finish_fail(job, sc->line, err, "stage '%s': invalid settings", sc->name);
			return ZMB_ECONFIG;
		}
		free(e);
	}
	return ZMB_OK;
}

/* ---- native writer (convert) ---- */

static void put_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\n': fputs("\\n", out); break;
		case '\r': fputs("\\r", out); break;
		case '\t': fputs("\\t", out); break;
		case '\f': fputs("\\f", out); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(out, "\\x%02x", *p);
			else
				fputc(*p, out);
		}
	}
	fputc('"', out);
}

static void put_kv(FILE *out, const char *indent, const char *key, const char *val)
{
	fprintf(out, "%s%s = ", indent, key);
	put_str(out, val);
	fputs(";\n", out);
}

static void put_duration(FILE *out, const char *indent, const char *key, long long s)
{
	struct buf b = BUF_INIT;
	if (s == 0) {
		fprintf(out, "%s%s = 0;\n", indent, key);
		return;
	}
	if (s >= 86400 && s % 86400 == 0)
		buf_addf(&b, "%lldd", s / 86400), s = 0;
	if (s >= 3600)
		buf_addf(&b, "%lldh", s / 3600), s %= 3600;
	if (s >= 60)
		buf_addf(&b, "%lldm", s / 60), s %= 60;
	if (s > 0)
		buf_addf(&b, "%llds", s);
	put_kv(out, indent, key, b.s);
	buf_release(&b);
}

static void put_bytes(FILE *out, const char *indent, const char *key, long long n)
{
	static const char units[] = "kMGT";
	int u = -1;
	while (n && n % 1024 == 0 && u < 3) {
		n /= 1024;
		u++;
	}
	if (u < 0 && n <= 2147483647LL) {
		fprintf(out, "%s%s = %lld;\n", indent, key, n);
		return;
	}
	char *v = u >= 0 ? xasprintf("%lld%c", n, units[u]) : xasprintf("%lld", n);
	put_kv(out, indent, key, v);
	free(v);
}

static void put_list(FILE *out, const char *indent, const char *key, const struct strlist *l)
{
	fprintf(out, "%s%s = [", indent, key);
	for (size_t i = 0; i < l->n; i++) {
		fputs(i ? ", " : " ", out);
		put_str(out, l->v[i]);
	}
	fputs(" ];\n", out);
}

/* A stage setting, in libconfig syntax (value only). */
static void put_cval(FILE *out, const struct cval *v, int depth)
{
	switch (v->type) {
	case CV_STR:
		put_str(out, v->str ? v->str : "");
		break;
	case CV_INT:
		fprintf(out, "%lld%s", v->i, v->i > 2147483647LL || v->i < -2147483648LL ? "L" : "");
		break;
	case CV_FLOAT: {
		char num[64];
		snprintf(num, sizeof num, "%.17g", v->f);
		fputs(num, out);
		if (!strpbrk(num, ".eEin"))
			fputs(".0", out);
		break;
	}
	case CV_BOOL:
		fputs(v->b ? "true" : "false", out);
		break;
	case CV_LIST: {
		/* [ ] holds scalars of one type; ( ) holds anything */
		bool array = true;
		for (size_t i = 0; i < v->n; i++)
			if (v->items[i].type == CV_LIST || v->items[i].type == CV_GROUP ||
			    v->items[i].type != v->items[0].type)
				array = false;
		fputs(array ? "[ " : "( ", out);
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				fputs(", ", out);
			put_cval(out, &v->items[i], depth + 1);
		}
		fputs(array ? " ]" : " )", out);
		break;
	}
	case CV_GROUP:
		fputs("{ ", out);
		for (size_t i = 0; i < v->n; i++) {
			fprintf(out, "%s = ", v->items[i].name ? v->items[i].name : "x");
			put_cval(out, &v->items[i], depth + 1);
			fputs("; ", out);
		}
		fputs("}", out);
		break;
	}
}

static void write_server(const struct job *job, const struct server *s, FILE *out)
{
	if (!s->host)
		return;
	fprintf(out, "%s = {\n", s->role);
	put_kv(out, "  ", "host", s->host ? s->host : "");
	fprintf(out, "  port = %d;                              # admin port (SOAP and REST)\n", s->port);
	put_kv(out, "  ", "admin_user", s->admin_user ? s->admin_user : "");
	if (s->password_env) {
		put_kv(out, "  ", "admin_password_env", s->password_env);
	} else {
		char *def = xasprintf("/etc/zmbatch/%s.pw", s->role);
		const char *pf = s->password_file ? s->password_file : def;
		if (s->password_inline) {
			const char *legacy_key = s->role[0] == 's' ? "SourceAdminPwd" : "TargetAdminPwd";
			fprintf(out, "  # The password is not copied here.  Create the file with mode 600,\n"
				     "  # containing the password that was in %s%s%s, e.g.:\n"
				     "  #   install -m 600 /dev/null %s && vi %s\n",
				job->legacy ? legacy_key : "admin_password",
				job->path ? " of " : "", job->path ? job->path : "", pf, pf);
		}
		put_kv(out, "  ", "admin_password_file", pf);
		free(def);
	}
	if (s->ca_file)
		put_kv(out, "  ", "ca_file", s->ca_file);
	else if (job->legacy)
		fputs("  # ca_file = \"/etc/zmbatch/ca.pem\";       # zmztozmig trusted any certificate;\n"
		      "  #                                         # zmbatch verifies it (system CAs by default)\n",
		      out);
	if (s->pinned_pubkey)
		put_kv(out, "  ", "pinned_pubkey", s->pinned_pubkey);
	if (!s->tls_verify)
		fputs("  tls_verify = false;\n", out);
	if (s->scheme && strcmp(s->scheme, "https"))
		put_kv(out, "  ", "scheme", s->scheme);
	fputs("};\n\n", out);
}

void conf_write_native(const struct job *job, FILE *out)
{
	const struct migration *m = &job->mig;
	fputs("# zmbatch job file", out);
	if (job->legacy && job->path) {
		fputs(", converted from ", out);
		fputs(job->path, out);
		fputs(" by `zmbatch convert`", out);
	}
	fputs(".\n# Syntax: libconfig (key = value;).  Reference: conf/zmbatch.cfg.example.\n\n", out);
	put_kv(out, "", "job", job->name ? job->name : "zmbatch");
	fputc('\n', out);
	write_server(job, &job->source, out);
	write_server(job, &job->target, out);

	fputs("migration = {\n", out);
	if (m->accounts.n)
		put_list(out, "  ", "accounts", &m->accounts);
	if (m->accounts_file)
		put_kv(out, "  ", "accounts_file", m->accounts_file);
	if (m->domains.n) {
		if (job->legacy)
			fputs("  # every non-system account of these domains (Accounts=all)\n", out);
		put_list(out, "  ", "domains", &m->domains);
	}
	if (m->nmaps) {
		fputs("  domain_map = [", out);
		for (size_t i = 0; i < m->nmaps; i++) {
			char *s = xasprintf("%s=%s", m->maps[i].from, m->maps[i].to);
			fputs(i ? ", " : " ", out);
			put_str(out, s);
			free(s);
		}
		fputs(" ];\n", out);
	}
	fprintf(out, "  threads = %d;\n", m->threads);
	if (m->working_dir)
		put_kv(out, "  ", "working_dir", m->working_dir);
	if (m->success_dir)
		put_kv(out, "  ", "success_dir", m->success_dir);
	if (m->failed_dir)
		put_kv(out, "  ", "failed_dir", m->failed_dir);
	fprintf(out, "  keep_success_files = %s;\n", m->keep_success_files ? "true" : "false");
	put_kv(out, "  ", "transfer", m->transfer == TRANSFER_STREAM ? "stream" : "spool");
	put_kv(out, "  ", "resolve", m->resolve ? m->resolve : "skip");
	if (m->types)
		put_kv(out, "  ", "types", m->types);
	fprintf(out, "  max_attempts = %d;\n", m->max_attempts);
	put_kv(out, "  ", "order", m->order == ORDER_AS_LISTED ? "as-listed" : "largest-first");
	if (m->mail_transport)
		put_kv(out, "  ", "mail_transport", m->mail_transport);
	put_bytes(out, "  ", "max_bytes_per_second", m->max_bytes_per_second);
	put_bytes(out, "  ", "max_bytes_per_second_total", m->max_bytes_per_second_total);
	put_duration(out, "  ", "retry_backoff", m->retry_backoff);
	put_duration(out, "  ", "retry_backoff_max", m->retry_backoff_max);
	put_duration(out, "  ", "delta_overlap", m->delta_overlap);
	put_duration(out, "  ", "low_speed_time", m->low_speed_time);
	put_bytes(out, "  ", "low_speed_limit", m->low_speed_limit);
	put_bytes(out, "  ", "buffer_size", m->buffer_size);
	fputs("};\n\n", out);

	fputs("token = {\n", out);
	put_duration(out, "  ", "refresh_margin", job->token_refresh_margin);
	fputs("};\n\n", out);
	if (job->state_db) {
		fputs("state = {\n", out);
		put_kv(out, "  ", "db", job->state_db);
		fputs("};\n\n", out);
	}
	fputs("log = {\n", out);
	if (job->log_dir)
		put_kv(out, "  ", "dir", job->log_dir);
	put_kv(out, "  ", "level", job->log_level ? job->log_level : "info");
	fputs("};\n\n", out);

	fputs("run = {\n", out);
	put_duration(out, "  ", "max_runtime", job->max_runtime);
	if (job->until)
		put_kv(out, "  ", "until", job->until);
	put_duration(out, "  ", "grace", job->grace);
	put_duration(out, "  ", "progress_interval", job->progress_interval);
	fputs("};\n", out);

	bool only_default = job->nstages == 1 && streq(job->stages[0].name, "migrate") &&
			    streq(job->stages[0].type, "migrate") && job->stages[0].settings.n <= 2;
	if (job->nstages && !only_default) {
		fputs("\nstages = (\n", out);
		for (size_t i = 0; i < job->nstages; i++) {
			const struct stage_conf *sc = &job->stages[i];
			fputs("  {\n", out);
			put_kv(out, "    ", "name", sc->name);
			put_kv(out, "    ", "type", sc->type);
			for (size_t j = 0; j < sc->settings.n; j++) {
				const struct cval *v = &sc->settings.items[j];
				if (streq(v->name, "name") || streq(v->name, "type"))
					continue;
				fprintf(out, "    %s = ", v->name);
				put_cval(out, v, 2);
				fputs(";\n", out);
			}
			fprintf(out, "  }%s\n", i + 1 < job->nstages ? "," : "");
		}
		fputs(");\n", out);
	}
}
