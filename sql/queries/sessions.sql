-- name: get_live_session
-- returns: one
-- Checked on every authenticated request: one primary-key lookup.
SELECT id FROM sessions
WHERE id = %(session_id)s AND user_id = %(user_id)s AND revoked_at IS NULL AND expires_at > now();

-- name: start_session
-- returns: one
-- Open a session and store the hash of its first refresh token, in one statement (one round trip).
WITH session AS (
    INSERT INTO sessions (user_id, expires_at)
    VALUES (%(user_id)s, now() + make_interval(secs => %(max_age)s))
    RETURNING id, expires_at
), first_token AS (
    INSERT INTO refresh_tokens (session_id, token_hash, expires_at)
    SELECT id, %(token_hash)s, least(now() + make_interval(secs => %(ttl)s), expires_at) FROM session
)
SELECT id FROM session;

-- name: start_passwordless_session
-- returns: one
-- Demo mode only (AUTH_ALLOW_PASSWORDLESS): the account for a userId, created without a password if it
-- is new, and a session with its first refresh token, in one statement. An account that has a
-- password gets no session (session_id is NULL): demo mode never bypasses a real password.
WITH account AS (
    INSERT INTO users (id) VALUES (%(user_id)s)
    ON CONFLICT (lower(id)) DO UPDATE SET id = users.id
    RETURNING id, password_hash
), session AS (
    INSERT INTO sessions (user_id, expires_at)
    SELECT id, now() + make_interval(secs => %(max_age)s) FROM account WHERE password_hash IS NULL
    RETURNING id, expires_at
), first_token AS (
    INSERT INTO refresh_tokens (session_id, token_hash, expires_at)
    SELECT id, %(token_hash)s, least(now() + make_interval(secs => %(ttl)s), expires_at) FROM session
)
SELECT account.id AS user_id, session.id AS session_id FROM account LEFT JOIN session ON true;

-- name: rotate_refresh_token
-- returns: one
-- Spend the presented token and store its successor's hash in one statement, and say what happened.
-- The presented row is locked first, so a concurrent rotation of the same token waits for this one
-- and then reads it spent (PostgreSQL re-reads a locked row's newest version): at most one succeeds,
-- and the loser is told `reused`. The spend also requires `spent_at IS NULL` on the row itself.
-- No row: the token is unknown. outcome: rotated, reused (spent before), or expired (the token or its
-- session expired, or the session was revoked).
WITH presented AS (
    SELECT t.id, t.spent_at, t.expires_at <= now() AS token_expired,
           s.id AS session_id, s.user_id, s.expires_at AS session_expires_at,
           s.revoked_at IS NOT NULL OR s.expires_at <= now() AS session_ended
    FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
    WHERE t.token_hash = %(token_hash)s
    FOR UPDATE OF t
), spent AS (
    UPDATE refresh_tokens t SET spent_at = now()
    FROM presented p
    WHERE t.id = p.id AND t.spent_at IS NULL AND NOT p.token_expired AND NOT p.session_ended
    RETURNING t.id
), successor AS (
    INSERT INTO refresh_tokens (session_id, token_hash, expires_at)
    SELECT p.session_id, %(successor_hash)s, least(now() + make_interval(secs => %(ttl)s), p.session_expires_at)
    FROM presented p JOIN spent ON spent.id = p.id
    RETURNING id
)
SELECT session_id, user_id,
       CASE WHEN EXISTS (SELECT 1 FROM successor) THEN 'rotated'
            WHEN spent_at IS NOT NULL THEN 'reused'
            ELSE 'expired' END AS outcome
FROM presented;

-- name: revoke_session
-- returns: rowcount
-- End one session: its refresh tokens and access tokens stop working.
UPDATE sessions SET revoked_at = now(), revoked_reason = %(reason)s
WHERE id = %(session_id)s AND revoked_at IS NULL;

-- name: revoke_user_sessions
-- returns: rowcount
-- End every live session of a user (logout everywhere).
UPDATE sessions SET revoked_at = now(), revoked_reason = %(reason)s
WHERE user_id = %(user_id)s AND revoked_at IS NULL;
