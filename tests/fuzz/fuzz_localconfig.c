/*
 * fuzz_localconfig.c - the localconfig stage on an arbitrary
 * localconfig.xml: libxml2 parse, <key name><value> lookup, edit of four
 * keys (a string with a space, a boolean, an integer and a secret holding
 * XML metacharacters), serialisation and the atomic write.
 *
 * Invariant checked: after a run that succeeded, a second run with the same
 * settings changes nothing (the stage is idempotent on every input).
 */
#include "fuzz_util.h"

#include "stage.h"

static void lc_fz_set(struct cval *v, const char *name, enum cval_type t, const char *s,
		      long long i)
{
	memset(v, 0, sizeof *v);
	v->name = xstrdup(name);
	v->type = t;
	v->str = s ? xstrdup(s) : NULL;
	v->i = i;
	v->b = i != 0;
	v->line = 3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = fz_file("localconfig.xml", data, size);
	struct stage_conf sc;
	struct cval *top, *set;
	char *err = NULL;

	memset(&sc, 0, sizeof sc);
	sc.name = xstrdup("lc");
	sc.type = xstrdup("localconfig");
	sc.line = 1;
	sc.settings.type = CV_GROUP;
	sc.settings.n = 3;
	sc.settings.items = top = xcalloc(3, sizeof *top);
	lc_fz_set(&top[0], "file", CV_STR, path, 0);
	lc_fz_set(&top[1], "backup", CV_BOOL, NULL, 0);
	lc_fz_set(&top[2], "set", CV_GROUP, NULL, 0);
	top[2].n = 4;
	top[2].items = set = xcalloc(4, sizeof *set);
	lc_fz_set(&set[0], "ldap_master_url", CV_STR, "ldap://ldap1:389 ldap://ldap2:389", 0);
	lc_fz_set(&set[1], "ldap_is_master", CV_BOOL, NULL, 1);
	lc_fz_set(&set[2], "mailboxd_java_heap_size", CV_INT, NULL, 512);
	lc_fz_set(&set[3], "zimbra_ldap_password", CV_STR, "p<&>\"'w]]>", 0);

	if (localconfig_validate(&sc, "job.conf", &err) != 0)
		fz_fail("localconfig", "stage settings rejected", err);
	struct stage_ctx ctx;
	memset(&ctx, 0, sizeof ctx);
	ctx.sc = &sc;
	ctx.quiet = true;
	struct stage_result res = localconfig_run(&ctx);
	enum zmb_rc rc = res.rc;
	err = res.err;
	if (rc != ZMB_OK && !err)
		fz_fail("localconfig", "error without a message", zmb_rc_name(rc));
	if (rc == ZMB_OK) {
		buf_release(&ctx.out);
		free(err);
		res = localconfig_run(&ctx);
		rc = res.rc;
		err = res.err;
		if (rc != ZMB_OK)
			fz_fail("localconfig", "second run failed", err);
		if (!strstr(ctx.out.s ? ctx.out.s : "", ": unchanged\n"))
			fz_fail("localconfig", "second run changed the file again", ctx.out.s);
	}
	buf_release(&ctx.out);
	free(err);
	cval_release(&sc.settings);
	free(sc.name);
	free(sc.type);
	free(path);
	return 0;
}
