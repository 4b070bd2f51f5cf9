"""Load for the fault tests: API clients that sign in, rotate refresh chains and call /me, followers
of run streams that resume with Last-Event-ID, and a tally of every answer clients got, by kind.

Each client is a thread with its own `requests.Session` (keep-alive, like a browser or an SDK).
Loops are bounded by a deadline as well as by the `stop` event, so a hung service fails the test
instead of holding it.
"""

import threading
import time
from collections import Counter
from dataclasses import dataclass

import psycopg
import requests
from psycopg.rows import dict_row

from tests.support.sse import read_sse

TERMINAL = ("completed", "failed", "cancelled")
TIMEOUT = (5, 30)  # connect, read: above the services' 10 s wait for a pooled connection
RETRY_DELAY = 0.1  # between two attempts at the same request (a 503, a refused connection)


@dataclass
class Outcome:
    """One answer a client got (or the error it got instead), with when it was asked and answered."""

    what: str  # "token", "refresh", "me", "stream"
    started: float  # time.monotonic()
    ended: float
    status: int | None = None  # the HTTP status, None for a connection error
    error: str | None = None  # the JSON error code, the exception's class, or "stream cut"

    @property
    def ok(self):
        return self.error is None and self.status is not None and self.status < 400

    @property
    def kind(self):
        """What went wrong, for counting: "503 database_unavailable", "ConnectionError", ..."""
        if self.status is None:
            return self.error
        return f"{self.status} {self.error}" if self.error else str(self.status)


class Tally:
    """Every outcome of every client, thread-safe."""

    def __init__(self):
        self.outcomes = []
        self._lock = threading.Lock()

    def record(self, outcome):
        with self._lock:
            self.outcomes.append(outcome)
        return outcome

    def failures(self, where=lambda outcome: True):
        """The outcomes that were not a success (and match `where`)."""
        with self._lock:
            return [o for o in self.outcomes if not o.ok and where(o)]

    def counts(self, outcomes=None):
        """{"me 503 database_unavailable": 3, ...} for `outcomes` (default: every failure)."""
        return dict(Counter(f"{o.what} {o.kind}" for o in (self.failures() if outcomes is None else outcomes)))

    def summary(self, title):
        """One printable block: requests by kind, failures by kind."""
        with self._lock:
            total = Counter(o.what for o in self.outcomes)
        lines = [f"{title}: {sum(total.values())} answers ({dict(total)})"]
        lines += [f"  {count:6d} × {kind}" for kind, count in sorted(self.counts().items())] or ["  no failures"]
        return "\n".join(lines)


def error_code(response):
    """The `error.code` of a JSON error body, else the reason phrase."""
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return response.reason or "no JSON error"


class ApiClient(threading.Thread):
    """Signs in, then rotates a refresh chain of `chain` links, calling /me with each new access token.

    A refresh answered 503 (or 502 by a proxy) is retried with the same refresh token: the token was
    not spent, so the retry must succeed (`refresh_retried_ok` counts those, `refresh_retry_refused` any that did not).
    """

    def __init__(self, api_url, user_id, password, tally, stop, deadline, chain=25, think=0.02):
        super().__init__(daemon=True, name=f"client-{user_id}")
        self.api_url, self.user_id, self.password = api_url, user_id, password
        self.tally, self.stop, self.deadline = tally, stop, deadline
        self.chain, self.think = chain, think
        self.refresh_retried_ok = self.refresh_retry_refused = 0
        self.session = requests.Session()

    def _call(self, what, method, path, **kwargs):
        started = time.monotonic()
        try:
            response = self.session.request(method, f"{self.api_url}{path}", timeout=TIMEOUT, **kwargs)
        except requests.RequestException as e:
            return self.tally.record(Outcome(what, started, time.monotonic(), error=type(e).__name__)), None
        outcome = Outcome(what, started, time.monotonic(), response.status_code)
        if response.status_code >= 400:
            outcome.error = error_code(response)
        return self.tally.record(outcome), response

    def _until_answered(self, what, method, path, **kwargs):
        """The request, repeated while it gets a 503 (database away), a 502 (instance away) or no answer
        at all; (outcome, response, attempts)."""
        attempts = 0
        while True:
            attempts += 1
            outcome, response = self._call(what, method, path, **kwargs)
            retry = response is None or response.status_code in (502, 503)
            if not retry or time.monotonic() >= self.deadline:
                return outcome, response, attempts
            time.sleep(RETRY_DELAY)

    def _sign_in(self):
        body = {"userId": self.user_id, "password": self.password}
        outcome, response, _ = self._until_answered("token", "POST", "/auth/token", json=body)
        return response.json() if outcome.ok else None

    def _refresh(self, pair):
        body = {"refreshToken": pair["refreshToken"]}
        outcome, response, attempts = self._until_answered("refresh", "POST", "/auth/refresh", json=body)
        if attempts > 1 and response is not None and response.status_code not in (502, 503):
            if outcome.ok:
                self.refresh_retried_ok += 1
            else:
                self.refresh_retry_refused += 1
        return response.json() if outcome.ok else None

    def run(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            pair = self._sign_in()
            for _ in range(self.chain):
                if pair is None or self.stop.is_set():
                    break
                time.sleep(self.think)
                pair = self._refresh(pair)
                if pair is not None:
                    headers = {"Authorization": f"Bearer {pair['token']}"}
                    self._until_answered("me", "GET", "/me", headers=headers)
            time.sleep(self.think)


class StreamFollower(threading.Thread):
    """Follows one run's event stream to its terminal event, reconnecting with Last-Event-ID whenever
    the server closes it (`event: close`), refuses it (503) or the connection fails.

    `events` are the named events received, in order (no `close`); `closes` counts the reasons the
    server gave for closing.
    """

    def __init__(self, orchestrator_url, headers, run_id, tally, deadline):
        super().__init__(daemon=True, name=f"stream-{run_id}")
        self.run_id = run_id
        self.url = f"{orchestrator_url}/runs/{run_id}/events"
        self.headers, self.tally, self.deadline = headers, tally, deadline
        self.events, self.closes, self.connects = [], Counter(), 0
        self.finished = False
        self.session = requests.Session()

    @property
    def last_id(self):
        return int(self.events[-1]["id"]) if self.events else 0

    def _open(self):
        started = time.monotonic()
        headers = {**self.headers, "Accept": "text/event-stream", "Last-Event-ID": str(self.last_id)}
        try:
            response = self.session.get(self.url, headers=headers, stream=True, timeout=TIMEOUT)
        except requests.RequestException as e:
            self.tally.record(Outcome("stream", started, time.monotonic(), error=type(e).__name__))
            return None
        outcome = self.tally.record(Outcome("stream", started, time.monotonic(), response.status_code))
        if response.status_code >= 400:
            outcome.error = error_code(response)
            response.close()
            return None
        return response

    def _read(self, response):
        """Read one connection's events; True when the run's stream is over."""
        if response.status_code == 204:
            return True  # the run ended and we have every event
        started, closed = time.monotonic(), False
        try:
            for event in read_sse(response, limit=10**6):
                if "event" not in event:
                    continue  # a heartbeat
                if event["event"] == "close":
                    self.closes[event["data"]["reason"]] += 1
                    closed = True
                    break
                self.events.append(event)
                if event["event"] in TERMINAL:
                    return True
        except requests.RequestException as e:
            self.tally.record(Outcome("stream", started, time.monotonic(), error=f"stream cut ({type(e).__name__})"))
            return False
        finally:
            response.close()
        if not closed:  # the connection ended without a close event or the run's end
            self.tally.record(Outcome("stream", started, time.monotonic(), error="stream cut (no close event)"))
        return False

    def run(self):
        while time.monotonic() < self.deadline:
            response = self._open()
            if response is None:
                time.sleep(RETRY_DELAY)
                continue
            self.connects += 1
            if self._read(response):
                self.finished = True
                return


class Probe(threading.Thread):
    """`count` GETs of one path, one after another, each on a new connection (as many clients would
    come); every answer is tallied as `what`."""

    def __init__(self, base_url, path, headers, tally, count=5, what=None):
        super().__init__(daemon=True, name=f"probe-{path}")
        self.url, self.headers, self.tally, self.count = f"{base_url}{path}", headers, tally, count
        self.what = what or path.strip("/").split("/")[0]

    def run(self):
        for _ in range(self.count):
            started = time.monotonic()
            try:
                response = requests.get(self.url, headers=self.headers, timeout=TIMEOUT)
            except requests.RequestException as e:
                self.tally.record(Outcome(self.what, started, time.monotonic(), error=type(e).__name__))
                continue
            outcome = Outcome(self.what, started, time.monotonic(), response.status_code)
            if response.status_code >= 400:
                outcome.error = error_code(response)
            self.tally.record(outcome)


def wait_for_threads(threads, deadline):
    """Join `threads` until `deadline` (time.monotonic()); the names of those still running."""
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [thread.name for thread in threads if thread.is_alive()]


def stored_runs(database_url, run_ids):
    """{run id: its row (status, error, last_seq, lease_owner)} as the database has it now."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT id::text, status, error, last_seq, lease_owner FROM runs WHERE id = ANY(%s::uuid[])",
            (list(run_ids),),
        ).fetchall()
    return {row["id"]: row for row in rows}
