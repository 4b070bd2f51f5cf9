"""A rolling restart behind the shipped nginx config: two instances each of the API and of the
Orchestrator (an upstream of two servers each), one of each sent SIGTERM under load.

What must hold: requests in flight complete and new ones reach the other instance (clients see no
failure but, rarely, a 502 for a POST caught in the closing instance's accept queue, which the client
retries); streams on the stopped Orchestrator end with `close {"reason": "shutdown"}` and
resume on the other with no gap and no duplicate; no run is lost — the runs the stopped instance
was executing are failed with reason `shutdown` (by design: an agent's step cannot be handed over
half done), and the runs still queued stay queued for the other instance, which completes them.
"""

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.accounts import create_accounts, sign_up
from tests.support.invariants import broken_invariants
from tests.support.load import ApiClient, StreamFollower, Tally, stored_runs, wait_for_threads
from tests.support.nginx import SITE, Nginx, site_for_test
from tests.support.processes import worker_pids
from tests.support.services import Service, free_port, service_env, wait_for

CLIENTS = 50
RUNS = 10
STREAMS_PER_RUN = 2
RUN_CONCURRENCY = 3  # per instance: 6 runs execute at once, 4 wait queued
STEP_MS = 150
STEPS = 8  # 6 + 3 × 8 = 30 events 150 ms apart: about 4.5 s a run
SIGTERM_AFTER = 2  # seconds of load before one instance of each service is stopped: mid-run
LOAD_SECONDS = 14
PASSWORD = "load-test password"


@pytest.fixture
def edge(database_url, tmp_path):
    """Two API and two Orchestrator instances (one gevent worker each) behind nginx with the shipped
    site file, their upstreams listing both; yields (nginx URL, {name: Service}, env)."""
    port = free_port()
    env = service_env(
        database_url,
        BIND_HOST="127.0.0.1",
        TRUSTED_PROXY_HOPS=1,
        WEB_CONCURRENCY=1,  # 4 instances, nginx and 70 clients share 2 cores
        RUN_STEP_DELAY_MS=STEP_MS,
        RUN_CONCURRENCY=RUN_CONCURRENCY,
        # Every client signs in from 127.0.0.1 (as nginx tells the API).
        LOGIN_MAX_FAILURES_PER_ADDRESS=1000000,
    )
    names = ("api-a", "api-b", "orchestrator-a", "orchestrator-b")
    services = {name: Service(name.split("-")[0], env, tmp_path / f"{name}.log") for name in names}
    nginx = Nginx()
    try:
        with ThreadPoolExecutor(len(services)) as pool:
            list(pool.map(Service.start, services.values()))
        upstreams = {
            4000: [services["api-a"].port, services["api-b"].port],
            4001: [services["orchestrator-a"].port, services["orchestrator-b"].port],
        }
        nginx.write_site(site_for_test(SITE.read_text(), port, upstreams, nginx.logs))
        nginx.start(port)
        yield f"http://127.0.0.1:{port}", services, env, nginx
    finally:
        nginx.stop()
        for service in services.values():
            service.stop()


def owner_pid(lease_owner):
    """The worker pid in a lease owner (host:pid:nonce)."""
    return int(lease_owner.split(":")[1])


def test_sigterm_to_one_instance_of_each_behind_nginx_loses_no_request_no_event_and_no_run(edge, database_url):
    url, services, env, nginx = edge
    api_url, orchestrator_url = f"{url}/api", f"{url}/orchestrator"
    users = create_accounts(database_url, CLIENTS, PASSWORD)
    runners = [sign_up(env) for _ in range(RUNS)]
    with requests.Session() as http:
        run_ids = []
        for user in runners:
            created = http.post(
                f"{orchestrator_url}/runs", json={"prompt": "Roll", "steps": STEPS}, headers=user["headers"]
            )
            assert created.status_code == 201, created.text
            run_ids.append(created.json()["id"])

    tally, stop = Tally(), threading.Event()
    deadline = time.monotonic() + LOAD_SECONDS + 30
    clients = [ApiClient(api_url, user, PASSWORD, tally, stop, deadline) for user in users]
    followers = [
        StreamFollower(orchestrator_url, user["headers"], run_id, tally, deadline)
        for user, run_id in zip(runners, run_ids, strict=True)
        for _ in range(STREAMS_PER_RUN)
    ]
    for thread in clients + followers:
        thread.start()
    time.sleep(SIGTERM_AFTER)

    # What each instance holds at the signal: the runs it executes, and those still queued.
    stopped = services["orchestrator-a"]
    stopped_workers = set(worker_pids(stopped.proc.pid))
    before = stored_runs(database_url, run_ids)
    with ThreadPoolExecutor(2) as pool:
        exits = list(pool.map(Service.stop, (services["api-a"], stopped)))
    time.sleep(max(0.0, LOAD_SECONDS - SIGTERM_AFTER))
    stop.set()
    stuck = wait_for_threads(clients + followers, deadline)
    wait_for(lambda: {r["status"] for r in stored_runs(database_url, run_ids).values()} <= {"completed", "failed"}, 30)
    runs = stored_runs(database_url, run_ids)

    closes = sum((f.closes for f in followers), start=Counter())
    outcomes = Counter(r["status"] if r["status"] != "failed" else f"failed {r['error']}" for r in runs.values())
    retried = [line for line in nginx.access_log().splitlines() if ", " in json.loads(line)["upstream"]]
    print()
    print(tally.summary("rolling restart (SIGTERM to api-a and orchestrator-a)"))
    print(f"  gunicorn exit codes: {exits}; stream closes by reason: {dict(closes)}")
    print(f"  runs at the signal: {Counter(r['status'] for r in before.values())}; in the end: {dict(outcomes)}")
    print(f"  requests nginx passed on to the other instance: {len(retried)}")
    upstream_errors = [line for line in nginx.error_log().splitlines() if "upstream" in line]
    print("  nginx's upstream errors:", *upstream_errors, sep="\n    ")

    assert not stuck, stuck
    assert exits == [0, 0]
    # Clients saw no failure, but one kind nginx cannot hide: a POST whose connection the stopped
    # instance reset as it closed its listening socket (it was still in the accept queue). nginx
    # retries only idempotent requests once one was sent; a POST may have run, so it is a 502, and
    # the client's retry with the same refresh token must succeed: the token was not spent.
    reset_posts = tally.failures(lambda o: o.what in ("token", "refresh") and o.status == 502)
    assert [o for o in tally.failures() if o not in reset_posts] == [], tally.counts()
    assert sum(c.refresh_retry_refused for c in clients) == 0
    # Streams on the stopped instance were told why, and resumed on the other without a gap.
    assert closes["shutdown"] >= 1, closes
    for follower in followers:
        assert follower.finished
        assert [int(e["id"]) for e in follower.events] == list(range(1, runs[follower.run_id]["last_seq"] + 1))

    # No run lost: a run executing on the stopped instance failed with `shutdown`; everything else
    # (executing on the other, or still queued at the signal) completed on the other instance.
    def on_stopped(run):
        return run["lease_owner"] is not None and owner_pid(run["lease_owner"]) in stopped_workers

    for run_id, run in runs.items():
        if run["status"] == "failed":
            assert run["error"] == "shutdown" and on_stopped(run), run
            assert before[run_id]["status"] == "running" and on_stopped(before[run_id]), before[run_id]
        else:
            assert run["status"] == "completed" and not on_stopped(run), run
    assert outcomes["failed shutdown"] >= 1  # the stopped instance was executing something
    assert any(r["status"] == "queued" for r in before.values())  # and something waited in the queue
    assert broken_invariants(database_url) == {}
