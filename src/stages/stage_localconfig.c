/*
 * stage_localconfig.c - the `localconfig` stage: set Carbonio/Zimbra
 * localconfig keys in localconfig.xml with libxml2.
 *
 * Keys:
 *   file = "/opt/zextras/conf/localconfig.xml"   this file, or
 *   files = [ "/a/localconfig.xml", ... ]        several (one per node, e.g. on
 *                                                NFS or a config-management tree),
 *                                                each handled as `file`, in order
 *   set = { ldap_master_url = "ldap://ldap1:389 ldap://ldap2:389";
 *           ldap_is_master = "true"; }           required, at least one key;
 *                                                strings, integers or booleans
 *   backup = true                                default true: before the first
 *                                                change, copy the file to
 *                                                FILE.zmbatch-YYYYmmddTHHMMSSZ.bak
 *
 * Format: <localconfig><key name="K"><value>V</value></key>...</localconfig>.
 * Only keys whose value differs are changed; new keys are appended.  When
 * nothing differs the file is not touched (same bytes, same mtime).  A
 * change is written to a temp file in the same directory (same mode and
 * owner), fsync'ed, renamed over the file, and the directory fsync'ed.
 * Values of keys whose name contains "password", "secret" or "key" are never
 * printed.
 *
 * Steps of localconfig_run: lc_read (the file's bytes and mode), lc_parse_xml,
 * lc_apply (one lc_set_key per key of `set`), lc_backup, lc_write.
 * Main thread only.
 */
#include "stage.h"

#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct lc_conf {
	const char *file;
	struct strlist files;         /* `file`, or the `files` list */
	const struct cval *set;
	bool backup;
};

static int lc_fail(const struct stage_conf *sc, const struct cval *v, const char *file,
		   const char *key, char **err, const char *msg)
{
	*err = xasprintf("%s:%d: stage '%s': key '%s': %s", file ? file : "?",
			 v && v->line ? v->line : sc->line, sc->name, key, msg);
	return -1;
}

static int lc_parse(const struct stage_conf *sc, const char *file, struct lc_conf *k, char **err)
{
	const struct cval *g = &sc->settings;
	memset(k, 0, sizeof *k);
	if (cval_str(g, "file", NULL, &k->file, file, err) ||
	    cval_strlist(g, "files", &k->files, file, err) ||
	    cval_bool(g, "backup", true, &k->backup, file, err)) {
		char *p = strstr(*err, "key '");
		char *n = p ? xasprintf("%.*sstage '%s': %s", (int)(p - *err), *err, sc->name, p)
			    : xstrdup(*err);
		free(*err);
		*err = n;
		return -1;
	}
	if (k->file && k->files.n)
		return lc_fail(sc, cval_get(g, "files"), file, "files", err,
			       "give either file or files, not both");
	if (k->file && *k->file)
		strlist_add(&k->files, k->file);
	if (!k->files.n)
		return lc_fail(sc, NULL, file, "file", err,
			       "required (path of localconfig.xml, or files = [ ... ])");
	for (size_t i = 0; i < k->files.n; i++)
		if (!*k->files.v[i])
			return lc_fail(sc, cval_get(g, "files"), file, "files", err,
				       "an empty path");
	k->set = cval_get(g, "set");
	if (!k->set || k->set->type != CV_GROUP || !k->set->n)
		return lc_fail(sc, k->set, file, "set", err,
			       "required: a group { key = \"value\"; ... }");
	for (size_t i = 0; i < k->set->n; i++) {
		const struct cval *v = &k->set->items[i];
		if (v->type != CV_STR && v->type != CV_INT && v->type != CV_BOOL)
			return lc_fail(sc, v, file, "set", err,
				       "every value must be a string, an integer or a boolean");
	}
	return 0;
}

int localconfig_validate(const struct stage_conf *sc, const char *file, char **err)
{
	struct lc_conf k;
	int r = lc_parse(sc, file, &k, err);
	strlist_release(&k.files);
	return r;
}

static char *cval_text(const struct cval *v)
{
	if (v->type == CV_BOOL)
		return xstrdup(v->b ? "true" : "false");
	if (v->type == CV_INT)
		return xasprintf("%lld", v->i);
	return xstrdup(v->str ? v->str : "");
}

static bool is_secret_key(const char *k)
{
	char *l = xstrlower(k);
	bool s = strstr(l, "password") || strstr(l, "secret") || strstr(l, "key");
	free(l);
	return s;
}

static xmlNodePtr child_elem(xmlNodePtr parent, const char *name)
{
	for (xmlNodePtr c = parent->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && !strcmp((const char *)c->name, name))
			return c;
	return NULL;
}

static xmlNodePtr find_key(xmlNodePtr root, const char *name)
{
	for (xmlNodePtr c = root->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "key"))
			continue;
		xmlChar *n = xmlGetProp(c, (const xmlChar *)"name");
		bool hit = n && !strcmp((const char *)n, name);
		xmlFree(n);
		if (hit)
			return c;
	}
	return NULL;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char *d = xstrdup(path);
	char *s = strrchr(d, '/');
	if (s)
		*(s == d ? s + 1 : s) = '\0';
	int fd = open(s ? d : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = fd >= 0 ? fsync(fd) : -1;
	if (fd >= 0)
		close(fd);
	free(d);
	return r;
}

/* Write data to a new file next to `like` (mode/owner of st); returns its path. */
static char *write_temp(const char *like, const struct stat *st, const char *data, size_t n,
			char **err)
{
	char *tmp = xasprintf("%s.zmbatch-XXXXXX", like);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		*err = xasprintf("localconfig %s: step 'write': cannot create a temp file: %s", like,
				 strerror(errno));
		free(tmp);
		return NULL;
	}
	if (fchmod(fd, st->st_mode & 07777) < 0 ||
	    (fchown(fd, st->st_uid, st->st_gid) < 0 && errno != EPERM) ||
	    write_all(fd, data, n) < 0 || fsync(fd) < 0) {
		*err = xasprintf("localconfig %s: step 'write': '%s': %s", like, tmp,
				 strerror(errno));
		close(fd);
		unlink(tmp);
		free(tmp);
		return NULL;
	}
	close(fd);
	return tmp;
}

/* One run over one file: what localconfig_run owns until lc_release. */
struct lc_run {
	const char *file;
	bool backup;
	struct buf orig;           /* the file as read (also the backup's bytes) */
	struct stat st;            /* its mode and owner, for the new files */
	xmlParserCtxtPtr pctx;
	xmlDocPtr doc;
	xmlNodePtr root;           /* <localconfig> */
	size_t changed;            /* keys set or added */
};

static enum zmb_rc lc_read(struct lc_run *r, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	const char *file = r->file;
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &r->st) < 0) {
		*err = xasprintf("localconfig %s: step 'read': %s", file, strerror(errno));
		rc = errno == ENOENT ? ZMB_ENOTFOUND : ZMB_EIO;
		goto out;
	}
	if (!S_ISREG(r->st.st_mode)) {
		*err = xasprintf("localconfig %s: step 'read': not a regular file", file);
		rc = ZMB_ECONFIG;
		goto out;
	}
	char chunk[8192];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		buf_add(&r->orig, chunk, (size_t)n);
	if (n < 0) {
		*err = xasprintf("localconfig %s: step 'read': %s", file, strerror(errno));
		rc = ZMB_EIO;
	}
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Well-formed XML (no network, no libxml2 messages) with <localconfig> as root. */
static enum zmb_rc lc_parse_xml(struct lc_run *r, char **err)
{
	const char *file = r->file;
	r->pctx = xmlNewParserCtxt();
	r->doc = r->pctx ? xmlCtxtReadMemory(r->pctx, r->orig.s ? r->orig.s : "", (int)r->orig.len,
					     file, NULL,
					     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)
			 : NULL;
	if (!r->doc) {
		const xmlError *xe = r->pctx ? xmlCtxtGetLastError(r->pctx) : NULL;
		char *msg = xe && xe->message ? strtrim(xstrdup(xe->message)) : xstrdup("empty");
		*err = xasprintf("localconfig %s:%d: step 'parse': not well-formed XML: %s", file,
				 xe ? xe->line : 0, msg);
		free(msg);
		return ZMB_EPROTO;
	}
	r->root = xmlDocGetRootElement(r->doc);
	if (!r->root || strcmp((const char *)r->root->name, "localconfig")) {
		*err = xasprintf("localconfig %s: step 'parse': not a localconfig file (root element "
				 "is <%s>, expected <localconfig>)", file,
				 r->root ? (const char *)r->root->name : "none");
		return ZMB_EPROTO;
	}
	return ZMB_OK;
}

/* One key: left alone when its value is already the one wanted. */
static void lc_set_key(struct stage_ctx *ctx, struct lc_run *r, const char *name, const char *want)
{
	bool secret = is_secret_key(name);
	xmlNodePtr root = r->root;
	xmlNodePtr key = find_key(root, name);
	xmlNodePtr val = key ? child_elem(key, "value") : NULL;
	xmlChar *cur = val ? xmlNodeGetContent(val) : NULL;
	if (cur && !strcmp((const char *)cur, want)) {
		stage_out(ctx, "%s: no-op (unchanged)", name);
		goto out;
	}
	if (!key) {
		/* append with the file's usual indentation */
		xmlAddChild(root, xmlNewText((const xmlChar *)"  "));
		key = xmlNewChild(root, NULL, (const xmlChar *)"key", NULL);
		xmlNewProp(key, (const xmlChar *)"name", (const xmlChar *)name);
		xmlAddChild(key, xmlNewText((const xmlChar *)"\n    "));
		xmlAddChild(root, xmlNewText((const xmlChar *)"\n"));
	}
	if (!val) {
		val = xmlNewChild(key, NULL, (const xmlChar *)"value", NULL);
		xmlAddChild(key, xmlNewText((const xmlChar *)"\n  "));
	}
	/* plain text node: libxml2 escapes it on output */
	xmlNodeSetContent(val, NULL);
	xmlAddChild(val, xmlNewText((const xmlChar *)want));
	if (secret)
		stage_out(ctx, "%s: %s (value hidden)", name, cur ? "changed" : "added");
	else
		stage_out(ctx, "%s: %s '%s' -> '%s'", name, cur ? "changed" : "added",
			  cur ? (const char *)cur : "", want);
	r->changed++;
out:
	xmlFree(cur);
}

/* A copy of the original next to it: FILE.zmbatch-YYYYmmddTHHMMSSZ[-N].bak */
static enum zmb_rc lc_backup(struct stage_ctx *ctx, const struct lc_run *r, char **err)
{
	enum zmb_rc rc = ZMB_EIO;
	const char *file = r->file;
	char *bak = NULL, *btmp = NULL;
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	for (int i = 0; i < 100 && !bak; i++) {
		char *c = i ? xasprintf("%s.zmbatch-%s-%d.bak", file, stamp, i)
			    : xasprintf("%s.zmbatch-%s.bak", file, stamp);
		if (access(c, F_OK) != 0)
			bak = c;
		else
			free(c);
	}
	if (!bak) {
		*err = xasprintf("localconfig %s: step 'backup': no free backup name", file);
		goto out;
	}
	btmp = write_temp(file, &r->st, r->orig.s ? r->orig.s : "", r->orig.len, err);
	if (!btmp)
		goto out;
	if (rename(btmp, bak) < 0) {
		*err = xasprintf("localconfig %s: step 'backup': %s: %s", file, bak, strerror(errno));
		unlink(btmp);
		goto out;
	}
	stage_out(ctx, "backup: %s", bak);
	rc = ZMB_OK;
out:
	free(btmp);
	free(bak);
	return rc;
}

/* Serialise, back up if asked, write a temp file, rename it over the file. */
static enum zmb_rc lc_write(struct stage_ctx *ctx, const struct lc_run *r, char **err)
{
	enum zmb_rc rc = ZMB_EIO;
	const char *file = r->file;
	xmlChar *mem = NULL;
	char *tmp = NULL;
	int len = 0;
	xmlDocDumpMemoryEnc(r->doc, &mem, &len, "UTF-8");
	if (!mem) {
		*err = xasprintf("localconfig %s: step 'write': cannot serialise", file);
		return ZMB_EINTERNAL;
	}
	if (r->backup && (rc = lc_backup(ctx, r, err)) != ZMB_OK)
		goto out;
	rc = ZMB_EIO;
	tmp = write_temp(file, &r->st, (const char *)mem, (size_t)len, err);
	if (!tmp)
		goto out;
	if (rename(tmp, file) < 0) {
		*err = xasprintf("localconfig %s: step 'rename': %s", file, strerror(errno));
		unlink(tmp);
		goto out;
	}
	fsync_dir_of(file);
	crashpoint("localconfig written");
	stage_out(ctx, "%s: %zu key(s) written", file, r->changed);
	rc = ZMB_OK;
out:
	free(tmp);
	xmlFree(mem);
	return rc;
}

static void lc_release(struct lc_run *r)
{
	buf_release(&r->orig);
	if (r->doc)
		xmlFreeDoc(r->doc);
	if (r->pctx)
		xmlFreeParserCtxt(r->pctx);
}

static enum zmb_rc lc_load(struct lc_run *r, const char *path, char **err)
{
	enum zmb_rc rc;
	r->file = path;
	rc = lc_read(r, err);
	if (!rc)
		rc = lc_parse_xml(r, err);
	return rc;
}

enum zmb_rc localconfig_get(const char *path, const char *key, char **val, char **err)
{
	struct lc_run r = { .orig = BUF_INIT };
	*val = NULL;
	enum zmb_rc rc = lc_load(&r, path, err);
	if (!rc) {
		xmlNodePtr k = find_key(r.root, key);
		xmlNodePtr v = k ? child_elem(k, "value") : NULL;
		xmlChar *cur = v ? xmlNodeGetContent(v) : NULL;
		if (cur)
			*val = xstrdup((const char *)cur);
		xmlFree(cur);
	}
	lc_release(&r);
	return rc;
}

enum zmb_rc localconfig_set(struct stage_ctx *ctx, const char *path, const char *const *names,
			    const char *const *values, size_t n, bool backup, char **err)
{
	struct lc_run r = { .orig = BUF_INIT };
	r.backup = backup;
	enum zmb_rc rc = lc_load(&r, path, err);
	if (rc)
		goto out;
	for (size_t i = 0; i < n; i++)
		lc_set_key(ctx, &r, names[i], values[i]);
	if (!r.changed)
		stage_out(ctx, "%s: unchanged", path);
	else if (ctx->dry_run)
		stage_out(ctx, "%s: %zu change(s) not written (dry run)", path, r.changed);
	else
		rc = lc_write(ctx, &r, err);
out:
	lc_release(&r);
	return rc;
}

struct stage_result localconfig_run(struct stage_ctx *ctx)
{
	struct stage_result res = { ZMB_OK, 0, NULL };
	struct lc_conf k;
	enum zmb_rc rc = ZMB_ECONFIG;
	const char *file = ctx->job ? ctx->job->path : "job";
	const char **names = NULL, **vals = NULL;
	char **texts = NULL;
	size_t n = 0;

	if (lc_parse(ctx->sc, file, &k, &res.err))
		goto out;
	n = k.set->n;
	names = xcalloc(n, sizeof *names);
	vals = xcalloc(n, sizeof *vals);
	texts = xcalloc(n, sizeof *texts);
	for (size_t i = 0; i < n; i++) {
		names[i] = k.set->items[i].name;
		vals[i] = texts[i] = cval_text(&k.set->items[i]);
	}
	rc = ZMB_OK;
	for (size_t f = 0; !rc && f < k.files.n; f++)
		rc = localconfig_set(ctx, k.files.v[f], names, vals, n, k.backup, &res.err);
out:
	for (size_t i = 0; texts && i < n; i++)
		free(texts[i]);
	free(texts);
	free(names);
	free(vals);
	strlist_release(&k.files);
	res.rc = rc;
	return res;
}
