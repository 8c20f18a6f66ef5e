/*
 * slapd.c - two private slapd instances for the LDAP stage tests (slapd.h).
 */
#define _GNU_SOURCE
#include "slapd.h"

#include "testutil.h"
#include "zmb.h"

#include <errno.h>
#include <fcntl.h>
#include <ldap.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLAPD_BIN "/usr/sbin/slapd"
#define SLAPADD_BIN "/usr/sbin/slapadd"
#define MODULE_DIR "/usr/lib/ldap"
#define SCHEMA_DIR "/etc/ldap/schema"

/* the pair to stop from the atexit hook (test child only; one at a time) */
static struct slapd_pair *atexit_pair;

static void atexit_stop(void)
{
	if (atexit_pair)
		slapd_pair_stop(atexit_pair);
}

static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	if (err && !*err)
		*err = m;
	else
		free(m);
	return -1;
}

/* The end of a slapd log for an error message, without the stats lines (" conn="): what
 * is left are slapd's own complaints (syncrepl, TLS, config), which the fixture's polling
 * would otherwise push out of the tail. */
static char *log_tail(const char *path)
{
	char *t = tu_read(path);
	if (!t)
		return xstrdup("(no log)");
	struct buf b = BUF_INIT;
	for (const char *l = t; *l;) {
		size_t n = strcspn(l, "\n");
		const char *c = strstr(l, " conn=");
		if (!c || c > l + n)
			buf_add(&b, l, n + (l[n] == '\n'));
		l += n + (l[n] == '\n');
	}
	free(t);
	char *all = buf_detach(&b);
	size_t n = strlen(all);
	char *r = xstrdup(n > 1500 ? all + n - 1500 : all);
	free(all);
	return r;
}

/* fork/exec argv; the child dies with us (PDEATHSIG); stdout/stderr to log */
static pid_t spawn_child(char *const argv[], const char *log)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
	int nul = open("/dev/null", O_RDONLY);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	if (nul >= 0)
		dup2(nul, 0);
	execv(argv[0], argv);
	_exit(127);
}

static void stop_pid(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	if (tu_wait(*pid, 5) < 0) {
		kill(*pid, SIGKILL);
		tu_wait(*pid, 5);
	}
	*pid = 0;
}

/*
 * The starting layout mirrors Zimbra's, as far as Debian's slapd can (Zimbra's files in
 * github.com/Zimbra/zm-ldap-utilities):
 *   olcDatabase={-1}frontend, {0}config, {1}monitor    conf/ldap/config/cn=config/
 *                                                      olcDatabase={1}monitor.ldif
 *   replica, plain master: {2}mdb = the data DB        .../olcDatabase={2}mdb.ldif
 *   delta master: {2}mdb = cn=accesslog (+ syncprov),  src/libexec/zmldapenablereplica,
 *                 {3}mdb = the data DB                 enableSyncProv(): the accesslog DB
 *                                                      added at {2} pushes the data DB to {3}
 * The data DB's overlays in Zimbra's order (.../olcDatabase={2}mdb/olcOverlay={0}dynlist.ldif,
 * {1}unique.ldif, {2}noopsrch.ldif) behind what zmldapenablereplica inserts at the front:
 *   master:        {0}syncprov [{1}accesslog if delta] then dynlist, unique
 *   delta replica: {0}syncprov (createLdapConfig()) then dynlist, unique
 *   plain replica: {0}dynlist {1}unique (no syncprov: the fixture's plain consumer)
 * What Debian's slapd 2.5 cannot have: noopsrch is a contrib overlay Zimbra builds
 * (cn=module{0}.ldif loads noopsrch.la; /usr/lib/ldap has no noopsrch.so), so the data DB
 * stops at unique.  back_monitor is built into Debian's slapd (no module to load; Zimbra
 * loads back_monitor.la).  unique keeps only ldap:///?mail?sub of Zimbra's three URIs
 * (zimbraId and DKIMSelector are Zimbra schema); dynlist's groupOfURLs/memberURL come from
 * Debian's dyngroup schema (Zimbra ships its own).
 */
static int data_db_index(const struct slapd_pair *p, int i)
{
	return p->layout == SLAPD_DELTA && i == 0 ? 3 : 2;
}

static void config_ldif(struct buf *b, const struct slapd_pair *p, int i,
			const struct slapd_opts *o)
{
	const struct slapd_inst *s = &p->s[i];
	bool delta = p->layout == SLAPD_DELTA;
	int datadb = data_db_index(p, i);
	int ov = 0;   /* next overlay index on the data DB */

	buf_addf(b, "dn: cn=config\nobjectClass: olcGlobal\ncn: config\n"
		 "olcPidFile: %s/slapd.pid\nolcArgsFile: %s/slapd.args\n", s->dir, s->dir);
	/*
	 * A certificate and key, no CA: Zimbra's cn=config.ldif also has olcTLSCACertificatePath:
	 * /opt/zimbra/conf/ca, but any starttls= or tls_ option in an agreement makes slapd fill
	 * in what the agreement does not name from the server's own TLS settings (CA file, CA
	 * dir, certificate, key; tls_reqcert=demand): bindconf_tls_defaults() in OpenLDAP 2.5's
	 * servers/slapd/config.c.  With the CA here the replica would trust the master whatever
	 * the agreement's tls_cacertdir says (tried: a foreign CA in ca_dir, or no
	 * tls_cacertdir at all, still replicated).  Without it the agreement's tls_cacertdir is
	 * the only way the replica can verify the master, so the require_tls pair proves it.
	 * (Unset, the server's CA is libldap's default: ldap.conf's TLS_CACERT.)
	 */
	if (o && o->tls_cert_file)
		buf_addf(b, "olcTLSCertificateFile: %s\nolcTLSCertificateKeyFile: %s\n",
			 o->tls_cert_file, o->tls_key_file);
	buf_adds(b, "\n");
	buf_addf(b, "dn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\n"
		 "olcModulePath: " MODULE_DIR "\nolcModuleLoad: {0}back_mdb\n"
		 "olcModuleLoad: {1}syncprov\nolcModuleLoad: {2}accesslog\n"
		 "olcModuleLoad: {3}dynlist\nolcModuleLoad: {4}unique\n\n");
	buf_addf(b, "dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n"
		 "include: file://" SCHEMA_DIR "/core.ldif\n\n"
		 "include: file://" SCHEMA_DIR "/cosine.ldif\n\n"
		 "include: file://" SCHEMA_DIR "/inetorgperson.ldif\n\n"
		 "include: file://" SCHEMA_DIR "/dyngroup.ldif\n\n");
	buf_addf(b, "dn: olcDatabase={-1}frontend,cn=config\nobjectClass: olcDatabaseConfig\n"
		 "objectClass: olcFrontendConfig\nolcDatabase: {-1}frontend\n"
		 "olcAccess: {0}to dn.base=\"\" by * read\n"
		 "olcAccess: {1}to dn.base=\"cn=Subschema\" by * read\n\n");
	buf_addf(b, "dn: olcDatabase={0}config,cn=config\nobjectClass: olcDatabaseConfig\n"
		 "olcDatabase: {0}config\nolcRootDN: cn=config\nolcRootPW: " SLAPD_CONFIG_PW "\n"
		 "olcAccess: {0}to * by * none\n\n");
	/* Zimbra: by dn.children="cn=admins,cn=zimbra" read (its zmreplica is one of those) */
	buf_addf(b, "dn: olcDatabase={1}monitor,cn=config\nobjectClass: olcDatabaseConfig\n"
		 "olcDatabase: {1}monitor\nolcRootDN: cn=config\n"
		 "olcAccess: {0}to dn.children=\"cn=monitor\" by dn.exact=\"%s\" read\n\n",
		 p->repl_dn);
	if (delta && i == 0) {
		buf_addf(b, "dn: olcDatabase={2}mdb,cn=config\nobjectClass: olcDatabaseConfig\n"
			 "objectClass: olcMdbConfig\nolcDatabase: {2}mdb\nolcSuffix: cn=accesslog\n"
			 "olcDbDirectory: %s/accesslog\nolcRootDN: cn=config\n"
			 "olcDbMaxSize: 268435456\n"
			 "olcDbIndex: entryCSN,objectClass,reqEnd,reqResult,reqStart eq\n"
			 "olcAccess: {0}to * by dn.exact=\"%s\" read by * none\n"
			 "olcLimits: {0}dn.exact=\"%s\" size=unlimited time=unlimited\n\n",
			 s->dir, p->repl_dn, p->repl_dn);
		buf_addf(b, "dn: olcOverlay={0}syncprov,olcDatabase={2}mdb,cn=config\n"
			 "objectClass: olcOverlayConfig\nobjectClass: olcSyncProvConfig\n"
			 "olcOverlay: {0}syncprov\nolcSpNoPresent: TRUE\nolcSpReloadHint: TRUE\n\n");
	}
	buf_addf(b, "dn: olcDatabase={%d}mdb,cn=config\nobjectClass: olcDatabaseConfig\n"
		 "objectClass: olcMdbConfig\nolcDatabase: {%d}mdb\nolcSuffix: %s\n"
		 "olcDbDirectory: %s/db\nolcRootDN: cn=config\nolcDbMaxSize: 268435456\n"
		 "olcDbIndex: objectClass eq\nolcDbIndex: entryCSN eq\nolcDbIndex: entryUUID eq\n"
		 "olcAccess: {0}to attrs=userPassword by self write by anonymous auth "
		 "by dn.exact=\"%s\" read by * none\n"
		 "olcAccess: {1}to * by dn.exact=\"%s\" read by * read\n"
		 "olcLimits: {0}dn.exact=\"%s\" size=unlimited time=unlimited\n",
		 datadb, datadb, p->suffix, s->dir, p->repl_dn, p->repl_dn, p->repl_dn);
	/*
	 * TLS required on the data DB: ssf=1 refuses every operation (a simple bind of one of
	 * its DNs included) on a connection without a security layer: plaintext ldap:// until
	 * StartTLS.  Not tls=1: that also refuses ldapi:// (o_tls_ssf is 0 on a local socket,
	 * tried), the local admin path.  No SASL mechanism can give a plaintext TCP connection
	 * a security layer here (no olcAuthzRegexp maps a SASL user to an entry), so on TCP
	 * ssf=1 means TLS.
	 */
	if (o && o->require_tls)
		buf_adds(b, "olcSecurity: ssf=1\n");
	if (i == 1) {
		buf_addf(b, "olcSyncrepl: {0}rid=100 provider=%s bindmethod=simple "
			 "binddn=\"%s\" credentials=" SLAPD_REPL_PW " searchbase=\"%s\" scope=sub "
			 "schemachecking=off type=refreshAndPersist retry=\"1 +\" timeout=0 "
			 "network-timeout=0 keepalive=240:10:30", p->s[0].uri, p->repl_dn, p->suffix);
		if (delta)
			buf_adds(b, " logbase=\"cn=accesslog\" "
				 "logfilter=\"(&(objectClass=auditWriteObject)(reqResult=0))\" "
				 "syncdata=accesslog");
		/* zmldapenablereplica's createLdapConfig(): starttls=critical when StartTLS is
		 * required, tls_cacertdir=/opt/zimbra/conf/ca always (a directory, not
		 * tls_cacert).  Debian's libldap (GnuTLS) reads every PEM file of the directory
		 * (gnutls_certificate_set_x509_trust_dir): no c_rehash/openssl rehash links are
		 * needed, shown by the require_tls pair replicating its seed. */
		if (o && o->require_tls)
			buf_adds(b, " starttls=critical");
		if (p->ca_dir)
			buf_addf(b, " tls_cacertdir=%s", p->ca_dir);
		buf_addf(b, "\nolcUpdateRef: %s\n", p->s[0].uri);
	}
	buf_adds(b, "\n");
	if (i == 0 || delta) {
		buf_addf(b, "dn: olcOverlay={%d}syncprov,olcDatabase={%d}mdb,cn=config\n"
			 "objectClass: olcOverlayConfig\nobjectClass: olcSyncProvConfig\n"
			 "olcOverlay: {%d}syncprov\nolcSpCheckpoint: 20 10\nolcSpSessionLog: 100000\n\n",
			 ov, datadb, ov);
		ov++;
	}
	if (i == 0 && delta) {
		buf_addf(b, "dn: olcOverlay={%d}accesslog,olcDatabase={%d}mdb,cn=config\n"
			 "objectClass: olcOverlayConfig\nobjectClass: olcAccessLogConfig\n"
			 "olcOverlay: {%d}accesslog\nolcAccessLogDB: cn=accesslog\n"
			 "olcAccessLogOps: writes\nolcAccessLogSuccess: TRUE\n"
			 "olcAccessLogPurge: 01+00:00 00+04:00\n\n", ov, datadb, ov);
		ov++;
	}
	buf_addf(b, "dn: olcOverlay={%d}dynlist,olcDatabase={%d}mdb,cn=config\n"
		 "objectClass: olcOverlayConfig\nobjectClass: olcDynamicList\n"
		 "olcOverlay: {%d}dynlist\nolcDlAttrSet: {0}groupOfURLs memberURL member\n\n",
		 ov, datadb, ov);
	ov++;
	buf_addf(b, "dn: olcOverlay={%d}unique,olcDatabase={%d}mdb,cn=config\n"
		 "objectClass: olcOverlayConfig\nobjectClass: olcUniqueConfig\n"
		 "olcOverlay: {%d}unique\nolcUniqueURI: ldap:///?mail?sub\n\n", ov, datadb, ov);
}

/* Bound (cn=config) or anonymous connection to uri.  An ldaps:// uri gets a private TLS
 * context that does not check the certificate: this only proves the listener answers. */
static LDAP *conn_uri(const char *uri, bool bind)
{
	LDAP *ld = NULL;
	int v3 = LDAP_VERSION3;
	struct timeval tv = { 2, 0 };
	if (ldap_initialize(&ld, uri) != LDAP_SUCCESS)
		return NULL;
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
	if (!strncmp(uri, "ldaps://", 8)) {
		int never = LDAP_OPT_X_TLS_NEVER, zero = 0;
		ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &never);
		ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
	}
	struct berval cred = { 0, NULL };
	if (bind) {
		cred.bv_val = (char *)SLAPD_CONFIG_PW;
		cred.bv_len = strlen(SLAPD_CONFIG_PW);
	}
	if (ldap_sasl_bind_s(ld, bind ? "cn=config" : NULL, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
			     NULL) != LDAP_SUCCESS) {
		ldap_unbind_ext_s(ld, NULL, NULL);
		return NULL;
	}
	return ld;
}

static LDAP *conn(const struct slapd_inst *s, bool bind)
{
	return conn_uri(s->uri, bind);
}

/*
 * The helpers' connection: cn=config over the ldapi:// socket, the local admin path (Zimbra's
 * tools use ldapi too).  It works on every pair, also where the data DB refuses plaintext
 * TCP (slapd_opts.require_tls).
 */
static LDAP *conn_admin(const struct slapd_inst *s)
{
	return conn_uri(s->ldapi, true);
}

static int start_inst(struct slapd_pair *p, int i, char **err)
{
	struct slapd_inst *s = &p->s[i];
	char *hosts = xasprintf("ldap://127.0.0.1:%d/ %s%s%s", s->port, s->ldapi,
				s->ldaps ? " " : "", s->ldaps ? s->ldaps : "");
	char *cfg = xasprintf("%s/slapd.d", s->dir);
	/* -d stats: OpenLDAP's "stats" level (connections, operations, the DN and attribute
	 * names of every MOD/ADD/DEL, results) on stderr, i.e. into s->log.  olcLogLevel alone
	 * would not do: in 2.5 it only feeds syslog (tried: "-d none" + olcLogLevel: stats
	 * leaves slapd.log without a single conn= line). */
	char *argv[] = { (char *)SLAPD_BIN, (char *)"-d", (char *)"stats", (char *)"-F", cfg,
			 (char *)"-h", hosts, NULL };
	int rc = -1;
	s->pid = spawn_child(argv, s->log);
	if (s->pid < 0) {
		fail(err, "fork slapd: %s", strerror(errno));
		goto out;
	}
	double t0 = mono_now();
	while (mono_now() - t0 < 10) {
		int st;
		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			s->pid = 0;
			char *t = log_tail(s->log);
			fail(err, "slapd %d exited at start: %s", i, t);
			free(t);
			goto out;
		}
		/* ready when our own ldapi socket answers (so the TCP answer below is
		 * this slapd and not another process that took the port meanwhile:
		 * slapd binds every listener before it serves any) and every TCP
		 * listener answers (ldaps: handshake and anonymous bind) */
		LDAP *li = conn_uri(s->ldapi, false);
		if (!li) {
			tu_sleep(0.02);
			continue;
		}
		ldap_unbind_ext_s(li, NULL, NULL);
		LDAP *ld = conn(s, false);
		LDAP *ls = ld && s->ldaps ? conn_uri(s->ldaps, false) : NULL;
		bool up = ld && (!s->ldaps || ls);
		if (ld)
			ldap_unbind_ext_s(ld, NULL, NULL);
		if (ls)
			ldap_unbind_ext_s(ls, NULL, NULL);
		if (up) {
			rc = 0;
			goto out;
		}
		tu_sleep(0.02);
	}
	fail(err, "slapd %d did not answer on %s%s%s within 10 s", i, s->uri,
	     s->ldaps ? " and " : "", s->ldaps ? s->ldaps : "");
out:
	free(hosts);
	free(cfg);
	return rc;
}

static int add_entry(LDAP *ld, const char *dn, const char *const *av)
{
	/* av: attr, value, attr, value, ..., NULL; repeated attrs must be adjacent */
	LDAPMod mods[16], *mp[17];
	char *vals[16][8];
	size_t n = 0, k = 0;
	for (size_t i = 0; av[i] && n < 16; i += 2) {
		if (n && !strcmp(mods[n - 1].mod_type, av[i]) && k < 7) {
			vals[n - 1][k++] = (char *)av[i + 1];
			vals[n - 1][k] = NULL;
			continue;
		}
		k = 0;
		vals[n][k++] = (char *)av[i + 1];
		vals[n][k] = NULL;
		mods[n].mod_op = LDAP_MOD_ADD;
		mods[n].mod_type = (char *)av[i];
		mods[n].mod_values = vals[n];
		mp[n] = &mods[n];
		n++;
	}
	mp[n] = NULL;
	return ldap_add_ext_s(ld, dn, mp, NULL, NULL);
}

static int seed(struct slapd_pair *p, char **err)
{
	LDAP *ld = conn_admin(&p->s[0]);
	int rc = -1;
	char *ou = xasprintf("ou=people,%s", p->base);
	if (!ld)
		return fail(err, "seed: cannot bind to the master as cn=config");
	int lrc;
	if (*p->suffix) {
		const char *a[] = { "objectClass", "dcObject", "objectClass", "organization",
				    "dc", "example", "o", "example", NULL };
		lrc = add_entry(ld, p->base, a);
	} else {
		const char *a[] = { "objectClass", "organizationalRole", "cn", "zimbra", NULL };
		lrc = add_entry(ld, p->base, a);
	}
	if (lrc != LDAP_SUCCESS) {
		fail(err, "seed %s: %s", p->base, ldap_err2string(lrc));
		goto out;
	}
	const char *o[] = { "objectClass", "organizationalUnit", "ou", "people", NULL };
	const char *r[] = { "objectClass", "organizationalRole", "objectClass",
			    "simpleSecurityObject", "cn", "replicator", "userPassword",
			    SLAPD_REPL_PW, NULL };
	if ((lrc = add_entry(ld, ou, o)) != LDAP_SUCCESS ||
	    (lrc = add_entry(ld, p->repl_dn, r)) != LDAP_SUCCESS) {
		fail(err, "seed: %s", ldap_err2string(lrc));
		goto out;
	}
	rc = 0;
out:
	free(ou);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return rc;
}

int slapd_pair_start(struct slapd_pair *p, enum slapd_layout layout, const char *suffix,
		     char **err)
{
	return slapd_pair_start_ex(p, layout, suffix, NULL, err);
}

/* a free loopback port none of the pair's listeners uses yet */
static int new_port(const struct slapd_pair *p)
{
	for (;;) {
		int port = tu_free_port();
		bool used = false;
		for (int i = 0; i < 2; i++)
			used |= port == p->s[i].port || port == p->s[i].ldaps_port;
		if (!used)
			return port;
	}
}

static int pair_start_once(struct slapd_pair *p, enum slapd_layout layout, const char *suffix,
			   const struct slapd_opts *o, char **err);

/*
 * The ports are found free (tu_free_port) and handed to slapd later, so
 * another process may take one in between: slapd then exits with "Address
 * already in use", and the pair is set up again on new ports.
 */
int slapd_pair_start_ex(struct slapd_pair *p, enum slapd_layout layout, const char *suffix,
			const struct slapd_opts *o, char **err)
{
	for (int attempt = 1;; attempt++) {
		char *e = NULL;
		if (pair_start_once(p, layout, suffix, o, &e) == 0)
			return 0;
		if (attempt == 5 || !e || !strstr(e, "Address already in use")) {
			fail(err, "%s", e ? e : "slapd pair did not start");
			free(e);
			return -1;
		}
		fprintf(stderr, "slapd pair: a port was taken meanwhile, new ports (%s)\n", e);
		free(e);
		slapd_pair_stop(p);
	}
}

static int pair_start_once(struct slapd_pair *p, enum slapd_layout layout, const char *suffix,
			   const struct slapd_opts *o, char **err)
{
	static const char *const names[2] = { "m", "r" };
	memset(p, 0, sizeof *p);
	if (o && (!o->tls_cert_file != !o->tls_key_file || !o->tls_cert_file != !o->tls_ca_file))
		return fail(err, "slapd_opts: set tls_cert_file, tls_key_file and tls_ca_file together");
	if (o && o->ldaps && !o->tls_cert_file)
		return fail(err, "slapd_opts: ldaps needs tls_cert_file, tls_key_file, tls_ca_file");
	if (o && o->require_tls && !o->tls_cert_file)
		return fail(err, "slapd_opts: require_tls needs tls_cert_file, tls_key_file, "
			    "tls_ca_file");
	p->layout = layout;
	p->suffix = xstrdup(suffix);
	p->base = xstrdup(*suffix ? suffix : "cn=zimbra");
	p->repl_dn = xasprintf("cn=replicator,%s", p->base);
	p->dir = tu_tmpdir("slapd");
	if (!p->dir)
		return fail(err, "mkdtemp: %s", strerror(errno));
	atexit_pair = p;
	static bool hooked;
	if (!hooked) {
		atexit(atexit_stop);
		hooked = true;
	}
	p->config_pw_file = tu_write(p->dir, "config.pw", SLAPD_CONFIG_PW "\n", 0600);
	p->repl_pw_file = tu_write(p->dir, "repl.pw", SLAPD_REPL_PW "\n", 0600);
	p->wrong_pw_file = tu_write(p->dir, "wrong.pw", "not-the-password\n", 0600);
	if (o && o->tls_ca_file) {
		/* what /opt/zimbra/conf/ca is to Zimbra: a directory holding the CA certificate */
		char *ca = tu_read(o->tls_ca_file);
		if (!ca)
			return fail(err, "cannot read %s", o->tls_ca_file);
		p->ca_dir = xasprintf("%s/ca", p->dir);
		mkdir_p(p->ca_dir, 0700);
		free(tu_write(p->ca_dir, "ca.pem", ca, 0644));
		free(ca);
	}
	for (int i = 0; i < 2; i++) {
		struct slapd_inst *s = &p->s[i];
		s->port = new_port(p);
		s->dir = xasprintf("%s/%s", p->dir, names[i]);
		s->uri = xasprintf("ldap://127.0.0.1:%d/", s->port);
		if (o && o->ldaps) {
			s->ldaps_port = new_port(p);
			s->ldaps = xasprintf("ldaps://127.0.0.1:%d/", s->ldaps_port);
		}
		s->log = xasprintf("%s/slapd.log", s->dir);
		s->datadb = xasprintf("olcDatabase={%d}mdb,cn=config", data_db_index(p, i));
		/* the local socket, percent-encoded as ldapi:// URIs want it */
		struct buf b = BUF_INIT;
		buf_adds(&b, "ldapi://");
		for (const char *c = s->dir; *c; c++)
			*c == '/' ? buf_adds(&b, "%2F") : buf_add(&b, c, 1);
		buf_adds(&b, "%2Fldapi/");
		s->ldapi = buf_detach(&b);
	}
	for (int i = 0; i < 2; i++) {
		struct slapd_inst *s = &p->s[i];
		struct buf b = BUF_INIT;
		char *sub[3] = { xasprintf("%s/slapd.d", s->dir), xasprintf("%s/db", s->dir),
				 xasprintf("%s/accesslog", s->dir) };
		for (int k = 0; k < 3; k++)
			mkdir_p(sub[k], 0700);
		config_ldif(&b, p, i, o);
		char *ldif = tu_write(s->dir, "config.ldif", b.s, 0600);
		buf_release(&b);
		char *argv[] = { (char *)SLAPADD_BIN, (char *)"-n0", (char *)"-F", sub[0],
				 (char *)"-l", ldif, NULL };
		struct tu_proc pr = { 0 };
		int st = tu_run(argv, NULL, 20, &pr);
		if (st != 0)
			fail(err, "slapadd -n0 for slapd %d failed (%d): %s", i, st, pr.err);
		tu_proc_release(&pr);
		free(ldif);
		for (int k = 0; k < 3; k++)
			free(sub[k]);
		if (st != 0)
			return -1;
	}
	if (start_inst(p, 0, err) || seed(p, err) || start_inst(p, 1, err))
		return -1;
	char *rdn = xstrdup(p->repl_dn);
	bool ok = slapd_wait_entry(&p->s[1], rdn, true, 10);
	free(rdn);
	if (!ok) {
		char *t = log_tail(p->s[1].log);
		fail(err, "replica did not receive the seed within 10 s: %s", t);
		free(t);
		return -1;
	}
	return 0;
}

int slapd_inst_restart(struct slapd_pair *p, int i, char **err)
{
	stop_pid(&p->s[i].pid);
	return start_inst(p, i, err);
}

void slapd_pair_stop(struct slapd_pair *p)
{
	if (!p)
		return;
	for (int i = 0; i < 2; i++)
		stop_pid(&p->s[i].pid);
	if (atexit_pair == p)
		atexit_pair = NULL;
	if (p->dir)
		tu_rmrf(p->dir);
	for (int i = 0; i < 2; i++) {
		free(p->s[i].dir);
		free(p->s[i].uri);
		free(p->s[i].ldapi);
		free(p->s[i].ldaps);
		free(p->s[i].log);
		free(p->s[i].datadb);
	}
	free(p->dir);
	free(p->suffix);
	free(p->base);
	free(p->repl_dn);
	free(p->config_pw_file);
	free(p->repl_pw_file);
	free(p->wrong_pw_file);
	free(p->ca_dir);
	memset(p, 0, sizeof *p);
}

char *slapd_dump_config(const struct slapd_inst *s)
{
	LDAP *ld = conn_admin(s);
	LDAPMessage *msg = NULL;
	char *attrs[] = { (char *)"*", (char *)"modifyTimestamp", (char *)"entryCSN", NULL };
	struct buf b = BUF_INIT;
	if (!ld)
		return NULL;
	if (ldap_search_ext_s(ld, "cn=config", LDAP_SCOPE_SUBTREE,
			      "(!(objectClass=olcSchemaConfig))", attrs, 0, NULL, NULL, NULL, 0,
			      &msg) != LDAP_SUCCESS)
		goto out;
	for (LDAPMessage *e = ldap_first_entry(ld, msg); e; e = ldap_next_entry(ld, e)) {
		char *dn = ldap_get_dn(ld, e);
		buf_addf(&b, "dn: %s\n", dn);
		ldap_memfree(dn);
		BerElement *ber = NULL;
		for (char *a = ldap_first_attribute(ld, e, &ber); a;
		     a = ldap_next_attribute(ld, e, ber)) {
			struct berval **v = ldap_get_values_len(ld, e, a);
			for (size_t i = 0; v && v[i]; i++)
				buf_addf(&b, "%s: %.*s\n", a, (int)v[i]->bv_len, v[i]->bv_val);
			ldap_value_free_len(v);
			ldap_memfree(a);
		}
		if (ber)
			ber_free(ber, 0);
		buf_adds(&b, "\n");
	}
out:
	if (msg)
		ldap_msgfree(msg);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return buf_detach(&b);
}

int slapd_add_person(const struct slapd_inst *s, const char *base, const char *uid)
{
	LDAP *ld = conn_admin(s);
	if (!ld)
		return -1;
	char *dn = xasprintf("uid=%s,ou=people,%s", uid, base);
	const char *a[] = { "objectClass", "inetOrgPerson", "uid", uid, "cn", uid, "sn", uid,
			    NULL };
	int lrc = add_entry(ld, dn, a);
	free(dn);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return lrc == LDAP_SUCCESS ? 0 : -1;
}

int slapd_has_entry(const struct slapd_inst *s, const char *dn)
{
	LDAP *ld = conn_admin(s);
	LDAPMessage *msg = NULL;
	char *attrs[] = { (char *)"1.1", NULL };
	if (!ld)
		return -1;
	int lrc = ldap_search_ext_s(ld, dn, LDAP_SCOPE_BASE, NULL, attrs, 0, NULL, NULL, NULL, 0,
				    &msg);
	int r = lrc == LDAP_SUCCESS ? ldap_count_entries(ld, msg) > 0
		: lrc == LDAP_NO_SUCH_OBJECT ? 0 : -1;
	if (msg)
		ldap_msgfree(msg);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return r;
}

bool slapd_wait_entry(const struct slapd_inst *s, const char *dn, bool want, double timeout_s)
{
	double t0 = mono_now();
	do {
		int r = slapd_has_entry(s, dn);
		if (r == (want ? 1 : 0))
			return true;
		tu_sleep(0.01);
	} while (mono_now() - t0 < timeout_s);
	return false;
}

int slapd_modify_add(const struct slapd_inst *s, const char *dn, const char *attr,
		     const char *val)
{
	LDAP *ld = conn_admin(s);
	if (!ld)
		return -1;
	char *vals[] = { (char *)val, NULL };
	LDAPMod mod = { LDAP_MOD_ADD, (char *)attr, { vals } };
	LDAPMod *mods[] = { &mod, NULL };
	int lrc = ldap_modify_ext_s(ld, dn, mods, NULL, NULL);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return lrc == LDAP_SUCCESS ? 0 : -1;
}

int slapd_add_entry(const struct slapd_inst *s, const char *dn, const char *const *av)
{
	LDAP *ld = conn_admin(s);
	if (!ld)
		return -1;
	int lrc = add_entry(ld, dn, av);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return lrc == LDAP_SUCCESS ? 0 : -1;
}

int slapd_zimbra_subset(const struct slapd_inst *s)
{
	const char *const av[] = {
		"objectClass", "olcSchemaConfig", "cn", "zimbra-subset",
		"olcAttributeTypes", "( 1.3.6.1.4.1.19348.1.1.1 NAME 'zimbraId' "
		"DESC 'Zimbra Systems Unique ID' EQUALITY caseIgnoreMatch "
		"SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256} SINGLE-VALUE )",
		"olcObjectClasses", "( 1.3.6.1.4.1.19348.2.2 NAME 'zimbraAccount' "
		"DESC 'Zimbra account (test subset)' SUP top AUXILIARY MAY ( zimbraId ) )",
		NULL
	};
	return slapd_add_entry(s, "cn=zimbra-subset,cn=schema,cn=config", av);
}

int slapd_modify_del(const struct slapd_inst *s, const char *dn, const char *attr)
{
	LDAP *ld = conn_admin(s);
	if (!ld)
		return -1;
	LDAPMod mod = { LDAP_MOD_DELETE, (char *)attr, { NULL } };
	LDAPMod *mods[] = { &mod, NULL };
	int lrc = ldap_modify_ext_s(ld, dn, mods, NULL, NULL);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return lrc == LDAP_SUCCESS ? 0 : -1;
}

/* ---- the stats log ---- */

char *slapd_log_read(const struct slapd_inst *s)
{
	return s && s->log ? tu_read(s->log) : NULL;
}

bool slapd_log_has(const struct slapd_inst *s, const char *needle)
{
	char *t = slapd_log_read(s);
	bool r = t && needle && strstr(t, needle);
	free(t);
	return r;
}

/* "conn=C op=O " at the start of rest (after the timestamp and thread id): its length, or 0 */
static size_t op_key_len(const char *line)
{
	const char *c = strstr(line, " conn=");
	if (!c)
		return 0;
	c++;
	const char *o = c + strcspn(c, " \n");
	if (strncmp(o, " op=", 4))
		return 0;
	o += 4;
	o += strcspn(o, " \n");
	return *o == ' ' ? (size_t)(o + 1 - line) : 0;
}

void slapd_log_ops(const struct slapd_inst *s, const char *verb, struct strlist *out)
{
	char *t = slapd_log_read(s);
	struct strlist keys = STRLIST_INIT;   /* MOD only: "conn=C op=O " of out->v[idx[i]] */
	size_t *idx = NULL;
	bool mod = verb && !strcmp(verb, "MOD");
	char *vdn = xasprintf("%s dn=\"", verb ? verb : "");
	for (char *line = t; line && *line;) {
		char *eol = line + strcspn(line, "\n");
		char *next = *eol ? eol + 1 : eol;
		*eol = '\0';
		size_t kl = op_key_len(line);
		const char *key = kl ? strstr(line, " conn=") + 1 : NULL;
		const char *rest = line + kl;
		if (kl && !strncmp(rest, vdn, strlen(vdn))) {
			const char *dn = rest + strlen(vdn);
			size_t dl = strlen(dn);
			if (dl && dn[dl - 1] == '"')
				dl--;
			if (mod) {
				idx = xrealloc(idx, (keys.n + 1) * sizeof *idx);
				idx[keys.n] = out->n;
				strlist_add_nodup(&keys, xstrndup(key, (size_t)(rest - key)));
				strlist_add_nodup(out, xasprintf("%.*s:", (int)dl, dn));
			} else {
				strlist_add_nodup(out, xstrndup(dn, dl));
			}
		} else if (kl && mod && !strncmp(rest, "MOD attr=", 9)) {
			/* the attribute names of the latest MOD dn= of the same conn and op (slapd
			 * splits a long list over several lines; other threads' lines may interleave) */
			for (size_t i = keys.n; i-- > 0;) {
				if (strncmp(keys.v[i], key, (size_t)(rest - key)) ||
				    keys.v[i][rest - key] != '\0')
					continue;
				char *e = xasprintf("%s %s", out->v[idx[i]], rest + 9);
				free(out->v[idx[i]]);
				out->v[idx[i]] = e;
				break;
			}
		}
		line = next;
	}
	free(vdn);
	free(idx);
	strlist_release(&keys);
	free(t);
}

/* ---- cval builder ---- */

#define TCV_MAX 32

static struct cval *tcv_push(struct cval *g, const char *key, enum cval_type t)
{
	if (!g->items)
		g->items = xcalloc(TCV_MAX, sizeof *g->items);
	if (g->n >= TCV_MAX)
		abort();
	struct cval *v = &g->items[g->n++];
	memset(v, 0, sizeof *v);
	v->name = xstrdup(key);
	v->type = t;
	v->line = 1;
	return v;
}

struct cval *tcv_group(struct cval *parent, const char *key)
{
	if (!parent) {
		struct cval *g = xcalloc(1, sizeof *g);
		g->type = CV_GROUP;
		g->items = xcalloc(TCV_MAX, sizeof *g->items);
		g->line = 1;
		return g;
	}
	struct cval *g = tcv_push(parent, key, CV_GROUP);
	g->items = xcalloc(TCV_MAX, sizeof *g->items);
	return g;
}

void tcv_str(struct cval *g, const char *key, const char *val)
{
	tcv_push(g, key, CV_STR)->str = xstrdup(val);
}

void tcv_int(struct cval *g, const char *key, long long v)
{
	tcv_push(g, key, CV_INT)->i = v;
}

void tcv_bool(struct cval *g, const char *key, bool v)
{
	struct cval *c = tcv_push(g, key, CV_BOOL);
	c->b = v;
	c->i = v;
}

void tcv_strs(struct cval *g, const char *key, ...)
{
	struct cval *l = tcv_push(g, key, CV_LIST);
	l->items = xcalloc(TCV_MAX, sizeof *l->items);
	va_list ap;
	va_start(ap, key);
	for (const char *s; (s = va_arg(ap, const char *));) {
		struct cval *v = tcv_push(l, NULL, CV_STR);
		v->str = xstrdup(s);
	}
	va_end(ap);
}

struct cval *tcv_list(struct cval *g, const char *key)
{
	struct cval *l = tcv_push(g, key, CV_LIST);
	l->items = xcalloc(TCV_MAX, sizeof *l->items);
	return l;
}

struct cval *tcv_list_group(struct cval *list)
{
	struct cval *g = tcv_push(list, NULL, CV_GROUP);
	g->items = xcalloc(TCV_MAX, sizeof *g->items);
	return g;
}

void stage_run_init(struct stage_run *r, const char *name, const char *type,
		    struct cval *settings)
{
	memset(r, 0, sizeof *r);
	r->job.path = xstrdup("test.conf");
	r->job.name = xstrdup("test");
	r->sc.name = xstrdup(name);
	r->sc.type = xstrdup(type);
	r->sc.settings = *settings;
	r->sc.settings.name = NULL;
	r->sc.line = 1;
	free(settings);
	runctl_init(&r->ctl, 0, 0);
	r->ctx.job = &r->job;
	r->ctx.sc = &r->sc;
	r->ctx.ctl = &r->ctl;
	r->ctx.quiet = getenv("ZMB_TEST_VERBOSE") == NULL;
}

enum zmb_rc stage_run_go(struct stage_run *r, char **err)
{
	const struct stage_type *t = stage_type_find(r->sc.type);
	if (!t)
		return ZMB_EINTERNAL;
	if (t->validate(&r->sc, r->job.path, err))
		return ZMB_ECONFIG;
	struct stage_result res = t->run(&r->ctx);
	*err = res.err;
	return res.rc;
}

void stage_run_release(struct stage_run *r)
{
	cval_release(&r->sc.settings);
	free(r->sc.name);
	free(r->sc.type);
	free(r->job.path);
	free(r->job.name);
	buf_release(&r->ctx.out);
	memset(r, 0, sizeof *r);
}
