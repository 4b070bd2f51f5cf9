"""Tokens in the browser: silent refresh, tabs sharing one session, revocation, nothing in URLs."""

import time

import psycopg
import requests
from playwright.sync_api import expect

from tests.support.browser import register, shown_events, sign_in, start_run, stored_refresh_token, wait_for_status
from tests.support.runs import stored_events


def record_token_responses(page):
    """Collect every token pair the page receives (to look for them where they must never be)."""
    pairs = []

    def keep(response):
        if response.url.endswith(("/auth/token", "/auth/refresh")) and response.status == 200:
            pairs.append(response.json())

    page.on("response", keep)
    return pairs


def refreshes(page):
    return [url for url in page.log.requests if url.endswith("/auth/refresh")]


def test_short_lived_access_tokens_are_refreshed_silently(page, web_stack, database_url):
    stack = web_stack(ACCESS_TTL=3)
    pairs = record_token_responses(page)
    user = register(page, stack)
    # About 10 seconds of events: the stream outlives three access tokens and must resume each time.
    run = start_run(page, steps=30)
    wait_for_status(page, "completed", timeout=60_000)
    assert shown_events(page) == [(seq, kind) for seq, kind, _ in stored_events(database_url, run)]
    assert len(refreshes(page)) >= 2
    streams = [url for url in page.log.requests if url.endswith(f"/runs/{run}/events")]
    assert len(streams) >= 2, "the stream was never closed for an expired token and resumed"

    page.wait_for_timeout(3_500)  # idle past the access token's lifetime
    second = start_run(page, "And one more, after a pause", steps=1)
    wait_for_status(page, "completed")
    page.reload()
    expect(page.locator("#current-user")).to_have_text(user)
    expect(page.locator(".history-item")).to_have_count(2)
    wait_for_status(page, "completed")
    assert page.evaluate("location.hash") == f"#run-{second}"

    with psycopg.connect(database_url) as conn:
        sessions = conn.execute("SELECT revoked_at FROM sessions WHERE user_id = %s", (user,)).fetchall()
    assert sessions == [(None,)]  # one session throughout, never revoked by a refresh race

    # Only the newest refresh token is stored; the access token lives in memory alone.
    assert stored_refresh_token(page) == pairs[-1]["refreshToken"]
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    # No token value ever appears in a URL the browser requested.
    tokens = {value for pair in pairs for value in (pair["token"], pair["refreshToken"])}
    assert len(tokens) >= 6
    assert not [url for url in page.log.requests if any(token in url for token in tokens) or "token=" in url]


def test_two_tabs_share_one_session_without_tripping_reuse_detection(browser, new_page, web_stack, database_url):
    stack = web_stack(ACCESS_TTL=2)
    context = browser.new_context()
    first = new_page(context)
    user = register(first, stack)
    second = new_page(context)
    second.goto(stack.web.url)  # the refresh token in localStorage signs the new tab in
    expect(second.locator("#current-user")).to_have_text(user)

    # Both tabs stream long runs across several expiries, so both refresh again and again.
    runs = [start_run(tab, f"Tab {n} survey", steps=15) for n, tab in enumerate((first, second))]
    for tab, run in zip((first, second), runs, strict=True):
        wait_for_status(tab, "completed", timeout=60_000)
        assert shown_events(tab) == [(seq, kind) for seq, kind, _ in stored_events(database_url, run)]
        expect(tab.locator("#current-user")).to_have_text(user)
    assert len(refreshes(first)) >= 2 and len(refreshes(second)) >= 2

    # Both tabs reload at the same instant, so both refresh at once: one rotation must wait for the other.
    for _ in range(3):
        at = time.time() * 1000 + 300
        for tab in (first, second):
            tab.evaluate("at => setTimeout(() => location.reload(), at - Date.now())", at)
        first.wait_for_timeout(600)
        for tab in (first, second):
            expect(tab.locator("#current-user")).to_have_text(user)
    with psycopg.connect(database_url) as conn:
        revoked = conn.execute("SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL").fetchone()
    assert revoked == (0,)

    first.get_by_role("button", name="Log out").click()
    expect(second.get_by_role("heading", name="Sign in")).to_be_visible()  # the other tab follows
    sign_in(second, user)
    expect(first.locator("#current-user")).to_have_text(user)  # and follows a sign-in too
    context.close()


def test_a_revoked_session_sends_the_user_to_the_login_form(page, web_stack):
    stack = web_stack(SSE_HEARTBEAT_SECONDS=1)
    user = register(page, stack)
    start_run(page, steps=40)
    wait_for_status(page, "running")

    # Elsewhere, the same user logs out everywhere (as after a stolen laptop).
    pair = requests.post(
        f"{stack.api.url}/auth/token", json={"userId": user, "password": "correct horse battery"}, timeout=10
    ).json()
    revoked = requests.post(
        f"{stack.api.url}/auth/logout", headers={"Authorization": f"Bearer {pair['token']}"}, timeout=10
    )
    assert revoked.status_code == 204

    # The open stream notices at its next check, with no click needed.
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=10_000)
    expect(page.locator("#auth-notice")).to_have_text("Your session has ended. Sign in again.")
    assert stored_refresh_token(page) is None
