"""Refresh rotation in one statement: what a concurrent rotation of the same token sees, made deterministic.

A competitor runs the same named query (`rotate_refresh_token`) in a transaction it holds open, so the
API's rotation of that token must wait on the row lock; the competitor then commits or rolls back.
HTTP-level races (twenty refreshes at once) are in test_e2e.py; these pin the interleaving itself.
"""

import concurrent.futures
import hashlib
import secrets

import psycopg
import pytest
from psycopg.rows import dict_row

from common import queries
from tests.support.services import wait_for

PASSWORD = "correct horse battery"


def digest(token):
    return hashlib.sha256(token.encode()).digest()


@pytest.fixture
def pair(client):
    assert client.post("/auth/register", json={"userId": "alice", "password": PASSWORD}).status_code == 201
    response = client.post("/auth/token", json={"userId": "alice", "password": PASSWORD})
    assert response.status_code == 200
    return response.json


def waiting_on_a_lock(db):
    row = db.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()
    return row["n"] > 0


def refresh_while_competitor_holds_the_token(client, db, database_url, pair, competitor_commits):
    """Start a competing rotation, refresh the same token through the API meanwhile, then end the
    competitor; return (the API's response, the competitor's outcome)."""
    with psycopg.connect(database_url, row_factory=dict_row) as competitor:  # a transaction, held open
        theirs = queries.rotate_refresh_token(
            competitor,
            token_hash=digest(pair["refreshToken"]),
            successor_hash=digest(secrets.token_urlsafe(32)),
            ttl=3600,
        )
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(client.post, "/auth/refresh", json={"refreshToken": pair["refreshToken"]})
            wait_for(lambda: waiting_on_a_lock(db))
            assert not pending.done()  # the API's rotation waits for the competitor's row lock
            if competitor_commits:
                competitor.commit()
            else:
                competitor.rollback()
            return pending.result(timeout=10), theirs["outcome"]


def test_a_rotation_racing_a_committed_rotation_is_refused_as_reuse(client, db, database_url, pair):
    response, theirs = refresh_while_competitor_holds_the_token(client, db, database_url, pair, True)
    assert theirs == "rotated"
    assert response.status_code == 401 and response.json["error"]["code"] == "token_reused"
    # Never two live successors: the competitor's one successor exists, and reuse revoked the session.
    tokens = db.execute("SELECT spent_at FROM refresh_tokens ORDER BY id").fetchall()
    assert len(tokens) == 2 and tokens[0]["spent_at"] is not None and tokens[1]["spent_at"] is None
    session = db.execute("SELECT revoked_at, revoked_reason FROM sessions").fetchone()
    assert session["revoked_at"] is not None and session["revoked_reason"] == "refresh_token_reused"


def test_a_rotation_racing_a_rolled_back_rotation_succeeds_once(client, db, database_url, pair):
    response, theirs = refresh_while_competitor_holds_the_token(client, db, database_url, pair, False)
    assert theirs == "rotated"  # it would have, but it rolled back
    assert response.status_code == 200
    assert client.get("/me", headers={"Authorization": f"Bearer {response.json['token']}"}).status_code == 200
    tokens = db.execute("SELECT token_hash, spent_at FROM refresh_tokens ORDER BY id").fetchall()
    assert [bytes(t["token_hash"]) for t in tokens] == [
        digest(pair["refreshToken"]),
        digest(response.json["refreshToken"]),
    ]
    assert tokens[0]["spent_at"] is not None and tokens[1]["spent_at"] is None


def test_a_rotation_reports_expired_and_unknown_tokens_without_spending_anything(client, db, pair):
    db.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
    expired = client.post("/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    unknown = client.post("/auth/refresh", json={"refreshToken": secrets.token_urlsafe(32)})
    for response in (expired, unknown):
        assert response.status_code == 401 and response.json["error"]["code"] == "invalid_refresh_token"
    assert db.execute("SELECT count(*) AS n FROM refresh_tokens WHERE spent_at IS NOT NULL").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM refresh_tokens").fetchone()["n"] == 1
    assert db.execute("SELECT revoked_at FROM sessions").fetchone()["revoked_at"] is None


def test_a_revoked_session_is_not_rotated(client, db, pair):
    assert client.post("/auth/logout", headers={"Authorization": f"Bearer {pair['token']}"}).status_code == 204
    response = client.post("/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_refresh_token"
    assert db.execute("SELECT count(*) AS n FROM refresh_tokens").fetchone()["n"] == 1


def test_sign_in_stores_one_session_and_its_first_token_hash(client, db, pair):
    session = db.execute("SELECT id, user_id, expires_at, created_at FROM sessions").fetchone()
    [token] = db.execute("SELECT session_id, token_hash, expires_at FROM refresh_tokens").fetchall()
    assert session["user_id"] == "alice" and token["session_id"] == session["id"]
    assert bytes(token["token_hash"]) == digest(pair["refreshToken"])
    assert token["expires_at"] <= session["expires_at"]


def test_passwordless_sign_in_makes_the_account_session_and_token_in_one_go(make_client, db):
    client = make_client(AUTH_ALLOW_PASSWORDLESS="true")
    first = client.post("/auth/token", json={"userId": "Demo.User"})
    again = client.post("/auth/token", json={"userId": "demo.user"})  # the same account, in any case
    assert first.status_code == again.status_code == 200
    me = client.get("/me", headers={"Authorization": f"Bearer {again.json['token']}"})
    assert me.status_code == 200 and me.json["userId"] == "Demo.User"
    assert client.post("/auth/refresh", json={"refreshToken": first.json["refreshToken"]}).status_code == 200
    assert db.execute("SELECT id, password_hash FROM users").fetchall() == [{"id": "Demo.User", "password_hash": None}]
    assert db.execute("SELECT count(*) AS n FROM sessions").fetchone()["n"] == 2


def test_passwordless_sign_in_of_a_password_account_leaves_no_session(make_client, db):
    client = make_client(AUTH_ALLOW_PASSWORDLESS="true")
    assert client.post("/auth/register", json={"userId": "alice", "password": PASSWORD}).status_code == 201
    refused = client.post("/auth/token", json={"userId": "ALICE"})
    assert refused.status_code == 401 and refused.json["error"]["code"] == "invalid_credentials"
    assert db.execute("SELECT count(*) AS n FROM sessions").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM refresh_tokens").fetchone()["n"] == 0
    assert db.execute("SELECT password_hash FROM users").fetchone()["password_hash"].startswith("$argon2id$")
