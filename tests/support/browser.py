"""A browser's view of the stack, for the web tests: the services it needs, recorded pages, and the
steps a user takes (create an account, sign in, start a run) through the page itself."""

import os
import uuid
from dataclasses import dataclass, field

from playwright.sync_api import expect

from tests.support.services import OUTPUT, Service

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Root needs --no-sandbox; the rest keep Chromium from calling home on a network that refuses it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = OUTPUT / "web"

# Installed before any page script: counts CSP violations, which the console may not show in full.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@dataclass
class Stack:
    """The three services a browser needs, wired to each other."""

    api: Service
    orchestrator: Service
    web: Service


@dataclass
class PageLog:
    """What a page did: console lines, uncaught errors and every URL it requested."""

    console: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    requests: list = field(default_factory=list)


def open_page(context):
    """A page of `context` that records its console, uncaught errors, requests and CSP violations."""
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    page.log = PageLog()
    page.on("console", lambda message: page.log.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: page.log.errors.append(str(error)))
    page.on("request", lambda request: page.log.requests.append(request.url))
    page.set_default_timeout(15_000)
    return page


def check_page(page):
    """Fail on any CSP violation (console lines survive reloads; the listener sees this document's)."""
    violations = [line for line in page.log.console if "Content Security Policy" in line]
    if not page.is_closed():
        violations += page.evaluate("window.__cspViolations || []")
    assert not violations, f"the page broke its CSP: {violations}"
    assert not page.log.errors, f"uncaught errors in the page: {page.log.errors}"


def screenshot(page, name):
    """Save a full-page screenshot under test-output/web/ and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def register(page, stack, user_id=None, password="correct horse battery"):
    """Open the page, create an account through the form (which signs in); return the user id."""
    user_id = user_id or f"user-{uuid.uuid4().hex[:8]}"
    page.goto(stack.web.url)
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("User ID").fill(user_id)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#current-user")).to_have_text(user_id)
    return user_id


def sign_in(page, user_id, password="correct horse battery"):
    """Sign in through the form already on screen."""
    page.get_by_label("User ID").fill(user_id)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#current-user")).to_have_text(user_id)


def start_run(page, prompt="Compare three vector databases for a small team", steps=3):
    """Start a run through the form; return its id once the page shows it."""
    page.get_by_label("What should the agent work on?").fill(prompt)
    page.get_by_label("Steps").fill(str(steps))
    page.get_by_role("button", name="Start run").click()
    expect(page.locator("#run-title")).to_have_text(prompt)
    return page.evaluate("location.hash").removeprefix("#run-")


def wait_for_status(page, status, timeout=30_000):
    """Wait until the run on screen shows `status` (queued, running, completed, failed, cancelled)."""
    expect(page.locator("#run-status")).to_have_attribute("data-status", status, timeout=timeout)


def shown_events(page):
    """The (seq, type) of every event the page rendered, in page order."""
    return [
        (int(seq), kind)
        for seq, kind in page.locator("#timeline [data-seq]").evaluate_all(
            "nodes => nodes.map(n => [n.dataset.seq, n.dataset.type])"
        )
    ]


def stored_refresh_token(page):
    """The refresh token the page keeps between loads (None when signed out)."""
    return page.evaluate(
        'import("/static/js/store.js").then((store) => store.readRefreshToken()).then((t) => t ?? null)'
    )
