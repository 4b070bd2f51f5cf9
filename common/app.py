"""The skeleton every service's `create_app` starts from."""

from flask import Blueprint, Flask, current_app, jsonify

from common import cors, errors, http, metrics
from common.logs import configure_logging

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


def create_service_app(name, config, readiness_checks=None):
    """A Flask app with config, JSON logging, errors, request ids, headers, CORS, metrics and health."""
    configure_logging(config.log_level)
    app = Flask(name)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False
    app.extensions["config"] = config
    app.extensions["readiness_checks"] = readiness_checks or {}
    errors.init_app(app)
    http.init_app(app)
    cors.init_app(app, config.cors_origins)
    metrics.init_app(app)
    app.register_blueprint(health)
    return app
