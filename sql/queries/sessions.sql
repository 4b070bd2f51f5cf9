-- name: get_live_session
-- Checked on every authenticated request: one primary-key lookup.
SELECT id FROM sessions
WHERE id = %(session_id)s AND user_id = %(user_id)s AND revoked_at IS NULL AND expires_at > now();

-- name: insert_session
-- Start a refresh-token family with an absolute end.
INSERT INTO sessions (user_id, expires_at)
VALUES (%(user_id)s, now() + make_interval(secs => %(max_age)s))
RETURNING id, expires_at;

-- name: insert_refresh_token
-- Store the hash of a new refresh token; it never outlives its session.
INSERT INTO refresh_tokens (session_id, token_hash, expires_at)
SELECT id, %(token_hash)s, least(now() + make_interval(secs => %(ttl)s), expires_at)
FROM sessions WHERE id = %(session_id)s;

-- name: lock_refresh_token
-- The presented token and its session, locked so concurrent refreshes of one token serialise.
SELECT t.id, t.spent_at, t.expires_at <= now() AS token_expired,
       s.id AS session_id, s.user_id, s.revoked_at IS NOT NULL AS session_revoked,
       s.expires_at <= now() AS session_expired
FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
WHERE t.token_hash = %(token_hash)s
FOR UPDATE OF t;

-- name: spend_refresh_token
-- Mark a refresh token exchanged.
UPDATE refresh_tokens SET spent_at = now() WHERE id = %(token_id)s AND spent_at IS NULL;

-- name: revoke_session
-- End one session: its refresh tokens and access tokens stop working.
UPDATE sessions SET revoked_at = now(), revoked_reason = %(reason)s
WHERE id = %(session_id)s AND revoked_at IS NULL;

-- name: revoke_user_sessions
-- End every live session of a user (logout everywhere).
UPDATE sessions SET revoked_at = now(), revoked_reason = %(reason)s
WHERE user_id = %(user_id)s AND revoked_at IS NULL;
