"""A run's journal: events appended with the next sequence numbers, stored, then announced.

Every write happens inside the caller's transaction on a run row the caller has locked, so the
sequence stays gapless however many instances there are, and NOTIFY goes out only at commit.
"""

import json

from common import messages, queries
from common.notify import publish

TERMINAL = ("completed", "failed", "cancelled")
ACTIVE = ("queued", "running", "waiting")
# Events that change a run's status; every other event leaves it as it is. A run waits for a person
# after `input_required`, and is queued again (for any worker to resume) once `input` answers it.
STATUS_AFTER = {"running": "running", "input_required": "waiting", "input": "queued", **{t: t for t in TERMINAL}}


def encode(data):
    """An event's data as the one line of JSON that is stored, announced and streamed."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def append(conn, config, run, events, on_status=None):
    """Append `events` ((type, data) pairs) to `run` (a row locked by the caller); return the new status.

    `run` is updated in place (`last_seq`, `status`), so a caller may append again in the same
    transaction.
    """
    run_id = str(run["id"])
    status, error = run["status"], None
    for event_type, data in events:
        run["last_seq"] += 1
        text = encode(data)
        queries.insert_run_event(conn, run_id=run["id"], seq=run["last_seq"], type=event_type, data=text)
        publish(conn, messages.run_event(run_id, run["last_seq"], event_type, data))
        new_status = STATUS_AFTER.get(event_type, status)
        if event_type == "failed":
            error = data.get("reason")
        if new_status != status:
            status = new_status
            publish(conn, messages.run_status(run["user_id"], run_id, status))
            if on_status:
                on_status(status)
    queries.advance_run(
        conn,
        run_id=run["id"],
        seq=run["last_seq"],
        status=status,
        error=error,
        lease=config.run_lease_seconds,
    )
    run["status"] = status
    return status
