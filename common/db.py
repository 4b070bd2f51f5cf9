"""The PostgreSQL connection pool: one per worker process, a connection per request.

The pool is opened inside the worker (gunicorn loads the app after forking and after gevent has
patched), so its background threads are greenlets and every wait on the server yields to the hub.
"""

import sys

import psycopg
import psycopg.waiting
from flask import current_app, g
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from common import queries
from common.app import on_shutdown

CONNECT_TIMEOUT = 10  # seconds to wait at start-up before a wrong DATABASE_URL fails the boot


def check_gevent_cooperation():
    """Refuse to run psycopg's blocking C wait under gevent: it would serialise every query.

    psycopg picks its wait function at import; imported before gevent patched `select`, it keeps
    `wait_c`, which never yields to the hub.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey and monkey.is_module_patched("select") and psycopg.waiting.wait.__name__ == "wait_c":
        raise RuntimeError("psycopg was imported before gevent patched; do not import it in gunicorn's master")


def connect(database_url, **kwargs):
    """A single autocommit connection with dict rows, outside the pool (listeners, scripts)."""
    return psycopg.connect(database_url, autocommit=True, row_factory=dict_row, **kwargs)


def init_app(app, config):
    """Open the pool for this process and return connections to it after each request."""
    check_gevent_cooperation()
    pool = ConnectionPool(
        config.database_url,
        min_size=1,
        max_size=config.db_pool_size,
        kwargs={"autocommit": True, "row_factory": dict_row},
        timeout=CONNECT_TIMEOUT,
        name=app.name,
        open=False,
    )
    pool.open(wait=True, timeout=CONNECT_TIMEOUT)
    app.extensions["db_pool"] = pool
    app.teardown_appcontext(_release)
    # Closed on shutdown so its background threads (greenlets) stop cleanly.
    on_shutdown(app, pool.close)


def get_db():
    """The request's connection (autocommit; use `with conn.transaction():` to group statements)."""
    if "db" not in g:
        g.db = current_app.extensions["db_pool"].getconn()
    return g.db


def _release(_exc):
    conn = g.pop("db", None)
    if conn is not None:
        current_app.extensions["db_pool"].putconn(conn)


def ping():
    """True when the database answers a trivial query.

    Tried twice: after a database restart the pool may hand out a connection that died with the old
    server (it is discarded on return), which says nothing about the server now.
    """
    pool = current_app.extensions["db_pool"]
    for attempt in (1, 2):
        try:
            with pool.connection(timeout=2) as conn:
                return queries.one(conn, "ping")["ok"] == 1
        except psycopg.OperationalError:
            if attempt == 2:
                raise
