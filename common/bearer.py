"""Bearer authentication for every service: a valid access token whose session is still live."""

import functools

from flask import g, request

from common import queries, state
from common.db import get_db
from common.errors import unauthorized
from common.tokens import InvalidToken, verify_access_token


def bearer_token():
    """The token in `Authorization: Bearer ...`, '' for an empty one, or None when there is none.

    Only the header counts: a token in the query string is ignored, so it never authenticates and
    never tempts a client to put one in a URL.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def authenticate():
    """Verify the request's bearer token and its session; return the claims or raise 401."""
    token = bearer_token()
    if token is None:
        raise unauthorized("Authentication required.", invalid_token=False)
    config = state.config()
    try:
        claims = verify_access_token(config, token)
    except InvalidToken:
        raise unauthorized("The access token is invalid or expired.") from None
    # One primary-key lookup: logout and reuse detection take effect on the very next request.
    if not queries.get_live_session(get_db(), session_id=claims["sid"], user_id=claims["sub"]):
        raise unauthorized("The session has ended; sign in again.")
    return claims


def session_is_live(pool, session_id, user_id, timeout=3):
    """The same session check, for streams: they borrow a pooled connection only for the lookup, and
    give up after `timeout` seconds when the database is away (PoolTimeout)."""
    with pool.connection(timeout=timeout) as conn:
        return queries.get_live_session(conn, session_id=session_id, user_id=user_id) is not None


def require_auth(view):
    """Decorator: authenticate, then expose `g.user_id`, `g.session_id` and `g.claims` to the view."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.claims = authenticate()
        g.user_id, g.session_id = g.claims["sub"], g.claims["sid"]
        return view(*args, **kwargs)

    return wrapper
