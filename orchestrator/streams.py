"""GET /runs/<id>/events: a run's stored events, then its live ones, then its terminal event."""

import re

import psycopg
from flask import Blueprint, current_app, g, request

from common import queries, sse
from common.bearer import require_auth, session_is_live
from common.errors import ApiError
from orchestrator.executor import TERMINAL
from orchestrator.runs import own_run

bp = Blueprint("streams", __name__)

EVENT_ID_RE = re.compile(r"[0-9]{1,9}")  # not \d, which takes any script's digits
PAGE = 500


def resume_point():
    """The sequence number to resume after: Last-Event-ID (a reconnecting browser), else ?after=, else 0."""
    raw = (request.headers.get("Last-Event-ID") or request.args.get("after") or "0").strip()
    if not EVENT_ID_RE.fullmatch(raw):
        raise ApiError(400, "invalid_last_event_id", "Last-Event-ID / after must be an event id (a whole number).")
    return int(raw)


@bp.get("/runs/<run_id>/events")
@require_auth
def run_events(run_id):
    """Stream a run's events from just after the resume point; 204 when there is nothing left to send."""
    after = resume_point()
    run = own_run(run_id)
    if run["status"] in TERMINAL and after >= run["last_seq"]:
        return "", 204  # the run is over and the client has it all: a browser stops reconnecting
    stream = RunStream(current_app.extensions, g.claims, str(run["id"]), after)
    return sse.stream_response(g.user_id, stream.chunks())


class RunStream:
    """One client's view of one run; holds no database connection between reads."""

    def __init__(self, extensions, claims, run_id, after):
        self.pool, self.broker = extensions["db_pool"], extensions["broker"]
        self.config, self.claims = extensions["config"], claims
        self.run_id, self.last = run_id, after

    def _event(self, seq, event_type, data):
        self.last = seq
        return sse.event(seq, event_type, data)

    def _read_store(self):
        """Events after the last one sent, from the database; (texts, finished)."""
        texts = []
        while True:
            with self.pool.connection(timeout=3) as conn:
                rows = queries.list_run_events_after(conn, run_id=self.run_id, after=self.last, limit=PAGE)
            for row in rows:
                texts.append(self._event(row["seq"], row["type"], row["data"]))
                if row["type"] in TERMINAL:
                    return texts, True
            if len(rows) < PAGE:
                return texts, False

    def chunks(self):
        """The stream's text: retry hint, replay, then live events until the run ends or we must close."""
        inbox = self.broker.subscribe(("run", self.run_id), ("user", self.claims["sub"]))
        try:
            yield f"retry: {sse.RETRY_MS}\n\n"
            texts, finished = self._read_store()  # subscribed first, so nothing falls in between
            yield from texts
            if finished:
                return

            def session_live():
                return session_is_live(self.pool, self.claims["sid"], self.claims["sub"])

            for kind, item in sse.watch(inbox, self.config, self.claims, session_live):
                if kind == "close":
                    yield sse.event(self.last, "close", {"reason": item})
                    return
                if kind == "heartbeat":
                    yield sse.comment("heartbeat")
                    continue
                if kind == "message" and (item.get("kind") != "event" or item["seq"] <= self.last):
                    continue  # not a run event, or one already sent
                if kind == "message" and item["seq"] == self.last + 1 and "data" in item:
                    yield self._event(item["seq"], item["type"], item["data"])
                    finished = item["type"] in TERMINAL
                else:  # a resync, a gap, or a payload too large to carry: read the store
                    texts, finished = self._read_store()
                    yield from texts
                if finished:
                    return
        except psycopg.OperationalError:  # PoolTimeout included: the database went away mid-stream
            yield sse.event(self.last, "close", {"reason": "unavailable"})
        finally:
            self.broker.unsubscribe(inbox)
