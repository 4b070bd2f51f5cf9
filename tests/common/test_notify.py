"""The broker's inboxes: order, waiting, overflow turned into one RESYNC, SHUTDOWN after close."""

import queue
import threading
import time

import pytest

from common.notify import QUEUE_SIZE, RESYNC, SHUTDOWN, Broker, Inbox


def test_an_inbox_hands_out_messages_in_order_and_times_out_when_empty():
    inbox = Inbox([("run", "r1")])
    for n in range(3):
        inbox.put({"n": n})
    assert [inbox.get(timeout=0)["n"] for _ in range(3)] == [0, 1, 2]
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.01)


def test_a_waiting_reader_wakes_as_soon_as_a_message_is_put():
    inbox = Inbox([("run", "r1")])
    got = []
    reader = threading.Thread(target=lambda: got.append(inbox.get(timeout=5)))
    reader.start()
    time.sleep(0.05)  # the reader is waiting now
    inbox.put({"n": 1})
    reader.join(5)
    assert got == [{"n": 1}]


def test_an_inbox_that_overflows_drops_its_backlog_for_one_resync_and_goes_on():
    broker = Broker("postgresql://unused")
    inbox = broker.subscribe(("run", "r1"))
    for seq in range(QUEUE_SIZE + 1):
        broker.dispatch({"kind": "event", "run": "r1", "seq": seq})
    assert inbox.get(timeout=0) == RESYNC  # re-read the store: what was queued is gone
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0)
    broker.dispatch({"kind": "event", "run": "r1", "seq": 999})
    assert inbox.get(timeout=0)["seq"] == 999


def test_messages_reach_only_the_subscribers_of_their_keys_and_close_says_shutdown():
    broker = Broker("postgresql://unused")
    run, user = broker.subscribe(("run", "r1")), broker.subscribe(("user", "ada"))
    broker.dispatch({"kind": "status", "user": "ada", "runId": "r2", "status": "running"})
    assert user.get(timeout=0)["runId"] == "r2"
    with pytest.raises(queue.Empty):
        run.get(timeout=0)
    broker.close()
    assert run.get(timeout=0) == SHUTDOWN and user.get(timeout=0) == SHUTDOWN
    assert broker.subscribe(("run", "r3")).get(timeout=0) == SHUTDOWN  # subscribing after close
