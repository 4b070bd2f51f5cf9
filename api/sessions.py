"""Sessions and refresh-token rotation.

A session is a refresh-token family with an absolute end. Each refresh spends the presented token
and issues its successor in one statement (one round trip, its own transaction); a spent token
presented again revokes the family.
"""

import hashlib
import secrets

from common import messages, queries
from common.errors import REALM, ApiError
from common.notify import publish
from common.tokens import issue_access_token

# Every 401 names its scheme (RFC 9110 §15.5.2), also when what failed was a password or refresh token.
CHALLENGE = {"WWW-Authenticate": REALM}


class TokenReused(ApiError):
    """401: a spent refresh token was presented again; its session is revoked."""

    def __init__(self):
        super().__init__(
            401, "token_reused", "This refresh token was already used; the session is revoked.", headers=CHALLENGE
        )


def _hash(refresh_token):
    return hashlib.sha256(refresh_token.encode()).digest()


def _new_refresh_token():
    return secrets.token_urlsafe(32)  # 256 bits


def token_pair(config, user_id, session_id, refresh_token):
    """The JSON body of a successful sign-in or refresh."""
    access_token, expires_in = issue_access_token(config, user_id, session_id)
    return {"token": access_token, "refreshToken": refresh_token, "expiresIn": expires_in, "tokenType": "Bearer"}


def start(conn, config, user_id):
    """Open a session for `user_id` and return its first token pair."""
    refresh_token = _new_refresh_token()
    session = queries.start_session(
        conn,
        user_id=user_id,
        max_age=config.session_max_age,
        token_hash=_hash(refresh_token),
        ttl=config.refresh_ttl,
    )
    return token_pair(config, user_id, session["id"], refresh_token)


def start_passwordless(conn, config, user_id):
    """Demo mode: the token pair of a new session for `user_id` (its account made if new), or None when
    that account has a password."""
    refresh_token = _new_refresh_token()
    row = queries.start_passwordless_session(
        conn,
        user_id=user_id,
        max_age=config.session_max_age,
        token_hash=_hash(refresh_token),
        ttl=config.refresh_ttl,
    )
    if row["session_id"] is None:
        return None
    return token_pair(config, row["user_id"], row["session_id"], refresh_token)


def rotate(conn, config, presented):
    """Exchange a refresh token for a new pair, or raise 401 (`TokenReused` revokes the session)."""
    successor = _new_refresh_token()
    row = queries.rotate_refresh_token(
        conn,
        token_hash=_hash(presented),
        successor_hash=_hash(successor),
        ttl=config.refresh_ttl,
    )
    if row is not None and row["outcome"] == "rotated":
        return token_pair(config, row["user_id"], row["session_id"], successor)
    if row is not None and row["outcome"] == "reused":
        # Rare, so not folded into the rotation: revoke the family and tell every instance, at one commit.
        with conn.transaction():
            queries.revoke_session(conn, session_id=row["session_id"], reason="refresh_token_reused")
            publish(conn, messages.session_changed(row["user_id"]))
        raise TokenReused()
    raise ApiError(401, "invalid_refresh_token", "The refresh token is unknown or expired.", headers=CHALLENGE)


def revoke_all(conn, user_id):
    """Revoke every live session of `user_id`; open streams on every instance hear of it at commit."""
    with conn.transaction():
        queries.revoke_user_sessions(conn, user_id=user_id, reason="logout")
        publish(conn, messages.session_changed(user_id))
