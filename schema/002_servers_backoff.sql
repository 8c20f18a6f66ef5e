-- zmbatch state database, version 2.
--
-- servers: per server role, how often we authenticated (AuthRequest), how
-- often a token was refreshed before expiry or after a 401, and how many
-- authentications failed.  Reports show it; a token refresh count far above
-- runtime / token lifetime points at a token-lifetime or clock problem.
CREATE TABLE servers (
	role            TEXT    PRIMARY KEY CHECK (role IN ('source', 'target')),
	host            TEXT    NOT NULL,
	auth_requests   INTEGER NOT NULL DEFAULT 0,
	token_refreshes INTEGER NOT NULL DEFAULT 0,
	auth_failures   INTEGER NOT NULL DEFAULT 0,
	last_auth_at    REAL,                   -- last successful AuthRequest
	updated_at      REAL    NOT NULL
);

-- "When is the next account due?" (a claim that found nothing) without
-- scanning every waiting row.
CREATE INDEX accounts_backoff ON accounts (state, next_try_at)
	WHERE state = 'pending' OR state = 'exported';

CREATE VIEW v_servers AS
	SELECT role, host, auth_requests, token_refreshes, auth_failures,
	       datetime(last_auth_at, 'unixepoch') AS last_auth
	FROM servers ORDER BY role;
