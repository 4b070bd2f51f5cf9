"""The Preview Manager under real gunicorn + gevent: identity forwarding, header hygiene, path confinement,
upstream failures, streaming both ways, and its own health and metrics.

Two upstreams stand behind it. The real API (on a database of this module's own) wherever the API's own
answers matter: /me, /events, its 401 and 413, its CORS. And tests/support/upstream/, a tiny echo server
mounted under `/prefix` (so `API_URL` has a path prefix), wherever a test must see exactly what crossed
the proxy. Requests whose bytes matter (`..`, absolute request targets, repeated or hop-by-hop headers)
go out through `http.client`'s `putrequest`, which writes the request line and headers verbatim;
`requests` would normalise them first.
"""

import hashlib
import http.client
import json
import secrets
import socket
import threading
import time
import urllib.parse
import uuid
from types import SimpleNamespace

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.databases import fresh_database
from tests.support.identity_headers import SPOOFS, lines_for, send
from tests.support.processes import proc_status, worker_pids
from tests.support.services import Service, free_port, service_env, wait_for
from tests.support.sse import read_sse
from tests.support.upstream import PATTERN, PIECE

MIB = 1024 * 1024
LISTED_ORIGIN = "http://localhost:3000"  # in service_env's CORS_ORIGINS
HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}


# --- helpers -------------------------------------------------------------------------------------------
def raw_request(service, target, headers=(), method="GET", body=None, host=None):
    """Send `method target` with exactly `headers` (a list of pairs, repeats allowed) and return
    (status, [(name, value), ...] as received, body bytes). Only Host is added, unless given."""
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host or f"127.0.0.1:{service.port}")
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def header_values(headers, name):
    """Every value of header `name` in a list of (name, value) pairs, in order."""
    return [v for k, v in headers if k.lower() == name.lower()]


def echoed(proxy, path="/api/echo/x", headers=None, **kwargs):
    """GET an echo URL through the proxy with `requests`; return (response, what the upstream saw)."""
    with requests.get(f"{proxy.url}{path}", headers=headers, timeout=10, **kwargs) as response:
        assert response.status_code == 200, response.text
        return response, response.json()


def metric(service, name, **labels):
    """The sum of the samples called `name` in the service's /metrics whose labels include `labels`."""
    with requests.get(f"{service.url}/metrics", timeout=5) as response:
        text = response.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def access_token(secret, user_id):
    """A valid access token for `user_id` under `secret` (the echo upstream checks no session)."""
    from common.config import load_config
    from common.tokens import issue_access_token

    return issue_access_token(load_config({"JWT_SECRET": secret}), user_id, uuid.uuid4())[0]


def sign_up(env, user_id=None):
    """An account with a live session, made through the API's own code; its id, token and headers."""
    from api import sessions
    from common.config import load_config
    from common.db import connect

    config = load_config(env, require=("DATABASE_URL", "JWT_SECRET"))
    user_id = user_id or f"user-{uuid.uuid4().hex[:8]}"
    with connect(config.database_url) as conn:
        conn.execute("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", (user_id,))
        pair = sessions.start(conn, config, user_id)
    return {"userId": user_id, "token": pair["token"], "headers": {"Authorization": f"Bearer {pair['token']}"}}


def proxy_env(secret, api_url, **overrides):
    """Settings of a Preview Manager under test: one worker (so /proc measures all of it), short timeouts."""
    env = {"JWT_SECRET": secret, "API_URL": api_url, "WEB_CONCURRENCY": "1", "PROXY_READ_TIMEOUT": "1"}
    return {**env, **{k: str(v) for k, v in overrides.items()}}


# --- fixtures: one echo stack and one API stack per module, stopped at its end --------------------------
@pytest.fixture(scope="module")
def echo_stack(tmp_path_factory):
    """tests/support/upstream/ and a Preview Manager in front of it with API_URL=<upstream>/prefix."""
    logs, secret, started = tmp_path_factory.mktemp("echo-stack"), secrets.token_urlsafe(48), []
    try:
        upstream = Service("tests.support.upstream", {"WEB_CONCURRENCY": "1"}, logs / "upstream.log")
        started.append(upstream.start())
        proxy = Service("preview", proxy_env(secret, f"{upstream.url}/prefix"), logs / "preview.log")
        started.append(proxy.start())
        yield SimpleNamespace(upstream=upstream, proxy=proxy, secret=secret)
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture(scope="module")
def api_env(pg_server, template_db, request):
    """API settings on a migrated database of this module's own; heartbeats every second."""
    return service_env(fresh_database(pg_server, template_db, request), WEB_CONCURRENCY=1, SSE_HEARTBEAT_SECONDS=1)


@pytest.fixture(scope="module")
def api_stack(api_env, tmp_path_factory):
    """The API and a Preview Manager in front of it (API_URL=<api>)."""
    logs, started = tmp_path_factory.mktemp("api-stack"), []
    try:
        api = Service("api", api_env, logs / "api.log")
        started.append(api.start())
        proxy = Service("preview", {**api_env, **proxy_env(api_env["JWT_SECRET"], api.url)}, logs / "preview.log")
        started.append(proxy.start())
        yield SimpleNamespace(api=api, proxy=proxy, env=api_env)
    finally:
        for service in reversed(started):
            service.stop()


# --- identity -------------------------------------------------------------------------------------------
def test_me_through_the_proxy_reports_the_token_subject_as_forwarded_user_id(api_stack):
    user = sign_up(api_stack.env)
    with requests.get(f"{api_stack.proxy.url}/api/me", headers=user["headers"], timeout=10) as response:
        assert response.status_code == 200, response.text
        assert response.json()["userId"] == user["userId"]
        assert response.json()["forwardedUserId"] == user["userId"]


def test_spoofed_x_user_id_never_reaches_the_api(api_stack, echo_stack):
    user = sign_up(api_stack.env)
    spoofs = [
        [("X-User-Id", "admin")],
        [("x-user-id", "admin")],
        [("X-User-Id", "admin"), ("X-User-Id", "root")],
        [("X-User-Id", user["userId"]), ("x-user-id", "admin")],
        [("X_User_Id", "admin")],
    ]
    for spoof in spoofs:
        # With a token, the API sees exactly the token's subject (a leaked "admin" would make /me a 403).
        bearer = [("Authorization", f"Bearer {user['token']}")]
        status, _, body = raw_request(api_stack.proxy, "/api/me", bearer + spoof)
        assert status == 200, (spoof, body)
        assert json.loads(body)["forwardedUserId"] == user["userId"], spoof
        token = access_token(echo_stack.secret, "alice")
        status, _, body = raw_request(echo_stack.proxy, "/api/echo/x", [("Authorization", f"Bearer {token}"), *spoof])
        assert status == 200 and json.loads(body)["headers"]["X-User-Id"] == "alice", (spoof, body)
        # Without one, the upstream sees no X-User-Id at all.
        status, _, body = raw_request(echo_stack.proxy, "/api/echo/x", spoof)
        assert status == 200 and "X-User-Id" not in json.loads(body)["headers"], (spoof, body)


def test_no_spelling_of_x_user_id_crosses_the_proxy(api_stack):
    """The API sees the token's subject as X-User-Id, whatever the client sent in its place; a name
    with a space before the colon is refused by the proxy's gunicorn (400) and goes nowhere."""
    user = sign_up(api_stack.env)
    for label, lines in SPOOFS:
        status, body = send(api_stack.proxy.port, "/api/me", user["token"], lines_for(lines, user["userId"]))
        if label.startswith("space_before_colon"):
            assert status == 400, (label, status, body)
            continue
        assert status == 200, (label, status, body)
        assert body["forwardedUserId"] == user["userId"], (label, body)


def test_request_without_bearer_is_forwarded_without_identity_and_gets_the_apis_challenge(api_stack, echo_stack):
    _, seen = echoed(echo_stack.proxy, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert "X-User-Id" not in seen["headers"]
    assert seen["headers"]["Authorization"] == "Basic dXNlcjpwYXNz"  # not ours to judge: passed on as is
    with requests.get(f"{api_stack.proxy.url}/api/me", timeout=10) as response:
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="oneshot"'
        assert response.json()["error"]["code"] == "unauthorized"


def test_bad_token_is_refused_at_the_proxy_and_never_reaches_the_api(api_stack):
    user = sign_up(api_stack.env)
    forged = access_token(secrets.token_urlsafe(48), user["userId"])  # right shape, someone else's secret
    bad = {"garbage": "Bearer not-a-jwt", "forged": f"Bearer {forged}", "empty": "Bearer "}
    probes = {name: uuid.uuid4().hex for name in bad}
    for name, authorization in bad.items():
        url = f"{api_stack.proxy.url}/api/me?probe={probes[name]}"
        with requests.get(url, headers={"Authorization": authorization}, timeout=10) as response:
            assert response.status_code == 401, (name, response.text)
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="oneshot", error="invalid_token"'
            assert response.json()["error"]["code"] == "invalid_token"
    # A good request's probe shows up in the API's access log; the bad ones' never do.
    good = uuid.uuid4().hex
    with requests.get(f"{api_stack.proxy.url}/api/me?probe={good}", headers=user["headers"], timeout=10) as response:
        assert response.status_code == 200
    wait_for(lambda: good in api_stack.api.log(), timeout=5)
    log = api_stack.api.log()
    assert not [name for name, probe in probes.items() if probe in log]


# --- headers --------------------------------------------------------------------------------------------
def test_hop_by_hop_headers_from_the_client_do_not_cross(echo_stack):
    sent = [
        ("Connection", "keep-alive, X-Client-Secret, X-Other"),
        ("X-Client-Secret", "client-secret"),
        ("X-Other", "other"),
        ("Keep-Alive", "timeout=9"),
        ("TE", "trailers"),
        ("Trailer", "X-Checksum"),
        ("Upgrade", "example/1"),
        ("Proxy-Authorization", "Basic cHJveHk6cGFzcw=="),
        ("Proxy-Foo", "bar"),
        ("X-Kept", "kept"),
    ]
    status, _, body = raw_request(echo_stack.proxy, "/api/echo/x", sent)
    assert status == 200, body
    seen = {name.lower(): value for name, value in json.loads(body)["headers"].items()}
    assert seen["x-kept"] == "kept"
    crossed = {"x-client-secret", "x-other", "proxy-authorization", "proxy-foo", *HOP_BY_HOP - {"connection"}}
    assert not crossed & seen.keys(), seen
    # The upstream leg has its own Connection header; it names none of the client's headers.
    assert not {"x-client-secret", "x-other", "upgrade"} & {v.strip() for v in seen["connection"].lower().split(",")}


def test_hop_by_hop_headers_from_the_upstream_do_not_cross_and_two_set_cookies_stay_two(echo_stack):
    # /prefix/hop writes its response itself: Connection: close, X-Secret, Upgrade; Keep-Alive; Proxy-*;
    # TE; Trailer; a chunked body with a trailer; two Set-Cookie.
    status, headers, body = raw_request(echo_stack.proxy, "/api/hop")
    assert status == 200 and json.loads(body) == {"hop": True}
    names = {name.lower() for name, _ in headers}
    assert not {"x-secret", "keep-alive", "proxy-authenticate", "proxy-foo", "upgrade", "te", "trailer"} & names
    assert header_values(headers, "X-Kept") == ["kept"]
    assert header_values(headers, "Set-Cookie") == ["first=1; Path=/; HttpOnly", "second=2; Path=/; HttpOnly"]
    # What is left of Connection is the proxy's own choice for its client leg.
    for value in header_values(headers, "Connection"):
        assert {v.strip() for v in value.lower().split(",")} <= {"keep-alive", "close"}, value
    # The ordinary WSGI path keeps repeated Set-Cookie apart too.
    status, headers, _ = raw_request(echo_stack.proxy, "/api/cookies")
    assert status == 200 and header_values(headers, "Set-Cookie") == ["first=1; Path=/", "second=2; Path=/"]


def test_x_request_id_is_forwarded_and_returned(echo_stack):
    response, seen = echoed(echo_stack.proxy, headers={"X-Request-Id": "client-id.42:a_b"})
    assert seen["headers"]["X-Request-Id"] == "client-id.42:a_b"
    assert response.headers["X-Request-Id"] == "client-id.42:a_b"
    for inbound in ({"X-Request-Id": "not a plain id!"}, {}):
        response, seen = echoed(echo_stack.proxy, headers=inbound)
        made = response.headers["X-Request-Id"]
        assert made not in ("", "not a plain id!") and seen["headers"]["X-Request-Id"] == made


def test_forwarded_headers_name_the_peer_and_the_upstream_gets_its_own_host(echo_stack):
    forged = {"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Host": "evil.example", "Host": "preview.test"}
    _, seen = echoed(echo_stack.proxy, headers=forged)
    headers = seen["headers"]
    assert headers["Host"] == f"127.0.0.1:{echo_stack.upstream.port}"
    assert headers["X-Forwarded-For"] == "127.0.0.1"  # the socket peer; the client's claim is dropped
    assert headers["X-Forwarded-Host"] == "preview.test"  # the host the client asked the proxy for
    assert headers["X-Forwarded-Proto"] == "http"


def test_untrusted_client_cannot_choose_x_forwarded_proto(echo_stack):
    # TRUSTED_PROXY_HOPS=0: nothing in front is trusted, so the proxy reports the scheme of its own socket.
    _, seen = echoed(echo_stack.proxy, headers={"X-Forwarded-Proto": "https"})
    assert seen["headers"]["X-Forwarded-Proto"] == "http"


def test_with_one_trusted_hop_the_incoming_forwarded_chain_is_passed_on_as_it_came(echo_stack, start_service):
    proxy = start_service(
        "preview", proxy_env(echo_stack.secret, f"{echo_stack.upstream.url}/prefix", TRUSTED_PROXY_HOPS=1)
    )
    # The last entry is the client as the trusted proxy in front saw it; the API must see the same.
    forwarded = "198.51.100.1, 203.0.113.7"
    chain = {"X-Forwarded-For": forwarded, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example"}
    _, seen = echoed(proxy, headers=chain)
    assert seen["headers"]["X-Forwarded-For"] == forwarded
    assert seen["headers"]["X-Forwarded-Proto"] == "https"
    assert seen["headers"]["X-Forwarded-Host"] == "app.example"
    _, seen = echoed(proxy)
    assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"


def test_proxy_adds_no_cors_of_its_own_and_the_api_answers_preflights(api_stack):
    proxy = api_stack.proxy.url
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with requests.options(f"{proxy}/api/auth/token", headers={**preflight, "Origin": LISTED_ORIGIN}, timeout=10) as r:
        assert r.status_code == 200
        assert r.raw.headers.getlist("Access-Control-Allow-Origin") == [LISTED_ORIGIN]
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
    with requests.options(
        f"{proxy}/api/auth/token", headers={**preflight, "Origin": "http://evil.test"}, timeout=10
    ) as r:
        assert "Access-Control-Allow-Origin" not in r.headers
    user = sign_up(api_stack.env)
    with requests.get(f"{proxy}/api/me", headers={**user["headers"], "Origin": LISTED_ORIGIN}, timeout=10) as r:
        assert r.status_code == 200 and r.raw.headers.getlist("Access-Control-Allow-Origin") == [LISTED_ORIGIN]
    with requests.get(f"{proxy}/health", headers={"Origin": LISTED_ORIGIN}, timeout=10) as r:
        assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


# --- the path stays under API_URL -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "target",
    [
        "/api/../x",
        "/api/%2e%2e/x",
        "/api/%2E%2E/x",
        "/api/echo/../../x",
        "/api/echo/..%2f..%2fx",
        "/api/echo/%2e",
        "/api/echo/x/..",
        "/api/echo//x",
        "/api/echo/..%5c..%5cx",
        "http://evil.example/api/../x",
    ],
)
def test_path_escapes_are_refused(echo_stack, target):
    status, headers, body = raw_request(echo_stack.proxy, target)
    assert status == 400, body
    assert header_values(headers, "Content-Type") == ["application/json"]
    assert json.loads(body)["error"]["code"] == "invalid_path"


@pytest.mark.parametrize("target", ["/api//evil.example/x", "/api/%2f%2fevil.example/x"])
def test_a_path_naming_another_host_matches_no_route_of_the_proxy(echo_stack, target):
    """`/api//host/...` is not a path under /api/ at all: the proxy's own 404, never the upstream's."""
    status, headers, body = raw_request(echo_stack.proxy, target)
    assert status == 404, body
    error = json.loads(body)["error"]
    assert error["code"] == "not_found" and "evil.example" not in error["message"]  # the echo would name it


@pytest.mark.parametrize(
    ("target", "upstream_target"),
    [
        ("http://evil.example/api/echo/x", "/prefix/echo/x"),
        ("http://evil.example:8080/api/echo/x?y=1", "/prefix/echo/x?y=1"),
        ("/api/echo/@evil.example/x", "/prefix/echo/@evil.example/x"),
        ("/api/echo/%252e%252e/x", "/prefix/echo/%252e%252e/x"),
        ("/api/echo/a%3Fb%23c", "/prefix/echo/a%3Fb%23c"),
        ("/api/echo/x?next=http://evil.example/", "/prefix/echo/x?next=http://evil.example/"),
    ],
)
def test_requests_that_pass_stay_on_the_upstream_host_under_its_prefix(echo_stack, target, upstream_target):
    status, _, body = raw_request(echo_stack.proxy, target)
    assert status == 200, body
    seen = json.loads(body)
    assert seen["rawUri"] == upstream_target
    assert seen["headers"]["Host"] == f"127.0.0.1:{echo_stack.upstream.port}"


@pytest.mark.parametrize(
    "query",
    [
        "next=http://evil.example/&q=%2e%2e",
        "d=%2F&f=%20&e=a+b&u=%C3%A9&amp=%26&eq=%3D",
        "bad=%zz&b=%41&d=%2F&q=%2e%2e",  # one malformed escape must not change how the others read
    ],
)
def test_query_string_reaches_the_upstream_with_the_same_meaning(echo_stack, query):
    status, _, body = raw_request(echo_stack.proxy, f"/api/echo/x?{query}")
    assert status == 200, body
    seen = json.loads(body)["query"]
    assert urllib.parse.parse_qsl(seen, keep_blank_values=True) == urllib.parse.parse_qsl(query, keep_blank_values=True)


# --- upstream failures ----------------------------------------------------------------------------------
def test_upstream_that_stalls_gives_504_json_within_the_read_timeout(echo_stack):
    started = time.monotonic()
    with requests.get(f"{echo_stack.proxy.url}/api/stall?seconds=3", timeout=10) as response:
        elapsed = time.monotonic() - started
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "upstream_timeout"
    assert 0.9 <= elapsed < 2.5, elapsed  # PROXY_READ_TIMEOUT=1


def test_upstream_stopped_gives_502_json_and_ready_503(start_service, env):
    api = start_service("api", {**env, "WEB_CONCURRENCY": "1"})
    proxy = start_service("preview", proxy_env(env["JWT_SECRET"], api.url))
    with requests.get(f"{proxy.url}/ready", timeout=10) as response:
        assert response.status_code == 200 and response.json() == {"ok": True}
    api.stop()
    with requests.get(f"{proxy.url}/health", timeout=10) as response:
        assert response.status_code == 200 and response.json() == {"ok": True}
    with requests.get(f"{proxy.url}/ready", timeout=10) as response:
        assert response.status_code == 503 and response.json()["ok"] is False
    with requests.get(f"{proxy.url}/api/me", timeout=10) as response:
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_unavailable"
    assert metric(proxy, "oneshot_proxy_upstream_errors_total", kind="unreachable") >= 1


def test_upstream_that_never_listened_gives_502_json(start_service):
    proxy = start_service("preview", proxy_env(secrets.token_urlsafe(48), f"http://127.0.0.1:{free_port()}"))
    with requests.post(f"{proxy.url}/api/auth/token", json={"userId": "x"}, timeout=10) as response:
        assert response.status_code == 502
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "upstream_unavailable"


# --- streaming ------------------------------------------------------------------------------------------
def test_sse_from_the_api_arrives_event_by_event_through_the_proxy(api_stack):
    user = sign_up(api_stack.env)
    headers = {**user["headers"], "Accept": "text/event-stream"}
    arrivals = []

    def note(event):
        arrivals.append(time.monotonic())
        return "comment" in event

    with requests.get(f"{api_stack.proxy.url}/api/events", headers=headers, stream=True, timeout=10) as stream:
        assert stream.status_code == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["X-Accel-Buffering"] == "no"
        assert stream.headers["Cache-Control"] == "no-store"
        events = read_sse(stream, until=note)  # the stream never ends by itself: all of this came while open
    assert events[0] == {"id": "1", "event": "ready", "data": {"userId": user["userId"]}}
    assert events[-1] == {"comment": "heartbeat"}
    # The heartbeat comes about SSE_HEARTBEAT_SECONDS=1 after `ready`: nothing held `ready` back for it.
    assert arrivals[-1] - arrivals[0] > 0.5


class CloseDelimitedSseUpstream:
    """A tiny HTTP/1.0-style SSE server: no Content-Length, no chunked encoding, the body ends when it
    closes the connection. It sends the first event, then waits (up to `patience` seconds) for the
    test to say the client has it before it sends the last one and closes."""

    def __init__(self, patience=5.0):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.client_has_first, self.patience = threading.Event(), patience
        self.released_by_client = None  # True when the client had the first event before the last was sent
        self.thread = threading.Thread(target=self.serve_one, daemon=True)
        self.thread.start()

    def serve_one(self):
        conn, _ = self.listener.accept()
        with conn:
            conn.recv(65536)  # the request (the proxy sends no body on a GET)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\r\n")
            conn.sendall(b'id: 1\nevent: first\ndata: {"n": 1}\n\n')
            self.released_by_client = self.client_has_first.wait(self.patience)
            conn.sendall(b'id: 2\nevent: last\ndata: {"n": 2}\n\n')
        self.listener.close()


def test_close_delimited_sse_from_the_upstream_arrives_event_by_event(start_service):
    upstream = CloseDelimitedSseUpstream()
    proxy = start_service("preview", proxy_env(secrets.token_urlsafe(48), upstream.url, PROXY_READ_TIMEOUT=10))
    headers = {"Accept": "text/event-stream"}

    def note(event):
        if event.get("event") == "first":
            upstream.client_has_first.set()
        return event.get("event") == "last"

    with requests.get(f"{proxy.url}/api/stream", headers=headers, stream=True, timeout=10) as stream:
        assert stream.status_code == 200
        assert stream.headers["Content-Type"] == "text/event-stream"
        events = read_sse(stream, until=note)
    upstream.thread.join(10)
    assert [e["event"] for e in events] == ["first", "last"]
    # The first event crossed the proxy while the upstream was still holding the last one back.
    assert upstream.released_by_client is True


def test_api_413_reaches_the_client_unchanged(api_stack):
    body = b'{"userId": "' + b"x" * (2 * MIB) + b'"}'
    headers = {"Content-Type": "application/json"}

    def token_request(base, chunked):
        data = (body[i : i + PIECE] for i in range(0, len(body), PIECE)) if chunked else body
        with requests.post(f"{base}/auth/token", data=data, headers=headers, timeout=10) as response:
            return response.status_code, response.headers["Content-Type"], response.json()

    for chunked in (False, True):  # with a Content-Length, and chunked (the API's two ways of refusing)
        direct = token_request(api_stack.api.url, chunked)
        assert direct[0] == 413 and direct[2]["error"]["code"] == "payload_too_large"
        assert token_request(f"{api_stack.proxy.url}/api", chunked) == direct


def test_20_mb_upload_and_download_stream_through_with_flat_memory(echo_stack):
    proxy = echo_stack.proxy
    [worker] = worker_pids(proxy.proc.pid)
    body = PATTERN * (20 * MIB // PIECE)
    digest = hashlib.sha256(body).hexdigest()  # the download sends the same bytes

    def upload(data):
        with requests.post(f"{proxy.url}/api/upload", data=data, timeout=30) as response:
            assert response.status_code == 200, response.text
            return response.json()

    def pieces(data):
        return (data[i : i + PIECE] for i in range(0, len(data), PIECE))

    def download(mb):
        received, size = hashlib.sha256(), 0
        with requests.get(f"{proxy.url}/api/download?mb={mb}", stream=True, timeout=30) as response:
            assert response.status_code == 200
            assert response.headers["Content-Length"] == str(mb * MIB)
            for piece in response.iter_content(PIECE):
                received.update(piece)
                size += len(piece)
        return size, received.hexdigest()

    # Warm every code path first, so the baseline already holds what they load once.
    upload(body[:MIB]), upload(pieces(body[:MIB])), download(1)
    rss_before = proc_status(worker, "VmRSS")
    try:
        with open(f"/proc/{worker}/clear_refs", "w") as clear:
            clear.write("5")  # restart the peak (VmHWM) from now
    except OSError:
        pass  # the peak then covers the warm-up too: still a valid upper bound

    sized = upload(body)  # a Content-Length from the client is kept: the upstream gets a sized body
    assert (sized["size"], sized["sha256"], sized["chunked"]) == (len(body), digest, False)
    chunked = upload(pieces(body))
    assert (chunked["size"], chunked["sha256"]) == (len(body), digest)
    assert download(20) == (len(body), digest)

    peak, rss_after = proc_status(worker, "VmHWM"), proc_status(worker, "VmRSS")
    assert rss_after - rss_before < 15 * 1024, (rss_before, rss_after)
    assert peak - rss_before < 15 * 1024, (rss_before, peak)


# --- the proxy's own endpoints --------------------------------------------------------------------------
def test_health_ready_and_upstream_metrics(echo_stack):
    proxy = echo_stack.proxy
    with requests.get(f"{proxy.url}/health", timeout=5) as response:
        assert response.status_code == 200 and response.json() == {"ok": True}
    with requests.get(f"{proxy.url}/ready", timeout=5) as response:
        assert response.status_code == 200 and response.json() == {"ok": True}

    def counts():
        return (
            metric(proxy, "oneshot_proxy_upstream_seconds_count", status="200"),
            metric(proxy, "oneshot_proxy_upstream_seconds_count", status="404"),
            metric(proxy, "oneshot_proxy_upstream_errors_total", kind="timeout"),
        )

    before = counts()
    echoed(proxy), echoed(proxy)
    with requests.get(f"{proxy.url}/api/echo/x?status=404", timeout=5) as response:
        assert response.status_code == 404
    with requests.get(f"{proxy.url}/api/stall?seconds=2", timeout=10) as response:
        assert response.status_code == 504
    after = counts()
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 1, 1]
