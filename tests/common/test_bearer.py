"""common.bearer: only `Authorization: Bearer` authenticates, and only while the token's session lives.

The reading of the header on a service skeleton; the session check on the API against a real
database (forged and tampered tokens: tests/common/test_tokens_attacks.py)."""

import pytest

from common.bearer import bearer_token
from common.config import load_config
from common.service import create_service_app

CHALLENGE = 'Bearer realm="oneshot"'


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc.def.ghi", "abc.def.ghi"),
        ("  Bearer   abc.def.ghi  ", "abc.def.ghi"),
        ("Bearer", ""),
        ("Bearer ", ""),
        ("Basic YWxpY2U6c2VjcmV0", None),
        ("abc.def.ghi", None),
        (None, None),
    ],
)
def test_the_token_is_read_from_the_authorization_header_only(header, token):
    app = create_service_app(__name__, load_config({}))
    headers = {} if header is None else {"Authorization": header}
    with app.test_request_context("/me?access_token=abc.def.ghi", headers=headers):
        assert bearer_token() == token


def refusal(response, code, challenge):
    """A 401 with the JSON `code` and the `WWW-Authenticate` challenge a client acts on."""
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code
    assert response.headers["WWW-Authenticate"] == challenge


def test_no_token_is_a_plain_challenge_and_a_bad_one_says_invalid_token(client):
    refusal(client.get("/me"), "unauthorized", CHALLENGE)
    refusal(client.get("/me", headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"}), "unauthorized", CHALLENGE)
    invalid = f'{CHALLENGE}, error="invalid_token"'
    refusal(client.get("/me", headers={"Authorization": "Bearer "}), "invalid_token", invalid)
    refusal(client.get("/me", headers={"Authorization": "Bearer not-a-jwt"}), "invalid_token", invalid)


def test_a_token_in_the_query_string_is_ignored(client, sign_up):
    user = sign_up()
    refusal(client.get(f"/me?access_token={user['token']}"), "unauthorized", CHALLENGE)
    assert client.get("/me", headers=user["headers"]).status_code == 200


def test_a_valid_token_is_refused_once_its_session_ends(client, sign_up, db):
    user = sign_up()
    assert client.get("/me", headers=user["headers"]).get_json()["userId"] == user["userId"]
    db.execute("UPDATE sessions SET revoked_at = now() WHERE user_id = %s", (user["userId"],))
    response = client.get("/me", headers=user["headers"])
    refusal(response, "invalid_token", f'{CHALLENGE}, error="invalid_token"')
    assert response.get_json()["error"]["message"] == "The session has ended; sign in again."
