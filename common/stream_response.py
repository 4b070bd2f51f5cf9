"""What a stream's response is made of, beside its events: the per-user cap of open streams, and the
body handed to the server (the driver's generator, bare, and the cap's slot released when it closes).
"""

import threading


class StreamLimiter:
    """Counts the open streams of each user in this process and refuses past the cap."""

    def __init__(self, max_per_user, gauge):
        self.max_per_user, self.gauge, self._open = max_per_user, gauge, {}
        self._lock = threading.Lock()

    def acquire(self, user_id):
        """Count one more stream of `user_id`; False if they are at the cap already."""
        with self._lock:
            if self._open.get(user_id, 0) >= self.max_per_user:
                return False
            self._open[user_id] = self._open.get(user_id, 0) + 1
        self.gauge.inc()
        return True

    def release(self, user_id):
        """Count one stream of `user_id` fewer."""
        with self._lock:
            self._open[user_id] -= 1
            if not self._open[user_id]:
                del self._open[user_id]
        self.gauge.dec()


# What the server still reads of the environ once the body is iterated: its access line
# (common.access_log). The rest lives as long as the stream for nothing.
SERVER_READS = ("REMOTE_ADDR", "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "HTTP_USER_AGENT")


class Body:
    """A stream's response body: its generator, and the release of its slot in the per-user cap when
    the server closes the response (which WSGI servers always do, even if it never started)."""

    __slots__ = ("chunks", "limiter", "user_id", "environ")

    def __init__(self, chunks, limiter, user_id, environ):
        self.chunks, self.limiter, self.user_id, self.environ = chunks, limiter, user_id, environ

    def __iter__(self):
        """The generator, bare. The app is done with the environ by now: what the server keeps of it
        (the Flask request with its parsed headers, the bearer token, the input stream, the
        early-hints callback: ~1 KB) is dropped, but for what the server reads at the end."""
        environ, self.environ = self.environ, None
        kept = {key: environ[key] for key in SERVER_READS if key in environ}
        environ.clear()  # clear() frees the dict's table; deleting keys one by one would not
        environ.update(kept)
        return self.chunks

    def close(self):
        """Stop the generator (it unsubscribes) and free the user's slot."""
        try:
            self.chunks.close()
        finally:
            self.limiter.release(self.user_id)
