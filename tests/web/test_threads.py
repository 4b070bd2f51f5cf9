"""Threads and approvals in a real browser: a conversation of turns, an approval card answered by
keyboard, a refusal with a comment, the card on a second tab, and deleting a thread.

The agent is the simulated one: a prompt containing "approve" makes it call `send_email` at step 1
and wait for the user's answer.
"""

import psycopg
from playwright.sync_api import expect

from tests.support.browser import register, screenshot
from tests.support.runs import stored_events

APPROVAL = "Please approve sending the summary to the team"


def new_thread(page):
    """Start a thread with the "New thread" button; return its id once it is open."""
    page.get_by_role("button", name="New thread").click()
    expect(page.locator("#thread-title")).to_have_text("New thread")
    expect(page.get_by_label("Your message")).to_be_focused()
    return page.evaluate("location.hash").removeprefix("#thread-")


def send(page, message, steps=1):
    """Send the open thread's next message by keyboard (Ctrl+Enter); return the new turn."""
    page.get_by_label("Steps").fill(str(steps))
    page.get_by_label("Your message").focus()
    page.keyboard.type(message)
    page.keyboard.press("Control+Enter")
    turn = page.locator("#turns .turn").filter(has=page.locator(".turn-prompt", has_text=message))
    expect(turn).to_have_count(1)
    return turn


def finished(turn):
    """Wait until the turn's run completed."""
    expect(turn.locator(".event-completed")).to_be_visible(timeout=30_000)


def shown(turn):
    """The (seq, type) of every event a turn rendered, in page order."""
    pairs = turn.locator("[data-seq]").evaluate_all("nodes => nodes.map(n => [n.dataset.seq, n.dataset.type])")
    return [(int(seq), kind) for seq, kind in pairs]


def as_shown(events):
    return [(seq, kind) for seq, kind, _ in events]


def latest_run_id(database_url, thread_id):
    """The newest run of a thread."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT id::text FROM runs WHERE thread_id = %s ORDER BY created_at DESC, id DESC LIMIT 1", (thread_id,)
        ).fetchone()
    return row[0]


def test_two_turns_then_an_approval_by_keyboard_only(page, web_stack, database_url):
    stack = web_stack()
    register(page, stack)
    thread_id = new_thread(page)
    expect(page.locator(".thread-item").first).to_contain_text("New thread")

    first = send(page, "Compare three vector databases for a small team")
    finished(first)
    # The first prompt names the thread (server side), in the header and in the list.
    expect(page.locator("#thread-title")).to_have_text("Compare three vector databases for a small team")
    expect(page.locator(".thread-item").first).to_contain_text("Compare three vector databases")
    expect(page.locator(".thread-item").first).to_contain_text("Completed")

    second = send(page, "And which one is the cheapest to run?")
    finished(second)
    turns = page.locator("#turns .turn")
    expect(turns).to_have_count(2)
    expect(turns.locator(".turn-prompt p")).to_have_text(
        ["Compare three vector databases for a small team", "And which one is the cheapest to run?"]
    )
    with psycopg.connect(database_url) as conn:
        runs = conn.execute(
            "SELECT id::text FROM runs WHERE thread_id = %s ORDER BY created_at, id", (thread_id,)
        ).fetchall()
    run_ids = [run_id for (run_id,) in runs]
    assert turns.evaluate_all("nodes => nodes.map(n => n.dataset.runId)") == run_ids
    for turn, run_id in zip((first, second), run_ids, strict=True):
        events = stored_events(database_url, run_id)
        assert shown(turn) == as_shown(events)  # every event of each turn, in order, once
        final = next(data["text"] for _, kind, data in events if kind == "final")
        expect(turn.locator(".event-final")).to_contain_text(final)

    # The third message asks for approval: the card takes the focus, and the keyboard answers it.
    third = send(page, APPROVAL)
    card = third.locator(".approval")
    expect(card).to_be_focused()
    expect(card.get_by_role("heading")).to_have_text("Approve send_email?")
    expect(card.locator(".approval-input")).to_contain_text('"to": "team@example.com"')
    expect(page.locator("#thread-status")).to_have_text("Needs your approval")
    expect(page.locator(".thread-item").first).to_contain_text("Needs your approval")
    expect(page.locator(".history-item", has_text=APPROVAL)).to_contain_text("Needs your approval")
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_disabled()
    expect(page.locator("#prompt-hint")).to_contain_text("waiting for your answer")
    screenshot(page, "approval.png")

    page.keyboard.press("Tab")
    expect(card.get_by_label("Comment (optional)")).to_be_focused()
    page.keyboard.press("Tab")
    expect(card.get_by_role("button", name="Approve")).to_be_focused()
    page.keyboard.press("Enter")
    expect(third.locator(".approval")).to_have_count(0)
    expect(third.locator(".step-input")).to_have_text("You approved")
    finished(third)

    events = stored_events(database_url, latest_run_id(database_url, thread_id))
    kinds = [kind for _, kind, _ in events]
    assert kinds.index("input_required") < kinds.index("input") < kinds.index("completed")
    request = next(data for _, kind, data in events if kind == "input_required")
    answer = next(data for _, kind, data in events if kind == "input")
    assert answer["id"] == request["id"] and answer["approve"] is True
    result = next(data for _, kind, data in events if kind == "tool_result" and data["id"] == request["id"])
    assert "Email sent to team@example.com" in result["output"]
    assert shown(third) == as_shown(events)
    expect(third.locator(f'.event-tool[data-call-id="{request["id"]}"] .tool-output')).to_contain_text("Email sent")
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_enabled()


def test_refuse_with_a_comment_at_phone_width(new_page, web_stack, database_url):
    stack = web_stack()
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    register(page, stack)
    thread_id = new_thread(page)
    turn = send(page, "Draft the weekly update and approve sending it")
    card = turn.locator(".approval")
    expect(card).to_be_focused()
    comment = "Not today: the numbers are not final"
    card.get_by_label("Comment (optional)").fill(comment)
    width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways at phone width: {width}"
    screenshot(page, "approval-phone.png")

    card.get_by_role("button", name="Refuse").click()
    expect(turn.locator(".approval")).to_have_count(0)
    expect(turn.locator(".step-input")).to_contain_text("You refused")
    expect(turn.locator(".step-input .answer-comment")).to_have_text(comment)
    expect(turn.locator(".tool-error").first).to_contain_text(comment)
    finished(turn)

    events = stored_events(database_url, latest_run_id(database_url, thread_id))
    answer = next(data for _, kind, data in events if kind == "input")
    assert answer["approve"] is False and answer["comment"] == comment
    result = next(data for _, kind, data in events if kind == "tool_result" and data["id"] == answer["id"])
    assert comment in result["error"]
    assert shown(turn) == as_shown(events)
    assert [kind for _, kind, _ in events][-1] == "completed"


def test_the_card_appears_on_every_tab_and_goes_when_one_answers(browser, new_page, web_stack):
    stack = web_stack()
    context = browser.new_context()
    first = new_page(context)
    register(first, stack)
    thread_id = new_thread(first)
    second = new_page(context)
    second.goto(f"{stack.web.url}/#thread-{thread_id}")
    expect(second.locator("#thread-title")).to_have_text("New thread")

    send(first, APPROVAL)
    # The other tab learns of the new turn from the API's /events stream and streams it too.
    other_card = second.locator("#turns .approval")
    expect(other_card).to_be_visible()
    expect(other_card.locator(".approval-input")).to_contain_text("team@example.com")
    expect(second.locator(".thread-item").first).to_contain_text("Needs your approval")
    expect(second.get_by_role("button", name="Send", exact=True)).to_be_disabled()

    first.locator("#turns .approval").get_by_role("button", name="Approve").click()
    expect(other_card).to_have_count(0)
    expect(second.locator("#turns .step-input")).to_have_text("You approved")
    for tab in (first, second):
        finished(tab.locator("#turns .turn"))
        expect(tab.locator(".thread-item").first).to_contain_text("Completed")
    expect(second.get_by_role("button", name="Send", exact=True)).to_be_enabled()
    context.close()


def test_delete_a_thread_after_confirming_by_keyboard(page, web_stack, database_url):
    stack = web_stack()
    register(page, stack)
    kept = new_thread(page)
    finished(send(page, "A thread to keep"))
    doomed = new_thread(page)
    finished(send(page, "A thread to delete"))
    run_id = latest_run_id(database_url, doomed)
    entries = page.locator(".thread-entry")
    expect(entries).to_have_count(2)

    delete = page.get_by_role("button", name="Delete thread: A thread to delete")
    delete.focus()
    page.keyboard.press("Enter")
    confirm = page.get_by_role("group", name="Delete thread: A thread to delete")
    expect(confirm).to_contain_text("Delete “A thread to delete” and all its runs?")
    expect(confirm.get_by_role("button", name="Keep")).to_be_focused()
    page.keyboard.press("Escape")  # changed my mind: nothing happens
    expect(confirm).to_have_count(0)
    expect(delete).to_be_focused()
    page.keyboard.press("Enter")
    expect(confirm.get_by_role("button", name="Keep")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(confirm.get_by_role("button", name="Delete for good")).to_be_focused()
    page.keyboard.press("Enter")

    expect(entries).to_have_count(1)
    expect(entries.first).to_contain_text("A thread to keep")
    expect(page.locator("#prompt-label")).to_have_text("What should the agent work on?")  # it was open
    expect(page.locator(".history-item", has_text="A thread to delete")).to_have_count(0)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM threads WHERE id = %s", (doomed,)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM runs WHERE id = %s", (run_id,)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM run_events WHERE run_id = %s", (run_id,)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM threads WHERE id = %s", (kept,)).fetchone() == (1,)

    # After a reload it is still gone, and the kept thread opens with its turn.
    page.reload()
    expect(entries).to_have_count(1)
    entries.first.locator(".thread-item").click()
    finished(page.locator("#turns .turn"))
