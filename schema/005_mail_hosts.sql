-- zmbatch state database, version 5.
--
-- accounts: the mailbox server each account lives on (its zimbraMailHost),
-- on the source and on the target, as the last run that moved it saw them:
-- that is where its export and import were sent (README "Multi-server
-- installations").  NULL: not known (a database from before version 5, or
-- an account not moved since).
ALTER TABLE accounts ADD COLUMN source_host TEXT;
ALTER TABLE accounts ADD COLUMN target_host TEXT;
