-- zmbatch state database, version 6.
--
-- chunks: the steps of a pass that exports an account in pieces (README
-- "Huge mailboxes and zimbraExportMaxDays").  A pass is chunked when the
-- source's zimbraExportMaxDays refuses a whole export, when
-- migration.chunk is set, or when the mailbox is larger than
-- migration.chunk_bytes; every --delta pass is planned as steps too (its
-- folder tree and calendar are sent whole, README "Delta passes").
--
-- The plan of a pass is written once, in one transaction, when its first
-- step starts; each step is marked done in the transaction that counts its
-- bytes, so a pass interrupted anywhere (crash, kill, end of the window)
-- resumes at its first step not done.  The rows of the account's previous
-- pass are replaced by the next plan.
--
--   kind 'tree'      the folders, search folders, mountpoints and tags, by
--                    id (REST list=): a windowed export carries none
--   kind 'calendar'  appointments and tasks by id (list=), imported with
--                    resolve=modify: a window would leave out every
--                    appointment that crosses its edges
--   kind 'window'    every other item dated in [start_ms, end_ms)
--                    (end_ms NULL = open), as REST start=/end=
CREATE TABLE chunks (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	idx        INTEGER NOT NULL,          -- order within the pass, from 0
	kind       TEXT    NOT NULL CHECK (kind IN ('tree', 'calendar', 'window')),
	start_ms   INTEGER,                   -- window: first ms (inclusive)
	end_ms     INTEGER,                   -- window: end (exclusive); NULL = open
	mark_ms    INTEGER NOT NULL,          -- when the pass was planned (its sync mark)
	done       INTEGER NOT NULL DEFAULT 0,
	bytes      INTEGER NOT NULL DEFAULT 0,
	items      INTEGER NOT NULL DEFAULT 0, -- list steps: ids sent
	warnings   INTEGER NOT NULL DEFAULT 0,
	done_at    REAL,
	PRIMARY KEY (account_id, idx)
) WITHOUT ROWID;

-- accounts: the chunk counts of the current (or last) pass, for progress
-- and reports without a join: 0/0 = not chunked.
ALTER TABLE accounts ADD COLUMN chunks_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN chunks_done INTEGER NOT NULL DEFAULT 0;
-- bytes moved by the steps of the pass in flight (accounts.bytes is set when
-- the pass is done): progress counts it
ALTER TABLE accounts ADD COLUMN chunk_bytes INTEGER NOT NULL DEFAULT 0;
