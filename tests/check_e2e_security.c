/*
 * check_e2e_security.c - end-to-end security properties of bin/zmbatch
 * (issue 7, "Security"), against simulated servers (tests/zsim) on
 * 127.0.0.1:
 *
 *   - TLS: an untrusted self-signed certificate, a wrong hostname and a
 *     pinned key mismatch are refused (exit 69, a message saying how to
 *     trust the server); tls_verify = false works and is warned about on
 *     every run; a matching pinned key works;
 *   - secrets: no password and no token in stdout/stderr, the log files,
 *     the state DB bytes (including -wal, sampled while the run goes on),
 *     spool file names, /proc/<pid>/cmdline of zmbatch and everything it
 *     spawns (an exec stage), or any URL sent (the simulators' request log);
 *   - a password file others can read is refused (exit 78);
 *   - created files are 0600 and directories 0700, whatever the umask;
 *   - account names that could escape a directory ("../", "/", very long,
 *     NUL) are rejected or safely encoded.
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PW_SRC "S3cret-src-pw,=#x"
#define PW_DST "S3cret-dst-pw;'y"

struct env {
	char *dir;
	struct zsim_pki *pki;
	struct zsim *src;
	struct zsim *dst;
	char *job;
	char *db;
};

static struct env E;

static const char *SRC_CFG =
	"{\"name\":\"src\",\"admin\":{\"name\":\"admin@example.com\",\"password\":\"" PW_SRC "\"},"
	"\"domains\":[{\"name\":\"example.com\",\"accounts\":["
	"{\"name\":\"alice@example.com\",\"items\":20,\"item_size\":[500,20000]},"
	"{\"name\":\"bob@example.com\",\"items\":6,\"item_size\":3000}]}]}";
static const char *DST_CFG =
	"{\"name\":\"dst\",\"admin\":{\"name\":\"admin@example.com\",\"password\":\"" PW_DST "\"},"
	"\"domains\":[{\"name\":\"example.com\",\"accounts\":["
	"{\"name\":\"alice@example.com\"},{\"name\":\"bob@example.com\"}]}]}";

static void start_sims(enum zsim_cert src_cert)
{
	E.dir = tu_tmpdir("sec");
	ck_assert_ptr_nonnull(E.dir);
	E.pki = zsim_pki_new(NULL);
	ck_assert_msg(E.pki != NULL, "cannot make test certificates");
	struct zsim_opts so = { .name = "src", .config_json = SRC_CFG, .pki = E.pki, .cert = src_cert };
	struct zsim_opts dopt = { .name = "dst", .config_json = DST_CFG, .pki = E.pki };
	E.src = zsim_start(&so);
	ck_assert_msg(E.src != NULL, "source simulator did not start");
	E.dst = zsim_start(&dopt);
	ck_assert_msg(E.dst != NULL, "target simulator did not start");
	free(tu_write(E.dir, "src.pw", PW_SRC "\n", 0600));
	free(tu_write(E.dir, "dst.pw", PW_DST "\n", 0600));
	E.db = xasprintf("%s/state.db", E.dir);
}

static void setup(void)
{
	memset(&E, 0, sizeof E);
	start_sims(ZSIM_CERT_CA);
}

static void teardown(void)
{
	zsim_stop(E.src);
	zsim_stop(E.dst);
	zsim_pki_free(E.pki);
	if (E.dir)
		tu_rmrf(E.dir);
	free(E.dir);
	free(E.job);
	free(E.db);
	memset(&E, 0, sizeof E);
}

/* restart with the source using another certificate */
static void restart_src_cert(enum zsim_cert c)
{
	teardown();
	memset(&E, 0, sizeof E);
	start_sims(c);
}

/*
 * Job file.  src_tls replaces the source's TLS keys (default: ca_file =
 * the test CA); extra_mig goes into migration{}, extra_top at the end.
 */
static void write_job(const char *src_tls, const char *extra_mig, const char *extra_top)
{
	char *def_tls = xasprintf("ca_file = \"%s\";", E.pki->ca_file);
	char *text = xasprintf(
		"job = \"sec\";\n"
		"source = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/src.pw\"; %s };\n"
		"target = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		"  admin_password_file = \"%s/dst.pw\"; ca_file = \"%s\"; };\n"
		"migration = {\n"
		"  %s\n"
		"  threads = 2;\n"
		"  working_dir = \"%s/work\"; success_dir = \"%s/success\"; failed_dir = \"%s/failed\";\n"
		"  retry_backoff = \"1s\"; retry_backoff_max = \"1s\"; %s\n"
		"  %s\n"
		"};\n"
		"state = { db = \"%s\"; };\n"
		"log = { dir = \"%s/log\"; level = \"debug\"; };\n"
		"%s\n",
		E.src->port, E.dir, src_tls ? src_tls : def_tls, E.dst->port, E.dir, E.pki->ca_file,
		extra_mig && (strstr(extra_mig, "accounts") || strstr(extra_mig, "domains")) ? "" :
		"accounts = [ \"alice@example.com\", \"bob@example.com\" ];",
		E.dir, E.dir, E.dir,
		extra_mig && strstr(extra_mig, "max_attempts") ? "" : "max_attempts = 2;",
		extra_mig ? extra_mig : "", E.db, E.dir, extra_top ? extra_top : "");
	free(E.job);
	E.job = tu_write(E.dir, "job.cfg", text, 0600);
	free(text);
	free(def_tls);
}

/* ---- secret scanning ---- */

/* Tokens look like 0_<hex>_<hex> (zimbra-protocol.md); the MAC part is 40 hex. */
static bool has_token(const char *s, size_t len)
{
	regex_t re;
	ck_assert_int_eq(regcomp(&re, "0_[0-9a-f]{16,}_[0-9a-f]{8,}", REG_EXTENDED | REG_NOSUB), 0);
	/* regexec stops at NUL: scan NUL-separated pieces */
	bool hit = false;
	for (size_t i = 0; i < len && !hit;) {
		size_t n = strnlen(s + i, len - i);
		if (n > 0) {
			char *piece = strndup(s + i, n);
			hit = regexec(&re, piece, 0, NULL, 0) == 0;
			free(piece);
		}
		i += n + 1;
	}
	regfree(&re);
	return hit;
}

static bool mem_has(const char *s, size_t len, const char *needle)
{
	return s && memmem(s, len, needle, strlen(needle)) != NULL;
}

/* where: a label for messages */
static void assert_no_secret(const char *where, const char *s, size_t len)
{
	if (!s)
		return;
	ck_assert_msg(!mem_has(s, len, PW_SRC) && !mem_has(s, len, PW_DST), "a password appears in %s", where);
	ck_assert_msg(!has_token(s, len), "an auth token appears in %s", where);
}

static char *slurp(const char *path, size_t *len)
{
	*len = 0;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	size_t cap = 65536, n = 0;
	char *b = malloc(cap);
	ssize_t r;
	while ((r = read(fd, b + n, cap - n)) > 0) {
		n += (size_t)r;
		if (n == cap)
			b = realloc(b, cap *= 2);
	}
	close(fd);
	*len = n;
	return b;
}

static void assert_file_clean(const char *path)
{
	size_t len;
	char *b = slurp(path, &len);
	assert_no_secret(path, b, len);
	free(b);
}

/* Walk a tree: every file's bytes and every name are free of secrets;
 * with check_modes, files are 0600-or-stricter and directories 0700. */
static void walk(const char *path, bool check_modes, int *nfiles)
{
	struct stat sb;
	if (lstat(path, &sb) < 0)
		return;
	assert_no_secret("a file name", path, strlen(path));
	if (S_ISDIR(sb.st_mode)) {
		if (check_modes)
			ck_assert_msg((sb.st_mode & 077) == 0, "directory %s has mode %04o", path,
				      (unsigned)(sb.st_mode & 07777));
		DIR *d = opendir(path);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char *p = xasprintf("%s/%s", path, de->d_name);
			walk(p, check_modes, nfiles);
			free(p);
		}
		if (d)
			closedir(d);
	} else if (S_ISREG(sb.st_mode)) {
		size_t pl = strlen(path);
		if (pl > 3 && !strcmp(path + pl - 3, ".pw"))
			return;   /* the password files the test wrote itself */
		if (check_modes)
			ck_assert_msg((sb.st_mode & 077) == 0, "file %s has mode %04o", path,
				      (unsigned)(sb.st_mode & 07777));
		assert_file_clean(path);
		(*nfiles)++;
	}
}

static void assert_urls_clean(struct zsim *z)
{
	json_t *st = zsim_stats(z);
	ck_assert_ptr_nonnull(st);
	ck_assert_int_eq(zsim_stat_int(st, "tokens_in_url"), 0);
	ck_assert_int_eq(zsim_stat_int(st, "basic_auth"), 0);
	json_t *reqs = json_object_get(st, "requests"), *r;
	size_t i;
	ck_assert_int_gt(json_array_size(reqs), 0);
	json_array_foreach(reqs, i, r) {
		const char *path = json_string_value(json_object_get(r, "path"));
		const char *q = json_string_value(json_object_get(r, "query"));
		if (path)
			assert_no_secret("a URL path", path, strlen(path));
		if (q) {
			assert_no_secret("a URL query", q, strlen(q));
			ck_assert_msg(!strstr(q, "REDACTED"), "a token was sent in a URL: %s", q);
		}
	}
	json_decref(st);
}

/* ---- TLS ---- */

START_TEST(test_tls_untrusted_self_signed)
{
	restart_src_cert(ZSIM_CERT_SELF);
	write_job("", NULL, NULL);   /* no ca_file: the system store does not know this cert */
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 69, "expected exit 69, got %d", rc);
	ck_assert_msg(tu_contains(p.err, "ca_file") && tu_contains(p.err, "pinned_pubkey"),
		      "the refusal does not say how to trust the server");
	ck_assert_msg(tu_contains(p.err, "127.0.0.1"), "the refusal does not name the server");
	tu_proc_release(&p);
	/* trusting the test CA does not make a self-signed certificate acceptable either */
	char *tls = xasprintf("ca_file = \"%s\";", E.pki->ca_file);
	write_job(tls, NULL, NULL);
	rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 69, "expected exit 69, got %d", rc);
	tu_proc_release(&p);
	json_t *st = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_int(st, "auth_requests/total"), 0);  /* the password never left */
	json_decref(st);
	free(tls);
}
END_TEST

START_TEST(test_tls_wrong_hostname)
{
	restart_src_cert(ZSIM_CERT_WRONG);
	write_job(NULL, NULL, NULL);
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 69, "expected exit 69, got %d", rc);
	ck_assert_msg(tu_contains(p.err, "127.0.0.1"), "the refusal does not name the server");
	tu_proc_release(&p);
	json_t *st = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_int(st, "auth_requests/total"), 0);
	json_decref(st);
}
END_TEST

/* sha256//BASE64 of a certificate's public key, via the openssl CLI */
static char *pin_of(const char *cert)
{
	char *cmd = xasprintf("openssl x509 -in '%s' -pubkey -noout | openssl pkey -pubin -outform der | "
			 "openssl dgst -sha256 -binary | base64", cert);
	FILE *f = popen(cmd, "r");
	char line[256] = "";
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	pclose(f);
	free(cmd);
	line[strcspn(line, "\n")] = '\0';
	return xasprintf("sha256//%s", line);
}

START_TEST(test_tls_pinned_pubkey)
{
	/* a pin of another key: refused even though the CA is trusted */
	char *wrong = pin_of(E.pki->self_cert);
	char *tls = xasprintf("ca_file = \"%s\"; pinned_pubkey = \"%s\";", E.pki->ca_file, wrong);
	write_job(tls, NULL, NULL);
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 69, "expected exit 69, got %d", rc);
	ck_assert_msg(tu_contains(p.err, "pinned_pubkey"), "the refusal does not name pinned_pubkey");
	tu_proc_release(&p);
	free(tls);
	/* the right pin works */
	char *right = pin_of(E.pki->cert_file);
	tls = xasprintf("ca_file = \"%s\"; pinned_pubkey = \"%s\";", E.pki->ca_file, right);
	write_job(tls, NULL, NULL);
	rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 0, "the matching pin: exit %d", rc);
	tu_proc_release(&p);
	free(tls);
	free(right);
	free(wrong);
}
END_TEST

START_TEST(test_tls_verify_false_warned_every_run)
{
	restart_src_cert(ZSIM_CERT_SELF);
	write_job("tls_verify = false;", NULL, NULL);
	for (int i = 0; i < 2; i++) {
		struct tu_proc p;
		int rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
		ck_assert_msg(rc == 0, "run %d with tls_verify = false: exit %d", i + 1, rc);
		ck_assert_msg(tu_contains(p.err, "tls_verify") || tu_contains(p.err, "TLS verification"),
			      "run %d: no warning about disabled TLS verification", i + 1);
		tu_proc_release(&p);
	}
	/* --insecure is the same opt-out, also warned about */
	write_job("", NULL, NULL);
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, "--insecure", (char *)NULL);
	ck_assert_msg(rc == 0, "--insecure: exit %d", rc);
	ck_assert_msg(tu_contains(p.err, "insecure") || tu_contains(p.err, "TLS verification") ||
		      tu_contains(p.err, "tls_verify"), "--insecure: no warning");
	tu_proc_release(&p);
}
END_TEST

/* ---- secrets ---- */

/* pids of pid and all its descendants (via /proc/<p>/task/<p>/children or a ppid scan) */
static int descendants(pid_t root, pid_t *out, int max)
{
	int n = 0;
	out[n++] = root;
	for (int i = 0; i < n && n < max; i++) {
		DIR *d = opendir("/proc");
		struct dirent *de;
		while (d && (de = readdir(d)) && n < max) {
			pid_t pid = (pid_t)atoi(de->d_name);
			if (pid <= 0)
				continue;
			char *sp = xasprintf("/proc/%d/stat", (int)pid);
			size_t len;
			char *s = slurp(sp, &len);
			free(sp);
			if (!s)
				continue;
			s = realloc(s, len + 1);
			s[len] = '\0';
			char *rp = strrchr(s, ')');
			int ppid = 0;
			char stc;
			if (rp && sscanf(rp + 1, " %c %d", &stc, &ppid) == 2 && ppid == out[i])
				out[n++] = pid;
			free(s);
		}
		if (d)
			closedir(d);
	}
	return n;
}

START_TEST(test_no_secrets_anywhere)
{
	/* slow enough to sample the processes and the WAL while it runs; an exec
	 * stage afterwards shows what zmbatch spawns */
	json_decref(zsim_post(E.src, "/zsim/knobs", "{\"bandwidth\":150000}"));
	char *marker = xasprintf("%s/exec-ran", E.dir);
	char *stages = xasprintf("stages = ( { name = \"mail\"; type = \"migrate\"; },\n"
			    "  { name = \"after\"; type = \"exec\"; command = [ \"/bin/sh\", \"-c\", "
			    "\"sleep 1.5; touch '%s'\" ]; } );", marker);
	write_job(NULL, "keep_success_files = true;", stages);
	char *out = xasprintf("%s/run.out", E.dir), *errp = xasprintf("%s/run.err", E.dir);
	char *argv[] = { (char *)tu_zmbatch(), (char *)"run", (char *)"-c", E.job, (char *)"--verbose", NULL };
	pid_t pid = tu_spawn(argv, NULL, out, errp);
	ck_assert_int_gt(pid, 0);
	char *wal = xasprintf("%s-wal", E.db);
	int samples = 0, spawned_seen = 0;
	for (int i = 0; i < 600; i++) {
		int status = tu_wait(pid, 0.05);
		if (status >= 0) {
			ck_assert_msg(status == 0, "run exit %d", status);
			pid = 0;
			break;
		}
		pid_t pids[64];
		int n = descendants(pid, pids, 64);
		for (int k = 0; k < n; k++) {
			char *cp = xasprintf("/proc/%d/cmdline", (int)pids[k]);
			size_t len;
			char *c = slurp(cp, &len);
			if (c) {
				assert_no_secret("a process command line", c, len);
				samples++;
				if (k > 0)
					spawned_seen++;
			}
			free(c);
			free(cp);
		}
		assert_file_clean(wal);
	}
	ck_assert_msg(pid == 0, "the run did not finish");
	ck_assert_int_gt(samples, 5);
	ck_assert_msg(spawned_seen > 0, "never saw the exec stage's process");
	ck_assert_msg(access(marker, F_OK) == 0, "the exec stage did not run");

	size_t len;
	char *o = slurp(out, &len);
	assert_no_secret("stdout", o, len);
	free(o);
	o = slurp(errp, &len);
	assert_no_secret("stderr", o, len);
	free(o);
	/* everything on disk: the log, the state DB (+ -wal/-shm if any), the spool */
	int nfiles = 0;
	walk(E.dir, false, &nfiles);   /* includes job.cfg and *.pw: skip them below */
	ck_assert_int_gt(nfiles, 3);
	free(out);
	free(errp);
	free(wal);
	free(marker);
	free(stages);
	assert_urls_clean(E.src);
	assert_urls_clean(E.dst);
}
END_TEST

START_TEST(test_password_file_readable_by_others)
{
	char *pw = xasprintf("%s/src.pw", E.dir);
	write_job(NULL, NULL, NULL);
	const unsigned modes[] = { 0644, 0640, 0604 };
	for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
		ck_assert_int_eq(chmod(pw, modes[i]), 0);
		struct tu_proc p;
		int rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
		ck_assert_msg(rc == 78, "mode %04o: expected exit 78, got %d", modes[i], rc);
		ck_assert_msg(tu_contains(p.err, "src.pw"), "the refusal does not name the file");
		assert_no_secret("stderr", p.err, strlen(p.err));
		tu_proc_release(&p);
	}
	json_t *st = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_int(st, "auth_requests/total"), 0);
	json_decref(st);
	ck_assert_int_eq(chmod(pw, 0600), 0);
	struct tu_proc p;
	ck_assert_int_eq(e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL), 0);
	tu_proc_release(&p);
	free(pw);
}
END_TEST

START_TEST(test_file_modes)
{
	/* alice's import always fails: her archive ends up in failed_dir; bob's in success_dir */
	json_decref(zsim_post(E.dst, "/zsim/knobs",
			      "{\"faults\":[{\"op\":\"import\",\"account\":\"alice@example.com\","
			      "\"action\":\"status\",\"status\":500,\"count\":-1}]}"));
	write_job(NULL, "keep_success_files = true; max_attempts = 1;", NULL);
	mode_t old = umask(022);
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	umask(old);
	ck_assert_msg(rc == 1, "expected exit 1, got %d", rc);
	tu_proc_release(&p);
	const char *const dirs[] = { "work", "success", "failed", "log" };
	int nfiles = 0;
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		char *d = xasprintf("%s/%s", E.dir, dirs[i]);
		struct stat sb;
		ck_assert_msg(stat(d, &sb) == 0, "%s was not created", d);
		walk(d, true, &nfiles);
		free(d);
	}
	/* the state DB, its lock, -wal/-shm when present */
	const char *const sfx[] = { "", ".lock", "-wal", "-shm", "-journal" };
	int ndb = 0;
	for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
		char *f = xasprintf("%s%s", E.db, sfx[i]);
		struct stat sb;
		if (stat(f, &sb) == 0) {
			ck_assert_msg((sb.st_mode & 077) == 0, "%s has mode %04o", f, (unsigned)(sb.st_mode & 07777));
			ndb++;
		}
		free(f);
	}
	ck_assert_int_ge(ndb, 1);
	ck_assert_int_ge(nfiles, 3);   /* a log, alice's failed archive, bob's kept archive */
	char *fd = xasprintf("%s/failed", E.dir), *sd = xasprintf("%s/success", E.dir);
	int nf = 0, ns = 0;
	walk(fd, true, &nf);
	walk(sd, true, &ns);
	ck_assert_int_eq(nf, 1);
	ck_assert_int_eq(ns, 1);
	free(fd);
	free(sd);
}
END_TEST

/* ---- account names that could escape a directory ---- */

START_TEST(test_hostile_account_names)
{
	char longname[400];
	memset(longname, 'l', 300);
	strcpy(longname + 300, "@example.com");
	const char *const names[] = { "../../escape@example.com", "a/b@example.com", "..@example.com", longname };
	const size_t nn = sizeof names / sizeof *names;
	char *list = xasprintf("\"%s\", \"%s\", \"%s\", \"%s\"", names[0], names[1], names[2], names[3]);
	for (size_t i = 0; i < nn; i++) {
		char *a = xasprintf("{\"name\":\"%s\",\"items\":3,\"item_size\":500}", names[i]);
		char *b = xasprintf("{\"name\":\"%s\"}", names[i]);
		json_t *r1 = zsim_post(E.src, "/zsim/add-account", a);
		json_t *r2 = zsim_post(E.dst, "/zsim/add-account", b);
		ck_assert_msg(r1 && r2, "simulator refused %s", names[i]);
		json_decref(r1);
		json_decref(r2);
		free(a);
		free(b);
	}
	/* discovered from the (hostile) source's directory, not listed by hand:
	 * the spool lives two levels down so that "../../x" would land in E.dir */
	char *mig = xasprintf("keep_success_files = true; domains = [ \"example.com\" ];");
	write_job(NULL, mig, NULL);
	char *text = tu_read(E.job);
	char *wd = strstr(text, "/work\";");
	ck_assert_ptr_nonnull(wd);
	*wd = '\0';
	char *fixed = xasprintf("%s/w1/w2\";%s", text, wd + strlen("/work\";"));
	free(tu_write(E.dir, "job.cfg", fixed, 0600));
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 90, "run", "-c", E.job, (char *)NULL);
	/* a hostile name is an account's problem, never the job's: not 78 (config) */
	ck_assert_msg(rc == 0 || rc == 1, "exit %d", rc);
	tu_proc_release(&p);
	/* the well-named accounts are done whatever their neighbours are called; each
	 * hostile one is done or failed with a reason (the simulator, like Jetty, reads
	 * the decoded path: "a/b" and "../../escape" name no account there, 404) */
	ck_assert_int_eq(e2e_db_int(E.db, "SELECT count(*) FROM accounts WHERE state = 'done' AND account IN "
				     "('alice@example.com', 'bob@example.com')"), 2);
	ck_assert_int_eq(e2e_db_int(E.db, "SELECT count(*) FROM accounts"), 2 + (long long)nn);
	ck_assert_int_eq(e2e_db_int(E.db, "SELECT count(*) FROM accounts WHERE state NOT IN ('done', 'failed') "
				     "OR (state = 'failed' AND coalesce(last_error, '') = '')"), 0);
	long long failed = e2e_db_int(E.db, "SELECT count(*) FROM accounts WHERE state = 'failed'");
	ck_assert_msg(rc == (failed ? 1 : 0), "exit %d with %lld failed account(s)", rc, failed);

	/* nothing was written outside the job's directories */
	char *cmd = xasprintf("cd '%s' && find . -path ./w1 -prune -o -path ./success -prune -o -path ./failed -prune "
			 "-o -path ./log -prune -o -type f -newer job.cfg -print | grep -v '^./state.db' | "
			 "grep -q .", E.dir);
	ck_assert_msg(system(cmd) != 0, "a file was created outside the spool/success/failed/log dirs");
	free(cmd);
	/* every file in the spool dirs is directly inside them, with a bounded name */
	const char *const dirs[] = { "w1/w2", "success", "failed" };
	for (size_t i = 0; i < 3; i++) {
		char *d = xasprintf("%s/%s", E.dir, dirs[i]);
		DIR *dd = opendir(d);
		struct dirent *de;
		while (dd && (de = readdir(dd))) {
			if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
				continue;
			ck_assert_msg(de->d_type == DT_REG, "%s/%s is not a plain file", d, de->d_name);
			ck_assert_msg(strlen(de->d_name) <= 255 && de->d_name[0] != '.',
				      "suspicious spool name %s", de->d_name);
		}
		if (dd)
			closedir(dd);
		free(d);
	}
	/* rejected with a reason, or migrated with the right content */
	json_t *ss = zsim_stats(E.src), *ds = zsim_stats(E.dst);
	static const char *const good[] = { "alice@example.com", "bob@example.com" };
	for (size_t i = 0; i < 2; i++) {
		const char *a = zsim_fingerprint(ss, good[i]), *b = zsim_fingerprint(ds, good[i]);
		ck_assert_msg(a && b && !strcmp(a, b), "%s: not migrated next to the hostile names", good[i]);
	}
	for (size_t i = 0; i < nn; i++) {
		const char *a = zsim_fingerprint(ss, names[i]), *b = zsim_fingerprint(ds, names[i]);
		long long imported = zsim_stat_acct(ds, "accounts", names[i], "items");
		ck_assert_msg(imported == 0 || (a && b && !strcmp(a, b)),
			      "%s: partial or wrong content on the target", names[i]);
	}
	json_decref(ss);
	json_decref(ds);
	free(fixed);
	free(text);
	free(mig);
	free(list);
}
END_TEST

START_TEST(test_account_name_with_nul)
{
	/* an accounts file with a NUL inside a name: rejected, not silently cut */
	static const char bad[] = "alice@example.com\nev@example.com\0.evil\n";
	char *path = xasprintf("%s/accts.txt", E.dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
	close(fd);
	char *mig = xasprintf("accounts_file = \"%s\";", path);
	write_job(NULL, mig, NULL);
	struct tu_proc p;
	int rc = e2e_zmbatch(&p, 60, "run", "-c", E.job, (char *)NULL);
	ck_assert_msg(rc == 78 || rc == 1, "expected exit 78 or 1 for a NUL in an account name, got %d", rc);
	ck_assert_msg(tu_contains(p.err, "accts.txt:2"), "the error does not name the file and line");
	ck_assert_msg(tu_contains(p.err, "NUL"), "the error does not say what is wrong");
	tu_proc_release(&p);
	json_t *st = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_acct(st, "exports", "ev@example.com", "count"), 0);
	ck_assert_int_eq(zsim_stat_acct(st, "exports", "alice@example.com", "count"), 0);
	json_decref(st);
	free(mig);
	free(path);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_security");
	TCase *tc = tcase_create("security");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_tls_untrusted_self_signed);
	tcase_add_test(tc, test_tls_wrong_hostname);
	tcase_add_test(tc, test_tls_pinned_pubkey);
	tcase_add_test(tc, test_tls_verify_false_warned_every_run);
	tcase_add_test(tc, test_no_secrets_anywhere);
	tcase_add_test(tc, test_password_file_readable_by_others);
	tcase_add_test(tc, test_file_modes);
	tcase_add_test(tc, test_hostile_account_names);
	tcase_add_test(tc, test_account_name_with_nul);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
