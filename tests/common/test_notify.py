"""The broker: overflow turned into one RESYNC, messages by key, SHUTDOWN after close, payload size."""

import json
import queue

import pytest

from common import messages
from common.inbox import QUEUE_SIZE, RESYNC, SHUTDOWN
from common.notify import Broker


def message(fields):
    """A message as the broker reads it off its LISTEN connection."""
    return messages.read(json.dumps(fields))


def test_an_inbox_that_overflows_drops_its_backlog_for_one_resync_and_goes_on():
    broker = Broker("postgresql://unused")
    inbox = broker.subscribe(("run", "r1"))
    for seq in range(QUEUE_SIZE + 1):
        broker.dispatch(message(messages.run_event("r1", seq, "message", {"n": seq})))
    assert inbox.get(timeout=0) is RESYNC  # re-read the store: what was queued is gone
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0)
    broker.dispatch(message(messages.run_event("r1", 999, "message", {})))
    assert inbox.get(timeout=0).seq == 999


def test_messages_reach_only_the_subscribers_of_their_keys_and_close_says_shutdown():
    broker = Broker("postgresql://unused")
    run, user = broker.subscribe(("run", "r1")), broker.subscribe(("user", "ada"))
    broker.dispatch(message(messages.run_status("ada", "r2", "running")))
    assert user.get(timeout=0).run_id == "r2"
    with pytest.raises(queue.Empty):
        run.get(timeout=0)
    broker.close()
    assert run.get(timeout=0) == SHUTDOWN and user.get(timeout=0) == SHUTDOWN
    assert broker.subscribe(("run", "r3")).get(timeout=0) == SHUTDOWN  # subscribing after close


def test_a_payload_too_large_for_notify_goes_out_without_its_data(db):
    """PostgreSQL refuses NOTIFY payloads of 8000 bytes: the wake-up goes anyway, and the stream reads
    the row instead (its `has_data` is false)."""
    from common.notify import CHANNEL, publish

    db.execute(f"LISTEN {CHANNEL}")
    small, large = (
        messages.run_event("r1", 1, "message", {"delta": "hi"}),
        messages.run_event("r1", 2, "message", {"delta": "x" * 9000}),
    )
    with db.transaction():
        publish(db, small)
        publish(db, large)
    received = [messages.read(n.payload) for n in db.notifies(timeout=5, stop_after=2)]
    assert [(m.seq, m.has_data, m.data) for m in received] == [(1, True, {"delta": "hi"}), (2, False, None)]
    assert received[1].keys() == [("run", "r1")]


def test_each_message_reaches_the_subscribers_of_any_of_its_keys_once():
    broker = Broker("postgresql://unused")
    both = broker.subscribe(("run", "r1"), ("user", "ada"))
    broker.dispatch(message(messages.run_status("ada", "r1", "queued")))  # user and the queue topic
    assert both.get(timeout=0).status == "queued"
    with pytest.raises(queue.Empty):
        both.get(timeout=0)
    assert messages.read("not json") is None and messages.read("[1, 2]") is None
