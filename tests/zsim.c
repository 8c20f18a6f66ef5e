/*
 * zsim.c - C harness for the simulated Zimbra server (see zsim.h).
 */
#define _GNU_SOURCE
#include "zsim.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "zmb.h"

/* ---------------------------------------------------------------- pki */

static bool openssl(const char *const argv[])
{
	struct tu_proc p;
	int rc = tu_run((char *const *)argv, NULL, 30, &p);
	if (rc != 0)
		fprintf(stderr, "zsim: openssl %s %s failed (exit %d): %s\n", argv[1],
			argv[2] ? argv[2] : "", rc, p.err);
	tu_proc_release(&p);
	return rc == 0;
}

/* A key + cert for the SAN list san, signed by the CA (self-signed if ca NULL). */
static bool make_cert(struct zsim_pki *p, const char *base, const char *san, bool self,
		      const char *serial, char **cert, char **key)
{
	bool ok = false;
	char *csr = xasprintf("%s/%s.csr", p->dir, base);
	char *ext = NULL, *extpath = NULL, *sanarg = xasprintf("subjectAltName=%s", san);
	*cert = xasprintf("%s/%s.pem", p->dir, base);
	*key = xasprintf("%s/%s.key", p->dir, base);
	if (self) {
		const char *argv[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
				 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", *key, "-out", *cert,
				 "-days", "30", "-subj", "/CN=localhost", "-addext", sanarg, NULL };
		ok = openssl(argv);
		goto out;
	}
	const char *argv1[] = { "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
			  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", *key, "-out", csr,
			  "-subj", "/CN=localhost", NULL };
	if (!openssl(argv1))
		goto out;
	ext = xasprintf("%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
			"extendedKeyUsage=serverAuth\n", sanarg);
	char *extname = xasprintf("%s.ext", base);
	extpath = tu_write(p->dir, extname, ext, 0600);
	free(extname);
	const char *argv2[] = { "openssl", "x509", "-req", "-in", csr, "-CA", p->ca_file, "-CAkey", p->ca_key,
			  "-set_serial", serial, "-days", "30", "-out", *cert,
			  "-extfile", extpath, NULL };
	ok = openssl(argv2);
out:
	free(csr);
	free(ext);
	free(extpath);
	free(sanarg);
	return ok;
}

struct zsim_pki *zsim_pki_new(const char *dir)
{
	struct zsim_pki *p = xcalloc(1, sizeof *p);
	if (dir) {
		p->dir = xstrdup(dir);
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			goto fail;
	} else {
		p->dir = tu_tmpdir("pki");
		p->own_dir = true;
		if (!p->dir)
			goto fail;
	}
	p->ca_file = xasprintf("%s/ca.pem", p->dir);
	p->ca_key = xasprintf("%s/ca.key", p->dir);
	const char *ca[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
		       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", p->ca_key, "-out", p->ca_file,
		       "-days", "30", "-subj", "/CN=zmbatch test CA",
		       "-addext", "basicConstraints=critical,CA:TRUE",
		       "-addext", "keyUsage=critical,keyCertSign,cRLSign", NULL };
	if (!openssl(ca))
		goto fail;
	if (!make_cert(p, "server", "IP:127.0.0.1,DNS:localhost", false, "2", &p->cert_file, &p->key_file) ||
	    !make_cert(p, "self", "IP:127.0.0.1,DNS:localhost", true, "3", &p->self_cert, &p->self_key) ||
	    !make_cert(p, "wrong", "DNS:wrong.example.invalid", false, "4", &p->wrong_cert, &p->wrong_key))
		goto fail;
	return p;
fail:
	fprintf(stderr, "zsim: cannot create test certificates in %s\n", p->dir ? p->dir : "(tmpdir)");
	zsim_pki_free(p);
	return NULL;
}

void zsim_pki_free(struct zsim_pki *p)
{
	if (!p)
		return;
	if (p->own_dir)
		tu_rmrf(p->dir);
	free(p->dir);
	free(p->ca_file);
	free(p->ca_key);
	free(p->cert_file);
	free(p->key_file);
	free(p->self_cert);
	free(p->self_key);
	free(p->wrong_cert);
	free(p->wrong_key);
	free(p);
}

/* ---------------------------------------------------------------- process */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void dump_log(struct zsim *z)
{
	char *log = tu_read(z->log_path);
	if (log) {
		size_t n = strlen(log);
		fprintf(stderr, "zsim %s log (tail):\n%s\n", z->dir, n > 3000 ? log + n - 3000 : log);
	}
	free(log);
}

struct zsim *zsim_start(const struct zsim_opts *o)
{
	struct zsim *z = xcalloc(1, sizeof *z);
	struct zsim_pki *pki = o->pki;
	const char *name = o->name ? o->name : "zsim";
	char *tag = xasprintf("zsim-%s", name);
	char *cfg_path = NULL, *port_path = NULL, *out_path = NULL, *script = NULL, *life = NULL;
	json_t *cfg = NULL;

	z->pid = -1;
	z->dir = tu_tmpdir(tag);
	if (!z->dir)
		goto fail;
	if (!pki) {
		char *pd = xasprintf("%s/pki", z->dir);
		z->own_pki = pki = zsim_pki_new(pd);
		free(pd);
		if (!pki)
			goto fail;
	}
	z->ca_file = pki->ca_file;
	const char *cert = pki->cert_file, *key = pki->key_file;
	z->trust_file = xstrdup(pki->ca_file);
	z->verify_host = true;
	if (o->cert == ZSIM_CERT_SELF) {
		cert = pki->self_cert;
		key = pki->self_key;
		free(z->trust_file);
		z->trust_file = xstrdup(pki->self_cert);
	} else if (o->cert == ZSIM_CERT_WRONG) {
		cert = pki->wrong_cert;
		key = pki->wrong_key;
		z->verify_host = false;
	}

	/* config: defaults filled in, the admin credentials read back */
	json_error_t jerr;
	cfg = o->config_json ? json_loads(o->config_json, 0, &jerr) : json_object();
	if (!cfg || !json_is_object(cfg)) {
		fprintf(stderr, "zsim: bad config JSON for %s: %s (line %d)\n", name,
			cfg ? "not an object" : jerr.text, cfg ? 0 : jerr.line);
		goto fail;
	}
	if (!json_object_get(cfg, "name"))
		json_object_set_new(cfg, "name", json_string(name));
	json_t *adm = json_object_get(cfg, "admin");
	const char *au = json_string_value(json_object_get(adm, "name"));
	const char *ap = json_string_value(json_object_get(adm, "password"));
	z->admin_user = xstrdup(au ? au : "admin@example.com");
	z->admin_password = xstrdup(ap ? ap : "test123");
	char *text = json_dumps(cfg, JSON_INDENT(1));
	cfg_path = tu_write(z->dir, "sim.json", text, 0600);
	free(text);

	port_path = xasprintf("%s/port", z->dir);
	out_path = xasprintf("%s/zsim.out", z->dir);
	z->log_path = xasprintf("%s/zsim.log", z->dir);
	script = xasprintf("%s/tests/zsim/zsim.py", tu_srcdir());
	life = xasprintf("%g", o->max_lifetime > 0 ? o->max_lifetime : 900.0);
	const char *py = getenv("PYTHON");
	const char *argv[] = { py && *py ? py : "python3", script, "--config", cfg_path,
			 "--cert", cert, "--key", key, "--port", "0",
			 "--port-file", port_path, "--die-with-parent", "--max-lifetime", life, NULL };
	z->pid = tu_spawn((char *const *)argv, NULL, out_path, z->log_path);
	if (z->pid < 0) {
		fprintf(stderr, "zsim: cannot start %s %s\n", argv[0], script);
		goto fail;
	}
	double deadline = now_s() + (o->start_timeout > 0 ? o->start_timeout : 15.0);
	for (;;) {
		char *p = tu_read(port_path);
		if (p) {
			z->port = atoi(p);
			free(p);
			if (z->port > 0)
				break;
		}
		if (!zsim_alive(z)) {
			fprintf(stderr, "zsim: %s exited during start-up\n", name);
			dump_log(z);
			goto fail;
		}
		if (now_s() > deadline) {
			fprintf(stderr, "zsim: %s did not start in time\n", name);
			dump_log(z);
			goto fail;
		}
		tu_sleep(0.02);
	}
	z->url = xasprintf("https://127.0.0.1:%d", z->port);
	goto out;
fail:
	zsim_stop(z);
	z = NULL;
out:
	json_decref(cfg);
	free(tag);
	free(cfg_path);
	free(port_path);
	free(out_path);
	free(script);
	free(life);
	return z;
}

bool zsim_alive(struct zsim *z)
{
	if (!z || z->pid <= 0)
		return false;
	int st;
	return waitpid(z->pid, &st, WNOHANG) == 0;
}

void zsim_stop(struct zsim *z)
{
	if (!z)
		return;
	if (z->pid > 0) {
		kill(z->pid, SIGTERM);
		if (tu_wait(z->pid, 3.0) < 0) {
			kill(z->pid, SIGKILL);
			tu_wait(z->pid, 5.0);
		}
	}
	zsim_pki_free(z->own_pki);
	if (z->dir)
		tu_rmrf(z->dir);
	free(z->dir);
	free(z->url);
	free(z->log_path);
	free(z->admin_user);
	free(z->admin_password);
	free(z->trust_file);
	free(z);
}

/* ---------------------------------------------------------------- HTTP */

struct membuf {
	char *p;
	size_t len, cap;
};

static size_t membuf_write(char *ptr, size_t size, size_t n, void *ud)
{
	struct membuf *b = ud;
	size_t k = size * n;
	if (b->len + k + 1 > b->cap) {
		b->cap = (b->len + k + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, ptr, k);
	b->len += k;
	b->p[b->len] = '\0';
	return k;
}

long zsim_http(struct zsim *z, const char *method, const char *path,
	       const char *const *headers, const void *body, size_t body_len,
	       char **out, size_t *out_len, char **out_headers)
{
	long status = 0;
	struct membuf b = { 0 }, h = { 0 };
	struct curl_slist *sl = NULL;
	char *url = NULL;
	CURL *c = NULL;

	if (out)
		*out = NULL;
	if (out_headers)
		*out_headers = NULL;
	if (!z || !z->url)
		goto out;
	c = curl_easy_init();
	if (!c)
		goto out;
	url = xasprintf("%s%s", z->url, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, z->trust_file);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, z->verify_host ? 2L : 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, membuf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, membuf_write);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
	if (!strcmp(method, "POST")) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
	} else if (strcmp(method, "GET")) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	for (size_t i = 0; headers && headers[i]; i++)
		sl = curl_slist_append(sl, headers[i]);
	sl = curl_slist_append(sl, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		fprintf(stderr, "zsim: %s %s: %s\n", method, path, curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (out) {
		*out = b.p ? b.p : xstrdup("");
		b.p = NULL;
	}
	if (out_len)
		*out_len = b.len;
	if (out_headers) {
		*out_headers = h.p ? h.p : xstrdup("");
		h.p = NULL;
	}
out:
	curl_slist_free_all(sl);
	if (c)
		curl_easy_cleanup(c);
	free(url);
	free(b.p);
	free(h.p);
	return status;
}

json_t *zsim_stats(struct zsim *z)
{
	char *body = NULL;
	json_t *j = NULL;
	long st = zsim_http(z, "GET", "/zsim/stats", NULL, NULL, 0, &body, NULL, NULL);
	if (st == 200)
		j = json_loads(body, 0, NULL);
	else
		fprintf(stderr, "zsim: GET /zsim/stats: HTTP %ld\n", st);
	free(body);
	return j;
}

json_t *zsim_items(struct zsim *z, const char *account)
{
	char *body = NULL, *path = NULL;
	json_t *j = NULL;
	if (asprintf(&path, "/zsim/items?account=%s", account) < 0)
		return NULL;
	long st = zsim_http(z, "GET", path, NULL, NULL, 0, &body, NULL, NULL);
	if (st == 200)
		j = json_loads(body, 0, NULL);
	else
		fprintf(stderr, "zsim: GET %s: HTTP %ld\n", path, st);
	free(body);
	free(path);
	return j;
}

json_t *zsim_post(struct zsim *z, const char *path, const char *json_body)
{
	char *body = NULL;
	json_t *j = NULL;
	const char *hdr[] = { "Content-Type: application/json", NULL };
	const char *b = json_body ? json_body : "{}";
	long st = zsim_http(z, "POST", path, hdr, b, strlen(b), &body, NULL, NULL);
	if (st == 200)
		j = json_loads(body, 0, NULL);
	else
		fprintf(stderr, "zsim: POST %s: HTTP %ld: %s\n", path, st, body ? body : "");
	free(body);
	return j;
}

long zsim_soap(struct zsim *z, const char *token, json_t *req, json_t **reply)
{
	json_t *ctx = json_pack("{s:s}", "_jsns", "urn:zimbra");
	if (token)
		json_object_set_new(ctx, "authToken", json_pack("{s:s}", "_content", token));
	json_t *env = json_pack("{s:{s:o},s:o}", "Header", "context", ctx, "Body", req);
	char *text = json_dumps(env, JSON_COMPACT);
	char *body = NULL;
	const char *hdr[] = { "Content-Type: application/json", NULL };
	long st = zsim_http(z, "POST", "/service/admin/soap", hdr, text, strlen(text), &body, NULL, NULL);
	if (reply)
		*reply = body ? json_loads(body, 0, NULL) : NULL;
	free(body);
	free(text);
	json_decref(env);
	return st;
}

char *zsim_login(struct zsim *z)
{
	json_t *r = NULL;
	char *tok = NULL;
	long st = zsim_soap(z, NULL, json_pack("{s:{s:s,s:s,s:s}}", "AuthRequest", "_jsns", "urn:zimbraAdmin",
					       "name", z->admin_user, "password", z->admin_password), &r);
	json_t *t = json_object_get(json_object_get(json_object_get(r, "Body"), "AuthResponse"), "authToken");
	const char *s = json_string_value(json_object_get(json_array_get(t, 0), "_content"));
	if (st == 200 && s)
		tok = xstrdup(s);
	json_decref(r);
	return tok;
}

/* ---------------------------------------------------------------- stats */

static long long jnum(json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (long long)json_real_value(v);
	if (json_is_true(v))
		return 1;
	return 0;
}

long long zsim_stat_int(json_t *stats, const char *path)
{
	json_t *cur = stats;
	const char *k = path;
	while (cur && k) {
		const char *slash = strchr(k, '/');
		char *key = slash ? xstrndup(k, (size_t)(slash - k)) : xstrdup(k);
		cur = json_object_get(cur, key);
		free(key);
		k = slash ? slash + 1 : NULL;
	}
	return jnum(cur);
}

long long zsim_stat_acct(json_t *stats, const char *section, const char *account, const char *key)
{
	return jnum(json_object_get(json_object_get(json_object_get(stats, section), account), key));
}

const char *zsim_fingerprint(json_t *stats, const char *account)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(stats, "accounts"), account), "fingerprint"));
}
