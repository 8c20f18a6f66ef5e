/*
 * shard.c - shard membership, parsing, DB naming and the engines'
 * variables (shard.h).
 */
#include "shard.h"
#include "zmb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t shard_hash(const char *account)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const unsigned char *p = (const unsigned char *)account; p && *p; p++) {
		unsigned char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h ^= c;
		h *= 0x100000001b3ULL;
	}
	return h;
}

unsigned shard_of(const char *account, unsigned count)
{
	return count ? (unsigned)(shard_hash(account) % count) : 0;
}

bool shard_has(const struct zmb_shard *s, const char *account)
{
	return !s || s->count == 0 || shard_of(account, s->count) == s->index;
}

/* A plain decimal number 0..max (no sign, no space, no leading '+'). */
static int parse_uint(const char *p, size_t len, unsigned max, unsigned *out)
{
	unsigned long v = 0;
	if (len == 0 || len > 9)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int shard_parse(const char *text, struct zmb_shard *out)
{
	const char *slash = text ? strchr(text, '/') : NULL;
	unsigned i, n;
	if (!slash || parse_uint(text, (size_t)(slash - text), SHARD_MAX, &i) < 0 ||
	    parse_uint(slash + 1, strlen(slash + 1), SHARD_MAX, &n) < 0 || n < 1 || i >= n)
		return -1;
	out->index = i;
	out->count = n;
	return 0;
}

int shard_parse_count(const char *text, unsigned *out)
{
	unsigned n;
	if (!text || parse_uint(text, strlen(text), SHARD_MAX, &n) < 0 || n < 1)
		return -1;
	*out = n;
	return 0;
}

const char *shard_label(const struct zmb_shard *s, char *buf, unsigned long size)
{
	if (!s || s->count == 0)
		snprintf(buf, size, "%s", "");
	else
		snprintf(buf, size, "%u/%u", s->index, s->count);
	return buf;
}

char *shard_db_path(const char *db, const struct zmb_shard *s)
{
	if (!s || s->count == 0)
		return xstrdup(db);
	const char *base = strrchr(db, '/');
	base = base ? base + 1 : db;
	const char *dot = strrchr(base, '.');
	if (!dot || dot == base)   /* no extension (or a dot file): appended */
		return xasprintf("%s.shard%u-of-%u", db, s->index, s->count);
	return xasprintf("%.*s.shard%u-of-%u%s", (int)(dot - db), db, s->index, s->count, dot);
}

static const char *env_get(shard_env_fn env, void *ctx, const char *name)
{
	const char *v = env ? env(name, ctx) : NULL;
	return v && *v ? v : NULL;
}

/* A variable's plain number 0..max into *out; -1 with *err. */
static int env_number(const char *name, const char *v, unsigned max, unsigned *out, char **err)
{
	if (parse_uint(v, strlen(v), max, out) < 0) {
		*err = xasprintf("%s='%s' is not a number from 0 to %u", name, v, max);
		return -1;
	}
	return 0;
}

/* The count N from --shard-count and ZMBATCH_SHARD_COUNT (0: neither given). */
static int given_count(const char *opt_count, const char *env_count, unsigned *n, char **err)
{
	unsigned a = 0, b = 0;
	if (opt_count && shard_parse_count(opt_count, &a) < 0) {
		*err = xasprintf("--shard-count wants a number from 1 to %d, not '%s'", SHARD_MAX, opt_count);
		return -1;
	}
	if (env_count && shard_parse_count(env_count, &b) < 0) {
		*err = xasprintf("ZMBATCH_SHARD_COUNT wants a number from 1 to %d, not '%s'", SHARD_MAX,
				 env_count);
		return -1;
	}
	if (a && b && a != b) {
		*err = xasprintf("--shard-count %u and ZMBATCH_SHARD_COUNT=%u disagree", a, b);
		return -1;
	}
	*n = a ? a : b;
	return 0;
}

static int slurm_shard(const char *task_id, unsigned given, shard_env_fn env, void *ctx,
		       struct zmb_shard *out, char **err)
{
	const char *vmin = env_get(env, ctx, "SLURM_ARRAY_TASK_MIN");
	const char *vmax = env_get(env, ctx, "SLURM_ARRAY_TASK_MAX");
	const char *vstep = env_get(env, ctx, "SLURM_ARRAY_TASK_STEP");
	const char *vcount = env_get(env, ctx, "SLURM_ARRAY_TASK_COUNT");
	unsigned id, min = 0, max = 0, step = 1, n = 0;
	const unsigned big = 4000000;   /* Slurm's MaxArraySize is at most 4000001 */
	if (env_number("SLURM_ARRAY_TASK_ID", task_id, big, &id, err) < 0 ||
	    (vmin && env_number("SLURM_ARRAY_TASK_MIN", vmin, big, &min, err) < 0) ||
	    (vmax && env_number("SLURM_ARRAY_TASK_MAX", vmax, big, &max, err) < 0) ||
	    (vstep && env_number("SLURM_ARRAY_TASK_STEP", vstep, big, &step, err) < 0) ||
	    (vcount && env_number("SLURM_ARRAY_TASK_COUNT", vcount, SHARD_MAX, &n, err) < 0))
		return -1;
	if (step == 0)
		step = 1;
	if (vcount && n == 0) {
		*err = xstrdup("SLURM_ARRAY_TASK_COUNT=0: no shard");
		return -1;
	}
	if (n && given && n != given) {
		*err = xasprintf("SLURM_ARRAY_TASK_COUNT=%u but the shard count given is %u", n, given);
		return -1;
	}
	if (!n)
		n = given;
	if (!n) {
		*err = xasprintf("SLURM_ARRAY_TASK_ID=%u is set but not the shard count: "
				 "SLURM_ARRAY_TASK_COUNT, --shard-count N or ZMBATCH_SHARD_COUNT", id);
		return -1;
	}
	if (id < min || (id - min) % step != 0 || (id - min) / step >= n ||
	    (vmax && (max < min || (max - min) % step != 0 || (max - min) / step + 1 != n))) {
		*err = xasprintf("the Slurm array (task %u, min %u, max %s, step %u, count %u) is not one "
				 "range of %u tasks: use sbatch --array=0-%u (or 1-%u)", id, min,
				 vmax ? vmax : "unset", step, n, n, n - 1, n);
		return -1;
	}
	out->index = (id - min) / step;
	out->count = n;
	return 0;
}

int shard_resolve(const char *opt_shard, const char *opt_count, shard_env_fn env, void *ctx,
		  struct zmb_shard *out, char **err)
{
	const char *k8s = env_get(env, ctx, "JOB_COMPLETION_INDEX");
	const char *slurm = env_get(env, ctx, "SLURM_ARRAY_TASK_ID");
	const char *env_count = env_get(env, ctx, "ZMBATCH_SHARD_COUNT");
	unsigned n = 0;

	*err = NULL;
	out->index = out->count = 0;
	if (opt_shard) {
		if (shard_parse(opt_shard, out) < 0) {
			*err = xasprintf("--shard wants I/N with 0 <= I < N <= %d, not '%s'", SHARD_MAX,
					 opt_shard);
			return -1;
		}
		unsigned c;
		if (opt_count && (shard_parse_count(opt_count, &c) < 0 || c != out->count)) {
			*err = xasprintf("--shard %s and --shard-count %s disagree", opt_shard, opt_count);
			out->index = out->count = 0;
			return -1;
		}
		return 0;
	}
	if (given_count(opt_count, env_count, &n, err) < 0)
		return -1;
	if (k8s && slurm) {
		*err = xasprintf("both JOB_COMPLETION_INDEX=%s and SLURM_ARRAY_TASK_ID=%s are set: "
				 "give --shard I/N", k8s, slurm);
		return -1;
	}
	if (k8s) {
		unsigned i;
		if (env_number("JOB_COMPLETION_INDEX", k8s, SHARD_MAX, &i, err) < 0)
			return -1;
		if (!n) {
			*err = xasprintf("JOB_COMPLETION_INDEX=%u is set but not the shard count: "
					 "--shard-count N or ZMBATCH_SHARD_COUNT (the Job's completions)", i);
			return -1;
		}
		if (i >= n) {
			*err = xasprintf("JOB_COMPLETION_INDEX=%u is not below the shard count %u", i, n);
			return -1;
		}
		out->index = i;
		out->count = n;
		return 0;
	}
	if (slurm)
		return slurm_shard(slurm, n, env, ctx, out, err);
	if (n) {
		*err = xasprintf("a shard count (%s) without a shard index: --shard I/N, "
				 "JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID",
				 opt_count ? "--shard-count" : "ZMBATCH_SHARD_COUNT");
		return -1;
	}
	return 0;
}

int shard_by_parse(const char *text, enum shard_by *out)
{
	if (text && !strcmp(text, "hash"))
		*out = SHARD_BY_HASH;
	else if (text && !strcmp(text, "server"))
		*out = SHARD_BY_SERVER;
	else
		return -1;
	return 0;
}

const char *shard_by_name(enum shard_by by)
{
	return by == SHARD_BY_SERVER ? "server" : "hash";
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ASCII only (no locale): every shard lowers a name the same way. */
static void ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

void shard_server_set(struct strlist *l)
{
	size_t k = 0;
	for (size_t i = 0; i < l->n; i++)
		ascii_lower(l->v[i]);
	if (l->n)
		qsort(l->v, l->n, sizeof *l->v, cmp_str);
	for (size_t i = 0; i < l->n; i++) {
		if (!*l->v[i] || (k > 0 && !strcmp(l->v[k - 1], l->v[i]))) {
			free(l->v[i]);
			continue;
		}
		l->v[k++] = l->v[i];
	}
	l->n = k;
}

static bool eq_ascii_ci(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return false;
		if (!x)
			return true;
	}
}

unsigned shard_server_owner(const char *const *servers, size_t n, const char *server, unsigned count)
{
	if (!server || count == 0)
		return 0;
	for (size_t k = 0; k < n; k++)
		if (eq_ascii_ci(servers[k], server))
			return (unsigned)(k % count);
	return 0;
}
