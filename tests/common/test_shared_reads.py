"""Shared reads: one query per key at a time, answers reused only when they started late enough."""

import threading
import time

from common.shared_reads import SharedReads


def test_an_answer_is_reused_when_recent_enough_and_asked_again_for_a_later_moment():
    reads, calls = SharedReads(max_keys=10), []

    def read():
        calls.append(1)
        return len(calls)

    before = time.monotonic()
    assert reads.get("k", before, read) == 1
    assert reads.get("k", before, read) == 1  # started after `before`: it stands
    assert reads.get("other", before, read) == 2  # another key, another query
    assert reads.get("k", time.monotonic(), read) == 3  # a later moment needs a new answer


def test_callers_arriving_while_a_query_is_under_way_wait_for_it_instead_of_asking_again():
    reads, calls, release = SharedReads(max_keys=10), [], threading.Event()
    since = time.monotonic()

    def slow_read():
        calls.append(1)
        release.wait(5)
        return "answer"

    results = []
    first = threading.Thread(target=lambda: results.append(reads.get("k", since, slow_read)))
    first.start()
    while not calls:
        time.sleep(0.01)
    others = [threading.Thread(target=lambda: results.append(reads.get("k", since, slow_read))) for _ in range(5)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert results == ["answer"] * 6 and len(calls) == 1


def test_a_failed_query_is_not_kept_and_past_max_keys_the_cache_starts_afresh():
    reads = SharedReads(max_keys=2)

    def failing():
        raise OSError("database away")

    since = time.monotonic()
    try:
        reads.get("k", since, failing)
    except OSError:
        pass
    assert reads.get("k", since, lambda: "ok") == "ok"
    reads.get("a", since, lambda: 1)
    reads.get("b", since, lambda: 2)  # the third key: the others are dropped
    assert reads.get("k", since, lambda: "again") == "again"
