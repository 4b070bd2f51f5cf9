"""A subscriber's inbox (order, waiting, timing out) and the ticker that wakes inboxes when asked."""

import queue
import threading
import time

import pytest

from common.inbox import TICK, Inbox, Ticker


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


def test_the_ticker_wakes_an_inbox_once_its_time_has_come_and_not_before():
    ticker, now = Ticker(), time.monotonic()
    soon, later = Inbox([("run", "r1")]), Inbox([("run", "r2")])
    ticker.wake(later, now + 3600)
    ticker.wake(soon, now + 0.1)
    assert soon.get(timeout=5) is TICK  # a get without its own timer: the ticker's TICK ended it
    with pytest.raises(queue.Empty):
        later.get(timeout=0.5)


def test_a_waiting_reader_without_a_timeout_is_woken_by_the_ticker():
    ticker, inbox, got = Ticker(), Inbox([("run", "r1")]), []
    reader = threading.Thread(target=lambda: got.append(inbox.get()))
    reader.start()
    ticker.wake(inbox, time.monotonic())
    reader.join(5)
    assert got == [TICK]
