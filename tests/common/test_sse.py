"""The stream driver: retry line, opening, messages, heartbeats, session re-check, deadlines, shutdown,
the close event, unsubscribing, the per-user cap, and a run event's text made once per process.

The driver runs here on a real broker (fed by `dispatch`, as its LISTEN connection would) and the
API app's real pool on the test's database.
"""

import json
import time
from types import SimpleNamespace

import jwt
import pytest
from psycopg_pool import ConnectionPool

from api import sessions
from common import messages, sse, state
from common.db import connect
from common.notify import RESYNC, Broker

SETTINGS = SimpleNamespace(sse_heartbeat_seconds=0.05, sse_max_stream_seconds=3600)


class Echo(sse.Handler):
    """Says `hello` first, then echoes each status message's status, counting ids from 1."""

    __slots__ = ("last_id", "done", "resyncs")

    def __init__(self, done=False):
        self.last_id, self.done, self.resyncs = 0, done, 0

    def opening(self, since):
        self.last_id += 1
        return (sse.event(self.last_id, "hello", {}),)

    def on_message(self, message):
        self.last_id += 1
        return (sse.event(self.last_id, "status", {"status": message.status}),)

    def on_resync(self, since):
        self.resyncs += 1
        return ()


def parse(chunk):
    """One chunk's text as {"field": value}; a comment as {"comment": text}."""
    text = chunk.decode()
    if text.startswith(":"):
        return {"comment": text[1:].strip()}
    fields = dict(line.split(": ", 1) for line in text.strip().split("\n"))
    if "data" in fields:
        fields["data"] = json.loads(fields["data"])
    return fields


def message(**fields):
    return messages.read(json.dumps(fields))


@pytest.fixture
def user(app, sign_up):
    """A signed-up user's claims (the token is real; its signature was checked when it was made)."""
    pair = sign_up()
    return jwt.decode(pair["token"], options={"verify_signature": False})


@pytest.fixture
def broker():
    return Broker("postgresql://unused")


def start(handler, claims, broker, pool, settings=SETTINGS):
    """The driver's generator, run up to its opening."""
    chunks = sse.drive(handler, claims, broker, pool, settings)
    assert next(chunks) == sse.RETRY
    return chunks


def test_the_stream_opens_relays_messages_sends_heartbeats_and_closes_when_the_session_is_revoked(
    app, user, broker, env
):
    pool = state.of(app).pool
    handler = Echo()
    chunks = start(handler, user, broker, pool)
    assert parse(next(chunks)) == {"id": "1", "event": "hello", "data": {}}
    broker.dispatch(message(kind="status", user=user["sub"], runId="r1", status="running"))
    assert parse(next(chunks)) == {"id": "2", "event": "status", "data": {"status": "running"}}
    assert parse(next(chunks)) == {"comment": "heartbeat"}  # nothing arrived: the session is still live

    with connect(env["DATABASE_URL"]) as conn:
        sessions.revoke_all(conn, user["sub"])
    broker.dispatch(message(**messages.session_changed(user["sub"])))
    assert parse(next(chunks)) == {"id": "2", "event": "close", "data": {"reason": "session_revoked"}}
    with pytest.raises(StopIteration):
        next(chunks)
    assert not broker._subscribers  # unsubscribed


def test_a_revocation_whose_notification_was_missed_ends_the_stream_at_the_next_heartbeat(app, user, broker, env):
    chunks = start(Echo(), user, broker, state.of(app).pool)
    next(chunks)
    with connect(env["DATABASE_URL"]) as conn:
        sessions.revoke_all(conn, user["sub"])
    # Heartbeats may reuse a check up to CHECK_SLACK old; the first one after that sees the revocation.
    rest = [parse(chunk) for chunk in chunks]
    assert set(map(str, rest[:-1])) <= {"{'comment': 'heartbeat'}"}
    assert rest[-1]["data"] == {"reason": "session_revoked"}


def test_a_resync_re_checks_the_session_then_lets_the_handler_re_read(app, user, broker):
    handler = Echo()
    chunks = start(
        handler,
        user,
        broker,
        state.of(app).pool,
        SimpleNamespace(**{**vars(SETTINGS), "sse_heartbeat_seconds": 60}),
    )
    next(chunks)
    broker.broadcast(RESYNC)
    broker.dispatch(message(kind="status", user=user["sub"], status="completed"))
    assert parse(next(chunks))["data"] == {"status": "completed"}
    assert handler.resyncs == 1


@pytest.mark.parametrize(
    ("settings", "expires_in", "reason"),
    [
        (SimpleNamespace(sse_heartbeat_seconds=60, sse_max_stream_seconds=0.05), 900, "max_lifetime"),
        (SimpleNamespace(sse_heartbeat_seconds=60, sse_max_stream_seconds=3600), 0.05, "token_expired"),
    ],
)
def test_the_stream_closes_at_its_first_deadline_saying_which(app, user, broker, settings, expires_in, reason):
    claims = {**user, "exp": time.time() + expires_in}
    chunks = start(Echo(), claims, broker, state.of(app).pool, settings)
    next(chunks)
    assert parse(next(chunks)) == {"id": "1", "event": "close", "data": {"reason": reason}}
    with pytest.raises(StopIteration):
        next(chunks)


def test_shutdown_closes_the_stream_with_a_final_event(app, user, broker):
    chunks = start(Echo(), user, broker, state.of(app).pool)
    next(chunks)
    broker.close()
    assert parse(next(chunks)) == {"id": "1", "event": "close", "data": {"reason": "shutdown"}}
    assert list(chunks) == [] and not broker._subscribers


def test_a_handler_done_after_its_opening_ends_the_stream_without_a_close_event(app, user, broker):
    chunks = start(Echo(done=True), user, broker, state.of(app).pool)
    assert parse(next(chunks))["event"] == "hello"
    with pytest.raises(StopIteration):
        next(chunks)
    assert not broker._subscribers


def test_a_database_that_went_away_closes_the_stream_as_unavailable(user, broker, database_url):
    pool = ConnectionPool(database_url, min_size=1, open=True)
    pool.close()
    chunks = start(Echo(), user, broker, pool)
    next(chunks)
    assert parse(next(chunks))["data"] == {"reason": "unavailable"}  # the heartbeat's session check failed


def test_a_run_event_is_encoded_once_per_process_with_the_bytes_a_replay_sends():
    data = {"delta": "héllo\n\nevent: completed", "n": 1.5}
    shared = message(**messages.run_event("r1", 7, "message", data))
    text = sse.shared_event(shared)
    assert sse.shared_event(shared) is text  # the second stream gets the same bytes object
    assert text == sse.event(7, "message", json.loads(json.dumps(data)))  # what the replay makes of the row
    assert text.count(b"\n\n") == 1 and text.startswith(b"id: 7\nevent: message\ndata: {")


def test_past_the_per_user_cap_a_stream_is_refused_with_429_until_one_closes(make_client, sign_up, env):
    client = make_client(SSE_MAX_STREAMS_PER_USER=1, JWT_SECRET=env["JWT_SECRET"])
    headers = sign_up()["headers"]
    first = client.get("/events", headers=headers, buffered=False)
    assert first.status_code == 200
    refused = client.get("/events", headers=headers, buffered=False)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
    assert refused.json["error"]["code"] == "too_many_streams"
    first.close()
    again = client.get("/events", headers=headers, buffered=False)
    assert again.status_code == 200
    again.close()


def test_streams_of_one_session_share_its_checks_but_never_one_older_than_the_message(app, user, broker, env):
    pool = state.of(app).pool
    first, second = (start(Echo(), user, broker, pool) for _ in range(2))
    next(first), next(second)
    with connect(env["DATABASE_URL"]) as conn:
        sessions.revoke_all(conn, user["sub"])
    broker.dispatch(message(**messages.session_changed(user["sub"])))
    assert parse(next(first))["data"] == parse(next(second))["data"] == {"reason": "session_revoked"}
