"""Runs over the Orchestrator's JSON API, in-process: create, validate, authenticate, list, read, cancel.

Every test checks the response and then re-reads what the service wrote to PostgreSQL; runs execute
for real on the executor's background threads.
"""

import time
import uuid
from datetime import datetime

import pytest

from orchestrator.executor import TERMINAL
from tests.support.services import wait_for

SLOW_STEP_MS = 300


def create_run(client, user, **body):
    response = client.post("/runs", json={"prompt": "Plan a trip to Lisbon", **body}, headers=user["headers"])
    assert response.status_code == 201, response.json
    return response.json


def wait_until_ended(client, user, run_id, timeout=10.0):
    """Poll GET /runs/<id> until the run is over; return the run as the API shows it."""

    def ended():
        response = client.get(f"/runs/{run_id}", headers=user["headers"])
        assert response.status_code == 200, response.json
        return response.json if response.json["status"] in TERMINAL else None

    return wait_for(ended, timeout)


def run_row(db, run_id):
    return db.execute("SELECT * FROM runs WHERE id = %s", (run_id,)).fetchone()


def event_rows(db, run_id):
    return db.execute("SELECT seq, type, data FROM run_events WHERE run_id = %s ORDER BY seq", (run_id,)).fetchall()


def count_runs(db):
    return db.execute("SELECT count(*) AS n FROM runs").fetchone()["n"]


def assert_error(response, status, code, field=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["error"]["code"] == code
    if field:
        assert response.json["error"]["field"] == field
        assert response.json["error"]["message"].startswith(f"{field}:")


@pytest.fixture
def slow_client(orchestrator_env):
    """A test client of an Orchestrator whose steps take long enough to cancel a run mid-way."""
    from common.lifecycle import shutdown
    from orchestrator import create_app

    app = create_app({**orchestrator_env, "RUN_STEP_DELAY_MS": str(SLOW_STEP_MS)})
    yield app.test_client()
    shutdown(app)


# --- Creating a run -----------------------------------------------------------------------------


def test_create_returns_the_queued_run_and_stores_it_for_its_user(orchestrator_client, sign_up, db):
    user = sign_up()
    response = orchestrator_client.post("/runs", json={"prompt": "Plan a trip to Lisbon"}, headers=user["headers"])

    assert response.status_code == 201
    run = response.json
    assert run["status"] == "queued"
    assert run["prompt"] == "Plan a trip to Lisbon"
    assert run["steps"] == 3  # the default
    assert datetime.fromisoformat(run["createdAt"]).tzinfo is not None
    row = run_row(db, run["id"])
    assert row["user_id"] == user["userId"]
    assert row["prompt"] == "Plan a trip to Lisbon"
    assert row["steps"] == 3
    assert row["created_at"] == datetime.fromisoformat(run["createdAt"])


@pytest.mark.parametrize("steps", [1, 3])
def test_a_run_completes_with_a_contiguous_stored_event_log(orchestrator_client, sign_up, db, steps):
    user = sign_up()
    run = create_run(orchestrator_client, user, steps=steps)

    ended = wait_until_ended(orchestrator_client, user, run["id"])

    assert ended["status"] == "completed" and ended["error"] is None
    events = event_rows(db, run["id"])
    # running, plan, the echo, (tool_call, tool_result, message) per step, the closing message, final, completed
    assert len(events) == 6 + 3 * steps
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "running"
    assert events[-1]["type"] == "completed"
    assert [e["type"] for e in events].count("completed") == 1
    assert events[1]["type"] == "plan" and len(events[1]["data"]["steps"]) == steps
    deltas = "".join(e["data"]["delta"] for e in events if e["type"] == "message")
    assert events[-2]["type"] == "final" and events[-2]["data"]["text"] == deltas
    row = run_row(db, run["id"])
    assert row["status"] == "completed"
    assert row["last_seq"] == len(events)


# --- Validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 4001}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": ["a", "list"]}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"prompt": "ok", "steps": 0}, "steps"),
        ({"prompt": "ok", "steps": 51}, "steps"),
        ({"prompt": "ok", "steps": "3"}, "steps"),
        ({"prompt": "ok", "steps": 2.5}, "steps"),
        ({"prompt": "ok", "steps": True}, "steps"),
        ({"prompt": "ok", "steps": None}, "steps"),
    ],
)
def test_create_refuses_an_invalid_field_naming_it_and_writes_nothing(orchestrator_client, sign_up, db, body, field):
    user = sign_up()
    response = orchestrator_client.post("/runs", json=body, headers=user["headers"])

    assert_error(response, 400, "invalid_field", field)
    assert count_runs(db) == 0


def test_create_accepts_the_bounds_of_prompt_and_steps(orchestrator_client, sign_up, db):
    user = sign_up()
    shortest = create_run(orchestrator_client, user, prompt="x", steps=1)
    longest = create_run(orchestrator_client, user, prompt="y" * 4000, steps=50)

    assert (shortest["steps"], longest["steps"]) == (1, 50)
    assert run_row(db, longest["id"])["prompt"] == "y" * 4000
    assert count_runs(db) == 2


@pytest.mark.parametrize(
    ("data", "content_type"),
    [("prompt=hello", "application/x-www-form-urlencoded"), ('{"prompt": "hello"}', "text/plain"), ("", None)],
)
def test_create_refuses_a_body_that_is_not_json_with_415(orchestrator_client, sign_up, db, data, content_type):
    user = sign_up()
    headers = {**user["headers"], **({"Content-Type": content_type} if content_type else {})}
    response = orchestrator_client.post("/runs", data=data, headers=headers)

    assert_error(response, 415, "unsupported_media_type")
    assert count_runs(db) == 0


def test_create_refuses_malformed_json_with_400(orchestrator_client, sign_up, db):
    user = sign_up()
    for data in ('{"prompt": ', '["a list"]'):
        response = orchestrator_client.post(
            "/runs", data=data, headers={**user["headers"], "Content-Type": "application/json"}
        )
        assert_error(response, 400, "malformed_json")
    assert count_runs(db) == 0


# --- Authentication -----------------------------------------------------------------------------


def test_no_token_gets_401_with_the_bearer_challenge_and_writes_nothing(orchestrator_client, db):
    for response in (
        orchestrator_client.post("/runs", json={"prompt": "hello"}),
        orchestrator_client.get("/runs"),
        orchestrator_client.get(f"/runs/{uuid.uuid4()}"),
        orchestrator_client.post(f"/runs/{uuid.uuid4()}/cancel"),
    ):
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="oneshot"'
    assert count_runs(db) == 0


def test_a_token_of_a_revoked_session_gets_401_invalid_token(orchestrator_client, sign_up, db):
    user = sign_up()
    run = create_run(orchestrator_client, user)  # the token works while its session is live
    db.execute("UPDATE sessions SET revoked_at = now() WHERE user_id = %s", (user["userId"],))

    for response in (
        orchestrator_client.post("/runs", json={"prompt": "hello"}, headers=user["headers"]),
        orchestrator_client.get("/runs", headers=user["headers"]),
        orchestrator_client.get(f"/runs/{run['id']}", headers=user["headers"]),
        orchestrator_client.post(f"/runs/{run['id']}/cancel", headers=user["headers"]),
    ):
        assert_error(response, 401, "invalid_token")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="oneshot", error="invalid_token"'
    assert count_runs(db) == 1
    assert run_row(db, run["id"])["cancel_requested_at"] is None


def test_a_garbage_token_gets_401_invalid_token(orchestrator_client, db):
    response = orchestrator_client.get("/runs", headers={"Authorization": "Bearer not.a.token"})

    assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="oneshot", error="invalid_token"'


# --- Listing and reading ------------------------------------------------------------------------


def test_list_pages_through_every_run_newest_first_exactly_once(orchestrator_client, sign_up, db):
    user = sign_up()
    created = [create_run(orchestrator_client, user, prompt=f"run {n}", steps=1)["id"] for n in range(5)]
    newest_first = created[::-1]
    stored = db.execute(
        "SELECT id::text AS id FROM runs WHERE user_id = %s ORDER BY created_at DESC, id DESC", (user["userId"],)
    ).fetchall()
    assert [r["id"] for r in stored] == newest_first

    seen, pages, cursor = [], [], None
    while True:
        query = {"limit": 2, **({"before": cursor} if cursor else {})}
        response = orchestrator_client.get("/runs", query_string=query, headers=user["headers"])
        assert response.status_code == 200, response.json
        page = response.json
        pages.append([r["id"] for r in page["runs"]])
        seen += pages[-1]
        cursor = page["next"]
        if cursor is None:
            break
        assert cursor == pages[-1][-1]
        assert len(pages) < 10, "pagination does not end"

    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]
    assert seen == newest_first

    everything = orchestrator_client.get("/runs", headers=user["headers"]).json
    assert [r["id"] for r in everything["runs"]] == newest_first
    assert everything["next"] is None
    assert everything["runs"][0]["prompt"] == "run 4"


def test_list_with_an_exact_last_page_says_there_is_no_next(orchestrator_client, sign_up):
    user = sign_up()
    for n in range(2):
        create_run(orchestrator_client, user, prompt=f"run {n}", steps=1)

    page = orchestrator_client.get("/runs?limit=2", headers=user["headers"]).json

    assert len(page["runs"]) == 2 and page["next"] is None


@pytest.mark.parametrize("limit", ["0", "101", "x", "-1", "2.5", ""])
def test_list_refuses_a_limit_outside_1_to_100(orchestrator_client, sign_up, limit):
    user = sign_up()
    response = orchestrator_client.get("/runs", query_string={"limit": limit}, headers=user["headers"])

    assert_error(response, 400, "invalid_field", "limit")


def test_list_refuses_a_cursor_that_is_garbage_or_another_users_run(orchestrator_client, sign_up):
    alice, bob = sign_up(), sign_up()
    alices_run = create_run(orchestrator_client, alice, steps=1)
    create_run(orchestrator_client, bob, steps=1)

    for before in ("garbage", "", "' OR 1=1 --", str(uuid.uuid4()), alices_run["id"]):
        response = orchestrator_client.get("/runs", query_string={"before": before}, headers=bob["headers"])
        assert_error(response, 400, "invalid_field", "before")


def test_another_user_sees_none_of_the_runs(orchestrator_client, sign_up, db):
    alice, bob = sign_up(), sign_up()
    runs = [create_run(orchestrator_client, alice, steps=1) for _ in range(3)]

    listing = orchestrator_client.get("/runs", headers=bob["headers"])

    assert listing.status_code == 200
    assert listing.json == {"runs": [], "next": None}
    for run in runs:
        assert_error(orchestrator_client.get(f"/runs/{run['id']}", headers=bob["headers"]), 404, "run_not_found")
    assert count_runs(db) == 3


def test_get_returns_the_callers_run_as_stored(orchestrator_client, sign_up, db):
    user = sign_up()
    run = create_run(orchestrator_client, user, steps=1)
    ended = wait_until_ended(orchestrator_client, user, run["id"])

    row = run_row(db, run["id"])
    assert ended == {
        "id": run["id"],
        "prompt": row["prompt"],
        "steps": row["steps"],
        "status": row["status"],
        "error": row["error"],
        "createdAt": row["created_at"].isoformat(),
        "startedAt": row["started_at"].isoformat(),
        "updatedAt": row["updated_at"].isoformat(),
        "threadId": None,
    }


@pytest.mark.parametrize("run_id", ["not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g", str(uuid.uuid4())])
def test_get_of_a_run_id_that_cannot_exist_is_404(orchestrator_client, sign_up, run_id):
    user = sign_up()
    response = orchestrator_client.get(f"/runs/{run_id}", headers=user["headers"])

    assert_error(response, 404, "run_not_found")


# --- Cancelling ---------------------------------------------------------------------------------


def test_cancel_stops_a_running_run_with_a_final_cancelled_event(slow_client, sign_up, db):
    owner, stranger = sign_up(), sign_up()
    run = create_run(slow_client, owner, steps=5)  # 24 events, about 7 s if left alone
    wait_for(lambda: event_rows(db, run["id"]), timeout=5)  # it has started

    refused = slow_client.post(f"/runs/{run['id']}/cancel", headers=stranger["headers"])
    assert_error(refused, 404, "run_not_found")
    assert run_row(db, run["id"])["cancel_requested_at"] is None

    accepted = slow_client.post(f"/runs/{run['id']}/cancel", headers=owner["headers"])
    assert accepted.status_code == 202, accepted.json
    assert accepted.json["id"] == run["id"] and accepted.json["cancelRequested"] is True
    assert run_row(db, run["id"])["cancel_requested_at"] is not None

    ended = wait_until_ended(slow_client, owner, run["id"], timeout=5)
    assert ended["status"] == "cancelled"
    events = event_rows(db, run["id"])
    assert events[-1]["type"] == "cancelled" and events[-1]["data"] == {"status": "cancelled"}
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len(events) < 6 + 3 * 5
    assert "completed" not in [e["type"] for e in events]

    time.sleep(3 * SLOW_STEP_MS / 1000)  # the executor would have written more by now, had it gone on
    assert event_rows(db, run["id"]) == events
    row = run_row(db, run["id"])
    assert row["status"] == "cancelled" and row["last_seq"] == events[-1]["seq"]

    again = slow_client.post(f"/runs/{run['id']}/cancel", headers=owner["headers"])
    assert_error(again, 409, "run_finished")
    assert_error(slow_client.post(f"/runs/{run['id']}/cancel", headers=stranger["headers"]), 404, "run_not_found")
    assert event_rows(db, run["id"]) == events


def test_cancel_of_a_completed_run_is_409_and_changes_nothing(orchestrator_client, sign_up, db):
    user = sign_up()
    run = create_run(orchestrator_client, user, steps=1)
    wait_until_ended(orchestrator_client, user, run["id"])
    events = event_rows(db, run["id"])

    response = orchestrator_client.post(f"/runs/{run['id']}/cancel", headers=user["headers"])

    assert_error(response, 409, "run_finished")
    row = run_row(db, run["id"])
    assert row["status"] == "completed" and row["cancel_requested_at"] is None
    assert event_rows(db, run["id"]) == events


def test_cancel_of_a_run_that_does_not_exist_is_404(orchestrator_client, sign_up):
    user = sign_up()
    for run_id in ("not-a-uuid", str(uuid.uuid4())):
        assert_error(orchestrator_client.post(f"/runs/{run_id}/cancel", headers=user["headers"]), 404, "run_not_found")
