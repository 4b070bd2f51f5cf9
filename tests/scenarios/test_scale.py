"""One gevent worker holds 1,000 SSE streams of one run: each costs a greenlet, not a thread or a connection.

The clients are raw non-blocking sockets driven by `selectors` from the test's own thread (a thousand
client threads would measure the client, not the server). `SseClients` and `worker_pids` are also
used by the shutdown tests and by bin/bench.py.
"""

import json
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import allow_open_files, proc_status, worker_pids
from tests.support.runs import create_run
from tests.support.sse_clients import SseClients

STREAMS = 1000
POOL_SIZE = 10
# Steps far slower than the test, so the run stays `running` throughout; the lease must exceed two steps.
SLOW_RUN = {"RUN_STEP_DELAY_MS": "4000", "RUN_LEASE_SECONDS": "60"}


class ConnectionSampler:
    """Counts, every 50 ms on a thread of its own, the server connections to one database; keeps the peak."""

    # Client backends only: an autovacuum worker busy on this (fresh, write-heavy) database counts
    # under its datname too, and once made the peak one more than the service's connections.
    SQL = (
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )

    def __init__(self, conn):
        self.conn, self.peak, self.samples = conn, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="connection-sampler", daemon=True)

    def count(self):
        return self.conn.execute(self.SQL).fetchone()["n"]

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.count())
            self.samples += 1
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def open_streams_gauge(service):
    """The `oneshot_sse_streams_open` gauge from /metrics."""
    text = requests.get(f"{service.url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        if family.name == "oneshot_sse_streams_open":
            return sum(sample.value for sample in family.samples)
    raise AssertionError("no oneshot_sse_streams_open in /metrics")


def test_one_worker_holds_a_thousand_streams_without_a_thread_or_connection_each(
    start_service, orchestrator_env, sign_up, db
):
    if not allow_open_files(STREAMS + 1000):
        pytest.skip(f"needs {STREAMS + 1000} open files: raise the hard limit (ulimit -Hn)")
    env = {
        **orchestrator_env,
        **SLOW_RUN,
        "WEB_CONCURRENCY": "1",
        "SSE_MAX_STREAMS_PER_USER": str(STREAMS),
        "DB_POOL_SIZE": str(POOL_SIZE),
    }
    service = start_service("orchestrator", env)
    [worker] = worker_pids(service.proc.pid)
    user = sign_up()
    run_id = create_run(service, user, steps=50)

    with ConnectionSampler(db) as connections, SseClients(service.url) as clients:
        started = time.monotonic()
        streams = clients.open(f"/runs/{run_id}/events", user["headers"], STREAMS, timeout=30)
        opened_in = time.monotonic() - started
        print(f"{STREAMS} streams open in {opened_in:.1f}s")
        failures = [(s.error, s.status, s.body[:200]) for s in streams if s.status != 200]
        assert not failures, f"{len(failures)} streams failed, e.g. {failures[:3]}"
        assert all(s.is_event_stream for s in streams)
        assert all(s.events[0].get("retry") for s in streams)
        assert open_streams_gauge(service) == STREAMS

        # The worker still answers at once while it holds them all.
        for _ in range(5):
            asked = time.monotonic()
            health = requests.get(f"{service.url}/health", timeout=2)
            assert health.status_code == 200 and health.json() == {"ok": True}
            assert time.monotonic() - asked < 2
        assert create_run(service, user, steps=1)

        # Past the cap, the same user is refused before the stream starts.
        with requests.get(
            f"{service.url}/runs/{run_id}/events", headers=user["headers"], stream=True, timeout=5
        ) as refused:
            assert refused.status_code == 429, refused.status_code
            assert refused.json()["error"]["code"] == "too_many_streams"
            assert int(refused.headers["Retry-After"]) > 0

        # A greenlet each, not a thread each; and no connection held per stream.
        threads = proc_status(worker, "Threads")
        print(f"worker threads with {STREAMS} streams: {threads}")
        assert threads < 50, threads  # a thread per stream would make it over a thousand
        now = connections.count()
        print(f"connections to the database: now {now}, peak {connections.peak} over {connections.samples} samples")
        assert connections.samples > 10
        assert max(now, connections.peak) <= POOL_SIZE + 1, "more connections than the pool plus the listener"

        # Every stream is live: an event the run writes after this point reaches all of them.
        target = max(s.last_id for s in streams) + 1
        assert clients.pump(lambda: all(s.last_id >= target for s in streams), 15), "an event missed some streams"
        assert not any(s.eof for s in streams)


def test_the_stream_cap_counts_each_user_separately_and_frees_a_slot_when_a_client_leaves(
    start_service, orchestrator_env, sign_up
):
    env = {
        **orchestrator_env,
        **SLOW_RUN,
        "WEB_CONCURRENCY": "1",
        "SSE_MAX_STREAMS_PER_USER": "2",
        "SSE_HEARTBEAT_SECONDS": "1",  # a client that left is noticed at the next write
    }
    service = start_service("orchestrator", env)
    alice, bob = sign_up(), sign_up()
    alice_path = f"/runs/{create_run(service, alice, steps=50)}/events"
    bob_path = f"/runs/{create_run(service, bob, steps=50)}/events"

    with SseClients(service.url) as clients:
        first, second = clients.open(alice_path, alice["headers"], 2, timeout=10)
        assert (first.status, second.status) == (200, 200)
        [third] = clients.open(alice_path, alice["headers"], 1, timeout=10)
        assert third.status == 429 and json.loads(third.body)["error"]["code"] == "too_many_streams"
        assert int(third.headers["retry-after"]) > 0
        [bobs] = clients.open(bob_path, bob["headers"], 1, timeout=10)
        assert bobs.status == 200 and bobs.is_event_stream

        clients.close_stream(first)
        left = time.monotonic()
        deadline = left + 10
        while True:
            [again] = clients.open(alice_path, alice["headers"], 1, timeout=5)
            if again.status == 200:
                break
            assert again.status == 429, (again.status, again.body)
            clients.close_stream(again)
            assert time.monotonic() < deadline, "the slot of a client that left was not freed within 10s"
            time.sleep(0.2)
        print(f"slot freed {time.monotonic() - left:.1f}s after the client left")
        assert again.is_event_stream
        # The other stream of Alice's was not the one given up.
        assert clients.pump(lambda: any("comment" in e for e in second.events), 5) and not second.eof
