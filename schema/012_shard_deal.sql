-- zmbatch state database, version 12.
--
-- shard_deal  run --shard I/N --shard-by server: every account this shard's
--             last run listed (this shard's and the others'), the shard its
--             home dealt it to then, that home (NULL: none) and when.  It
--             tells report --merge which accounts the job has: one that no
--             shard's DB holds was dealt to a shard that has not listed it
--             since (it was created, or moved to that shard's server, after
--             that shard's run), and is named there (state_merge.c).
--             Empty in unsharded and hash-sharded DBs; reports of one DB do
--             not read it.
CREATE TABLE shard_deal (
	account TEXT    PRIMARY KEY,   -- source address, lower case
	shard   INTEGER NOT NULL,      -- the shard index its home deals it to (of the DB's N)
	home    TEXT,                  -- its zimbraMailHost then
	seen_at REAL    NOT NULL       -- unix time of the listing
) WITHOUT ROWID;
