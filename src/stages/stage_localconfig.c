/*
 * stage_localconfig.c - the `localconfig` stage: set Carbonio/Zimbra
 * localconfig keys in localconfig.xml with libxml2.
 *
 * Keys:
 *   file = "/opt/zextras/conf/localconfig.xml"   required
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
	    cval_bool(g, "backup", true, &k->backup, file, err)) {
		char *p = strstr(*err, "key '");
		char *n = p ? xasprintf("%.*sstage '%s': %s", (int)(p - *err), *err, sc->name, p)
			    : xstrdup(*err);
		free(*err);
		*err = n;
		return -1;
	}
	if (!k->file || !*k->file)
		return lc_fail(sc, NULL, file, "file", err, "required (path of localconfig.xml)");
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
	return lc_parse(sc, file, &k, err);
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

enum zmb_rc localconfig_run(struct stage_ctx *ctx, char **err)
{
	struct lc_conf k;
	enum zmb_rc rc = ZMB_ECONFIG;
	const char *file = ctx->job ? ctx->job->path : "job";
	xmlParserCtxtPtr pctx = NULL;
	xmlDocPtr doc = NULL;
	xmlChar *mem = NULL;
	char *text = NULL, *tmp = NULL, *bak = NULL, *btmp = NULL;
	struct buf orig = BUF_INIT;
	struct stat st;
	int fd = -1;
	size_t changed = 0;

	if (lc_parse(ctx->sc, file, &k, err))
		goto out;
	fd = open(k.file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		*err = xasprintf("localconfig %s: step 'read': %s", k.file, strerror(errno));
		rc = errno == ENOENT ? ZMB_ENOTFOUND : ZMB_EIO;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		*err = xasprintf("localconfig %s: step 'read': not a regular file", k.file);
		goto out;
	}
	char chunk[8192];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		buf_add(&orig, chunk, (size_t)n);
	if (n < 0) {
		*err = xasprintf("localconfig %s: step 'read': %s", k.file, strerror(errno));
		rc = ZMB_EIO;
		goto out;
	}
	pctx = xmlNewParserCtxt();
	doc = pctx ? xmlCtxtReadMemory(pctx, orig.s ? orig.s : "", (int)orig.len, k.file, NULL,
				       XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)
		   : NULL;
	if (!doc) {
		const xmlError *xe = pctx ? xmlCtxtGetLastError(pctx) : NULL;
		char *msg = xe && xe->message ? strtrim(xstrdup(xe->message)) : xstrdup("empty");
		*err = xasprintf("localconfig %s:%d: step 'parse': not well-formed XML: %s", k.file,
				 xe ? xe->line : 0, msg);
		free(msg);
		rc = ZMB_EPROTO;
		goto out;
	}
	xmlNodePtr root = xmlDocGetRootElement(doc);
	if (!root || strcmp((const char *)root->name, "localconfig")) {
		*err = xasprintf("localconfig %s: step 'parse': not a localconfig file (root element "
				 "is <%s>, expected <localconfig>)", k.file,
				 root ? (const char *)root->name : "none");
		rc = ZMB_EPROTO;
		goto out;
	}
	for (size_t i = 0; i < k.set->n; i++) {
		const char *name = k.set->items[i].name;
		char *want = cval_text(&k.set->items[i]);
		bool secret = is_secret_key(name);
		xmlNodePtr key = find_key(root, name);
		xmlNodePtr val = key ? child_elem(key, "value") : NULL;
		xmlChar *cur = val ? xmlNodeGetContent(val) : NULL;
		if (cur && !strcmp((const char *)cur, want)) {
			stage_out(ctx, "%s: no-op (unchanged)", name);
		} else {
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
			changed++;
		}
		xmlFree(cur);
		free(want);
	}
	if (!changed) {
		stage_out(ctx, "%s: unchanged", k.file);
		rc = ZMB_OK;
		goto out;
	}
	if (ctx->dry_run) {
		stage_out(ctx, "%s: %zu change(s) not written (dry run)", k.file, changed);
		rc = ZMB_OK;
		goto out;
	}
	int len = 0;
	xmlDocDumpMemoryEnc(doc, &mem, &len, "UTF-8");
	if (!mem) {
		*err = xasprintf("localconfig %s: step 'write': cannot serialise", k.file);
		rc = ZMB_EINTERNAL;
		goto out;
	}
	rc = ZMB_EIO;
	if (k.backup) {
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
		for (int i = 0; i < 100 && !bak; i++) {
			char *c = i ? xasprintf("%s.zmbatch-%s-%d.bak", k.file, stamp, i)
				    : xasprintf("%s.zmbatch-%s.bak", k.file, stamp);
			if (access(c, F_OK) != 0)
				bak = c;
			else
				free(c);
		}
		if (!bak) {
			*err = xasprintf("localconfig %s: step 'backup': no free backup name", k.file);
			goto out;
		}
		btmp = write_temp(k.file, &st, orig.s ? orig.s : "", orig.len, err);
		if (!btmp)
			goto out;
		if (rename(btmp, bak) < 0) {
			*err = xasprintf("localconfig %s: step 'backup': %s: %s", k.file, bak,
					 strerror(errno));
			goto out;
		}
		free(btmp);
		btmp = NULL;
		stage_out(ctx, "backup: %s", bak);
	}
	tmp = write_temp(k.file, &st, (const char *)mem, (size_t)len, err);
	if (!tmp)
		goto out;
	if (rename(tmp, k.file) < 0) {
		*err = xasprintf("localconfig %s: step 'rename': %s", k.file, strerror(errno));
		unlink(tmp);
		goto out;
	}
	fsync_dir_of(k.file);
	crashpoint("localconfig written");
	stage_out(ctx, "%s: %zu key(s) written", k.file, changed);
	rc = ZMB_OK;
out:
	if (fd >= 0)
		close(fd);
	if (btmp)
		unlink(btmp);
	free(btmp);
	free(tmp);
	free(bak);
	free(text);
	buf_release(&orig);
	if (mem)
		xmlFree(mem);
	if (doc)
		xmlFreeDoc(doc);
	if (pctx)
		xmlFreeParserCtxt(pctx);
	return rc;
}
