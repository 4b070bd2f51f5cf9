"""What a service app holds (its config, pool, metrics, hooks), and typed accessors to reach it.

`common.service.create_service_app` files one `AppState` on the app; the `init_app` functions fill
in their part. Code reads it through the functions below, never by a string key:

    from common import state
    config = state.config()        # in a request (current_app)
    state.of(app).pool             # with an app in hand
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from psycopg_pool import ConnectionPool

    from common.config import Config
    from common.notify import Broker

KEY = "oneshot"  # the one entry in app.extensions


@dataclass(eq=False)
class AppState:
    """Everything one service app holds, set once at start-up."""

    config: Config | None = None  # None only on a bare Flask app (a test's pool probe)
    readiness_checks: dict[str, Callable[[], bool]] = field(default_factory=dict)  # /ready: name → check
    pool: ConnectionPool | None = None  # services with a database (common.db)
    openapi_document: dict | None = None  # GET /openapi.json (common.openapi)
    metrics: Any = None  # the service's domain metrics: api/metrics.py, orchestrator/metrics.py, preview/metrics.py
    upstream: Any = None  # the Preview Manager's HTTP session to API_URL
    metrics_registry: CollectorRegistry | None = None  # the service's own metrics are made in it (common.metrics)
    metrics_exporter: Any = None  # prometheus-flask-exporter's object, which serves /metrics
    broker: Broker | None = None  # services with streams or a run queue (common.notify)
    stream_limiter: Any = None  # open streams per user in this process (common.sse)
    shutdown_hooks: list[Callable[[], None]] = field(default_factory=list)  # common.lifecycle
    worker_hooks: list[Callable[[Any], None]] = field(default_factory=list)


def init_app(app, config, readiness_checks=None):
    """File `app`'s settings and readiness checks; return its AppState."""
    held = of(app)
    held.config, held.readiness_checks = config, dict(readiness_checks or {})
    return held


def of(app=None) -> AppState:
    """What `app` holds (default: the app of the current request or app context), filed on first use."""
    extensions = (current_app if app is None else app).extensions
    if KEY not in extensions:
        extensions[KEY] = AppState()
    return extensions[KEY]


def config() -> Config:
    """The current app's settings."""
    return of().config


def pool() -> ConnectionPool:
    """The current app's connection pool (services with a database)."""
    return of().pool


def broker(app=None) -> Broker:
    """This process's LISTEN/NOTIFY broker, started by common.notify.init_app."""
    return of(app).broker


def metrics_registry(app) -> CollectorRegistry:
    """The registry a service's own metrics are created in, made by common.metrics.init_app."""
    return of(app).metrics_registry
