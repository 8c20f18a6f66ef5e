/*
 * cmd_check.c - `zmbatch check`: validate the job, reach and authenticate
 * to every server (Zimbra admin SOAP and LDAP), check that REST takes the
 * admin cookie where a run will send it, check the directories.
 * source.ldap / target.ldap: bind, and for a provision stage with
 * copy_password whether the bind DN may read userPassword (check_side_ldap).
 * One verdict line per item.  Exit 0 when everything is fine, 78 when the
 * job file is wrong, 69 when a server cannot be reached or refuses us.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "http.h"
#include "job.h"
#include "ldap_targets.h"
#include "ldapc.h"
#include "log.h"
#include "rest.h"
#include "runctl.h"
#include "stage.h"
#include "soap.h"
#include "token.h"
#include "zmb.h"
#include "zroute.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static void verdict(bool ok, const char *what, const char *detail)
{
	printf("%-4s %s%s%s\n", ok ? "ok" : "FAIL", what, detail ? ": " : "", detail ? detail : "");
}

/*
 * REST with the side's admin cookie where the run will send it
 * (rest_probe: a GET for an account that cannot exist; 404 = the cookie
 * counted).  A 401 means the port is probably not zimbraAdminPort: every
 * export and import would get 401, so check fails as for a refused login.
 */
static bool check_rest(const char *what, struct http *h, struct token_cache *tc)
{
	long st = 0;
	char *err = NULL;
	enum zmb_rc rc = rest_probe(h, tc, &st, &err);
	char *ok = rc ? NULL : xasprintf("admin cookie accepted (http %ld for an account that does "
					  "not exist)", st);
	verdict(rc == ZMB_OK, what, rc ? (err ? err : zmb_rc_str(rc)) : ok);
	free(ok);
	free(err);
	return rc == ZMB_OK;
}

/*
 * Every mailbox server of the installation (GetAllServersRequest
 * service=mailbox), at the address the run will use for its accounts' REST
 * (zroute.h: the job's `servers` entry, else GetServerRequest): an
 * authenticated NoOpRequest on its admin port with the side's token, then
 * the REST check (check_rest) where the run sends REST: with one mailbox
 * server the configured server (zroutes_single: no routing), with several
 * each server's route.
 */
static bool check_mailbox_servers(const struct job *job, const struct server *s, struct http *h,
				  struct token_cache *tc, struct run_ctl *ctl)
{
	struct strlist names = { 0 };
	struct zroutes *zr = zroutes_new(s);
	char *err = NULL;
	bool ok = true;
	enum zmb_rc rc = soap_mailbox_servers(h, tc, &names, &err);
	if (rc) {
		char *what = xasprintf("%s mailbox servers (GetAllServersRequest)", s->role);
		verdict(false, what, err ? err : zmb_rc_str(rc));
		free(what);
		ok = false;
		goto out;
	}
	for (size_t i = 0; i < names.n; i++) {
		const struct server *rs = NULL;
		free(err);
		err = NULL;
		rc = zroutes_server(zr, names.v[i], h, tc, &rs, &err);
		char *what = rs ? xasprintf("%s mailbox server %s at %s:%d: NoOpRequest", s->role,
					    names.v[i], rs->host, rs->port)
				: xasprintf("%s mailbox server %s via %s:%d: NoOpRequest", s->role,
					    names.v[i], s->host, s->port);
		struct http *rh = !rc && rs ? http_new(rs, job, ctl) : NULL;
		if (!rc)
			rc = soap_noop(rh ? rh : h, tc, &err);
		verdict(rc == ZMB_OK, what, rc ? (err ? err : zmb_rc_str(rc)) : NULL);
		free(what);
		ok &= rc == ZMB_OK;
		if (!rc && names.n > 1) {
			what = rs ? xasprintf("%s mailbox server %s at %s:%d: REST", s->role, names.v[i],
					      rs->host, rs->port)
				  : xasprintf("%s mailbox server %s via %s:%d: REST", s->role, names.v[i],
					      s->host, s->port);
			ok &= check_rest(what, rh ? rh : h, tc);
			free(what);
		}
		http_free(rh);
	}
	if (names.n <= 1) {
		char *what = xasprintf("%s %s:%d: REST", s->role, s->host, s->port);
		ok &= check_rest(what, h, tc);
		free(what);
	}
out:
	free(err);
	zroutes_free(zr);
	strlist_release(&names);
	return ok;
}

static bool check_server(const struct job *job, const struct server *s, struct run_ctl *ctl)
{
	struct token_cache *tc = token_cache_new(s, job->token_refresh_margin, ctl);
	struct http *h = http_new(s, job, ctl);
	char *tok = NULL, *err = NULL;
	char *what = xasprintf("%s %s:%d login as %s%s", s->role, s->host, s->port, s->admin_user,
			       s->scheme && !strcmp(s->scheme, "http") ? " (plain http: NOT ENCRYPTED)"
			       : s->tls_verify ? "" : " (TLS verification OFF)");
	enum zmb_rc rc = token_get(tc, h, &tok, &err);
	verdict(rc == ZMB_OK, what, rc ? (err ? err : zmb_rc_str(rc)) : NULL);
	bool ok = rc == ZMB_OK && check_mailbox_servers(job, s, h, tc, ctl);
	free(what);
	secret_free(tok);
	free(err);
	http_free(h);
	token_cache_free(tc);
	return ok;
}

static bool check_dir(const char *label, const char *dir)
{
	char *what = xasprintf("%s '%s'", label, dir);
	bool ok = false;
	char detail[256] = "";
	if (mkdir_p(dir, 0700) < 0) {
		snprintf(detail, sizeof detail, "cannot create: %s", strerror(errno));
		goto out;
	}
	char *probe = xasprintf("%s/.zmbatch-check.%ld", dir, (long)getpid());
	int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(detail, sizeof detail, "not writable: %s", strerror(errno));
		free(probe);
		goto out;
	}
	close(fd);
	unlink(probe);
	free(probe);
	struct statvfs sv;
	if (statvfs(dir, &sv) == 0)
		snprintf(detail, sizeof detail, "writable, %.1f GB free",
			 (double)sv.f_bavail * (double)sv.f_frsize / 1e9);
	ok = true;
out:
	verdict(ok, what, detail);
	free(what);
	return ok;
}

/* One server of an LDAP stage: open and bind exactly as the stage will. */
static bool check_ldap_target(const struct stage_conf *sc, const struct ldap_targets *t,
			      size_t i, const char *pw)
{
	struct ldc *c = NULL;
	char *err = NULL;
	char *what = xasprintf("stage '%s': ldap %s bind as %s%s", sc->name, t->v[i].uri,
			       t->v[i].bind ? t->conn.bind_dn : "anonymous",
			       t->conn.tls_verify ? "" : " (TLS verification OFF)");
	enum zmb_rc rc = ldap_target_connect(t, i, pw, &c, &err);
	verdict(rc == ZMB_OK, what, rc ? (err ? err : zmb_rc_str(rc)) : NULL);
	free(what);
	free(err);
	ldc_close(c);
	return rc == ZMB_OK;
}

/*
 * Every server of an LDAP stage, read by the stages' own reader
 * (ldap_targets.h): the same URIs, bind DN, anonymous binds, timeout and TLS.
 */
static bool check_ldap_stage(const struct job *job, const struct stage_conf *sc)
{
	struct ldap_targets t;
	char *err = NULL, *pw = NULL;
	bool ok = true;

	int r = ldap_stage_targets(sc, job->path, &t, &err);
	if (r < 0) {
		verdict(false, "ldap stage", err);
		ok = false;
		goto out;
	}
	if (r > 0)
		goto out;
	if (secret_read_file(t.conn.password_file, &pw, &err) != ZMB_OK) {
		char *what = xasprintf("stage '%s': password_file", sc->name);
		verdict(false, what, err);
		free(what);
		ok = false;
		goto out;
	}
	for (size_t i = 0; i < t.n; i++)
		ok &= check_ldap_target(sc, &t, i, pw);
out:
	free(err);
	secret_free(pw);
	ldap_targets_release(&t);
	return ok;
}

/* Does a provision stage of the job copy password hashes (copy_password, default true)? */
static bool job_copies_passwords(const struct job *job)
{
	bool any = false;
	for (size_t i = 0; i < job->nstages && !any; i++) {
		bool cp = true;
		char *err = NULL;
		if (!strcmp(job->stages[i].type, "provision") &&
		    cval_bool(&job->stages[i].settings, "copy_password", true, &cp, job->path, &err) == 0)
			any = cp;
		free(err);       /* a bad value: the stage's own validation says so */
	}
	return any;
}

/*
 * `source.ldap` / `target.ldap`: bind as the stages will (provision.c
 * open_ldap: the same URL, bind DN, password file, StartTLS, CA, timeout);
 * with read_hash (the source, a provision stage with copy_password) also
 * one account entry below `base` whose userPassword the bind DN may read:
 * asked as a presence filter with types only, so no hash is ever read.
 * Any failure names the URL and the bind DN; *config set when the
 * password file is the problem (a job file matter, not the server's).
 */
static bool check_side_ldap(const struct server *s, bool read_hash, bool *config)
{
	const struct server_ldap *l = &s->ldap;
	const char *dn = l->bind_dn ? l->bind_dn : "(anonymous)";
	char *pw = NULL, *err = NULL, *entry = NULL;
	struct ldc *c = NULL;
	bool ok = false;
	char *what = xasprintf("%s.ldap %s bind as %s%s", s->role, l->url, dn,
			       !strncmp(l->url, "ldap://", 7) && !l->starttls ? " (no StartTLS: NOT ENCRYPTED)"
			       : l->tls_verify ? "" : " (TLS verification OFF)");
	enum zmb_rc rc = secret_read_file(l->password_file, &pw, &err);
	if (rc) {
		char *w = xasprintf("%s.ldap password_file", s->role);
		verdict(false, w, err ? err : zmb_rc_str(rc));
		free(w);
		*config = true;
		goto out;
	}
	zlog_add_secret(pw);
	struct ldc_opts o = { l->starttls, l->ca_file, l->tls_verify, 10.0 };
	rc = ldc_open(l->url, &o, &c, &err);
	if (rc == ZMB_OK)
		rc = ldc_bind(c, l->bind_dn, pw, &err);
	verdict(rc == ZMB_OK, what, rc ? (err ? err : zmb_rc_str(rc)) : NULL);
	if (rc)
		goto out;
	ok = true;
	if (!read_hash)
		goto out;
	free(what);
	const char *base = l->base ? l->base : "";
	what = xasprintf("%s.ldap %s as %s: userPassword readable below '%s' (copy_password)", s->role,
			 l->url, dn, base);
	bool present = false;
	rc = ldc_probe_attr(c, base, "(&(objectClass=zimbraAccount)(userPassword=*))", "userPassword",
			    &entry, &present, "read userPassword presence", &err);
	char *detail = NULL;
	if (rc == ZMB_ENOTFOUND && !err)
		detail = xasprintf("no zimbraAccount entry with a userPassword that %s may read below "
				   "'%s': wrong base, or the bind DN may not read password hashes "
				   "(the provision stage would fail the accounts: no hash to copy)",
				   dn, base);
	else if (rc == ZMB_OK && !present)
		detail = xasprintf("%s may find but not read userPassword of %s (ACL): the provision "
				   "stage would fail the accounts (no hash to copy)", dn, entry);
	else if (rc == ZMB_OK)
		detail = xasprintf("present on %s (its value not read)", entry);
	ok = rc == ZMB_OK && present;
	verdict(ok, what, detail ? detail : err ? err : zmb_rc_str(rc));
	free(detail);
out:
	free(what);
	free(err);
	free(entry);
	secret_free(pw);
	ldc_close(c);
	return ok;
}

int cmd_check(struct cli *cli)
{
	struct job job;
	struct run_ctl ctl;
	bool ok = true, has_migrate = false, has_ldap = false;

	memset(&job, 0, sizeof job);
	int rc = cli_load_job(cli, true, &job);
	if (rc)
		return rc;
	verdict(true, "job file", job.path);
	for (size_t i = 0; i < job.warnings.n; i++)
		printf("warn %s\n", job.warnings.v[i]);
	zlog_open(NULL, ZLOG_ERROR, true, NULL);
	zlog_add_secret(job.source.password);
	zlog_add_secret(job.target.password);
	runctl_init(&ctl, 0, 0);

	for (size_t i = 0; i < job.nstages; i++) {
		if (!strcmp(job.stages[i].type, "migrate"))
			has_migrate = true;
		if (!strncmp(job.stages[i].type, "ldap-", 5))
			has_ldap = true;
	}
	bool reach = true;
	if (has_migrate) {
		reach &= check_server(&job, &job.source, &ctl);
		reach &= check_server(&job, &job.target, &ctl);
		if (job.mig.transfer == TRANSFER_SPOOL) {
			ok &= check_dir("working_dir", job.mig.working_dir);
			if (job.mig.keep_success_files && job.mig.success_dir)
				ok &= check_dir("success_dir", job.mig.success_dir);
			if (job.mig.failed_dir)
				ok &= check_dir("failed_dir", job.mig.failed_dir);
		}
	}
	if (has_ldap)
		for (size_t i = 0; i < job.nstages; i++)
			if (!strncmp(job.stages[i].type, "ldap-", 5))
				reach &= check_ldap_stage(&job, &job.stages[i]);
	for (int side = 0; side < 2; side++) {
		const struct server *s = side ? &job.target : &job.source;
		bool cfg = false;
		if (!s->ldap.url)
			continue;
		bool r = check_side_ldap(s, !side && job_copies_passwords(&job), &cfg);
		if (cfg)
			ok = false;
		else
			reach &= r;
	}
	const char *db = cli_state_path(cli, &job);
	if (db) {
		char *dir = xstrdup(db);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			ok &= check_dir("state directory", dir);
		}
		free(dir);
	}
	if (job.log_dir)
		ok &= check_dir("log.dir", job.log_dir);

	int code = !reach ? EXIT_UNAVAILABLE : ok ? 0 : EXIT_CONFIG;
	printf("%s\n", code == 0 ? "check passed" : code == EXIT_UNAVAILABLE ?
	       "check failed: a server could not be reached or refused the credentials" :
	       "check failed: fix the items marked FAIL");
	job_release(&job);
	return code;
}
