"""GET /events: the caller's live notifications (their runs' status changes) over SSE."""

from flask import Blueprint, g

from common import sse
from common.bearer import require_auth
from common.messages import STATUS
from common.validation import query_number

bp = Blueprint("events", __name__)


@bp.get("/events")
@require_auth
def events():
    """`ready` first, then a `run` event per status change; `?limit=N` closes after N events."""
    limit = query_number("limit", None, 1, 100_000)
    return sse.respond(UserStream(g.user_id, limit), g.claims)


class UserStream(sse.Handler):
    """One user's notification stream. Live only: nothing is replayed on reconnect."""

    __slots__ = ("user_id", "limit", "last_id", "done")

    def __init__(self, user_id, limit):
        self.user_id, self.limit, self.last_id, self.done = user_id, limit, 0, False

    def _send(self, name, data):
        self.last_id += 1
        self.done = self.limit is not None and self.last_id >= self.limit
        return (sse.event(self.last_id, name, data),)

    def opening(self, since):
        """`ready`, with the user's id."""
        return self._send("ready", {"userId": self.user_id})

    def on_message(self, message):
        """A `run` event for each status change of the user's runs."""
        if message.kind != STATUS:
            return ()
        return self._send("run", {"runId": message.run_id, "status": message.status})
