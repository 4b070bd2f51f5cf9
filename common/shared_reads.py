"""Reads shared by the streams of one process: one query at a time per key, and its answer reused by
every stream for which it is recent enough.

Ten thousand streams of one run (or one session) would otherwise ask the database the same question
ten thousand times — a replay when they open or resync, a session check at each heartbeat — and
queue for the pool's few connections until some give up (PoolTimeout) and close as `unavailable`.

"Recent enough" is a moment the caller names (`since`): an answer whose query started at or after
it. A stream that subscribed at time S and asks for its replay with since=S never misses an event
committed between the replay and its subscription.
"""

import threading
import time


class SharedReads:
    """Answers by key, each stamped with when its query started; at most `max_keys` of them (a cache,
    not a record: past that it starts afresh rather than grow)."""

    def __init__(self, max_keys):
        self.max_keys = max_keys
        self._answers = {}  # key -> (monotonic time the query started, answer)
        self._asking = {}  # key -> Event set once the query under way has answered (or failed)

    def get(self, key, since, read):
        """The answer for `key` from a query started at `since` or later; `read()` makes the query
        when none is recent enough and no other stream is making one."""
        while (answer := self._answers.get(key)) is None or answer[0] < since:
            asking = self._asking.get(key)
            if asking is None:
                return self._ask(key, read)
            asking.wait()  # another stream is asking: its answer may be recent enough
        return answer[1]

    def _ask(self, key, read):
        self._asking[key] = asking = threading.Event()
        started = time.monotonic()
        try:
            answer = read()
        finally:
            self._asking.pop(key, None)
            asking.set()
        if len(self._answers) >= self.max_keys:
            self._answers.clear()
        self._answers[key] = (started, answer)
        return answer
