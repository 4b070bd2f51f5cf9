"""Executing runs: each event stored with the next sequence number, then announced with NOTIFY.

A run is leased to the worker process executing it; every event renews the lease. A run whose
lease lapses (its process died) is failed by whichever instance's reaper notices first, so no run
stays `running`: the bound is RUN_LEASE_SECONDS plus one reaper interval (a third of the lease).
"""

import logging
import os
import socket
import threading
import time
import uuid

import psycopg
from psycopg.types.json import Jsonb

from common import queries
from common.notify import publish
from orchestrator.agent import script

log = logging.getLogger(__name__)

TERMINAL = ("completed", "failed", "cancelled")
# Events that change a run's status; every other event leaves it as it is.
STATUS_AFTER = {"running": "running", **{t: t for t in TERMINAL}}


def record_event(conn, config, run, event_type, data, on_status=None):
    """Append an event to `run` (a row locked by the caller's transaction) and announce it."""
    seq = run["last_seq"] + 1
    status = STATUS_AFTER.get(event_type, run["status"])
    error = data.get("reason") if event_type == "failed" else None
    queries.execute(
        conn, "advance_run", run_id=run["id"], seq=seq, status=status, error=error, lease=config.run_lease_seconds
    )
    queries.execute(conn, "insert_run_event", run_id=run["id"], seq=seq, type=event_type, data=Jsonb(data))
    run_id = str(run["id"])
    publish(conn, {"kind": "event", "run": run_id, "seq": seq, "type": event_type, "data": data})
    if status != run["status"]:
        publish(conn, {"kind": "status", "user": run["user_id"], "runId": run_id, "status": status})
        if on_status:
            on_status(status)


class Executor:
    """Runs the simulated agent for runs created in this process, and fails runs whose executor died."""

    def __init__(self, pool, config, runs_counter):
        self.pool, self.config, self.runs_counter = pool, config, runs_counter
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()

    def _count(self, status):
        self.runs_counter.labels(status=status).inc()

    def start(self, run):
        """Execute `run` (just inserted, leased to us) in the background."""
        self._count("queued")
        worker = threading.Thread(target=self._execute, args=(run,), name=f"run-{run['id']}", daemon=True)
        worker.start()

    def _execute(self, run):
        events = [("running", {"status": "running"}), *script(run["prompt"], run["steps"])]
        for n, (event_type, data) in enumerate(events):
            if n and self.stopping.wait(self.config.run_step_delay_ms / 1000):
                return  # shutting down: close() fails the run
            if not self._step(run["id"], event_type, data):
                return

    def _step(self, run_id, event_type, data):
        """Write one event; False when the run has ended (finished, cancelled, or failed by a reaper)."""
        while not self.stopping.is_set():
            try:
                with self.pool.connection() as conn, conn.transaction():
                    run = queries.one(conn, "lock_run_for_step", run_id=run_id, owner=self.owner)
                    if run is None:
                        return False
                    if run["cancel_requested"]:
                        record_event(conn, self.config, run, "cancelled", {"status": "cancelled"}, self._count)
                        return False
                    record_event(conn, self.config, run, event_type, data, self._count)
                    return event_type not in TERMINAL
            except psycopg.Error as e:
                # The database is away: keep the step and try again; if our lease lapses meanwhile,
                # another instance fails the run and the lock above returns nothing.
                log.warning("run %s: could not record %s, retrying: %s", run_id, event_type, type(e).__name__)
                time.sleep(1)
        return False

    def _fail(self, lock_query, reason, timeout=None, **params):
        with self.pool.connection(timeout=timeout) as conn, conn.transaction():
            runs = queries.rows(conn, lock_query, **params)
            for run in runs:
                record_event(conn, self.config, run, "failed", {"status": "failed", "reason": reason}, self._count)
        return len(runs)

    def reap(self):
        """Fail unfinished runs whose executor stopped renewing its lease; return how many."""
        failed = self._fail("lock_expired_runs", "executor_lost")
        if failed:
            log.warning("failed %d run(s) whose executor was lost", failed)
        return failed

    def start_reaper(self):
        """Reap every third of a lease, in the background, until `close`."""

        def loop():
            interval = max(0.5, self.config.run_lease_seconds / 3)
            while not self.stopping.wait(interval):
                try:
                    self.reap()
                except psycopg.Error as e:
                    log.warning("reaper: database unavailable: %s", type(e).__name__)

        threading.Thread(target=loop, name="run-reaper", daemon=True).start()

    def close(self):
        """On shutdown: stop, and fail this process's unfinished runs now rather than after the lease."""
        self.stopping.set()
        try:
            self._fail("lock_owned_runs", "shutdown", timeout=3, owner=self.owner)
        except psycopg.Error as e:
            log.warning("could not fail this process's runs at shutdown (the reaper will): %s", type(e).__name__)
