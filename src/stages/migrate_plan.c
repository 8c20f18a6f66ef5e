/*
 * migrate_plan.c - discovery and plan of the migrate stage (migrate_plan.h).
 */
#define _GNU_SOURCE
#include "log.h"
#include "migrate_plan.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static enum zmb_rc read_accounts_file(const char *path, struct strlist *out, char **err)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		*err = xasprintf("cannot read accounts_file '%s': %s", path, strerror(errno));
		return ZMB_ECONFIG;
	}
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0;
	enum zmb_rc rc = ZMB_OK;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (memchr(line, '\0', (size_t)len)) {
			/* C strings would silently cut the name at the NUL */
			*err = xasprintf("%s:%d: account name contains a NUL byte", path, lineno);
			rc = ZMB_ECONFIG;
			break;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		strtrim(line);
		if (!*line)
			continue;
		if (!strchr(line, '@') || strchr(line, ' ') || strchr(line, '/')) {
			*err = xasprintf("%s:%d: '%s' is not an account address", path, lineno, line);
			rc = ZMB_ECONFIG;
			break;
		}
		strlist_add(out, line);
	}
	free(line);
	fclose(f);
	return rc;
}

struct found {
	char *account;
	char *id;       /* may be NULL: looked up later */
	size_t seq;     /* position as listed/discovered */
	long long size; /* -1 unknown */
	bool need_size; /* ask the source (new account, or pending without a size) */
	bool listed;    /* its size came from the domain's size listing */
	enum zmb_rc lookup_rc;
	char *lookup_err;
	char *status;   /* zimbraAccountStatus from the domain listing, may be NULL */
	char *mailhost; /* home mailbox server (--shard-by server): listed or looked up; NULL unknown */
	enum zmb_rc home_rc;   /* the home lookup (--shard-by server) */
	char *home_err;
};

struct found_list {
	struct found *v;
	size_t n, cap;
};

/*
 * run --shard-by server: the run's whole listing, every account with the
 * shard its home deals it to (strings owned here), recorded with the plan's
 * rows in one transaction (state_shard_deal), so that report --merge never
 * sees a listing without its shard's accounts.
 */
struct listing {
	bool active;                 /* a by-server shard: record (even an empty listing) */
	struct shard_deal_item *v;
	size_t n;
};

static void listing_free(struct listing *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free((char *)l->v[i].account);
		free((char *)l->v[i].home);
	}
	free(l->v);
	memset(l, 0, sizeof *l);
}

static struct found *found_add(struct found_list *l, const char *name)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->v = xrealloc(l->v, l->cap * sizeof *l->v);
	}
	struct found *f = &l->v[l->n];
	memset(f, 0, sizeof *f);
	f->account = xstrlower(name);
	f->seq = l->n++;
	return f;
}

/* What one entry owns (the entry itself is the list's). */
static void found_release(struct found *f)
{
	free(f->account);
	free(f->id);
	free(f->lookup_err);
	free(f->status);
	free(f->mailhost);
	free(f->home_err);
}

static void found_free(struct found_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		found_release(&l->v[i]);
	free(l->v);
}

static enum zmb_rc discover(struct xfer *x, struct stage_ctx *ctx, struct xfer_conn *src,
			    struct found_list *fl, char **err)
{
	const struct job *job = x->job;
	struct strlist names = STRLIST_INIT;
	enum zmb_rc rc = ZMB_OK;

	for (size_t i = 0; i < job->mig.accounts.n; i++)
		strlist_add(&names, job->mig.accounts.v[i]);
	if (job->mig.accounts_file && (rc = read_accounts_file(job->mig.accounts_file, &names, err)))
		goto out;
	for (size_t i = 0; i < names.n; i++)
		found_add(fl, names.v[i]);
	for (size_t d = 0; d < job->mig.domains.n; d++) {
		struct xfer_account *za = NULL;
		size_t nz = 0;
		rc = src->end->drv->discover(src, job->mig.domains.v[d], &za, &nz, err);
		if (rc)
			goto out;
		stage_out(ctx, "domain %s: %zu account(s) (system accounts excluded)", job->mig.domains.v[d], nz);
		for (size_t i = 0; i < nz; i++) {
			struct found *f = found_add(fl, za[i].name);
			f->id = za[i].id;
			f->status = za[i].status;
			f->mailhost = za[i].mailhost;
			za[i].id = za[i].status = za[i].mailhost = NULL;
		}
		xfer_accounts_free(za, nz);
	}
out:
	strlist_release(&names);
	return rc;
}

static bool source_unusable(enum zmb_rc r)
{
	return r == ZMB_EAUTH || r == ZMB_ETLS || r == ZMB_ECONNECT;
}

/* Size lookups, spread over a few threads (each its own connection). */
struct sizer {
	struct xfer *x;
	bool homes;     /* look up the home server (and id) instead of the size */
	struct found **todo;
	size_t ntodo;
	atomic_size_t next;
	atomic_bool fatal;
};

static void *sizer_main(void *arg)
{
	struct sizer *z = arg;
	struct xfer_end *end = z->x->src;
	struct xfer_conn *c = end->drv->conn_new(end);
	for (;;) {
		size_t k = atomic_fetch_add(&z->next, 1);
		if (k >= z->ntodo || atomic_load(&z->fatal) || runctl_must_abort(z->x->ctl))
			break;
		struct found *f = z->todo[k];
		if (z->homes) {
			/* the id comes with the home: the size lookup later needs no second request */
			char *id = NULL;
			f->home_rc = end->drv->lookup(c, f->account, &id, &f->home_err);
			if (f->home_rc == ZMB_OK) {
				f->mailhost = end->drv->home(end, f->account);
				if (!f->id)
					f->id = id;
				else
					free(id);
			}
			if (source_unusable(f->home_rc) || f->home_rc == ZMB_EBUSY)
				atomic_store(&z->fatal, true);
			continue;
		}
		char *id = f->id ? xstrdup(f->id) : NULL;
		enum zmb_rc r = ZMB_OK;
		if (!id)
			r = end->drv->lookup(c, f->account, &id, &f->lookup_err);
		if (r == ZMB_OK)
			r = end->drv->size(c, id, &f->size, &f->lookup_err);
		if (r)
			f->size = -1;
		f->lookup_rc = r;
		if (r == ZMB_EAUTH || r == ZMB_ETLS || r == ZMB_ECONNECT || r == ZMB_EBUSY)
			atomic_store(&z->fatal, true);
		free(id);
	}
	end->drv->conn_free(c);
	return NULL;
}

static void ask_sizes(struct xfer *x, struct stage_ctx *ctx, struct found **todo, size_t ntodo,
		      bool homes)
{
	struct sizer z = { .x = x, .homes = homes, .todo = todo, .ntodo = ntodo };
	atomic_init(&z.next, 0);
	atomic_init(&z.fatal, false);
	int nt = x->job->mig.threads > 0 ? x->job->mig.threads : 1;
	if (nt > 16)
		nt = 16;
	if ((size_t)nt > ntodo)
		nt = (int)ntodo;
	pthread_t th[16];
	int started = 0;
	for (int i = 0; i < nt; i++)
		if (pthread_create(&th[i], NULL, sizer_main, &z) == 0)
			started++;
	if (started == 0)
		sizer_main(&z);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (ntodo > 200)
		stage_out(ctx, "%s of %zu account(s) read from the source",
			  homes ? "home mailbox servers" : "mailbox sizes", ntodo);
}

/*
 * Sizes from the source's size listing of a domain (GetQuotaUsage on
 * Zimbra): one request per QUOTA_PAGE accounts instead of one per account,
 * on the main thread's connection, largest mailboxes first.  Used for a
 * domain with at least QUOTA_MIN_ACCOUNTS accounts to size; paging stops
 * once the pages left outnumber the accounts of that domain still without
 * a size (one account of a domain of 10,000 costs one page, not 20).
 * Whatever the listing does not cover (refused, an alias, an account it
 * does not know, a page that failed) is asked per account by ask_sizes().
 */
#define QUOTA_PAGE 500
#define QUOTA_MIN_ACCOUNTS 2

static const char *domain_of(const char *account)
{
	const char *at = strrchr(account, '@');
	return at && at[1] ? at + 1 : NULL;
}

/* struct found * by domain, then by name (bsearch key: a struct found * with only account set) */
static int cmp_found_domain(const void *a, const void *b)
{
	const struct found *x = *(struct found *const *)a, *y = *(struct found *const *)b;
	const char *dx = domain_of(x->account), *dy = domain_of(y->account);
	int c = strcmp(dx ? dx : "", dy ? dy : "");
	return c ? c : strcmp(x->account, y->account);
}

/*
 * Page through one domain's listing; v[0..n) are its accounts to size,
 * sorted by cmp_found_domain.  *requests and *sized count up.  false: the
 * source cannot be used at all (the per-account path will say why).
 */
static bool list_domain_sizes(struct xfer *x, struct xfer_conn *src, const char *dom,
			      struct found **v, size_t n, size_t *requests, size_t *sized)
{
	const struct xfer_driver *drv = src->end->drv;
	size_t left = n;
	long long offset = 0;
	bool usable = true;
	while (!runctl_must_abort(x->ctl)) {
		struct xfer_size *pg = NULL;
		size_t np = 0;
		bool more = false;
		long long total = -1;
		char *e = NULL;
		enum zmb_rc r = drv->domain_sizes(src, dom, offset, QUOTA_PAGE, &pg, &np, &more, &total, &e);
		(*requests)++;
		if (r) {
			log_info(NULL, "domain %s: no size listing from the source (%s); the %zu account(s) "
				 "left are sized one at a time", dom, e ? e : zmb_rc_str(r), left);
			free(e);
			usable = !source_unusable(r);
			break;
		}
		for (size_t i = 0; i < np; i++) {
			struct found key = { .account = xstrlower(pg[i].name) };
			const struct found *kp = &key;
			struct found **hit = bsearch(&kp, v, n, sizeof *v, cmp_found_domain);
			free(key.account);
			if (hit && !(*hit)->listed) {
				(*hit)->size = pg[i].bytes;
				(*hit)->listed = true;
				left--;
			}
		}
		xfer_sizes_free(pg, np);
		offset += (long long)np;
		if (!more || np == 0 || left == 0)
			break;
		long long pages_left = total > offset ? (total - offset + QUOTA_PAGE - 1) / QUOTA_PAGE : 1;
		if (pages_left > (long long)left)
			break;   /* each account's own request is cheaper for the few left */
	}
	*sized += n - left;
	return usable;
}

/* Fill what the listings give; todo keeps (in its order) the accounts still without a size. */
static size_t listed_sizes(struct xfer *x, struct stage_ctx *ctx, struct xfer_conn *src,
			   struct found **todo, size_t ntodo)
{
	if (!src->end->drv->domain_sizes || ntodo < QUOTA_MIN_ACCOUNTS)
		return ntodo;
	struct found **v = xcalloc(ntodo, sizeof *v);
	memcpy(v, todo, ntodo * sizeof *v);
	qsort(v, ntodo, sizeof *v, cmp_found_domain);
	size_t requests = 0, sized = 0;
	bool usable = true;
	for (size_t i = 0, j; i < ntodo && usable; i = j) {
		const char *dom = domain_of(v[i]->account);
		for (j = i + 1; j < ntodo && streq(domain_of(v[j]->account), dom); j++)
			;
		if (dom && j - i >= QUOTA_MIN_ACCOUNTS)
			usable = list_domain_sizes(x, src, dom, v + i, j - i, &requests, &sized);
	}
	free(v);
	size_t k = 0;
	for (size_t i = 0; i < ntodo; i++)
		if (!todo[i]->listed)
			todo[k++] = todo[i];
	log_debug(NULL, "mailbox sizes: %zu of %zu account(s) from %zu listing request(s)", sized,
		  ntodo, requests);
	if (sized > 200)
		stage_out(ctx, "mailbox sizes of %zu account(s) read from the source in %zu request(s)",
			  sized, requests);
	return k;
}

static int cmp_found_name(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	int c = strcmp(x->account, y->account);
	return c ? c : (x->seq < y->seq ? -1 : x->seq > y->seq);
}

static int cmp_found_seq(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Duplicates are dropped by sorting (no quadratic search over 100k names); first listing wins. */
static void unique_accounts(struct found_list *fl)
{
	struct found *f = fl->v;
	size_t n = fl->n, u = 0;
	qsort(f, n, sizeof *f, cmp_found_name);
	for (size_t i = 0; i < n; i++) {
		if (u > 0 && !strcmp(f[u - 1].account, f[i].account)) {
			/* a listed name also found in a domain: the listing's home and id are kept */
			if (!f[u - 1].mailhost) {
				f[u - 1].mailhost = f[i].mailhost;
				f[i].mailhost = NULL;
			}
			if (!f[u - 1].id) {
				f[u - 1].id = f[i].id;
				f[i].id = NULL;
			}
			found_release(&f[i]);
			continue;
		}
		f[u++] = f[i];
	}
	fl->n = n = u;
	qsort(f, n, sizeof *f, cmp_found_seq);
}

/*
 * run --shard I/N: only the accounts of shard I stay (shard.h: FNV-1a 64 of
 * the lower-cased name mod N), before any size is asked or any row written,
 * so that a shard's DB only ever holds its own accounts.
 */
static void keep_shard(struct stage_ctx *ctx, struct found_list *fl)
{
	if (ctx->shard.count == 0 || ctx->shard.by != SHARD_BY_HASH)
		return;
	size_t n = fl->n, k = 0;
	for (size_t i = 0; i < n; i++) {
		struct found *f = &fl->v[i];
		if (shard_has(&ctx->shard, f->account)) {
			fl->v[k++] = *f;
			continue;
		}
		found_release(f);
	}
	fl->n = k;
	stage_out(ctx, "shard %u/%u: %zu of %zu account(s)", ctx->shard.index, ctx->shard.count, k, n);
}

/* ---- run --shard I/N --shard-by server (shard.h) ---- */

/* The home of every account no domain listing gave: one lookup each (GetAccountRequest). */
static enum zmb_rc find_homes(struct xfer *x, struct stage_ctx *ctx, struct found_list *fl, char **err)
{
	const struct job *job = x->job;
	struct found **todo = xcalloc(fl->n ? fl->n : 1, sizeof *todo);
	size_t ntodo = 0;
	for (size_t i = 0; i < fl->n; i++)
		if (!fl->v[i].mailhost)
			todo[ntodo++] = &fl->v[i];
	if (ntodo > 0)
		ask_sizes(x, ctx, todo, ntodo, true);
	free(todo);
	if (runctl_must_abort(x->ctl))
		return ZMB_ECANCELED;
	for (size_t i = 0; i < fl->n; i++) {
		const struct found *f = &fl->v[i];
		if (f->home_rc == ZMB_OK || f->home_rc == ZMB_ENOACCOUNT)
			continue;
		/* a set missing a server would deal the others differently in each shard */
		*err = xasprintf("--shard-by server: the home mailbox server of '%s' on source %s:%d is "
				 "unknown (%s): the shards are not dealt on a partial server list; run "
				 "again", f->account, job->source.host, job->source.port,
				 f->home_err ? f->home_err : zmb_rc_str(f->home_rc));
		return f->home_rc;
	}
	return ZMB_OK;
}

/* Items of a (sorted) not in b, joined by ", "; "none" when there are none. */
static char *set_minus(const struct strlist *a, const struct strlist *b)
{
	struct buf o = BUF_INIT;
	for (size_t i = 0; i < a->n; i++)
		if (!strlist_has(b, a->v[i]))
			buf_addf(&o, "%s%s", o.len ? ", " : "", a->v[i]);
	if (!o.len)
		buf_adds(&o, "none");
	return buf_detach(&o);
}

/* "a,b,c" (the meta's form) into *out. */
static void set_parse(const char *text, struct strlist *out)
{
	char *copy = xstrdup(text);
	for (char *p = copy, *c; p && *p; p = c ? c + 1 : NULL) {
		c = strchr(p, ',');
		if (c)
			*c = '\0';
		if (*p)
			strlist_add(out, p);
	}
	free(copy);
}

/*
 * The servers a by-server shard deals (*set, sorted, lower case): the
 * source installation's mailbox servers (GetAllServersRequest
 * service=mailbox) as the DB recorded them on its first run, so the deal
 * depends neither on the accounts nor on when each shard starts, and never
 * changes under a shard.  First run: asked now and recorded (meta
 * "shard_servers"; a failed or empty answer stops the plan).  Later runs:
 * the recorded set; a server added or gone since is only said (an added
 * server's accounts are shard 0's, in every shard alike).  Accounts are
 * matched by zimbraMailHost against these names (cn), the lookup Zimbra
 * itself makes for an account's home: zm-mailbox account/Account.java:249-251
 * getServer() = get(ServerBy.name, zimbraMailHost).
 */
static enum zmb_rc server_set(struct xfer *x, struct stage_ctx *ctx, struct xfer_conn *src,
			      struct strlist *set, char **err)
{
	struct strlist cur = STRLIST_INIT;
	char *stored = NULL, *lerr = NULL;
	enum zmb_rc rc = src->end->drv->mail_servers(src, &cur, &lerr);
	shard_server_set(&cur);
	if (ctx->st && state_meta_get(ctx->st, "shard_servers", &stored) == ZMB_OK && *stored) {
		set_parse(stored, set);
		if (rc)
			stage_out(ctx, "warning: cannot list the source's mailbox servers now (%s): the "
				  "shard deals the ones its first run recorded", lerr ? lerr : zmb_rc_str(rc));
		char *added = rc ? NULL : set_minus(&cur, set), *gone = rc ? NULL : set_minus(set, &cur);
		if (added && gone && (strcmp(added, "none") || strcmp(gone, "none")))
			stage_out(ctx, "warning: the source's mailbox servers changed since this shard's "
				  "first run (added: %s; gone: %s): the shards keep dealing the recorded "
				  "%s; accounts on an added server are shard 0's", added, gone, stored);
		free(added);
		free(gone);
		rc = ZMB_OK;
	} else if (rc) {
		*err = xasprintf("source %s:%d: cannot list the mailbox servers (GetAllServersRequest) that "
				 "--shard-by server deals: %s", x->job->source.host, x->job->source.port,
				 lerr ? lerr : zmb_rc_str(rc));
	} else if (cur.n == 0) {
		*err = xasprintf("source %s:%d: GetAllServersRequest lists no mailbox server: "
				 "--shard-by server has nothing to deal (use --shard-by hash)",
				 x->job->source.host, x->job->source.port);
		rc = ZMB_EPROTO;
	} else {
		for (size_t i = 0; i < cur.n; i++)
			strlist_add(set, cur.v[i]);
		struct buf now = BUF_INIT;
		for (size_t i = 0; i < set->n; i++)
			buf_addf(&now, "%s%s", i ? "," : "", set->v[i]);
		if (ctx->st && !ctx->dry_run && (rc = state_meta_set(ctx->st, "shard_servers", now.s)))
			*err = xasprintf("cannot record the shard's servers: %s", state_errmsg(ctx->st));
		buf_release(&now);
	}
	free(stored);
	free(lerr);
	strlist_release(&cur);
	return rc;
}

/*
 * run --shard I/N --shard-by server: only the accounts whose home server
 * falls to shard I stay (shard_server_owner over the recorded server set),
 * plus those already in this shard's DB; before any size is asked or any
 * account row written.  The whole listing, with each account's deal, goes
 * to *lst, recorded with the plan (record_plan) for report --merge, which
 * names an account no shard's DB holds.  A mailbox moved to another server stays in the DB that
 * has it and the new server's shard takes it too (report --merge names
 * it): taken twice rather than by no shard, since no shard can see another's
 * DB.
 */
static enum zmb_rc keep_servers(struct xfer *x, struct stage_ctx *ctx, struct xfer_conn *src,
				struct found_list *fl, struct listing *lst, int *exit_code, char **err)
{
	const struct zmb_shard *sh = &ctx->shard;
	if (sh->count == 0 || sh->by != SHARD_BY_SERVER)
		return ZMB_OK;
	if (!x->src->drv->home || !x->src->drv->mail_servers) {
		*err = xasprintf("--shard-by server needs a source whose driver knows each account's "
				 "mailbox server (Zimbra/Carbonio); the '%s' driver does not: use "
				 "--shard-by hash", x->src->drv->name);
		*exit_code = EXIT_CONFIG;
		return ZMB_ECONFIG;
	}
	enum zmb_rc rc = find_homes(x, ctx, fl, err);
	if (rc)
		return rc;
	struct strlist set = STRLIST_INIT;
	if ((rc = server_set(x, ctx, src, &set, err)) != ZMB_OK) {
		strlist_release(&set);
		return rc;
	}
	const char *const *sv = (const char *const *)set.v;
	size_t *per = xcalloc(set.n ? set.n : 1, sizeof *per), unknown = 0, n = fl->n, k = 0;
	lst->active = true;
	lst->v = xcalloc(n ? n : 1, sizeof *lst->v);
	lst->n = n;
	for (size_t i = 0; i < n; i++) {
		lst->v[i].account = xstrdup(fl->v[i].account);
		lst->v[i].home = fl->v[i].mailhost ? xstrdup(fl->v[i].mailhost) : NULL;
		lst->v[i].dealt = shard_server_owner(sv, set.n, fl->v[i].mailhost, sh->count);
	}
	for (size_t i = 0; i < n; i++) {
		struct found *f = &fl->v[i];
		unsigned owner = lst->v[i].dealt;
		struct account_row row;
		memset(&row, 0, sizeof row);
		bool known = owner != sh->index && ctx->st &&
			     state_account_get(ctx->st, f->account, &row) == ZMB_OK;
		state_account_release(&row);
		if (owner == sh->index || known) {
			if (known)
				stage_out(ctx, "warning: %s is in this shard's state DB but its home server is "
					  "now %s (shard %u/%u): it stays here; that shard may take it too",
					  f->account, f->mailhost ? f->mailhost : "unknown", owner, sh->count);
			for (size_t j = 0; f->mailhost && j < set.n; j++)
				if (!strcasecmp(sv[j], f->mailhost))
					per[j]++;
			unknown += f->mailhost == NULL || !strlist_has_ci(&set, f->mailhost);
			fl->v[k++] = *f;
			continue;
		}
		found_release(f);
	}
	fl->n = k;
	size_t mine = 0;
	for (size_t j = 0; j < set.n; j++)
		if (shard_server_owner(sv, set.n, sv[j], sh->count) == sh->index) {
			mine++;
			stage_out(ctx, "shard %u/%u by server: %s %zu account(s)", sh->index, sh->count,
				  sv[j], per[j]);
		}
	if (unknown)
		stage_out(ctx, "shard %u/%u by server: %zu account(s) whose home server is unknown or "
			  "not one of the dealt mailbox servers (shard 0's in every shard; an account the "
			  "source does not have fails as usual)", sh->index, sh->count, unknown);
	if (!mine)
		stage_out(ctx, "shard %u/%u by server: the source has %zu mailbox server(s), none falls "
			  "to this shard%s", sh->index, sh->count, set.n, k ? "" : ": nothing to do");
	stage_out(ctx, "shard %u/%u: %zu of %zu account(s)", sh->index, sh->count, k, n);
	free(per);
	strlist_release(&set);
	return ZMB_OK;
}

/*
 * Sizes are asked only for accounts the DB does not know yet (or knows
 * without a size) and that have not started, so a resumed run of 10k
 * accounts costs no 10k SOAP calls: first from each domain's size listing,
 * then one request per account for the rest.
 */
static void known_sizes(struct xfer *x, struct stage_ctx *ctx, struct xfer_conn *src, struct state *st,
			struct found_list *fl)
{
	struct found *f = fl->v;
	size_t n = fl->n, ntodo = 0;
	struct found **todo = xcalloc(n ? n : 1, sizeof *todo);
	for (size_t i = 0; i < n; i++) {
		struct account_row row;
		memset(&row, 0, sizeof row);
		bool known = st && state_account_get(st, f[i].account, &row) == ZMB_OK;
		f[i].size = known ? row.size : -1;
		f[i].need_size = !known || (row.size < 0 && row.state == ACCT_PENDING);
		state_account_release(&row);
		if (f[i].need_size)
			todo[ntodo++] = &f[i];
	}
	ntodo = listed_sizes(x, ctx, src, todo, ntodo);
	if (ntodo > 0)
		ask_sizes(x, ctx, todo, ntodo, false);
	free(todo);
}

/* A source that refuses us (or throttled us past the bound) is fatal; a
 * missing account or an unknown size is not. */
static enum zmb_rc judge_lookups(struct xfer *x, struct stage_ctx *ctx, struct found_list *fl, char **err)
{
	const struct job *job = x->job;
	for (size_t i = 0; i < fl->n; i++) {
		const struct found *f = &fl->v[i];
		enum zmb_rc r = f->lookup_rc;
		if (r == ZMB_ENOACCOUNT) {
			stage_out(ctx, "warning: source account '%s' does not exist on %s:%d; it will fail",
				  f->account, job->source.host, job->source.port);
		} else if (r == ZMB_EAUTH || r == ZMB_ETLS || r == ZMB_ECONNECT || r == ZMB_EBUSY) {
			*err = xasprintf("source %s:%d: %s", job->source.host, job->source.port,
					 f->lookup_err ? f->lookup_err : zmb_rc_str(r));
			return r;
		} else if (r) {
			log_warn(f->account, "mailbox size unknown: %s",
				 f->lookup_err ? f->lookup_err : zmb_rc_str(r));
		}
	}
	return ZMB_OK;
}

/* One transaction for every row (st NULL: dry run, print only). */
/*
 * The source's zimbraAccountStatus, recorded with the account; a status the
 * job lists in migration.skip_status leaves a pending account out (skipped,
 * with the reason).  The statuses themselves do not stop an admin import
 * (UserServlet.checkTargetAccountStatus lets an admin token through for all
 * but maintenance): the workers judge maintenance.
 */
static enum zmb_rc record_status(struct xfer *x, struct stage_ctx *ctx, struct state *st,
				 const struct found *f)
{
	enum zmb_rc rc;
	if (!st || !f->status)
		return ZMB_OK;
	if ((rc = state_account_source_status(st, f->account, f->status)))
		return rc;
	if (!strlist_has_ci(&x->job->mig.skip_status, f->status))
		return ZMB_OK;
	struct account_row row;
	if ((rc = state_account_get(st, f->account, &row)))
		return rc;
	if (row.state == ACCT_PENDING) {
		char *why = xasprintf("skipped: the source account's zimbraAccountStatus is '%s' "
				      "(migration.skip_status)", f->status);
		struct acct_update u = ACCT_UPDATE_INIT;
		u.error = why;
		u.error_class = "skipped";
		u.event = why;
		rc = state_transition(st, ctx->run_id, row.id, ACCT_PENDING, ACCT_SKIPPED, &u);
		if (rc == ZMB_OK)
			stage_out(ctx, "%s: %s", f->account, why);
		free(why);
	}
	state_account_release(&row);
	return rc;
}

static enum zmb_rc record_plan(struct xfer *x, struct stage_ctx *ctx, struct state *st,
			       const struct found_list *fl, const struct listing *lst,
			       long long *total_size, char **err)
{
	const struct job *job = x->job;
	const struct found *f = fl->v;
	long long unknown_sizes = 0;
	enum zmb_rc rc;

	if (st && (rc = state_begin(st)))
		return rc;
	for (size_t i = 0; i < fl->n; i++) {
		long long size = f[i].size;
		if (size > 0)
			*total_size += size;
		else if (size < 0)
			unknown_sizes++;
		char *target = job_map_account(job, f[i].account);
		if (st && (rc = state_account_upsert(st, f[i].account, target, (int64_t)f[i].seq, size))) {
			*err = xasprintf("cannot record account '%s': %s", f[i].account, state_errmsg(st));
			free(target);
			state_rollback(st);
			return rc;
		}
		if ((rc = record_status(x, ctx, st, &f[i]))) {
			*err = xasprintf("cannot record the status of '%s': %s", f[i].account,
					 state_errmsg(st));
			free(target);
			state_rollback(st);
			return rc;
		}
		if (ctx->dry_run)
			stage_out(ctx, "  %-40s -> %-40s %12lld bytes", f[i].account, target, size);
		free(target);
	}
	if (st && lst->active && (rc = state_shard_deal(st, lst->v, lst->n))) {
		*err = xasprintf("cannot record the shard's listing: %s", state_errmsg(st));
		state_rollback(st);
		return rc;
	}
	if (st && (rc = state_commit(st))) {
		*err = xasprintf("cannot commit discovery: %s", state_errmsg(st));
		state_rollback(st);
		return rc;
	}
	stage_out(ctx, "%zu account(s) planned, %lld bytes known%s", fl->n, *total_size,
		  unknown_sizes ? " (some sizes unknown)" : "");
	return ZMB_OK;
}

enum zmb_rc migrate_plan(struct xfer *x, struct stage_ctx *ctx, struct xfer_conn *src,
			 long long *total, int *exit_code, char **err)
{
	struct state *st = ctx->dry_run ? NULL : ctx->st;
	struct found_list fl = { NULL, 0, 0 };
	struct listing lst = { false, NULL, 0 };
	*total = 0;
	enum zmb_rc rc = discover(x, ctx, src, &fl, err);
	if (rc == ZMB_OK) {
		unique_accounts(&fl);
		keep_shard(ctx, &fl);
		rc = keep_servers(x, ctx, src, &fl, &lst, exit_code, err);
	}
	if (rc == ZMB_OK) {
		known_sizes(x, ctx, src, st, &fl);
		rc = judge_lookups(x, ctx, &fl, err);
	}
	if (rc == ZMB_OK)
		rc = record_plan(x, ctx, st, &fl, &lst, total, err);
	found_free(&fl);
	listing_free(&lst);
	return rc;
}
