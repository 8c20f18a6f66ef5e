/*
 * state_open.c - opening the state database: the file (0600), WAL mode,
 * the schema scripts applied by PRAGMA user_version, the job identity
 * check, and the meta table (see state.h).
 */
#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern const char *const zmb_schema[];
extern const char *const zmb_schema_names[];

/*
 * Switch the database to WAL.  A new file starts in rollback-journal mode,
 * and the switch reads page 1 and then upgrades to a write lock: when another
 * connection (a thread or process creating the same file) holds that lock,
 * SQLite returns SQLITE_BUSY at once instead of calling the busy handler,
 * since waiting while holding the read lock could deadlock.  The statement
 * ends its read lock when it is reset, so retrying it here is safe; it is
 * retried with a short jittered sleep for as long as the busy timeout.
 */
static enum zmb_rc set_wal(struct state *st)
{
	sqlite3_stmt *s = NULL;
	enum zmb_rc rc = ZMB_OK;
	double deadline = mono_now() + BUSY_TIMEOUT_MS / 1000.0;
	unsigned seed = (unsigned)(uintptr_t)st ^ (unsigned)getpid();
	int src = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);

	while (src == SQLITE_OK) {
		src = sqlite3_step(s);
		if ((src & 0xff) != SQLITE_BUSY || mono_now() >= deadline)
			break;
		sqlite3_reset(s);
		src = SQLITE_OK;
		usleep(2000 + (unsigned)rand_r(&seed) % 8000);
	}
	if (src == SQLITE_ROW && sqlite3_stricmp((const char *)sqlite3_column_text(s, 0), "wal") != 0) {
		st_set_err(st, xasprintf("%s: cannot switch to WAL mode (journal mode is '%s')",
					 st->path, sqlite3_column_text(s, 0)));
		rc = ZMB_ESTATE;
	} else if (src != SQLITE_ROW) {
		rc = st_db_fail(st, src, "set WAL mode");
	}
	sqlite3_finalize(s);
	return rc;
}


/* ---- schema ---- */

static int schema_number(const char *name)
{
	return name ? atoi(name) : 0;
}

int state_schema_version(void)
{
	int v = 0;
	for (int i = 0; zmb_schema_names[i]; i++)
		if (schema_number(zmb_schema_names[i]) > v)
			v = schema_number(zmb_schema_names[i]);
	return v;
}

static enum zmb_rc read_user_version(struct state *st, int *v)
{
	sqlite3_stmt *s = NULL;
	int src = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
	if (src == SQLITE_OK)
		src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		*v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return src == SQLITE_ROW ? ZMB_OK : st_db_fail(st, src, "read schema version");
}

static enum zmb_rc check_not_newer(struct state *st, int v)
{
	if (v <= state_schema_version())
		return ZMB_OK;
	st_set_err(st, xasprintf("%s: state database has schema version %d but this zmbatch %s "
				 "knows only up to %d: use a newer zmbatch", st->path, v,
				 ZMB_VERSION, state_schema_version()));
	return ZMB_ESTATE;
}

/*
 * Apply every script numbered above PRAGMA user_version, each in its own
 * transaction that also bumps user_version.  The version is re-read inside
 * the write transaction, so workers opening the same new DB at once apply
 * each script exactly once.
 */
enum zmb_rc st_migrate(struct state *st)
{
	enum zmb_rc rc;
	int cur = 0;

	/* the common case, up to date: no write lock at all */
	if ((rc = read_user_version(st, &cur)) != ZMB_OK)
		return rc;
	if (cur >= state_schema_version())
		return check_not_newer(st, cur);
	for (int i = 0; zmb_schema[i] && rc == ZMB_OK; i++) {
		int n = schema_number(zmb_schema_names[i]), v = 0;
		bool own;
		if ((rc = tx_begin(st, &own)) != ZMB_OK)
			break;
		rc = read_user_version(st, &v);
		if (rc == ZMB_OK)
			rc = check_not_newer(st, v);
		if (rc == ZMB_OK && v < n) {
			char *what = xasprintf("apply schema %s", zmb_schema_names[i]);
			rc = st_exec_sql(st, zmb_schema[i], what);
			free(what);
			if (rc == ZMB_OK) {
				char *pragma = xasprintf("PRAGMA user_version = %d", n);
				rc = st_exec_sql(st, pragma, "set schema version");
				free(pragma);
			}
			rc = tx_end(st, own, rc, "schema migration");
		} else {
			tx_rollback(st);
		}
	}
	return rc;
}

/* Store the job identity on first write-open; compare it afterwards. */
static enum zmb_rc check_identity(struct state *st, const char *ident)
{
	enum zmb_rc rc;
	char *stored = NULL;
	bool own = false;

	rc = state_meta_get(st, "job_identity", &stored);
	if (rc == ZMB_ENOTFOUND && !st->readonly) {
		/* first writer wins; re-read inside the transaction */
		if ((rc = tx_begin(st, &own)) != ZMB_OK)
			goto out;
		rc = state_meta_get(st, "job_identity", &stored);
		if (rc == ZMB_ENOTFOUND) {
			char ts[32];
			iso8601_utc(wall_now(), ts);
			rc = state_meta_set(st, "job_identity", ident);
			if (rc == ZMB_OK)
				rc = state_meta_set(st, "created_at", ts);
			rc = tx_end(st, own, rc, "job identity");
			own = false;
			goto out;
		}
		rc = tx_end(st, own, rc, "job identity");
		own = false;
	}
	if (rc == ZMB_ENOTFOUND) {          /* read-only and never written */
		rc = ZMB_OK;
		goto out;
	}
	if (rc)
		goto out;
	if (strcmp(stored, ident) != 0) {
		st_set_err(st, xasprintf("state database %s belongs to job '%s', not to this job '%s': "
					 "use another state_db (or --state) for this job",
					 st->path, stored, ident));
		rc = ZMB_ECONFIG;
	}
out:
	if (own)
		tx_rollback(st);
	free(stored);
	return rc;
}

enum zmb_rc state_open(const char *path, const char *job_identity, int flags,
		       struct state **out, char **err)
{
	enum zmb_rc rc = ZMB_OK;
	struct state *st = xcalloc(1, sizeof *st);
	int src;

	*out = NULL;
	st->path = xstrdup(path);
	st->readonly = (flags & STATE_READONLY) != 0;

	if (st->readonly) {
		struct stat sb;
		if (stat(path, &sb) < 0) {
			if (errno == ENOENT) {
				st_set_err(st, xasprintf("no state database at %s: nothing has run yet", path));
				rc = ZMB_ENOTFOUND;
			} else {
				st_set_err(st, xasprintf("cannot open state database %s: %s", path,
							 strerror(errno)));
				rc = ZMB_EIO;
			}
			goto out;
		}
		src = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	} else {
		/* create it 0600 ourselves: sqlite would use 0644 & ~umask; its
		 * -wal and -shm files copy the mode of the database file */
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			st_set_err(st, xasprintf("cannot create state database %s: %s", path,
						 strerror(errno)));
			rc = ZMB_EIO;
			goto out;
		}
		close(fd);
		src = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	}
	if (src != SQLITE_OK) {
		rc = st_db_fail(st, src, "open");
		goto out;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	if ((rc = st_exec_sql(st, "PRAGMA foreign_keys = ON", "enable foreign keys")) != ZMB_OK)
		goto out;
	if (!st->readonly) {
		if ((rc = set_wal(st)) != ZMB_OK)
			goto out;
		if ((rc = st_exec_sql(st, "PRAGMA synchronous = NORMAL", "set synchronous")) != ZMB_OK)
			goto out;
		if ((rc = st_migrate(st)) != ZMB_OK)
			goto out;
	} else {
		int v = 0;
		if ((rc = read_user_version(st, &v)) != ZMB_OK)
			goto out;
		if ((rc = check_not_newer(st, v)) != ZMB_OK)
			goto out;
		if (v == 0) {
			st_set_err(st, xasprintf("%s is not a zmbatch state database (schema version 0)", path));
			rc = ZMB_ESTATE;
			goto out;
		}
	}
	if (job_identity && (rc = check_identity(st, job_identity)) != ZMB_OK)
		goto out;
out:
	if (rc) {
		if (err)
			*err = xstrdup(st->err ? st->err : zmb_rc_str(rc));
		state_close(st);
		return rc;
	}
	*out = st;
	return ZMB_OK;
}


/* ---- meta ---- */

enum zmb_rc state_meta_get(struct state *st, const char *key, char **value)
{
	sqlite3_stmt *s = NULL;
	enum zmb_rc rc = ZMB_OK;
	int src = sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = ?1", -1, &s, NULL);

	*value = NULL;
	if (src == SQLITE_OK) {
		st_bind_text(s, 1, key);
		src = sqlite3_step(s);
	}
	if (src == SQLITE_ROW) {
		*value = st_col_text(s, 0);
	} else if (src == SQLITE_DONE) {
		st_set_err(st, xasprintf("%s: no meta key '%s'", st->path, key));
		rc = ZMB_ENOTFOUND;
	} else {
		rc = st_db_fail(st, src, "read meta");
	}
	sqlite3_finalize(s);
	return rc;
}

enum zmb_rc state_meta_set(struct state *st, const char *key, const char *value)
{
	sqlite3_stmt *s = NULL;
	bool own;
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	int src = sqlite3_prepare_v2(st->db, "INSERT INTO meta (key, value) VALUES (?1, ?2)"
				     " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
				     -1, &s, NULL);
	if (src == SQLITE_OK) {
		st_bind_text(s, 1, key);
		st_bind_text(s, 2, value ? value : "");
		src = sqlite3_step(s);
	}
	if (src != SQLITE_DONE)
		rc = st_db_fail(st, src, "write meta");
	sqlite3_finalize(s);
	return tx_end(st, own, rc, "meta");
}



/* ---- shard ---- */

static enum zmb_rc count_accounts(struct state *st, long long *n)
{
	enum zmb_rc rc = ZMB_OK;
	sqlite3_stmt *s = st_prepare(st, "SELECT count(*) FROM accounts", &rc);
	if (!s)
		return rc;
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW)
		*n = sqlite3_column_int64(s, 0);
	else
		rc = st_db_fail(st, src, "count accounts");
	sqlite3_finalize(s);
	return rc;
}

static enum zmb_rc shard_mismatch(struct state *st, const char *stored, const char *shard)
{
	if (*shard)
		st_set_err(st, xasprintf("state database %s belongs to shard %s, not to shard %s: "
					 "each shard has its own state DB (give --shard %s to use "
					 "this one, or another --state)", st->path, stored, shard,
					 stored));
	else
		st_set_err(st, xasprintf("state database %s belongs to shard %s: give --shard %s "
					 "(or the engine's variables) to use it", st->path, stored,
					 stored));
	return ZMB_ECONFIG;
}

enum zmb_rc state_check_shard(struct state *st, const char *shard)
{
	char *stored = NULL;
	bool own = false;
	long long n = 0;
	enum zmb_rc rc;

	shard = shard ? shard : "";
	if (!st->readonly && (rc = tx_begin(st, &own)) != ZMB_OK)
		return rc;
	rc = state_meta_get(st, "shard", &stored);
	if (rc == ZMB_OK) {
		if (strcmp(stored, shard) != 0)
			rc = shard_mismatch(st, stored, shard);
	} else if (rc == ZMB_ENOTFOUND && (!*shard || st->readonly)) {
		rc = ZMB_OK;    /* an unsharded DB, or one only read */
	} else if (rc == ZMB_ENOTFOUND) {
		if ((rc = count_accounts(st, &n)) == ZMB_OK) {
			if (n > 0) {
				st_set_err(st, xasprintf("state database %s is not sharded and already "
							 "holds %lld account(s): shard %s needs a "
							 "state DB of its own", st->path, n, shard));
				rc = ZMB_ECONFIG;
			} else {
				rc = state_meta_set(st, "shard", shard);
			}
		}
	}
	free(stored);
	if (own)
		rc = tx_end(st, own, rc, "shard");
	return rc;
}

enum zmb_rc state_check_shard_by(struct state *st, const char *by)
{
	char *stored = NULL;
	bool own = false;
	long long n = 0;
	enum zmb_rc rc;

	if (!st->readonly && (rc = tx_begin(st, &own)) != ZMB_OK)
		return rc;
	rc = state_meta_get(st, "shard_by", &stored);
	if (rc == ZMB_ENOTFOUND && (rc = count_accounts(st, &n)) == ZMB_OK) {
		if (n > 0)
			stored = xstrdup("hash");   /* a shard DB from before --shard-by */
		else if (!st->readonly)
			rc = state_meta_set(st, "shard_by", by);
	}
	if (rc == ZMB_OK && stored && strcmp(stored, by) != 0) {
		st_set_err(st, xasprintf("state database %s is of a shard split by %s, not by %s: a shard "
					 "keeps the way the job was split (give --shard-by %s, or "
					 "another --state)", st->path, stored, by, stored));
		rc = ZMB_ECONFIG;
	}
	free(stored);
	return tx_end(st, own, rc, "shard_by");
}

enum zmb_rc state_shard_deal(struct state *st, const struct shard_deal_item *v, size_t n)
{
	bool own = false;
	double now = wall_now();
	enum zmb_rc rc = tx_begin(st, &own);
	if (rc)
		return rc;
	/* the listing replaces the last one: an account gone from it is no longer the job's */
	rc = st_exec_sql(st, "DELETE FROM shard_deal", "clear shard_deal");
	sqlite3_stmt *ins = rc ? NULL : st_prepare(st, "INSERT OR REPLACE INTO shard_deal (account, shard, "
						   "home, seen_at) VALUES (?1, ?2, ?3, ?4)", &rc);
	for (size_t i = 0; rc == ZMB_OK && i < n; i++) {
		st_bind_text(ins, 1, v[i].account);
		sqlite3_bind_int64(ins, 2, v[i].dealt);
		st_bind_text(ins, 3, v[i].home);
		sqlite3_bind_double(ins, 4, now);
		int src = sqlite3_step(ins);
		if (src != SQLITE_DONE)
			rc = st_db_fail(st, src, "record shard_deal");
		sqlite3_reset(ins);
	}
	sqlite3_finalize(ins);
	return tx_end(st, own, rc, "shard_deal");
}
