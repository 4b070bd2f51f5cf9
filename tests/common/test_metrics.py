"""Request metrics (common.metrics): counted per endpoint and status, SSE paths left out, /metrics serves them.

In process, on the API app (the multiprocess path runs under gunicorn in tests/scenarios/test_api_e2e.py).
"""

from prometheus_client.parser import text_string_to_metric_families


def samples(client):
    text = client.get("/metrics").get_data(as_text=True)
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(found, name, **labels):
    return sum(s.value for s in found if s.name == name and labels.items() <= s.labels.items())


def test_requests_are_counted_by_endpoint_and_status_and_streams_are_not_timed(client):
    for _ in range(3):
        assert client.get("/health").status_code == 200
    assert client.get("/me").status_code == 401
    assert client.get("/events").status_code == 401  # an SSE path: left out of the request metrics
    found = samples(client)
    count = "flask_http_request_duration_seconds_count"
    assert value(found, count, endpoint="health.live", status="200", method="GET") == 3
    assert value(found, count, endpoint="me.me", status="401") == 1
    assert value(found, "flask_http_request_total", method="GET", status="200") == 3
    assert value(found, "flask_http_request_total", method="GET", status="401") == 1
    assert not [
        s for s in found if s.name.startswith("flask_http") and str(s.labels.get("endpoint")).startswith("events.")
    ]
    buckets = [s for s in found if s.name == "flask_http_request_duration_seconds_bucket"]
    assert buckets and all(s.labels["le"] for s in buckets)


def test_token_pairs_and_refresh_reuse_are_counted_once_each(client):
    before = samples(client)
    pair = client.post("/auth/register", json={"userId": "counted", "password": "correct horse battery"})
    assert pair.status_code == 201
    pair = client.post("/auth/token", json={"userId": "counted", "password": "correct horse battery"}).json
    assert client.post("/auth/refresh", json={"refreshToken": pair["refreshToken"]}).status_code == 200
    reused = client.post("/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    assert reused.status_code == 401 and reused.json["error"]["code"] == "token_reused"
    after = samples(client)

    def added(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert added("oneshot_tokens_issued_total", grant="password") == 1
    assert added("oneshot_tokens_issued_total", grant="refresh_token") == 1
    assert added("oneshot_refresh_reuse_detected_total") == 1
