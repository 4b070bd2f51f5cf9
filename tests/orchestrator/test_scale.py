"""One gevent worker holds 1,000 SSE streams of one run: each costs a greenlet, not a thread or a connection.

The clients are raw non-blocking sockets driven by `selectors` from the test's own thread (a thousand
client threads would measure the client, not the server). `SseClients` and `worker_pids` are also
used by the shutdown tests and by bin/bench.py.
"""

import codecs
import errno
import json
import os
import resource
import selectors
import socket
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

STREAMS = 1000
POOL_SIZE = 10
# Steps far slower than the test, so the run stays `running` throughout; the lease must exceed two steps.
SLOW_RUN = {"RUN_STEP_DELAY_MS": "4000", "RUN_LEASE_SECONDS": "60"}


class SseSocket:
    """One HTTP/1.1 GET of an SSE stream on a non-blocking socket, parsed as its bytes arrive.

    `events` holds what the stream sent, in order, each a dict stamped with its arrival time
    (`at`, time.time()): `{"retry": ...}`, `{"comment": ...}` or `{"id", "event", "data"}`.
    """

    def __init__(self, address, path, headers):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        lines = [f"GET {path} HTTP/1.1", f"Host: {address[0]}:{address[1]}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.outgoing = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.error = None  # why the connection failed, if it did
        self.status, self.headers = None, {}
        self.events = []
        self.last_id = 0  # the id of the newest event received (0 before any)
        self.body = ""  # the body of a response that is not an event stream (a JSON error)
        self.body_done = False  # the response ended: its last chunk, or all of its Content-Length, arrived
        self.eof = False  # the server closed the connection
        self._raw = b""  # received bytes not parsed yet
        self._text = ""  # decoded body text that is not a complete event yet
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._chunked, self._length, self._received = False, None, 0
        self._chunk_left, self._chunk_crlf = 0, False
        code = self.sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            self.error = os.strerror(code)

    def fileno(self):
        return self.sock.fileno()

    @property
    def is_event_stream(self):
        return self.headers.get("content-type", "").startswith("text/event-stream")

    @property
    def ready(self):
        """Done connecting: failed, or its headers arrived and then the `retry:` line (or, for any
        other response, the whole body)."""
        if self.error or self.eof:
            return True
        if self.status is None:
            return False
        if self.is_event_stream:
            return any("retry" in e for e in self.events)
        return self.body_done

    @property
    def finished(self):
        """The response is over and the server closed the connection."""
        return self.error is not None or (self.body_done and self.eof)

    def named_events(self):
        """The events that have an `event:` name (no retry hints, no heartbeat comments)."""
        return [e for e in self.events if "event" in e]

    def send_request(self):
        """Called when the socket is writable: finish connecting and send the request; True once sent."""
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.error = os.strerror(code)
            return False
        try:
            sent = self.sock.send(self.outgoing)
        except BlockingIOError:
            return False
        except OSError as e:
            self.error = str(e)
            return False
        self.outgoing = self.outgoing[sent:]
        return not self.outgoing

    def receive(self):
        """Called when the socket is readable: read what arrived and parse it."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            self.error, self.eof = str(e), True
            return
        if not data:
            self.eof = True
            return
        self._raw += data
        self._parse(time.time())

    def _parse(self, now):
        if self.status is None:
            end = self._raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self._raw = self._raw[:end].decode("latin-1"), self._raw[end + 4 :]
            status_line, *header_lines = head.split("\r\n")
            self.status = int(status_line.split()[1])
            for line in header_lines:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
            if "content-length" in self.headers:
                self._length = int(self.headers["content-length"])
        text = self._decoder.decode(self._body_bytes())
        if not self.is_event_stream:
            self.body += text
            return
        self._text += text
        *blocks, self._text = self._text.split("\n\n")
        for block in blocks:
            item = {"at": now}
            for line in block.split("\n"):
                if line.startswith(":"):
                    item["comment"] = line[1:].strip()
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    item[name] = json.loads(value) if name == "data" else value
            if item.get("id", "").isdigit():
                self.last_id = int(item["id"])
            self.events.append(item)

    def _body_bytes(self):
        """Take the body bytes out of `_raw`, undoing chunked transfer encoding."""
        if not self._chunked:
            data, self._raw = self._raw, b""
            self._received += len(data)
            if self._length is not None and self._received >= self._length:
                self.body_done = True
            return data
        out = []
        while self._raw and not self.body_done:
            if self._chunk_left:
                piece = self._raw[: self._chunk_left]
                self._raw = self._raw[len(piece) :]
                self._chunk_left -= len(piece)
                self._chunk_crlf = not self._chunk_left
                out.append(piece)
            elif self._chunk_crlf:
                if len(self._raw) < 2:
                    break
                self._raw, self._chunk_crlf = self._raw[2:], False
            else:
                end = self._raw.find(b"\r\n")
                if end < 0:
                    break
                size = int(self._raw[:end].split(b";")[0], 16)
                self._raw = self._raw[end + 2 :]
                if size == 0:
                    self.body_done = True  # the last chunk: the stream is over
                self._chunk_left = size
        return b"".join(out)

    def close(self):
        self.sock.close()


class SseClients:
    """Many `SseSocket`s driven from this thread by one selector. A context manager that closes them all."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.selector = selectors.DefaultSelector()
        self.streams = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self, path, headers, count, timeout=30, window=200):
        """Open `count` streams of `path`, at most `window` connecting at a time, and return them once
        each is `ready` (response headers and the `retry:` line in, or failed). Raises TimeoutError."""
        opened, connecting = [], set()
        deadline = time.monotonic() + timeout
        while len(opened) < count or connecting:
            while len(opened) < count and len(connecting) < window:
                stream = SseSocket(self.address, path, headers)
                self.streams.append(stream)
                opened.append(stream)
                if not stream.error:
                    self.selector.register(stream, selectors.EVENT_WRITE)
                    connecting.add(stream)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(opened) - len(connecting)} of {count} streams ready after {timeout}s")
            self.step(0.05)
            connecting = {s for s in connecting if not s.ready}
        return opened

    def step(self, timeout):
        """Wait up to `timeout` seconds for sockets to be ready, and service those that are."""
        for key, mask in self.selector.select(timeout):
            stream = key.fileobj
            if mask & selectors.EVENT_WRITE:
                if stream.send_request():
                    self.selector.modify(stream, selectors.EVENT_READ)
            elif mask & selectors.EVENT_READ:
                stream.receive()
            if stream.error or stream.eof:
                self.selector.unregister(stream)

    def pump(self, until, timeout, check_every=0.02):
        """Read from every stream until `until()` is true (return True) or `timeout` seconds pass (False).

        `until` is asked at most every `check_every` seconds: with thousands of streams it is the costly part.
        """
        deadline = time.monotonic() + timeout
        while not until():
            next_check = min(deadline, time.monotonic() + check_every)
            while (remaining := next_check - time.monotonic()) > 0:
                self.step(min(0.05, remaining))
            if time.monotonic() >= deadline:
                return until()
        return True

    def close_stream(self, stream):
        """Hang up one stream, as a client that goes away does."""
        if stream.sock.fileno() >= 0 and not (stream.error or stream.eof):
            self.selector.unregister(stream)
        stream.close()

    def close(self):
        for stream in self.streams:
            stream.close()
        self.selector.close()


def worker_pids(master_pid):
    """The pids of gunicorn's workers: the children of its master process."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def proc_status(pid, field):
    """A numeric field of /proc/<pid>/status (VmRSS is in kB, Threads a count)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def allow_open_files(needed):
    """Raise this process's soft limit of open files to the hard one if `needed` would not fit; False
    if even the hard limit is too low. Call it before starting services: their workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return True
    if hard != resource.RLIM_INFINITY and hard < needed:
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else hard, hard))
    return True


def create_run(service, user, steps=50):
    response = requests.post(
        f"{service.url}/runs", json={"prompt": "Hold many streams", "steps": steps}, headers=user["headers"], timeout=10
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


class ConnectionSampler:
    """Counts, every 50 ms on a thread of its own, the server connections to one database; keeps the peak."""

    SQL = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"

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
    run_id = create_run(service, user)

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
    alice_path, bob_path = f"/runs/{create_run(service, alice)}/events", f"/runs/{create_run(service, bob)}/events"

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
