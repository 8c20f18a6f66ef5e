-- zmbatch state database, version 11.
--
-- provision_objects.kind  'resource' besides 'account', 'cos', 'domain',
--                         'list': the calendar resources of the provision
--                         stage (locations and equipment: accounts of their
--                         own kind in Zimbra, LdapProvisioning
--                         createCalendarResource).
--
-- SQLite cannot change a CHECK: the table is rebuilt with its rows, ids and
-- events.  provision_events refers to it, so the events are set aside
-- first (with foreign_keys on, dropping a referenced table deletes from it).
CREATE TABLE provision_events_keep AS SELECT * FROM provision_events;
DROP VIEW v_provision;
DROP INDEX provision_events_object;
DROP TABLE provision_events;
CREATE TABLE provision_objects_new (
	id         INTEGER PRIMARY KEY,
	stage      TEXT    NOT NULL,
	kind       TEXT    NOT NULL
		CHECK (kind IN ('account', 'cos', 'domain', 'list', 'resource')),
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
	target_id  TEXT,
	UNIQUE (stage, kind, name)
);
INSERT INTO provision_objects_new (id, stage, kind, name, target, state, outcome, ours,
				   attempts, last_error, updated_at, target_id)
	SELECT id, stage, kind, name, target, state, outcome, ours, attempts, last_error,
	       updated_at, target_id FROM provision_objects;
DROP TABLE provision_objects;
ALTER TABLE provision_objects_new RENAME TO provision_objects;
CREATE TABLE provision_events (
	id        INTEGER PRIMARY KEY,
	at        REAL    NOT NULL,
	run_id    INTEGER REFERENCES runs(id),
	object_id INTEGER NOT NULL REFERENCES provision_objects(id),
	level     TEXT    NOT NULL DEFAULT 'info',
	message   TEXT    NOT NULL
);
INSERT INTO provision_events (id, at, run_id, object_id, level, message)
	SELECT id, at, run_id, object_id, level, message FROM provision_events_keep;
DROP TABLE provision_events_keep;
CREATE INDEX provision_events_object ON provision_events (object_id, id);
CREATE VIEW v_provision AS
	SELECT stage, kind, name, target, state, outcome, attempts, last_error,
	       datetime(updated_at, 'unixepoch') AS updated
	FROM provision_objects ORDER BY stage, kind, name;
