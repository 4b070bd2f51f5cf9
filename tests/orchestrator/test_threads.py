"""Threads over the wire: conversations whose runs see the turns before them, one active run at a
time, ownership, paging and deletion. Real gunicorn, real PostgreSQL, the fake model on loopback."""

import concurrent.futures
import json
import uuid

import requests

from tests.support import fake_model
from tests.support.accounts import sign_up
from tests.support.fake_model import answer, call_tools
from tests.support.runs import follow_run, kinds
from tests.support.services import service_env, wait_for


def new_thread(service, user, **body):
    response = requests.post(f"{service.url}/threads", json=body, headers=user["headers"], timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def post_run(service, user, prompt, thread_id, **body):
    return requests.post(
        f"{service.url}/runs",
        json={"prompt": prompt, "threadId": thread_id, **body},
        headers=user["headers"],
        timeout=10,
    )


def run_in(service, user, prompt, thread_id):
    response = post_run(service, user, prompt, thread_id)
    assert response.status_code == 201, response.text
    assert response.json()["threadId"] == thread_id
    return follow_run(service, user, response.json()["id"])


def test_each_run_of_a_thread_gets_the_turns_before_it_even_across_a_restart(start_service, database_url, model):
    env = service_env(
        database_url,
        AGENT="openai",
        AGENT_BASE_URL=model.url,
        AGENT_MODEL=fake_model.MODEL,
        AGENT_SYSTEM_PROMPT="Be brief.",
    )
    first_instance = start_service("orchestrator", env)
    user = sign_up(env)
    thread = new_thread(first_instance, user)
    p1, p2, p3 = "List two primes above 10.", "Multiply them.", "And the second one squared?"
    model.script(p1, answer("11 and 13."))
    model.script(p2, call_tools(("mul", "calculator", json.dumps({"expression": "11 * 13"}))), answer("143."))
    model.script(p3, answer("169."))

    run_in(first_instance, user, p1, thread["id"])
    run_in(first_instance, user, p2, thread["id"])
    first_instance.stop()  # nothing of the conversation lives in a process
    second_instance = start_service("orchestrator", env)
    events = run_in(second_instance, user, p3, thread["id"])

    assert kinds(events)[-1] == "completed"
    (third,) = model.received(p3)
    assert third["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": p1},
        {"role": "assistant", "content": "11 and 13."},
        {"role": "user", "content": p2},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "mul",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "11 * 13"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "mul", "content": json.dumps({"expression": "11 * 13", "value": 143})},
        {"role": "assistant", "content": "143."},
        {"role": "user", "content": p3},
    ]
    shown = requests.get(f"{second_instance.url}/threads/{thread['id']}", headers=user["headers"], timeout=10).json()
    assert [r["prompt"] for r in shown["runs"]] == [p1, p2, p3]
    assert shown["title"] == p1  # named by its first prompt
    assert shown["activeRunId"] is None


def test_a_thread_runs_one_run_at_a_time_of_twenty_posted_at_once_one_is_created(start_service, orchestrator_env):
    orchestrator = start_service("orchestrator", {**orchestrator_env, "RUN_STEP_DELAY_MS": "200"})
    user = sign_up(orchestrator_env)
    thread = new_thread(orchestrator, user, title="Busy")

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda n: post_run(orchestrator, user, f"attempt {n}", thread["id"]), range(20)))

    created = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 409]
    assert len(created) == 1 and len(refused) == 19
    assert {r.json()["error"]["code"] for r in refused} == {"thread_busy"}
    assert {r.json()["error"]["activeRunId"] for r in refused} == {created[0].json()["id"]}
    # Once it is over, the thread takes the next run.
    requests.post(f"{orchestrator.url}/runs/{created[0].json()['id']}/cancel", headers=user["headers"], timeout=10)
    wait_for(lambda: post_run(orchestrator, user, "next", thread["id"]).status_code == 201, 10)


def test_another_users_thread_does_not_exist_for_them(start_service, orchestrator_env):
    orchestrator = start_service("orchestrator", orchestrator_env)
    owner, stranger = sign_up(orchestrator_env), sign_up(orchestrator_env)
    thread = new_thread(orchestrator, owner, title="Mine")
    for method, path in [("get", f"/threads/{thread['id']}"), ("delete", f"/threads/{thread['id']}")]:
        response = requests.request(method, orchestrator.url + path, headers=stranger["headers"], timeout=10)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "thread_not_found")
    for thread_id in (thread["id"], str(uuid.uuid4()), "not-a-uuid", 42):
        response = post_run(orchestrator, stranger, "hijack", thread_id)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "thread_not_found")
    listed = requests.get(f"{orchestrator.url}/threads", headers=stranger["headers"], timeout=10).json()
    assert listed == {"threads": [], "next": None}
    assert requests.get(f"{orchestrator.url}/threads/{thread['id']}", headers=owner["headers"], timeout=10).ok


def test_deleting_a_thread_removes_its_runs_and_their_events(start_service, orchestrator_env, db):
    orchestrator = start_service("orchestrator", orchestrator_env)
    user = sign_up(orchestrator_env)
    thread, other = new_thread(orchestrator, user), new_thread(orchestrator, user)
    run_in(orchestrator, user, "first turn", thread["id"])
    kept = run_in(orchestrator, user, "another conversation", other["id"])

    response = requests.delete(f"{orchestrator.url}/threads/{thread['id']}", headers=user["headers"], timeout=10)

    assert response.status_code == 204
    assert (
        requests.get(f"{orchestrator.url}/threads/{thread['id']}", headers=user["headers"], timeout=10).status_code
        == 404
    )
    assert db.execute("SELECT count(*) AS n FROM runs WHERE thread_id = %s", (thread["id"],)).fetchone()["n"] == 0
    left = db.execute("SELECT count(*) AS n FROM run_events e JOIN runs r ON r.id = e.run_id").fetchone()["n"]
    assert left == len(kept)  # the other thread's run is untouched


def test_threads_are_listed_by_newest_activity_and_paged(start_service, orchestrator_env):
    orchestrator = start_service("orchestrator", orchestrator_env)
    user = sign_up(orchestrator_env)
    threads = [new_thread(orchestrator, user, title=f"thread {n}") for n in range(5)]
    run_in(orchestrator, user, "wake the oldest", threads[0]["id"])  # activity moves it to the top

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"before": cursor} if cursor else {})}
        page = requests.get(f"{orchestrator.url}/threads", params=params, headers=user["headers"], timeout=10).json()
        seen += [t["title"] for t in page["threads"]]
        if not (cursor := page["next"]):
            break
    assert seen == ["thread 0", "thread 4", "thread 3", "thread 2", "thread 1"]
    for bad in ({"limit": 0}, {"limit": "x"}, {"before": str(uuid.uuid4())}):
        response = requests.get(f"{orchestrator.url}/threads", params=bad, headers=user["headers"], timeout=10)
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_field"
    response = requests.post(
        f"{orchestrator.url}/threads", json={"title": "x" * 201}, headers=user["headers"], timeout=10
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == "title"
