"""common.messages: each kind of NOTIFY message is built one way and read back the same, through a
real PostgreSQL NOTIFY (publish at commit, LISTEN on another connection)."""

import json

import psycopg
import pytest

from common import messages
from common.notify import CHANNEL, MAX_PAYLOAD, publish


@pytest.fixture
def listening(database_url):
    """A LISTEN connection on the channel, and a function returning the Messages that arrived."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")

        def arrived():
            return [messages.read(note.payload) for note in conn.notifies(timeout=1.0, stop_after=1)]

        yield arrived


def sent(database_url, message):
    """Publish `message` in its own transaction (delivered at commit)."""
    with psycopg.connect(database_url) as conn:
        publish(conn, message)


@pytest.mark.parametrize(
    ("message", "keys"),
    [
        (messages.session_changed("ada"), [("user", "ada")]),
        (messages.run_status("ada", "r1", "queued"), [("user", "ada"), ("topic", messages.QUEUE_TOPIC)]),
        (messages.run_status("ada", "r1", "running"), [("user", "ada")]),
        (messages.run_event("r1", 3, "message", {"delta": "hi"}), [("run", "r1")]),
        (messages.cancel_run("r1"), [("run", "r1"), ("topic", messages.CANCEL_TOPIC)]),
    ],
)
def test_each_kind_arrives_for_exactly_its_receivers(database_url, listening, message, keys):
    sent(database_url, message)
    (read,) = listening()
    assert read.kind == message["kind"] and read.keys() == keys


def test_a_status_message_reads_back_its_run_and_status(database_url, listening):
    sent(database_url, messages.run_status("ada", "r1", "completed"))
    (read,) = listening()
    assert (read.user, read.run_id, read.status) == ("ada", "r1", "completed")


def test_an_event_too_large_for_notify_arrives_without_its_data(database_url, listening):
    sent(database_url, messages.run_event("r1", 7, "message", {"delta": "x" * MAX_PAYLOAD}))
    (read,) = listening()
    assert (read.seq, read.type, read.has_data, read.data) == (7, "message", False, None)


def test_an_event_that_fits_carries_its_data(database_url, listening):
    sent(database_url, messages.run_event("r1", 1, "tool_call", {"id": "c1", "tool": "calculator"}))
    (read,) = listening()
    assert read.has_data and read.data == {"id": "c1", "tool": "calculator"}


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", json.dumps("text")])
def test_a_payload_that_is_not_a_json_object_reads_as_none(payload):
    assert messages.read(payload) is None
