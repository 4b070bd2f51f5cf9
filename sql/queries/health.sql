-- name: ping_database
-- returns: one
-- The database answers (readiness checks).
SELECT 1 AS ok;
