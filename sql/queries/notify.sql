-- name: notify_channel
-- returns: rowcount
-- Announce a message to every instance listening on the channel; delivered at commit.
SELECT pg_notify(%(channel)s, %(payload)s);
