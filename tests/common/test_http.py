"""JSON bodies (common.validation.json_body) on every service that reads them: bad input is a 400, never a 500.

A body nested thousands deep used to be a RecursionError (500); a body that names a key twice used
to be read as its last value, so two parsers on the path could disagree about what was asked.
"""

import pytest
import requests

DEEP = 5000
NESTED_ARRAYS = "[" * DEEP + "]" * DEEP
NESTED_IN_A_FIELD = '{"userId": ' + "[" * DEEP + "]" * DEEP + ', "password": "correct horse"}'
NESTED_OBJECTS = '{"a": ' * DEEP + "1" + "}" * DEEP
DUPLICATED = '{"userId": "ada-lovelace", "userId": "admin", "password": "correct horse"}'
API_PATHS = ["/auth/register", "/auth/token", "/auth/refresh"]
JSON = {"Content-Type": "application/json"}


def assert_malformed(response, mentions=None):
    """A 400 in the JSON error shape saying the body is malformed (and naming `mentions`)."""
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "malformed_json", error
    assert mentions is None or mentions in error["message"], error


@pytest.mark.parametrize("path", API_PATHS)
@pytest.mark.parametrize("body", [NESTED_ARRAYS, NESTED_IN_A_FIELD, NESTED_OBJECTS], ids=["arrays", "field", "objects"])
def test_deeply_nested_json_is_a_400_on_the_api(client, path, body):
    assert_malformed(client.post(path, data=body, headers=JSON))


@pytest.mark.parametrize("path", API_PATHS)
def test_a_duplicated_key_is_a_400_naming_it_on_the_api(client, db, path):
    body = DUPLICATED.replace("userId", "refreshToken") if path == "/auth/refresh" else DUPLICATED
    assert_malformed(
        client.post(path, data=body, headers=JSON), mentions="refreshToken" if "refresh" in path else "userId"
    )
    assert db.execute("SELECT count(*) AS n FROM users").fetchone()["n"] == 0


def test_a_key_repeated_deeper_down_is_refused_too(client):
    body = '{"userId": "ada-lovelace", "password": "correct horse", "extra": {"a": 1, "a": 2}}'
    assert_malformed(client.post("/auth/register", data=body, headers=JSON), mentions='"a"')


def test_the_same_name_in_different_objects_is_fine(client):
    body = '{"userId": "ada-lovelace", "password": "correct horse", "x": {"userId": 1}, "y": [{"userId": 2}]}'
    assert client.post("/auth/register", data=body, headers=JSON).status_code == 201


def test_deep_and_duplicated_json_is_a_400_on_the_orchestrator(orchestrator_client, sign_up, db):
    user = sign_up()
    headers = {**user["headers"], **JSON}
    for body in (NESTED_ARRAYS, '{"prompt": ' + "[" * DEEP + "]" * DEEP + "}", NESTED_OBJECTS):
        assert_malformed(orchestrator_client.post("/runs", data=body, headers=headers))
    duplicated = '{"prompt": "Plan a trip", "steps": 1, "steps": 50}'
    assert_malformed(orchestrator_client.post("/runs", data=duplicated, headers=headers), mentions="steps")
    assert db.execute("SELECT count(*) AS n FROM runs").fetchone()["n"] == 0


def test_deeply_nested_json_is_a_400_under_gunicorn(api_server):
    """Under gevent each request runs on a greenlet's stack: still a clean 400."""
    for body in (NESTED_ARRAYS, NESTED_OBJECTS, DUPLICATED):
        response = requests.post(f"{api_server.url}/auth/token", data=body, headers=JSON, timeout=10)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "malformed_json"
    assert "Traceback" not in api_server.log() and "RecursionError" not in api_server.log()
