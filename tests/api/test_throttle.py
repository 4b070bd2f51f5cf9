"""Sign-in throttling per user and per client address, counted in PostgreSQL."""

import pytest

from tests.support.accounts import PASSWORD, register, sign_in


def test_failures_per_user_are_limited_with_retry_after(make_client, db):
    client = make_client(LOGIN_MAX_FAILURES=3, LOGIN_WINDOW=600)
    register(client)
    for _ in range(3):
        assert sign_in(client, password="wrong password").status_code == 401
    blocked = sign_in(client, password="wrong password")
    assert blocked.status_code == 429
    assert blocked.json["error"]["code"] == "too_many_attempts"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 600
    # Even the right password waits: the limit is on guesses, not on wrong guesses only.
    assert sign_in(client).status_code == 429
    assert db.execute("SELECT count(*) AS n FROM login_attempts").fetchone()["n"] == 3


def test_the_user_limit_ignores_letter_case(make_client):
    client = make_client(LOGIN_MAX_FAILURES=2)
    register(client)
    for user_id in ("alice", "ALICE"):
        assert sign_in(client, user_id=user_id, password="wrong password").status_code == 401
    assert sign_in(client, user_id="Alice", password="wrong password").status_code == 429


def test_a_successful_sign_in_resets_the_user_count(make_client):
    client = make_client(LOGIN_MAX_FAILURES=3)
    register(client)
    for _ in range(2):
        sign_in(client, password="wrong password")
    assert sign_in(client).status_code == 200
    for _ in range(3):
        assert sign_in(client, password="wrong password").status_code == 401


def test_failures_per_address_are_limited_across_users(make_client):
    client = make_client(LOGIN_MAX_FAILURES_PER_ADDRESS=4)
    register(client, "victim")
    for n in range(4):
        assert sign_in(client, user_id=f"guess{n}", password="wrong password").status_code == 401
    blocked = sign_in(client, user_id="victim")
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    other_address = sign_in(client, user_id="victim", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other_address.status_code == 200


def test_with_no_trusted_proxy_a_forged_forwarded_for_changes_nothing(make_client):
    client = make_client(LOGIN_MAX_FAILURES_PER_ADDRESS=3)
    for n in range(5):
        forged = {"X-Forwarded-For": f"198.51.100.{n}"}
        response = sign_in(client, user_id=f"user{n}", password="wrong password", headers=forged)
        assert response.status_code == (401 if n < 3 else 429)


def test_behind_one_trusted_proxy_only_the_proxy_written_entry_counts(make_client):
    client = make_client(LOGIN_MAX_FAILURES_PER_ADDRESS=3, TRUSTED_PROXY_HOPS=1)
    statuses = []
    for n in range(5):
        # The client forges the left part; the trusted proxy appends the address it saw.
        forged = {"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.9"}
        statuses.append(sign_in(client, user_id=f"user{n}", password="wrong password", headers=forged).status_code)
    assert statuses == [401, 401, 401, 429, 429]
    fresh = {"X-Forwarded-For": "203.0.113.10"}
    assert sign_in(client, user_id="user9", password="wrong password", headers=fresh).status_code == 401


@pytest.mark.parametrize("allowed", [False, True])
def test_passwordless_minting_only_when_enabled_and_never_for_password_accounts(make_client, allowed):
    client = make_client(AUTH_ALLOW_PASSWORDLESS=str(allowed).lower())
    register(client, "has-password", PASSWORD)
    demo = client.post("/auth/token", json={"userId": "demo-user"})
    assert demo.status_code == (200 if allowed else 400)
    protected = client.post("/auth/token", json={"userId": "has-password"})
    assert protected.status_code == (401 if allowed else 400)


def test_a_forwarded_entry_that_is_no_address_counts_against_the_peer(make_client):
    client = make_client(LOGIN_MAX_FAILURES_PER_ADDRESS=2, TRUSTED_PROXY_HOPS=1)
    statuses = [
        sign_in(client, user_id=f"user{n}", password="wrong password", headers={"X-Forwarded-For": junk}).status_code
        for n, junk in enumerate(["not-an-ip", "unknown", "1.2.3.4.5"])
    ]
    assert statuses == [401, 401, 429]
