-- zmbatch state database, version 12.
--
-- shard_deal  run --shard I/N --shard-by server: the shard each account the
--             source listed was dealt to when this shard's DB first saw it
--             (every listed account: this shard's and the others'), with its
--             home mailbox server then (NULL: none) and when.  Later runs
--             keep that deal, so a mailbox moved to another server after the
--             shards first saw it stays with the shard it was dealt to, and
--             no other shard takes it (state_shard_deal, migrate_plan.c).
--             Empty in unsharded and hash-sharded DBs; reports do not read
--             it.
CREATE TABLE shard_deal (
	account    TEXT    PRIMARY KEY,   -- source address, lower case
	shard      INTEGER NOT NULL,      -- the shard index dealt (of the DB's N)
	home       TEXT,                  -- its zimbraMailHost when first seen
	first_seen REAL    NOT NULL       -- unix time
) WITHOUT ROWID;
