"""The pool never hands out a connection whose server hung up: the first statement after a database
restart (or any ended session) runs, instead of failing with a 503."""

from types import SimpleNamespace

import psycopg
import psycopg_pool
import pytest
from flask import Flask

from common import db, state
from common.lifecycle import shutdown
from tests.support.services import wait_for

POOL_SIZE = 5


@pytest.fixture
def pool(database_url):
    """The services' pool, as common.db opens it, on the test's own database."""
    app = Flask("pool-probe")
    db.init_app(app, SimpleNamespace(database_url=database_url, db_pool_size=POOL_SIZE))
    yield state.of(app).pool
    shutdown(app)


def fill(pool):
    """Make the pool open all its connections (held at once, then returned); their server pids."""
    conns = [pool.getconn() for _ in range(POOL_SIZE)]
    pids = {conn.info.backend_pid for conn in conns}
    for conn in conns:
        pool.putconn(conn)
    return pids


def end_server_processes(pg_server, pids):
    """What a restart does to every idle connection: its server process says FATAL and hangs up."""
    with psycopg.connect(pg_server, autocommit=True) as admin:
        for pid in pids:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        # pg_terminate_backend only signals: wait until each process has gone.
        alive = "SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)"
        wait_for(lambda: admin.execute(alive, (list(pids),)).fetchone() is None)


def test_after_every_idle_connection_died_the_next_statements_run(pool, pg_server):
    old = fill(pool)
    end_server_processes(pg_server, old)
    # More than the pool holds, one at a time: a lone request walks the dead connections first.
    for _ in range(POOL_SIZE + 2):
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == {"?column?": 1}
            assert conn.info.backend_pid not in old


def test_a_live_connection_is_kept_not_replaced(pool):
    with pool.connection() as conn:
        first = conn.info.backend_pid
    for _ in range(20):
        with pool.connection() as conn:
            conn.execute("SELECT 1")
            pids = conn.info.backend_pid
    assert pids == first and pool.get_stats().get("connections_lost", 0) == 0


def test_without_the_check_the_first_statement_on_a_dead_connection_fails(database_url, pg_server):
    """The control: psycopg_pool as it comes hands the dead connection out, and the statement fails."""
    with psycopg_pool.ConnectionPool(database_url, min_size=1, max_size=1, kwargs={"autocommit": True}) as plain:
        with plain.connection() as conn:
            pid = conn.info.backend_pid
        end_server_processes(pg_server, {pid})
        with pytest.raises(psycopg.OperationalError), plain.connection() as conn:
            conn.execute("SELECT 1")
