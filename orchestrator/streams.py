"""GET /runs/<id>/events: a run's stored events, then its live ones, then its terminal event."""

from flask import Blueprint, g, request

from common import queries, sse, state
from common.bearer import require_auth
from common.config_parsers import parse_whole_number
from common.errors import ApiError
from common.messages import EVENT
from orchestrator.executor import TERMINAL
from orchestrator.runs import own_run

bp = Blueprint("streams", __name__)

MAX_EVENT_ID = 999_999_999  # sequence numbers are 32-bit integers in the store
PAGE = 500


def resume_point():
    """The sequence number to resume after: Last-Event-ID (a reconnecting browser), else ?after=, else 0."""
    raw = (request.headers.get("Last-Event-ID") or request.args.get("after") or "0").strip()
    try:
        return parse_whole_number(raw, 0, MAX_EVENT_ID)
    except ValueError:
        raise ApiError(
            400, "invalid_last_event_id", "Last-Event-ID / after must be an event id (a whole number)."
        ) from None


@bp.get("/runs/<run_id>/events")
@require_auth
def run_events(run_id):
    """Stream a run's events from just after the resume point; 204 when there is nothing left to send."""
    after = resume_point()
    run = own_run(run_id)
    if run["status"] in TERMINAL and after >= run["last_seq"]:
        return "", 204  # the run is over and the client has it all: a browser stops reconnecting
    held = state.of()
    return sse.respond(RunStream(held.pool, held.broker, str(run["id"]), after), g.claims)


class RunStream(sse.Handler):
    """One client's view of one run: the store up to now, then live events until the terminal one.

    Holds no database connection between reads. Its reads of the store go through the broker's
    shared replays: streams of one run opening (or resyncing) together share one query and its text.
    """

    __slots__ = ("pool", "broker", "keys", "last_id", "done")

    def __init__(self, pool, broker, run_id, after):
        self.pool, self.broker = pool, broker
        self.keys, self.last_id, self.done = (("run", run_id),), after, False

    def opening(self, since):
        """Every stored event after the resume point (subscribed first, so nothing falls in between)."""
        return self._read_store(since)

    def on_message(self, message):
        """The next event as it came, or — after a gap or without its data — the store's."""
        if message.kind != EVENT or message.seq <= self.last_id:
            return ()  # not a run event, or one already sent
        if message.seq != self.last_id + 1 or not message.has_data:
            return self._read_store(message.received)
        self.last_id, self.done = message.seq, message.type in TERMINAL
        return (sse.shared_event(message),)

    def on_resync(self, since):
        """Whatever the store has that was not sent yet."""
        return self._read_store(since)

    def _read_store(self, since):
        """The stored events after the last one sent, read by a query started at `since` or later."""
        run_id, after = self.keys[0][1], self.last_id
        events = self.broker.replays.get((run_id, after), since, lambda: read_events(self.pool, run_id, after))
        if events:
            self.last_id, self.done = events[-1][0], events[-1][1] in TERMINAL
        return [text for _, _, text in events]


def read_events(pool, run_id, after):
    """A run's stored events after `after`, up to its terminal one: [(seq, type, SSE bytes)]."""
    events = []
    while True:
        with pool.connection(timeout=3) as conn:
            rows = queries.list_run_events_after(conn, run_id=run_id, after=after, limit=PAGE)
        for row in rows:
            events.append((row["seq"], row["type"], sse.event(row["seq"], row["type"], row["data"])))
            if row["type"] in TERMINAL:
                return events
        if len(rows) < PAGE:
            return events
        after = rows[-1]["seq"]
