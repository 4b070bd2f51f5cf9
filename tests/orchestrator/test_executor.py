"""The run queue across processes and instances: claims bounded by RUN_CONCURRENCY, runs started
wherever there is room, SIGTERM leaving unclaimed runs queued, a killed executor reaped."""

import os
import signal
import time
import uuid

import pytest
import requests

from orchestrator.executor import TERMINAL
from tests.support import fake_model
from tests.support.accounts import sign_up
from tests.support.fake_model import slow
from tests.support.processes import executing_instance, kill_instance, worker_pids
from tests.support.services import service_env, wait_for


@pytest.fixture
def queue_env(database_url, model):
    """One worker per instance, two runs at a time each, a real model agent (the fake)."""
    return service_env(
        database_url,
        AGENT="openai",
        AGENT_BASE_URL=model.url,
        AGENT_MODEL=fake_model.MODEL,
        WEB_CONCURRENCY=1,
        RUN_CONCURRENCY=2,
        RUN_LEASE_SECONDS=2,
    )


def start_runs(service, user, model, count, seconds=1.0, name="run"):
    """Create `count` runs whose model answers take about `seconds`; return their ids."""
    ids = []
    for n in range(count):
        prompt = f"{name} {n} ({uuid.uuid4().hex[:6]})"
        model.script(prompt, slow("tick " * 10, chunks=10, delay=seconds / 10))
        response = requests.post(f"{service.url}/runs", json={"prompt": prompt}, headers=user["headers"], timeout=10)
        assert response.status_code == 201 and response.json()["status"] == "queued", response.text
        ids.append(response.json()["id"])
    return ids


def statuses(db, ids):
    rows = db.execute("SELECT id::text, status FROM runs WHERE id = ANY(%s::uuid[])", (ids,)).fetchall()
    return {r["id"]: r["status"] for r in rows}


def owner_pid(db, run_id):
    owner = db.execute("SELECT lease_owner FROM runs WHERE id = %s", (run_id,)).fetchone()["lease_owner"]
    return int(owner.split(":")[1])


def test_a_burst_waits_queued_and_one_process_runs_at_most_run_concurrency_at_once(start_service, queue_env, model, db):
    orchestrator = start_service("orchestrator", queue_env)
    user = sign_up(queue_env)

    ids = start_runs(orchestrator, user, model, 6)
    seen = wait_for(lambda: (s := statuses(db, ids)) and list(s.values()).count("running") == 2 and s, 10)
    assert list(seen.values()).count("queued") == 4  # the rest wait their turn

    wait_for(lambda: set(statuses(db, ids).values()) == {"completed"}, 30)
    assert model.max_in_flight == 2  # never more model calls than RUN_CONCURRENCY, and that many used
    assert len(model.requests) == 6


def test_runs_created_on_a_full_instance_are_executed_by_one_with_room(start_service, queue_env, model, db):
    a = start_service("orchestrator", {**queue_env, "RUN_CONCURRENCY": "1"})
    user = sign_up(queue_env)
    (first,) = start_runs(a, user, model, 1, seconds=3)
    wait_for(lambda: statuses(db, [first])[first] == "running", 10)
    b = start_service("orchestrator", {**queue_env, "RUN_CONCURRENCY": "1"})

    (second,) = start_runs(a, user, model, 1, seconds=0.5, name="overflow")  # created on A, which is full

    wait_for(lambda: statuses(db, [second])[second] == "completed", 15)
    assert owner_pid(db, first) in worker_pids(a.proc.pid)
    assert owner_pid(db, second) in worker_pids(b.proc.pid)


def test_sigterm_stops_claiming_and_leaves_unclaimed_runs_queued_for_another_instance(
    start_service, queue_env, model, db
):
    a = start_service("orchestrator", {**queue_env, "RUN_CONCURRENCY": "1"})
    user = sign_up(queue_env)
    first, *rest = start_runs(a, user, model, 3, seconds=3)
    wait_for(lambda: statuses(db, [first])[first] == "running", 10)

    assert a.stop(signal.SIGTERM) == 0
    after = statuses(db, [first, *rest])
    assert (
        after[first] == "failed"
        and db.execute("SELECT error FROM runs WHERE id = %s", (first,)).fetchone()["error"] == "shutdown"
    )
    assert [after[r] for r in rest] == ["queued", "queued"]  # not lost, not failed: still waiting

    start_service("orchestrator", queue_env)
    wait_for(lambda: [statuses(db, rest)[r] for r in rest] == ["completed", "completed"], 20)


def test_a_run_whose_process_is_killed_mid_model_call_is_failed_by_the_lease_rule(start_service, queue_env, model, db):
    a, b = start_service("orchestrator", queue_env), start_service("orchestrator", queue_env)
    user = sign_up(queue_env)
    (run_id,) = start_runs(a, user, model, 1, seconds=30)
    wait_for(lambda: model.in_flight == 1, 10)  # the model call is under way

    executing = executing_instance(db, run_id, a, b)
    kill_instance(executing)
    killed_at = time.monotonic()

    wait_for(lambda: statuses(db, [run_id])[run_id] in TERMINAL, 10)
    assert time.monotonic() - killed_at < 2 + 2 / 3 + 1  # RUN_LEASE_SECONDS plus one renewal interval
    row = db.execute("SELECT status, error FROM runs WHERE id = %s", (run_id,)).fetchone()
    assert row == {"status": "failed", "error": "executor_lost"}


def test_an_executor_paused_past_its_lease_writes_nothing_once_another_instance_failed_the_run(
    start_service, database_url, db
):
    env = service_env(database_url, WEB_CONCURRENCY=1, RUN_STEP_DELAY_MS=100, RUN_LEASE_SECONDS=2)
    a, b = start_service("orchestrator", env), start_service("orchestrator", env)
    user = sign_up(env)
    response = requests.post(
        f"{a.url}/runs", json={"prompt": "Pause me", "steps": 40}, headers=user["headers"], timeout=10
    )
    run_id = response.json()["id"]
    wait_for(lambda: statuses(db, [run_id])[run_id] == "running", 10)
    (worker,) = worker_pids(executing_instance(db, run_id, a, b).proc.pid)

    os.kill(worker, signal.SIGSTOP)  # a long GC pause, a frozen VM: the lease lapses meanwhile
    try:
        wait_for(lambda: statuses(db, [run_id])[run_id] == "failed", 10)
        failed_at = db.execute("SELECT last_seq FROM runs WHERE id = %s", (run_id,)).fetchone()["last_seq"]
    finally:
        os.kill(worker, signal.SIGCONT)
    time.sleep(1)  # ten of its steps: the stale executor resumes, and tries to write them

    row = db.execute("SELECT last_seq, error FROM runs WHERE id = %s", (run_id,)).fetchone()
    assert row == {"last_seq": failed_at, "error": "executor_lost"}
    last = db.execute("SELECT seq, type FROM run_events WHERE run_id = %s ORDER BY seq DESC LIMIT 1", (run_id,))
    assert last.fetchone() == {"seq": failed_at, "type": "failed"}


def test_a_cancel_whose_notification_never_arrives_still_stops_the_run(start_service, database_url, db):
    env = service_env(database_url, WEB_CONCURRENCY=1, RUN_STEP_DELAY_MS=100, RUN_LEASE_SECONDS=3)
    orchestrator = start_service("orchestrator", env)
    user = sign_up(env)
    response = requests.post(
        f"{orchestrator.url}/runs", json={"prompt": "Stop me quietly", "steps": 40}, headers=user["headers"], timeout=10
    )
    run_id = response.json()["id"]
    wait_for(lambda: statuses(db, [run_id])[run_id] == "running", 10)

    # The request as POST /runs/<id>/cancel stores it, but no NOTIFY: as if the listener were down.
    db.execute("UPDATE runs SET cancel_requested_at = now() WHERE id = %s", (run_id,))

    wait_for(lambda: statuses(db, [run_id])[run_id] == "cancelled", 5)
    last = db.execute("SELECT type FROM run_events WHERE run_id = %s ORDER BY seq DESC LIMIT 1", (run_id,))
    assert last.fetchone()["type"] == "cancelled"
