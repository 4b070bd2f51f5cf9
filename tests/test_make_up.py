"""The first command a user runs: `make up` from a clean clone, then `make down`."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from common.config import PLACEHOLDER_SECRET
from tests.conftest import ROOT, free_port


@pytest.fixture
def clean_clone():
    """A fresh clone of this repository's HEAD (traversable by the postgres user), sharing .venv."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    parent = Path(tempfile.mkdtemp(prefix="oneshot-clone-"))
    parent.chmod(0o755)
    clone = parent / "oneshot"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    yield clone
    subprocess.run(["make", "down"], cwd=clone, capture_output=True, check=False)
    shutil.rmtree(parent, ignore_errors=True)


def make(target, clone, env):
    result = subprocess.run(["make", target], cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_make_up_from_a_clean_clone_serves_and_make_down_stops_everything(clean_clone):
    ports = {"api": free_port(), "orchestrator": free_port(), "preview": free_port(), "web": free_port()}
    unset = ("DATABASE_URL", "API_URL", "CORS_ORIGINS", "PUBLIC_API_URL", "PUBLIC_ORCHESTRATOR_URL")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update({f"{name.upper()}_PORT": str(port) for name, port in ports.items()}, LOCAL_PG_PORT=str(free_port()))

    output = make("up", clean_clone, env)
    assert "wrote .env with a freshly generated JWT_SECRET" in output
    secret = next(line for line in (clean_clone / ".env").read_text().splitlines() if line.startswith("JWT_SECRET="))
    assert secret != f"JWT_SECRET={PLACEHOLDER_SECRET}" and len(secret) > len("JWT_SECRET=") + 32
    assert oct((clean_clone / ".env").stat().st_mode & 0o777) == "0o600"
    for port in ports.values():
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json() == {"ok": True}
        assert requests.get(f"http://127.0.0.1:{port}/ready", timeout=5).json() == {"ok": True}

    # The page is wired to the local API and Orchestrator, and they accept its origin.
    page = requests.get(f"http://127.0.0.1:{ports['web']}/", timeout=5)
    assert f'data-api-url="http://localhost:{ports["api"]}"' in page.text
    assert f'data-orchestrator-url="http://localhost:{ports["orchestrator"]}"' in page.text
    origin = f"http://localhost:{ports['web']}"
    preflight = requests.options(
        f"http://127.0.0.1:{ports['orchestrator']}/runs",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        timeout=5,
    )
    assert preflight.headers.get("Access-Control-Allow-Origin") == origin
    assert f"open http://localhost:{ports['web']}" in output

    again = make("up", clean_clone, env)  # idempotent, and .env is never rewritten
    assert "already running" in again and "wrote .env" not in again
    assert secret in (clean_clone / ".env").read_text()

    pids = [int((clean_clone / ".run" / f"{name}.pid").read_text()) for name in ports]
    make("down", clean_clone, env)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not (clean_clone / ".data" / "pg" / "postmaster.pid").exists()
    for port in ports.values():
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
