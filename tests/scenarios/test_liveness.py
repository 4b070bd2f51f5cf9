"""Streams and runs stay truthful when things go wrong: dead executors, logouts, expiry, lost listeners."""

import threading
import time

import psycopg
import pytest
import requests

from orchestrator.executor import TERMINAL
from tests.support.processes import executing_instance, kill_instance
from tests.support.runs import create_run
from tests.support.services import wait_for
from tests.support.sse import read_sse

SLOW = {"RUN_STEP_DELAY_MS": "200", "RUN_LEASE_SECONDS": "2"}


def run_status(service, user, run_id):
    return requests.get(f"{service.url}/runs/{run_id}", headers=user["headers"], timeout=10).json()


def open_stream(service, user, run_id, headers=None):
    return requests.get(
        f"{service.url}/runs/{run_id}/events", headers={**user["headers"], **(headers or {})}, stream=True, timeout=15
    )


def collect(response, into):
    """Read a stream to its end on a thread, appending events to `into`."""
    thread = threading.Thread(target=read_sse, args=(response,), kwargs={"into": into}, daemon=True)
    thread.start()
    return thread


def test_a_killed_executor_s_run_is_failed_by_another_instance_within_the_lease_bound(
    start_service, orchestrator_env, sign_up, db
):
    env = {**orchestrator_env, **SLOW}
    a, b = start_service("orchestrator", env), start_service("orchestrator", env)
    user = sign_up()
    run_id = create_run(a, user, steps=20)
    wait_for(lambda: run_status(b, user, run_id)["status"] == "running", 5)
    # Whichever instance claimed the run is the one to kill; the other streams it and reaps it.
    a, b = (a, b) if executing_instance(db, run_id, a, b) is a else (b, a)
    seen = []
    reader = collect(open_stream(b, user, run_id), seen)
    wait_for(lambda: len(seen) >= 3, 5)

    kill_instance(a)
    killed_at = time.monotonic()
    failed = wait_for(lambda: (s := run_status(b, user, run_id))["status"] == "failed" and s, 10)
    elapsed = time.monotonic() - killed_at
    # The documented bound: RUN_LEASE_SECONDS plus one reaper interval (a third of the lease).
    assert elapsed < 2 + 2 / 3 + 1, f"failed after {elapsed:.1f}s"
    assert failed["error"] == "executor_lost"

    reader.join(10)
    assert seen[-1]["event"] == "failed" and seen[-1]["data"]["reason"] == "executor_lost"
    ids = [int(e["id"]) for e in seen if "event" in e]
    assert ids == list(range(1, len(ids) + 1))
    last = db.execute("SELECT type FROM run_events WHERE run_id = %s ORDER BY seq DESC LIMIT 1", (run_id,))
    assert last.fetchone()["type"] == "failed"


def test_logout_on_the_api_ends_open_streams_on_the_orchestrator_at_once(start_service, orchestrator_env, sign_up):
    api = start_service("api", orchestrator_env)
    orchestrator = start_service("orchestrator", {**orchestrator_env, **SLOW})
    user = sign_up()
    run_id = create_run(orchestrator, user, steps=20)
    seen = []
    reader = collect(open_stream(orchestrator, user, run_id), seen)
    wait_for(lambda: len(seen) >= 2, 5)

    assert requests.post(f"{api.url}/auth/logout", headers=user["headers"], timeout=10).status_code == 204
    logged_out = time.monotonic()
    reader.join(5)
    assert not reader.is_alive()
    assert time.monotonic() - logged_out < 2
    assert seen[-1]["event"] == "close" and seen[-1]["data"] == {"reason": "session_revoked"}
    assert open_stream(orchestrator, user, run_id).status_code == 401


def test_a_stream_ends_when_the_token_that_opened_it_expires(start_service, orchestrator_env, sign_up):
    env = {**orchestrator_env, **SLOW, "ACCESS_TTL": "2"}
    orchestrator = start_service("orchestrator", env)
    user = sign_up(ACCESS_TTL="2")
    run_id = create_run(orchestrator, user, steps=30)
    opened = time.monotonic()
    events = read_sse(open_stream(orchestrator, user, run_id))
    assert time.monotonic() - opened < 3
    assert events[-1] == {"id": events[-1]["id"], "event": "close", "data": {"reason": "token_expired"}}
    assert run_status(orchestrator, sign_up(user["userId"]), run_id)["status"] == "running"


def test_streams_reaching_their_maximum_lifetime_close_and_resume_without_a_gap(
    start_service, orchestrator_env, sign_up
):
    orchestrator = start_service("orchestrator", {**orchestrator_env, **SLOW, "SSE_MAX_STREAM_SECONDS": "1"})
    user = sign_up()
    run_id = create_run(orchestrator, user, steps=3)
    events, last = [], "0"
    for _ in range(20):
        part = read_sse(open_stream(orchestrator, user, run_id, {"Last-Event-ID": last}))
        events += [e for e in part if e.get("event") not in (None, "close")]
        if part[-1]["event"] != "close":
            break
        assert part[-1]["data"] == {"reason": "max_lifetime"}
        last = part[-1]["id"]
    assert [int(e["id"]) for e in events] == list(range(1, 6 + 3 * 3 + 1))
    assert events[-1]["event"] == "completed"


def test_a_lost_listen_connection_is_re_established_and_streams_miss_nothing(
    start_service, orchestrator_env, sign_up, database_url, pg_server
):
    orchestrator = start_service("orchestrator", {**orchestrator_env, "WEB_CONCURRENCY": "1", **SLOW})
    user = sign_up()
    run_id = create_run(orchestrator, user, steps=6)
    seen = []
    reader = collect(open_stream(orchestrator, user, run_id), seen)
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_server, autocommit=True) as admin:

        def listeners(action="pid"):
            query = (
                f"SELECT {action} FROM pg_stat_activity WHERE datname = %s AND application_name = 'oneshot-listener'"
            )
            return admin.execute(query, (name,)).fetchall()

        for _ in range(2):
            wait_for(listeners, 5)  # (re-)established
            assert len(listeners("pg_terminate_backend(pid)")) == 1
            time.sleep(0.3)  # events keep being written while no one listens
        wait_for(listeners, 5)
    reader.join(15)
    ids = [int(e["id"]) for e in seen if "event" in e]
    assert ids == list(range(1, 6 + 3 * 6 + 1))
    assert seen[-1]["event"] == "completed"
    assert "listener connection lost" in orchestrator.log()


def test_a_database_restart_mid_run_closes_streams_and_leaves_no_run_running(
    start_service, orchestrator_env, sign_up, pg_cluster
):
    if pg_cluster.datadir is None:
        pytest.skip("restarting needs the throwaway cluster (DATABASE_URL is set)")
    orchestrator = start_service("orchestrator", {**orchestrator_env, **SLOW, "SSE_HEARTBEAT_SECONDS": "1"})
    user = sign_up()
    run_id = create_run(orchestrator, user, steps=10)
    seen = []
    reader = collect(open_stream(orchestrator, user, run_id), seen)
    wait_for(lambda: len(seen) >= 3, 5)
    pg_cluster.stop()
    try:
        reader.join(10)  # noticed at the next heartbeat (1 s), after a 3 s wait for a connection
        assert seen[-1]["event"] == "close" and seen[-1]["data"] == {"reason": "unavailable"}
    finally:
        pg_cluster.start()
    # The run goes on (its executor retries the step) or is failed by the reaper: never stuck.
    ended = wait_for(lambda: (r := run_status(orchestrator, user, run_id))["status"] in TERMINAL and r, 20)
    assert ended["status"] in ("completed", "failed")
    resumed = read_sse(open_stream(orchestrator, user, run_id, {"Last-Event-ID": seen[-1]["id"]}))
    ids = [int(e["id"]) for e in seen + resumed if e.get("event") not in (None, "close")]
    assert ids == list(range(1, len(ids) + 1)) and resumed[-1]["event"] == ended["status"]
