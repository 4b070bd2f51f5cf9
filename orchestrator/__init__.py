"""The Orchestrator service: agent runs, queued, executed by any instance, and streamed over SSE."""

from pathlib import Path

from common import db, openapi, sse
from common.config import Config, load_config
from common.lifecycle import on_shutdown
from common.service import create_service_app
from orchestrator import metrics
from orchestrator.agents import load_agent
from orchestrator.executor import Executor
from orchestrator.tools import load_tools

# Settings without which the Orchestrator must not start (checked before gunicorn binds).
REQUIRED_SETTINGS = ("DATABASE_URL", "JWT_SECRET")
# Streams would otherwise be measured as requests lasting minutes.
UNTIMED_PATHS = [r"^/runs/[^/]+/events$"]


def check_config(config):
    """Start-up checks beyond the settings' own: the agent and the tools load (raises ConfigError)."""
    load_agent(config)
    load_tools(config.agent_tools, config.agent_approval_tools)


def create_app(config=None):
    """Build the Orchestrator app from `config` (a Config, a mapping of environment variables, or os.environ)."""
    if not isinstance(config, Config):
        config = load_config(config, require=REQUIRED_SETTINGS)
    app = create_service_app("orchestrator", config, {"database": db.ping}, untimed_paths=UNTIMED_PATHS)
    db.init_app(app, config)
    openapi.init_app(app, Path(__file__).with_name("openapi.json"))
    sse.init_app(app, config)
    domain = metrics.create(app)
    agent, tools = load_agent(config, domain), load_tools(config.agent_tools, config.agent_approval_tools)
    executor = Executor(app.extensions["db_pool"], app.extensions["broker"], config, agent, tools, domain)
    app.extensions["executor"] = executor
    on_shutdown(app, executor.close)
    executor.start()

    from orchestrator import inputs, runs, streams, threads

    app.register_blueprint(runs.bp)
    app.register_blueprint(inputs.bp)
    app.register_blueprint(streams.bp)
    app.register_blueprint(threads.bp)
    return app
