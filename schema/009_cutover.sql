-- zmbatch state database, version 9.
--
-- cutover: one row per account taken into a `cutover` stage (README
-- "Cutover").  The steps, in order, each recorded when it is complete, so
-- that a run stopped anywhere resumes at the first step not recorded:
--
--   selected    chosen for the batch (the batch is chosen whole, in one
--               transaction, before any account of it is touched)
--   planned     the account's batch chosen and the previous values read from
--               both servers and recorded (prev_*), before any change
--   locked      source zimbraAccountStatus = 'locked': no login, delivery
--               still accepted (maintenance would refuse the final export)
--   routed      zimbraMailTransport of the source account pointed at the
--               target, and of the target account at itself: new mail goes
--               to the target from here on
--   synced      the final delta pass of the account is done and verified
--   final       the source's configured final status (source_status, e.g.
--               'maintenance'); the same as 'locked' when that is 'locked'
--   done        target zimbraAccountStatus = 'active'
--   rolled_back `zmbatch run --rollback` restored the recorded values (terminal:
--               the account is cut over again only after `zmbatch reset ACCOUNT`)
--   failed      terminal: a step, the final delta pass or its verification
--               failed (or the target vanished); the account was rolled back
--               at once so it does not stay locked; `error` says which account,
--               server and step; `reset ACCOUNT` lets a later run take it again
--   skipped     terminal: the source account was not active before the
--               cutover (closed, locked, pending...): nothing changed
--
-- A step that failed leaves `step` at the last one completed, with `error`
-- set; the next run tries it again.  The prev_* values are read once, at
-- 'planned', and never overwritten: a rollback restores what the accounts
-- had before the cutover touched them ('' = the attribute was not set).
CREATE TABLE cutover (
	account_id      INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
	batch           INTEGER NOT NULL,          -- 1, 2, ... in the order they were cut over
	step            TEXT    NOT NULL DEFAULT 'selected'
	                CHECK (step IN ('selected', 'planned', 'locked', 'routed', 'synced', 'final', 'done',
	                                'rolled_back', 'failed', 'skipped')),
	source_id       TEXT,                      -- zimbraId on the source
	target_id       TEXT,                      -- zimbraId on the target
	target_host     TEXT,                      -- the target account's zimbraMailHost
	prev_source_status    TEXT,
	prev_target_status    TEXT,
	prev_source_transport TEXT,
	prev_target_transport TEXT,
	source_transport TEXT,                     -- the values set (for reports and rollback)
	target_transport TEXT,
	error           TEXT,                      -- the last failure of a step; NULL = none
	attempts        INTEGER NOT NULL DEFAULT 0, -- runs that worked on the row
	run_id          INTEGER REFERENCES runs(id),
	started_at      REAL    NOT NULL,
	updated_at      REAL    NOT NULL,
	done_at         REAL,
	rolled_back_at  REAL
);
CREATE INDEX cutover_step ON cutover (step);

CREATE VIEW v_cutover AS
	SELECT a.account, a.target, c.batch, c.step, c.error,
	       c.prev_source_status, c.prev_target_status,
	       c.prev_source_transport, c.prev_target_transport,
	       datetime(c.done_at, 'unixepoch') AS done,
	       datetime(c.rolled_back_at, 'unixepoch') AS rolled_back
	FROM cutover c JOIN accounts a ON a.id = c.account_id ORDER BY c.batch, a.seq;
