"""The page, and the headers that lock it down."""

from functools import cache

from flask import Blueprint, render_template

from common import state

bp = Blueprint("pages", __name__)


@cache  # one Config per app: the policy is built once
def content_security_policy(config):
    """Scripts and styles from this origin only, and fetches to the API and the Orchestrator only.

    No inline script or style is allowed, and Trusted Types forbid assigning strings to HTML sinks
    (`innerHTML`), so text from the agent can only ever become text.
    """
    connect = " ".join(_source(url) for url in (config.public_api_url, config.public_orchestrator_url))
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'none'",  # forms are handled by script; without it nothing is submitted
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        ]
    )


def _source(url):
    # A CSP source with a path matches that exact path unless it ends in "/": then it is a prefix.
    return url + "/" if url.count("/") > 2 else url


@bp.get("/")
def index():
    """The single page; the public URLs travel in data attributes, since no inline script may run."""
    config = state.config()
    return render_template(
        "index.html",
        api_url=config.public_api_url,
        orchestrator_url=config.public_orchestrator_url,
        heartbeat_seconds=config.sse_heartbeat_seconds,
    )


@bp.after_app_request
def lock_down(response):
    """The page's own CSP (stricter in what it names than the services' `default-src 'none'`)."""
    response.headers["Content-Security-Policy"] = content_security_policy(state.config())
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    return response
