"""PostgreSQL restarted under load, for real: the API (gunicorn, 2 gevent workers) serving 50 clients
that sign in, rotate refresh chains and call /me, and the Orchestrator executing 10 runs watched by
20 streams, while the tests' own cluster is stopped, kept down for a moment, and started again.

What clients may see: a 503 while the database is away (never a 500, never a refused or dropped
connection), and nothing but successes from requests sent once it is back. A refresh answered 503
was not spent: retried with the same token it succeeds. Streams close with `unavailable` and resume
with Last-Event-ID, every event exactly once. The database's invariants hold afterwards.
"""

import threading
import time
from collections import Counter

import pytest
import requests

from tests.support.accounts import create_accounts, sign_up
from tests.support.invariants import broken_invariants
from tests.support.load import ApiClient, Probe, StreamFollower, Tally, stored_runs, wait_for_threads
from tests.support.runs import create_run

CLIENTS = 50
RUNS = 10
STREAMS_PER_RUN = 2
STEP_MS = 300
STEPS = 15  # 6 + 3 × 15 = 51 events 300 ms apart: some 15 s, spanning the restart
RESTART_AFTER = 8  # seconds of load before the server stops
OUTAGE = 2  # seconds it stays down (a fast shutdown and a start take about a second more)
LOAD_SECONDS = 20
PASSWORD = "load-test password"


@pytest.fixture
def stack(start_service, env, pg_cluster, database_url):
    """API and Orchestrator on the test's database; skipped when that server is not ours to restart."""
    if pg_cluster.datadir is None:
        pytest.skip("restarting PostgreSQL needs the tests' own throwaway cluster, not DATABASE_URL's server")
    settings = {
        **env,
        # Every client signs in from 127.0.0.1; an attempt cut short by the outage counts as failed.
        "LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
        "RUN_STEP_DELAY_MS": str(STEP_MS),
        "RUN_LEASE_SECONDS": "10",  # longer than the outage: the runs go on rather than being reaped
        "SSE_HEARTBEAT_SECONDS": "1",  # streams notice the outage (and close) within a second
    }
    return start_service("api", settings), start_service("orchestrator", settings), settings


def restart(pg_cluster, outage=OUTAGE):
    """Stop the server (fast shutdown), keep it down for `outage` seconds, start it; (down_at, up_at)."""
    down_at = time.monotonic()
    try:
        pg_cluster.stop()
        time.sleep(outage)
    finally:
        pg_cluster.start()  # whatever happens, the rest of the session needs its server
    return down_at, time.monotonic()


def test_a_database_restart_under_load_costs_only_503s_during_the_outage_and_loses_nothing(
    stack, pg_cluster, database_url
):
    api, orchestrator, settings = stack
    users = create_accounts(database_url, CLIENTS, PASSWORD)
    runners = [sign_up(settings) for _ in range(RUNS)]
    run_ids = [create_run(orchestrator, user, steps=STEPS) for user in runners]

    tally, stop = Tally(), threading.Event()
    deadline = time.monotonic() + LOAD_SECONDS + 30
    clients = [ApiClient(api.url, user, PASSWORD, tally, stop, deadline) for user in users]
    followers = [
        StreamFollower(orchestrator.url, user["headers"], run_id, tally, deadline)
        for user, run_id in zip(runners, run_ids, strict=True)
        for _ in range(STREAMS_PER_RUN)
    ]
    for thread in clients + followers:
        thread.start()
    time.sleep(RESTART_AFTER)
    down_at, up_at = restart(pg_cluster)
    time.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - down_at) - RESTART_AFTER))
    stop.set()
    stuck = wait_for_threads(clients + followers, deadline)

    during = tally.failures(lambda o: o.started < up_at and o.ended >= down_at)
    outside = tally.failures(lambda o: not (o.started < up_at and o.ended >= down_at))
    retried_ok = sum(c.refresh_retried_ok for c in clients)
    refused = sum(c.refresh_retry_refused for c in clients)
    closes = sum((f.closes for f in followers), start=Counter())
    print()
    print(tally.summary(f"database restart (down {up_at - down_at:.1f} s)"))
    print(f"  during the outage: {tally.counts(during)}")
    print(f"  outside it (must be none): {tally.counts(outside)}")
    print(f"  refreshes answered 503 then retried with the same token: {retried_ok} succeeded, {refused} refused")
    reconnects = sum(f.connects for f in followers) - len(followers)
    print(f"  stream closes by reason: {dict(closes)}; reconnects: {reconnects}")

    assert not stuck, stuck
    assert outside == [], tally.counts(outside)
    assert {o.status for o in during} <= {503}, tally.counts(during)  # no 500, no connection error
    # The load spanned the outage: requests were under way when the server went and after it came back.
    # (How many of them failed rather than waited is chance: a request waits for a pooled connection up
    # to the pool's timeout, so most of those that arrive during the outage are only delayed.)
    assert any(o.started < down_at for o in tally.outcomes) and any(o.started > up_at for o in tally.outcomes)
    assert refused == 0  # every refresh answered 503 succeeded when retried with the same token

    # Every service recovered without a restart.
    for service in (api, orchestrator):
        assert requests.get(f"{service.url}/ready", timeout=10).status_code == 200

    # Every run completed, and every stream saw each of its events exactly once, to the end.
    runs = stored_runs(database_url, run_ids)
    assert {run["status"] for run in runs.values()} == {"completed"}, runs
    for follower in followers:
        assert follower.finished
        assert [int(e["id"]) for e in follower.events] == list(range(1, runs[follower.run_id]["last_seq"] + 1))
    assert broken_invariants(database_url) == {}

    # Then a restart while nobody asks anything, as at night: every idle pooled connection died with the
    # old server, and the first requests once it is back must not be the ones to find out.
    down_at, up_at = restart(pg_cluster, outage=0)
    quiet = Tally()
    probes = [Probe(api.url, "/me", user["headers"], quiet) for user in runners]
    probes += [
        Probe(orchestrator.url, f"/runs/{run_id}", user["headers"], quiet)
        for user, run_id in zip(runners, run_ids, strict=True)
    ]
    for probe in probes:
        probe.start()
    assert wait_for_threads(probes, time.monotonic() + 60) == []
    print(quiet.summary(f"quiet restart (down {up_at - down_at:.1f} s), then GETs"))
    assert quiet.failures() == [], quiet.counts()
