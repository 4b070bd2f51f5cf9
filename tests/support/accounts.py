"""Accounts for tests of services other than the API: real users and sessions, made directly."""

import uuid


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
