/*
 * state_merge.c - several state DBs of one job (its shards) as one
 * temporary state DB, so that every report format reads a merged job the
 * way it reads one DB (state.h: state_merge_open).
 *
 * How: SQLite's private temporary database (sqlite3_open_v2 of "", a file
 * in the temp directory, deleted on close) gets the current schema; each
 * shard DB is attached read-only ("file:...?mode=ro") in turn and read
 * inside one transaction, so what is copied of it is one snapshot even
 * while its shard writes (WAL).  Its ids are offset by db << 32 (db = its
 * position on the command line), so they stay unique and every reference
 * (events, chunks, cutover, owner_run, stages.run_id, provision events)
 * follows its row without a map; `id >> 32` tells which DB a row came
 * from.  Accounts keep their seq (a shard keeps the position the whole
 * listing gives), which is the reports' listing order.  Runs keep their
 * start times; the report queries order a merged DB's runs and events by
 * time, not by id (query_report.c).
 * Rows that are per job rather than per account are combined:
 *   stages    one row per name: failed if a shard failed it, else running,
 *             else pending, else done; attempts the most of any shard; the
 *             shards' distinct errors joined with "; "
 *   servers   one row per role: the counters summed, rate and concurrency
 *             limits summed (the load the shards put on that server
 *             together), host and times of the latest shard
 *   provision every shard runs the provision stage whole: one row per
 *             (stage, kind, name), the one updated last, with its events
 * An account found in two DBs is kept from the first DB given; each other
 * copy is a row of merge_duplicates (account, db, also_in: the paths) and
 * its rows are left out.  An account a by-server shard's last listing
 * (shard_deal) dealt to a merged shard but that no DB holds is a row of
 * merge_untaken (account, shard "I/N", home, listed_by, seen_at) when that
 * shard's own last listing is not newer (MERGE_UNTAKEN): it has not run
 * since the account appeared on its server (created, or moved there after
 * it ran), and nothing has migrated it.  merge_sources (db, path, shard,
 * accounts, planned_bytes, bytes_moved, ..., listed_at) and merge_counts
 * (db, state, accounts) hold the per-DB figures, counted in the same
 * snapshot.  Memory: SQLite's page
 * cache only; the rows go from file to file in SQL.
 */
#include "state_int.h"

#include <stdlib.h>
#include <string.h>

#define MERGE_TABLES \
	"CREATE TABLE merge_sources (db INTEGER PRIMARY KEY, path TEXT NOT NULL, shard TEXT, " \
	"  accounts INTEGER NOT NULL DEFAULT 0, planned_bytes INTEGER NOT NULL DEFAULT 0, " \
	"  bytes_moved INTEGER NOT NULL DEFAULT 0, shard_by TEXT, shard_servers TEXT, listed_at REAL);" \
	"CREATE TABLE merge_counts (db INTEGER NOT NULL, state TEXT NOT NULL, accounts INTEGER NOT NULL);" \
	"CREATE TABLE merge_duplicates (account TEXT NOT NULL, db TEXT NOT NULL, also_in TEXT NOT NULL);" \
	"CREATE TEMP TABLE mlisted (account TEXT PRIMARY KEY, shard TEXT, home TEXT, seen_at REAL, " \
	"  db INTEGER) WITHOUT ROWID;" \
	"CREATE TABLE merge_untaken (account TEXT NOT NULL, shard TEXT NOT NULL, home TEXT, " \
	"  listed_by TEXT NOT NULL, seen_at REAL);" \
	"CREATE TEMP TABLE mstages AS SELECT 0 AS db, * FROM main.stages WHERE 0;" \
	"CREATE TEMP TABLE mservers AS SELECT 0 AS db, * FROM main.servers WHERE 0;"

/*
 * After every DB: the accounts a by-server shard listed (the newest
 * sighting of any DB: shard_deal, schema 12) that no DB holds, dealt to a
 * shard whose DB is merged and whose own last listing is not newer than
 * that sighting (it has not run since the account appeared on its server).
 * A shard not given is warned about as such; one that has not listed yet
 * (starting, or a DB from before schema 12) is not blamed; an account that
 * its shard's newer listing did not have left the job.
 */
#define MERGE_UNTAKEN \
	"INSERT INTO merge_untaken (account, shard, home, listed_by, seen_at) " \
	"  SELECT DISTINCT l.account, l.shard, l.home, s.path, l.seen_at " \
	"  FROM temp.mlisted l JOIN merge_sources s ON s.db = l.db " \
	"  JOIN merge_sources t ON t.shard = l.shard " \
	"  WHERE t.listed_at IS NOT NULL AND t.listed_at <= l.seen_at " \
	"  AND NOT EXISTS (SELECT 1 FROM main.accounts a WHERE a.account = l.account) " \
	"  ORDER BY l.account;"

/* After every DB: the rows per job, combined (an older DB's missing columns are NULL here). */
#define MERGE_COMBINE \
	"INSERT INTO main.stages (name, type, position, state, attempts, started_at, ended_at, output, " \
	"  error, run_id) SELECT name, min(type), min(position), " \
	"  CASE WHEN sum(state = 'failed') > 0 THEN 'failed' WHEN sum(state = 'running') > 0 THEN 'running' " \
	"  WHEN sum(state = 'pending') > 0 THEN 'pending' ELSE 'done' END, max(coalesce(attempts, 0)), " \
	"  min(started_at), CASE WHEN sum(ended_at IS NULL) > 0 THEN NULL ELSE max(ended_at) END, " \
	"  (SELECT output FROM mstages m2 WHERE m2.name = mstages.name AND m2.output IS NOT NULL " \
	"   ORDER BY m2.db LIMIT 1), " \
	"  (SELECT group_concat(error, '; ') FROM (SELECT DISTINCT error FROM mstages m3 " \
	"   WHERE m3.name = mstages.name AND m3.error IS NOT NULL ORDER BY m3.error)), max(run_id) " \
	"  FROM mstages GROUP BY name;" \
	"INSERT INTO main.servers (role, host, auth_requests, token_refreshes, auth_failures, last_auth_at, " \
	"  updated_at, requests, throttled, throttle_wait_seconds, rate_limit, concurrency_limit) " \
	"  SELECT role, (SELECT host FROM mservers m2 WHERE m2.role = mservers.role " \
	"  ORDER BY m2.updated_at DESC, m2.db LIMIT 1), total(auth_requests), total(token_refreshes), " \
	"  total(auth_failures), max(last_auth_at), coalesce(max(updated_at), 0), total(requests), " \
	"  total(throttled), total(throttle_wait_seconds), sum(rate_limit), sum(concurrency_limit) " \
	"  FROM mservers GROUP BY role;" \
	"DELETE FROM main.provision_events WHERE object_id NOT IN (SELECT id FROM main.provision_objects);"

/* Column overrides of one table's copy: expr NULL = leave the column out. */
struct col_expr {
	const char *col, *expr;
};

struct copy_spec {
	const char *table;            /* in the attached DB "m" */
	const char *dest;             /* into; its columns are the ones copied */
	const struct col_expr *over;  /* NULL-terminated by col */
	const char *joins, *where, *order;
	const char *verb;             /* NULL: "INSERT" */
};

static bool has_table(struct state *st, const char *table)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_prepare(st, "SELECT 1 FROM m.sqlite_master WHERE type = 'table' AND name = ?1",
				     &rc);
	bool yes = false;
	if (s) {
		sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
		yes = sqlite3_step(s) == SQLITE_ROW;
	}
	sqlite3_finalize(s);
	return yes;
}

/* Is `col` a column of m.table? */
static bool has_col(struct state *st, const char *table, const char *col)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_prepare(st, "SELECT 1 FROM pragma_table_info(?1, 'm') WHERE name = ?2", &rc);
	bool yes = false;
	if (s) {
		sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, col, -1, SQLITE_STATIC);
		yes = sqlite3_step(s) == SQLITE_ROW;
	}
	sqlite3_finalize(s);
	return yes;
}

/*
 * INSERT INTO dest (cols) SELECT exprs FROM m.table x joins WHERE ... ORDER BY ...
 * over the columns of dest that m.table has too (an older shard DB lacks
 * the newer columns: they keep their defaults), with the overrides.
 */
static enum zmb_rc copy_rows(struct state *st, const struct copy_spec *c)
{
	enum zmb_rc rc = ZMB_OK;
	struct buf cols = BUF_INIT, exprs = BUF_INIT;
	const char *dot = strchr(c->dest, '.');
	char *schema = dot ? xstrndup(c->dest, (size_t)(dot - c->dest)) : xstrdup("main");
	char *sql = xstrdup("SELECT name FROM pragma_table_info(?1, ?2) ORDER BY cid");
	sqlite3_stmt *s = NULL;

	if (!has_table(st, c->table))
		goto out;
	if (!(s = st_prepare(st, sql, &rc)))
		goto out;
	sqlite3_bind_text(s, 1, dot ? dot + 1 : c->dest, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, schema, -1, SQLITE_STATIC);
	int src;
	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		const char *col = (const char *)sqlite3_column_text(s, 0);
		const char *expr = NULL;
		bool over = false;
		for (const struct col_expr *o = c->over; o && o->col; o++)
			if (!strcmp(o->col, col)) {
				over = true;
				expr = o->expr;
			}
		if (over && !expr)
			continue;
		if (!over && !has_col(st, c->table, col))
			continue;
		buf_addf(&cols, "%s%s", cols.len ? ", " : "", col);
		if (over)
			buf_addf(&exprs, "%s%s", exprs.len ? ", " : "", expr);
		else
			buf_addf(&exprs, "%sx.%s", exprs.len ? ", " : "", col);
	}
	if (src != SQLITE_DONE) {
		rc = st_db_fail(st, src, "read the columns");
		goto out;
	}
	free(sql);
	sql = xasprintf("%s INTO %s (%s) SELECT %s FROM m.%s x %s %s%s %s%s", c->verb ? c->verb : "INSERT",
			c->dest, cols.s,
			exprs.s, c->table, c->joins ? c->joins : "", c->where ? "WHERE " : "",
			c->where ? c->where : "", c->order ? "ORDER BY " : "", c->order ? c->order : "");
	char *what = xasprintf("merge %s", c->table);
	rc = st_exec_sql(st, sql, what);
	free(what);
out:
	sqlite3_finalize(s);
	free(sql);
	free(schema);
	buf_release(&cols);
	buf_release(&exprs);
	return rc;
}

/* "file:" URI of path, read-only (RFC 3986 escapes for the bytes URI parsing would take). */
static char *ro_uri(const char *path)
{
	struct buf b = BUF_INIT;
	buf_adds(&b, path[0] == '/' ? "file://" : "file:");
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (*p == '%' || *p == '?' || *p == '#' || *p <= ' ' || *p >= 0x7f)
			buf_addf(&b, "%%%02X", *p);
		else
			buf_add(&b, p, 1);
	}
	buf_adds(&b, "?mode=ro");
	return buf_detach(&b);
}

static enum zmb_rc attach(struct state *st, const char *path)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_prepare(st, "ATTACH DATABASE ?1 AS m", &rc);
	if (!s)
		return rc;
	char *uri = ro_uri(path);
	sqlite3_bind_text(s, 1, uri, -1, SQLITE_TRANSIENT);
	int src = sqlite3_step(s);
	sqlite3_finalize(s);
	free(uri);
	if (src != SQLITE_DONE) {
		st_set_err(st, xasprintf("cannot open %s: %s", path, sqlite3_errmsg(st->db)));
		return ZMB_ESTATE;
	}
	return ZMB_OK;
}

static void detach(struct state *st)
{
	sqlite3_exec(st->db, "DETACH DATABASE m", NULL, NULL, NULL);
}

/* m's meta value of key (NULL when absent), a new string. */
static char *m_meta(struct state *st, const char *key)
{
	enum zmb_rc rc;
	char *v = NULL;
	if (!has_table(st, "meta"))
		return NULL;
	sqlite3_stmt *s = st_prepare(st, "SELECT value FROM m.meta WHERE key = ?1", &rc);
	if (s) {
		sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW)
			v = st_col_text(s, 0);
	}
	sqlite3_finalize(s);
	return v;
}

/* DB i: a zmbatch state DB of the same job?  Its per-DB figures. */
static enum zmb_rc read_source(struct state *st, int i, const char *path, char **first_ident,
			       const char **first_path)
{
	enum zmb_rc rc;
	sqlite3_stmt *s = st_prepare(st, "PRAGMA m.user_version", &rc);
	int v = 0;
	if (!s)
		return rc;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (v < 1 || !has_table(st, "accounts") || !has_table(st, "runs")) {
		st_set_err(st, xasprintf("%s is not a zmbatch state database (schema version %d)", path, v));
		return ZMB_ESTATE;
	}
	if (v > state_schema_version()) {
		st_set_err(st, xasprintf("%s has schema version %d, newer than this zmbatch knows (%d): "
					 "use the newer zmbatch to merge it", path, v, state_schema_version()));
		return ZMB_ESTATE;
	}
	char *ident = m_meta(st, "job_identity"), *shard = m_meta(st, "shard");
	char *by = m_meta(st, "shard_by"), *servers = m_meta(st, "shard_servers");
	rc = ZMB_OK;
	if (ident && !*first_ident) {
		*first_ident = ident;
		*first_path = path;
		ident = NULL;
	} else if (ident && strcmp(ident, *first_ident) != 0) {
		st_set_err(st, xasprintf("%s belongs to job '%s', %s to job '%s': only the shard DBs of "
					 "one job merge", path, ident, *first_path, *first_ident));
		rc = ZMB_ECONFIG;
	}
	if (rc == ZMB_OK) {
		char *sql = sqlite3_mprintf(
			"INSERT INTO merge_sources (db, path, shard, accounts, planned_bytes, bytes_moved, "
			"shard_by, shard_servers) SELECT %d, %Q, %Q, count(*), "
			"total(CASE WHEN size > 0 THEN size ELSE 0 END), total(bytes), %Q, %Q FROM m.accounts;"
			"INSERT INTO merge_counts (db, state, accounts) SELECT %d, state, count(*) "
			"FROM m.accounts GROUP BY state;",
			i, path, shard && *shard ? shard : NULL, by, servers, i);
		rc = st_exec_sql(st, sql, "merge: count the accounts");
		sqlite3_free(sql);
	}
	free(ident);
	free(shard);
	free(by);
	free(servers);
	return rc;
}

/*
 * DB i's rows, ids offset by i << 32.  An account the merged DB has already
 * (from an earlier DB) is a duplicate: named, and its rows left out.
 */
static enum zmb_rc copy_source(struct state *st, int i, const char *path)
{
	long long off = (long long)i << 32;
	enum zmb_rc rc;
	char id[64], owner[64], run[64], acc[64], obj[64], dbv[16], kept[200], obj_kept[200];
	snprintf(id, sizeof id, "x.id + %lld", off);
	snprintf(owner, sizeof owner, "x.owner_run + %lld", off);
	snprintf(run, sizeof run, "x.run_id + %lld", off);
	snprintf(acc, sizeof acc, "x.account_id + %lld", off);
	snprintf(obj, sizeof obj, "x.object_id + %lld", off);
	snprintf(dbv, sizeof dbv, "%d", i);
	snprintf(kept, sizeof kept, "EXISTS (SELECT 1 FROM main.accounts a WHERE a.id = x.account_id + %lld)",
		 off);
	snprintf(obj_kept, sizeof obj_kept, "EXISTS (SELECT 1 FROM main.provision_objects o "
		 "WHERE o.id = x.object_id + %lld)", off);
	char *ev_where = xasprintf("x.account_id IS NULL OR %s", kept);

	/* duplicates first, while only the earlier DBs' accounts are there */
	char *sql = sqlite3_mprintf(
		"INSERT INTO merge_duplicates (account, db, also_in) SELECT x.account, s.path, %Q "
		"FROM m.accounts x JOIN main.accounts a ON a.account = x.account "
		"JOIN merge_sources s ON s.db = (a.id >> 32) ORDER BY x.account", path);
	rc = st_exec_sql(st, sql, "merge: find the duplicates");
	sqlite3_free(sql);
	/* a provision object newer here replaces the earlier DB's (and its events go) */
	if (rc == ZMB_OK && has_table(st, "provision_objects"))
		rc = st_exec_sql(st, "DELETE FROM main.provision_objects WHERE EXISTS (SELECT 1 FROM "
				 "m.provision_objects x WHERE x.stage = provision_objects.stage AND "
				 "x.kind = provision_objects.kind AND x.name = provision_objects.name AND "
				 "coalesce(x.updated_at, 0) > coalesce(provision_objects.updated_at, 0))",
				 "merge: newer provision objects");

	/* the listing of a by-server shard, each deal as a shard label "I/N" (this DB's N):
	 * the newest sighting of each account wins */
	if (rc == ZMB_OK && has_table(st, "shard_deal")) {
		sql = sqlite3_mprintf(
			"INSERT INTO temp.mlisted (account, shard, home, seen_at, db) SELECT x.account, "
			"x.shard || substr(s.shard, instr(s.shard, '/')), x.home, x.seen_at, %d "
			"FROM m.shard_deal x JOIN merge_sources s ON s.db = %d WHERE instr(s.shard, '/') > 0 "
			"ON CONFLICT (account) DO UPDATE SET shard = excluded.shard, home = excluded.home, "
			"seen_at = excluded.seen_at, db = excluded.db WHERE excluded.seen_at > mlisted.seen_at",
			i, i);
		rc = st_exec_sql(st, sql, "merge: read the shard's listing");
		sqlite3_free(sql);
		if (rc == ZMB_OK) {
			sql = sqlite3_mprintf("UPDATE merge_sources SET listed_at = (SELECT max(seen_at) "
					      "FROM m.shard_deal) WHERE db = %d", i);
			rc = st_exec_sql(st, sql, "merge: when the shard listed");
			sqlite3_free(sql);
		}
	}

	const struct col_expr runs_o[] = { { "id", id }, { NULL, NULL } };
	const struct col_expr acc_o[] = { { "id", id }, { "owner_run", owner }, { NULL, NULL } };
	const struct col_expr ev_o[] = { { "id", NULL }, { "run_id", run }, { "account_id", acc }, { NULL, NULL } };
	const struct col_expr chunk_o[] = { { "account_id", acc }, { NULL, NULL } };
	const struct col_expr cut_o[] = { { "account_id", acc }, { "run_id", run }, { NULL, NULL } };
	const struct col_expr stage_o[] = { { "db", dbv }, { "run_id", run }, { NULL, NULL } };
	const struct col_expr serv_o[] = { { "db", dbv }, { NULL, NULL } };
	const struct col_expr po_o[] = { { "id", id }, { NULL, NULL } };
	const struct col_expr pe_o[] = { { "id", NULL }, { "object_id", obj }, { "run_id", run }, { NULL, NULL } };
	const struct copy_spec specs[] = {
		{ "runs", "main.runs", runs_o, NULL, NULL, NULL, NULL },
		{ "accounts", "main.accounts", acc_o, NULL,
		  "NOT EXISTS (SELECT 1 FROM main.accounts a WHERE a.account = x.account)", NULL, NULL },
		{ "events", "main.events", ev_o, NULL, ev_where, "x.id", NULL },
		{ "chunks", "main.chunks", chunk_o, NULL, kept, NULL, NULL },
		{ "cutover", "main.cutover", cut_o, NULL, kept, NULL, NULL },
		{ "stages", "temp.mstages", stage_o, NULL, NULL, NULL, NULL },
		{ "servers", "temp.mservers", serv_o, NULL, NULL, NULL, NULL },
		{ "provision_objects", "main.provision_objects", po_o, NULL, NULL, NULL, "INSERT OR IGNORE" },
		{ "provision_events", "main.provision_events", pe_o, NULL, obj_kept, "x.id", NULL },
	};
	for (size_t k = 0; k < sizeof specs / sizeof specs[0] && rc == ZMB_OK; k++)
		rc = copy_rows(st, &specs[k]);
	free(ev_where);
	return rc;
}

/* meta of the merged DB: the job's name and identity, its oldest created_at. */
static enum zmb_rc merged_meta(struct state *st, const char *ident, const char *name,
			       const char *created)
{
	enum zmb_rc rc = ZMB_OK;
	if (ident)
		rc = state_meta_set(st, "job_identity", ident);
	if (rc == ZMB_OK && name)
		rc = state_meta_set(st, "job_name", name);
	if (rc == ZMB_OK && created)
		rc = state_meta_set(st, "created_at", created);
	return rc;
}

enum zmb_rc state_merge_open(const char *const *paths, size_t n, struct state **out, char **err)
{
	struct state *st = xcalloc(1, sizeof *st);
	enum zmb_rc rc = ZMB_OK;
	char *first_ident = NULL, *name = NULL, *created = NULL;
	const char *first_path = NULL;

	*out = NULL;
	st->path = xstrdup("(merged)");
	int src = sqlite3_open_v2("", &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				  SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
	if (src != SQLITE_OK) {
		rc = st_db_fail(st, src, "open a temporary database");
		goto out;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	/* a temporary file nobody else reads: no journal needed, and the
	 * copies are not crash-safe by design (a failed merge is redone) */
	if ((rc = st_exec_sql(st, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF",
			      "set up the temporary database")))
		goto out;
	if ((rc = st_migrate(st)) || (rc = st_exec_sql(st, MERGE_TABLES, "merge tables")))
		goto out;
	for (size_t i = 0; i < n && rc == ZMB_OK; i++) {
		if ((rc = attach(st, paths[i])))
			break;
		/* one transaction: one snapshot of the DB, even while its shard writes */
		if ((rc = st_exec_sql(st, "BEGIN", "merge: begin")) == ZMB_OK) {
			rc = read_source(st, (int)i, paths[i], &first_ident, &first_path);
			if (rc == ZMB_OK)
				rc = copy_source(st, (int)i, paths[i]);
			if (rc == ZMB_OK) {
				char *c = m_meta(st, "created_at");
				if (!name)
					name = m_meta(st, "job_name");
				if (c && (!created || strcmp(c, created) < 0)) {
					free(created);
					created = c;
					c = NULL;
				}
				free(c);
				rc = st_exec_sql(st, "COMMIT", "merge: commit");
			} else {
				sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			}
		}
		if (rc && !strstr(st->err ? st->err : "", paths[i]))
			st_set_err(st, xasprintf("%s: %s", paths[i], st->err ? st->err : zmb_rc_str(rc)));
		detach(st);
	}
	if (rc == ZMB_OK)
		rc = st_exec_sql(st, MERGE_COMBINE, "merge: combine stages and servers");
	if (rc == ZMB_OK)
		rc = st_exec_sql(st, MERGE_UNTAKEN, "merge: find the accounts no DB holds");
	if (rc == ZMB_OK)
		rc = merged_meta(st, first_ident, name, created);
	if (rc == ZMB_OK)
		st->readonly = true;   /* the commands only read it */
out:
	free(first_ident);
	free(name);
	free(created);
	if (rc) {
		if (err)
			*err = xstrdup(st->err ? st->err : zmb_rc_str(rc));
		state_close(st);
		return rc;
	}
	*out = st;
	return ZMB_OK;
}
