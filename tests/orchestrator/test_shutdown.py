"""SIGTERM under real gunicorn: open streams end with a final `close` event, the process exits well within
its graceful timeout, and a run in flight is failed with reason `shutdown` rather than left `running`."""

import signal
import subprocess
import threading
import time

import psycopg

from tests.support.runs import create_run
from tests.support.services import wait_for
from tests.support.sse_clients import SseClients

STREAMS = 20
EXIT_WITHIN = 10  # seconds; gunicorn's graceful_timeout (25) is the hard limit
SLOW_RUN = {"RUN_STEP_DELAY_MS": "1000", "RUN_LEASE_SECONDS": "10"}


class ExitTimer:
    """Signals a service and notes, from a thread of its own, how long its gunicorn master took to exit."""

    def __init__(self, service):
        self.service, self.seconds, self.code = service, None, None
        self._thread = threading.Thread(target=self._wait, daemon=True)

    def _wait(self):
        try:
            self.code = self.service.proc.wait(40)
        except subprocess.TimeoutExpired:
            return  # `seconds` stays None; the fixture kills it at teardown
        self.seconds = time.monotonic() - self._signalled

    def signal(self, sig=signal.SIGTERM):
        self.signalled_at = time.time()  # wall clock, to compare with the arrival times of events
        self._signalled = time.monotonic()
        self.service.proc.send_signal(sig)
        self._thread.start()
        return self

    def join(self, timeout):
        self._thread.join(timeout)
        return self.seconds


def sigterm_with_open_streams(service, path, user):
    """Open STREAMS streams of `path`, SIGTERM the service; every stream must end with a shutdown event
    and the process exit cleanly within EXIT_WITHIN seconds. Returns the streams."""
    with SseClients(service.url) as clients:
        streams = clients.open(path, user["headers"], STREAMS, timeout=15)
        assert [s.status for s in streams] == [200] * STREAMS
        # Every stream has caught up and is waiting for live events.
        assert clients.pump(lambda: all(s.named_events() for s in streams), 10)

        timer = ExitTimer(service).signal()
        ended = clients.pump(lambda: all(s.finished for s in streams), EXIT_WITHIN + 5)
        exit_seconds = timer.join(EXIT_WITHIN + 5)
        assert ended, [(len(s.events), s.body_done, s.eof) for s in streams if not s.finished]
        assert_closed_for_shutdown(streams)
        closed_in = max(s.named_events()[-1]["at"] for s in streams) - timer.signalled_at

    assert exit_seconds is not None and exit_seconds < EXIT_WITHIN, exit_seconds
    print(f"{service.module}: last close event {closed_in:.2f}s, process exit {exit_seconds:.2f}s after SIGTERM")
    assert timer.code == 0, service.log()[-3000:]
    return streams


def assert_failed_by_shutdown(db, run_id):
    """The run ended `failed` with error `shutdown`, and that is its last event."""
    run = db.execute("SELECT status, error, last_seq FROM runs WHERE id = %s", (run_id,)).fetchone()
    assert (run["status"], run["error"]) == ("failed", "shutdown"), run
    last = db.execute("SELECT seq, type, data FROM run_events WHERE run_id = %s ORDER BY seq DESC LIMIT 1", (run_id,))
    last = last.fetchone()
    assert last["seq"] == run["last_seq"]
    assert (last["type"], last["data"]) == ("failed", {"status": "failed", "reason": "shutdown"}), last


def assert_closed_for_shutdown(streams):
    """Each stream's last event is `close` with reason `shutdown`; then its response ended and the socket closed."""
    for stream in streams:
        named = stream.named_events()
        assert named, f"stream received no event: {stream.events}"
        assert (named[-1]["event"], named[-1]["data"]) == ("close", {"reason": "shutdown"}), named[-3:]
        assert [e["event"] for e in named].count("close") == 1
        assert stream.body_done and stream.eof and not stream.error, (stream.body_done, stream.eof, stream.error)


def test_sigterm_closes_run_streams_with_a_shutdown_event_and_fails_the_run_in_flight(
    start_service, orchestrator_env, sign_up, db
):
    env = {**orchestrator_env, **SLOW_RUN, "SSE_MAX_STREAMS_PER_USER": "100"}
    service = start_service("orchestrator", env)
    user = sign_up()
    run_id = create_run(service, user, steps=50)

    sigterm_with_open_streams(service, f"/runs/{run_id}/events", user)
    assert_failed_by_shutdown(db, run_id)


def test_sigterm_fails_a_run_whose_step_is_being_written_at_that_moment(
    start_service, orchestrator_env, sign_up, db, database_url
):
    """A step caught mid-transaction (a slow database, or a step delay near 0) must not exempt its run.

    Holding back inserts into run_events makes the executor's next step wait inside its transaction,
    with the run's row locked, for as long as the test likes; the lock is let go once the worker has
    had time to run its shutdown hooks (or has exited).
    """
    service = start_service("orchestrator", {**orchestrator_env, **SLOW_RUN, "WEB_CONCURRENCY": "1"})
    run_id = create_run(service, sign_up(), steps=50)
    waiting_on_a_lock = (
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with psycopg.connect(database_url) as locker:
        locker.execute("LOCK TABLE run_events IN SHARE MODE")
        wait_for(lambda: db.execute(waiting_on_a_lock).fetchone()["n"] >= 1, 5)
        timer = ExitTimer(service).signal()
        timer.join(3)  # the worker notices SIGTERM within a second and runs its shutdown hooks
        locker.rollback()
    exit_seconds = timer.join(EXIT_WITHIN)
    assert exit_seconds is not None and exit_seconds < EXIT_WITHIN, exit_seconds
    print(f"orchestrator exited {exit_seconds:.2f}s after SIGTERM")
    assert_failed_by_shutdown(db, run_id)


def test_sigterm_closes_api_event_streams_with_a_shutdown_event(start_service, env, sign_up):
    service = start_service("api", {**env, "SSE_MAX_STREAMS_PER_USER": "100"})
    user = sign_up()

    streams = sigterm_with_open_streams(service, "/events", user)
    assert all(s.named_events()[0]["event"] == "ready" for s in streams)
