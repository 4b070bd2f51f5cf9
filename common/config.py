"""Settings, read once from the environment into a small typed object.

A bad value stops start-up with one line naming the variable: `ConfigError` carries that line.
Each kind of value is read and checked in `common.config_parsers`. Standard library only, so
gunicorn's master may use it safely.
"""

import os
from dataclasses import dataclass, field

from common import config_parsers as cp
from common.config_parsers import ConfigError


@dataclass(frozen=True)
class Config:
    """Every setting a oneshot service reads; durations are in seconds."""

    database_url: str | None = None
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_issuer: str = "oneshot"
    jwt_audience: str = "oneshot"
    access_ttl: int = 900
    refresh_ttl: int = 1_209_600
    session_max_age: int = 2_592_000
    cors_origins: tuple[str, ...] = ("http://localhost:3000",)
    trusted_proxy_hops: int = 0
    login_max_failures: int = 10
    login_max_failures_per_address: int = 50
    login_window: int = 900
    max_body_bytes: int = 1_048_576
    db_pool_size: int = 10
    sse_heartbeat_seconds: int = 15
    sse_max_streams_per_user: int = 10
    sse_max_stream_seconds: int = 3600
    run_step_delay_ms: int = 400
    run_lease_seconds: int = 15
    api_url: str | None = None
    public_api_url: str | None = None
    public_orchestrator_url: str | None = None
    proxy_connect_timeout: int = 5
    proxy_read_timeout: int = 30
    proxy_stream_idle_timeout: int = 60
    run_concurrency: int = 16
    agent: str = "simulated"
    agent_base_url: str | None = None
    agent_api_key: str | None = field(default=None, repr=False)  # a secret: never in a repr or a log
    agent_model: str | None = None
    agent_system_prompt: str | None = None
    agent_max_turns: int = 8
    agent_timeout: int = 60
    agent_tools: tuple[str, ...] = ("calculator", "current_time", "search_runs")
    agent_flush_ms: int = 50
    agent_approval_tools: tuple[str, ...] = ()
    run_input_timeout: int = 86_400
    auth_allow_passwordless: bool = False
    log_level: str = "INFO"


def _check_agent(config):
    """The model agent needs to know where the model is and which one to ask."""
    if config.agent != "openai":
        return
    if not config.agent_base_url:
        raise ConfigError("AGENT_BASE_URL is required with AGENT=openai (like http://localhost:11434/v1)")
    if not config.agent_model:
        raise ConfigError("AGENT_MODEL is required with AGENT=openai (like llama3.2 or gpt-4o-mini)")


def load_config(env=None, require=()):
    """Build a `Config` from `env` (default `os.environ`); `require` names settings that must be set."""
    env = os.environ if env is None else env
    config = _read(env, require)
    _check_agent(config)
    return config


def _read(env, require):
    day, year = 86_400, 31_536_000
    return Config(
        database_url=cp.database_url(env, "DATABASE_URL" in require),
        jwt_secret=cp.jwt_secret(env, "JWT_SECRET" in require),
        jwt_issuer=cp.text(env, "JWT_ISSUER", Config.jwt_issuer),
        jwt_audience=cp.text(env, "JWT_AUDIENCE", Config.jwt_audience),
        access_ttl=cp.integer(env, "ACCESS_TTL", Config.access_ttl, 1, day),
        refresh_ttl=cp.integer(env, "REFRESH_TTL", Config.refresh_ttl, 1, year),
        session_max_age=cp.integer(env, "SESSION_MAX_AGE", Config.session_max_age, 1, year),
        cors_origins=cp.origins(env, Config.cors_origins),
        trusted_proxy_hops=cp.integer(env, "TRUSTED_PROXY_HOPS", 0, 0, 10),
        login_max_failures=cp.integer(env, "LOGIN_MAX_FAILURES", Config.login_max_failures, 1, 10_000),
        login_max_failures_per_address=cp.integer(
            env, "LOGIN_MAX_FAILURES_PER_ADDRESS", Config.login_max_failures_per_address, 1, 1_000_000
        ),
        login_window=cp.integer(env, "LOGIN_WINDOW", Config.login_window, 1, day),
        max_body_bytes=cp.integer(env, "MAX_BODY_BYTES", Config.max_body_bytes, 1024, 1 << 30),
        db_pool_size=cp.integer(env, "DB_POOL_SIZE", Config.db_pool_size, 1, 1000),
        sse_heartbeat_seconds=cp.integer(env, "SSE_HEARTBEAT_SECONDS", Config.sse_heartbeat_seconds, 1, 300),
        sse_max_streams_per_user=cp.integer(
            env, "SSE_MAX_STREAMS_PER_USER", Config.sse_max_streams_per_user, 1, 100_000
        ),
        sse_max_stream_seconds=cp.integer(env, "SSE_MAX_STREAM_SECONDS", Config.sse_max_stream_seconds, 1, day),
        run_step_delay_ms=cp.integer(env, "RUN_STEP_DELAY_MS", Config.run_step_delay_ms, 0, 60_000),
        run_lease_seconds=cp.integer(env, "RUN_LEASE_SECONDS", Config.run_lease_seconds, 1, 3600),
        api_url=cp.upstream_url(env, "API_URL", "API_URL" in require),
        public_api_url=cp.public_url(env, "PUBLIC_API_URL", "PUBLIC_API_URL" in require),
        public_orchestrator_url=cp.public_url(env, "PUBLIC_ORCHESTRATOR_URL", "PUBLIC_ORCHESTRATOR_URL" in require),
        proxy_connect_timeout=cp.integer(env, "PROXY_CONNECT_TIMEOUT", Config.proxy_connect_timeout, 1, 300),
        proxy_read_timeout=cp.integer(env, "PROXY_READ_TIMEOUT", Config.proxy_read_timeout, 1, 3600),
        proxy_stream_idle_timeout=cp.integer(
            env, "PROXY_STREAM_IDLE_TIMEOUT", Config.proxy_stream_idle_timeout, 1, 86_400
        ),
        run_concurrency=cp.integer(env, "RUN_CONCURRENCY", Config.run_concurrency, 1, 10_000),
        agent=cp.agent(env, Config.agent),
        agent_base_url=cp.upstream_url(env, "AGENT_BASE_URL", False),
        agent_api_key=env.get("AGENT_API_KEY", "").strip() or None,
        agent_model=env.get("AGENT_MODEL", "").strip() or None,
        agent_system_prompt=env.get("AGENT_SYSTEM_PROMPT", "").strip() or None,
        agent_max_turns=cp.integer(env, "AGENT_MAX_TURNS", Config.agent_max_turns, 1, 100),
        agent_timeout=cp.integer(env, "AGENT_TIMEOUT", Config.agent_timeout, 1, 3600),
        agent_tools=cp.tools(env, "AGENT_TOOLS", Config.agent_tools),
        agent_flush_ms=cp.integer(env, "AGENT_FLUSH_MS", Config.agent_flush_ms, 0, 10_000),
        agent_approval_tools=cp.tools(env, "AGENT_APPROVAL_TOOLS", (), refs=False),
        run_input_timeout=cp.integer(env, "RUN_INPUT_TIMEOUT", Config.run_input_timeout, 1, 30 * day),
        auth_allow_passwordless=cp.boolean(env, "AUTH_ALLOW_PASSWORDLESS", False),
        log_level=cp.text(env, "LOG_LEVEL", Config.log_level, cp.LOG_LEVELS),
    )
