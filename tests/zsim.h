/*
 * zsim.h - start, query and stop simulated Zimbra servers (tests/zsim/zsim.py)
 * from Check suites.  The simulator's interface is in tests/zsim/README.md.
 *
 * Typical use in a checked fixture (runs in the forked test child):
 *
 *	struct zsim_pki *pki = zsim_pki_new(NULL);      // test CA + server certs
 *	struct zsim_opts o = { .name = "src", .pki = pki, .config_json = "{...}" };
 *	struct zsim *src = zsim_start(&o);              // NULL on failure (reason on stderr)
 *	... https://127.0.0.1:<src->port>, trust src->ca_file ...
 *	json_t *st = zsim_stats(src);                   // json_decref() it
 *	zsim_stop(src);                                 // SIGTERM, then SIGKILL; frees
 *	zsim_pki_free(pki);                             // removes its temp dir
 *
 * Several simulators may share one pki (one CA file for the client).  The
 * simulator exits by itself when the test process dies (--die-with-parent)
 * and after opts.max_lifetime seconds, so a timed-out test leaves nothing
 * behind.  Nothing here is thread-safe: call from one thread.
 */
#ifndef ZMB_ZSIM_H
#define ZMB_ZSIM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Certificates made with the openssl CLI in dir (all PEM, EC P-256). */
struct zsim_pki {
	char *dir;          /* owned; removed by zsim_pki_free when we created it */
	bool own_dir;
	char *ca_file;      /* test CA certificate: the trust anchor for clients */
	char *ca_key;
	char *cert_file;    /* server cert signed by the CA for 127.0.0.1 + localhost */
	char *key_file;
	char *self_cert;    /* self-signed server cert for 127.0.0.1 + localhost (untrusted) */
	char *self_key;
	char *wrong_cert;   /* signed by the CA, but only for wrong.example.invalid */
	char *wrong_key;
};
/* dir NULL = a new temp dir.  NULL on failure (openssl missing...). */
struct zsim_pki *zsim_pki_new(const char *dir);
void zsim_pki_free(struct zsim_pki *p);   /* NULL-safe */

enum zsim_cert {
	ZSIM_CERT_CA = 0,   /* pki->cert_file (trusted via pki->ca_file) */
	ZSIM_CERT_SELF,     /* pki->self_cert */
	ZSIM_CERT_WRONG,    /* pki->wrong_cert (hostname mismatch) */
};

struct zsim_opts {
	const char *name;         /* tag used for the temp dir and in stats ("src") */
	const char *config_json;  /* config text (README "Config JSON"); NULL = defaults */
	struct zsim_pki *pki;     /* borrowed; NULL = a private pki in the sim's dir */
	enum zsim_cert cert;
	double start_timeout;     /* seconds to wait for the port file; 0 = 15 */
	double max_lifetime;      /* simulator exits after this; 0 = 900 */
};

struct zsim {
	pid_t pid;
	int port;
	char *dir;          /* temp dir: sim.json, port file, zsim.log (removed by zsim_stop) */
	char *url;          /* "https://127.0.0.1:PORT" */
	char *ca_file;      /* borrowed from pki: the test CA */
	char *log_path;     /* simulator's stderr */
	char *admin_user;   /* from the config (default admin@example.com) */
	char *admin_password; /* from the config (default test123) */
	struct zsim_pki *own_pki; /* private pki, if opts.pki was NULL */
	/* what the harness itself trusts for its own requests (zsim_http):
	 * the CA, or the self-signed cert; host check off for ZSIM_CERT_WRONG */
	char *trust_file;
	bool verify_host;
};

struct zsim *zsim_start(const struct zsim_opts *o);
/* Stop (SIGTERM, wait up to 3 s, SIGKILL), remove the temp dir, free.  NULL-safe. */
void zsim_stop(struct zsim *z);
/* Is the process still running? */
bool zsim_alive(struct zsim *z);

/* GET /zsim/stats (full, with request log and digests).  NULL on error. */
json_t *zsim_stats(struct zsim *z);
/* GET /zsim/items?account=A: {"items":[{id,type,folder,...}]} (NULL on error, printed). */
json_t *zsim_items(struct zsim *z, const char *account);
/* POST a control endpoint ("/zsim/knobs", ...) with a JSON body; the parsed reply or NULL. */
json_t *zsim_post(struct zsim *z, const char *path, const char *json_body);

/*
 * Generic HTTPS request to the simulator for tests (trusting the test CA,
 * HTTP/1.1).  method "GET"/"POST"; headers NULL-terminated "K: V" list or
 * NULL; body/body_len may be NULL/0.  Returns the HTTP status (0 on
 * transport error); *out (if not NULL) gets the body (malloc'd, NUL-
 * terminated, length in *out_len if not NULL); *out_headers likewise gets
 * the raw response header block.
 */
long zsim_http(struct zsim *z, const char *method, const char *path,
	       const char *const *headers, const void *body, size_t body_len,
	       char **out, size_t *out_len, char **out_headers);

/* JSON SOAP helper: POST {"Header":{"context":{authToken}},"Body":{<req>}}; token may be NULL.
 * Returns the HTTP status; *reply gets the parsed JSON reply (or NULL). */
long zsim_soap(struct zsim *z, const char *token, json_t *body_req_steals, json_t **reply);
/* AuthRequest with the admin credentials; malloc'd token or NULL. */
char *zsim_login(struct zsim *z);

/* Stats helpers (NULL-safe, 0 / NULL when absent). */
/* path with '/' separators: "auth_requests/total", "exports/a@example.com/count" */
long long zsim_stat_int(json_t *stats, const char *path);
long long zsim_stat_acct(json_t *stats, const char *section, const char *account, const char *key);
const char *zsim_fingerprint(json_t *stats, const char *account);

#endif
