-- zmbatch state database, version 3.
--
-- servers: how each server was paced (src/zimbra/throttle.h).  requests and
-- throttled count the answers received and, of them, HTTP 429 (Jetty's
-- DoSFilter) and 503 answers, over all runs; throttle_wait_seconds is the
-- time those answers made the runs pause (never a failed attempt: the
-- request is sent again).  rate_limit (requests/s, 0 = no cap) and
-- concurrency_limit (requests in flight) are the limits in force when the
-- last run wrote them: below the configured ones while a server throttles.
ALTER TABLE servers ADD COLUMN requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN throttled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN throttle_wait_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN rate_limit REAL;
ALTER TABLE servers ADD COLUMN concurrency_limit INTEGER;

DROP VIEW v_servers;
CREATE VIEW v_servers AS
	SELECT role, host, auth_requests, token_refreshes, auth_failures,
	       datetime(last_auth_at, 'unixepoch') AS last_auth,
	       requests, throttled, throttle_wait_seconds, rate_limit, concurrency_limit
	FROM servers ORDER BY role;
