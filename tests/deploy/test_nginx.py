"""The bare-VM path for real: the four services under gunicorn + gevent behind a real nginx running
the project's site file (deploy/nginx/oneshot.conf, ports and paths substituted), with a VM's
settings: TRUSTED_PROXY_HOPS=1, public URLs under the nginx paths, the Preview Manager calling the
API directly.

One stack and one nginx serve the whole module. Requests that must come from "elsewhere" leave
from other loopback addresses (127.0.0.2 and up): the site allows /metrics to 127.0.0.1 and ::1
only, and nginx tells the services the address it saw.
"""

import http.client
import json
import re
import secrets
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import psycopg
import pytest
import requests

from tests.support.accounts import sign_up
from tests.support.databases import fresh_database
from tests.support.identity_headers import SPOOFS, lines_for, send
from tests.support.nginx import SITE, Nginx, ipv6_loopback, site_for_test, substitute
from tests.support.services import OUTPUT, ROOT, Service, free_port, service_env, wait_for

STEP_MS = 200  # RUN_STEP_DELAY_MS: a 2-step run is 12 events over 11 delays (2.2 s)
RUN_STEPS = 2
MAX_FAILURES_PER_ADDRESS = 5
TERMINAL = ("completed", "failed", "cancelled")
SYSTEM_PATH = "/usr/bin:/bin"  # bin/smoke runs on Debian's python3, as on a VM


# --- the stack ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack_database(pg_server, template_db, request):
    return fresh_database(pg_server, template_db, request)


@pytest.fixture(scope="module")
def stack(stack_database, tmp_path_factory):
    """API, Orchestrator, Preview Manager and Web UI with a VM's settings, behind nginx on `port`."""
    logs, port = tmp_path_factory.mktemp("bare-vm"), free_port()
    edge = f"http://127.0.0.1:{port}"
    env = service_env(
        stack_database,
        BIND_HOST="127.0.0.1",
        TRUSTED_PROXY_HOPS=1,
        CORS_ORIGINS=edge,
        PUBLIC_API_URL=f"{edge}/api",
        PUBLIC_ORCHESTRATOR_URL=f"{edge}/orchestrator",
        RUN_STEP_DELAY_MS=STEP_MS,
        LOGIN_MAX_FAILURES_PER_ADDRESS=MAX_FAILURES_PER_ADDRESS,
    )
    api = Service("api", env, logs / "api.log")
    services = [
        api,
        Service("orchestrator", env, logs / "orchestrator.log"),
        Service("preview", {**env, "API_URL": api.url}, logs / "preview.log"),
        Service("web", env, logs / "web.log"),
    ]
    nginx = Nginx()
    try:
        with ThreadPoolExecutor(len(services)) as pool:
            list(pool.map(Service.start, services))
        upstreams = dict(zip((4000, 4001, 4002, 3000), (s.port for s in services), strict=True))
        nginx.write_site(site_for_test(SITE.read_text(), port, upstreams, nginx.logs))
        nginx.start(port)
        yield SimpleNamespace(edge=edge, port=port, env=env, nginx=nginx, services=services, upstreams=upstreams)
    finally:
        nginx.stop()
        for service in services:
            if service.proc and service.proc.poll() is None:
                service.proc.terminate()
        for service in services:
            service.stop()


@pytest.fixture
def nginx_variant(stack):
    """Another nginx on the same services, running the site file with more substitutions:
    `nginx_variant(replacements)` returns its base URL; stopped when the test ends."""
    started = []

    def start(replacements):
        port, nginx = free_port(), Nginx()
        started.append(nginx)
        site = site_for_test(SITE.read_text(), port, stack.upstreams, nginx.logs)
        nginx.write_site(substitute(site, replacements)).start(port)
        return f"http://127.0.0.1:{port}"

    yield start
    for nginx in started:
        nginx.stop()


# --- helpers -------------------------------------------------------------------------------------------
def call(stack, path, method="GET", headers=None, body=None, source="127.0.0.1"):
    """One request to nginx from `source` (any loopback address, or ::1), sent exactly as given:
    (status, lower-cased headers, body bytes)."""
    host = "::1" if ":" in source else "127.0.0.1"
    conn = http.client.HTTPConnection(host, stack.port, timeout=10, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def create_run(edge, user):
    response = requests.post(
        f"{edge}/orchestrator/runs",
        json={"prompt": "Stream me", "steps": RUN_STEPS},
        headers=user["headers"],
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def timed_events(response):
    """(arrival time, event) for each event of an SSE response, as each arrives; comments skipped."""
    current = {}
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith(("id:", "event:", "data:")):
            name, _, value = line.partition(":")
            current[name] = json.loads(value) if name == "data" else value.strip()
        elif line == "" and current:
            yield time.monotonic(), current
            current = {}


def stream_run(edge, user):
    """Start a run and follow its stream through `edge` to the end: [(arrival, event name)]."""
    run_id = create_run(edge, user)
    url = f"{edge}/orchestrator/runs/{run_id}/events"
    with requests.get(url, headers=user["headers"], stream=True, timeout=10) as response:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/event-stream")
        arrivals = []
        for at, event in timed_events(response):
            arrivals.append((at, event["event"]))
            if event["event"] in TERMINAL:
                break
    return arrivals


# --- the configuration ---------------------------------------------------------------------------------
def test_nginx_accepts_the_site_file(stack):
    code, output = stack.nginx.test_config()
    assert code == 0, output
    assert "test is successful" in output


# --- the whole stack through nginx -----------------------------------------------------------------------
def smoke_through(edge, **settings):
    """bin/smoke with Debian's python3 against the stack behind the nginx at `edge`."""
    env = {
        "PATH": SYSTEM_PATH,
        "API_URL": f"{edge}/api",
        "ORCHESTRATOR_URL": f"{edge}/orchestrator",
        "PREVIEW_URL": f"{edge}/preview",
        "WEB_URL": edge,
        **settings,
    }
    return subprocess.run([ROOT / "bin" / "smoke"], env=env, capture_output=True, text=True, timeout=90)


def test_smoke_passes_through_nginx(stack):
    result = smoke_through(stack.edge)
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "smoke-through-nginx.txt").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "SMOKE PASS ✅"
    assert any(line.startswith("✓ orchestrator run streamed live") for line in lines)


def test_the_web_page_is_served_at_the_root_and_names_the_public_paths(stack):
    response = requests.get(f"{stack.edge}/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    connect_src = re.search(r"connect-src ([^;]*)", response.headers["Content-Security-Policy"]).group(1).split()
    assert connect_src == [f"{stack.edge}/api/", f"{stack.edge}/orchestrator/"]
    assert f"{stack.edge}/api" in response.text and f"{stack.edge}/orchestrator" in response.text


# --- streams ---------------------------------------------------------------------------------------------
def test_a_run_streams_event_by_event_through_nginx(stack):
    arrivals = stream_run(stack.edge, sign_up(stack.env))
    times = [at for at, _ in arrivals]
    assert [name for _, name in arrivals][-1] == "completed" and len(arrivals) == 6 + 3 * RUN_STEPS
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    # The events are written STEP_MS apart: most must arrive that way, not in one lump at the end.
    assert sum(gap >= STEP_MS / 2000 for gap in gaps) >= len(gaps) - 3, gaps
    assert times[-1] - times[0] >= (len(gaps) - 3) * STEP_MS / 1000, gaps


# Each defence against buffering on its own, then neither. Measured with nginx 1.22: speaking
# HTTP/1.1 to the service (chunked answers), nginx passes each chunk on even while it buffers, so
# these variants speak nginx's default HTTP/1.0, under which buffering does hold a stream back.
HTTP_1_0 = ("proxy_http_version 1.1;", "proxy_http_version 1.0;")
IGNORE_HEADER = ("proxy_buffering off;", "proxy_ignore_headers X-Accel-Buffering;\n        proxy_buffering off;")
VARIANTS = {
    # The services' `X-Accel-Buffering: no` alone turns buffering off.
    "header only": ([HTTP_1_0, ("proxy_buffering off;", "")], True),
    # `proxy_buffering off` alone, the header ignored.
    "config only": ([HTTP_1_0, IGNORE_HEADER], True),
    # The control: neither, and the check sees one lump at the end of the run.
    "neither": ([HTTP_1_0, ("proxy_buffering off;", "proxy_ignore_headers X-Accel-Buffering;")], False),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_either_defence_keeps_streams_live_and_the_check_fails_without_both(stack, nginx_variant, variant):
    replacements, live = VARIANTS[variant]
    arrivals = stream_run(nginx_variant(replacements), sign_up(stack.env))
    assert [name for _, name in arrivals][-1] == "completed"
    spread = arrivals[-1][0] - arrivals[0][0]
    if live:
        assert spread >= 8 * STEP_MS / 1000, f"events bunched: spread {spread:.2f} s"
    else:
        assert spread < STEP_MS / 1000, f"events came one by one (spread {spread:.2f} s): the control controls nothing"


def test_the_smoke_fails_through_an_nginx_that_holds_streams_back(stack, nginx_variant):
    result = smoke_through(nginx_variant(VARIANTS["neither"][0]), SMOKE_TIMEOUT="5")
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    # The API's /events stream is the first one the smoke opens: its `ready` never arrives in time.
    assert lines[-2].startswith("✗ api /events ready — "), lines
    assert lines[-1] == "SMOKE FAIL ❌ (api /events ready)"


@pytest.mark.parametrize("path", ["/api/events", "/preview/api/events"])
def test_notifications_stream_event_by_event_through_nginx(stack, path):
    user = sign_up(stack.env)
    headers = {**user["headers"], "Accept": "text/event-stream"}
    with requests.get(f"{stack.edge}{path}?limit=4", headers=headers, stream=True, timeout=5) as response:
        assert response.status_code == 200, response.text
        events = timed_events(response)
        try:
            _, ready = next(events)  # while the stream stays open: a buffering proxy would hold it back
        except requests.ConnectionError as e:  # urllib3 reports a read timeout of a stream this way
            pytest.fail(f"`ready` did not arrive while the stream was open (buffered?): {e}")
        assert ready["event"] == "ready"
        run_id = create_run(stack.edge, user)
        statuses = [(at, event["data"]["status"]) for at, event in events if event["data"].get("runId") == run_id]
    assert [status for _, status in statuses] == ["queued", "running", "completed"]  # limit=4 passed through
    # `completed` comes about 2.2 s after `queued`: each arrived when it happened.
    assert statuses[2][0] - statuses[0][0] >= 11 * STEP_MS / 1000 * 0.7


# --- /metrics: this machine only ----------------------------------------------------------------------
API_ONLY = "oneshot_refresh_reuse_detected_total"
# Each path reaches its own service: (a metric only it has, one it must not have).
METRICS = {
    "/api/metrics": (API_ONLY, "oneshot_proxy_upstream_seconds"),
    "/orchestrator/metrics": ("oneshot_sse_streams_open", API_ONLY),
    "/preview/metrics": ("oneshot_proxy_upstream_seconds", API_ONLY),
    "/preview/api/metrics": (API_ONLY, "oneshot_proxy_upstream_seconds"),  # the API's, relayed
    "/metrics": ("flask_http_request_total", "oneshot_sse_streams_open"),  # the web UI's
}


@pytest.mark.parametrize("path", METRICS)
def test_metrics_answer_this_machine_and_refuse_any_other_address(stack, path):
    for warm_up in ("/preview/api/health", "/health"):  # labelled samples exist once a request was seen
        assert call(stack, warm_up)[0] == 200
    status, _, body = call(stack, path)
    present, absent = METRICS[path]
    assert status == 200 and present in body.decode() and absent not in body.decode(), body[:300]
    if ipv6_loopback():
        assert call(stack, path, source="::1")[0] == 200
    status, headers, body = call(stack, path, source="127.0.0.2")
    assert status == 403
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": {"code": "forbidden", "message": "Not allowed from this address."}}


@pytest.mark.parametrize(
    "path",
    [
        "/api//metrics",
        "/api/%6Detrics",
        "/api/./metrics",
        "/api/x/../metrics",
        "/api/metrics/",
        "/api/metrics?format=text",
        "/preview/api//metrics",
        "/preview/api/%2e/metrics",
        "/preview//api/metrics",
        "/preview/api/metrics/",
        "/orchestrator//metrics",
        "//metrics",
        "/web/../metrics",
    ],
)
def test_no_spelling_of_a_metrics_path_reaches_metrics_from_elsewhere(stack, path):
    status, _, body = call(stack, path, source="127.0.0.2")
    assert b"# TYPE" not in body and b"# HELP" not in body, (status, body[:200])


# --- limits and forwarded addresses ---------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["/api", "/preview/api"])
def test_a_body_over_1_mib_is_refused_by_nginx_and_one_just_under_reaches_the_api(stack, prefix):
    headers = {"Content-Type": "application/json"}
    over = b'{"userId": "' + b"x" * (1024 * 1024) + b'"}'
    status, headers_, body = call(stack, f"{prefix}/auth/token", "POST", headers, over, source="127.0.0.6")
    assert status == 413
    assert "x-request-id" not in headers_  # nginx answered; no service saw it
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    under = b'{"userId": "' + b"x" * (1024 * 1024 - 100) + b'"}'
    status, headers_, body = call(stack, f"{prefix}/auth/token", "POST", headers, under, source="127.0.0.6")
    assert status == 400 and headers_["x-request-id"]  # the API's own verdict on the field
    assert json.loads(body)["error"]["field"] == "userId"


# Each path gets addresses of its own: the failures counted for one must not block the other's.
@pytest.mark.parametrize(
    ("path", "source", "other"), [("/api", "127.0.0.3", "127.0.0.4"), ("/preview/api", "127.0.0.13", "127.0.0.14")]
)
def test_a_forged_x_forwarded_for_cannot_choose_the_address_sign_in_throttling_counts(stack, path, source, other):
    def attempt(n, address, forged):
        user = f"guess-{path.strip('/').replace('/', '-')}-{n}-{secrets.token_hex(3)}"
        payload = json.dumps({"userId": user, "password": "wrong password"})
        headers = {"Content-Type": "application/json", "X-Forwarded-For": forged}
        return call(stack, f"{path}/auth/token", "POST", headers, payload.encode(), address)[0]

    statuses = [attempt(n, source, f"198.51.100.{n}") for n in range(MAX_FAILURES_PER_ADDRESS)]
    assert statuses == [401] * MAX_FAILURES_PER_ADDRESS
    # The address nginx saw is the one counted (through the Preview Manager too): a fresh forged
    # address resets nothing ...
    assert attempt(98, source, "203.0.113.50") == 429
    assert attempt(99, source, other) == 429
    # ... and another real address is not blocked by this one's failures.
    assert attempt(100, other, source) == 401
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT DISTINCT address FROM login_attempts WHERE user_key LIKE %s",
            (f"guess-{path.strip('/').replace('/', '-')}-%",),
        ).fetchall()
    assert {address for (address,) in rows} == {source, other}


def test_registration_is_rate_limited_per_address_with_a_json_429(stack):
    payload = json.dumps({"userId": "ab", "password": "x"}).encode()  # invalid: no argon2 hash is spent
    headers = {"Content-Type": "application/json"}
    statuses = [call(stack, "/api/auth/register", "POST", headers, payload, "127.0.0.5")[0] for _ in range(11)]
    assert statuses == [400] * 11  # one plus a burst of ten, at once
    status, headers_, body = call(stack, "/preview/api/auth/register", "POST", headers, payload, "127.0.0.5")
    assert status == 429 and headers_["retry-after"] == "6"  # one zone for both paths
    assert json.loads(body)["error"]["code"] == "too_many_requests"
    assert call(stack, "/api/auth/register", "POST", headers, payload, "127.0.0.7")[0] == 400  # per address


def access_log(stack):
    """nginx's JSON access log, a dict per line."""
    return [json.loads(line) for line in stack.nginx.access_log().splitlines()]


# --- headers -----------------------------------------------------------------------------------------------
def test_request_ids_match_between_nginx_and_the_service_and_nginx_keeps_quiet(stack):
    status, headers, _ = call(stack, "/api/health")
    assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])  # nginx's $request_id
    assert headers["server"] == "nginx"  # no version
    assert "strict-transport-security" not in headers  # plain HTTP: HSTS only comes with TLS
    ours = f"edge-test-{uuid.uuid4().hex[:8]}"
    assert call(stack, "/orchestrator/health", headers={"X-Request-Id": ours})[1]["x-request-id"] == ours
    malformed = call(stack, "/orchestrator/health", headers={"X-Request-Id": "a b"})[1]["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", malformed)
    # nginx writes its access log line after the response: wait for it.
    wait_for(lambda: any(line["request_id"] == malformed for line in access_log(stack)))
    logged = access_log(stack)
    assert any(line["request_id"] == headers["x-request-id"] and line["path"] == "/api/health" for line in logged)


def test_query_strings_stay_out_of_the_nginx_log(stack):
    _, headers, _ = call(stack, "/api/me?token=secret-in-a-url")
    [line] = wait_for(lambda: [line for line in access_log(stack) if line["request_id"] == headers["x-request-id"]])
    assert line["path"] == "/api/me"
    assert "secret-in-a-url" not in stack.nginx.access_log()


@pytest.mark.parametrize("header", ["X-Forwarded-Ssl: on", "X-Forwarded-Protocol: ssl"])
def test_a_clients_scheme_headers_do_not_reach_gunicorn(stack, header):
    """gunicorn trusts nginx's scheme headers; a client's extra one would contradict them (a 400)."""
    name, _, value = header.partition(": ")
    for path in ("/api/health", "/preview/api/health"):
        assert call(stack, path, headers={name: value})[0] == 200, path


def test_gunicorn_believes_only_x_forwarded_proto_from_a_trusted_proxy(stack):
    """A proxy that passes a client's X-Forwarded-Ssl along (not this nginx) must not cause a 400."""
    api = stack.services[0]
    headers = {"X-Forwarded-Proto": "http", "X-Forwarded-Ssl": "on", "X-Forwarded-Protocol": "ssl"}
    assert requests.get(f"{api.url}/health", headers=headers, timeout=5).status_code == 200


# --- identity headers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["/api", "/preview/api"])
def test_no_spelling_of_x_user_id_from_a_client_reaches_a_service_through_nginx(stack, prefix):
    """nginx drops a client's X-User-Id in every spelling (underscored names are invalid to it, the
    dashed one it clears, a space before the colon is a 400): straight to the API nothing is
    forwarded, and through the Preview Manager the API sees only the subject of the verified token."""
    user = sign_up(stack.env)
    token = user["headers"]["Authorization"].removeprefix("Bearer ")
    expected = None if prefix == "/api" else user["userId"]
    plain = [("plain", ["X-User-Id: admin"]), ("plain_naming_me", ["X-User-Id: {me}"])]
    for label, lines in [*plain, *SPOOFS]:
        status, body = send(stack.port, f"{prefix}/me", token, lines_for(lines, user["userId"]))
        if label.startswith("space_before_colon"):  # nginx refuses the request itself, in JSON
            assert (status, body["error"]["code"]) == (400, "bad_request"), (label, status, body)
            continue
        assert status == 200, (label, status, body)
        assert body["userId"] == user["userId"] and body["forwardedUserId"] == expected, (label, body)
