"""The skeleton every service's `create_app` starts from: a Flask app with the shared plumbing."""

from pathlib import Path

from flask import Flask
from flask.helpers import get_root_path

from common import cors, errors, health, http, metrics, state
from common.logs import configure_logging


def create_service_app(name, config, readiness_checks=None, untimed_paths=(), cors_origins=None):
    """A Flask app with config, JSON logging, errors, request ids, headers, CORS, metrics and health."""
    configure_logging(config.log_level)
    # Only a service that ships a static/ folder (the web page) serves /static/<file>: on a JSON
    # service that route would answer nothing but 404s, outside its documented contract.
    static = "static" if (Path(get_root_path(name)) / "static").is_dir() else None
    app = Flask(name, static_folder=static)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False
    state.init_app(app, config, readiness_checks)
    errors.init_app(app)
    cors_on = cors.init_app(app, config.cors_origins if cors_origins is None else cors_origins)
    http.init_app(app, metrics.init_app(app, untimed_paths), vary_origin=cors_on)
    app.register_blueprint(health.bp)
    return app
