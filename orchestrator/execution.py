"""Executing one claimed run: its agent produces events in one greenlet, this one writes them.

Writing is fenced: every transaction first locks the run as (id, owner, epoch, running), so an
executor that lost its lease (paused, partitioned, failed by a reaper) writes nothing more.
Message deltas are coalesced to at most one `message` event per AGENT_FLUSH_MS; any other event
first flushes the text before it, so the order is kept. A cancel stops the agent (closing its model
connection) and ends the run with `cancelled`, after which nothing is written.
"""

import logging
import queue
import threading
import time

import psycopg

from common import queries
from orchestrator import history, journal
from orchestrator.agents import EVENT_TYPES, AgentError, InputRequired, Run
from orchestrator.tools import ToolContext

log = logging.getLogger(__name__)

OUTBOX_SIZE = 256  # events the agent may run ahead of the database before it waits
IDLE_CHECK = 1.0  # seconds between looks at a stop request while the agent is silent


def checked(item):
    """An agent's `(type, data)` pair, validated: a known type and JSON-encodable object data."""
    try:
        event_type, data = item
    except (TypeError, ValueError):
        raise AgentError("agent_error", "The agent produced something that is not an (event, data) pair.") from None
    if event_type not in EVENT_TYPES or not isinstance(data, dict):
        raise AgentError("agent_error", f"The agent produced an event the stream does not carry: {event_type!r}.")
    try:
        journal.encode(data)
    except (TypeError, ValueError):
        raise AgentError("agent_error", f"The agent's {event_type} event is not JSON.") from None
    return event_type, data


class Execution:
    """One run on this worker: the agent's greenlet, the writer (the caller of `execute`), a stop flag."""

    def __init__(self, executor, row):
        self.executor, self.config = executor, executor.config
        self.run_id, self.epoch, self.thread_id = row["id"], row["lease_epoch"], row["thread_id"]
        self.run = Run(
            id=str(row["id"]),
            user_id=row["user_id"],
            prompt=row["prompt"],
            steps=row["steps"],
            tools=executor.tools,
            tool_context=ToolContext(row["user_id"], str(row["id"]), executor.pool),
        )
        self.outbox = queue.Queue(OUTBOX_SIZE)
        self.stopped_for = None  # "cancel" or "shutdown"

    def stop(self, why):
        """Stop the run now (from another greenlet): the agent's waits end, its connections close."""
        self.stopped_for = self.stopped_for or why
        self.run.stop()
        try:
            self.outbox.put_nowait(("stop", None))  # wake the writer
        except queue.Full:
            pass  # the writer is busy with a full outbox and looks at the flag before each event

    def _load(self):
        """What the agent starts from: the thread's earlier turns, and this run's own events so far."""
        with self.executor.pool.connection(timeout=5) as conn:
            if self.thread_id:
                self.run.history = history.thread_history(conn, self.thread_id, self.run_id)
            self.run.transcript = history.transcript(conn, self.run_id)

    def execute(self):
        """Run the agent until the run ends or waits, writing what it produces."""
        try:
            self._load()
        except psycopg.Error as e:  # the lease lapses and a reaper fails the run; nothing half-done
            log.warning("run %s: could not load its history: %s", self.run_id, type(e).__name__)
            return
        producer = threading.Thread(target=self._produce, name=f"agent-{self.run_id}", daemon=True)
        producer.start()
        try:
            self._consume()
        finally:
            self.run.stop()  # whatever ended the run, the agent stops too

    def _put(self, item):
        while not self.run.cancelled():
            try:
                return self.outbox.put(item, timeout=IDLE_CHECK)
            except queue.Full:
                continue

    def _produce(self):
        try:
            for item in self.executor.agent(self.run):
                self._put(("event", checked(item)))
                if self.run.cancelled():
                    return
            self._put(("done", None))
        except InputRequired as e:  # a person must answer first: the run waits
            self._put(("event", ("input_required", e.event)))
        except AgentError as e:
            self._put(("failed", e))
        except Exception:
            if not self.run.cancelled():  # once stopped, whatever the agent raises is moot
                log.exception("run %s: the agent raised", self.run_id)
                self._put(("failed", AgentError("agent_error", "The agent stopped with an error.")))

    def _consume(self):
        flush_after = self.config.agent_flush_ms / 1000
        pending, final_seen, flushed_at = [], False, 0.0
        # The answer so far: a run resumed after a wait said part of it before.
        answer = [data["delta"] for event_type, data in self.run.transcript if event_type == "message"]
        while True:
            if self.stopped_for == "shutdown":
                return  # the executor fails this process's runs itself
            if self.stopped_for == "cancel":
                self._write([])  # the locked row shows the cancel request: `cancelled` is written
                return
            wait = max(0.0, flushed_at + flush_after - time.monotonic()) if pending else IDLE_CHECK
            try:
                kind, value = self.outbox.get(timeout=wait)
            except queue.Empty:
                kind, value = "tick", None
            batch = []
            if kind == "event" and value[0] == "message":
                pending.append(value[1]["delta"])
                answer.append(value[1]["delta"])
            elif kind == "event":
                final_seen = final_seen or value[0] == "final"
                batch.append(value)
            elif kind == "done":
                if not final_seen:
                    batch.append(("final", {"text": "".join(answer)}))
                batch.append(("completed", {"status": "completed"}))
            elif kind == "failed":
                failure = {"status": "failed", "reason": value.reason, "message": value.message}
                batch.append(("failed", failure))
            due = pending and (batch or time.monotonic() >= flushed_at + flush_after)
            if due:
                batch.insert(0, ("message", {"delta": "".join(pending)}))
                pending, flushed_at = [], time.monotonic()
            if batch and not self._write(batch):
                return

    def _write(self, events):
        """Append `events` if this executor still holds the run; False once the run is over for it."""
        executor = self.executor
        while self.stopped_for != "shutdown":
            try:
                with executor.pool.connection() as conn, conn.transaction():
                    run = queries.lock_run_for_step(conn, run_id=self.run_id, owner=executor.owner, epoch=self.epoch)
                    if run is None:
                        return False  # ended, failed by a reaper, or claimed again: not ours to write
                    if run["cancel_requested"]:
                        journal.append(conn, self.config, run, [("cancelled", {"status": "cancelled"})], executor.count)
                        return False
                    # Only a run still running goes on here: a waiting one is resumed by a new claim.
                    return journal.append(conn, self.config, run, events, executor.count) == "running"
            except psycopg.Error as e:
                # The database is away: keep the events and try again; if our lease lapses meanwhile,
                # another instance fails the run and the lock above returns nothing.
                log.warning("run %s: could not record events, retrying: %s", self.run_id, type(e).__name__)
                time.sleep(1)
        return False
