-- zmbatch state database, version 8.
--
-- The provision stage (README "Provisioning"): each directory object it
-- brings to the target (today: accounts with their aliases) is one row
-- here with its own state, attempts and events, so a crashed or stopped
-- run resumes object by object and a rerun only compares.
--
-- provision_objects.stage    the stage's name in the job (a job may have two)
-- provision_objects.kind     'account' (room for 'cos', 'domain', 'list')
-- provision_objects.name     the source's name (lower case)
-- provision_objects.target   the name on the target (after domain_map)
-- provision_objects.state    'pending' (planned), 'creating' (a create was
--                            sent or is about to be: the object found on the
--                            target with the source's zimbraId is ours, not a
--                            stranger for the `existing` policy), 'done',
--                            'failed'
-- provision_objects.outcome  what the last run did: 'created', 'updated',
--                            'unchanged', 'skipped' (NULL until done)
-- provision_objects.ours     1 once this job created the object on the target
-- provision_objects.attempts runs that tried it and failed
-- provision_objects.last_error  the last failure (never a secret)
--
-- provision_events: one line per thing done or found (the diff of an
-- update: attribute names and values, never a password hash).
CREATE TABLE provision_objects (
	id         INTEGER PRIMARY KEY,
	stage      TEXT    NOT NULL,
	kind       TEXT    NOT NULL CHECK (kind IN ('account', 'cos', 'domain', 'list')),
	name       TEXT    NOT NULL,
	target     TEXT    NOT NULL,
	state      TEXT    NOT NULL DEFAULT 'pending'
		CHECK (state IN ('pending', 'creating', 'done', 'failed')),
	outcome    TEXT
		CHECK (outcome IS NULL OR outcome IN ('created', 'updated', 'unchanged', 'skipped')),
	ours       INTEGER NOT NULL DEFAULT 0,
	attempts   INTEGER NOT NULL DEFAULT 0,
	last_error TEXT,
	updated_at REAL,
	UNIQUE (stage, kind, name)
);
CREATE TABLE provision_events (
	id        INTEGER PRIMARY KEY,
	at        REAL    NOT NULL,
	run_id    INTEGER REFERENCES runs(id),
	object_id INTEGER NOT NULL REFERENCES provision_objects(id),
	level     TEXT    NOT NULL DEFAULT 'info',
	message   TEXT    NOT NULL
);
CREATE INDEX provision_events_object ON provision_events (object_id, id);
CREATE VIEW v_provision AS
	SELECT stage, kind, name, target, state, outcome, attempts, last_error,
	       datetime(updated_at, 'unixepoch') AS updated
	FROM provision_objects ORDER BY stage, kind, name;
