/*
 * conf_native.c - the native job file reader: a cval tree (from
 * conf_libconfig.c) -> struct job, one group at a time, every key checked for
 * its type and range.  Unknown keys are errors naming the known ones.  Only
 * the first error is kept: "FILE:LINE: key 'group.key': message".
 * Defaults are job_init()'s; cross-field checks are conf_finish.c's.
 *
 * Main thread only.
 */
#include "conf_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
	"admin_password", "ca_file", "pinned_pubkey", "tls_verify", "scheme",
	"max_requests_per_second", "servers", "ldap", NULL
};

static const char *const ldap_keys[] = {
	"url", "bind_dn", "password_file", "base", "starttls", "ca_file", "tls_verify",
	"allow_cleartext", NULL
};

/* The host of "ldap://HOST[:port][/...]" (after the scheme) is this machine:
 * empty (libldap's default, localhost), localhost, 127.0.0.0/8, ::1. */
static bool loopback_url(const char *h)
{
	size_t n;
	if (*h == '[') {
		n = strcspn(h + 1, "]");
		return n == 3 && !strncmp(h + 1, "::1", 3);
	}
	n = strcspn(h, ":/");
	return n == 0 || (n == 9 && !strncasecmp(h, "localhost", 9)) || !strncmp(h, "127.", 4);
}

static const char *const route_keys[] = { "name", "host", "port", "pinned_pubkey", NULL };

/*
 * servers = ( { name = "mbox2.internal"; host = "10.0.0.12"; port = 7071; }, ... );
 * (a list of groups: libconfig setting names cannot hold the dots of a host name)
 */
static void parse_routes(struct np *np, const struct cval *g, struct server *s)
{
	const struct cval *v = cval_get(g, "servers");
	if (!v)
		return;
	if (v->type != CV_LIST) {
		np_bad(np, v, s->role, "servers", "expected a list of groups ( { name = ...; host = ...; }, ... )");
		return;
	}
	char *grp = xasprintf("%s.servers", s->role);
	s->routes = xcalloc(v->n ? v->n : 1, sizeof *s->routes);
	for (size_t i = 0; i < v->n; i++) {
		const struct cval *e = &v->items[i];
		struct server_route *r = &s->routes[s->nroutes];
		if (e->type != CV_GROUP) {
			np_bad(np, e, grp, "", "expected a group { name = ...; host = ...; port = ...; }");
			continue;
		}
		if (check_keys(np, e, grp, route_keys))
			continue;
		r->port = 7071;
		r->line = e->line;
		get_str(np, e, grp, "name", &r->name);
		get_str(np, e, grp, "host", &r->host);
		get_int_i(np, e, grp, "port", 1, 65535, &r->port);
		get_str(np, e, grp, "pinned_pubkey", &r->pinned_pubkey);
		s->nroutes++;
		if (r->pinned_pubkey && strncmp(r->pinned_pubkey, "sha256//", 8) != 0)
			np_bad(np, e, grp, "pinned_pubkey", "expected \"sha256//BASE64=\"");
		if (!r->name || !r->host) {
			np_bad(np, e, grp, r->name ? "host" : "name", "required in each entry");
			continue;
		}
		for (size_t j = 0; j + 1 < s->nroutes; j++)
			if (s->routes[j].name && !strcasecmp(s->routes[j].name, r->name))
				np_bad(np, e, grp, "name", "listed twice");
	}
	free(grp);
}

/* A rate: an integer or a float, min..max. */
static int get_rate(struct np *np, const struct cval *g, const char *grp, const char *key,
		    double min, double max, double *out)
{
	const struct cval *v = cval_get(g, key);
	if (!v)
		return 0;
	double d;
	if (v->type == CV_INT)
		d = (double)v->i;
	else if (v->type == CV_FLOAT)
		d = v->f;
	else
		return np_bad(np, v, grp, key, "expected a number");
	if (!(d >= min && d <= max)) {
		char *m = xasprintf("must be %g..%g (0 = no cap)", min, max);
		np_bad(np, v, grp, key, m);
		free(m);
		return -1;
	}
	*out = d;
	return 0;
}

/* ldap = { url = "ldap://..."; bind_dn = ...; password_file = ...; } */
static void parse_server_ldap(struct np *np, const struct cval *g, struct server *s)
{
	const struct cval *v = cval_get(g, "ldap");
	if (!v)
		return;
	if (v->type != CV_GROUP) {
		np_bad(np, v, s->role, "ldap", "expected a group { url = ...; password_file = ...; }");
		return;
	}
	char *grp = xasprintf("%s.ldap", s->role);
	struct server_ldap *l = &s->ldap;
	l->line = v->line;
	l->tls_verify = true;
	if (check_keys(np, v, grp, ldap_keys) == 0) {
		get_str(np, v, grp, "url", &l->url);
		get_str(np, v, grp, "bind_dn", &l->bind_dn);
		get_str(np, v, grp, "password_file", &l->password_file);
		const struct cval *b = cval_get(v, "base");
		if (b && b->type != CV_STR)
			np_bad(np, b, grp, "base", "expected a string");
		else if (b)
			l->base = xstrdup(b->str);   /* "" is Zimbra's root: allowed */
		get_bool(np, v, grp, "starttls", &l->starttls);
		get_str(np, v, grp, "ca_file", &l->ca_file);
		get_bool(np, v, grp, "tls_verify", &l->tls_verify);
		get_bool(np, v, grp, "allow_cleartext", &l->allow_cleartext);
		if (!l->url)
			np_bad(np, v, grp, "url", "required");
		else if (strncmp(l->url, "ldap://", 7) && strncmp(l->url, "ldaps://", 8) &&
			 strncmp(l->url, "ldapi://", 8))
			np_bad(np, cval_get(v, "url"), grp, "url",
			       "expected an ldap://, ldaps:// or ldapi:// URI");
		else if (!strncmp(l->url, "ldap://", 7) && !l->starttls && !l->allow_cleartext &&
			 !loopback_url(l->url + 7))
			/* the bind password and the password hashes read would cross the
			 * network in clear */
			np_bad(np, cval_get(v, "url"), grp, "url",
			       "ldap:// to another host without starttls sends the bind password and "
			       "the password hashes in clear: set starttls = true, use ldaps:// or "
			       "ldapi://, or allow_cleartext = true");
		else if (!l->password_file)
			np_bad(np, v, grp, "password_file", "required");
		if (!l->bind_dn)
			l->bind_dn = xstrdup("uid=zimbra,cn=admins,cn=zimbra");
		if (!l->base)
			l->base = xstrdup("");
	}
	free(grp);
}

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
	get_rate(np, g, grp, "max_requests_per_second", 0, 100000, &s->max_rps);
	parse_routes(np, g, s);
	parse_server_ldap(np, g, s);
}

static const char *const migration_keys[] = {
	"accounts", "accounts_file", "domains", "domain_map", "threads", "working_dir",
	"success_dir", "failed_dir", "keep_success_files", "transfer", "resolve", "types",
	"max_attempts", "order", "mail_transport", "max_bytes_per_second",
	"max_bytes_per_second_total", "retry_backoff",
	"retry_backoff_max", "max_throttle_wait", "delta_overlap", "low_speed_time", "low_speed_limit",
	"buffer_size", "maintenance_wait", "skip_status", "chunk", "chunk_bytes", "verify", NULL
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

/* domain_map = [ "from.example.com=to.example.com", ... ] */
static void parse_domain_map(struct np *np, const struct cval *g, struct migration *m)
{
	const char *grp = "migration";
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
	parse_domain_map(np, g, m);
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
	get_duration(np, g, grp, "max_throttle_wait", &m->max_throttle_wait);
	get_duration(np, g, grp, "maintenance_wait", &m->maintenance_wait);
	get_strlist(np, g, grp, "skip_status", &m->skip_status);
	get_duration(np, g, grp, "delta_overlap", &m->delta_overlap);
	get_duration(np, g, grp, "chunk", &m->chunk);
	const struct cval *ck = cval_get(g, "chunk");
	if (ck && !np->failed && m->chunk != 0 && (m->chunk < 86400 || m->chunk > 36500LL * 86400))
		np_bad(np, ck, grp, "chunk", "must be 1d..36500d (or 0: only when needed)");
	get_bytes(np, g, grp, "chunk_bytes", &m->chunk_bytes);
	static const char *const verifies[] = { "off", "counts", NULL };
	int vf = m->verify ? 1 : 0;
	if (!get_enum(np, g, grp, "verify", verifies, &vf))
		m->verify = vf == 1;
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
		cval_copy(g, &sc->settings);
	}
}

static const char *const top_keys[] = {
	"job", "source", "target", "migration", "token", "state", "log", "run", "stages", NULL
};

/* token, state and log: small groups of the job's own settings */
static void parse_small_groups(struct np *np, const struct cval *root)
{
	struct job *job = np->job;
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
}

/* run = { max_runtime, until, grace, progress_interval } */
static void parse_run(struct np *np, const struct cval *root)
{
	struct job *job = np->job;
	const struct cval *g;
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
}

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
	parse_small_groups(np, root);
	parse_run(np, root);

	const struct cval *st = cval_get(root, "stages");
	if (st && !np->failed)
		parse_stages(np, st);
}

/* The tree may hold an inline password (source/target.admin_password): wipe it. */
static void wipe_passwords(const struct cval *root)
{
	for (size_t i = 0; i < root->n; i++) {
		const struct cval *g = &root->items[i];
		const struct cval *pw = cval_get(g, "admin_password");
		if (pw && pw->type == CV_STR && pw->str)
			explicit_bzero(pw->str, strlen(pw->str));
	}
}

enum zmb_rc conf_native_parse(const char *path, const char *text,
			      const struct stage_catalog *cat, struct job *job, char **err)
{
	struct cval root = { 0 };
	struct np np = { path, job, err, 0, cat };

	if (conf_libconfig_read(path, text, &root, err) == ZMB_OK)
		parse_native(&np, &root);
	else
		np.failed = 1;
	wipe_passwords(&root);
	cval_release(&root);
	return np.failed ? ZMB_ECONFIG : ZMB_OK;
}
