-- zmbatch state database, version 1.
-- Applied by state_open() when PRAGMA user_version < 1.  Times are unix
-- seconds (REAL, UTC); sizes and byte counts are bytes.

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,          -- 'job_identity', 'job_name', 'created_at'
	value TEXT NOT NULL
);

-- One row per `zmbatch run` (and per other writing command).
CREATE TABLE runs (
	id              INTEGER PRIMARY KEY,
	started_at      REAL    NOT NULL,
	ended_at        REAL,
	pid             INTEGER NOT NULL,
	host            TEXT    NOT NULL,
	user            TEXT    NOT NULL,
	command         TEXT    NOT NULL,  -- e.g. 'run --delta' (never a secret)
	exit_status     INTEGER,           -- NULL while running or after a crash
	token_refreshes INTEGER NOT NULL DEFAULT 0,
	retries         INTEGER NOT NULL DEFAULT 0,
	bytes           INTEGER NOT NULL DEFAULT 0
);

-- Job stages, in job order.
CREATE TABLE stages (
	name       TEXT PRIMARY KEY,
	type       TEXT    NOT NULL,
	position   INTEGER NOT NULL,
	state      TEXT    NOT NULL DEFAULT 'pending'
	           CHECK (state IN ('pending', 'running', 'done', 'failed')),
	attempts   INTEGER NOT NULL DEFAULT 0,
	started_at REAL,
	ended_at   REAL,
	output     TEXT,
	error      TEXT,
	run_id     INTEGER REFERENCES runs(id)
);

-- One row per source account.
CREATE TABLE accounts (
	id          INTEGER PRIMARY KEY,
	account     TEXT    NOT NULL UNIQUE,   -- source address
	target      TEXT    NOT NULL,          -- target address (domain map applied)
	seq         INTEGER NOT NULL,          -- position as listed/discovered
	size        INTEGER,                   -- mailbox size from GetMailbox; NULL = unknown
	state       TEXT    NOT NULL DEFAULT 'pending'
	            CHECK (state IN ('pending', 'exporting', 'exported', 'importing',
	                             'done', 'failed', 'skipped')),
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT,
	error_class TEXT,                      -- 'temporary', 'permanent', 'auth', ...
	bytes       INTEGER NOT NULL DEFAULT 0, -- bytes moved by the last successful pass
	seconds     REAL,                      -- duration of the last successful pass
	spool_path  TEXT,                      -- complete spool file (state 'exported')
	next_try_at REAL    NOT NULL DEFAULT 0, -- backoff: not claimable before
	started_at  REAL,                      -- current/last attempt start
	finished_at REAL,                      -- reached done/failed
	sync_mark   INTEGER,                   -- ms epoch: start of last successful sync (delta high-water mark)
	delta       INTEGER NOT NULL DEFAULT 0, -- 1 = this pass is a delta pass
	owner_run   INTEGER REFERENCES runs(id), -- run holding the claim
	updated_at  REAL    NOT NULL
);

-- Claiming: only claimable rows are in these indexes, ordered as claimed.
-- state leads so that a claim ("state = 'pending' ORDER BY size DESC, seq
-- LIMIT 1") is an index SEARCH that stops at the first row.  The WHERE is
-- written with OR, not IN: SQLite proves "state = 'pending'" implies an OR of
-- equalities, but not an IN list, and would not use the index at all.
CREATE INDEX accounts_claim_size ON accounts (state, size DESC, seq)
	WHERE state = 'pending' OR state = 'exported';
CREATE INDEX accounts_claim_seq ON accounts (state, seq)
	WHERE state = 'pending' OR state = 'exported';
CREATE INDEX accounts_state ON accounts (state);

-- Per-account and per-stage history.
CREATE TABLE events (
	id         INTEGER PRIMARY KEY,
	at         REAL    NOT NULL,
	run_id     INTEGER REFERENCES runs(id),
	account_id INTEGER REFERENCES accounts(id),
	stage      TEXT,
	level      TEXT    NOT NULL DEFAULT 'info',
	message    TEXT    NOT NULL
);
CREATE INDEX events_account ON events (account_id, id);

-- Views for administrators (sqlite3 state.db 'select * from v_counts').
CREATE VIEW v_counts AS
	SELECT state, count(*) AS accounts, sum(bytes) AS bytes, sum(coalesce(size, 0)) AS size
	FROM accounts GROUP BY state;

CREATE VIEW v_failures AS
	SELECT account, target, attempts, error_class, last_error,
	       datetime(finished_at, 'unixepoch') AS failed_at
	FROM accounts WHERE state = 'failed' ORDER BY account;

CREATE VIEW v_in_flight AS
	SELECT account, state, attempts, datetime(started_at, 'unixepoch') AS since,
	       round(strftime('%s', 'now') - started_at) AS seconds
	FROM accounts WHERE state IN ('exporting', 'importing');

CREATE VIEW v_runs AS
	SELECT id, datetime(started_at, 'unixepoch') AS started,
	       datetime(ended_at, 'unixepoch') AS ended, host, pid, user, command,
	       exit_status, token_refreshes, retries, bytes
	FROM runs ORDER BY id;
