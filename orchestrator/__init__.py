"""The Orchestrator service: agent runs, queued, executed by any instance, and streamed over SSE."""

from pathlib import Path

from common import db, openapi, sse, state
from common.config import Config, ConfigError, load_config
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


def check_step_timing(config):
    """A run renews its lease at every step: a step slower than the lease would look like a dead run."""
    if config.run_step_delay_ms >= config.run_lease_seconds * 1000 // 2:
        raise ConfigError("RUN_STEP_DELAY_MS must be under half of RUN_LEASE_SECONDS (in milliseconds)")


def check_config(config):
    """Start-up checks beyond the settings' own (raises ConfigError): step timing, the agent, the tools."""
    check_step_timing(config)
    load_agent(config)
    load_tools(config.agent_tools, config.agent_approval_tools)


def create_app(config=None):
    """Build the Orchestrator app from `config` (a Config, a mapping of environment variables, or os.environ)."""
    if not isinstance(config, Config):
        config = load_config(config, require=REQUIRED_SETTINGS)
    check_step_timing(config)
    app = create_service_app("orchestrator", config, {"database": db.ping}, untimed_paths=UNTIMED_PATHS)
    db.init_app(app, config)
    openapi.init_app(app, Path(__file__).with_name("openapi.json"))
    sse.init_app(app, config)
    domain = state.of(app).metrics = metrics.create(app)
    agent, tools = load_agent(config, domain), load_tools(config.agent_tools, config.agent_approval_tools)
    executor = Executor(state.of(app).pool, state.broker(app), config, agent, tools, domain)
    on_shutdown(app, executor.close)
    executor.start()

    from orchestrator import inputs, runs, streams, threads

    app.register_blueprint(runs.bp)
    app.register_blueprint(inputs.bp)
    app.register_blueprint(streams.bp)
    app.register_blueprint(threads.bp)
    return app
