-- name: lock_migrations
-- returns: rowcount
-- Serialise migrators: held by the session until it ends.
SELECT pg_advisory_lock(%(key)s);
