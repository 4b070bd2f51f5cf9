"""GET /events on the API: the caller's run status changes, published by the Orchestrator."""

import threading

import requests

from tests.support.sse import read_sse


def test_events_deliver_run_status_changes_made_through_the_orchestrator(start_service, orchestrator_env, sign_up):
    api = start_service("api", orchestrator_env)
    orchestrator = start_service("orchestrator", orchestrator_env)
    user, other = sign_up(), sign_up()
    stream = requests.get(f"{api.url}/events?limit=4", headers=user["headers"], stream=True, timeout=15)
    assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
    assert stream.headers["X-Accel-Buffering"] == "no" and stream.headers["Cache-Control"] == "no-store"
    received = []
    reader = threading.Thread(target=lambda: received.extend(read_sse(stream)), daemon=True)
    reader.start()

    requests.post(f"{orchestrator.url}/runs", json={"prompt": "someone else's"}, headers=other["headers"], timeout=10)
    run = requests.post(f"{orchestrator.url}/runs", json={"prompt": "mine", "steps": 1}, headers=user["headers"])
    reader.join(15)
    assert not reader.is_alive()
    assert received[0] == {"id": "1", "event": "ready", "data": {"userId": user["userId"]}}
    assert [(e["event"], e["data"]) for e in received[1:]] == [
        ("run", {"runId": run.json()["id"], "status": status}) for status in ("queued", "running", "completed")
    ]
    assert [e["id"] for e in received] == ["1", "2", "3", "4"]


def test_events_send_heartbeats_and_limit_one_is_just_ready(start_service, env, sign_up):
    api = start_service("api", {**env, "SSE_HEARTBEAT_SECONDS": "1"})
    user = sign_up()
    only_ready = read_sse(requests.get(f"{api.url}/events?limit=1", headers=user["headers"], stream=True, timeout=5))
    assert [e["event"] for e in only_ready] == ["ready"]
    with requests.get(f"{api.url}/events", headers=user["headers"], stream=True, timeout=5) as stream:
        events = read_sse(stream, until=lambda e: "comment" in e)
    assert events[-1] == {"comment": "heartbeat"}


def test_events_refuse_bad_requests_before_streaming(client):
    no_token = client.get("/events")
    assert no_token.status_code == 401 and no_token.content_type == "application/json"
    assert no_token.headers["WWW-Authenticate"] == 'Bearer realm="oneshot"'
    register = client.post("/auth/register", json={"userId": "ev-user", "password": "long enough"})
    assert register.status_code == 201
    token = client.post("/auth/token", json={"userId": "ev-user", "password": "long enough"}).json["token"]
    for bad in ("0", "-1", "abc", "100001"):
        response = client.get(f"/events?limit={bad}", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 400 and response.json["error"]["field"] == "limit"
