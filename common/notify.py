"""PostgreSQL LISTEN/NOTIFY as the bus between instances, fanned out inside each worker process.

`publish` sends a small JSON message on the `oneshot` channel inside the caller's transaction (it is
delivered at commit). Each worker runs one `Broker`: a single LISTEN connection (never a pooled
one) whose messages are copied into the inboxes (`common.inbox`) of the streams subscribed to
their keys. A stream therefore costs an inbox and a greenlet, not a connection. Notifications are
wake-up calls, never the record: after a reconnect, or when an inbox overflows, subscribers get
RESYNC and re-read the tables.
"""

import json
import logging
import threading
import time
from collections import defaultdict

import psycopg

from common import messages, queries, state
from common.inbox import RESYNC, SHUTDOWN, Inbox, Ticker
from common.lifecycle import on_shutdown, on_worker_start
from common.shared_reads import SharedReads

log = logging.getLogger(__name__)

CHANNEL = "oneshot"
MAX_PAYLOAD = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more


def publish(conn, message):
    """NOTIFY `message` (built by a `common.messages` constructor) to every instance, at commit."""
    payload = json.dumps(message, separators=(",", ":"))
    if len(payload.encode()) > MAX_PAYLOAD:
        # Too large to carry: send the wake-up without the data; listeners read the row instead.
        payload = json.dumps({k: v for k, v in message.items() if k != "data"}, separators=(",", ":"))
    queries.notify_channel(conn, channel=CHANNEL, payload=payload)


class Broker:
    """One LISTEN connection per process, fanning messages out to subscribed queues, and the reads
    its subscribers share: session checks, and replays of a run's stored events."""

    def __init__(self, database_url, reconnect_delay=0.5):
        self.database_url = database_url
        self.sessions, self.replays = SharedReads(max_keys=10_000), SharedReads(max_keys=64)
        self.ticker = Ticker()  # wakes its subscribers' inboxes at the times they ask for
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
        """Hand `message` (a `common.messages.Message`) to the subscribers of its keys."""
        with self._lock:
            targets = set().union(*(self._subscribers.get(k, ()) for k in message.keys()))
        for inbox in targets:
            inbox.put(message)

    def _on_payload(self, payload):
        message = messages.read(payload)
        if message is None:
            log.warning("ignored a notification that is not a JSON object")
            return
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
    state.of(app).broker = broker
    on_worker_start(app, lambda worker: broker.watch(lambda: worker.alive))
    on_shutdown(app, broker.close)
    return broker
