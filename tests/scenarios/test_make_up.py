"""The first command a user runs: `make up` from a clean clone, then `make down`."""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from common.config_parsers import PLACEHOLDER_SECRET
from tests.support.services import ROOT, free_port


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


def processes_of(folder):
    """Every process running from `folder` or naming it on its command line (pid, command line)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except (FileNotFoundError, NotADirectoryError, PermissionError, ProcessLookupError):
            continue
        if str(folder) in cmdline or cwd == str(folder) or cwd.startswith(f"{folder}/"):
            found.append((proc.name, cmdline))
    return found


def make(target, clone, env):
    """`make target` as a user types it in a shell (not nested in the `make test` running this)."""
    env = {k: v for k, v in env.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    result = subprocess.run(["make", target], cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_make_up_from_a_clean_clone_serves_and_make_down_stops_everything(clean_clone):
    ports = {"api": free_port(), "orchestrator": free_port(), "preview": free_port(), "web": free_port()}
    unset = ("DATABASE_URL", "API_URL", "CORS_ORIGINS", "PUBLIC_API_URL", "PUBLIC_ORCHESTRATOR_URL")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update({f"{name.upper()}_PORT": str(port) for name, port in ports.items()}, LOCAL_PG_PORT=str(free_port()))

    metrics_folders = set(Path(tempfile.gettempdir()).glob("oneshot-*-metrics-*"))
    output = make("up", clean_clone, env)
    assert "mode: local" in output  # no Docker engine answers here
    assert "wrote .env with a freshly generated JWT_SECRET" in output
    secret = next(line for line in (clean_clone / ".env").read_text().splitlines() if line.startswith("JWT_SECRET="))
    assert secret != f"JWT_SECRET={PLACEHOLDER_SECRET}" and len(secret) > len("JWT_SECRET=") + 32
    assert oct((clean_clone / ".env").stat().st_mode & 0o777) == "0o600"
    assert re.search(r"^POSTGRES_PASSWORD=\S{32,}$", (clean_clone / ".env").read_text(), re.M)  # for Compose
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

    smoke = make("smoke", clean_clone, env)
    assert smoke.rstrip().endswith("SMOKE PASS ✅"), smoke
    status = make("ps", clean_clone, env)
    assert all(re.search(rf"^{name} +\d+ +{port} +healthy$", status, re.M) for name, port in ports.items()), status

    pids = [int((clean_clone / ".run" / f"{name}.pid").read_text()) for name in ports]
    assert len(processes_of(clean_clone)) > len(pids)  # gunicorn masters, workers and PostgreSQL
    make("down", clean_clone, env)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert processes_of(clean_clone) == []
    assert set(Path(tempfile.gettempdir()).glob("oneshot-*-metrics-*")) == metrics_folders  # none left behind
    assert not (clean_clone / ".data" / "pg" / "postmaster.pid").exists()
    for port in ports.values():
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_make_up_hands_over_to_docker_compose_when_an_engine_answers(clean_clone, tmp_path):
    """No Docker engine runs here, so a stand-in `docker` on PATH answers `docker info` and records
    what it was asked: this checks what `make up`, `ps` and `down` ask of Docker, not Docker itself."""
    calls = tmp_path / "docker-calls"
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PATH"] = f"{fake.parent}:{env['PATH']}"

    output = make("up", clean_clone, env)
    assert "mode: docker compose" in output and "wrote .env" in output
    make("ps", clean_clone, env)
    make("down", clean_clone, env)
    assert calls.read_text().splitlines() == [
        "info",
        "compose up -d --build --wait",
        "compose ps",
        "compose ps",
        "compose down",
    ]
    assert not list((clean_clone / ".run").glob("*.pid")) and not (clean_clone / ".data").exists()

    refused = subprocess.run(["make", "up"], cwd=clean_clone, env={**env, "UP_MODE": "cloud"}, capture_output=True)
    assert refused.returncode != 0 and b"UP_MODE must be docker, local or auto" in refused.stderr
