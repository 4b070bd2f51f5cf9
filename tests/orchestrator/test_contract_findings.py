"""Regressions for what fuzzing the Orchestrator against its OpenAPI document found."""

import pytest


@pytest.fixture
def headers(sign_up):
    return sign_up()["headers"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/runs", {"prompt": "hello\u0000world"}),
        ("/threads", {"title": "a\u0000b"}),
    ],
    ids=["run prompt", "thread title"],
)
def test_a_nul_character_in_a_stored_string_is_a_400_not_a_500(orchestrator_client, headers, path, body):
    """Found by schemathesis: POST /runs/<id>/input with "id": "\\u00b4\\u0018\\u00007" answered 500
    (PostgreSQL text cannot hold NUL); every string field stored has the same hole."""
    response = orchestrator_client.post(path, json=body, headers=headers)
    assert response.status_code == 400, response.get_data()
    assert response.get_json()["error"]["code"] == "invalid_field"
    assert response.get_json()["error"]["field"] == next(iter(body))


def test_a_nul_character_in_an_input_id_is_a_400_not_a_500(orchestrator_client, headers):
    run = orchestrator_client.post("/runs", json={"prompt": "please approve"}, headers=headers).get_json()
    response = orchestrator_client.post(
        f"/runs/{run['id']}/input", json={"id": "\u00b4\u0018\u00007", "approve": False}, headers=headers
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "id"


@pytest.mark.parametrize("path", ["/runs", "/threads"])
@pytest.mark.parametrize("limit", ["²", "１", "٣"])
def test_a_limit_in_other_digits_is_a_400(orchestrator_client, headers, path, limit):
    """Found writing the document: '²'.isdigit() is true and int('²') raises, so ?limit=² was a 500;
    fullwidth and Arabic-Indic digits were taken as numbers the document does not allow."""
    response = orchestrator_client.get(path, query_string={"limit": limit}, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "limit"


def test_a_resume_point_in_other_digits_is_a_400(orchestrator_client, headers):
    run = orchestrator_client.post("/runs", json={"prompt": "hi", "steps": 1}, headers=headers).get_json()
    response = orchestrator_client.get(f"/runs/{run['id']}/events", headers={**headers, "Last-Event-ID": "٣"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_last_event_id"
