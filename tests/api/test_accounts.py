"""Accounts, sign-in, refresh rotation, logout and throttling, against the real app and PostgreSQL."""

import re
import statistics
import time

import pytest

from tests.support.accounts import PASSWORD, register, sign_in


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def refresh(client, refresh_token):
    return client.post("/auth/refresh", json={"refreshToken": refresh_token})


def test_register_stores_an_argon2id_hash_at_or_above_owasp_minimums(client, db):
    assert register(client).json == {"userId": "alice"}
    stored = db.execute("SELECT password_hash FROM users WHERE id = 'alice'").fetchone()["password_hash"]
    params = dict(re.findall(r"([mtp])=(\d+)", stored))
    assert stored.startswith("$argon2id$")
    assert int(params["m"]) >= 19_456 and int(params["t"]) >= 2
    assert PASSWORD not in stored


def test_register_refuses_a_taken_user_id_in_any_letter_case(client, db):
    register(client, "Alice")
    response = client.post("/auth/register", json={"userId": "alice", "password": "another password"})
    assert response.status_code == 409
    assert response.json["error"]["code"] == "user_exists"
    assert db.execute("SELECT count(*) AS n FROM users").fetchone()["n"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "userId"),
        ({"userId": "ab", "password": PASSWORD}, "userId"),
        ({"userId": "a" * 65, "password": PASSWORD}, "userId"),
        ({"userId": "bob smith", "password": PASSWORD}, "userId"),
        ({"userId": "bob/../x", "password": PASSWORD}, "userId"),
        ({"userId": 12345, "password": PASSWORD}, "userId"),
        ({"userId": "bob"}, "password"),
        ({"userId": "bob", "password": "short"}, "password"),
        ({"userId": "bob", "password": "x" * 1025}, "password"),
        ({"userId": "bob", "password": ["a list"]}, "password"),
    ],
)
def test_register_rejects_invalid_fields_naming_them(client, db, body, field):
    response = client.post("/auth/register", json=body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_field"
    assert response.json["error"]["field"] == field
    assert field in response.json["error"]["message"]
    assert db.execute("SELECT count(*) AS n FROM users").fetchone()["n"] == 0


@pytest.mark.parametrize("field", ["password", "refreshToken"])
def test_a_lone_surrogate_in_a_string_is_a_400_not_a_500(client, field):
    raw = '{"userId": "eve-x", "password": "abcdefgh\\ud800", "refreshToken": "abc\\udfff"}'
    path = "/auth/register" if field == "password" else "/auth/refresh"
    response = client.post(path, data=raw, content_type="application/json")
    assert response.status_code == 400 and response.json["error"]["field"] == field


def test_a_megabyte_password_is_refused_before_any_hashing(client, db):
    started = time.monotonic()
    response = client.post("/auth/register", json={"userId": "bob", "password": "p" * 1_000_000})
    assert response.status_code == 400 and response.json["error"]["field"] == "password"
    assert time.monotonic() - started < 2
    assert db.execute("SELECT count(*) AS n FROM users").fetchone()["n"] == 0


def test_unknown_fields_are_ignored(client):
    response = client.post("/auth/register", json={"userId": "carol", "password": PASSWORD, "isAdmin": True})
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": "userId=a&password=b", "content_type": "application/x-www-form-urlencoded"}, 415, None),
        ({"data": "{not json", "content_type": "application/json"}, 400, "malformed_json"),
        ({"data": "[1, 2]", "content_type": "application/json"}, 400, "malformed_json"),
        ({"data": b"\xff\xfe", "content_type": "application/json"}, 400, "malformed_json"),
        ({"data": "x" * 1_100_000, "content_type": "application/json"}, 413, "payload_too_large"),
    ],
)
def test_bad_bodies_get_a_clear_json_error(client, kwargs, status, code):
    response = client.post("/auth/register", **kwargs)
    assert response.status_code == status
    assert response.json["error"]["code"] == (code or "unsupported_media_type")
    assert response.json["error"]["message"]


def test_unknown_routes_and_methods_answer_in_the_json_error_shape(client):
    assert client.get("/nope").json["error"]["code"] == "not_found"
    response = client.get("/auth/token")
    assert response.status_code == 405 and response.json["error"]["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_wrong_password_and_unknown_user_get_the_same_401(client):
    register(client)
    wrong = sign_in(client, password="not the password")
    unknown = sign_in(client, user_id="nobody")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json
    assert wrong.json["error"]["code"] == "invalid_credentials"


def test_unknown_users_cost_a_password_hash_too(client):
    """Timing must not tell whether an account exists: an unknown user is checked against a dummy hash."""
    register(client)
    sign_in(client, user_id="warm-up")  # the dummy hash is made on first use

    def median_seconds(user_id):
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            assert sign_in(client, user_id=user_id, password="wrong password").status_code == 401
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    assert median_seconds("nobody") > 0.5 * median_seconds("alice")


def test_sign_in_by_id_ignores_letter_case_and_returns_the_stored_id(client):
    register(client, "Alice")
    response = sign_in(client, user_id="ALICE")
    assert response.status_code == 200
    assert client.get("/me", headers=bearer(response.json["token"])).json["userId"] == "Alice"


def test_refresh_rotates_and_the_spent_token_is_refused(client):
    register(client)
    first = sign_in(client).json
    assert first["tokenType"] == "Bearer" and first["expiresIn"] == 900
    second = refresh(client, first["refreshToken"])
    assert second.status_code == 200
    assert second.json["refreshToken"] != first["refreshToken"]
    assert client.get("/me", headers=bearer(second.json["token"])).status_code == 200
    assert refresh(client, first["refreshToken"]).status_code == 401


def test_reusing_a_spent_refresh_token_revokes_the_whole_session(client, db):
    register(client)
    first = sign_in(client).json
    second = refresh(client, first["refreshToken"]).json
    reused = refresh(client, first["refreshToken"])
    assert reused.status_code == 401 and reused.json["error"]["code"] == "token_reused"
    # The thief and the owner both lose: the newest token and its access token are dead too.
    assert refresh(client, second["refreshToken"]).status_code == 401
    assert client.get("/me", headers=bearer(second["token"])).status_code == 401
    session = db.execute("SELECT revoked_at, revoked_reason FROM sessions").fetchone()
    assert session["revoked_at"] is not None and session["revoked_reason"] == "refresh_token_reused"


def test_refresh_tokens_are_stored_only_as_hashes(client, db):
    register(client)
    pair = sign_in(client).json
    hashes = [bytes(r["token_hash"]) for r in db.execute("SELECT token_hash FROM refresh_tokens")]
    assert len(hashes) == 1 and len(hashes[0]) == 32
    assert pair["refreshToken"].encode() not in hashes[0]


@pytest.mark.parametrize(
    ("presented", "status", "code"),
    [("", 400, "invalid_field"), ("unknown-token", 401, "invalid_refresh_token"), ("x" * 513, 400, "invalid_field")],
    ids=["empty", "unknown", "too_long"],
)
def test_unknown_or_malformed_refresh_tokens_are_refused(client, presented, status, code):
    """Malformed is the client's bug (400 naming the field); well-formed but unknown is 401, as the contract says."""
    response = refresh(client, presented)
    assert (response.status_code, response.json["error"]["code"]) == (status, code)


def test_a_session_ends_at_its_max_age_however_recently_it_rotated(make_client):
    client = make_client(SESSION_MAX_AGE=2)
    register(client)
    pair = sign_in(client).json
    time.sleep(1)
    pair = refresh(client, pair["refreshToken"]).json  # rotated just now ...
    assert "token" in pair
    time.sleep(1.5)  # ... but the session is now older than SESSION_MAX_AGE
    assert refresh(client, pair["refreshToken"]).status_code == 401
    assert client.get("/me", headers=bearer(pair["token"])).status_code == 401


def test_a_refresh_token_expires_after_refresh_ttl(make_client):
    client = make_client(REFRESH_TTL=1)
    register(client)
    pair = sign_in(client).json
    time.sleep(1.5)
    response = refresh(client, pair["refreshToken"])
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_refresh_token"


def test_logout_revokes_every_session_of_the_caller(client):
    register(client)
    laptop, phone = sign_in(client).json, sign_in(client).json
    assert client.post("/auth/logout", headers=bearer(laptop["token"])).status_code == 204
    for device in (laptop, phone):
        assert client.get("/me", headers=bearer(device["token"])).status_code == 401
        assert refresh(client, device["refreshToken"]).status_code == 401


def test_me_reports_the_forwarded_identity_and_refuses_a_mismatch(client):
    register(client)
    token = sign_in(client).json["token"]
    alone = client.get("/me", headers=bearer(token))
    assert alone.json["forwardedUserId"] is None and alone.json["userId"] == "alice"
    same = client.get("/me", headers={**bearer(token), "X-User-Id": "alice"})
    assert same.status_code == 200 and same.json["forwardedUserId"] == "alice"
    other = client.get("/me", headers={**bearer(token), "X-User-Id": "admin"})
    assert other.status_code == 403 and other.json["error"]["code"] == "identity_mismatch"
    two_ids = [("Authorization", f"Bearer {token}"), ("X-User-Id", "alice"), ("X-User-Id", "x")]
    twice = client.get("/me", headers=two_ids)
    assert twice.status_code == 403


def test_passwordless_minting_is_off_by_default(client):
    response = client.post("/auth/token", json={"userId": "demo-user"})
    assert response.status_code == 400 and response.json["error"]["field"] == "password"


def test_a_hash_with_weaker_parameters_is_upgraded_at_sign_in(client, db):
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8_192, parallelism=1).hash(PASSWORD)
    db.execute("INSERT INTO users (id, password_hash) VALUES ('legacy', %s)", (weak,))
    assert sign_in(client, user_id="legacy").status_code == 200
    stored = db.execute("SELECT password_hash FROM users WHERE id = 'legacy'").fetchone()["password_hash"]
    assert stored != weak and "m=19456,t=2,p=1" in stored
    assert sign_in(client, user_id="legacy").status_code == 200
