"""PostgreSQL LISTEN/NOTIFY as the bus between instances, fanned out inside each worker process.

`publish` sends a small JSON message on the `oneshot` channel inside the caller's transaction (it is
delivered at commit). Each worker runs one `Broker`: a single LISTEN connection (never a pooled
one) whose messages are copied into the inboxes of the streams subscribed to their keys. A stream
therefore costs an inbox and a greenlet, not a connection. Notifications are wake-up calls, never
the record: after a reconnect, or when an inbox overflows, subscribers get RESYNC and re-read the
tables.
"""

import json
import logging
import queue
import threading
import time
from collections import defaultdict, deque

import psycopg

from common import queries
from common.lifecycle import on_shutdown, on_worker_start

log = logging.getLogger(__name__)

CHANNEL = "oneshot"
MAX_PAYLOAD = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
RESYNC = "resync"  # marker: messages may have been missed, re-read the store
SHUTDOWN = "shutdown"  # marker: the worker is stopping, close the stream
QUEUE_SIZE = 1000


def publish(conn, message):
    """NOTIFY `message` (a dict with "run", "user" and/or "topic" keys) to every instance, at commit."""
    payload = json.dumps(message, separators=(",", ":"))
    if len(payload.encode()) > MAX_PAYLOAD:
        # Too large to carry: send the wake-up without the data; listeners read the row instead.
        payload = json.dumps({k: v for k, v in message.items() if k != "data"}, separators=(",", ":"))
    queries.notify_channel(conn, channel=CHANNEL, payload=payload)


def keys_of(message):
    """The subscription keys a message is for."""
    keys = []
    if message.get("run"):
        keys.append(("run", message["run"]))
    if message.get("user"):
        keys.append(("user", message["user"]))
    if message.get("topic"):
        keys.append(("topic", message["topic"]))
    return keys


class Inbox:
    """One subscriber: its keys, and the messages and markers waiting for it (at most QUEUE_SIZE).

    A deque and one Event, not a queue.Queue (a lock and three conditions, each with its own waiters,
    per subscriber): one consumer (the stream) and few producers (the broker), and a deque's append
    and popleft are atomic, so the Event is the only thing to wait on. Under gevent it is a greenlet
    Event, without a lock.
    """

    __slots__ = ("keys", "_items", "_ready")

    def __init__(self, keys):
        self.keys = keys
        self._items = deque()
        self._ready = threading.Event()

    def put(self, item):
        """Queue `item`; a stream too slow to keep up has its backlog dropped for one RESYNC instead."""
        if len(self._items) >= QUEUE_SIZE:
            self._items.clear()
            item = RESYNC
        self._items.append(item)
        self._ready.set()

    def get(self, timeout):
        """The next message or marker; raises queue.Empty after `timeout` seconds."""
        if not self._items:
            self._ready.clear()
            # Checked again after the clear, so an item put in between is not slept through.
            if not self._items and not self._ready.wait(timeout):
                raise queue.Empty
        try:
            return self._items.popleft()
        except IndexError:  # an overflow emptied it meanwhile; its RESYNC is on the way
            raise queue.Empty from None


class Broker:
    """One LISTEN connection per process, fanning messages out to subscribed queues."""

    def __init__(self, database_url, reconnect_delay=0.5):
        self.database_url = database_url
        self.reconnect_delay = reconnect_delay
        self.stopping = threading.Event()
        self._subscribers = defaultdict(set)
        self._lock = threading.Lock()

    def start(self):
        """Start listening in the background (a greenlet under gevent)."""
        threading.Thread(target=self._run, name="oneshot-listener", daemon=True).start()
        return self

    def subscribe(self, *keys):
        """An `Inbox` receiving every message for any of `keys`, plus RESYNC and SHUTDOWN markers."""
        inbox = Inbox(keys)
        with self._lock:
            for key in keys:
                self._subscribers[key].add(inbox)
        if self.stopping.is_set():
            inbox.put(SHUTDOWN)
        return inbox

    def unsubscribe(self, inbox):
        """Stop delivering to `inbox`."""
        with self._lock:
            for key in inbox.keys:
                self._subscribers[key].discard(inbox)
                if not self._subscribers[key]:
                    del self._subscribers[key]

    def dispatch(self, message):
        """Hand `message` to the subscribers of its keys."""
        with self._lock:
            targets = set().union(*(self._subscribers.get(k, ()) for k in keys_of(message)))
        for inbox in targets:
            inbox.put(message)

    def _on_payload(self, payload):
        try:
            message = json.loads(payload)
        except ValueError:
            log.warning("ignored a notification that is not JSON")
            return
        if isinstance(message, dict):
            self.dispatch(message)

    def broadcast(self, marker):
        """Send RESYNC or SHUTDOWN to every subscriber."""
        with self._lock:
            targets = set().union(*self._subscribers.values()) if self._subscribers else set()
        for inbox in targets:
            inbox.put(marker)

    def _run(self):
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.database_url, autocommit=True, application_name="oneshot-listener") as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Anything sent while we were not listening is lost: subscribers catch up from the store.
                    self.broadcast(RESYNC)
                    while not self.stopping.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._on_payload(note.payload)
            except psycopg.Error as e:
                if not self.stopping.is_set():
                    log.warning("listener connection lost, reconnecting: %s", " ".join(str(e).split()))
                    time.sleep(self.reconnect_delay)

    def close(self):
        """Stop listening and tell every open stream to close."""
        self.stopping.set()
        self.broadcast(SHUTDOWN)

    def watch(self, is_alive, interval=0.5):
        """Close the streams as soon as `is_alive()` turns false (gunicorn's worker.alive on SIGTERM)."""

        def poll():
            while is_alive() and not self.stopping.is_set():
                time.sleep(interval)
            self.close()

        threading.Thread(target=poll, name="oneshot-shutdown-watch", daemon=True).start()


def init_app(app, config):
    """Start this process's broker; close its streams on SIGTERM and at shutdown."""
    broker = Broker(config.database_url).start()
    app.extensions["broker"] = broker
    on_worker_start(app, lambda worker: broker.watch(lambda: worker.alive))
    on_shutdown(app, broker.close)
    return broker
