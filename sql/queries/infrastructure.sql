-- name: ping
-- The database answers (readiness checks).
SELECT 1 AS ok;

-- name: notify
-- Announce a message to every instance listening on the channel; delivered at commit.
SELECT pg_notify(%(channel)s, %(payload)s);

-- name: lock_migrations
-- Serialise migrators: held by the session until it ends.
SELECT pg_advisory_lock(%(key)s);
