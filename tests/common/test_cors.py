"""CORS allows exactly the configured origins, and every response carries the shared security headers.

The `client` app is configured with CORS_ORIGINS="http://localhost:3000,http://web.test:3000". A listed
origin is echoed back exactly (never `*`) with `Vary: Origin`; any other origin, including look-alikes
and `null`, gets no Access-Control-Allow-Origin at all. X-Request-Id is kept when well-formed and
replaced otherwise.
"""

import re

import pytest

LISTED = ["http://localhost:3000", "http://web.test:3000"]
UNLISTED = [
    "http://evil.test",
    "http://localhost:3000.evil.test",
    "null",
    "http://localhost:30000",
    "http://localhost:300",
    "https://localhost:3000",
    "http://localhost",
    "http://xlocalhost:3000",
    "http://web.test:3000.evil.test",
    "http://localhost:3000/",
    "*",
]
MADE_UP_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def preflight(client, origin, path="/auth/token", method="POST", headers="authorization,content-type"):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def vary_values(response):
    return {v.strip().lower() for header in response.headers.getlist("Vary") for v in header.split(",")}


@pytest.mark.parametrize("origin", LISTED)
def test_preflight_from_listed_origin_is_allowed_exactly(client, origin):
    r = preflight(client, origin)
    assert r.status_code in (200, 204)
    assert r.headers.getlist("Access-Control-Allow-Origin") == [origin]
    allowed_methods = {m.strip().upper() for m in r.headers.get("Access-Control-Allow-Methods", "").split(",")}
    assert "POST" in allowed_methods
    allowed_headers = {h.strip().lower() for h in r.headers.get("Access-Control-Allow-Headers", "").split(",")}
    assert {"authorization", "content-type"} <= allowed_headers
    assert "origin" in vary_values(r)
    assert r.headers.get("Access-Control-Allow-Credentials") is None


@pytest.mark.parametrize("origin", LISTED)
def test_real_request_from_listed_origin_gets_that_origin_back(client, origin):
    r = client.get("/health", headers={"Origin": origin})
    assert r.status_code == 200
    assert r.headers.getlist("Access-Control-Allow-Origin") == [origin]
    assert "origin" in vary_values(r)
    exposed = {h.strip().lower() for h in r.headers.get("Access-Control-Expose-Headers", "").split(",")}
    assert "x-request-id" in exposed


def test_listed_origin_is_echoed_on_error_responses_too(client):
    """A browser app must be able to read a 401 body, so CORS applies to errors as well."""
    r = client.get("/me", headers={"Origin": LISTED[0]})
    assert r.status_code == 401
    assert r.headers.get("Access-Control-Allow-Origin") == LISTED[0]


@pytest.mark.parametrize("origin", UNLISTED)
def test_preflight_from_unlisted_origin_gets_no_allow_origin(client, origin):
    r = preflight(client, origin)
    assert "Access-Control-Allow-Origin" not in r.headers, r.headers
    assert "Access-Control-Allow-Headers" not in r.headers
    assert "Access-Control-Allow-Methods" not in r.headers


@pytest.mark.parametrize("origin", UNLISTED)
@pytest.mark.parametrize("path", ["/health", "/me"])
def test_real_request_from_unlisted_origin_gets_no_allow_origin(client, origin, path):
    r = client.get(path, headers={"Origin": origin})
    assert "Access-Control-Allow-Origin" not in r.headers, r.headers
    assert "Access-Control-Expose-Headers" not in r.headers


def test_no_origin_gets_no_allow_origin(client):
    r = client.get("/health")
    assert "Access-Control-Allow-Origin" not in r.headers


def test_wildcard_is_never_sent(client):
    for origin in [*LISTED, *UNLISTED]:
        for r in (preflight(client, origin), client.get("/health", headers={"Origin": origin})):
            assert r.headers.get("Access-Control-Allow-Origin") != "*"


# --- security headers and request ids ----------------------------------------------------------------


def security_header_responses(client):
    """A spread of JSON responses: success, auth failure, not found, bad request."""
    return {
        "health": client.get("/health"),
        "me_unauthenticated": client.get("/me"),
        "not_found": client.get("/no-such-path"),
        "token_bad_request": client.post("/auth/token", json={"userId": "x"}),
        "register_created": client.post("/auth/register", json={"userId": "alice", "password": "password123"}),
        "token_issued": client.post("/auth/token", json={"userId": "alice", "password": "password123"}),
    }


def test_security_headers_on_json_responses(client):
    for name, r in security_header_responses(client).items():
        assert r.is_json, name
        assert r.headers.get("X-Content-Type-Options") == "nosniff", name
        assert r.headers.get("Referrer-Policy") == "no-referrer", name
        assert r.headers.get("Cache-Control") == "no-store", name


def test_token_response_is_not_cacheable(client):
    client.post("/auth/register", json={"userId": "alice", "password": "password123"})
    r = client.post("/auth/token", json={"userId": "alice", "password": "password123"})
    assert r.status_code == 200
    assert "token" in r.get_json()
    assert r.headers.get("Cache-Control") == "no-store"


@pytest.mark.parametrize("path", ["/health", "/me", "/no-such-path"])
def test_well_formed_request_id_is_echoed(client, path):
    r = client.get(path, headers={"X-Request-Id": "abc-123"})
    assert r.headers.getlist("X-Request-Id") == ["abc-123"]


@pytest.mark.parametrize(
    "inbound",
    ["a" * 200, "abc 123", "abc\n123", "abc\r\nSet-Cookie: x=1", "<script>", "abc/123", ""],
    ids=["200_chars", "space", "newline", "header_injection", "angle_brackets", "slash", "empty"],
)
def test_malformed_request_id_is_replaced(client, inbound):
    # Passed through the WSGI environ: werkzeug's client refuses to build a header with a newline.
    r = client.get("/health", environ_overrides={"HTTP_X_REQUEST_ID": inbound})
    request_ids = r.headers.getlist("X-Request-Id")
    assert len(request_ids) == 1
    assert request_ids[0] != inbound
    assert MADE_UP_REQUEST_ID.match(request_ids[0])


def test_request_id_is_made_when_none_is_sent_and_differs_per_request(client):
    first = client.get("/health").headers["X-Request-Id"]
    second = client.get("/health").headers["X-Request-Id"]
    assert MADE_UP_REQUEST_ID.match(first) and MADE_UP_REQUEST_ID.match(second)
    assert first != second


# --- Vary: Origin, whatever the number of listed origins ------------------------------------------


@pytest.fixture
def single_origin_client(make_client):
    """The API with one origin in CORS_ORIGINS, as most deployments have (flask-cors then omits Vary)."""
    return make_client(CORS_ORIGINS=LISTED[0])


def single_origin_responses(client):
    """Responses whose CORS headers depend on Origin: preflights, real requests and errors, from
    a listed origin, an unlisted one and none."""
    responses = {}
    for label, origin in (("listed", LISTED[0]), ("unlisted", "http://evil.test")):
        responses[f"preflight_{label}"] = preflight(client, origin)
        responses[f"health_{label}"] = client.get("/health", headers={"Origin": origin})
        responses[f"unauthorized_{label}"] = client.get("/me", headers={"Origin": origin})
        responses[f"not_found_{label}"] = client.get("/no-such-path", headers={"Origin": origin})
        responses[f"bad_request_{label}"] = client.post("/auth/token", json={}, headers={"Origin": origin})
    responses["health_no_origin"] = client.get("/health")
    return responses


def test_every_response_says_it_varies_by_origin_with_a_single_listed_origin(single_origin_client):
    """A shared cache must never hand one origin's answer (with or without Allow-Origin) to another."""
    for name, r in single_origin_responses(single_origin_client).items():
        assert "origin" in vary_values(r), (name, r.headers)
        assert [v.strip().lower() for h in r.headers.getlist("Vary") for v in h.split(",")].count("origin") == 1, name


def test_single_listed_origin_is_still_echoed_exactly(single_origin_client):
    r = single_origin_client.get("/health", headers={"Origin": LISTED[0]})
    assert r.headers.getlist("Access-Control-Allow-Origin") == [LISTED[0]]
    other = single_origin_client.get("/health", headers={"Origin": LISTED[1]})
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.mark.parametrize("origins", ["http://localhost:3000", "http://localhost:3000,http://web.test:3000"])
def test_orchestrator_responses_vary_by_origin(orchestrator_env, origins):
    from common.lifecycle import shutdown
    from orchestrator import create_app

    app = create_app({**orchestrator_env, "CORS_ORIGINS": origins})
    try:
        client = app.test_client()
        for r in (
            preflight(client, LISTED[0], path="/runs"),
            client.get("/runs", headers={"Origin": LISTED[0]}),
            client.get("/runs", headers={"Origin": "http://evil.test"}),
            client.get("/health"),
        ):
            assert "origin" in vary_values(r), r.headers
    finally:
        shutdown(app)
