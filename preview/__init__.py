"""The Preview Manager: a reverse proxy in front of the API that forwards a verified identity."""

from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from common import openapi, state
from common.config import Config, load_config
from common.lifecycle import on_shutdown
from common.service import create_service_app
from preview import metrics

# Settings without which the Preview Manager must not start (checked before gunicorn binds).
REQUIRED_SETTINGS = ("JWT_SECRET", "API_URL")


def create_app(config=None):
    """Build the Preview Manager from `config` (a Config, a mapping of environment variables, or os.environ)."""
    if not isinstance(config, Config):
        config = load_config(config, require=REQUIRED_SETTINGS)
    upstream = requests.Session()
    upstream.trust_env = False  # never route through an environment proxy: only API_URL is contacted
    upstream.mount(config.api_url, HTTPAdapter(pool_connections=1, pool_maxsize=100))

    def upstream_ready():
        return upstream.get(f"{config.api_url}/health", timeout=(config.proxy_connect_timeout, 2)).ok

    # The API answers CORS itself (preflights are proxied): a second set of headers would break it.
    app = create_service_app("preview", config, {"api": upstream_ready}, untimed_paths=[r"^/api/"], cors_origins=())
    app.config["MAX_CONTENT_LENGTH"] = None  # bodies stream through; the API enforces its own limit
    app.url_map.merge_slashes = False  # "//host" must reach the path check, not be quietly merged
    state.of(app).upstream = upstream
    openapi.init_app(app, Path(__file__).with_name("openapi.json"))
    on_shutdown(app, upstream.close)
    state.of(app).metrics = metrics.create(app)

    from preview import proxy

    app.register_blueprint(proxy.bp)
    return app
