"""Browser fixtures: headless Chromium (Debian's, driven by Playwright) and the real services behind it.

`web_stack()` starts the API, the Orchestrator and the Web UI under gunicorn on the test's own
database, wired together as a deployment would be: the page's origin is the only CORS origin, and
the page is told the public URLs of the other two. `page` is a fresh browser context whose console,
CSP violations, uncaught errors and requests are recorded; a test fails if the page broke its CSP
or threw.
"""

import shutil

import pytest
from playwright.sync_api import sync_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, Stack, check_page, open_page
from tests.support.services import Service, service_env


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole run."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def web_stack(database_url, tmp_path):
    """Start API, Orchestrator and Web UI: `web_stack(ACCESS_TTL=3)`; all stopped when the test ends."""
    started = []

    def start(**overrides):
        env = service_env(database_url, **{"RUN_STEP_DELAY_MS": 60, "RUN_LEASE_SECONDS": 2, **overrides})
        services = [
            Service(name, env, tmp_path / f"{name}-{len(started)}.log") for name in ("api", "orchestrator", "web")
        ]
        api, orchestrator, web = services
        wiring = {
            "CORS_ORIGINS": web.url,
            "PUBLIC_API_URL": api.url,
            "PUBLIC_ORCHESTRATOR_URL": orchestrator.url,
        }
        for service in services:
            service.env.update(wiring)
            started.append(service)
            service.start()
        return Stack(api, orchestrator, web)

    yield start
    # All at once: each waits out its open streams and keep-alive connections in parallel.
    for service in started:
        if service.proc.poll() is None:
            service.proc.terminate()
    for service in started:
        service.stop()


@pytest.fixture
def page(browser):
    """A recorded page in a fresh desktop-sized context; the test fails if it broke its CSP or threw."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = open_page(context)
    yield page
    check_page(page)
    context.close()


@pytest.fixture
def new_page(browser):
    """More recorded pages: `new_page(viewport=...)` in a new context, or `new_page(context)` beside
    another tab (contexts share localStorage between their pages, as a browser profile does)."""
    pages, contexts = [], []

    def make(context=None, **options):
        if context is None:
            context = browser.new_context(**options)
            contexts.append(context)
        pages.append(open_page(context))
        return pages[-1]

    yield make
    for page in pages:
        check_page(page)
    for context in contexts:
        context.close()
