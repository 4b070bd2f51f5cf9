"""The run queue's worker side: claim queued runs, execute them, keep their leases, reap the dead.

`POST /runs` only inserts a run `queued`. Every worker process's dispatcher claims the oldest ones
(`FOR UPDATE SKIP LOCKED`), at most RUN_CONCURRENCY at a time, whenever a run is queued anywhere
(NOTIFY), one of its own ends, or a poll comes round. A claimed run is leased to this process; the
lease is renewed for all of them every third of RUN_LEASE_SECONDS, and a run whose lease lapses (its
process died) is failed by whichever instance's reaper notices first: the bound is RUN_LEASE_SECONDS
plus one renewal interval. SIGTERM stops claiming; runs not yet claimed stay queued.
"""

import logging
import os
import queue
import socket
import threading
import uuid

import psycopg

from common import messages, queries
from common.notify import SHUTDOWN
from orchestrator import journal
from orchestrator.execution import Execution

log = logging.getLogger(__name__)

TERMINAL = journal.TERMINAL
POLL_SECONDS = 2.0  # a dispatcher looks at the queue this often even when no notification came
WAKE_TOPICS = (("topic", messages.QUEUE_TOPIC), ("topic", messages.CANCEL_TOPIC))


class Executor:
    """This worker process's share of the run queue."""

    def __init__(self, pool, broker, config, agent, tools, metrics):
        self.pool, self.broker, self.config = pool, broker, config
        self.agent, self.tools, self.metrics = agent, tools, metrics
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()
        # Set at SIGTERM (the broker's SHUTDOWN), before `close` at the worker's exit: a run that ends
        # during the graceful drain must not claim another, which `close` would then fail.
        self.draining = False
        self.active = {}  # run id (str) → Execution
        self._lock = threading.Lock()

    def count(self, status):
        """Count a run entering `status`."""
        self.metrics.count_run(status)

    def start(self):
        """Start dispatching and keeping leases, in the background, until `close`."""
        threading.Thread(target=self._dispatch, name="run-dispatcher", daemon=True).start()
        threading.Thread(target=self._keep_leases, name="run-leases", daemon=True).start()
        return self

    # --- Claiming ---------------------------------------------------------------------------------

    def fill(self):
        """Claim queued runs up to RUN_CONCURRENCY and start executing them."""
        with self._lock:
            room = self.config.run_concurrency - len(self.active)
            if room <= 0 or self.stopping.is_set() or self.draining:
                return
            try:
                claimed = self._claim(room)
            except psycopg.Error as e:
                log.warning("dispatcher: could not claim runs: %s", type(e).__name__)
                return
            for row in claimed:
                execution = self.active[str(row["id"])] = Execution(self, row)
                self.metrics.running.inc()
                threading.Thread(target=self._execute, args=(execution,), name=f"run-{row['id']}", daemon=True).start()

    def _claim(self, limit):
        with self.pool.connection(timeout=5) as conn, conn.transaction():
            rows = queries.claim_queued_runs(conn, owner=self.owner, lease=self.config.run_lease_seconds, limit=limit)
            started = []
            for row in rows:
                run = {k: row[k] for k in ("id", "user_id", "last_seq", "status")}
                if row["cancel_requested"]:  # cancelled while it waited
                    journal.append(conn, self.config, run, [("cancelled", {"status": "cancelled"})], self.count)
                else:
                    journal.append(conn, self.config, run, [("running", {"status": "running"})], self.count)
                    started.append({**row, "last_seq": run["last_seq"], "status": run["status"]})
        return started

    def _execute(self, execution):
        try:
            execution.execute()
        except Exception:
            log.exception("run %s: the executor failed", execution.run_id)
        finally:
            with self._lock:
                self.active.pop(str(execution.run_id), None)
            self.metrics.running.dec()
            self.fill()  # room for the next queued run

    def _dispatch(self):
        inbox = self.broker.subscribe(*WAKE_TOPICS)
        try:
            while not self.stopping.is_set():
                self.fill()
                try:
                    item = inbox.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                if item == SHUTDOWN:
                    self.draining = True  # runs not yet claimed stay queued for another instance
                    return
                if isinstance(item, messages.Message) and item.kind == messages.CANCEL:
                    self._stop(item.run, "cancel")
        finally:
            self.broker.unsubscribe(inbox)

    def _stop(self, run_id, why):
        with self._lock:
            execution = self.active.get(str(run_id))
        if execution:
            execution.stop(why)

    # --- Leases -----------------------------------------------------------------------------------

    def renew(self):
        """Renew the lease of every run executing here; stop those whose cancel was requested."""
        with self.pool.connection(timeout=5) as conn:
            rows = queries.renew_leases(conn, owner=self.owner, lease=self.config.run_lease_seconds)
            self.metrics.queued.set(queries.count_queued_runs(conn)["n"])
        for row in rows:
            if row["cancel_requested"]:  # a cancel whose notification never arrived
                self._stop(row["id"], "cancel")

    def _fail(self, lock_query, reason, timeout=None, **params):
        with self.pool.connection(timeout=timeout) as conn, conn.transaction():
            runs = lock_query(conn, **params)
            for run in runs:
                journal.append(conn, self.config, run, [("failed", {"status": "failed", "reason": reason})], self.count)
        return len(runs)

    def reap(self):
        """Fail unfinished runs whose executor stopped renewing its lease, and runs that waited for an
        answer past RUN_INPUT_TIMEOUT; return how many."""
        lost = self._fail(queries.lock_expired_runs, "executor_lost")
        if lost:
            log.warning("failed %d run(s) whose executor was lost", lost)
        unanswered = self._fail(queries.lock_expired_waits, "input_timeout", wait_seconds=self.config.run_input_timeout)
        if unanswered:
            log.warning("failed %d run(s) that waited too long for an answer", unanswered)
        return lost + unanswered

    def _keep_leases(self):
        interval = max(0.5, self.config.run_lease_seconds / 3)
        while not self.stopping.wait(interval):
            try:
                self.renew()
                self.reap()
            except psycopg.Error as e:
                log.warning("leases: database unavailable: %s", type(e).__name__)

    def close(self):
        """On shutdown: stop claiming, stop the agents, and fail this process's runs now (not after the lease)."""
        self.stopping.set()
        with self._lock:
            executions = list(self.active.values())
        for execution in executions:
            execution.stop("shutdown")
        try:
            self._fail(queries.lock_owned_runs, "shutdown", timeout=3, owner=self.owner)
        except psycopg.Error as e:
            log.warning("could not fail this process's runs at shutdown (the reaper will): %s", type(e).__name__)
