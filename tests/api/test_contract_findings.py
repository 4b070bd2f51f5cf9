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
