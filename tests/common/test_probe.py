"""common.probe: the containers' health probe exits 0 when its service answers /health on $PORT, and
otherwise exits non-zero with one line saying why."""

import os
import subprocess
import sys
import threading

import pytest
from werkzeug.serving import make_server

from common.config import Config
from common.service import create_service_app
from tests.support.services import ROOT, free_port


def probe(port):
    """Run the probe as the image's HEALTHCHECK does; return (exit code, stderr)."""
    env = {**os.environ, "PORT": str(port), "HTTP_PROXY": "http://127.0.0.1:9"}  # a proxy it must not use
    result = subprocess.run(
        [sys.executable, "-m", "common.probe"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    return result.returncode, result.stderr


@pytest.fixture(scope="module")
def serving():
    """A service app's /health on a real HTTP server, on loopback."""
    app = create_service_app("probe_test", Config(log_level="WARNING"))
    server = make_server("127.0.0.1", free_port(), app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


def test_a_service_that_answers_is_healthy(serving):
    assert probe(serving) == (0, "")


def test_nothing_listening_is_unhealthy_in_one_line():
    code, stderr = probe(free_port())
    assert code != 0 and stderr.startswith("unhealthy: http://127.0.0.1:") and stderr.count("\n") == 1
