"""Sessions and refresh-token rotation.

A session is a refresh-token family with an absolute end. Each refresh spends the presented token
and issues its successor in one transaction; a spent token presented again revokes the family.
"""

import hashlib
import secrets

from flask import current_app

from common import queries
from common.errors import ApiError
from common.notify import publish
from common.tokens import issue_access_token


def _hash(refresh_token):
    return hashlib.sha256(refresh_token.encode()).digest()


def _new_refresh_token(conn, config, session_id):
    token = secrets.token_urlsafe(32)  # 256 bits
    queries.execute(
        conn, "insert_refresh_token", session_id=session_id, token_hash=_hash(token), ttl=config.refresh_ttl
    )
    return token


def token_pair(config, user_id, session_id, refresh_token):
    """The JSON body of a successful sign-in or refresh."""
    access_token, expires_in = issue_access_token(config, user_id, session_id)
    return {"token": access_token, "refreshToken": refresh_token, "expiresIn": expires_in, "tokenType": "Bearer"}


def start(conn, config, user_id):
    """Open a session for `user_id` and return its first token pair."""
    with conn.transaction():
        session = queries.one(conn, "insert_session", user_id=user_id, max_age=config.session_max_age)
        refresh_token = _new_refresh_token(conn, config, session["id"])
    return token_pair(config, user_id, session["id"], refresh_token)


def rotate(conn, config, presented):
    """Exchange a refresh token for a new pair, or raise 401 (`token_reused` revokes the session)."""
    with conn.transaction():
        row = queries.one(conn, "lock_refresh_token", token_hash=_hash(presented))
        if row is None:
            outcome = "unknown"
        elif row["spent_at"] is not None:
            queries.execute(conn, "revoke_session", session_id=row["session_id"], reason="refresh_token_reused")
            publish(conn, {"kind": "session", "user": row["user_id"]})
            outcome = "reused"
        elif row["session_revoked"] or row["session_expired"] or row["token_expired"]:
            outcome = "expired"
        else:
            queries.execute(conn, "spend_refresh_token", token_id=row["id"])
            refresh_token = _new_refresh_token(conn, config, row["session_id"])
            outcome = "rotated"
    # Decided inside the transaction, raised outside it: the reuse revocation must commit.
    if outcome == "reused":
        current_app.extensions["refresh_reuse"].inc()
        raise ApiError(401, "token_reused", "This refresh token was already used; the session is revoked.")
    if outcome != "rotated":
        raise ApiError(401, "invalid_refresh_token", "The refresh token is unknown or expired.")
    return token_pair(config, row["user_id"], row["session_id"], refresh_token)


def revoke_all(conn, user_id):
    """Revoke every live session of `user_id`; open streams on every instance hear of it at commit."""
    with conn.transaction():
        queries.execute(conn, "revoke_user_sessions", user_id=user_id, reason="logout")
        publish(conn, {"kind": "session", "user": user_id})
