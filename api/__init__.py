"""The API service: accounts, sessions and tokens."""

from pathlib import Path

from api import metrics
from common import db, openapi, sse, state
from common.config import Config, load_config
from common.service import create_service_app

# Settings without which the API must not start (checked before gunicorn binds, see gunicorn.conf.py).
REQUIRED_SETTINGS = ("DATABASE_URL", "JWT_SECRET")


def create_app(config=None):
    """Build the API app from `config` (a Config, a mapping of environment variables, or os.environ)."""
    if not isinstance(config, Config):
        config = load_config(config, require=REQUIRED_SETTINGS)
    app = create_service_app("api", config, {"database": db.ping}, untimed_paths=[r"^/events$"])
    db.init_app(app, config)
    openapi.init_app(app, Path(__file__).with_name("openapi.json"))
    sse.init_app(app, config)
    state.of(app).metrics = metrics.create(app)

    from api import accounts, me, streams

    app.register_blueprint(accounts.bp)
    app.register_blueprint(me.bp)
    app.register_blueprint(streams.bp)
    return app
