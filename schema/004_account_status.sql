-- zmbatch state database, version 4.
--
-- accounts: what the servers said about each account before its transfer
-- and what its import left out (issue 13, "Account status" and "Import
-- results").
--   source_status, target_status  zimbraAccountStatus (active, maintenance,
--                      locked, closed, lockout, pending) as last read from the
--                      source's and the target's directory; NULL = not read.
--   warnings          the items the last import could not import (one event
--                      each, level 'warn'); a done account with warnings > 0 is
--                      "done with warnings".
--   status_wait_since when the account started waiting for a side to leave
--                      'maintenance' (no attempt is used while it waits;
--                      migration.maintenance_wait bounds it); NULL = not waiting.
ALTER TABLE accounts ADD COLUMN source_status TEXT;
ALTER TABLE accounts ADD COLUMN target_status TEXT;
ALTER TABLE accounts ADD COLUMN warnings INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN status_wait_since REAL;
