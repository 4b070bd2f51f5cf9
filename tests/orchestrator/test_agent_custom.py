"""A user's own agent and tool, named by AGENT=package.module:callable and AGENT_TOOLS, under gunicorn."""

import requests

from tests.support.accounts import sign_up
from tests.support.runs import follow_run, kinds, stored_events, text_of
from tests.support.services import service_env


def test_a_users_agent_and_tool_run_and_stream_like_any_other(start_service, database_url):
    env = service_env(database_url, AGENT="tests.support.agents:echo", AGENT_TOOLS="tests.support.agents:shout")
    orchestrator = start_service("orchestrator", env)
    user = sign_up(env)
    prompt = "hello from my own agent"
    response = requests.post(f"{orchestrator.url}/runs", json={"prompt": prompt}, headers=user["headers"], timeout=10)
    run_id = response.json()["id"]

    events = follow_run(orchestrator, user, run_id)

    assert kinds(events) == ["running", "tool_call", "tool_result"] + ["message"] * len(kinds(events)[3:-2]) + [
        "final",
        "completed",
    ]
    assert events[2][2] == {"id": "call_1", "tool": "shout", "output": prompt.upper()}
    assert text_of(events) == "hello from my own agent "
    assert events[-2][2] == {"text": text_of(events)}  # no final of its own: the deltas joined
    assert events == stored_events(database_url, run_id)


def test_a_users_agent_failure_ends_the_run_with_its_own_reason(start_service, database_url):
    env = service_env(database_url, AGENT="tests.support.agents:broken")
    orchestrator = start_service("orchestrator", env)
    user = sign_up(env)
    response = requests.post(f"{orchestrator.url}/runs", json={"prompt": "try"}, headers=user["headers"], timeout=10)

    events = follow_run(orchestrator, user, response.json()["id"])

    assert kinds(events) == ["running", "message", "failed"]
    assert events[-1][2] == {
        "status": "failed",
        "reason": "upstream_down",
        "message": "The service this agent needs is down.",
    }


def test_an_agent_or_tool_that_cannot_be_loaded_stops_the_start_with_one_line(tmp_path, database_url):
    import subprocess
    import sys

    from tests.support.services import ROOT

    for name, value, expected in [
        ("AGENT", "tests.support.nowhere:echo", "AGENT: cannot load tests.support.nowhere:echo"),
        ("AGENT", "tests.support.agents:missing", "AGENT: cannot load tests.support.agents:missing"),
        ("AGENT_TOOLS", "calculator,teleport", "AGENT_TOOLS: no built-in tool 'teleport'"),
        ("AGENT_TOOLS", "tests.support.agents:echo", "AGENT_TOOLS: tests.support.agents:echo is not a tool"),
        ("AGENT", "openai", "AGENT_BASE_URL is required with AGENT=openai"),
    ]:
        env = {**service_env(database_url), name: value, "MIGRATE_ON_START": "false"}
        done = subprocess.run(
            [sys.executable, "-m", "common.preflight", "orchestrator"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], done.stderr
