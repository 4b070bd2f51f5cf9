"""The skeleton every service's `create_app` starts from, and its process lifecycle hooks."""

import logging
from pathlib import Path

from flask import Blueprint, Flask, current_app, jsonify
from flask.helpers import get_root_path

from common import cors, errors, http, metrics
from common.logs import configure_logging

log = logging.getLogger(__name__)

health = Blueprint("health", __name__)


@health.get("/health")
def live():
    """Liveness: the process answers. No dependency is consulted."""
    return {"ok": True}


@health.get("/ready")
def ready():
    """Readiness: every dependency the service declared answers."""
    failing = {}
    for name, check in current_app.extensions["readiness_checks"].items():
        try:
            ok = check()
        except Exception:  # any failure of a dependency means "not ready"
            ok = False
        if not ok:
            failing[name] = "unavailable"
    if failing:
        return jsonify(ok=False, failing=failing), 503
    return {"ok": True}


def on_shutdown(app, hook):
    """Run `hook()` when the app's process stops (gunicorn's worker_exit, or a test's teardown)."""
    app.extensions.setdefault("shutdown_hooks", []).append(hook)


def on_worker_start(app, hook):
    """Run `hook(worker)` once gunicorn's worker is ready (its `alive` flag turns false on SIGTERM)."""
    app.extensions.setdefault("worker_hooks", []).append(hook)


def shutdown(app):
    """Run the shutdown hooks, newest first (streams and runs before the pool they use)."""
    for hook in reversed(app.extensions.get("shutdown_hooks", [])):
        try:
            hook()
        except Exception:  # one failing hook must not keep the others from running
            log.exception("shutdown hook failed")


def worker_started(app, worker):
    """Run the worker hooks."""
    for hook in getattr(app, "extensions", {}).get("worker_hooks", []):
        hook(worker)


def create_service_app(name, config, readiness_checks=None, untimed_paths=(), cors_origins=None):
    """A Flask app with config, JSON logging, errors, request ids, headers, CORS, metrics and health."""
    configure_logging(config.log_level)
    # Only a service that ships a static/ folder (the web page) serves /static/<file>: on a JSON
    # service that route would answer nothing but 404s, outside its documented contract.
    static = "static" if (Path(get_root_path(name)) / "static").is_dir() else None
    app = Flask(name, static_folder=static)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False
    app.extensions["config"] = config
    app.extensions["readiness_checks"] = readiness_checks or {}
    errors.init_app(app)
    http.init_app(app)
    cors.init_app(app, config.cors_origins if cors_origins is None else cors_origins)
    metrics.init_app(app, untimed_paths)
    app.register_blueprint(health)
    return app
