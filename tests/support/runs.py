"""Runs on a running Orchestrator: start one, follow its stream to the end, read what was stored."""

import psycopg
import requests

from orchestrator.executor import TERMINAL
from tests.support.sse import read_sse


def create_run(service, user, steps=3, prompt="Compare three databases"):
    """POST /runs to a running orchestrator; return the new run's id."""
    response = requests.post(
        f"{service.url}/runs", json={"prompt": prompt, "steps": steps}, headers=user["headers"], timeout=10
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def follow_run(service, user, run_id):
    """The whole event stream of a run, to its terminal event: [(id, event, data)]."""
    with requests.get(
        f"{service.url}/runs/{run_id}/events", headers=user["headers"], stream=True, timeout=(5, 30)
    ) as response:
        assert response.status_code == 200, response.text
        events = read_sse(response, until=lambda event: event.get("event") in TERMINAL, limit=10**6)
    return [(int(e["id"]), e["event"], e["data"]) for e in events if "event" in e]


def stored_events(database_url, run_id):
    """The run's events as the database holds them: [(seq, type, data)] in order."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT seq, type, data FROM run_events WHERE run_id = %s ORDER BY seq", (run_id,))
        return [(seq, kind, data) for seq, kind, data in rows]


def kinds(events):
    """The types of (id, type, data) events, in order."""
    return [kind for _, kind, _ in events]


def text_of(events):
    """The message deltas of (id, type, data) events, joined: the text a reader saw."""
    return "".join(data["delta"] for _, kind, data in events if kind == "message")
