"""`bin/smoke` against a real stack: the four services under gunicorn+gevent on the test's database.

The smoke runs as an operator runs it: its own shebang, Debian's python3 (no venv on PATH), only the
URLs in its environment. One stack serves the whole module; each smoke signs up a user of its own.
"""

import ast
import http.client
import http.server
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.support.databases import fresh_database
from tests.support.services import ROOT, Service, free_port, service_env

SMOKE = ROOT / "bin" / "smoke"
SYSTEM_PATH = "/usr/bin:/bin"  # Debian's python3, not the project's venv
CHECKS = [
    "api /health",
    "orchestrator /health",
    "preview /health",
    "web /health",
    "api register",
    "api token + /me",
    "api refresh",
    "api /events ready",
    "orchestrator POST /runs",
    "orchestrator run streamed live",
    "api /events run status",
    "preview /api/me",
    "web /",
    "api logout",
]


def start_all(services):
    """Start services side by side (each waits for its /health); a failure to start fails the test."""
    with ThreadPoolExecutor(len(services)) as pool:
        list(pool.map(Service.start, services))
    return services


def stop_all(services):
    """SIGTERM them all at once, then wait for each (they wait out keep-alive connections in parallel)."""
    for service in services:
        if service.proc and service.proc.poll() is None:
            service.proc.terminate()
    for service in services:
        service.stop()


@pytest.fixture(scope="module")
def stack_database(pg_server, template_db, request):
    """A migrated database for the module's stack."""
    return fresh_database(pg_server, template_db, request)


@pytest.fixture(scope="module")
def stack(stack_database, tmp_path_factory):
    """API, Orchestrator, Preview Manager and Web UI, wired as a deployment wires them; runs take ~1.7 s."""
    logs = tmp_path_factory.mktemp("smoke-stack")
    env = service_env(stack_database, RUN_STEP_DELAY_MS=150, RUN_LEASE_SECONDS=2)
    services = {name: Service(name, env, logs / f"{name}.log") for name in ("api", "orchestrator", "preview", "web")}
    services["preview"].env["API_URL"] = services["api"].url
    wiring = {
        "CORS_ORIGINS": services["web"].url,
        "PUBLIC_API_URL": services["api"].url,
        "PUBLIC_ORCHESTRATOR_URL": services["orchestrator"].url,
    }
    for service in services.values():
        service.env.update(wiring)
    start_all(list(services.values()))
    yield services
    stop_all(list(services.values()))


@pytest.fixture
def extra_services(stack_database, tmp_path):
    """Start more services on the stack's database (`extra_services("preview", env)`); stopped after the test."""
    started = []

    def start(module, env):
        started.append(Service(module, env, tmp_path / f"{module}-{len(started)}.log"))
        return start_all(started[-1:])[0]

    yield start
    stop_all(started)


def urls_of(stack, **replaced):
    """The four URL variables for `stack`, some replaced."""
    urls = {f"{name.upper()}_URL": service.url for name, service in stack.items()}
    return {**urls, **replaced}


def run_smoke(env, timeout=90):
    """Run bin/smoke as an operator does, with only PATH and `env`; return (exit code, lines, seconds)."""
    started = time.monotonic()
    result = subprocess.run(
        [str(SMOKE)], env={"PATH": SYSTEM_PATH, **env}, capture_output=True, text=True, timeout=timeout
    )
    assert result.stderr == "", result.stderr
    return result.returncode, result.stdout.splitlines(), time.monotonic() - started


def checks_passed(lines):
    """The names of the checks the smoke passed, from its `✓ <check> — <detail>` lines."""
    return [line[2:].split(" — ")[0] for line in lines if line.startswith("✓ ")]


def smoke_user(lines):
    """The throwaway user the smoke registered (its register line names it)."""
    (user,) = [m[1] for line in lines if (m := re.match(r"✓ api register — 201, user (smoke-[0-9a-f]+)$", line))]
    return user


def sessions_of(database_url, user_id):
    """Revocation state of each session of `user_id`: [(revoked_at is set, revoked_reason)]."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT revoked_at IS NOT NULL, revoked_reason FROM sessions WHERE user_id = %s ORDER BY created_at",
            (user_id,),
        ).fetchall()


def test_smoke_passes_against_a_healthy_stack(stack, stack_database):
    # An empty API_URL means the local default, on API_PORT: what `make smoke` after `make up` relies on.
    env = urls_of(stack, API_URL="", API_PORT=str(stack["api"].port))
    # The smoke contacts the given URLs only, never an HTTP proxy from the environment.
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    env.update(http_proxy=dead_proxy, HTTP_PROXY=dead_proxy, https_proxy=dead_proxy, all_proxy=dead_proxy)
    code, lines, _ = run_smoke(env)

    assert code == 0, "\n".join(lines)
    assert checks_passed(lines) == CHECKS
    assert lines[-1] == "SMOKE PASS ✅"
    assert len(lines) == len(CHECKS) + 1
    live = next(line for line in lines if line.startswith("✓ orchestrator run streamed live"))
    assert re.search(r" — 12 events over \d+\.\d s \(the run took \d+\.\d s\), completed$", live), live
    # Nothing secret in the output: no JWT, nothing token-sized besides the ids it names.
    output = "\n".join(lines)
    assert "eyJ" not in output and "[REDACTED]" not in output
    assert max(len(word) for word in output.split()) <= 36  # a run's UUID is the longest thing it prints

    user = smoke_user(lines)
    with psycopg.connect(stack_database) as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE id = %s", (user,)).fetchone() == (1,)
        runs = conn.execute("SELECT status, steps FROM runs WHERE user_id = %s", (user,)).fetchall()
    assert runs == [("completed", 2)]
    # The first session was revoked by reuse detection, the second by the final logout.
    assert sessions_of(stack_database, user) == [(True, "refresh_token_reused"), (True, "logout")]


def test_smoke_fails_fast_naming_a_service_that_is_down(stack):
    down = f"http://127.0.0.1:{free_port()}"
    code, lines, seconds = run_smoke(urls_of(stack, PREVIEW_URL=down))

    assert code == 1
    assert checks_passed(lines) == ["api /health", "orchestrator /health"]
    assert lines[-2] == f"✗ preview /health — cannot connect to {down}/health: connection refused"
    assert lines[-1] == "SMOKE FAIL ❌ (preview /health)"
    assert seconds < 5


def test_smoke_defaults_to_the_local_ports(stack):
    # Unset URLs: http://127.0.0.1:$<SERVICE>_PORT; here nobody listens on the API's port.
    port = free_port()
    code, lines, _ = run_smoke({"API_PORT": str(port)})

    assert code == 1
    assert lines == [
        f"✗ api /health — cannot connect to http://127.0.0.1:{port}/health: connection refused",
        "SMOKE FAIL ❌ (api /health)",
    ]


def test_smoke_refuses_a_bad_setting():
    result = subprocess.run(
        [str(SMOKE)], env={"PATH": SYSTEM_PATH, "SMOKE_TIMEOUT": "soon"}, capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "smoke: SMOKE_TIMEOUT must be a positive number of seconds, got 'soon'\n"


def test_smoke_fails_when_the_preview_cannot_verify_tokens(stack, stack_database, extra_services):
    # A Preview Manager deployed with a JWT_SECRET other than the API's refuses every token at the proxy.
    env = {**stack["preview"].env, "JWT_SECRET": service_env(stack_database)["JWT_SECRET"]}
    preview = extra_services("preview", env)
    code, lines, _ = run_smoke(urls_of(stack, PREVIEW_URL=preview.url))

    assert code == 1
    assert checks_passed(lines) == CHECKS[: CHECKS.index("preview /api/me")]
    assert re.fullmatch(
        r"✗ preview /api/me — 401 invalid_token instead of 200: .+ \(request id smoke-[0-9a-f]+-\d+\)", lines[-2]
    ), lines[-2]
    assert lines[-1] == "SMOKE FAIL ❌ (preview /api/me)"
    # Even after a failure the smoke logs its user out: no live session is left behind.
    assert sessions_of(stack_database, smoke_user(lines)) == [(True, "refresh_token_reused"), (True, "logout")]


class BufferingProxy(http.server.BaseHTTPRequestHandler):
    """A reverse proxy that reads each upstream answer whole before passing it on, as nginx does with
    `proxy_buffering on` and an upstream that does not say `X-Accel-Buffering: no`."""

    upstream = None  # "host:port", set on a subclass per server

    def relay(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            conn.request(self.command, self.path, body, headers)
            response = conn.getresponse()
            data = response.read()  # the whole body, however long the stream takes to end
        finally:
            conn.close()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = relay

    def log_message(self, *args):
        pass


@pytest.fixture
def buffering_proxy():
    """Start a BufferingProxy in front of a URL: `buffering_proxy(url)` returns the proxy's URL."""
    servers = []

    def start(url):
        handler = type("Handler", (BufferingProxy,), {"upstream": urllib.parse.urlsplit(url).netloc})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_smoke_fails_when_a_proxy_buffers_the_run_stream(stack, stack_database, buffering_proxy):
    code, lines, _ = run_smoke(urls_of(stack, ORCHESTRATOR_URL=buffering_proxy(stack["orchestrator"].url)))

    assert code == 1
    assert checks_passed(lines) == CHECKS[: CHECKS.index("orchestrator run streamed live")]
    assert re.fullmatch(
        r"✗ orchestrator run streamed live — 12 events arrived within 0\.\d\d s but the run took \d+\.\d s: "
        r"the stream was buffered on the way \(a proxy without `proxy_buffering off`\?\)",
        lines[-2],
    ), lines[-2]
    assert lines[-1] == "SMOKE FAIL ❌ (orchestrator run streamed live)"


def test_smoke_needs_only_the_standard_library_of_python_3_9():
    source = SMOKE.read_text()
    assert source.startswith("#!/usr/bin/env python3\n")
    tree = ast.parse(source, feature_version=(3, 9))  # no syntax newer than Debian 11's python3
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names
