"""A run of a real model agent in the browser: streamed text, a tool call with its result, usage,
and a failure explained in words. The model is the tests' Chat Completions server on loopback."""

import json

import pytest
from playwright.sync_api import expect

from tests.support import fake_model
from tests.support.browser import register, screenshot, shown_events, start_run, wait_for_status
from tests.support.fake_model import call_tools, error, slow
from tests.support.runs import stored_events


@pytest.fixture
def agent_stack(web_stack, model):
    return web_stack(AGENT="openai", AGENT_BASE_URL=model.url, AGENT_MODEL=fake_model.MODEL, AGENT_TIMEOUT=5)


def test_a_model_run_shows_its_text_growing_its_tool_call_and_its_usage(page, agent_stack, model, database_url):
    prompt = "How many seconds are in a week?"
    model.script(
        prompt,
        call_tools(("call_week", "calculator", json.dumps({"expression": "7 * 24 * 60 * 60"})), usage=(31, 9)),
        slow("A week has 604,800 seconds: 7 days × 24 hours × 3,600 seconds.", chunks=20, delay=0.05),
    )
    register(page, agent_stack)

    run_id = start_run(page, prompt, steps=1)
    card = page.locator(".event-tool[data-call-id='call_week']")
    expect(card).to_contain_text("Tool call · calculator")
    expect(card.locator(".tool-output")).to_contain_text("604800")
    expect(page.locator(".event-message .message").last).to_contain_text("A week has")  # growing, mid-stream
    wait_for_status(page, "completed")

    stored = stored_events(database_url, run_id)
    assert shown_events(page) == [(seq, kind) for seq, kind, _ in stored]
    text = "".join(data["delta"] for _, kind, data in stored if kind == "message")
    expect(page.locator(".event-message .message").last).to_have_text(text)
    expect(page.locator(".event-usage").first).to_have_text("Model call 1: 31 tokens in, 9 out")
    expect(page.locator(".event-completed .summary")).to_contain_text("48 tokens in, 39 out")  # 31 + 17, 9 + 30
    screenshot(page, "model-run.png")


def test_a_failed_model_run_says_why_in_words(page, agent_stack, model):
    prompt = "Use a key the server refuses"
    model.script(prompt, error(401, "invalid api key"))
    register(page, agent_stack)

    start_run(page, prompt, steps=1)
    wait_for_status(page, "failed")

    outcome = page.locator(".event-failed")
    expect(outcome).to_contain_text("Reason: the model server refused the credentials (AGENT_API_KEY).")
    expect(outcome.locator(".failure-detail")).to_contain_text("HTTP 401")
