"""Accounts and tokens: register, sign in, refresh, log out."""

import functools
import re

import psycopg.errors
from flask import Blueprint, g

from api import metrics, passwords, sessions, throttle
from common import queries, state
from common.bearer import require_auth
from common.db import get_db
from common.errors import ApiError
from common.http import client_address
from common.validation import json_body, string_field

bp = Blueprint("auth", __name__, url_prefix="/auth")

USER_ID_RE = re.compile(r"[A-Za-z0-9._@-]+")
USER_ID_HINT = "may only use letters, digits and . _ @ -"


def _user_id(body):
    return string_field(body, "userId", 3, 64, USER_ID_RE, USER_ID_HINT)


def _password(body):
    return string_field(body, "password", 8, 1024)


def _issued(grant):
    """Count a token pair issued under `grant` (the views count; sessions.py only issues)."""
    _labelled(metrics.current().tokens_issued, grant).inc()


@functools.lru_cache(maxsize=64)
def _labelled(counter, grant):
    # Kept per (counter, grant): `labels()` sorts and validates its arguments on every call.
    return counter.labels(grant=grant)


@bp.post("/register")
def register():
    """Create an account: 201 with its id, 409 if the id is taken (in any letter case)."""
    body = json_body()
    user_id, password = _user_id(body), _password(body)
    password_hash = passwords.hash_password(password)
    try:
        queries.insert_user(get_db(), user_id=user_id, password_hash=password_hash)
    except psycopg.errors.UniqueViolation:
        raise ApiError(409, "user_exists", "That userId is taken.", field="userId") from None
    return {"userId": user_id}, 201


@bp.post("/token")
def token():
    """Sign in with userId and password; throttled per user and per client address."""
    config, conn = state.config(), get_db()
    body = json_body()
    user_id = _user_id(body)
    if config.auth_allow_passwordless and "password" not in body:
        pair = sessions.start_passwordless(conn, config, user_id)
        if pair is None:  # demo mode never bypasses a real password
            raise ApiError(401, "invalid_credentials", "Wrong userId or password.", headers=sessions.CHALLENGE)
    else:
        user = _check_password(conn, config, user_id, _password(body))
        pair = sessions.start(conn, config, user["id"])
    _issued("password")
    return pair


def _check_password(conn, config, user_id, password):
    """The account if `password` is right; 401 alike for a wrong password and an unknown user."""
    user_key = user_id.lower()
    throttle.admit(conn, config, user_key, client_address(config.trusted_proxy_hops))
    user = queries.get_user_for_login(conn, user_id=user_id)
    if not passwords.verify_password(user and user["password_hash"], password):
        raise ApiError(401, "invalid_credentials", "Wrong userId or password.", headers=sessions.CHALLENGE)
    throttle.succeeded(conn, config, user_key)
    if passwords.needs_rehash(user["password_hash"]):
        new_hash = passwords.hash_password(password)
        queries.update_password_hash(conn, user_id=user["id"], password_hash=new_hash)
    return user


@bp.post("/refresh")
def refresh():
    """Exchange a refresh token for a new pair; the presented token is spent."""
    presented = string_field(json_body(), "refreshToken", 1, 512)
    try:
        pair = sessions.rotate(get_db(), state.config(), presented)
    except sessions.TokenReused:
        metrics.current().refresh_reuse.inc()
        raise
    _issued("refresh_token")
    return pair


@bp.post("/logout")
@require_auth
def logout():
    """Revoke every session of the caller; their tokens stop working at once, everywhere."""
    sessions.revoke_all(get_db(), g.user_id)
    return "", 204
