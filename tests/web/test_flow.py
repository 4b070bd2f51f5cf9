"""A first-time user in a real browser: sign up, watch a run, cancel one, reload, log out, sign in."""

import time

import psycopg
from playwright.sync_api import expect

from tests.support.browser import (
    register,
    screenshot,
    shown_events,
    sign_in,
    start_run,
    stored_refresh_token,
    wait_for_status,
)
from tests.support.runs import stored_events


def test_sign_up_watch_cancel_reload_and_log_out(page, web_stack, database_url):
    stack = web_stack()
    user = register(page, stack)
    expect(page.get_by_text("No runs yet.")).to_be_visible()

    first = start_run(page, "Compare three vector databases for a small team", steps=3)
    wait_for_status(page, "completed")
    stored = stored_events(database_url, first)
    assert [kind for _, kind, _ in stored][-2:] == ["final", "completed"]
    assert shown_events(page) == [(seq, kind) for seq, kind, _ in stored]  # every event, in order, once
    # The text before the first tool call is one paragraph; each tool call's card holds its result.
    first_text = "".join(
        data["delta"] for _, kind, data in stored[: [k for _, k, _ in stored].index("tool_call")] if kind == "message"
    )
    expect(page.locator(".event-message .message").first).to_have_text(first_text)
    call = next(data for _, kind, data in stored if kind == "tool_call")
    result = next(data for _, kind, data in stored if kind == "tool_result")
    card = page.locator(f'.event-tool[data-call-id="{call["id"]}"]')
    expect(card).to_contain_text(f"Tool call · {call['tool']}")
    expect(card.locator(".tool-output")).to_contain_text(result["output"])
    expect(page.locator(".event-completed .summary")).to_contain_text("Took ")
    final = next(data["text"] for _, kind, data in stored if kind == "final")
    expect(page.locator(".event-final")).to_contain_text(final)
    expect(page.locator(".history-item").first).to_contain_text("Completed")
    screenshot(page, "finished-run.png")

    second = start_run(page, "Survey every open-source agent framework", steps=40)
    expect(page.locator('#timeline [data-type="tool_call"]').first).to_be_visible()
    page.get_by_role("button", name="Cancel run").click()
    wait_for_status(page, "cancelled")
    assert shown_events(page)[-1][1] == "cancelled"
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status FROM runs WHERE id = %s", (second,)).fetchone() == ("cancelled",)

    # A reload keeps the user signed in, lists both runs, and replays the run in the address.
    page.reload()
    expect(page.locator("#current-user")).to_have_text(user)
    expect(page.locator(".history-item")).to_have_count(2)
    expect(page.locator(".history-item").nth(0)).to_contain_text("Cancelled")
    expect(page.locator(".history-item").nth(1)).to_contain_text("Completed")
    wait_for_status(page, "cancelled")
    assert shown_events(page) == [(seq, kind) for seq, kind, _ in stored_events(database_url, second)]

    # Reopening the finished run from the history replays it whole.
    page.locator(".history-item").nth(1).click()
    wait_for_status(page, "completed")
    expect(page.locator("#run-title")).to_have_text("Compare three vector databases for a small team")
    assert shown_events(page) == [(seq, kind) for seq, kind, _ in stored]

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    expect(page.locator("#timeline [data-seq]")).to_have_count(0)  # nothing of the user stays on screen
    assert stored_refresh_token(page) is None
    with psycopg.connect(database_url) as conn:
        live = conn.execute("SELECT count(*) FROM sessions WHERE user_id = %s AND revoked_at IS NULL", (user,))
        assert live.fetchone() == (0,)

    sign_in(page, user)
    expect(page.locator(".history-item")).to_have_count(2)


def test_steps_appear_live_one_after_another(page, web_stack, database_url):
    stack = web_stack(RUN_STEP_DELAY_MS=150)
    register(page, stack)
    start_run(page, steps=4)
    counts = set()
    deadline = time.monotonic() + 30
    while page.locator("#run-status").get_attribute("data-status") != "completed":
        assert time.monotonic() < deadline, "the run did not complete"
        counts.add(page.locator("#timeline [data-seq]").count())
        page.wait_for_timeout(40)
    # 24 events 150 ms apart: a page that showed them only at the end would have seen 2 or 3 counts.
    assert len(counts) >= 10, sorted(counts)
    expect(page.get_by_text("Live")).to_have_count(0)  # the finished stream no longer claims to be live


def test_clear_messages_for_bad_names_weak_passwords_wrong_credentials_and_throttling(page, web_stack):
    stack = web_stack(LOGIN_MAX_FAILURES=3)
    page.goto(stack.web.url)
    page.get_by_role("button", name="Create an account").click()

    page.get_by_label("User ID").fill("a b")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#auth-error")).to_have_text("User ID must be 3–64 letters, digits or . _ @ -")
    expect(page.get_by_label("User ID")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("User ID")).to_be_focused()

    page.get_by_label("User ID").fill("grace")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#auth-error")).to_have_text("Password must be at least 8 characters (and at most 1024).")
    expect(page.get_by_label("Password")).to_be_focused()
    assert not any(url.endswith("/auth/register") for url in page.log.requests)  # caught before sending

    register(page, stack, "grace")
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("User ID").fill("Grace")  # names ignore case
    page.get_by_label("Password").fill("another good password")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#auth-error")).to_have_text("That user ID is taken. Choose another, or sign in.")

    page.get_by_role("button", name="Sign in instead").click()
    for _ in range(3):
        page.get_by_label("User ID").fill("grace")
        page.get_by_label("Password").fill("wrong password!")
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page.locator("#auth-error")).to_have_text("Wrong user ID or password.")
        page.locator("#auth-error").evaluate("node => node.textContent = ''")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#auth-error")).to_contain_text("Too many attempts. Try again in")
    expect(page.locator("#auth-error")).to_have_attribute("role", "alert")  # read out by screen readers


def test_agent_text_is_shown_as_text_never_as_markup(page, web_stack):
    stack = web_stack()
    register(page, stack)
    prompt = '<img src=x onerror="window.pwned = 1"><script>window.pwned = 2</script>'
    start_run(page, prompt, steps=1)
    wait_for_status(page, "completed")
    expect(page.locator("#run-title")).to_have_text(prompt)
    expect(page.locator(".plan")).to_contain_text("<img src=x")
    assert page.locator("#run img, #run script").count() == 0
    assert page.evaluate("window.pwned") is None


def test_phone_width_and_keyboard_only(new_page, web_stack):
    stack = web_stack()
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.goto(stack.web.url)
    expect(page.get_by_label("User ID")).to_be_focused()
    order = []
    for _ in range(3):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id"))
    assert order == ["password", "auth-submit", "auth-switch"]
    page.keyboard.press("Enter")  # "Create an account"
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "auth-submit"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # focus is visible
    page.get_by_label("User ID").focus()
    page.keyboard.type("phone-user")
    page.keyboard.press("Tab")
    page.keyboard.type("correct horse battery")
    page.keyboard.press("Enter")
    expect(page.locator("#current-user")).to_have_text("phone-user")
    expect(page.get_by_label("What should the agent work on?")).to_be_focused()
    page.keyboard.type("Plan a week of meals for a family of four")
    page.keyboard.press("Control+Enter")
    wait_for_status(page, "completed")
    width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways at phone width: {width}"
    screenshot(page, "phone-finished-run.png")


def test_history_statuses_stay_current_across_runs_and_tabs(browser, new_page, web_stack):
    stack = web_stack(RUN_STEP_DELAY_MS=100)
    context = browser.new_context()
    first = new_page(context)
    register(first, stack)
    second = new_page(context)
    second.goto(stack.web.url)
    expect(second.get_by_text("No runs yet.")).to_be_visible()

    # A long run keeps going while the user opens a short one: its entry still turns Completed.
    start_run(first, "A long survey", steps=8)
    start_run(first, "A quick check", steps=1)
    wait_for_status(first, "completed")
    long_entry = first.locator(".history-item", has_text="A long survey")
    expect(long_entry).to_contain_text("Running")
    expect(long_entry).to_contain_text("Completed", timeout=20_000)

    # The other tab learned of both runs and their outcome without a reload.
    expect(second.locator(".history-item")).to_have_count(2)
    expect(second.locator(".history-item", has_text="A long survey")).to_contain_text("Completed")
    expect(second.locator(".history-item", has_text="A quick check")).to_contain_text("Completed")
    context.close()
