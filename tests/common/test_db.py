"""The pool cooperates with gevent, refuses to run when it could not, and survives a lost database."""

import subprocess
import sys
import textwrap

import psycopg

from tests.support.services import ROOT

OVERLAP = """
from gevent import monkey
monkey.patch_all()
import time, gevent
from types import SimpleNamespace
from flask import Flask
from common import db, state

app = Flask("probe")
db.init_app(app, SimpleNamespace(database_url={url!r}, db_pool_size=10))
pool = state.of(app).pool

def slow_query():
    with pool.connection() as conn:
        conn.execute("SELECT pg_sleep(0.5)")

started = time.monotonic()
gevent.joinall([gevent.spawn(slow_query) for _ in range(10)], raise_error=True)
print(round(time.monotonic() - started, 2))
pool.close()
"""

IMPORTED_TOO_EARLY = """
import psycopg  # before gevent patches: psycopg keeps its blocking C wait function
from gevent import monkey
monkey.patch_all()
from common import db
try:
    db.check_gevent_cooperation()
except RuntimeError as e:
    print("refused:", e)
"""


def run_python(code):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_slow_queries_in_one_gevent_process_overlap(database_url):
    """Ten 0.5 s queries from ten greenlets finish together, not one after another (5 s)."""
    elapsed = float(run_python(OVERLAP.format(url=database_url)))
    assert elapsed < 2.5


def test_psycopg_imported_before_gevent_is_refused():
    assert run_python(IMPORTED_TOO_EARLY).startswith("refused: psycopg was imported before gevent patched")


def test_lost_database_gives_503_then_recovers(client, database_url, pg_server):
    """The database refuses connections: /ready and data endpoints say 503; once back, all is well."""
    name = database_url.rsplit("/", 1)[1]
    assert client.get("/ready").status_code == 200
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            down = client.post("/auth/register", json={"userId": "dora", "password": "a long password"})
            assert down.status_code == 503
            assert down.json["error"]["code"] == "database_unavailable"
            assert "SELECT" not in down.text and "Traceback" not in down.text
            assert client.get("/ready").status_code == 503
            assert client.get("/health").status_code == 200
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    up = client.post("/auth/register", json={"userId": "dora", "password": "a long password"})
    assert up.status_code == 201
