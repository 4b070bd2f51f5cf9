"""Accounts for the tests and benchmarks: one way to make a user with a live session straight through
the API's code (`sign_up`), many at once (`create_accounts`), and the API's own sign-up and sign-in
for tests of those endpoints on an in-process client."""

import uuid

PASSWORD = "correct horse battery"


def sign_up(env, user_id=None):
    """Create a user with a live session through the API's own code; return its token pair.

    Faster than starting the API; the tokens are real (same secret, same session rows), so every
    service accepts them.
    """
    from api import sessions
    from common.config import load_config
    from common.db import connect

    config = load_config(env, require=("DATABASE_URL", "JWT_SECRET"))
    user_id = user_id or f"user-{uuid.uuid4().hex[:8]}"
    with connect(config.database_url) as conn:
        conn.execute("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", (user_id,))
        pair = sessions.start(conn, config, user_id)
    return {**pair, "userId": user_id, "headers": {"Authorization": f"Bearer {pair['token']}"}}


def create_accounts(database_url, count, password, prefix="load"):
    """`count` users who sign in with `password`, stored directly (one argon2 hash for all, so
    setting up a load test costs one hash, not `count`); return their ids."""
    from api.passwords import HASHER
    from common.db import connect

    password_hash = HASHER.hash(password)
    user_ids = [f"{prefix}-{uuid.uuid4().hex[:8]}-{n}" for n in range(count)]
    with connect(database_url) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO users (id, password_hash) VALUES (%s, %s)", [(u, password_hash) for u in user_ids])
    return user_ids


def register(client, user_id="alice", password=PASSWORD):
    """POST /auth/register on an API test client; fail unless the account was created."""
    response = client.post("/auth/register", json={"userId": user_id, "password": password})
    assert response.status_code == 201, response.json
    return response


def sign_in(client, user_id="alice", password=PASSWORD, **kwargs):
    """POST /auth/token on an API test client; the response, whatever it is."""
    return client.post("/auth/token", json={"userId": user_id, "password": password}, **kwargs)
