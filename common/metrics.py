"""Prometheus metrics: per-endpoint request count and latency, plus each service's domain metrics.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by gunicorn.conf.py) every worker writes its samples
to that folder and `/metrics` sums them, so a scrape sees the whole service, not one worker.
"""

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_flask_exporter import PrometheusMetrics


def init_app(app, untimed_paths=()):
    """Expose `/metrics` and keep a registry for the service's own metrics in `app.extensions`.

    `untimed_paths` (regexes) are left out of the request metrics: SSE streams would be measured as
    requests lasting minutes.
    """
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Imported only here: the module refuses to import without the variable set.
        from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

        exporter = GunicornInternalPrometheusMetrics(app, group_by="endpoint", excluded_paths=list(untimed_paths))
    else:
        exporter = PrometheusMetrics(app, registry=registry, group_by="endpoint", excluded_paths=list(untimed_paths))
    app.extensions["metrics"] = exporter
    app.extensions["metrics_registry"] = registry
    return exporter


def counter(app, name, documentation, labels=()):
    """A counter registered with this app (in multiprocess mode the shared folder collects it)."""
    return Counter(name, documentation, labels, registry=app.extensions["metrics_registry"])


def gauge(app, name, documentation, labels=()):
    """A gauge summed over the live worker processes."""
    return Gauge(name, documentation, labels, registry=app.extensions["metrics_registry"], multiprocess_mode="livesum")


def histogram(app, name, documentation, labels=()):
    """A histogram registered with this app."""
    return Histogram(name, documentation, labels, registry=app.extensions["metrics_registry"])
