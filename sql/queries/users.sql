-- name: insert_user
-- returns: one
-- Create an account; a case-insensitive duplicate raises UniqueViolation.
INSERT INTO users (id, password_hash)
VALUES (%(user_id)s, %(password_hash)s)
RETURNING id;

-- name: get_user_for_login
-- returns: one
-- The account a sign-in names, matched without regard to case.
SELECT id, password_hash FROM users WHERE lower(id) = lower(%(user_id)s);

-- name: update_password_hash
-- returns: rowcount
-- Store a re-hash made with stronger parameters after a successful sign-in.
UPDATE users SET password_hash = %(password_hash)s WHERE id = %(user_id)s;
