"""Runs that wait for a person: `input_required`, `waiting` with no lease, greenlet or connection,
and an answer from any instance resuming the run exactly where it stopped."""

import json
import time

import pytest
import requests

from tests.support import fake_model
from tests.support.accounts import sign_up
from tests.support.fake_model import answer, call_tools
from tests.support.processes import kill_instance
from tests.support.runs import follow_run, kinds, stored_events
from tests.support.services import service_env, wait_for


@pytest.fixture
def tool_log(tmp_path):
    return tmp_path / "side-effects.log"


@pytest.fixture
def approval_env(env, model, tool_log):
    """A model agent whose `record` tool (a stand-in for sending an email) needs approval."""
    return service_env(
        env["DATABASE_URL"],
        JWT_SECRET=env["JWT_SECRET"],  # the same secret as the API's `env`, for the /events test
        AGENT="openai",
        AGENT_BASE_URL=model.url,
        AGENT_MODEL=fake_model.MODEL,
        AGENT_TOOLS="calculator,tests.support.agents:record",
        AGENT_APPROVAL_TOOLS="record",
        ONESHOT_TEST_TOOL_LOG=tool_log,
        RUN_LEASE_SECONDS=2,
    )


def start(service, user, prompt):
    response = requests.post(f"{service.url}/runs", json={"prompt": prompt}, headers=user["headers"], timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def answer_input(service, user, run_id, **body):
    return requests.post(f"{service.url}/runs/{run_id}/input", json=body, headers=user["headers"], timeout=10)


def run_row(db, run_id):
    return db.execute(
        "SELECT status, error, lease_owner, lease_expires_at, waiting_since FROM runs WHERE id = %s", (run_id,)
    ).fetchone()


def script_email(model, prompt, done="Sent it."):
    first = call_tools(("mail_1", "record", json.dumps({"line": "email to ada"})), text="Drafting it. ")
    model.script(prompt, first, answer(done))


def wait_until_waiting(db, run_id):
    return wait_for(lambda: (row := run_row(db, run_id))["status"] == "waiting" and row, 10)


def test_an_approval_tool_waits_holding_nothing_and_an_answer_from_another_instance_resumes_it(
    start_service, approval_env, model, db, tool_log
):
    a, b = start_service("orchestrator", approval_env), start_service("orchestrator", approval_env)
    user = sign_up(approval_env)
    prompt = "Email Ada the report"
    script_email(model, prompt)

    run_id = start(a, user, prompt)
    waiting = wait_until_waiting(db, run_id)

    assert kinds(stored_events(approval_env["DATABASE_URL"], run_id))[-2:] == ["tool_call", "input_required"]
    assert "message" in kinds(stored_events(approval_env["DATABASE_URL"], run_id))
    request = stored_events(approval_env["DATABASE_URL"], run_id)[-1][2]
    assert request == {"id": "mail_1", "tool": "record", "input": {"line": "email to ada"}}
    assert (waiting["lease_owner"], waiting["lease_expires_at"]) == (None, None)  # no lease
    assert not tool_log.exists()  # the tool did not run
    # No greenlet executes it (the running-runs gauge of both instances is 0) and no connection is in use.
    for instance in (a, b):
        metrics = requests.get(f"{instance.url}/metrics", timeout=10).text
        assert "oneshot_runs_running 0.0" in metrics
    busy = db.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND application_name <> 'oneshot-listener' AND state <> 'idle'"
    ).fetchone()["n"]
    assert busy == 0

    response = answer_input(b, user, run_id, id="mail_1", approve=True)
    assert (response.status_code, response.json()) == (202, {"id": run_id, "status": "queued"})
    events = follow_run(b, user, run_id)

    assert kinds(events)[-2:] == ["final", "completed"]
    assert events[-2][2] == {"text": "Drafting it. Sent it."}  # the answer from before the wait too
    assert tool_log.read_text() == f"{run_id} email to ada\n"  # it ran, once
    after = kinds(events)[kinds(events).index("input_required") :]
    assert after[:4] == ["input_required", "input", "running", "tool_result"]
    result = next(data for _, kind, data in events if kind == "tool_result")
    assert result == {"id": "mail_1", "tool": "record", "output": "recorded"}
    second = model.received(prompt)[1]["body"]["messages"]
    assert second[-1] == {"role": "tool", "tool_call_id": "mail_1", "content": '"recorded"'}
    assert len(model.received(prompt)) == 2  # the first model call was not made again


def test_a_refusal_reaches_the_model_with_the_comment_and_the_run_goes_on(
    start_service, approval_env, model, db, tool_log
):
    orchestrator = start_service("orchestrator", approval_env)
    user = sign_up(approval_env)
    prompt = "Email everyone"
    script_email(model, prompt, done="Understood, I will not send it.")
    run_id = start(orchestrator, user, prompt)
    wait_until_waiting(db, run_id)

    assert answer_input(orchestrator, user, run_id, id="mail_1", approve=False, comment="Not today").status_code == 202
    events = follow_run(orchestrator, user, run_id)

    assert kinds(events)[-1] == "completed"
    assert not tool_log.exists()
    refusal = {"error": "The user refused this call: Not today"}
    assert next(data for _, kind, data in events if kind == "tool_result") == {
        "id": "mail_1",
        "tool": "record",
        **refusal,
    }
    assert model.received(prompt)[1]["body"]["messages"][-1]["content"] == json.dumps(refusal)


def test_answers_that_cannot_apply_are_refused_without_changing_the_run(start_service, approval_env, model, db):
    orchestrator = start_service("orchestrator", approval_env)
    user, stranger = sign_up(approval_env), sign_up(approval_env)
    prompt = "Email twice"
    script_email(model, prompt)
    run_id = start(orchestrator, user, prompt)
    wait_until_waiting(db, run_id)

    for body, status, code in [
        ({"id": "mail_9", "approve": True}, 400, "unknown_input"),
        ({"id": "mail_1"}, 400, "invalid_field"),
        ({"id": "mail_1", "approve": "yes"}, 400, "invalid_field"),
        ({"approve": True}, 400, "invalid_field"),
    ]:
        response = answer_input(orchestrator, user, run_id, **body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    assert answer_input(orchestrator, stranger, run_id, id="mail_1", approve=True).status_code == 404
    assert run_row(db, run_id)["status"] == "waiting"

    assert answer_input(orchestrator, user, run_id, id="mail_1", approve=True).status_code == 202
    again = answer_input(orchestrator, user, run_id, id="mail_1", approve=False)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "input_answered")
    follow_run(orchestrator, user, run_id)
    assert kinds(stored_events(approval_env["DATABASE_URL"], run_id)).count("input") == 1


def test_a_run_waiting_past_run_input_timeout_fails_as_input_timeout(start_service, approval_env, model, db):
    orchestrator = start_service("orchestrator", {**approval_env, "RUN_INPUT_TIMEOUT": "1"})
    user = sign_up(approval_env)
    script_email(model, "Email nobody answers")
    run_id = start(orchestrator, user, "Email nobody answers")
    wait_until_waiting(db, run_id)

    events = follow_run(orchestrator, user, run_id)

    assert events[-1][1] == "failed" and events[-1][2]["reason"] == "input_timeout"
    assert run_row(db, run_id)["error"] == "input_timeout"
    late = answer_input(orchestrator, user, run_id, id="mail_1", approve=True)
    assert (late.status_code, late.json()["error"]["code"]) == (409, "run_not_waiting")


def test_cancel_while_waiting_ends_the_run_at_once(start_service, approval_env, model, db, tool_log):
    orchestrator = start_service("orchestrator", approval_env)
    user = sign_up(approval_env)
    script_email(model, "Email, then change my mind")
    run_id = start(orchestrator, user, "Email, then change my mind")
    wait_until_waiting(db, run_id)

    response = requests.post(f"{orchestrator.url}/runs/{run_id}/cancel", headers=user["headers"], timeout=10)

    assert response.status_code == 202
    assert run_row(db, run_id)["status"] == "cancelled"  # no worker had to act
    assert kinds(stored_events(approval_env["DATABASE_URL"], run_id))[-1] == "cancelled"
    assert answer_input(orchestrator, user, run_id, id="mail_1", approve=True).status_code == 409
    assert not tool_log.exists()


def test_every_orchestrator_killed_while_a_run_waits_loses_nothing(start_service, approval_env, model, db, tool_log):
    a, b = start_service("orchestrator", approval_env), start_service("orchestrator", approval_env)
    user = sign_up(approval_env)
    script_email(model, "Email after the outage", done="Sent after all.")
    run_id = start(a, user, "Email after the outage")
    wait_until_waiting(db, run_id)

    kill_instance(a)
    kill_instance(b)
    time.sleep(3)  # past RUN_LEASE_SECONDS: a waiting run has no lease to lapse
    assert run_row(db, run_id)["status"] == "waiting"
    fresh = start_service("orchestrator", approval_env)
    assert answer_input(fresh, user, run_id, id="mail_1", approve=True).status_code == 202
    events = follow_run(fresh, user, run_id)

    assert kinds(events)[-1] == "completed" and kinds(events).count("completed") == 1
    assert tool_log.read_text().count("\n") == 1  # exactly once
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))


def test_the_simulated_agent_asks_when_the_prompt_says_approve(start_service, orchestrator_env, db):
    orchestrator = start_service("orchestrator", orchestrator_env)
    user = sign_up(orchestrator_env)
    run_id = start(orchestrator, user, "Draft the launch email and approve it with me")
    wait_until_waiting(db, run_id)

    request = stored_events(orchestrator_env["DATABASE_URL"], run_id)[-1]
    assert request[1] == "input_required" and request[2]["tool"] == "send_email"
    assert answer_input(orchestrator, user, run_id, id=request[2]["id"], approve=True).status_code == 202
    events = follow_run(orchestrator, user, run_id)

    assert kinds(events)[-1] == "completed"
    sent = [data for _, kind, data in events if kind == "tool_result" and data["tool"] == "send_email"]
    assert sent == [{"id": request[2]["id"], "tool": "send_email", "output": "Email sent to team@example.com."}]
    scripted = [k for k in kinds(events) if k not in ("running", "input_required", "input", "completed")]
    assert scripted.count("plan") == 1 and scripted.count("final") == 1  # resumed, not restarted


def test_the_apis_event_stream_says_a_run_needs_an_answer(start_service, env, approval_env, model, db):
    api = start_service("api", env)
    orchestrator = start_service("orchestrator", approval_env)
    user = sign_up(approval_env)
    script_email(model, "Email, and tell me")
    with requests.get(f"{api.url}/events", headers=user["headers"], stream=True, timeout=(5, 20)) as events:
        lines = events.iter_lines(decode_unicode=True)
        wait_for(lambda: next(lines).startswith("event: ready"), 5)
        run_id = start(orchestrator, user, "Email, and tell me")
        statuses = []
        for line in lines:
            if line.startswith("data:") and "runId" in line:
                statuses.append(json.loads(line[5:])["status"])
                if statuses[-1] == "waiting":
                    break
    assert statuses == ["queued", "running", "waiting"]
    assert run_row(db, run_id)["status"] == "waiting"
