"""A real nginx for the bare-VM tests: the project's site file, included by a throwaway nginx.conf.

The site file is used as shipped; only addresses, ports and paths are substituted, each with an
explicit `str.replace` that fails when its placeholder is missing, so a changed file can never make
these tests quietly test something else.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.services import ROOT

SITE = ROOT / "deploy" / "nginx" / "oneshot.conf"


def nginx_binary():
    """nginx's path; skipped where nginx is missing, except in CI (CI set), which must have it."""
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("nginx is missing: the bare-VM suite needs it (.ci/run installs Debian's nginx)")
    pytest.skip("nginx is not installed (apt-get install nginx)")


def substitute(text, replacements):
    """Apply (old, new) replacements in order; fail if an `old` does not occur in the text."""
    for old, new in replacements:
        assert old in text, f"{old!r} is not in the config any more: update this test's substitutions"
        text = text.replace(old, new)
    return text


def ipv6_loopback():
    """True if ::1 can be bound here (a container may have IPv6 turned off)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Nginx:
    """An nginx of our own: prefix, pid, logs and temp files in a temporary folder (0755, because
    the workers run as nobody when the tests run as root)."""

    def __init__(self):
        self.binary = nginx_binary()
        self.prefix = Path(tempfile.mkdtemp(prefix="oneshot-nginx-"))
        self.prefix.chmod(0o755)
        self.logs = self.prefix / "logs"
        self.logs.mkdir(mode=0o755)
        self.site = self.prefix / "oneshot.conf"
        self.conf = self.prefix / "nginx.conf"
        temp_paths = "\n".join(
            f"    {kind}_temp_path {self.prefix}/tmp-{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf.write_text(
            f"worker_processes 1;\n"
            f"pid {self.prefix}/nginx.pid;\n"
            f"error_log {self.logs}/error.log;\n"
            f"events {{ worker_connections 1024; }}\n"
            f"http {{\n{temp_paths}\n    access_log off;\n    include {self.site};\n}}\n"
        )
        self.proc = None

    def write_site(self, text):
        """The site file this nginx includes."""
        self.site.write_text(text)
        return self

    def command(self, *args):
        return [self.binary, "-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.logs / "error.log"), *args]

    def test_config(self):
        """`nginx -t` on this configuration: (exit code, output)."""
        result = subprocess.run(self.command("-t"), capture_output=True, text=True)
        return result.returncode, result.stdout + result.stderr

    def start(self, port, timeout=10):
        """Run nginx in the foreground as a child; return once `port` accepts connections."""
        with open(self.logs / "stderr.log", "wb") as stderr:
            self.proc = subprocess.Popen(self.command("-g", "daemon off;"), stderr=stderr)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"nginx exited with {self.proc.returncode}: {self.error_log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"nginx did not listen on {port}: {self.error_log()}")

    def error_log(self):
        """What nginx complained about, at start-up (stderr) and since (its error logs)."""
        paths = [self.logs / "stderr.log", self.logs / "error.log", self.logs / "oneshot.error.log"]
        return "".join(path.read_text(errors="replace") for path in paths if path.exists())

    def access_log(self):
        path = self.logs / "oneshot.access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self):
        """Fast shutdown (SIGTERM), then remove the folder."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)


def upstream_servers(ports):
    """The `server` lines of an upstream: one port (as shipped), or a list of them (instances side by side)."""
    return "\n    ".join(f"server 127.0.0.1:{port};" for port in ([ports] if isinstance(ports, int) else ports))


def site_for_test(text, port, upstreams, logs):
    """The site file with the test's ports and log folder: upstreams maps 4000/4001/4002/3000 to a port,
    or to a list of ports for an upstream of several servers."""
    replacements = [(f"server 127.0.0.1:{fixed};", upstream_servers(ports)) for fixed, ports in upstreams.items()]
    replacements += [
        ("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;"),
        (
            "listen [::]:80 default_server;",
            f"listen [::1]:{port} default_server;" if ipv6_loopback() else "# no IPv6 loopback here",
        ),
        ("/var/log/nginx/", f"{logs}/"),
    ]
    return substitute(text, replacements)
