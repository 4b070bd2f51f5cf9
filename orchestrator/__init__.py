"""The Orchestrator service: agent runs, executed in the background and streamed over SSE."""

from common import db, metrics, sse
from common.app import create_service_app, on_shutdown
from common.config import Config, load_config
from orchestrator.executor import Executor

# Settings without which the Orchestrator must not start (checked before gunicorn binds).
REQUIRED_SETTINGS = ("DATABASE_URL", "JWT_SECRET")
# Streams would otherwise be measured as requests lasting minutes.
UNTIMED_PATHS = [r"^/runs/[^/]+/events$"]


def create_app(config=None):
    """Build the Orchestrator app from `config` (a Config, a mapping of environment variables, or os.environ)."""
    if not isinstance(config, Config):
        config = load_config(config, require=REQUIRED_SETTINGS)
    app = create_service_app("orchestrator", config, {"database": db.ping}, untimed_paths=UNTIMED_PATHS)
    db.init_app(app, config)
    sse.init_app(app, config)
    runs_counter = metrics.counter(app, "oneshot_runs_total", "Runs entering each status.", ["status"])
    executor = Executor(app.extensions["db_pool"], config, runs_counter)
    executor.start_reaper()
    app.extensions["executor"] = executor
    on_shutdown(app, executor.close)

    from orchestrator import runs, streams

    app.register_blueprint(runs.bp)
    app.register_blueprint(streams.bp)
    return app
