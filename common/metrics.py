"""Prometheus metrics: per-endpoint request count and latency, plus each service's domain metrics.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by gunicorn.conf.py) every worker writes its samples
to that folder and `/metrics` sums them, so a scrape sees the whole service, not one worker.
"""

import os
import re
from timeit import default_timer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_flask_exporter import PrometheusMetrics

from common import state


def init_app(app, untimed_paths=()):
    """Expose `/metrics`, keep a registry for the service's own metrics, and return the request metrics.

    `untimed_paths` (regexes) are left out of the request metrics: SSE streams would be measured as
    requests lasting minutes. The caller hands the returned `RequestMetrics` to `common.http`.
    """
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _pid_without_syscalls()
        # Imported only here: the module refuses to import without the variable set.
        from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

        exporter = GunicornInternalPrometheusMetrics(app, export_defaults=False)
    else:
        exporter = PrometheusMetrics(app, registry=registry, export_defaults=False)
    held = state.of(app)
    held.metrics_exporter, held.metrics_registry = exporter, registry
    return RequestMetrics(registry, untimed_paths)


# This process's id, kept up to date across fork() once _pid_without_syscalls has run.
_pid = os.getpid()


def _remember_pid():
    global _pid
    _pid = os.getpid()


def _pid_without_syscalls():
    """Make multiprocess samples ask `_pid` for the process id instead of calling os.getpid().

    prometheus_client checks the pid on every sample update (to notice a fork), and a getpid() system
    call each time was ~4 % of a refresh's CPU here (py-spy: four updates per request). Its documented
    hook, `MultiProcessValue(process_identifier=...)`, takes a cheaper source; `_pid` follows forks.
    Installed once per process, before this process creates its first sample: two value classes
    would map the same file twice.
    """
    from prometheus_client import values

    if not getattr(values.ValueClass, "oneshot_cached_pid", False):
        _remember_pid()
        os.register_at_fork(after_in_child=_remember_pid)
        values.ValueClass = values.MultiProcessValue(process_identifier=lambda: _pid)
        values.ValueClass.oneshot_cached_pid = True


class RequestMetrics:
    """The exporter's request metrics (same names and labels), recorded by `common.http.RequestEdge`.

    The exporter's own hooks cost ~7 % of a GET /me (py-spy): label dicts built and sorted twice per
    request, regexes, attribute probes. Here the labelled children are looked up once per (method,
    endpoint, status) and kept, so a request costs two timer reads and two sample updates.
    """

    def __init__(self, registry, untimed_paths=()):
        self._untimed = re.compile("|".join(f"(?:{p})" for p in untimed_paths)) if untimed_paths else None
        self._duration = Histogram(
            "flask_http_request_duration_seconds",
            "Flask HTTP request duration in seconds",
            ("method", "endpoint", "status"),
            registry=registry,
        )
        self._total = Counter(
            "flask_http_request_total", "Total number of HTTP requests", ("method", "status"), registry=registry
        )
        self._failed = Counter(
            "flask_http_request_exceptions_total",
            "Total number of HTTP requests which resulted in an exception",
            ("method", "status"),
            registry=registry,
        )
        self._children = {}

    def start(self, environ):
        """The request's start time, or None for a path left untimed."""
        if self._untimed is not None and self._untimed.match(environ.get("PATH_INFO", "")):
            return None
        return default_timer()

    def observe(self, environ, status, started):
        """Record a response: `status` is the WSGI status line; the endpoint is the one Flask routed to."""
        request = environ.get("werkzeug.request")  # Flask's request, still current while it responds
        rule = request.url_rule if request is not None else None
        key = (environ.get("REQUEST_METHOD"), rule.endpoint if rule is not None else None, int(status[:3]))
        pair = self._children.get(key)
        if pair is None:
            method, endpoint, code = key
            pair = self._children[key] = (
                self._duration.labels(method=method, endpoint=endpoint, status=code),
                self._total.labels(method=method, status=code),
            )
        pair[0].observe(max(default_timer() - started, 0))
        pair[1].inc()

    def failed(self, environ):
        """Count a request that ended in an exception instead of a response."""
        self._failed.labels(method=environ.get("REQUEST_METHOD"), status=500).inc()


def counter(app, name, documentation, labels=()):
    """A counter registered with this app (in multiprocess mode the shared folder collects it)."""
    return Counter(name, documentation, labels, registry=state.of(app).metrics_registry)


def gauge(app, name, documentation, labels=()):
    """A gauge summed over the live worker processes."""
    return Gauge(name, documentation, labels, registry=state.of(app).metrics_registry, multiprocess_mode="livesum")


def histogram(app, name, documentation, labels=()):
    """A histogram registered with this app."""
    return Histogram(name, documentation, labels, registry=state.of(app).metrics_registry)
