"""Server-Sent Events shared by every stream: wire format, the response, per-user caps, the wait loop.

A stream is a generator that never holds a pooled connection: it waits on its Broker queue and
borrows a connection only to re-read the store or re-check its session.
"""

import json
import queue
import threading
import time

import psycopg
from flask import Response, current_app

from common import metrics, notify
from common.errors import ApiError
from common.notify import RESYNC, SHUTDOWN

RETRY_MS = 3000  # how long a browser waits before reconnecting


def event(event_id, name, data):
    """One SSE event. JSON keeps `data` on one line, so no text inside it can start another event."""
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def comment(text):
    """An SSE comment line (heartbeats): ignored by clients, but it keeps proxies and NATs open."""
    return f": {text}\n\n"


class StreamLimiter:
    """Counts the open streams of each user in this process and refuses past the cap."""

    def __init__(self, max_per_user, gauge):
        self.max_per_user = max_per_user
        self.gauge = gauge
        self._open = {}
        self._lock = threading.Lock()

    def acquire(self, user_id):
        with self._lock:
            if self._open.get(user_id, 0) >= self.max_per_user:
                return False
            self._open[user_id] = self._open.get(user_id, 0) + 1
        self.gauge.inc()
        return True

    def release(self, user_id):
        with self._lock:
            self._open[user_id] -= 1
            if not self._open[user_id]:
                del self._open[user_id]
        self.gauge.dec()


def init_app(app, config):
    """Give the app a LISTEN broker for its streams and a per-user limiter of open streams."""
    notify.init_app(app, config)
    gauge = metrics.gauge(app, "oneshot_sse_streams_open", "SSE streams open now.")
    app.extensions["sse_limiter"] = StreamLimiter(config.sse_max_streams_per_user, gauge)


def stream_response(user_id, chunks):
    """A text/event-stream response of the `chunks` generator; 429 past the user's cap of open streams."""
    limiter = current_app.extensions["sse_limiter"]
    if not limiter.acquire(user_id):
        raise ApiError(429, "too_many_streams", "Too many open streams; close one first.", {"Retry-After": "5"})
    response = Response(chunks, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    # Released when the server closes the response, even if the generator never started.
    response.call_on_close(lambda: limiter.release(user_id))
    return response


def watch(inbox, config, claims, session_live):
    """What a stream should do next, forever: ("message", m), ("resync", None), ("heartbeat", None),
    or finally ("close", reason) — shutdown, token_expired, session_revoked, max_lifetime or unavailable.

    Heartbeats and resyncs re-check the session too, so a revocation whose notification was missed
    still ends the stream within one heartbeat.
    """
    now = time.monotonic()
    deadlines = [
        (now + config.sse_max_stream_seconds, "max_lifetime"),
        (now + claims["exp"] - time.time(), "token_expired"),
    ]
    deadline, reason = min(deadlines)
    heartbeat_due = now + config.sse_heartbeat_seconds
    while True:
        now = time.monotonic()
        if now >= deadline:
            yield "close", reason
            return
        try:
            item = inbox.get(timeout=max(0.0, min(heartbeat_due, deadline) - now))
        except queue.Empty:
            if time.monotonic() < heartbeat_due:
                continue  # the deadline came first
            heartbeat_due = time.monotonic() + config.sse_heartbeat_seconds
            item = "heartbeat"
        if item == SHUTDOWN:
            yield "close", "shutdown"
            return
        if item in (RESYNC, "heartbeat") or item.get("kind") == "session":
            try:
                live = session_live()
            except psycopg.OperationalError:  # PoolTimeout included
                yield "close", "unavailable"
                return
            if not live:
                yield "close", "session_revoked"
                return
            if item == RESYNC:
                yield "resync", None
            elif item == "heartbeat":
                yield "heartbeat", None
            continue
        yield "message", item
