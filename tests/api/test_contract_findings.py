"""Regressions for what schemathesis found in the API against its OpenAPI document."""

import pytest

CHALLENGE = 'Bearer realm="oneshot"'


def test_a_wrong_password_401_names_its_scheme(client):
    """Found: POST /auth/token with unknown credentials answered 401 without WWW-Authenticate."""
    response = client.post("/auth/token", json={"userId": "nobody", "password": "not the password"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_credentials"
    assert response.headers["WWW-Authenticate"] == CHALLENGE


@pytest.mark.parametrize("reuse", [False, True], ids=["unknown", "reused"])
def test_a_refused_refresh_token_401_names_its_scheme(client, reuse):
    """Found by the same check on POST /auth/refresh: invalid_refresh_token and token_reused alike."""
    presented = "not-a-token"
    if reuse:
        client.post("/auth/register", json={"userId": "ada", "password": "correct horse"})
        presented = client.post("/auth/token", json={"userId": "ada", "password": "correct horse"}).get_json()[
            "refreshToken"
        ]
        assert client.post("/auth/refresh", json={"refreshToken": presented}).status_code == 200
    response = client.post("/auth/refresh", json={"refreshToken": presented})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == ("token_reused" if reuse else "invalid_refresh_token")
    assert response.headers["WWW-Authenticate"] == CHALLENGE


@pytest.mark.parametrize("limit", ["²", "１"])
def test_an_events_limit_in_other_digits_is_a_400(client, limit):
    """Found writing the document: GET /events?limit=² was a 500 (str.isdigit() is true of '²')."""
    client.post("/auth/register", json={"userId": "ada", "password": "correct horse"})
    token = client.post("/auth/token", json={"userId": "ada", "password": "correct horse"}).get_json()["token"]
    response = client.get("/events", query_string={"limit": limit}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "limit"


def test_a_nul_character_in_a_password_is_a_400(client):
    """The NUL rule is the shared string validator's: every service's string fields get it."""
    response = client.post("/auth/register", json={"userId": "ada", "password": "correct\u0000horse"})
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "password"
