"""common.lifecycle: shutdown hooks run newest first and all of them run, whatever one of them does;
worker hooks get gunicorn's worker. Then the same on a real API app: its pool is closed."""

import logging
from types import SimpleNamespace

from flask import Flask

from common.lifecycle import on_shutdown, on_worker_start, shutdown, worker_started
from tests.support.services import wait_for


def test_shutdown_runs_the_hooks_newest_first():
    app, ran = Flask(__name__), []
    for name in ("pool", "listener", "streams"):
        on_shutdown(app, lambda name=name: ran.append(name))
    shutdown(app)
    assert ran == ["streams", "listener", "pool"]


def test_a_failing_hook_is_logged_and_the_others_still_run(caplog):
    app, ran = Flask(__name__), []

    def broken():
        raise RuntimeError("listener already gone")

    on_shutdown(app, lambda: ran.append("pool"))
    on_shutdown(app, broken)
    on_shutdown(app, lambda: ran.append("streams"))
    with caplog.at_level(logging.ERROR, logger="common.lifecycle"):
        shutdown(app)
    assert ran == ["streams", "pool"]
    [record] = caplog.records
    assert record.message == "shutdown hook failed" and "listener already gone" in str(record.exc_info[1])


def test_an_app_without_hooks_shuts_down_quietly():
    shutdown(Flask(__name__))
    worker_started(Flask(__name__), SimpleNamespace(alive=True))


def test_worker_hooks_get_the_worker_in_the_order_they_were_added():
    app, seen, worker = Flask(__name__), [], SimpleNamespace(alive=True)
    on_worker_start(app, lambda w: seen.append(("listener", w)))
    on_worker_start(app, lambda w: seen.append(("reaper", w)))
    worker_started(app, worker)
    assert seen == [("listener", worker), ("reaper", worker)]


def test_shutting_down_the_api_closes_its_database_connections(env, db):
    from api import create_app

    others = (
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    app = create_app(env)
    client = app.test_client()
    assert client.get("/ready").status_code == 200
    assert db.execute(others).fetchone()["n"] >= 1
    shutdown(app)
    wait_for(lambda: db.execute(others).fetchone()["n"] == 0, 5)  # a backend ends just after its client hangs up
    assert client.get("/ready").status_code == 503  # the pool is closed: nothing reconnects behind our back
