"""Server-Sent Events: the wire format, and the one driver every stream runs on.

A stream is a `Handler` (what to send first, and for each message) run by `respond`, which owns what
streams share: the per-user cap (429), the `retry:` line, (un)subscribing, heartbeats, the session
re-check, the deadlines (maximum lifetime, token expiry), shutdown, and the `close` event before any
server-side close. A stream holds no pooled connection: it waits on its inbox and borrows one only to
read the store or check its session. Chunks are bytes; a run event's text is made once per process.
"""

import json
import time

import psycopg
from flask import Response, request

from common import metrics, notify, state
from common.bearer import session_is_live
from common.errors import ApiError
from common.inbox import RESYNC, SHUTDOWN, TICK
from common.messages import SESSION
from common.stream_response import Body, StreamLimiter

RETRY_MS = 3000  # how long a browser waits before reconnecting
# A heartbeat's session check may reuse an answer this recent (one query a second for all the streams
# of a session, not one per stream): a missed revocation still ends a stream within a heartbeat and a second.
CHECK_SLACK = 1.0
RETRY = f"retry: {RETRY_MS}\n\n".encode()
HEARTBEAT = b": heartbeat\n\n"


def event(event_id, name, data):
    """One SSE event. JSON keeps `data` on one line, so no text inside it can start another event."""
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def shared_event(message):
    """The SSE bytes of a run-event `Message`, made the first time a stream sends it and kept on the
    message for every other stream of the process. The same bytes as `event` makes from the row."""
    if message.text is None:
        message.text = event(message.seq, message.type, message.data)
    return message.text


class Handler:
    """What one stream says; `respond` runs it. Override what the stream needs.

    `keys`: broker keys to subscribe to besides the user's own (which carries session changes).
    `last_id`: the id the `close` event carries. `done`: set when the last event was sent; the
    driver then ends the stream. Each method returns the chunks (bytes) to send, in order.
    """

    __slots__ = ()  # subclasses declare theirs: a handler lives as long as its stream
    keys = ()
    last_id = 0
    done = False

    def opening(self, since):
        """What to send after the retry line, before anything live (a `ready` event, a replay read
        by a query started at `since` or later: the moment the stream subscribed)."""
        return ()

    def on_message(self, message):
        """What to send for one broker `Message` (not session changes: the driver handles those)."""
        return ()

    def on_resync(self, since):
        """What to send when messages may have been missed: re-read the store if there is one, with a
        query started at `since` or later."""
        return ()


def init_app(app, config):
    """Give the app a LISTEN broker for its streams and a per-user limiter of open streams."""
    notify.init_app(app, config)
    gauge = metrics.gauge(app, "oneshot_sse_streams_open", "SSE streams open now.")
    state.of(app).stream_limiter = StreamLimiter(config.sse_max_streams_per_user, gauge)


def respond(handler, claims):
    """A text/event-stream response running `handler` for the bearer of `claims`; 429 past their cap."""
    held = state.of()
    limiter, user_id = held.stream_limiter, claims["sub"]
    if not limiter.acquire(user_id):
        raise ApiError(429, "too_many_streams", "Too many open streams; close one first.", {"Retry-After": "5"})
    chunks = drive(handler, claims, held.broker, held.pool, held.config)
    # The body goes to the server as it is (direct_passthrough), and iterating it yields the bare
    # generator: no werkzeug wrapper frames on the saved stack of every idle stream.
    body = Body(chunks, limiter, user_id, request.environ)
    response = Response(body, mimetype="text/event-stream", direct_passthrough=True)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def session_live(broker, pool, session_id, user_id, since):
    """Whether the session is live, by a check started at `since` or later that its streams share.
    (A function, not a closure kept by each stream: that would cost every idle stream ~200 bytes.)"""
    return broker.sessions.get(session_id, since, lambda: session_is_live(pool, session_id, user_id))


def fresh_after(item, inbox):
    """The moment a database read prompted by `item` must have started at or after to reflect it."""
    if item is HEARTBEAT:
        return time.monotonic() - CHECK_SLACK
    if item is RESYNC:
        return inbox.resynced
    return item.received  # a session message: it was sent at a commit before it was received


def drive(handler, claims, broker, pool, config):
    """The stream's bytes: retry line, `handler`'s opening, then its live messages until a close."""
    user_id, session_id, expires = claims["sub"], claims["sid"], claims["exp"]
    del claims  # the whole decoded token need not live as long as the stream
    inbox = broker.subscribe(("user", user_id), *handler.keys)
    try:
        yield RETRY
        yield from handler.opening(time.monotonic())
        if handler.done:
            return
        now = time.monotonic()
        deadline, reason = min(
            (now + config.sse_max_stream_seconds, "max_lifetime"), (now + expires - time.time(), "token_expired")
        )
        heartbeat_due = now + config.sse_heartbeat_seconds
        broker.ticker.wake(inbox, min(heartbeat_due, deadline))
        while True:
            # No timer per stream: the process's ticker puts a TICK when a heartbeat or the deadline is due.
            item = inbox.get()
            if item is TICK:
                now = time.monotonic()
                if now >= deadline:
                    yield event(handler.last_id, "close", {"reason": reason})
                    return
                beat = now >= heartbeat_due
                if beat:
                    heartbeat_due = now + config.sse_heartbeat_seconds
                broker.ticker.wake(inbox, min(heartbeat_due, deadline))
                if not beat:
                    continue
                item = HEARTBEAT
            if item is SHUTDOWN:
                yield event(handler.last_id, "close", {"reason": "shutdown"})
                return
            if item is HEARTBEAT or item is RESYNC or item.kind == SESSION:
                # Heartbeats and resyncs re-check the session too: a revocation whose notification
                # was missed still ends the stream within one heartbeat.
                if not session_live(broker, pool, session_id, user_id, fresh_after(item, inbox)):
                    yield event(handler.last_id, "close", {"reason": "session_revoked"})
                    return
                if item is HEARTBEAT:
                    yield HEARTBEAT
                elif item is RESYNC:
                    yield from handler.on_resync(inbox.resynced)
            else:
                yield from handler.on_message(item)
            if handler.done:
                return
    except psycopg.OperationalError:  # PoolTimeout included: the database went away mid-stream
        yield event(handler.last_id, "close", {"reason": "unavailable"})
    finally:
        broker.unsubscribe(inbox)
