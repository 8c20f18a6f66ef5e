-- zmbatch state database, version 7.
--
-- Verification (README "Verification"): after each import, the source's
-- folder figures (taken when the archive was cut) are compared with the
-- target's, folder by folder; an account is done only when verified (or
-- when migration.verify = "off").
--
-- accounts.verify         'ok', 'mismatch', 'unverifiable'; NULL = not verified
-- accounts.verify_detail  the folders and figures that differ, or why the
--                         server could not be asked (one line)
-- accounts.verified_at    when the verdict was reached
-- accounts.verify_source  the source's figures at export time (JSON:
--                         [{"path","view","n","s"}...]); kept after done, so
--                         `zmbatch verify` compares the target with what was
--                         exported, not with a source that has moved on
-- accounts.verify_pending 1 = imported, not yet verified: a crash there
--                         resumes at the verification (no new import)
ALTER TABLE accounts ADD COLUMN verify TEXT
	CHECK (verify IS NULL OR verify IN ('ok', 'mismatch', 'unverifiable'));
ALTER TABLE accounts ADD COLUMN verify_detail TEXT;
ALTER TABLE accounts ADD COLUMN verified_at REAL;
ALTER TABLE accounts ADD COLUMN verify_source TEXT;
ALTER TABLE accounts ADD COLUMN verify_pending INTEGER NOT NULL DEFAULT 0;
-- the sync mark of the pass imported and waiting for its verification (ms),
-- recorded with verify_pending: a verification resumed after a crash ends
-- the pass with the mark of its export, not the time it resumed
ALTER TABLE accounts ADD COLUMN verify_mark INTEGER;
