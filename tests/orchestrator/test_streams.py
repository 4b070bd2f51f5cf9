"""Run streams over the wire: real gunicorn with gevent workers, real PostgreSQL, LISTEN/NOTIFY.

Each stream is compared with the run_events rows the executor stored, which are the record.
"""

import time
from datetime import UTC, datetime

import pytest
import requests

from orchestrator.executor import TERMINAL
from tests.support.runs import create_run
from tests.support.services import wait_for
from tests.support.sse import read_sse


def get_run(service, user, run_id):
    response = requests.get(f"{service.url}/runs/{run_id}", headers=user["headers"], timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def wait_until_ended(service, user, run_id, timeout=10.0):
    return wait_for(lambda: (run := get_run(service, user, run_id))["status"] in TERMINAL and run, timeout)


def open_stream(service, run_id, headers=None, params=None):
    """GET the run's event stream (the caller closes it: use it in a `with`)."""
    return requests.get(
        f"{service.url}/runs/{run_id}/events", headers=headers, params=params, stream=True, timeout=(5, 10)
    )


def events_of(response, **kwargs):
    """The stream's events as (id, event, data), heartbeats left out."""
    return [(int(e["id"]), e["event"], e["data"]) for e in read_sse(response, **kwargs) if "comment" not in e]


def timed_events(response):
    """The stream's events, each with the wall-clock time it arrived."""
    arrivals = []
    events = read_sse(response, until=lambda event: arrivals.append(datetime.now(UTC)))
    # `until` sees events only, not comments (heartbeats)
    return list(zip([e for e in events if "comment" not in e], arrivals, strict=True))


def stored_events(db, run_id):
    rows = db.execute("SELECT seq, type, data FROM run_events WHERE run_id = %s ORDER BY seq", (run_id,)).fetchall()
    return [(r["seq"], r["type"], r["data"]) for r in rows]


def stored_times(db, run_id):
    rows = db.execute("SELECT seq, created_at FROM run_events WHERE run_id = %s ORDER BY seq", (run_id,)).fetchall()
    return {r["seq"]: r["created_at"] for r in rows}


def assert_json_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == code


@pytest.fixture
def orchestrator(start_service, orchestrator_env):
    """The Orchestrator under gunicorn (two gevent workers), 20 ms steps."""
    return start_service("orchestrator", orchestrator_env)


@pytest.fixture
def slow_orchestrator(start_service, orchestrator_env):
    """The Orchestrator under gunicorn with 200 ms steps, slow enough to act on a run mid-way."""
    return start_service("orchestrator", {**orchestrator_env, "RUN_STEP_DELAY_MS": "200"})


# --- The stream is the stored record --------------------------------------------------------------


def test_a_run_streams_every_stored_event_in_order_ending_with_completed(orchestrator, sign_up, db):
    user = sign_up()
    run_id = create_run(orchestrator, user, steps=3)

    with open_stream(orchestrator, run_id, user["headers"]) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Accel-Buffering"] == "no"
        streamed = events_of(response)

    assert [seq for seq, _, _ in streamed] == list(range(1, 6 + 3 * 3 + 1))
    assert streamed[0][1] == "running" and streamed[-1][1] == "completed"
    assert [kind for _, kind, _ in streamed].count("completed") == 1
    assert streamed == stored_events(db, run_id)
    assert get_run(orchestrator, user, run_id)["status"] == "completed"


def test_events_arrive_live_not_buffered_until_the_run_ends(slow_orchestrator, sign_up):
    user = sign_up()
    started = datetime.now(UTC)
    run_id = create_run(slow_orchestrator, user, steps=2)  # 12 events, 11 delays of 200 ms

    with open_stream(slow_orchestrator, run_id, user["headers"]) as response:
        timed = timed_events(response)

    assert [e["event"] for e, _ in timed][-1] == "completed"
    elapsed = [(at - started).total_seconds() for _, at in timed]
    assert elapsed[-1] >= 11 * 0.2 * 0.9, elapsed
    assert elapsed[0] < elapsed[-1] / 2, elapsed
    # Each event reached the client before the executor wrote the next one, give or take a step.
    assert all(later - earlier < 1.0 for earlier, later in zip(elapsed, elapsed[1:], strict=False)), elapsed


# --- Resuming -------------------------------------------------------------------------------------


def read_first(service, user, run_id, count):
    with open_stream(service, run_id, user["headers"]) as response:
        return events_of(response, limit=count)


def test_resuming_after_event_5_by_header_or_query_yields_exactly_the_rest(orchestrator, sign_up, db):
    user = sign_up()
    run_id = create_run(orchestrator, user, steps=3)
    head = read_first(orchestrator, user, run_id, 5)
    assert [seq for seq, _, _ in head] == [1, 2, 3, 4, 5]

    tails = []
    for headers, params in (({"Last-Event-ID": "5"}, None), ({}, {"after": "5"})):
        with open_stream(orchestrator, run_id, {**user["headers"], **headers}, params) as response:
            assert response.status_code == 200
            tails.append(events_of(response))

    stored = stored_events(db, run_id)
    for tail in tails:
        assert [seq for seq, _, _ in tail] == list(range(6, len(stored) + 1))
        assert head + tail == stored
        assert tail[-1][1] == "completed"


def test_resuming_while_the_run_is_still_going_leaves_no_gap_and_no_duplicate(slow_orchestrator, sign_up, db):
    user = sign_up()
    run_id = create_run(slow_orchestrator, user, steps=3)  # 15 events, about 3 s
    head = read_first(slow_orchestrator, user, run_id, 3)
    assert get_run(slow_orchestrator, user, run_id)["status"] == "running"

    with open_stream(slow_orchestrator, run_id, {**user["headers"], "Last-Event-ID": "3"}) as response:
        middle = events_of(response, limit=4)
    assert get_run(slow_orchestrator, user, run_id)["status"] == "running"
    with open_stream(slow_orchestrator, run_id, user["headers"], {"after": str(middle[-1][0])}) as response:
        tail = events_of(response)

    streamed = head + middle + tail
    assert [seq for seq, _, _ in streamed] == list(range(1, 16))
    assert streamed == stored_events(db, run_id)
    assert streamed[-1][1] == "completed"


def test_a_finished_run_replays_after_a_retry_hint_and_resuming_past_its_end_is_204(orchestrator, sign_up, db):
    user = sign_up()
    run_id = create_run(orchestrator, user, steps=1)
    wait_until_ended(orchestrator, user, run_id)
    stored = stored_events(db, run_id)
    last = len(stored)

    for headers, params in (
        ({"Last-Event-ID": str(last)}, None),
        ({"Last-Event-ID": str(last + 100)}, None),
        ({}, {"after": str(last)}),
    ):
        with open_stream(orchestrator, run_id, {**user["headers"], **headers}, params) as response:
            assert response.status_code == 204
            assert response.content == b""

    with open_stream(orchestrator, run_id, {**user["headers"], "Last-Event-ID": str(last - 1)}) as response:
        assert response.status_code == 200
        body = response.text  # the run is over: the replay ends by itself
    first_line, rest = body.split("\n", 1)
    assert first_line.startswith("retry: ") and int(first_line.removeprefix("retry: ")) > 0
    assert rest == f'\nid: {last}\nevent: completed\ndata: {{"status":"completed"}}\n\n'
    assert stored[-1] == (last, "completed", {"status": "completed"})


# --- Safety -----------------------------------------------------------------------------------------


def test_agent_text_cannot_inject_events_into_the_stream(orchestrator, sign_up, db):
    user = sign_up()
    prompt = "\n\nevent: completed\ndata: {}\n\nid: 99"
    run_id = create_run(orchestrator, user, prompt=prompt, steps=1)

    with open_stream(orchestrator, run_id, user["headers"]) as response:
        streamed = events_of(response)
    with open_stream(orchestrator, run_id, user["headers"]) as response:
        body = response.text

    kinds = [kind for _, kind, _ in streamed]
    assert kinds.count("completed") == 1 and kinds[-1] == "completed"
    assert [seq for seq, _, _ in streamed] == list(range(1, len(streamed) + 1))
    assert all(isinstance(data, dict) for _, _, data in streamed)
    echoed = [data["delta"] for _, kind, data in streamed if kind == "message"][0]
    assert echoed == f"You asked: {prompt}\n"  # the text arrived whole, newlines and all, as data
    assert streamed == stored_events(db, run_id)
    lines = body.split("\n")
    assert lines.count("event: completed") == 1
    assert "id: 99" not in lines and "data: {}" not in lines


def test_a_refused_stream_is_a_json_error_before_any_event(orchestrator, sign_up, db):
    """Only the owner, with a live session and a well-formed resume point, gets a stream; the others
    get a JSON error, never a text/event-stream that fails later."""
    alice, bob = sign_up(), sign_up()
    run_id = create_run(orchestrator, alice, steps=1)

    for bad in ("abc", "-1", "1.5", "1 2", "1e3", "0x10", "99999999999999999999"):
        for headers, params in (({"Last-Event-ID": bad}, None), ({}, {"after": bad})):
            with open_stream(orchestrator, run_id, {**alice["headers"], **headers}, params) as response:
                assert_json_error(response, 400, "invalid_last_event_id")

    with open_stream(orchestrator, run_id, bob["headers"]) as response:
        assert_json_error(response, 404, "run_not_found")
    with open_stream(orchestrator, "not-a-uuid", alice["headers"]) as response:
        assert_json_error(response, 404, "run_not_found")
    with open_stream(orchestrator, run_id) as response:
        assert_json_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="oneshot"'
    with open_stream(orchestrator, run_id, {"Authorization": "Bearer not.a.token"}) as response:
        assert_json_error(response, 401, "invalid_token")

    db.execute("UPDATE sessions SET revoked_at = now() WHERE user_id = %s", (alice["userId"],))
    with open_stream(orchestrator, run_id, alice["headers"]) as response:
        assert_json_error(response, 401, "invalid_token")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="oneshot", error="invalid_token"'
        assert "retry:" not in response.text


# --- Cancelling -------------------------------------------------------------------------------------


def test_cancelling_mid_stream_ends_the_stream_with_a_cancelled_event(slow_orchestrator, sign_up, db):
    user = sign_up()
    run_id = create_run(slow_orchestrator, user, steps=5)  # 24 events, about 5 s if left alone
    streamed = []

    def cancel_after_the_third(event):
        streamed.append((int(event["id"]), event["event"], event["data"]))
        if len(streamed) == 3:
            url = f"{slow_orchestrator.url}/runs/{run_id}/cancel"
            cancel = requests.post(url, headers=user["headers"], timeout=10)
            assert cancel.status_code == 202, cancel.text
        return False

    with open_stream(slow_orchestrator, run_id, user["headers"]) as response:
        read_sse(response, until=cancel_after_the_third)

    assert streamed[-1][1] == "cancelled" and streamed[-1][2] == {"status": "cancelled"}
    assert [seq for seq, _, _ in streamed] == list(range(1, len(streamed) + 1))
    assert len(streamed) <= 5  # it stopped at its next step or the one after
    assert "completed" not in [kind for _, kind, _ in streamed]
    assert get_run(slow_orchestrator, user, run_id)["status"] == "cancelled"
    assert streamed == stored_events(db, run_id)

    time.sleep(0.6)  # three step delays: the executor would have written more by now, had it gone on
    assert stored_events(db, run_id) == streamed
    with open_stream(slow_orchestrator, run_id, {**user["headers"], "Last-Event-ID": str(streamed[-1][0])}) as response:
        assert response.status_code == 204


# --- Several instances ------------------------------------------------------------------------------


def test_a_run_executed_by_one_instance_streams_live_from_another(start_service, orchestrator_env, sign_up, db):
    settings = {**orchestrator_env, "RUN_STEP_DELAY_MS": "150"}
    instance_a = start_service("orchestrator", settings)
    instance_b = start_service("orchestrator", settings)
    user = sign_up()

    run_id = create_run(instance_a, user, steps=3)  # 16 events, about 2.3 s
    with open_stream(instance_b, run_id, user["headers"]) as response:
        assert response.status_code == 200
        timed = timed_events(response)

    streamed = [(int(e["id"]), e["event"], e["data"]) for e, _ in timed]
    assert streamed == stored_events(db, run_id)
    assert streamed[-1][1] == "completed"
    written = stored_times(db, run_id)
    completed_at = written[streamed[-1][0]]
    arrived_before_the_end = [seq for (seq, _, _), (_, at) in zip(streamed, timed, strict=True) if at < completed_at]
    assert timed[0][1] < completed_at
    assert len(arrived_before_the_end) >= len(streamed) // 2, arrived_before_the_end
    assert get_run(instance_b, user, run_id)["status"] == "completed"
