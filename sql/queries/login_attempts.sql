-- name: insert_login_attempt
-- returns: one
-- Count this attempt before checking the password, so a burst of parallel guesses sees itself.
INSERT INTO login_attempts (user_key, address) VALUES (%(user_key)s, %(address)s) RETURNING id;

-- name: count_login_attempts
-- returns: one
-- Attempts in the window for this user and this address, and when the oldest of each leaves it.
SELECT
    count(*) FILTER (WHERE user_key = %(user_key)s) AS by_user,
    count(*) FILTER (WHERE address = %(address)s) AS by_address,
    ceil(extract(epoch FROM min(attempted_at) FILTER (WHERE user_key = %(user_key)s)
        + make_interval(secs => %(window)s) - now()))::int AS user_retry_after,
    ceil(extract(epoch FROM min(attempted_at) FILTER (WHERE address = %(address)s)
        + make_interval(secs => %(window)s) - now()))::int AS address_retry_after
FROM login_attempts
WHERE (user_key = %(user_key)s OR address = %(address)s)
  AND attempted_at > now() - make_interval(secs => %(window)s);

-- name: delete_login_attempt
-- returns: rowcount
-- Forget one attempt: it was refused before any password check (see api/throttle.py).
DELETE FROM login_attempts WHERE id = %(attempt_id)s;

-- name: clear_user_login_attempts
-- returns: rowcount
-- A successful sign-in resets the user's count (never the address's), its own attempt included, and
-- prunes old rows.
DELETE FROM login_attempts
WHERE user_key = %(user_key)s OR attempted_at <= now() - make_interval(secs => %(window)s);
