"""GET /events: the caller's live notifications (their runs' status changes) over SSE."""

from flask import Blueprint, current_app, g, request

from common import sse
from common.bearer import require_auth, session_is_live
from common.errors import invalid_field

bp = Blueprint("events", __name__)


@bp.get("/events")
@require_auth
def events():
    """`ready` first, then a `run` event per status change; `?limit=N` closes after N events."""
    raw = request.args.get("limit")
    # ASCII digits only: str.isdigit() is true of '²', which int() refuses (a 500).
    if raw is not None and not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 100_000):
        raise invalid_field("limit", "must be a whole number from 1 to 100000")
    limit = int(raw) if raw else None
    return sse.stream_response(g.user_id, user_stream(current_app.extensions, g.claims, limit))


def user_stream(extensions, claims, limit):
    """The text of one user's notification stream. Live only: nothing is replayed on reconnect."""
    pool, broker, config = extensions["db_pool"], extensions["broker"], extensions["config"]
    inbox = broker.subscribe(("user", claims["sub"]))
    try:
        yield f"retry: {sse.RETRY_MS}\n\n"
        sent = 1
        yield sse.event(sent, "ready", {"userId": claims["sub"]})

        def session_live():
            return session_is_live(pool, claims["sid"], claims["sub"])

        signals = sse.watch(inbox, config, claims, session_live)
        while not (limit and sent >= limit):
            kind, item = next(signals)
            if kind == "close":
                yield sse.event(sent, "close", {"reason": item})
                return
            if kind == "heartbeat":
                yield sse.comment("heartbeat")
            elif kind == "message" and item.get("kind") == "status":
                sent += 1
                yield sse.event(sent, "run", {"runId": item["runId"], "status": item["status"]})
    finally:
        broker.unsubscribe(inbox)
