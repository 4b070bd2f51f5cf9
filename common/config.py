"""Settings, read once from the environment into a small typed object.

A bad value stops start-up with one line naming the variable: `ConfigError` carries that line.
This module imports nothing but the standard library, so gunicorn's master may use it safely.
"""

import os
import re
import urllib.parse
from dataclasses import dataclass, field

# The value `.env.example` ships with; a service refuses to start with it.
PLACEHOLDER_SECRET = "replace-me-make-up-writes-a-random-one"
MIN_SECRET_BYTES = 32

# An exact origin: scheme, host, optional port. No paths, wildcards or regex characters, because
# flask-cors treats such strings as unanchored regular expressions.
ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:\d{1,5})?")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# AGENT: a built-in agent, or the user's own as `package.module:callable`.
BUILTIN_AGENTS = ("simulated", "openai")
IMPORT_REF_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
# AGENT_TOOLS entries: a built-in tool's name, or a user's tool as `package.module:name`.
TOOL_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
# A URL the browser is given and the web page's CSP names: characters that could end a CSP source
# expression or an HTML attribute (space, ';', ',', quotes) are impossible by construction.
PUBLIC_URL_RE = re.compile(r"https?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:\d{1,5})?(/[A-Za-z0-9._~%-]+)*/?")
# A whole number as text: ASCII digits, an optional '-', no '+' or '_' (which int() would take);
# at most 18 digits, more than any range here allows (and int() of thousands of digits is slow).
WHOLE_NUMBER_RE = re.compile(r"-?[0-9]{1,18}")


class ConfigError(ValueError):
    """A setting is missing or invalid; the message is one line naming the variable."""


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


def parse_whole_number(raw, low, high):
    """`raw` (an int, or text of ASCII digits with an optional '-') as an int in [low, high].

    Raises ValueError with a message to follow a name ("must be ..."). The one integer rule of the
    settings, gunicorn.conf.py and request fields (common.validation); ASCII digits only: str.isdigit()
    is true of '²' (which int() refuses) and int() takes '١'. Standard library only: gunicorn's master runs it.
    """
    if isinstance(raw, str) and WHOLE_NUMBER_RE.fullmatch(raw):
        value = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        raise ValueError(f"must be a whole number, got {raw!r}")
    if not low <= value <= high:
        raise ValueError(f"must be between {low} and {high}, got {value}")
    return value


def _integer(env, name, default, low, high):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse_whole_number(raw, low, high)
    except ValueError as e:
        raise ConfigError(f"{name} {e}") from None


def _boolean(env, name, default):
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _database_url(env, required):
    raw = env.get("DATABASE_URL", "").strip()
    if not raw:
        if required:
            raise ConfigError("DATABASE_URL is required (postgresql://user@host:5432/dbname)")
        return None
    try:
        parts = urllib.parse.urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigError("DATABASE_URL is not a valid URL") from None
    has_host = parts.hostname or "host=" in parts.query
    if parts.scheme not in ("postgres", "postgresql") or not has_host:
        raise ConfigError("DATABASE_URL must look like postgresql://user@host:5432/dbname")
    return raw


def _upstream_url(env, name, required):
    raw = env.get(name, "").strip()
    if not raw:
        if required:
            raise ConfigError(f"{name} is required (like http://api:4000)")
        return None
    try:
        parts = urllib.parse.urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be an http(s) URL with a host and at most a path, like http://api:4000")
    return raw.rstrip("/")


def _public_url(env, name, required):
    raw = env.get(name, "").strip()
    if not raw:
        if required:
            raise ConfigError(f"{name} is required: the URL browsers use to reach it, like https://api.example.com")
        return None
    try:
        valid = PUBLIC_URL_RE.fullmatch(raw) and urllib.parse.urlsplit(raw).port != 0
    except ValueError:  # a port past 65535
        valid = False
    if not valid:
        # The value is not repeated: it could hold a password (user:password@host).
        raise ConfigError(f"{name} must be a plain http(s) URL: a host, an optional port and path, nothing else")
    return raw.rstrip("/")


def _jwt_secret(env, required):
    raw = env.get("JWT_SECRET", "")
    if not raw:
        if required:
            raise ConfigError("JWT_SECRET is required: at least 32 random bytes (make up writes one)")
        return None
    if raw.strip() == PLACEHOLDER_SECRET:
        raise ConfigError("JWT_SECRET is still the .env.example placeholder: generate a random one")
    if len(raw.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes, got {len(raw.encode())}")
    return raw


def _origins(env):
    raw = env.get("CORS_ORIGINS")
    if raw is None:
        return Config.cors_origins
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        if not ORIGIN_RE.fullmatch(origin):
            raise ConfigError(f"CORS_ORIGINS entries must be exact origins like https://app.test, got {origin!r}")
    return origins


def _text(env, name, default, choices=None):
    value = env.get(name, "").strip() or default
    if choices and value.upper() not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value.upper() if choices else value


def _agent(env):
    value = env.get("AGENT", "").strip() or Config.agent
    if value not in BUILTIN_AGENTS and not IMPORT_REF_RE.fullmatch(value):
        raise ConfigError(f"AGENT must be simulated, openai or package.module:callable, got {value!r}")
    return value


def _tools(env, name="AGENT_TOOLS", default=Config.agent_tools, refs=True):
    raw = env.get(name)
    if raw is None:
        return default
    tools = tuple(t.strip() for t in raw.split(",") if t.strip())
    for tool in tools:
        if not (TOOL_NAME_RE.fullmatch(tool) or (refs and IMPORT_REF_RE.fullmatch(tool))):
            kinds = "tool names or package.module:name" if refs else "tool names"
            raise ConfigError(f"{name} entries must be {kinds}, got {tool!r}")
    return tools


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
        database_url=_database_url(env, "DATABASE_URL" in require),
        jwt_secret=_jwt_secret(env, "JWT_SECRET" in require),
        jwt_issuer=_text(env, "JWT_ISSUER", Config.jwt_issuer),
        jwt_audience=_text(env, "JWT_AUDIENCE", Config.jwt_audience),
        access_ttl=_integer(env, "ACCESS_TTL", Config.access_ttl, 1, day),
        refresh_ttl=_integer(env, "REFRESH_TTL", Config.refresh_ttl, 1, year),
        session_max_age=_integer(env, "SESSION_MAX_AGE", Config.session_max_age, 1, year),
        cors_origins=_origins(env),
        trusted_proxy_hops=_integer(env, "TRUSTED_PROXY_HOPS", 0, 0, 10),
        login_max_failures=_integer(env, "LOGIN_MAX_FAILURES", Config.login_max_failures, 1, 10_000),
        login_max_failures_per_address=_integer(
            env, "LOGIN_MAX_FAILURES_PER_ADDRESS", Config.login_max_failures_per_address, 1, 1_000_000
        ),
        login_window=_integer(env, "LOGIN_WINDOW", Config.login_window, 1, day),
        max_body_bytes=_integer(env, "MAX_BODY_BYTES", Config.max_body_bytes, 1024, 1 << 30),
        db_pool_size=_integer(env, "DB_POOL_SIZE", Config.db_pool_size, 1, 1000),
        sse_heartbeat_seconds=_integer(env, "SSE_HEARTBEAT_SECONDS", Config.sse_heartbeat_seconds, 1, 300),
        sse_max_streams_per_user=_integer(env, "SSE_MAX_STREAMS_PER_USER", Config.sse_max_streams_per_user, 1, 100_000),
        sse_max_stream_seconds=_integer(env, "SSE_MAX_STREAM_SECONDS", Config.sse_max_stream_seconds, 1, day),
        run_step_delay_ms=_integer(env, "RUN_STEP_DELAY_MS", Config.run_step_delay_ms, 0, 60_000),
        run_lease_seconds=_integer(env, "RUN_LEASE_SECONDS", Config.run_lease_seconds, 1, 3600),
        api_url=_upstream_url(env, "API_URL", "API_URL" in require),
        public_api_url=_public_url(env, "PUBLIC_API_URL", "PUBLIC_API_URL" in require),
        public_orchestrator_url=_public_url(env, "PUBLIC_ORCHESTRATOR_URL", "PUBLIC_ORCHESTRATOR_URL" in require),
        proxy_connect_timeout=_integer(env, "PROXY_CONNECT_TIMEOUT", Config.proxy_connect_timeout, 1, 300),
        proxy_read_timeout=_integer(env, "PROXY_READ_TIMEOUT", Config.proxy_read_timeout, 1, 3600),
        proxy_stream_idle_timeout=_integer(
            env, "PROXY_STREAM_IDLE_TIMEOUT", Config.proxy_stream_idle_timeout, 1, 86_400
        ),
        run_concurrency=_integer(env, "RUN_CONCURRENCY", Config.run_concurrency, 1, 10_000),
        agent=_agent(env),
        agent_base_url=_upstream_url(env, "AGENT_BASE_URL", False),
        agent_api_key=env.get("AGENT_API_KEY", "").strip() or None,
        agent_model=env.get("AGENT_MODEL", "").strip() or None,
        agent_system_prompt=env.get("AGENT_SYSTEM_PROMPT", "").strip() or None,
        agent_max_turns=_integer(env, "AGENT_MAX_TURNS", Config.agent_max_turns, 1, 100),
        agent_timeout=_integer(env, "AGENT_TIMEOUT", Config.agent_timeout, 1, 3600),
        agent_tools=_tools(env),
        agent_flush_ms=_integer(env, "AGENT_FLUSH_MS", Config.agent_flush_ms, 0, 10_000),
        agent_approval_tools=_tools(env, "AGENT_APPROVAL_TOOLS", (), refs=False),
        run_input_timeout=_integer(env, "RUN_INPUT_TIMEOUT", Config.run_input_timeout, 1, 30 * day),
        auth_allow_passwordless=_boolean(env, "AUTH_ALLOW_PASSWORDLESS", False),
        log_level=_text(env, "LOG_LEVEL", Config.log_level, LOG_LEVELS),
    )
