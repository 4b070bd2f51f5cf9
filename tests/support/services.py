"""Real services for tests and benchmarks: gunicorn processes, their settings, free ports, polling."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent.parent
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


def gunicorn_command(module):
    """How every service starts, everywhere: the Dockerfiles' CMD, systemd, `make up` and these tests."""
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
