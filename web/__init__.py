"""The Web UI: one page and its static files. The browser then talks to the API and the Orchestrator."""

from common.config import Config, load_config
from common.service import create_service_app

# Settings without which the Web UI must not start (checked before gunicorn binds).
REQUIRED_SETTINGS = ("PUBLIC_API_URL", "PUBLIC_ORCHESTRATOR_URL")


def create_app(config=None):
    """Build the Web UI from `config` (a Config, a mapping of environment variables, or os.environ)."""
    if not isinstance(config, Config):
        config = load_config(config, require=REQUIRED_SETTINGS)
    # No readiness checks: the page needs nothing to be served, and the public URLs it names are
    # for browsers (from inside a container they may not even resolve). No CORS: nothing here is
    # read cross-origin.
    app = create_service_app("web", config, cors_origins=())

    from web import pages

    pages.content_security_policy(config)  # built once here: a bad URL would fail now, not per request
    app.register_blueprint(pages.bp)
    return app
