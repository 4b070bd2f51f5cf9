"""common.service: the skeleton every service starts from answers health, metrics, request ids,
security headers, CORS and body limits the same way, and serves /static only where a service ships it."""

import re
from collections import Counter

import pytest
from flask import request
from prometheus_client.parser import text_string_to_metric_families

from common.config import load_config
from common.service import create_service_app

ORIGIN = "http://web.test:3000"


@pytest.fixture(scope="module")
def app():
    """A skeleton with one route of its own, a stream path left untimed, and one CORS origin."""
    config = load_config({"CORS_ORIGINS": ORIGIN, "MAX_BODY_BYTES": "1024"})
    app = create_service_app(__name__, config, untimed_paths=[r"^/stream$"])

    def echo():
        """Says hello and how many body bytes it read (reading is what the body limit guards)."""
        return {"hello": "world", "read": len(request.get_data())}

    app.add_url_rule("/echo", "echo", echo, methods=["GET", "POST"])
    app.add_url_rule("/stream", "stream", lambda: {"streamed": True})
    return app


def request_counts(client):
    """{endpoint: requests timed} as /metrics shows them (every method and status summed)."""
    counts = Counter()
    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == "flask_http_request_duration_seconds_count":
                counts[sample.labels["endpoint"]] += sample.value
    return counts


def test_a_route_of_the_service_answers_with_the_shared_headers(app):
    response = app.test_client().get("/echo", headers={"Origin": ORIGIN})
    assert response.get_json() == {"hello": "world", "read": 0}
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_health_and_ready_are_served_without_any_dependency(app):
    client = app.test_client()
    assert client.get("/health").get_json() == {"ok": True}
    assert client.get("/ready").get_json() == {"ok": True}


def test_the_body_limit_comes_from_the_config(app):
    client = app.test_client()
    assert client.post("/echo", data="x" * 1024).status_code == 200
    assert client.post("/echo", data="x" * 1025).status_code == 413


def test_requests_are_timed_except_on_untimed_paths(app):
    client = app.test_client()
    before = request_counts(client)
    client.get("/echo")
    client.get("/stream")
    after = request_counts(client)
    assert after["echo"] == before["echo"] + 1
    assert after["stream"] == 0


@pytest.mark.parametrize(("service", "serves_static"), [("api", False), ("web", True)])
def test_static_files_are_served_only_by_a_service_that_ships_them(service, serves_static):
    app = create_service_app(service, load_config({}))
    assert ("static" in app.view_functions) is serves_static
    response = app.test_client().get("/static/favicon.svg")
    assert response.status_code == (200 if serves_static else 404)
    response.close()
