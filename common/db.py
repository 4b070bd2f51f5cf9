"""The PostgreSQL connection pool: one per worker process, a connection per request.

The pool is opened inside the worker (gunicorn loads the app after forking and after gevent has
patched), so its background threads are greenlets and every wait on the server yields to the hub.
"""

import select
import sys
import time

import psycopg
import psycopg.waiting
import psycopg_pool
from flask import g
from psycopg.rows import dict_row

from common import queries, state
from common.lifecycle import on_shutdown

CONNECT_TIMEOUT = 10  # seconds to wait at start-up before a wrong DATABASE_URL fails the boot


def check_gevent_cooperation():
    """Refuse to run psycopg's blocking C wait under gevent: it would serialise every query.

    psycopg picks its wait function at import; imported before gevent patched `select`, it keeps
    `wait_c`, which never yields to the hub.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey and monkey.is_module_patched("select") and psycopg.waiting.wait.__name__ == "wait_c":
        raise RuntimeError("psycopg was imported before gevent patched; do not import it in gunicorn's master")


def _unpatched_poll():
    """The operating system's `select.poll`, even under gevent: a zero-timeout poll never blocks, and
    gevent's cooperative one would go through the hub for nothing. (Not `select.select`: it cannot
    watch descriptors above 1023, and a worker holding thousands of streams has them.)"""
    monkey = sys.modules.get("gevent.monkey")
    if monkey and monkey.is_module_patched("select"):
        return monkey.get_original("select", "poll")
    return select.poll


def server_hung_up(conn, poll=select.poll):
    """True when `conn`, idle, can no longer run a statement: closed, or its server hung up.

    When PostgreSQL restarts (or ends a session: pg_terminate_backend, idle timeouts), each server
    process sends its client a FATAL message and closes the socket, so an idle connection has bytes
    (or EOF) waiting where a usable one has none: our pooled connections never LISTEN, so nothing
    arrives unasked. One non-blocking poll of the socket tells, without a round trip. A server that
    vanished without closing its sockets (a host lost, a partition) is not seen — nor would it be by
    an empty query, until TCP gives up.
    """
    if conn.closed or conn.pgconn.status != psycopg.pq.ConnStatus.OK:
        return True
    poller = poll()
    poller.register(conn.pgconn.socket, select.POLLIN)
    return bool(poller.poll(0))


class ConnectionPool(psycopg_pool.ConnectionPool):
    """psycopg's pool, handing out only connections whose server is still there.

    After a database restart every idle connection is dead; without this, each one's next user got a
    503 from its first statement. Each connection is looked at before it is given out (a poll, not a
    query: see `server_hung_up`); a dead one is closed, which makes the pool replace it, and the next
    is taken at once. Not psycopg_pool's own `check=` hook: it waits 1, 2, 4 ... s between two
    rejected connections, so a lone request walking a pool of ten dead ones ran into its timeout.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._poll = _unpatched_poll()  # created inside the worker, after gevent patched

    def getconn(self, timeout=None):
        """A live connection within `timeout` (the pool's default when None), or PoolTimeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            # Dead connections are finite (replacements are new), so this ends: with a live one, or
            # with PoolTimeout while the server is still away.
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise psycopg_pool.PoolTimeout(f"couldn't get a live connection within {timeout or self.timeout} s")
            conn = super().getconn(remaining)
            if not server_hung_up(conn, self._poll):
                return conn
            conn.close()  # the pool now sees it broken: it discards it and opens a replacement
            self.putconn(conn)


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
    state.of(app).pool = pool
    app.teardown_appcontext(_release)
    # Closed on shutdown so its background threads (greenlets) stop cleanly.
    on_shutdown(app, pool.close)


def get_db():
    """The request's connection (autocommit; use `with conn.transaction():` to group statements)."""
    if "db" not in g:
        g.db = state.pool().getconn()
    return g.db


def _release(_exc):
    conn = g.pop("db", None)
    if conn is not None:
        state.pool().putconn(conn)


def ping():
    """True when the database answers a trivial query.

    Tried twice: the pool hands out no connection whose server hung up, but one that died in the
    instant since (a restart in progress) says nothing about the server now.
    """
    pool = state.pool()
    for attempt in (1, 2):
        try:
            with pool.connection(timeout=2) as conn:
                return queries.ping_database(conn)["ok"] == 1
        except psycopg.OperationalError:
            if attempt == 2:
                raise
