-- Accounts: users, sessions (refresh-token families), hashed refresh tokens, login attempts.
-- depends:

CREATE TABLE users (
    id text PRIMARY KEY,
    -- argon2id PHC string; NULL only for users minted by AUTH_ALLOW_PASSWORDLESS (demo mode).
    password_hash text,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- "Alice" and "alice" are one account: uniqueness and sign-in ignore case.
CREATE UNIQUE INDEX users_lower_id_key ON users (lower(id));

CREATE TABLE sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Absolute end of the session (SESSION_MAX_AGE), however often its refresh token rotates.
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    revoked_reason text
);
CREATE INDEX sessions_live_by_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- SHA-256 of the opaque token; the token itself is never stored.
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    -- Set when the token is exchanged; presenting it again revokes the session.
    spent_at timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- Sign-in attempts not yet known to have succeeded, counted per user and per client address.
CREATE TABLE login_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_key text NOT NULL,
    address text NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_user_idx ON login_attempts (user_key, attempted_at);
CREATE INDEX login_attempts_address_idx ON login_attempts (address, attempted_at);
CREATE INDEX login_attempts_time_idx ON login_attempts (attempted_at);
