"""A run's stream in the browser survives its connection: dropped, it reconnects and resumes."""

import os
import signal

from playwright.sync_api import expect

from tests.support.browser import register, shown_events, start_run, wait_for_status
from tests.support.processes import worker_pids
from tests.support.runs import stored_events


def test_a_dropped_stream_reconnects_and_resumes_from_the_last_event(page, web_stack, database_url):
    stack = web_stack(RUN_STEP_DELAY_MS=100)
    register(page, stack)
    run = start_run(page, steps=40)
    expect(page.locator("#timeline [data-seq]").nth(9)).to_be_attached()

    # Every Orchestrator worker dies at once: connections drop with no closing event, and the run's
    # executor is gone with them. gunicorn starts new workers; the reaper fails the run.
    for pid in worker_pids(stack.orchestrator.proc.pid):
        os.kill(pid, signal.SIGKILL)
    expect(page.locator("#run-connection")).to_have_text("Reconnecting…")
    wait_for_status(page, "failed")

    # Resumed with Last-Event-ID: each stored event shown exactly once, in order.
    stored = stored_events(database_url, run)
    assert shown_events(page) == [(seq, kind) for seq, kind, _ in stored]
    assert stored[-1][1:] == ("failed", {"status": "failed", "reason": "executor_lost"})
    expect(page.locator(".event-failed")).to_contain_text("the process running it stopped")
    expect(page.locator("#run-connection")).to_have_text("")
    streams = [url for url in page.log.requests if url.endswith(f"/runs/{run}/events")]
    assert len(streams) >= 2
