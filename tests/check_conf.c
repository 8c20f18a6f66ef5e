/*
 * check_conf.c - job file readers (native libconfig + zmztozmig.conf),
 * validation messages, secrets, convert round trip, parsing helpers.
 *
 * Table-driven: each row is a job file text, whether it must load, and a
 * fragment the error (or a warning) must contain.  Files are real files in a
 * tu_tmpdir(); "@D@" in a row's text is replaced by that directory.
 */
#define _GNU_SOURCE
#include "job.h"
#include "testutil.h"
#include "zmb.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- helpers ---- */

static char *subst(const char *text, const char *dir)
{
	struct buf b = BUF_INIT;
	for (const char *p = text; *p;) {
		if (!strncmp(p, "@D@", 3)) {
			buf_adds(&b, dir);
			p += 3;
		} else {
			buf_add(&b, p, 1);
			p++;
		}
	}
	return buf_detach(&b);
}

/* Write text (after @D@ substitution) as dir/name with mode, load it. */
static enum zmb_rc load_text(const char *dir, const char *name, const char *text, unsigned mode,
			     bool resolve, struct job *job, char **err, char **pathp)
{
	char *t = subst(text, dir);
	char *path = tu_write(dir, name, t, mode);
	free(t);
	enum zmb_rc rc = conf_load(path, resolve, job, err);
	if (pathp)
		*pathp = path;
	else
		free(path);
	return rc;
}

struct row {
	const char *text;
	bool ok;
	const char *frag;    /* in the error (fail) or in a warning (ok), NULL = none */
};

static void run_row(const struct row *r, int i)
{
	char *dir = tu_tmpdir("conf");
	struct job job;
	char *err = NULL, *path = NULL;
	ck_assert_ptr_nonnull(dir);
	setenv("ZMB_TEST_PW", "env-secret", 1);
	unsetenv("ZMB_TEST_NOPE");
	enum zmb_rc rc = load_text(dir, "job.cfg", r->text, 0600, true, &job, &err, &path);
	if (r->ok) {
		ck_assert_msg(rc == ZMB_OK, "row %d: expected ok, got %s", i, err ? err : "?");
		if (r->frag) {
			bool found = false;
			for (size_t w = 0; w < job.warnings.n; w++)
				found |= tu_contains(job.warnings.v[w], r->frag);
			ck_assert_msg(found, "row %d: no warning containing '%s'", i, r->frag);
		}
		ck_assert_ptr_nonnull(job.stages);
		ck_assert_uint_ge(job.nstages, 1);
		job_release(&job);
	} else {
		ck_assert_msg(rc == ZMB_ECONFIG, "row %d: expected ECONFIG, got %d", i, rc);
		ck_assert_ptr_nonnull(err);
		/* every message names the file */
		ck_assert_msg(!strncmp(err, path, strlen(path)), "row %d: '%s' does not start with the path", i, err);
		char *frag = subst(r->frag, dir);
		ck_assert_msg(tu_contains(err, frag), "row %d: '%s' does not contain '%s'", i, err, frag);
		ck_assert_msg(!tu_contains(err, "env-secret") && !tu_contains(err, "inl1ne"),
			      "row %d: secret in message '%s'", i, err);
		free(frag);
		free(err);
	}
	free(path);
	tu_rmrf(dir);
	free(dir);
}

/* ---- native rows ---- */

#define JOBL "job = \"t\";\n"                                                    /* line 1 */
#define SRCL "source = { host = \"zcs1.example.com\"; admin_user = \"admin@example.com\"; admin_password_env = \"ZMB_TEST_PW\"; };\n" /* 2 */
#define TGTL "target = { host = \"zcs2.example.com\"; admin_user = \"admin@example.com\"; admin_password_env = \"ZMB_TEST_PW\"; };\n" /* 3 */
#define MIGL "migration = { accounts = [ \"a@example.com\" ]; working_dir = \"@D@/work\"; };\n" /* 4 */
#define BASE JOBL SRCL TGTL MIGL

static const struct row native_rows[] = {
	/* 0 */ { BASE, true, NULL },
	{ BASE "token = { refresh_margin = \"30m\"; };\nrun = { until = \"06:30\"; max_runtime = \"1h30m\"; };\n", true, NULL },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@example.com\"; threads = 0; working_dir = \"/w\"; };\n",
	  false, ":4: key 'migration.threads': must be 1..256" },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@example.com\"; threads = \"5\"; working_dir = \"/w\"; };\n",
	  false, ":4: key 'migration.threads': expected an integer" },
	{ BASE "jbo = \"x\";\n", false, ":5: unknown key 'jbo'" },
	/* 5 */ { JOBL "source = { hots = \"x\"; };\n" TGTL MIGL, false, ":2: unknown key 'source.hots'" },
	{ JOBL SRCL TGTL "migration = {\n  accounts = [ \"a@example.com\" ];\n  working_dir = \"/w\";\n  thread = 4;\n};\n",
	  false, ":7: unknown key 'migration.thread'" },
	{ JOBL SRCL MIGL, false, "missing key 'target.host'" },
	{ JOBL SRCL "target = { host = \"zcs2\"; admin_user = \"admin\"; };\n" MIGL, false, "missing password" },
	{ JOBL SRCL "target = { host = \"zcs2\"; admin_user = \"admin\"; admin_password_env = \"ZMB_TEST_PW\"; admin_password = \"inl1ne\"; };\n" MIGL,
	  false, "only one of" },
	/* 10 */ { JOBL SRCL TGTL "migration = { working_dir = \"/w\"; };\n", false, "at least one of accounts, accounts_file, domains" },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@x\"; working_dir = \"/w\"; retry_backoff = \"5x\"; };\n",
	  false, ":4: key 'migration.retry_backoff': expected a duration" },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@x\"; working_dir = \"/w\"; retry_backoff = -3; };\n",
	  false, ":4: key 'migration.retry_backoff': expected a duration" },
	{ BASE "stages = (\n { name = \"mail\"; type = \"migrate\"; },\n { name = \"mail\"; type = \"migrate\"; }\n);\n",
	  false, ":7: stage 'mail': duplicate stage name (first defined on line 6)" },
	{ BASE "stages = (\n { name = \"x\"; type = \"bogus\"; }\n);\n", false, ":6: stage 'x': key 'type': unknown stage type 'bogus'" },
	/* 15 */ { BASE "stages = (\n { name = \"x\"; }\n);\n", false, ":6: stage 'x': missing key 'type'" },
	{ BASE "stages = (\n { type = \"migrate\"; }\n);\n", false, ":6: stages[0]: missing key 'name'" },
	{ BASE "stages = ();\n", false, "key 'stages': must list at least one stage" },
	{ BASE "log = { level = \"loud\"; };\n", false, ":5: key 'log.level': must be one of" },
	{ JOBL SRCL TGTL "migration = {\n accounts = \"a@x\";\n working_dir = \"/w\";\n transfer = \"ftp\";\n};\n",
	  false, ":7: key 'migration.transfer': must be one of \"spool\", \"stream\"" },
	/* 20 */ { BASE "run = { until = \"25:00\"; };\n", false, ":5: key 'run.until': expected \"HH:MM\"" },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@x\"; transfer = \"spool\"; };\nstate = { db = \"/tmp/x.db\"; };\n",
	  false, "missing key 'migration.working_dir'" },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@x\"; transfer = \"stream\"; };\nstate = { db = \"/tmp/x.db\"; };\n",
	  true, NULL },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@x\"; working_dir = \"/w\"; keep_success_files = \"yes\"; };\n",
	  false, ":4: key 'migration.keep_success_files': expected true or false" },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@x\"; working_dir = \"/w\"; domain_map = [ \"a.com\" ]; };\n",
	  false, "key 'migration.domain_map': 'a.com': expected \"from.example.com=to.example.com\"" },
	/* 25 */ { JOBL "source = { host = \"h\"; admin_user = \"u\"; admin_password_env = \"ZMB_TEST_PW\"; pinned_pubkey = \"abc\"; };\n" TGTL MIGL,
	  false, "key 'source.pinned_pubkey': expected \"sha256//BASE64=\"" },
	{ JOBL "source = { host = \"h\"; admin_user = \"u\"; admin_password_env = \"ZMB_TEST_NOPE\"; };\n" TGTL MIGL,
	  false, "key 'source.admin_password_env': environment variable 'ZMB_TEST_NOPE' is not set or empty" },
	{ JOBL "source = { host = \"h\"; admin_user = \"u\"; admin_password_file = \"@D@/missing.pw\"; };\n" TGTL MIGL,
	  false, "key 'source.admin_password_file': cannot open password file '@D@/missing.pw'" },
	{ BASE "migration2 = {\n", false, ":6: syntax error" },
	{ JOBL SRCL TGTL "migration = 5;\n", false, ":4: key 'migration': expected a group" },
	/* 30 */ { JOBL "source = { host = \"h\"; port = 70000; admin_user = \"u\"; admin_password_env = \"ZMB_TEST_PW\"; };\n" TGTL MIGL,
	  false, ":2: key 'source.port': must be 1..65535" },
	{ JOBL "source = { host = \"h\"; admin_user = \"u\"; admin_password_env = \"ZMB_TEST_PW\"; tls_verify = false; };\n" TGTL MIGL,
	  true, NULL },
	{ BASE "stages = ( { name = \"bad name\"; type = \"migrate\"; } );\n", false, "key 'stages[0].name': expected a non-empty string" },
	{ JOBL SRCL TGTL "migration = { accounts = ( \"a@x\", 5 ); working_dir = \"/w\"; };\n",
	  false, "key 'migration.accounts': element 2: expected a non-empty string" },
	{ JOBL SRCL TGTL "migration = { accounts = [ \"a@x\", 5 ]; working_dir = \"/w\"; };\n",
	  false, ":4: mismatched element type in array" },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@x\"; working_dir = \"/w\"; max_bytes_per_second = \"10Q\"; };\n",
	  false, "key 'migration.max_bytes_per_second': expected a size" },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@x\"; working_dir = \"/w\"; max_bytes_per_second = 10000000000; };\n",
	  false, ":4: key 'max_bytes_per_second': integer too large" },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@12345678901\"; working_dir = \"/w\"; max_bytes_per_second = 10000000000L; };\n",
	  true, NULL },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@x\"; working_dir = \"/w\"; resolve = \"overwrite\"; };\n",
	  false, "key 'migration.resolve': must be one of" },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@x\"; working_dir = \"/w\"; };\nrun = { grace = \"soon\"; };\n",
	  false, ":5: key 'run.grace': expected a duration" },
	{ JOBL "source = { host = \"h\"; admin_user = \"u\"; admin_password_env = \"ZMB_TEST_PW\"; max_requests_per_second = -1; };\n" TGTL MIGL,
	  false, ":2: key 'source.max_requests_per_second': must be 0..100000 (0 = no cap)" },
	{ JOBL SRCL "target = { host = \"h\"; admin_user = \"u\"; admin_password_env = \"ZMB_TEST_PW\"; max_requests_per_second = \"fast\"; };\n" MIGL,
	  false, ":3: key 'target.max_requests_per_second': expected a number" },
	{ JOBL SRCL TGTL "migration = { accounts = \"a@x\"; working_dir = \"/w\"; max_throttle_wait = \"forever\"; };\n",
	  false, ":4: key 'migration.max_throttle_wait': expected a duration" },
};

START_TEST(test_native_rows)
{
	run_row(&native_rows[_i], _i);
}
END_TEST

START_TEST(test_native_values)
{
	char *dir = tu_tmpdir("conf");
	struct job job;
	char *err = NULL;
	setenv("ZMB_TEST_PW", "env-secret", 1);
	const char *text =
		"# a comment\n"
		"job = \"big\";\n"
		"source = { host = \"zcs1.example.com\"; port = 8443; admin_user = \"admin@example.com\";\n"
		"  admin_password_env = \"ZMB_TEST_PW\"; ca_file = \"ca.pem\"; pinned_pubkey = \"sha256//AAAA=\"; max_requests_per_second = 12.5; };\n"
		"target = { host = \"zcs2.example.com\"; admin_user = \"admin@example.com\"; admin_password_file = \"pw\"; scheme = \"http\"; };\n"
		"migration = {\n"
		"  accounts = [ \"a@old.example.com\", \"b@old.example.com\" ];\n"
		"  accounts_file = \"accounts.txt\";\n"
		"  domains = \"old.example.com\";\n"
		"  domain_map = [ \"old.example.com=new.example.com\", \"x.org = y.org\" ];\n"
		"  threads = 7; working_dir = \"@D@/work/\"; success_dir = \"/s\"; failed_dir = \"/f\";\n"
		"  keep_success_files = true; transfer = \"stream\"; resolve = \"replace\";\n"
		"  types = \"message,contact\"; max_attempts = 5; order = \"as-listed\";\n"
		"  mail_transport = \"smtp:mta.example.com\"; max_bytes_per_second = \"10M\";\n"
		"  retry_backoff = \"90s\"; retry_backoff_max = \"1h30m\"; delta_overlap = \"2d\"; max_throttle_wait = \"45m\";\n"
		"  low_speed_time = 120; low_speed_limit = \"1k\"; buffer_size = \"8M\";\n"
		"};\n"
		"token = { refresh_margin = \"10m\"; };\n"
		"log = { dir = \"/var/log/zmbatch\"; level = \"debug\"; };\n"
		"run = { max_runtime = \"8h\"; until = \"06:00\"; grace = \"2m\"; progress_interval = 30; };\n"
		"stages = (\n"
		"  { name = \"pre\"; type = \"migrate\"; },\n"
		"  { name = \"mail\"; type = \"migrate\"; }\n"
		");\n";
	char *pw = tu_write(dir, "pw", "file-secret\n", 0600);
	char *path = NULL;
	enum zmb_rc rc = load_text(dir, "job.cfg", text, 0600, true, &job, &err, &path);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "?");
	ck_assert(!job.legacy);
	ck_assert_str_eq(job.name, "big");
	ck_assert_int_eq(job.source.port, 8443);
	ck_assert_int_eq(job.target.port, 7071);
	ck_assert_str_eq(job.source.password, "env-secret");
	ck_assert_str_eq(job.target.password, "file-secret");
	ck_assert_str_eq(job.target.password_file, pw);
	char *ca = xasprintf("%s/ca.pem", dir);
	ck_assert_str_eq(job.source.ca_file, ca);   /* relative to the job file */
	free(ca);
	ck_assert_str_eq(job.source.pinned_pubkey, "sha256//AAAA=");
	ck_assert_str_eq(job.source.scheme, "https");
	ck_assert_str_eq(job.target.scheme, "http");
	ck_assert(job.source.tls_verify);
	ck_assert_uint_eq(job.mig.accounts.n, 2);
	ck_assert_uint_eq(job.mig.domains.n, 1);
	ck_assert_uint_eq(job.mig.nmaps, 2);
	ck_assert_str_eq(job.mig.maps[1].from, "x.org");
	ck_assert_str_eq(job.mig.maps[1].to, "y.org");
	ck_assert_int_eq(job.mig.threads, 7);
	ck_assert(job.mig.keep_success_files);
	ck_assert_int_eq(job.mig.transfer, TRANSFER_STREAM);
	ck_assert_str_eq(job.mig.resolve, "replace");
	ck_assert_str_eq(job.mig.types, "message,contact");
	ck_assert_int_eq(job.mig.max_attempts, 5);
	ck_assert_int_eq(job.mig.order, ORDER_AS_LISTED);
	ck_assert_str_eq(job.mig.mail_transport, "smtp:mta.example.com");
	ck_assert_int_eq(job.mig.max_bytes_per_second, 10LL * 1024 * 1024);
	ck_assert_int_eq(job.mig.retry_backoff, 90);
	ck_assert_int_eq(job.mig.retry_backoff_max, 5400);
	ck_assert_int_eq(job.mig.delta_overlap, 2 * 86400);
	ck_assert_int_eq(job.mig.max_throttle_wait, 45 * 60);
	ck_assert(job.source.max_rps == 12.5);
	ck_assert(job.target.max_rps == 25);
	ck_assert_int_eq(job.mig.low_speed_time, 120);
	ck_assert_int_eq(job.mig.low_speed_limit, 1024);
	ck_assert_int_eq(job.mig.buffer_size, 8LL * 1024 * 1024);
	ck_assert_int_eq(job.token_refresh_margin, 600);
	ck_assert_str_eq(job.log_dir, "/var/log/zmbatch");
	ck_assert_str_eq(job.log_level, "debug");
	ck_assert_int_eq(job.max_runtime, 8 * 3600);
	ck_assert_str_eq(job.until, "06:00");
	ck_assert_int_eq(job.grace, 120);
	ck_assert_int_eq(job.progress_interval, 30);
	char *db = xasprintf("%s/work/zmbatch.db", dir);
	ck_assert_str_eq(job.state_db, db);
	free(db);
	ck_assert_uint_eq(job.nstages, 2);
	ck_assert_str_eq(job.stages[1].name, "mail");
	ck_assert_int_eq(job.stages[1].line, 23);
	ck_assert_int_eq(job.stages[1].settings.type, CV_GROUP);
	ck_assert_str_eq(cval_get(&job.stages[1].settings, "type")->str, "migrate");
	ck_assert_uint_eq(job.warnings.n, 0);

	char *id = job_identity(&job);
	ck_assert_str_eq(id, "big|zcs1.example.com:8443|zcs2.example.com:7071");
	free(id);
	char *t = job_map_account(&job, "user@OLD.Example.com");
	ck_assert_str_eq(t, "user@new.example.com");
	free(t);
	t = job_map_account(&job, "user@other.com");
	ck_assert_str_eq(t, "user@other.com");
	free(t);
	job_release(&job);
	job_release(&job);   /* NULL-safe twice */
	free(path);
	free(pw);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_native_defaults)
{
	char *dir = tu_tmpdir("conf");
	struct job job;
	char *err = NULL;
	setenv("ZMB_TEST_PW", "env-secret", 1);
	enum zmb_rc rc = load_text(dir, "job.cfg", BASE, 0600, true, &job, &err, NULL);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "?");
	ck_assert_int_eq(job.source.port, 7071);
	ck_assert(job.source.tls_verify && job.target.tls_verify);
	ck_assert_int_eq(job.mig.threads, 5);
	ck_assert(!job.mig.keep_success_files);
	ck_assert_int_eq(job.mig.transfer, TRANSFER_SPOOL);
	ck_assert_str_eq(job.mig.resolve, "skip");
	ck_assert_ptr_null(job.mig.types);
	ck_assert_int_eq(job.mig.max_attempts, 3);
	ck_assert_int_eq(job.mig.order, ORDER_LARGEST_FIRST);
	ck_assert_int_eq(job.mig.max_bytes_per_second, 0);
	ck_assert_int_eq(job.mig.retry_backoff, 30);
	ck_assert_int_eq(job.mig.retry_backoff_max, 900);
	ck_assert_int_eq(job.mig.max_throttle_wait, 1800);
	ck_assert(job.source.max_rps == 25 && job.target.max_rps == 25);
	ck_assert_int_eq(job.mig.delta_overlap, 86400);
	ck_assert_int_eq(job.mig.low_speed_time, 300);
	ck_assert_int_eq(job.mig.buffer_size, 1024 * 1024);
	ck_assert_int_eq(job.token_refresh_margin, 1800);
	ck_assert_str_eq(job.log_level, "info");
	ck_assert_ptr_null(job.log_dir);
	ck_assert_int_eq(job.max_runtime, 0);
	ck_assert_ptr_null(job.until);
	ck_assert_int_eq(job.grace, 300);
	ck_assert_int_eq(job.progress_interval, 300);
	ck_assert_uint_eq(job.nstages, 1);
	ck_assert_str_eq(job.stages[0].name, "migrate");
	ck_assert_str_eq(job.stages[0].type, "migrate");
	ck_assert_int_eq(job.stages[0].settings.type, CV_GROUP);
	job_release(&job);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* ---- secrets ---- */

START_TEST(test_password_file_modes)
{
	char *dir = tu_tmpdir("conf");
	struct job job;
	char *err = NULL;
	const char *text = JOBL
		"source = { host = \"h1\"; admin_user = \"u\"; admin_password_file = \"@D@/src.pw\"; };\n"
		"target = { host = \"h2\"; admin_user = \"u\"; admin_password_file = \"@D@/src.pw\"; };\n" MIGL;
	char *pw = tu_write(dir, "src.pw", "S3cr3t,=x\n", 0644);
	enum zmb_rc rc = load_text(dir, "job.cfg", text, 0600, true, &job, &err, NULL);
	ck_assert_int_eq(rc, ZMB_ECONFIG);
	ck_assert_msg(tu_contains(err, "readable by group or others"), "%s", err);
	ck_assert_msg(tu_contains(err, "chmod 600"), "%s", err);
	ck_assert_msg(tu_contains(err, pw), "%s", err);
	ck_assert_msg(tu_contains(err, ":2: key 'source.admin_password_file'"), "%s", err);
	ck_assert(!tu_contains(err, "S3cr3t"));
	free(err);
	err = NULL;
	/* not resolved (convert): the mode is not looked at */
	rc = load_text(dir, "job.cfg", text, 0600, false, &job, &err, NULL);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "?");
	ck_assert_ptr_null(job.source.password);
	job_release(&job);

	chmod(pw, 0600);
	rc = load_text(dir, "job.cfg", text, 0600, true, &job, &err, NULL);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "?");
	ck_assert_str_eq(job.source.password, "S3cr3t,=x");
	ck_assert(!job.source.password_inline);
	job_release(&job);
	free(pw);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_inline_password_warning)
{
	char *dir = tu_tmpdir("conf");
	struct job job;
	char *err = NULL;
	const char *text = JOBL
		"source = { host = \"h1\"; admin_user = \"u\"; admin_password = \"inl1ne\"; };\n"
		TGTL MIGL;
	setenv("ZMB_TEST_PW", "env-secret", 1);
	enum zmb_rc rc = load_text(dir, "job.cfg", text, 0644, true, &job, &err, NULL);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "?");
	ck_assert_str_eq(job.source.password, "inl1ne");
	ck_assert(job.source.password_inline);
	ck_assert_uint_eq(job.warnings.n, 1);
	ck_assert(tu_contains(job.warnings.v[0], "readable by group or others"));
	ck_assert(tu_contains(job.warnings.v[0], "chmod 600"));
	ck_assert(!tu_contains(job.warnings.v[0], "inl1ne"));
	job_release(&job);
	rc = load_text(dir, "job.cfg", text, 0600, true, &job, &err, NULL);
	ck_assert_int_eq(rc, ZMB_OK);
	ck_assert_uint_eq(job.warnings.n, 0);
	job_release(&job);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* ---- cval accessors ---- */

static struct cval cv_leaf(const char *name, enum cval_type t, int line)
{
	struct cval v = { 0 };
	v.name = xstrdup(name);
	v.type = t;
	v.line = line;
	return v;
}

START_TEST(test_cval_accessors)
{
	/* a stage group as the reader builds it: { s = "str"; n = 42; ... } */
	struct cval g = cv_leaf(NULL, CV_GROUP, 7);
	g.items = xcalloc(10, sizeof *g.items);
	g.items[g.n] = cv_leaf("s", CV_STR, 8);
	g.items[g.n++].str = xstrdup("str");
	g.items[g.n] = cv_leaf("n", CV_INT, 8);
	g.items[g.n++].i = 42;
	g.items[g.n] = cv_leaf("b", CV_BOOL, 8);
	g.items[g.n].b = true;
	g.items[g.n++].i = 1;
	g.items[g.n] = cv_leaf("l", CV_LIST, 8);
	g.items[g.n].items = xcalloc(2, sizeof(struct cval));
	g.items[g.n].items[0] = cv_leaf(NULL, CV_STR, 8);
	g.items[g.n].items[0].str = xstrdup("x");
	g.items[g.n].items[1] = cv_leaf(NULL, CV_STR, 8);
	g.items[g.n].items[1].str = xstrdup("y");
	g.items[g.n++].n = 2;
	g.items[g.n] = cv_leaf("d", CV_STR, 8);
	g.items[g.n++].str = xstrdup("45m");
	g.items[g.n] = cv_leaf("di", CV_INT, 8);
	g.items[g.n++].i = 90;
	g.items[g.n] = cv_leaf("bad", CV_FLOAT, 9);
	g.items[g.n++].f = 3.5;
	g.items[g.n] = cv_leaf("badl", CV_LIST, 9);
	g.items[g.n].items = xcalloc(1, sizeof(struct cval));
	g.items[g.n].items[0] = cv_leaf(NULL, CV_INT, 9);
	g.items[g.n++].n = 1;
	g.items[g.n] = cv_leaf("neg", CV_INT, 0);
	g.items[g.n++].i = -5;

	const char *file = "job.cfg";
	char *err = NULL;
	const char *s;
	long long n;
	bool b;
	struct strlist l = STRLIST_INIT;
	ck_assert_int_eq(cval_str(&g, "s", NULL, &s, file, &err), 0);
	ck_assert_str_eq(s, "str");
	ck_assert_int_eq(cval_str(&g, "absent", "def", &s, file, &err), 0);
	ck_assert_str_eq(s, "def");
	ck_assert_int_eq(cval_int(&g, "n", 0, &n, file, &err), 0);
	ck_assert_int_eq(n, 42);
	ck_assert_int_eq(cval_int(&g, "absent", 3, &n, file, &err), 0);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(cval_bool(&g, "b", false, &b, file, &err), 0);
	ck_assert(b);
	ck_assert_int_eq(cval_bool(&g, "absent", true, &b, file, &err), 0);
	ck_assert(b);
	ck_assert_int_eq(cval_strlist(&g, "l", &l, file, &err), 0);
	ck_assert_int_eq(cval_strlist(&g, "s", &l, file, &err), 0);
	ck_assert_int_eq(cval_strlist(&g, "absent", &l, file, &err), 0);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_str_eq(l.v[2], "str");
	strlist_release(&l);
	ck_assert_int_eq(cval_duration(&g, "d", 0, &n, file, &err), 0);
	ck_assert_int_eq(n, 2700);
	ck_assert_int_eq(cval_duration(&g, "di", 0, &n, file, &err), 0);
	ck_assert_int_eq(n, 90);
	ck_assert_int_eq(cval_duration(&g, "absent", 7, &n, file, &err), 0);
	ck_assert_int_eq(n, 7);
	ck_assert_ptr_nonnull(cval_get(&g, "l"));
	ck_assert_ptr_null(cval_get(&g, "nope"));
	ck_assert_ptr_null(cval_get(NULL, "s"));
	ck_assert_ptr_null(cval_get(cval_get(&g, "s"), "x"));   /* not a group */

	ck_assert_int_eq(cval_str(&g, "n", NULL, &s, file, &err), -1);
	ck_assert_str_eq(err, "job.cfg:8: key 'n': expected a string");
	free(err);
	ck_assert_int_eq(cval_int(&g, "bad", 0, &n, file, &err), -1);
	ck_assert_str_eq(err, "job.cfg:9: key 'bad': expected an integer");
	free(err);
	ck_assert_int_eq(cval_bool(&g, "s", false, &b, file, &err), -1);
	ck_assert_str_eq(err, "job.cfg:8: key 's': expected true or false");
	free(err);
	ck_assert_int_eq(cval_strlist(&g, "badl", &l, file, &err), -1);
	ck_assert_str_eq(err, "job.cfg:9: key 'badl': element 1: expected a string");
	free(err);
	strlist_release(&l);
	ck_assert_int_eq(cval_strlist(&g, "n", &l, file, &err), -1);
	ck_assert(tu_contains(err, "expected a string or a list of strings"));
	free(err);
	ck_assert_int_eq(cval_duration(&g, "s", 0, &n, file, &err), -1);
	ck_assert(tu_contains(err, "job.cfg:8: key 's': expected a duration"));
	free(err);
	/* no line of its own: the group's line */
	ck_assert_int_eq(cval_duration(&g, "neg", 0, &n, file, &err), -1);
	ck_assert_str_eq(err, "job.cfg:7: key 'neg': must not be negative");
	free(err);
	cval_release(&g);
	ck_assert_uint_eq(g.n, 0);
	cval_release(&g);
	cval_release(NULL);
}
END_TEST

/* ---- legacy rows ---- */

#define L_SRC "SourceZCSServer=zcs1.example.com\nSourceAdminUser=admin\nSourceAdminPwd=p,w=d\n"   /* 1-3 */
#define L_TGT "TargetZCSServer=zcs2.example.com\nTargetAdminUser=admin\nTargetAdminPwd=x\n"        /* 4-6 */
#define L_WD  "WorkingDirectory=/tmp/ztozmig/\n"                                                    /* 7 */
#define LBASE L_SRC L_TGT L_WD

static const struct row legacy_rows[] = {
	/* 0 */ { LBASE "Accounts=a@zcs1.example.com\n", true, NULL },
	{ LBASE "garbage line\nAccounts=a@x\n", false, ":8: expected Key=Value" },
	{ LBASE "Threads=abc\nAccounts=a@x\n", false, ":8: key 'Threads': must be 1..256" },
	{ LBASE "Threads=0\nAccounts=a@x\n", false, ":8: key 'Threads': must be 1..256" },
	{ "SourceAdminUser=admin\nSourceAdminPwd=p\n" L_TGT L_WD "Accounts=a@x\n", false, "missing key 'SourceZCSServer'" },
	/* 5 */ { L_SRC "TargetZCSServer=zcs2\nTargetAdminUser=admin\n" L_WD "Accounts=a@x\n", false, "missing key 'TargetAdminPwd'" },
	{ LBASE "Accounts=all\n", false, ":8: Accounts=all needs Domains" },
	{ LBASE, false, "missing key 'Accounts'" },
	{ LBASE "SourceAdminPort=99999\nAccounts=a@x\n", false, ":8: key 'SourceAdminPort': must be a port number" },
	{ LBASE "DomainMap=onlyone\nAccounts=a@x\n", false, ":8: key 'DomainMap': expected \"from.example.com to.example.com\"" },
	/* 10 */ { LBASE "resolve=bogus\nAccounts=a@x\n", false, ":8: key 'resolve': must be skip, modify, replace or reset" },
	{ L_SRC L_TGT "Accounts=a@x\n", false, "missing key 'WorkingDirectory'" },
	{ LBASE "Foo=bar\nAccounts=a@x\n", true, ":8: unknown key 'Foo' ignored" },
	{ LBASE "Domains=a.com\nAccounts=a@x\n", true, ":8: Domains is ignored without Accounts=all" },
	{ LBASE "=value\nAccounts=a@x\n", false, ":8: expected Key=Value (the key is empty)" },
};

START_TEST(test_legacy_rows)
{
	run_row(&legacy_rows[_i], _i);
}
END_TEST

static struct job *legacy_load(const char *text, unsigned mode, struct job *job, char **dirp)
{
	char *dir = tu_tmpdir("conf");
	char *err = NULL;
	enum zmb_rc rc = load_text(dir, "zmztozmig.conf", text, mode, true, job, &err, NULL);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "?");
	ck_assert(job->legacy);
	*dirp = dir;
	return job;
}

static void legacy_done(struct job *job, char *dir)
{
	job_release(job);
	tu_rmrf(dir);
	free(dir);
}

START_TEST(test_legacy_quirks)
{
	struct job job;
	char *dir;
	const char *text =
		"# zmztozmig.conf\n"                                   /* 1 */
		"sourcezcsserver = zcs1.example.com\n"                 /* 2  case-insensitive keys */
		"SOURCEADMINUSER=admin@zcs1.example.com\n"             /* 3 */
		"SourceAdminPwd=pa,ss=wo rd\n"                         /* 4  ',' and '=' kept */
		"\n"                                                   /* 5 */
		"   \t  \n"                                            /* 6  whitespace-only */
		"TargetZCSServer=zcs2.example.com\r\n"                 /* 7  CRLF */
		"TargetAdminUser=admin\n"                              /* 8 */
		"TargetAdminPwd==eq=start\n"                           /* 9 */
		"TargetAdminPort=8071\n"                               /* 10 */
		"THREADS=4\n"                                          /* 11 */
		"WorkingDirectory=/tmp/ztozmig/mailboxdumps/\n"        /* 12 */
		"FailedDirectory=/tmp/ztozmig/mailboxfailures/\n"      /* 13 */
		"SuccessDirectory=/tmp/ztozmig/successes/\n"           /* 14 */
		"LogDirectory=/opt/zimbra/log/ztozmiglogs\n"           /* 15 */
		"ZimbraMailTransport=smtp:mta.zcs.mail.mydomain.com\n" /* 16 */
		"types=message,contact\n"                              /* 17 */
		"resolve=Replace\n"                                    /* 18 */
		"DomainMap=zcs1.example.com zcs2.example.com\n"        /* 19 */
		"DomainMap=Other.COM other.org\n"                      /* 20 */
		"Domains=a.com,b.com\n"                                /* 21 */
		"Domains=c.com\n"                                      /* 22 */
		"Accounts=all\n"                                       /* 23 */
		"Accounts=x@a.com, y@a.com\n"                          /* 24 */
		"Accounts=z@b.com\n"                                   /* 25 */
		"LogFile=/tmp/nope\n"                                  /* 26 unknown */
		"  # indented comment\n";                              /* 27 */
	legacy_load(text, 0600, &job, &dir);
	ck_assert_str_eq(job.name, "zmztozmig");
	ck_assert_str_eq(job.source.host, "zcs1.example.com");
	ck_assert_str_eq(job.source.admin_user, "admin@zcs1.example.com");
	ck_assert_str_eq(job.source.password, "pa,ss=wo rd");
	ck_assert(job.source.password_inline);
	ck_assert_str_eq(job.target.host, "zcs2.example.com");
	ck_assert_str_eq(job.target.password, "=eq=start");
	ck_assert_int_eq(job.source.port, 7071);
	ck_assert_int_eq(job.target.port, 8071);
	ck_assert_int_eq(job.mig.threads, 4);
	ck_assert_str_eq(job.mig.working_dir, "/tmp/ztozmig/mailboxdumps/");
	ck_assert_str_eq(job.mig.failed_dir, "/tmp/ztozmig/mailboxfailures/");
	ck_assert_str_eq(job.mig.success_dir, "/tmp/ztozmig/successes/");
	ck_assert_str_eq(job.log_dir, "/opt/zimbra/log/ztozmiglogs");
	ck_assert_str_eq(job.mig.mail_transport, "smtp:mta.zcs.mail.mydomain.com");
	ck_assert_str_eq(job.mig.types, "message,contact");
	ck_assert_str_eq(job.mig.resolve, "replace");
	ck_assert_uint_eq(job.mig.nmaps, 2);
	ck_assert_str_eq(job.mig.maps[1].from, "Other.COM");
	ck_assert_uint_eq(job.mig.domains.n, 3);    /* every domain used */
	ck_assert_str_eq(job.mig.domains.v[2], "c.com");
	ck_assert_uint_eq(job.mig.accounts.n, 3);   /* repeated lines accumulate */
	ck_assert_str_eq(job.mig.accounts.v[1], "y@a.com");
	ck_assert_str_eq(job.state_db, "/tmp/ztozmig/mailboxdumps/zmbatch.db");
	ck_assert(job.mig.keep_success_files);      /* absent: keep */
	ck_assert_int_eq(job.mig.transfer, TRANSFER_SPOOL);
	ck_assert_uint_eq(job.nstages, 1);
	ck_assert_str_eq(job.stages[0].type, "migrate");
	ck_assert_uint_eq(job.warnings.n, 1);
	char *w = xasprintf("%s/zmztozmig.conf:26: unknown key 'LogFile' ignored", dir);
	ck_assert_str_eq(job.warnings.v[0], w);
	free(w);
	char *id = job_identity(&job);
	ck_assert_str_eq(id, "zmztozmig|zcs1.example.com:7071|zcs2.example.com:8071");
	free(id);
	char *t = job_map_account(&job, "u@ZCS1.example.com");
	ck_assert_str_eq(t, "u@zcs2.example.com");
	free(t);
	t = job_map_account(&job, "u@other.com");
	ck_assert_str_eq(t, "u@other.org");
	free(t);
	legacy_done(&job, dir);
}
END_TEST

START_TEST(test_legacy_keep_success)
{
	static const struct { const char *v; bool keep; } tab[] = {
		{ "FALSE", false }, { "false", false }, { "False", false }, { " FALSE ", false },
		{ "TRUE", true }, { "no", true }, { "0", true }, { "", true }, { "FALSEish", true },
	};
	for (size_t i = 0; i < sizeof tab / sizeof *tab; i++) {
		struct job job;
		char *dir;
		char *text = xasprintf(LBASE "Accounts=a@x\nKeepSuccessFiles=%s\n", tab[i].v);
		legacy_load(text, 0600, &job, &dir);
		ck_assert_msg(job.mig.keep_success_files == tab[i].keep, "KeepSuccessFiles=%s", tab[i].v);
		free(text);
		legacy_done(&job, dir);
	}
}
END_TEST

START_TEST(test_legacy_inline_warning)
{
	struct job job;
	char *dir;
	legacy_load(LBASE "Accounts=a@x\n", 0644, &job, &dir);
	ck_assert_uint_eq(job.warnings.n, 2);    /* source and target */
	ck_assert(tu_contains(job.warnings.v[0], "readable by group or others"));
	ck_assert(!tu_contains(job.warnings.v[0], "p,w=d"));
	legacy_done(&job, dir);
	legacy_load(LBASE "Accounts=a@x\n", 0600, &job, &dir);
	ck_assert_uint_eq(job.warnings.n, 0);
	legacy_done(&job, dir);
}
END_TEST

START_TEST(test_is_legacy)
{
	ck_assert(conf_is_legacy(LBASE));
	ck_assert(conf_is_legacy("# c\n\nsourcezcsserver = h\n"));
	ck_assert(conf_is_legacy("Accounts=a@x\n"));
	ck_assert(!conf_is_legacy(BASE));
	ck_assert(!conf_is_legacy("# just a comment\n"));
	ck_assert(!conf_is_legacy(""));
	ck_assert(!conf_is_legacy(NULL));
	ck_assert(!conf_is_legacy("job = \"x\";\nmigration = { threads = 5; };\n"));
	ck_assert(!conf_is_legacy("migration = {\n  threads = 4;\n  accounts = [ \"a@x\" ];\n  domains = \"d\";\n};\n"));
	ck_assert(!conf_is_legacy("/* Threads=4\nAccounts=a */\njob = \"x\";\n"));
	/* a password ending in ';' does not make it native */
	ck_assert(conf_is_legacy("SourceAdminPwd=abc;\nSourceZCSServer=h\nAccounts=a@x\n"));
}
END_TEST

START_TEST(test_legacy_parse_direct)
{
	struct job job;
	char *err = NULL;
	enum zmb_rc rc = conf_legacy_parse("mem.conf", "Threads=2\nbad\n", &job, &err);
	ck_assert_int_eq(rc, ZMB_ECONFIG);
	ck_assert_str_eq(err, "mem.conf:2: expected Key=Value");
	free(err);
	job_release(&job);
	rc = conf_legacy_parse("mem.conf", "Threads=2\nAccounts=a@x\n", &job, &err);
	ck_assert_int_eq(rc, ZMB_OK);
	ck_assert_int_eq(job.mig.threads, 2);
	job_release(&job);
}
END_TEST

/*
 * Errors and warnings of one file, all at once (issue 13: an unknown key was
 * not reported when a missing WorkingDirectory stopped the conversion).  A
 * zmztozmig.conf is read to its end and checked as a whole; the warnings
 * follow the errors, in the order they were found (the lines' first, then
 * those about the file as a whole).  The checks of both formats report every independent
 * error.
 */
START_TEST(test_all_messages_at_once)
{
	char *dir = tu_tmpdir("conf");
	struct job job;
	char *err = NULL, *path = NULL;
	const char *text = L_SRC L_TGT        /* 1-6, no WorkingDirectory */
		"Foo=bar\n"                   /* 7: unknown key (warning) */
		"Threads=many\n"              /* 8: error */
		"garbage line\n"              /* 9: error */
		"Domains=a.com\n"             /* 10: ignored without Accounts=all (warning) */
		"Accounts=a@x\n"              /* 11 */
		"LogFile=/tmp/x\n";           /* 12: unknown key (warning) */
	ck_assert_int_eq(load_text(dir, "zmztozmig.conf", text, 0600, true, &job, &err, &path), ZMB_ECONFIG);
	char *want = xasprintf("%s:8: key 'Threads': must be 1..256\n"
			       "%s:9: expected Key=Value\n"
			       "%s:11: missing key 'WorkingDirectory' (needed for transfer = \"spool\")\n"
			       "warning: %s:7: unknown key 'Foo' ignored\n"
			       "warning: %s:12: unknown key 'LogFile' ignored\n"
			       "warning: %s:10: Domains is ignored without Accounts=all (as in zmztozmig)",
			       path, path, path, path, path, path);
	ck_assert_str_eq(err, want);
	ck_assert(!tu_contains(err, "p,w=d"));
	free(want);
	free(err);
	free(path);

	/* only the checks of the whole file fail: the warnings still come with them */
	err = NULL;
	ck_assert_int_eq(load_text(dir, "z2.conf", L_SRC L_TGT "Foo=bar\nAccounts=a@x\n", 0600, true, &job,
				   &err, &path), ZMB_ECONFIG);
	want = xasprintf("%s:8: missing key 'WorkingDirectory' (needed for transfer = \"spool\")\n"
			 "warning: %s:7: unknown key 'Foo' ignored", path, path);
	ck_assert_str_eq(err, want);
	free(want);
	free(err);
	free(path);

	/* Accounts=all without Domains is said once, not also as a missing Accounts */
	err = NULL;
	ck_assert_int_eq(load_text(dir, "z3.conf", LBASE "Accounts=all\n", 0600, true, &job, &err, &path),
			 ZMB_ECONFIG);
	want = xasprintf("%s:8: Accounts=all needs Domains=domain1,domain2", path);
	ck_assert_str_eq(err, want);
	free(want);
	free(err);
	free(path);
	/* an Accounts line that names nobody */
	err = NULL;
	ck_assert_int_eq(load_text(dir, "z4.conf", LBASE "Accounts= , \n", 0600, true, &job, &err, &path),
			 ZMB_ECONFIG);
	ck_assert_msg(tu_contains(err, ":8: key 'Accounts': names no account"), "%s", err);
	free(err);
	free(path);

	/* native: every independent check, in order */
	err = NULL;
	ck_assert_int_eq(load_text(dir, "job.cfg", JOBL
				   "source = { admin_user = \"a\"; admin_password_env = \"ZMB_TEST_PW\"; };\n"
				   "target = { host = \"h\"; admin_password_env = \"ZMB_TEST_PW\"; };\n"
				   "migration = { accounts = [ \"a@x\" ]; };\n",
				   0600, false, &job, &err, &path), ZMB_ECONFIG);
	want = xasprintf("%s:2: missing key 'source.host' (source server host name)\n"
			 "%s:3: missing key 'target.admin_user' (target admin account)\n"
			 "%s:4: missing key 'migration.working_dir' (needed for transfer = \"spool\")",
			 path, path, path);
	ck_assert_str_eq(err, want);
	free(want);
	free(err);
	free(path);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* ---- convert round trip ---- */

static void assert_same_job(const struct job *a, const struct job *b)
{
	ck_assert_str_eq(a->name, b->name);
	const struct server *sa[2] = { &a->source, &a->target };
	const struct server *sb[2] = { &b->source, &b->target };
	for (int i = 0; i < 2; i++) {
		ck_assert_str_eq(sa[i]->host, sb[i]->host);
		ck_assert_int_eq(sa[i]->port, sb[i]->port);
		ck_assert_str_eq(sa[i]->admin_user, sb[i]->admin_user);
		ck_assert(streq(sa[i]->ca_file, sb[i]->ca_file));
		ck_assert(streq(sa[i]->pinned_pubkey, sb[i]->pinned_pubkey));
		ck_assert_int_eq(sa[i]->tls_verify, sb[i]->tls_verify);
		ck_assert(streq(sa[i]->scheme, sb[i]->scheme));
		ck_assert(sa[i]->max_rps == sb[i]->max_rps);
	}
	const struct migration *ma = &a->mig, *mb = &b->mig;
	ck_assert_uint_eq(ma->accounts.n, mb->accounts.n);
	for (size_t i = 0; i < ma->accounts.n; i++)
		ck_assert_str_eq(ma->accounts.v[i], mb->accounts.v[i]);
	ck_assert_uint_eq(ma->domains.n, mb->domains.n);
	for (size_t i = 0; i < ma->domains.n; i++)
		ck_assert_str_eq(ma->domains.v[i], mb->domains.v[i]);
	ck_assert_uint_eq(ma->nmaps, mb->nmaps);
	for (size_t i = 0; i < ma->nmaps; i++) {
		ck_assert_str_eq(ma->maps[i].from, mb->maps[i].from);
		ck_assert_str_eq(ma->maps[i].to, mb->maps[i].to);
	}
	ck_assert(streq(ma->accounts_file, mb->accounts_file));
	ck_assert_int_eq(ma->threads, mb->threads);
	ck_assert(streq(ma->working_dir, mb->working_dir));
	ck_assert(streq(ma->success_dir, mb->success_dir));
	ck_assert(streq(ma->failed_dir, mb->failed_dir));
	ck_assert_int_eq(ma->keep_success_files, mb->keep_success_files);
	ck_assert_int_eq(ma->transfer, mb->transfer);
	ck_assert(streq(ma->resolve, mb->resolve));
	ck_assert(streq(ma->types, mb->types));
	ck_assert_int_eq(ma->max_attempts, mb->max_attempts);
	ck_assert_int_eq(ma->order, mb->order);
	ck_assert(streq(ma->mail_transport, mb->mail_transport));
	ck_assert_int_eq(ma->max_bytes_per_second, mb->max_bytes_per_second);
	ck_assert_int_eq(ma->retry_backoff, mb->retry_backoff);
	ck_assert_int_eq(ma->retry_backoff_max, mb->retry_backoff_max);
	ck_assert_int_eq(ma->max_throttle_wait, mb->max_throttle_wait);
	ck_assert_int_eq(ma->delta_overlap, mb->delta_overlap);
	ck_assert_int_eq(ma->low_speed_time, mb->low_speed_time);
	ck_assert_int_eq(ma->low_speed_limit, mb->low_speed_limit);
	ck_assert_int_eq(ma->buffer_size, mb->buffer_size);
	ck_assert_int_eq(a->token_refresh_margin, b->token_refresh_margin);
	ck_assert(streq(a->state_db, b->state_db));
	ck_assert(streq(a->log_dir, b->log_dir));
	ck_assert(streq(a->log_level, b->log_level));
	ck_assert_int_eq(a->max_runtime, b->max_runtime);
	ck_assert(streq(a->until, b->until));
	ck_assert_int_eq(a->grace, b->grace);
	ck_assert_int_eq(a->progress_interval, b->progress_interval);
	ck_assert_uint_eq(a->nstages, b->nstages);
	for (size_t i = 0; i < a->nstages; i++) {
		ck_assert_str_eq(a->stages[i].name, b->stages[i].name);
		ck_assert_str_eq(a->stages[i].type, b->stages[i].type);
	}
}

/* Load `text`, write it natively, load that back, compare. Returns the output. */
static char *round_trip(const char *text)
{
	char *dir = tu_tmpdir("conf");
	struct job a, b;
	char *err = NULL, *path = NULL;
	enum zmb_rc rc = load_text(dir, "in.conf", text, 0600, false, &a, &err, NULL);
	ck_assert_msg(rc == ZMB_OK, "%s", err ? err : "?");
	char *out = xasprintf("%s/out.cfg", dir);
	FILE *f = fopen(out, "w");
	ck_assert_ptr_nonnull(f);
	conf_write_native(&a, f);
	fclose(f);
	char *written = tu_read(out);
	rc = conf_load(out, false, &b, &err);
	ck_assert_msg(rc == ZMB_OK, "reload: %s\n%s", err ? err : "?", written);
	ck_assert(!b.legacy);
	assert_same_job(&a, &b);
	job_release(&a);
	job_release(&b);
	free(out);
	free(path);
	tu_rmrf(dir);
	free(dir);
	return written;
}

START_TEST(test_convert_round_trip_legacy)
{
	const char *text =
		"SourceZCSServer=zcs1.example.com\nSourceAdminUser=admin\nSourceAdminPwd=Very\"Secret,=1\\\n"
		"SourceAdminPort=7071\nTargetZCSServer=zcs2.example.com\nTargetAdminUser=admin\n"
		"TargetAdminPwd=AlsoSecret2\nTargetAdminPort=9071\nThreads=3\n"
		"WorkingDirectory=/tmp/ztozmig/mailboxdumps/\nFailedDirectory=/tmp/ztozmig/f/\n"
		"SuccessDirectory=/tmp/ztozmig/s/\nLogDirectory=/tmp/ztozmig/log\nKeepSuccessFiles=FALSE\n"
		"ZimbraMailTransport=smtp:mta.example.com\ntypes=message,contact\nresolve=modify\n"
		"DomainMap=zcs1.example.com zcs2.example.com\nDomains=zcs1.example.com,b.example.com\n"
		"Accounts=all\n";
	char *out = round_trip(text);
	ck_assert(!tu_contains(out, "Very"));
	ck_assert(!tu_contains(out, "AlsoSecret2"));
	ck_assert(tu_contains(out, "admin_password_file = \"/etc/zmbatch/source.pw\";"));
	ck_assert(tu_contains(out, "admin_password_file = \"/etc/zmbatch/target.pw\";"));
	ck_assert(tu_contains(out, "mode 600"));
	ck_assert(tu_contains(out, "SourceAdminPwd"));
	free(out);
	out = round_trip(LBASE "Accounts=a@x,b@x\nAccounts=c@x\n");
	free(out);
}
END_TEST

START_TEST(test_convert_round_trip_native)
{
	setenv("ZMB_TEST_PW", "env-secret", 1);
	const char *text = JOBL
		"source = { host = \"h1\"; port = 1234; admin_user = \"u\"; admin_password_env = \"ZMB_TEST_PW\";\n"
		"  ca_file = \"/etc/ca.pem\"; pinned_pubkey = \"sha256//AB+/=\"; tls_verify = false; scheme = \"http\";\n"
		"  max_requests_per_second = 0; };\n"
		"target = { host = \"h2\"; admin_user = \"u\"; admin_password = \"inl1ne\"; max_requests_per_second = 7.5; };\n"
		"migration = { accounts = [ \"a\\\"q@x\", \"b@x\" ]; accounts_file = \"/etc/acc.txt\"; domains = [ \"d.com\" ];\n"
		"  domain_map = [ \"d.com=e.com\" ]; threads = 9; working_dir = \"/w\"; transfer = \"stream\";\n"
		"  order = \"as-listed\"; max_bytes_per_second = 1000; retry_backoff = 1; retry_backoff_max = 3661;\n"
		"  delta_overlap = 0; low_speed_time = \"1h\"; low_speed_limit = 3; buffer_size = 5000;\n"
		"  max_throttle_wait = 0; };\n"
		"token = { refresh_margin = 77; };\nstate = { db = \"/var/lib/z.db\"; };\n"
		"log = { level = \"warn\"; dir = \"/l\"; };\n"
		"run = { max_runtime = \"2h\"; until = \"23:59\"; grace = 0; progress_interval = 5; };\n"
		"stages = ( { name = \"one\"; type = \"migrate\"; }, { name = \"two\"; type = \"migrate\"; } );\n";
	char *out = round_trip(text);
	ck_assert(!tu_contains(out, "inl1ne"));
	ck_assert(tu_contains(out, "max_requests_per_second = 0;"));
	ck_assert(tu_contains(out, "max_requests_per_second = 7.5;"));
	ck_assert(tu_contains(out, "admin_password_env = \"ZMB_TEST_PW\";"));
	free(out);
}
END_TEST

/* ---- util.c parsing helpers ---- */

START_TEST(test_parse_duration)
{
	static const struct { const char *s; int ok; long long v; } tab[] = {
		{ "90s", 1, 90 }, { "45m", 1, 2700 }, { "8h", 1, 28800 }, { "2d", 1, 172800 },
		{ "1h30m", 1, 5400 }, { "3600", 1, 3600 }, { " 5m ", 1, 300 }, { "0", 1, 0 },
		{ "1d2h3m4s", 1, 93784 },
		{ "", 0, 0 }, { "   ", 0, 0 }, { "5x", 0, 0 }, { "-5", 0, 0 }, { "m", 0, 0 },
		{ "1h30", 0, 0 }, { "1.5h", 0, 0 }, { "99999999999999999999", 0, 0 },
		{ "9999999999999999d", 0, 0 }, { "5 m", 0, 0 }, { NULL, 0, 0 },
	};
	for (size_t i = 0; i < sizeof tab / sizeof *tab; i++) {
		long long v = -1;
		int rc = parse_duration(tab[i].s, &v);
		ck_assert_msg((rc == 0) == tab[i].ok, "parse_duration('%s') rc %d", tab[i].s ? tab[i].s : "NULL", rc);
		if (tab[i].ok)
			ck_assert_msg(v == tab[i].v, "parse_duration('%s') = %lld", tab[i].s, v);
	}
}
END_TEST

START_TEST(test_parse_hhmm_bytes)
{
	int h, m;
	ck_assert_int_eq(parse_hhmm("06:30", &h, &m), 0);
	ck_assert_int_eq(h, 6);
	ck_assert_int_eq(m, 30);
	ck_assert_int_eq(parse_hhmm("23:59", &h, &m), 0);
	ck_assert_int_eq(parse_hhmm("00:00", &h, &m), 0);
	static const char *const bad_hhmm[] = { "24:00", "12:60", "6:30", "06:3", "06-30", "06:30x", "", "aa:bb" };
	for (size_t i = 0; i < sizeof bad_hhmm / sizeof *bad_hhmm; i++)
		ck_assert_msg(parse_hhmm(bad_hhmm[i], &h, &m) == -1, "'%s' accepted", bad_hhmm[i]);
	ck_assert_int_eq(parse_hhmm(NULL, &h, &m), -1);

	static const struct { const char *s; int ok; long long v; } tab[] = {
		{ "512", 1, 512 }, { "64k", 1, 65536 }, { "10M", 1, 10485760 }, { "2G", 1, 2147483648LL },
		{ "1T", 1, 1099511627776LL }, { "4MB", 1, 4194304 }, { " 3k ", 1, 3072 },
		{ "", 0, 0 }, { "k", 0, 0 }, { "-1", 0, 0 }, { "10Q", 0, 0 }, { "1.5M", 0, 0 },
		{ "99999999999999999999", 0, 0 }, { "9999999999999T", 0, 0 },
	};
	for (size_t i = 0; i < sizeof tab / sizeof *tab; i++) {
		long long v = -1;
		int rc = parse_bytes(tab[i].s, &v);
		ck_assert_msg((rc == 0) == tab[i].ok, "parse_bytes('%s') rc %d", tab[i].s, rc);
		if (tab[i].ok)
			ck_assert_msg(v == tab[i].v, "parse_bytes('%s') = %lld", tab[i].s, v);
	}
}
END_TEST

static void assert_safe_component(const char *in, const char *out)
{
	ck_assert_ptr_nonnull(out);
	ck_assert_msg(*out, "'%s' -> empty", in);
	ck_assert_msg(strcmp(out, ".") && strcmp(out, ".."), "'%s' -> '%s'", in, out);
	ck_assert_msg(out[0] != '.', "'%s' -> '%s' (leading dot)", in, out);
	ck_assert_msg(!strchr(out, '/'), "'%s' -> '%s' (slash)", in, out);
	ck_assert_msg(strlen(out) <= 200, "'%s...' -> %zu chars", in, strlen(out));
	for (const char *p = out; *p; p++)
		ck_assert_msg((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f, "'%s': control char", in);
}

START_TEST(test_path_safe_name)
{
	static const char *const tab[] = {
		"user@example.com", "../etc/passwd", "..", ".", "", "/abs/path", ".hidden@x",
		"a/b", "a\\b", "sp ace@x", "new\nline", "\xc3\xa9t\xc3\xa9@x", "..%2F..", "%2e%2e",
	};
	for (size_t i = 0; i < sizeof tab / sizeof *tab; i++) {
		char *s = path_safe_name(tab[i]);
		assert_safe_component(tab[i], s);
		free(s);
	}
	char *s = path_safe_name("user@example.com");
	ck_assert_str_eq(s, "user@example.com");
	free(s);
	char *a = path_safe_name("a/b"), *b = path_safe_name("a%2Fb"), *c = path_safe_name("a_b");
	ck_assert_str_ne(a, c);
	free(a);
	free(b);
	free(c);
	s = path_safe_name(NULL);
	assert_safe_component("NULL", s);
	free(s);

	/* very long names: capped, and still distinct */
	char long1[1001], long2[1001];
	memset(long1, 'a', 1000);
	long1[1000] = '\0';
	memcpy(long2, long1, sizeof long1);
	long2[999] = 'b';
	char *l1 = path_safe_name(long1), *l2 = path_safe_name(long2);
	assert_safe_component("aaaa", l1);
	assert_safe_component("aaab", l2);
	ck_assert_str_ne(l1, l2);
	free(l1);
	free(l2);
	char slashes[601];
	for (int i = 0; i < 600; i++)
		slashes[i] = "../"[i % 3];
	slashes[600] = '\0';
	char *sl = path_safe_name(slashes);
	assert_safe_component("../../..", sl);
	free(sl);
}
END_TEST

/* ---- the binary: zmbatch convert ---- */

START_TEST(test_cmd_convert)
{
	char *dir = tu_tmpdir("conf");
	char *conf = tu_write(dir, "zmztozmig.conf",
			      LBASE "Accounts=a@zcs1.example.com\nFoo=1\n", 0600);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"convert", conf, NULL };
	struct tu_proc p;
	tu_run(argv, NULL, 20, &p);
	ck_assert_msg(p.status == 0, "status %d: %s", p.status, p.err);
	ck_assert(tu_contains(p.out, "admin_password_file = \"/etc/zmbatch/source.pw\";"));
	ck_assert(tu_contains(p.out, "host = \"zcs1.example.com\";"));
	ck_assert(!tu_contains(p.out, "p,w=d") && !tu_contains(p.err, "p,w=d"));
	ck_assert(tu_contains(p.err, "unknown key 'Foo' ignored"));
	/* the output is a valid job file */
	char *out = tu_write(dir, "job.cfg", p.out, 0600);
	struct job job;
	char *err = NULL;
	ck_assert_msg(conf_load(out, false, &job, &err) == ZMB_OK, "%s", err ? err : "?");
	job_release(&job);
	tu_proc_release(&p);
	free(out);

	/* bad conf: 78, naming file and line */
	char *bad = tu_write(dir, "bad.conf", LBASE "Threads=many\nAccounts=a@x\n", 0600);
	char *argv2[] = { (char *)tu_zmbatch(), (char *)"convert", bad, NULL };
	tu_run(argv2, NULL, 20, &p);
	ck_assert_int_eq(p.status, 78);
	char *want = xasprintf("%s:8:", bad);
	ck_assert_msg(tu_contains(p.err, want), "%s", p.err);
	ck_assert(!tu_contains(p.err, "p,w=d"));
	free(want);
	tu_proc_release(&p);

	/* an error and warnings: all of them, a line each, the warnings after the error */
	char *both = tu_write(dir, "both.conf", L_SRC L_TGT "Foo=1\nAccounts=a@x\n", 0600);
	char *argv5[] = { (char *)tu_zmbatch(), (char *)"convert", both, NULL };
	tu_run(argv5, NULL, 20, &p);
	ck_assert_int_eq(p.status, 78);
	want = xasprintf("zmbatch: %s:8: missing key 'WorkingDirectory' (needed for transfer = \"spool\")\n"
			 "zmbatch: warning: %s:7: unknown key 'Foo' ignored\n", both, both);
	ck_assert_str_eq(p.err, want);
	ck_assert_str_eq(p.out, "");
	tu_proc_release(&p);
	/* run and check load the job the same way */
	char *argv6[] = { (char *)tu_zmbatch(), (char *)"check", (char *)"-c", both, NULL };
	tu_run(argv6, NULL, 20, &p);
	ck_assert_int_eq(p.status, 78);
	ck_assert_str_eq(p.err, want);
	tu_proc_release(&p);
	free(want);
	free(both);

	/* missing file: 78 */
	char *missing = xasprintf("%s/nope.conf", dir);
	char *argv3[] = { (char *)tu_zmbatch(), (char *)"convert", missing, NULL };
	tu_run(argv3, NULL, 20, &p);
	ck_assert_int_eq(p.status, 78);
	ck_assert(tu_contains(p.err, missing));
	tu_proc_release(&p);

	/* no argument: usage error */
	char *argv4[] = { (char *)tu_zmbatch(), (char *)"convert", NULL };
	tu_run(argv4, NULL, 20, &p);
	ck_assert_int_eq(p.status, 64);
	tu_proc_release(&p);

	free(missing);
	free(bad);
	free(conf);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_examples_load)
{
	/* the conf/ examples must stay valid (secrets not resolved: no files needed) */
	static const char *const ex[] = { "conf/zmbatch.cfg.example", "conf/zmztozmig.conf.example" };
	for (size_t i = 0; i < 2; i++) {
		char *path = xasprintf("%s/%s", tu_srcdir(), ex[i]);
		struct job job;
		char *err = NULL;
		ck_assert_msg(conf_load(path, false, &job, &err) == ZMB_OK, "%s", err ? err : "?");
		ck_assert_int_eq(job.legacy, i == 1);
		job_release(&job);
		free(path);
	}
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc = tcase_create("native");
	tcase_add_loop_test(tc, test_native_rows, 0, (int)(sizeof native_rows / sizeof *native_rows));
	tcase_add_test(tc, test_native_values);
	tcase_add_test(tc, test_native_defaults);
	tcase_add_test(tc, test_password_file_modes);
	tcase_add_test(tc, test_inline_password_warning);
	tcase_add_test(tc, test_cval_accessors);
	suite_add_tcase(s, tc);

	tc = tcase_create("legacy");
	tcase_add_loop_test(tc, test_legacy_rows, 0, (int)(sizeof legacy_rows / sizeof *legacy_rows));
	tcase_add_test(tc, test_legacy_quirks);
	tcase_add_test(tc, test_legacy_keep_success);
	tcase_add_test(tc, test_legacy_inline_warning);
	tcase_add_test(tc, test_is_legacy);
	tcase_add_test(tc, test_legacy_parse_direct);
	tcase_add_test(tc, test_all_messages_at_once);
	suite_add_tcase(s, tc);

	tc = tcase_create("convert");
	tcase_add_test(tc, test_convert_round_trip_legacy);
	tcase_add_test(tc, test_convert_round_trip_native);
	tcase_add_test(tc, test_examples_load);
	tcase_add_test(tc, test_cmd_convert);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("util");
	tcase_add_test(tc, test_parse_duration);
	tcase_add_test(tc, test_parse_hhmm_bytes);
	tcase_add_test(tc, test_path_safe_name);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
