"""The messages services send each other over NOTIFY: one constructor per kind, and one reader.

A message is a small JSON object. Its `run`, `user` and `topic` fields say who receives it (they are
the broker's subscription keys); `kind` says what it is:

- `session`: a user's sessions changed (logout, a reused refresh token): their streams re-check.
- `status`: a run's new status (the API's /events relays it; `queued` also wakes every dispatcher).
- `event`: one stored event of a run, with its data when it fits in a NOTIFY payload.
- `cancel`: stop this run now, wherever it executes.

Senders build the dict with a constructor and `common.notify.publish` sends it; listeners get a
`Message` from `read`.
"""

import json
import time

SESSION, STATUS, EVENT, CANCEL = "session", "status", "event", "cancel"
QUEUE_TOPIC, CANCEL_TOPIC = "queue", "cancel"  # topics every orchestrator worker's dispatcher hears


def session_changed(user_id):
    """A user's sessions were revoked or changed: every stream of theirs re-checks its own."""
    return {"kind": SESSION, "user": user_id}


def run_status(user_id, run_id, status):
    """A run's new status; `queued` also goes to the dispatchers' topic (a run waits to be claimed)."""
    message = {"kind": STATUS, "user": user_id, "runId": run_id, "status": status}
    if status == "queued":
        message["topic"] = QUEUE_TOPIC
    return message


def run_event(run_id, seq, event_type, data):
    """One stored event of a run; `data` is dropped by `publish` when the payload would be too large."""
    return {"kind": EVENT, "run": run_id, "seq": seq, "type": event_type, "data": data}


def cancel_run(run_id):
    """Ask whichever worker executes `run_id` to stop it now."""
    return {"kind": CANCEL, "run": run_id, "topic": CANCEL_TOPIC}


class Message:
    """A message as a listener reads it: its fields as attributes (None when absent).

    One Message is shared by every subscriber in the process, so whatever is derived from it — the
    SSE text of a run event — can be made once and kept in `text`.
    """

    __slots__ = (
        "kind",
        "run",
        "user",
        "topic",
        "run_id",
        "status",
        "seq",
        "type",
        "data",
        "has_data",
        "text",
        "received",
    )

    def __init__(self, fields):
        get = fields.get
        self.kind, self.run, self.user, self.topic = get("kind"), get("run"), get("user"), get("topic")
        self.run_id, self.status = get("runId"), get("status")
        self.seq, self.type, self.data = get("seq"), get("type"), get("data")
        self.has_data = "data" in fields  # a payload too large to carry arrives without it
        self.text = None  # filled by common.sse the first time a stream sends this event
        self.received = time.monotonic()  # anything read from the database after this reflects it

    def keys(self):
        """The subscription keys this message is for."""
        keys = []
        if self.run:
            keys.append(("run", self.run))
        if self.user:
            keys.append(("user", self.user))
        if self.topic:
            keys.append(("topic", self.topic))
        return keys


def read(payload):
    """The `Message` in a NOTIFY payload, or None when the payload is not a JSON object."""
    try:
        fields = json.loads(payload)
    except ValueError:
        return None
    return Message(fields) if isinstance(fields, dict) else None
