"""Shared fixtures: a real PostgreSQL, a fresh database per test, apps and real gunicorn processes.

The server is $DATABASE_URL's (tests create and drop their own databases there) or, when that is
unset, a throwaway cluster started for this run. A template database is migrated once per run and
cloned for each test, so every test starts from an empty, fully migrated schema.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import psycopg
import pytest
import requests

from common.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"


def wait_for(predicate, timeout=10.0, interval=0.02):
    """Poll `predicate` until it returns something truthy; return it, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(interval)


def free_port():
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(url, name):
    """`url` pointing at database `name` instead."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def admin_execute(server_url, sql):
    """Run one statement (CREATE/DROP DATABASE) outside a transaction on the maintenance database."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql)


class Cluster:
    """The PostgreSQL server under test; `datadir` is set only for a throwaway cluster we control."""

    def __init__(self, url, datadir=None, port=None):
        self.url, self.datadir, self.port = url, datadir, port

    def stop(self):
        subprocess.run([ROOT / "bin" / "pg-local", "stop", self.datadir], check=True)

    def start(self):
        subprocess.run([ROOT / "bin" / "pg-local", "start", self.datadir, str(self.port)], check=True)


@pytest.fixture(scope="session")
def pg_cluster():
    """$DATABASE_URL's server, or a throwaway cluster started for this run."""
    if os.environ.get("DATABASE_URL"):
        yield Cluster(os.environ["DATABASE_URL"])
        return
    datadir = tempfile.mkdtemp(prefix="oneshot-pg-")
    cluster = Cluster(None, datadir, free_port())
    cluster.url = f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
    cluster.start()
    try:
        yield cluster
    finally:
        subprocess.run([ROOT / "bin" / "pg-local", "stop", datadir], check=False)
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(pg_cluster):
    """URL of a PostgreSQL server the tests may create databases on."""
    return pg_cluster.url


@pytest.fixture(scope="session")
def template_db(pg_server):
    """A database with every migration applied, cloned by `fresh_database`."""
    name = f"oneshot_template_{uuid.uuid4().hex[:8]}"
    admin_execute(pg_server, f'CREATE DATABASE "{name}"')
    migrate(with_database(pg_server, name))
    yield name
    admin_execute(pg_server, f'DROP DATABASE "{name}" WITH (FORCE)')


def fresh_database(pg_server, template, request):
    """Clone the template into a new database, dropped when `request`'s scope ends; return its URL."""
    name = f"oneshot_test_{uuid.uuid4().hex[:12]}"
    if template:
        admin_execute(pg_server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    else:
        admin_execute(pg_server, f'CREATE DATABASE "{name}"')
    request.addfinalizer(lambda: admin_execute(pg_server, f'DROP DATABASE "{name}" WITH (FORCE)'))
    return with_database(pg_server, name)


@pytest.fixture
def database_url(pg_server, template_db, request):
    """A migrated database of this test's own."""
    return fresh_database(pg_server, template_db, request)


@pytest.fixture(scope="module")
def module_database_url(pg_server, template_db, request):
    """A migrated database shared by one test module (for services started once per module)."""
    return fresh_database(pg_server, template_db, request)


@pytest.fixture
def empty_database_url(pg_server, request):
    """A database with no tables at all (for migration tests)."""
    return fresh_database(pg_server, None, request)


@pytest.fixture
def db(database_url):
    """A direct connection to the test's database, for re-reading rows the service wrote."""
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        yield conn


def service_env(database_url, **overrides):
    """Environment variables of a service under test: a fresh secret, fast defaults, overrides."""
    env = {
        "DATABASE_URL": database_url,
        "JWT_SECRET": secrets.token_urlsafe(48),
        "CORS_ORIGINS": "http://localhost:3000,http://web.test:3000",
        "LOG_LEVEL": "INFO",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return env


@pytest.fixture
def env(database_url):
    """The settings `app` is built from; tests may change them before first using `app`."""
    return service_env(database_url)


@pytest.fixture
def app(env):
    """The API app on the test's own database (in-process, for tests of one request at a time)."""
    from api import create_app
    from common.lifecycle import shutdown

    app = create_app(env)
    yield app
    shutdown(app)


@pytest.fixture
def client(app):
    """A test client of `app`."""
    return app.test_client()


@pytest.fixture
def make_client(database_url):
    """Build an API app with settings overridden (`make_client(LOGIN_MAX_FAILURES=3)`) and return its client."""
    from api import create_app
    from common.lifecycle import shutdown

    apps = []

    def make(**overrides):
        apps.append(create_app(service_env(database_url, **overrides)))
        return apps[-1].test_client()

    yield make
    for app in apps:
        shutdown(app)


def gunicorn_command(module):
    """How every service starts, everywhere: the Dockerfile's CMD, systemd, `make up` and these tests."""
    return ["gunicorn", "-c", "gunicorn.conf.py", f"{module}.wsgi:app"]


class Service:
    """A service under real gunicorn with gevent workers, its output captured to a file."""

    def __init__(self, module, env, log_path, cwd=ROOT):
        self.module, self.port = module, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path, self.cwd = log_path, cwd
        self.env = {**os.environ, "WEB_CONCURRENCY": "2", **env, "PORT": str(self.port)}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc = None

    def start(self, timeout=30):
        """Start gunicorn and wait until /health answers (fail with its output if it dies)."""
        with open(self.log_path, "ab") as log:
            program, *args = gunicorn_command(self.module)
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / program), *args],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.module} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or too busy to answer within a second: ask again
            time.sleep(0.1)
        pytest.fail(f"{self.module} did not become healthy:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, timeout=40):
        """Signal gunicorn and wait for it to exit; return its exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def log(self):
        """Everything the service printed so far."""
        return Path(self.log_path).read_text(errors="replace")


@pytest.fixture
def start_service(database_url, tmp_path):
    """Start a service under gunicorn: `start_service("api", env)`; stopped when the test ends, before
    its database is dropped."""
    started = []

    def start(module, env, **kwargs):
        service = Service(module, env, tmp_path / f"{module}-{len(started)}.log")
        started.append(service)
        return service.start(**kwargs)

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def api_server(start_service, env):
    """The API under gunicorn+gevent (two workers) on the test's own database."""
    return start_service("api", env)


@pytest.fixture
def sign_up(env):
    """Create an account and a session straight through the API's own code; return its token pair.

    Faster than starting the API for tests of other services; the tokens are real (same secret,
    same session rows) and the API would accept them.
    """
    from tests.support.accounts import sign_up as sign_up_in

    def sign_up(user_id=None, **settings):
        """A user with a live session; `settings` override env for the tokens (e.g. ACCESS_TTL=2)."""
        return sign_up_in({**env, **settings}, user_id)

    return sign_up


def read_sse(response, until=None, limit=1000, into=None):
    """Parse an SSE response into [{"id", "event", "data"}] until the stream ends, `until(event)` is
    true, or `limit` events arrived. Comments (heartbeats) are returned as {"comment": text}. Events
    are appended to `into` as they arrive, when given (for a reader on another thread)."""
    import json

    events, current = ([] if into is None else into), {}
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith(":"):
            events.append({"comment": line[1:].strip()})
        elif line.startswith(("id:", "event:", "data:")):
            name, _, value = line.partition(":")
            current[name] = json.loads(value.strip()) if name == "data" else value.strip()
            continue
        elif line == "" and current:
            events.append(current)
            current = {}
        else:
            continue
        if (until and until(events[-1])) or len(events) >= limit:
            break
    return events


def create_run(service, user, steps=3, prompt="Compare three databases"):
    """POST /runs to a running orchestrator; return the new run's id."""
    response = requests.post(
        f"{service.url}/runs", json={"prompt": prompt, "steps": steps}, headers=user["headers"], timeout=10
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def model():
    """A Chat Completions server on loopback for AGENT_BASE_URL, scripted by the test (tests/support/fake_model.py)."""
    from tests.support.fake_model import FakeModel

    fake = FakeModel()
    yield fake
    fake.close()


@pytest.fixture
def orchestrator_env(env):
    """Settings for an orchestrator under test: short steps and a short lease, so runs finish fast."""
    return {**env, "RUN_STEP_DELAY_MS": "20", "RUN_LEASE_SECONDS": "2"}


@pytest.fixture
def orchestrator_client(orchestrator_env):
    """A test client of the Orchestrator app in-process (its runs execute on real threads)."""
    from common.lifecycle import shutdown
    from orchestrator import create_app

    app = create_app(orchestrator_env)
    yield app.test_client()
    shutdown(app)
