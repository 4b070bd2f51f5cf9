"""The API's domain metrics, in one small object: token pairs issued, and refresh tokens reused."""

from dataclasses import dataclass

from prometheus_client import Counter

from common import metrics, state


@dataclass(frozen=True)
class ApiMetrics:
    """The API's own counters (request counts and latencies are common.metrics')."""

    tokens_issued: Counter  # token pairs issued, by grant (password, refresh, passwordless)
    refresh_reuse: Counter  # spent refresh tokens presented again: each revoked a session


def create(app):
    """Register the API's metrics with `app`."""
    return ApiMetrics(
        tokens_issued=metrics.counter(app, "oneshot_tokens_issued_total", "Token pairs issued, by grant.", ["grant"]),
        refresh_reuse=metrics.counter(
            app, "oneshot_refresh_reuse_detected_total", "Spent refresh tokens presented again (session revoked)."
        ),
    )


def current() -> ApiMetrics:
    """The current app's API metrics."""
    return state.of().metrics
