"""The Preview Manager's domain metrics, in one small object: how the API answered the proxy."""

from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from common import metrics, state


@dataclass(frozen=True)
class PreviewMetrics:
    """The proxy's own metrics (request counts and latencies are common.metrics')."""

    upstream_seconds: Histogram  # time until the API's response headers, by status
    upstream_errors: Counter  # requests the API did not answer, by kind (timeout, unreachable)


def create(app):
    """Register the Preview Manager's metrics with `app`."""
    return PreviewMetrics(
        upstream_seconds=metrics.histogram(
            app, "oneshot_proxy_upstream_seconds", "Time until the API's response headers, by status.", ["status"]
        ),
        upstream_errors=metrics.counter(
            app, "oneshot_proxy_upstream_errors_total", "Requests the API did not answer, by kind.", ["kind"]
        ),
    )


def current() -> PreviewMetrics:
    """The current app's Preview Manager metrics."""
    return state.of().metrics
