"""Every line a service writes is one JSON object: start-up, migrations, gunicorn's own, requests,
SIGTERM, and the one line a bad setting stops it with.

Each service runs under real gunicorn (gevent workers), its stdout and stderr captured together.
"""

import json
import signal
import subprocess
import sys

import requests

from tests.support.runs import create_run
from tests.support.services import ROOT, free_port
from tests.support.sse import read_sse


def json_lines(text):
    """Every line of `text` parsed as JSON; fail naming the first that is not one JSON object."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        assert isinstance(entry, dict), f"line {number} is not a JSON object: {line!r}\n{text}"
        assert entry.get("level") and "msg" in entry, f"line {number} has no level or msg: {line!r}"
        entries.append(entry)
    return entries


def stop_and_read(service):
    """SIGTERM the service, wait for it to exit, and return its output as parsed lines."""
    assert service.stop(signal.SIGTERM) == 0, service.log()
    return json_lines(service.log())


def test_every_line_of_the_four_services_is_json(start_service, env, sign_up):
    api = start_service("api", env)
    orchestrator = start_service("orchestrator", {**env, "RUN_STEP_DELAY_MS": "20", "RUN_LEASE_SECONDS": "2"})
    preview = start_service("preview", {**env, "API_URL": api.url})
    web = start_service("web", {**env, "PUBLIC_API_URL": api.url, "PUBLIC_ORCHESTRATOR_URL": orchestrator.url})
    user = sign_up()

    for service in (api, orchestrator, preview, web):
        assert requests.get(f"{service.url}/ready", timeout=5).status_code == 200
        assert requests.get(f"{service.url}/no-such-path", timeout=5).status_code == 404
        assert requests.get(f"{service.url}/metrics", timeout=5).status_code == 200
    credentials = {"userId": "ada-lovelace", "password": "correct horse"}
    assert requests.post(f"{api.url}/auth/register", json=credentials, timeout=10).status_code == 201
    assert requests.post(f"{api.url}/auth/token", data="{", timeout=10).status_code == 415  # not sent as JSON
    assert requests.get(f"{preview.url}/api/me", headers=user["headers"], timeout=5).status_code == 200
    run_id = create_run(orchestrator, user, steps=2)
    with requests.get(
        f"{orchestrator.url}/runs/{run_id}/events", headers=user["headers"], stream=True, timeout=20
    ) as stream:
        assert read_sse(stream, until=lambda e: e.get("event") in ("completed", "failed"))[-1]["event"] == "completed"
    # An SSE stream left open over SIGTERM ends with a close event, logged on the way out.
    events = requests.get(f"{api.url}/events", headers=user["headers"], stream=True, timeout=20)
    assert events.status_code == 200

    logged = {}
    for service in (preview, web, orchestrator, api):
        logged[service.module] = stop_and_read(service)
    events.close()
    for module in ("api", "orchestrator"):
        assert any("migrations" in e["msg"] for e in logged[module]), logged[module]
    for module, entries in logged.items():
        assert any(e.get("msg") == "request" for e in entries), (module, entries)
        assert any(e.get("logger", "").startswith("gunicorn") and "Listening" in e["msg"] for e in entries), module


def gunicorn_expecting_failure(env, module="api"):
    """Start gunicorn with `env` (and nothing else) and return what it wrote once it gave up."""
    env = {"PATH": "/usr/bin:/bin", "PORT": str(free_port()), **env}
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", f"{module}.wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def single_error_line(result, named):
    """The one error line a failed start wrote (gunicorn may say "Starting" first), naming `named`."""
    assert result.returncode != 0
    entries = json_lines(result.stdout + result.stderr)
    errors = [e for e in entries if e["level"] != "INFO"]
    assert len(errors) == 1, entries
    assert errors[0]["level"] == "ERROR" and named in errors[0]["msg"], entries
    assert "Traceback" not in errors[0]["msg"] and "exc" not in errors[0]
    return errors[0]


def test_a_bad_gunicorn_setting_stops_start_up_with_one_json_line(database_url, env):
    result = gunicorn_expecting_failure({**env, "WORKER_CONNECTIONS": "many"})
    assert single_error_line(result, "WORKER_CONNECTIONS")["msg"].startswith("config error: WORKER_CONNECTIONS")


def test_a_bad_service_setting_stops_start_up_with_one_json_line(env):
    # One bad setting each, so the line has exactly one setting it may name.
    bad = {"api": "JWT_SECRET", "orchestrator": "JWT_SECRET", "preview": "API_URL", "web": "PUBLIC_API_URL"}
    for module, name in bad.items():
        result = gunicorn_expecting_failure({**env, name: "x"}, module)
        entry = single_error_line(result, "config error:")
        assert entry["msg"].split(":")[1].split()[0] == name, entry


def test_an_unreachable_database_stops_start_up_with_one_json_line(env):
    result = gunicorn_expecting_failure({**env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert single_error_line(result, "migration failed")["msg"].startswith("migration failed:")
