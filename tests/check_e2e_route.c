/*
 * check_e2e_route.c - end-to-end: with several mailbox servers per
 * installation, each account's export and import go to its home server
 * (zimbraMailHost), README "Multi-server installations".
 *
 * Four simulators (tests/zsim): the source installation is mbox1 (the
 * configured source) and mbox2, the target installation mbox1t (the
 * configured target) and mbox2t.  Each pair shares one "installation" (one
 * admin token valid on both); the configured server knows the other's
 * address (GetServerRequest) and, like the real UserServlet, proxies REST
 * for an account homed there (a 204 then becomes 500, an import with
 * Content-Length fails: research13/facts.md 2.2, inferred).  Every REST
 * request a simulator gets for an account it does not home is counted in
 * its stats "misrouted".
 */
#define _GNU_SOURCE
#include "e2e.h"
#include "testutil.h"
#include "zmb.h"
#include "zsim.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* source name, source home, target home (target name = source name) */
static const char *const ACCTS[][3] = {
	{ "a1@example.com", "mbox1", "mbox1t" },
	{ "a2@example.com", "mbox1", "mbox2t" },
	{ "b1@example.com", "mbox2", "mbox1t" },
	{ "b2@example.com", "mbox2", "mbox2t" },
};
#define NACCTS (sizeof ACCTS / sizeof *ACCTS)

static struct e2e E;
static struct zsim *S2, *D2;   /* E.src = mbox1, E.dst = mbox1t */

/* The config of one simulator: every account of the installation, with its home. */
static char *sim_cfg(const char *name, const char *self, bool target, int peer_port,
		     const char *peer)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "{\"name\":\"%s\",\"installation\":\"%s\",\"mailhost\":\"%s\",", name,
		 target ? "dst" : "src", self);
	if (peer_port)
		buf_addf(&b, "\"servers\":[{\"name\":\"%s\",\"host\":\"127.0.0.1\",\"port\":%d}],", peer,
			 peer_port);
	buf_adds(&b, "\"domains\":[{\"name\":\"example.com\",\"accounts\":[");
	for (size_t i = 0; i < NACCTS; i++)
		buf_addf(&b, "%s{\"name\":\"%s\",\"mailhost\":\"%s\"%s}", i ? "," : "", ACCTS[i][0],
			 ACCTS[i][target ? 2 : 1], target ? "" : ",\"items\":4,\"item_size\":2000");
	buf_adds(&b, "]}]}");
	return b.s;
}

static struct zsim *start(const char *name, const char *self, bool target, int peer_port,
			  const char *peer)
{
	char *cfg = sim_cfg(name, self, target, peer_port, peer);
	struct zsim_opts o = { .name = name, .config_json = cfg, .pki = E.pki };
	struct zsim *z = zsim_start(&o);
	free(cfg);
	ck_assert_msg(z != NULL, "simulator %s did not start", name);
	return z;
}

static void setup(void)
{
	memset(&E, 0, sizeof E);
	E.dir = tu_tmpdir("route");
	ck_assert_ptr_nonnull(E.dir);
	E.pki = zsim_pki_new(NULL);
	ck_assert_ptr_nonnull(E.pki);
	S2 = start("mbox2", "mbox2", false, 0, NULL);
	D2 = start("mbox2t", "mbox2t", true, 0, NULL);
	E.src = start("mbox1", "mbox1", false, S2->port, "mbox2");
	E.dst = start("mbox1t", "mbox1t", true, D2->port, "mbox2t");
	free(tu_write(E.dir, "src.pw", "test123\n", 0600));
	free(tu_write(E.dir, "dst.pw", "test123\n", 0600));
	if (asprintf(&E.db, "%s/state.db", E.dir) < 0)
		abort();
}

static void teardown(void)
{
	zsim_stop(S2);
	zsim_stop(D2);
	S2 = D2 = NULL;
	e2e_stop(&E);
}

/* The job: both configured servers, extra text inside source = {...} and target = {...}. */
static void write_job(const char *src_extra, const char *dst_extra, const char *mig_extra)
{
	char *text;
	if (asprintf(&text,
		     "job = \"route\";\n"
		     "source = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		     "  admin_password_file = \"%s/src.pw\"; ca_file = \"%s\"; %s };\n"
		     "target = { host = \"127.0.0.1\"; port = %d; admin_user = \"admin@example.com\";\n"
		     "  admin_password_file = \"%s/dst.pw\"; ca_file = \"%s\"; %s };\n"
		     "migration = { domains = [ \"example.com\" ]; threads = 2;\n"
		     "  working_dir = \"%s/work\"; retry_backoff = \"1s\"; retry_backoff_max = \"1s\";\n"
		     "  max_attempts = 1; %s };\n"
		     "state = { db = \"%s\"; };\n"
		     "log = { dir = \"%s/log\"; level = \"debug\"; };\n",
		     E.src->port, E.dir, E.pki->ca_file, src_extra ? src_extra : "", E.dst->port, E.dir,
		     E.pki->ca_file, dst_extra ? dst_extra : "", E.dir, mig_extra ? mig_extra : "", E.db,
		     E.dir) < 0)
		abort();
	free(E.job);
	E.job = tu_write(E.dir, "job.cfg", text, 0600);
	free(text);
}

static int zmbatch(const char *cmd, const char *opt, struct tu_proc *p)
{
	return e2e_zmbatch(p, 60, cmd, "-c", E.job, opt, (char *)NULL);
}

static struct zsim *src_home(size_t i)
{
	return !strcmp(ACCTS[i][1], "mbox1") ? E.src : S2;
}

static struct zsim *dst_home(size_t i)
{
	return !strcmp(ACCTS[i][2], "mbox1t") ? E.dst : D2;
}

/* No simulator got REST for an account it does not home. */
static void assert_no_misrouted(void)
{
	struct zsim *all[] = { E.src, S2, E.dst, D2 };
	for (size_t i = 0; i < 4; i++) {
		json_t *st = zsim_stats(all[i]);
		ck_assert_msg(zsim_stat_int(st, "misrouted/total") == 0,
			      "%s got %lld REST requests for accounts of another server", all[i]->dir,
			      zsim_stat_int(st, "misrouted/total"));
		json_decref(st);
	}
}

static long long soap_n(struct zsim *z, const char *req)
{
	json_t *st = zsim_stats(z);
	char *k = xasprintf("soap/%s", req);
	long long n = zsim_stat_int(st, k);
	free(k);
	json_decref(st);
	return n;
}

/* Each account exported once from its home and imported once into its target's home. */
START_TEST(test_home_servers)
{
	struct tu_proc p;
	write_job(NULL, NULL, NULL);
	ck_assert_int_eq(zmbatch("run", NULL, &p), 0);
	tu_proc_release(&p);
	assert_no_misrouted();
	for (size_t i = 0; i < NACCTS; i++) {
		json_t *ss = zsim_stats(src_home(i)), *ds = zsim_stats(dst_home(i));
		ck_assert_int_eq(zsim_stat_acct(ss, "exports", ACCTS[i][0], "count"), 1);
		ck_assert_int_eq(zsim_stat_acct(ds, "imports", ACCTS[i][0], "count"), 1);
		ck_assert_int_eq(zsim_stat_acct(ds, "accounts", ACCTS[i][0], "items"), 4);
		json_decref(ss);
		json_decref(ds);
	}
	/* one GetServerRequest per mailbox server name, not per account */
	ck_assert_int_eq(soap_n(E.src, "GetServerRequest"), 2);
	ck_assert_int_eq(soap_n(E.dst, "GetServerRequest"), 2);
	ck_assert_int_eq(soap_n(S2, "GetServerRequest") + soap_n(D2, "GetServerRequest"), 0);
	/* the home of each account is in the state DB and in `accounts` */
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE source_host = 'mbox2'"), 2);
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE target_host = 'mbox2t'"), 2);
	ck_assert_int_eq(zmbatch("accounts", NULL, &p), 0);
	ck_assert_msg(strstr(p.out, "mbox2t") != NULL, "accounts output without target hosts:\n%s", p.out);
	tu_proc_release(&p);
	/* and in the report: json per account, csv as the last two columns */
	ck_assert_int_eq(zmbatch("report", "--format=json", &p), 0);
	json_error_t je;
	json_t *root = json_loads(p.out, 0, &je);
	ck_assert_msg(root != NULL, "report json: %s\n%s", je.text, p.out);
	size_t n = 0, k;
	json_t *a;
	json_array_foreach(json_object_get(root, "accounts"), k, a) {
		const char *name = json_string_value(json_object_get(a, "account"));
		for (size_t i = 0; i < NACCTS; i++)
			if (name && !strcmp(name, ACCTS[i][0])) {
				const char *sh = json_string_value(json_object_get(a, "source_host"));
				const char *th = json_string_value(json_object_get(a, "target_host"));
				ck_assert_msg(sh && !strcmp(sh, ACCTS[i][1]) && th && !strcmp(th, ACCTS[i][2]),
					      "%s: hosts %s %s", name, sh ? sh : "null", th ? th : "null");
				n++;
			}
	}
	ck_assert_uint_eq(n, NACCTS);
	json_decref(root);
	tu_proc_release(&p);
	ck_assert_int_eq(zmbatch("report", "--format=csv", &p), 0);
	ck_assert_msg(strstr(p.out, "error,source_host,target_host,chunks_done,chunks_total,verified\r\n") != NULL, "%s", p.out);
	/* then `verified`: empty, or true once the run verifies its imports */
	ck_assert_msg(strstr(p.out, ",mbox2,mbox2t,0,0,\r\n") || strstr(p.out, ",mbox2,mbox2t,0,0,true\r\n"),
		      "%s", p.out);
	tu_proc_release(&p);
}
END_TEST

/* A delta pass with nothing new: each export is a 204 at the home server, not a 500 via a proxy. */
START_TEST(test_empty_delta_on_second_server)
{
	struct tu_proc p;
	write_job(NULL, NULL, NULL);
	ck_assert_int_eq(zmbatch("run", NULL, &p), 0);
	tu_proc_release(&p);
	ck_assert_int_eq(zmbatch("run", "--delta", &p), 0);
	tu_proc_release(&p);
	json_t *st = zsim_stats(S2);
	ck_assert_int_eq(zsim_stat_int(st, "rest_status/204"), 2);
	json_decref(st);
	st = zsim_stats(E.src);
	ck_assert_int_eq(zsim_stat_int(st, "rest_status/500"), 0);
	json_decref(st);
	assert_no_misrouted();
	ck_assert_int_eq(e2e_db_count(&E, "SELECT count(*) FROM accounts WHERE state = 'done'"), NACCTS);
}
END_TEST

/* source/target.servers: the job's address wins over GetServerRequest's (NAT, split DNS). */
START_TEST(test_servers_override)
{
	char *body = xasprintf("{\"servers\":[{\"name\":\"mbox2\",\"host\":\"unreachable.invalid\",\"port\":%d}]}",
			       S2->port);
	json_decref(zsim_post(E.src, "/zsim/servers", body));
	free(body);
	char *src = xasprintf("servers = ( { name = \"MBOX2\"; host = \"127.0.0.1\"; port = %d; } );",
			      S2->port);
	struct tu_proc p;
	write_job(src, NULL, NULL);
	free(src);
	ck_assert_int_eq(zmbatch("run", NULL, &p), 0);
	tu_proc_release(&p);
	assert_no_misrouted();
	ck_assert_int_eq(soap_n(E.src, "GetServerRequest"), 1);   /* mbox1 only */
	json_t *ss = zsim_stats(S2);
	ck_assert_int_eq(zsim_stat_acct(ss, "exports", "b1@example.com", "count"), 1);
	json_decref(ss);
}
END_TEST

/* `check` names every mailbox server of both installations and pings each. */
START_TEST(test_check_lists_servers)
{
	struct tu_proc p;
	write_job(NULL, NULL, NULL);
	ck_assert_int_eq(zmbatch("check", NULL, &p), 0);
	char *want = xasprintf("ok   source mailbox server mbox2 at 127.0.0.1:%d: NoOpRequest", S2->port);
	ck_assert_msg(strstr(p.out, want) != NULL, "no '%s' in:\n%s", want, p.out);
	free(want);
	want = xasprintf("ok   target mailbox server mbox2t at 127.0.0.1:%d: NoOpRequest", D2->port);
	ck_assert_msg(strstr(p.out, want) != NULL, "no '%s' in:\n%s", want, p.out);
	free(want);
	ck_assert_msg(strstr(p.out, "source mailbox server mbox1 via") != NULL, "%s", p.out);
	tu_proc_release(&p);
	ck_assert_int_eq(soap_n(S2, "NoOpRequest"), 1);
	ck_assert_int_eq(soap_n(D2, "NoOpRequest"), 1);
	/* a mailbox server that does not answer is a FAIL line naming it */
	zsim_stop(D2);
	D2 = NULL;
	ck_assert_int_ne(zmbatch("check", NULL, &p), 0);
	ck_assert_msg(strstr(p.out, "FAIL target mailbox server mbox2t") != NULL, "%s", p.out);
	tu_proc_release(&p);
}
END_TEST

/*
 * `check` sends one REST request with the admin cookie wherever a run sends
 * REST (an account that cannot exist: 404 when the cookie counts) and fails
 * when it is refused, as on a port that is not zimbraAdminPort (zsim knob
 * rest_not_admin_port: AuthUtil.isAdminRequest, every call 401).
 */
START_TEST(test_check_rest_admin_port)
{
	struct tu_proc p;
	write_job(NULL, NULL, NULL);
	ck_assert_int_eq(zmbatch("check", NULL, &p), 0);
	char *want = xasprintf("ok   source mailbox server mbox2 at 127.0.0.1:%d: REST: admin cookie "
			       "accepted (http 404", S2->port);
	ck_assert_msg(strstr(p.out, want) != NULL, "no '%s' in:\n%s", want, p.out);
	free(want);
	want = xasprintf("ok   source mailbox server mbox1 via 127.0.0.1:%d: REST: admin cookie", E.src->port);
	ck_assert_msg(strstr(p.out, want) != NULL, "no '%s' in:\n%s", want, p.out);
	free(want);
	tu_proc_release(&p);
	struct zsim *all[] = { E.src, S2, E.dst, D2 };
	for (size_t i = 0; i < 4; i++) {
		json_t *st = zsim_stats(all[i]);
		ck_assert_int_eq(zsim_stat_int(st, "rest_status/404"), 1);   /* one probe each, nothing sent */
		ck_assert_int_eq(zsim_stat_int(st, "rest_status/200"), 0);
		json_decref(st);
	}

	/* several mailbox servers: the one whose port refuses the cookie is named */
	json_decref(zsim_post(S2, "/zsim/knobs", "{\"rest_not_admin_port\":true}"));
	ck_assert_int_eq(zmbatch("check", NULL, &p), EXIT_UNAVAILABLE);
	want = xasprintf("FAIL source mailbox server mbox2 at 127.0.0.1:%d: REST: ", S2->port);
	const char *line = strstr(p.out, want);
	ck_assert_msg(line != NULL, "no '%s' in:\n%s", want, p.out);
	free(want);
	want = xasprintf("http 401 twice (a new login did not help): port %d is probably not the "
			 "server's admin port (zimbraAdminPort, usually 7071)", S2->port);
	ck_assert_msg(strstr(line, want) != NULL, "no '%s' in:\n%s", want, p.out);
	free(want);
	ck_assert_msg(strstr(p.out, "ok   source mailbox server mbox1 via") != NULL, "%s", p.out);
	tu_proc_release(&p);
	json_decref(zsim_post(S2, "/zsim/knobs", "{\"rest_not_admin_port\":false}"));

	/* one mailbox server (no routing): the configured server itself */
	json_decref(zsim_post(E.dst, "/zsim/servers", "{\"servers\":[]}"));
	ck_assert_int_eq(zmbatch("check", NULL, &p), 0);
	want = xasprintf("ok   target 127.0.0.1:%d: REST: admin cookie accepted", E.dst->port);
	ck_assert_msg(strstr(p.out, want) != NULL, "no '%s' in:\n%s", want, p.out);
	free(want);
	tu_proc_release(&p);
	json_decref(zsim_post(E.dst, "/zsim/knobs", "{\"rest_not_admin_port\":true}"));
	ck_assert_int_eq(zmbatch("check", NULL, &p), EXIT_UNAVAILABLE);
	want = xasprintf("FAIL target 127.0.0.1:%d: REST: ", E.dst->port);
	line = strstr(p.out, want);
	ck_assert_msg(line != NULL, "no '%s' in:\n%s", want, p.out);
	free(want);
	want = xasprintf("port %d is probably not the server's admin port", E.dst->port);
	ck_assert_msg(strstr(line, want) != NULL, "no '%s' in:\n%s", want, p.out);
	free(want);
	ck_assert_msg(strstr(p.out, "check failed: a server could not be reached or refused") != NULL,
		      "%s", p.out);
	tu_proc_release(&p);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("e2e_route");
	TCase *tc = tcase_create("route");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	/* ROUTE_ONLY=test_name runs one test (debugging, make mutate) */
	const char *only = getenv("ROUTE_ONLY");
#define ADD(t) do { if (!only || !strcmp(only, #t)) tcase_add_test(tc, t); } while (0)
	ADD(test_home_servers);
	ADD(test_empty_delta_on_second_server);
	ADD(test_servers_override);
	ADD(test_check_lists_servers);
	ADD(test_check_rest_admin_port);
	suite_add_tcase(s, tc);
	return s;
}

#include "ckmain.h"
