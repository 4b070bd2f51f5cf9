"""The `openai` agent against a Chat Completions server on loopback, under real gunicorn.

One Orchestrator (AGENT=openai) and one fake model serve the whole module; each test scripts the
model's replies for its own prompt and reads back the stream, the stored events and the requests
the model received.
"""

import json
import time
import uuid

import pytest
import requests

from tests.support import fake_model
from tests.support.accounts import sign_up
from tests.support.fake_model import FakeModel, answer, call_tools, error, slow, stall_after
from tests.support.runs import follow_run, kinds, stored_events, text_of
from tests.support.services import Service, service_env, wait_for

KEY = "sk-test-" + uuid.uuid4().hex  # the model's secret: never in an event, a response or a log
SYSTEM = "You are oneshot's test agent."


@pytest.fixture(scope="module")
def model():
    fake = FakeModel()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def agent_env(module_database_url, model):
    return service_env(
        module_database_url,
        AGENT="openai",
        AGENT_BASE_URL=model.url,
        AGENT_MODEL=fake_model.MODEL,
        AGENT_API_KEY=KEY,
        AGENT_SYSTEM_PROMPT=SYSTEM,
        AGENT_MAX_TURNS=3,
        AGENT_TIMEOUT=2,
        RUN_LEASE_SECONDS=5,
    )


@pytest.fixture(scope="module")
def orchestrator(agent_env, tmp_path_factory):
    service = Service("orchestrator", agent_env, tmp_path_factory.mktemp("openai") / "orchestrator.log").start()
    yield service
    service.stop()


@pytest.fixture
def user(agent_env):
    return sign_up(agent_env)


def prompt_for(name):
    """A prompt of this test's own, so the model's script and the requests it records are apart."""
    return f"{name} ({uuid.uuid4().hex[:8]})"


def start(orchestrator, user, prompt):
    response = requests.post(f"{orchestrator.url}/runs", json={"prompt": prompt}, headers=user["headers"], timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def run_of(orchestrator, user, run_id):
    return requests.get(f"{orchestrator.url}/runs/{run_id}", headers=user["headers"], timeout=10).json()


# --- Streaming text -------------------------------------------------------------------------------


def test_streamed_text_arrives_as_message_deltas_that_join_to_the_answer(orchestrator, model, user, agent_env):
    prompt = prompt_for("Explain leases")
    text = "A lease is a promise to show signs of life; a run whose lease lapses is failed by a reaper. " * 3
    model.script(prompt, answer(text, chunks=30, usage=(42, 30)))

    run_id = start(orchestrator, user, prompt)
    events = follow_run(orchestrator, user, run_id)

    assert kinds(events)[0] == "running" and kinds(events)[-2:] == ["final", "completed"]
    assert text_of(events) == text
    assert events[-2][2] == {"text": text}
    assert [data for _, kind, data in events if kind == "usage"] == [{"inputTokens": 42, "outputTokens": 30}]
    # Thirty chunks in a burst were coalesced into far fewer stored events.
    assert 1 <= kinds(events).count("message") < 30
    assert events == stored_events(agent_env["DATABASE_URL"], run_id)  # the stream is the record, byte for byte
    assert run_of(orchestrator, user, run_id)["status"] == "completed"

    (request,) = model.received(prompt)
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    body = request["body"]
    assert body["model"] == fake_model.MODEL and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    assert {t["function"]["name"] for t in body["tools"]} == {"calculator", "current_time", "search_runs"}


def test_deltas_are_stored_at_most_once_per_flush_interval(orchestrator, model, user, agent_env):
    prompt = prompt_for("Count slowly")
    text = "".join(f"{n} " for n in range(60))
    model.script(prompt, slow(text, chunks=60, delay=0.01))  # about 100 tokens a second

    run_id = start(orchestrator, user, prompt)
    events = follow_run(orchestrator, user, run_id)

    assert text_of(events) == text
    import psycopg

    with psycopg.connect(agent_env["DATABASE_URL"]) as conn:
        times = [
            t
            for (t,) in conn.execute(
                "SELECT created_at FROM run_events WHERE run_id = %s AND type = 'message' ORDER BY seq", (run_id,)
            )
        ]
    # AGENT_FLUSH_MS=50: one event per 50 ms at most while text streams (and one last flush at the end)
    span = (times[-1] - times[0]).total_seconds()
    assert 2 <= len(times) <= span / 0.05 + 2


# --- The tool loop -------------------------------------------------------------------------------


def test_a_tool_call_in_fragments_is_run_and_its_result_sent_back(orchestrator, model, user):
    prompt = prompt_for("What is 17 times 23, plus 4?")
    model.script(
        prompt,
        call_tools(("call_calc", "calculator", json.dumps({"expression": "17 * 23 + 4"})), split=5),
        answer("17 × 23 + 4 = 395.", chunks=4),
    )

    events = follow_run(orchestrator, user, start(orchestrator, user, prompt))

    order = [k for k in kinds(events) if k not in ("usage", "running")]
    assert order[:2] == ["tool_call", "tool_result"] and order[-2:] == ["final", "completed"]
    assert set(order[2:-2]) == {"message"}
    call = next(data for _, kind, data in events if kind == "tool_call")
    assert call == {"id": "call_calc", "tool": "calculator", "input": {"expression": "17 * 23 + 4"}}
    result = next(data for _, kind, data in events if kind == "tool_result")
    assert result == {"id": "call_calc", "tool": "calculator", "output": {"expression": "17 * 23 + 4", "value": 395}}
    assert events[-2][2]["text"] == "17 × 23 + 4 = 395."
    assert kinds(events).count("usage") == 2  # one per model call

    first, second = model.received(prompt)
    assert first["body"]["messages"][-1] == {"role": "user", "content": prompt}
    assistant, tool = second["body"]["messages"][-2:]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"] == [
        {
            "id": "call_calc",
            "type": "function",
            "function": {"name": "calculator", "arguments": '{"expression": "17 * 23 + 4"}'},
        }
    ]
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_calc"
    assert json.loads(tool["content"]) == {"expression": "17 * 23 + 4", "value": 395}


def test_two_tool_calls_in_one_turn_are_told_apart_by_index_and_both_run(orchestrator, model, user):
    prompt = prompt_for("Two sums at once")
    model.script(
        prompt,
        call_tools(
            ("call_a", "calculator", json.dumps({"expression": "1 + 2"})),
            ("call_b", "calculator", json.dumps({"expression": "40 + 2"})),
            split=4,
        ),
        answer("3 and 42."),
    )

    events = follow_run(orchestrator, user, start(orchestrator, user, prompt))

    calls = [data for _, kind, data in events if kind == "tool_call"]
    results = [data for _, kind, data in events if kind == "tool_result"]
    assert [c["input"] for c in calls] == [{"expression": "1 + 2"}, {"expression": "40 + 2"}]
    assert [(r["id"], r["output"]["value"]) for r in results] == [("call_a", 3), ("call_b", 42)]
    tools = [m for m in model.received(prompt)[1]["body"]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tools] == ["call_a", "call_b"]
    assert kinds(events)[-1] == "completed"


def test_malformed_arguments_an_unknown_tool_and_a_failing_tool_become_errors_the_model_sees(orchestrator, model, user):
    prompt = prompt_for("Break every tool")
    model.script(
        prompt,
        call_tools(
            ("bad_json", "calculator", '{"expression": "1 +'),
            ("no_such", "teleport", "{}"),
            ("div_zero", "calculator", json.dumps({"expression": "1 / 0"})),
            ("wrong_type", "calculator", json.dumps({"expression": 7})),
        ),
        answer("Nothing worked, but I carried on."),
    )

    events = follow_run(orchestrator, user, start(orchestrator, user, prompt))

    results = {data["id"]: data for _, kind, data in events if kind == "tool_result"}
    assert results["bad_json"]["error"] == "the arguments are not valid JSON"
    assert results["no_such"]["error"].startswith("unknown tool 'teleport'")
    assert results["div_zero"]["error"] == "division by zero"
    assert results["wrong_type"]["error"] == "input.expression must be of type string"
    assert all("output" not in r for r in results.values())
    malformed = next(data for _, kind, data in events if kind == "tool_call" and data["id"] == "bad_json")
    assert malformed["input"] == '{"expression": "1 +'  # shown as the model sent it
    tools = [m for m in model.received(prompt)[1]["body"]["messages"] if m["role"] == "tool"]
    assert [json.loads(m["content"])["error"] for m in tools] == [r["error"] for r in results.values()]
    assert kinds(events)[-1] == "completed"


def test_agent_max_turns_bounds_the_model_calls(orchestrator, model, user):
    prompt = prompt_for("Loop forever")
    model.script(prompt, call_tools(("again", "current_time", "{}")))  # it always wants another call

    events = follow_run(orchestrator, user, start(orchestrator, user, prompt))

    assert len(model.received(prompt)) == 3  # AGENT_MAX_TURNS
    assert kinds(events).count("tool_result") == 3
    assert events[-1][1] == "failed" and events[-1][2]["reason"] == "max_turns"
    assert "AGENT_MAX_TURNS" in events[-1][2]["message"]


# --- Failures ------------------------------------------------------------------------------------


def test_a_refused_key_fails_the_run_as_model_auth_without_retrying(orchestrator, model, user):
    prompt = prompt_for("Wrong key")
    model.script(prompt, error(401, f"Incorrect API key provided: {KEY}"))

    run_id = start(orchestrator, user, prompt)
    events = follow_run(orchestrator, user, run_id)

    assert kinds(events) == ["running", "failed"]
    assert run_of(orchestrator, user, run_id)["error"] == "model_auth"
    assert events[-1][2]["reason"] == "model_auth" and "HTTP 401" in events[-1][2]["message"]
    assert len(model.received(prompt)) == 1


def test_server_errors_are_retried_and_the_run_completes(orchestrator, model, user):
    prompt = prompt_for("Flaky server")
    model.script(prompt, error(500), error(503), answer("Third time lucky."))

    events = follow_run(orchestrator, user, start(orchestrator, user, prompt))

    assert kinds(events)[-1] == "completed" and text_of(events) == "Third time lucky."
    assert len(model.received(prompt)) == 3


def test_a_rate_limit_is_retried_after_the_time_it_asks_for(orchestrator, model, user):
    prompt = prompt_for("Rate limited")
    model.script(prompt, error(429, "slow down", {"Retry-After": "1"}), answer("Done."))

    events = follow_run(orchestrator, user, start(orchestrator, user, prompt))

    first, second = model.received(prompt)
    assert second["at"] - first["at"] >= 1.0
    assert kinds(events)[-1] == "completed"


def test_a_server_that_keeps_failing_fails_the_run_as_model_unavailable_within_a_bound(orchestrator, model, user):
    prompt = prompt_for("Down for good")
    model.script(prompt, error(502))

    started = time.monotonic()
    events = follow_run(orchestrator, user, start(orchestrator, user, prompt))

    assert time.monotonic() - started < 15
    assert events[-1][1] == "failed" and events[-1][2]["reason"] == "model_unavailable"
    assert len(model.received(prompt)) == 4  # the first try and three retries


def test_a_stream_that_stops_sending_fails_the_run_as_model_timeout(orchestrator, model, user):
    prompt = prompt_for("Stall")
    model.script(prompt, stall_after("I was about to say"))

    events = follow_run(orchestrator, user, start(orchestrator, user, prompt))

    assert text_of(events) == "I was about to say"  # what arrived is kept
    assert events[-1][1] == "failed" and events[-1][2]["reason"] == "model_timeout"
    assert "AGENT_TIMEOUT" in events[-1][2]["message"]


def test_garbage_from_the_model_fails_the_run_as_model_error(orchestrator, model, user):
    prompt = prompt_for("Garbage")
    model.script(prompt, fake_model.Reply(events=[(0, "this is not json")]))

    events = follow_run(orchestrator, user, start(orchestrator, user, prompt))

    assert events[-1][1] == "failed" and events[-1][2]["reason"] == "model_error"


def test_a_model_error_that_quotes_the_key_is_shown_without_it(orchestrator, model, user):
    prompt = prompt_for("Echo my key")
    model.script(prompt, error(400, f"model not found for key {KEY}"))

    events = follow_run(orchestrator, user, start(orchestrator, user, prompt))

    assert events[-1][2]["reason"] == "model_error"
    assert "model not found for key [REDACTED]" in events[-1][2]["message"]


# --- Cancel --------------------------------------------------------------------------------------


def test_cancel_mid_stream_closes_the_model_connection_and_nothing_follows(orchestrator, model, user, agent_env):
    prompt = prompt_for("Write a long essay")
    model.script(prompt, slow("word " * 200, chunks=200, delay=0.05))
    run_id = start(orchestrator, user, prompt)
    wait_for(lambda: "message" in kinds(stored_events(agent_env["DATABASE_URL"], run_id)), 10)

    cancelled_at = time.monotonic()
    response = requests.post(f"{orchestrator.url}/runs/{run_id}/cancel", headers=user["headers"], timeout=10)
    assert response.status_code == 202
    events = follow_run(orchestrator, user, run_id)

    assert events[-1][1] == "cancelled"
    (request,) = model.received(prompt)
    closed_at = wait_for(lambda: request["closed_at"], 5)
    assert closed_at - cancelled_at < 1.0
    time.sleep(0.5)  # ten more chunks' worth: had the agent gone on, it would have written them
    assert stored_events(agent_env["DATABASE_URL"], run_id)[-1][1] == "cancelled"
    assert len(stored_events(agent_env["DATABASE_URL"], run_id)) == len(events)


# --- Secrets -------------------------------------------------------------------------------------


def test_the_key_appears_in_no_event_response_or_log_line(orchestrator, model, user, agent_env):
    prompt = prompt_for("Fail loudly")
    model.script(prompt, error(403, f"key {KEY} is revoked"))
    run_id = start(orchestrator, user, prompt)
    follow_run(orchestrator, user, run_id)

    import psycopg

    with psycopg.connect(agent_env["DATABASE_URL"]) as conn:
        everything = conn.execute("SELECT string_agg(data::text || type, '') FROM run_events").fetchone()[0]
        runs = conn.execute("SELECT string_agg(coalesce(error, ''), '') FROM runs").fetchone()[0]
    listed = requests.get(f"{orchestrator.url}/runs?limit=100", headers=user["headers"], timeout=10).text
    metrics = requests.get(f"{orchestrator.url}/metrics", timeout=10).text
    assert everything and "model_auth" in everything
    for text in (everything, runs, listed, metrics, orchestrator.log()):
        assert KEY not in text
        assert KEY[8:] not in text


def test_search_runs_finds_the_callers_own_earlier_runs_only(orchestrator, model, user, agent_env):
    marker = uuid.uuid4().hex[:8]
    earlier = f"Plan the {marker} launch"
    model.script(earlier, answer("Launch on Tuesday."))
    follow_run(orchestrator, user, start(orchestrator, user, earlier))
    stranger = sign_up(agent_env)
    model.script(f"Plan the {marker} heist", answer("No."))
    follow_run(orchestrator, stranger, start(orchestrator, stranger, f"Plan the {marker} heist"))

    prompt = prompt_for("What did I plan?")
    model.script(prompt, call_tools(("find", "search_runs", json.dumps({"text": marker}))), answer("Tuesday."))
    events = follow_run(orchestrator, user, start(orchestrator, user, prompt))

    found = next(data for _, kind, data in events if kind == "tool_result")["output"]
    assert [(r["prompt"], r["status"], r["answer"]) for r in found] == [(earlier, "completed", "Launch on Tuesday.")]


def test_an_event_is_the_same_bytes_live_and_replayed(orchestrator, model, user):
    """`failed {"status","reason","message"}` is an event whose keys jsonb would reorder."""
    prompt = prompt_for("Stall, then fail live")
    model.script(prompt, stall_after("Part of an answer"))
    run_id = start(orchestrator, user, prompt)

    def raw_events():
        url = f"{orchestrator.url}/runs/{run_id}/events"
        with requests.get(url, headers=user["headers"], stream=True, timeout=(5, 30)) as response:
            lines = []
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith(("id:", "event:", "data:")):
                    lines.append(line)
                if line.startswith("data:") and lines[-2] == "event: failed":
                    return lines

    live = raw_events()  # opened while the model stalls: `failed` arrives live, two seconds later
    replayed = raw_events()

    assert live[-2:] == replayed[-2:] and live[-2] == "event: failed"
    assert live[-1].startswith('data: {"status":"failed","reason":"model_timeout","message":')
    assert live == replayed
