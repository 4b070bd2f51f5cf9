"""Shared fixtures: a real PostgreSQL, a fresh database per test, apps and real gunicorn processes.

Fixtures only: the helpers they use (and tests and benchmarks import) live in tests/support/.

The server is $DATABASE_URL's (tests create and drop their own databases there) or, when that is
unset, a throwaway cluster started for this run. A template database is migrated once per run and
cloned for each test, so every test starts from an empty, fully migrated schema.
"""

import os
import shutil
import subprocess
import tempfile
import uuid

import psycopg
import pytest

from common.migrate import migrate
from tests.support.accounts import sign_up as sign_up_with
from tests.support.databases import Cluster, admin_execute, fresh_database, with_database
from tests.support.fake_model import FakeModel
from tests.support.services import ROOT, Service, free_port, service_env


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

    def sign_up(user_id=None, **settings):
        """A user with a live session; `settings` override env for the tokens (e.g. ACCESS_TTL=2)."""
        return sign_up_with({**env, **settings}, user_id)

    return sign_up


@pytest.fixture
def model():
    """A Chat Completions server on loopback for AGENT_BASE_URL, scripted by the test (tests/support/fake_model.py)."""
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
