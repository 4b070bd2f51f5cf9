"""How each kind of setting is read from the environment and checked: one function per kind.

Each returns the value (or the default when the variable is unset or blank) and raises `ConfigError`
with one line naming the variable when the value is bad. Standard library only: gunicorn's master
imports it (through common.config and gunicorn.conf.py).
"""

import re
import urllib.parse

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


def integer(env, name, default, low, high):
    """A whole number in [low, high] (`parse_whole_number`'s rule), or `default` when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse_whole_number(raw, low, high)
    except ValueError as e:
        raise ConfigError(f"{name} {e}") from None


def boolean(env, name, default):
    """true/false (also 1/0, yes/no, on/off, any case), or `default` when unset."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def database_url(env, required):
    """A postgresql:// URL with a host (in the URL or as `host=`), or None when unset and not required."""
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


def upstream_url(env, name, required):
    """An http(s) URL with a host and at most a path, without its trailing slash, for a server-side upstream."""
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


def public_url(env, name, required):
    """A plain http(s) URL the browser is given and the page's CSP names; the bad value is never repeated."""
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


def jwt_secret(env, required):
    """The signing secret: at least MIN_SECRET_BYTES bytes, and never `.env.example`'s placeholder."""
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


def origins(env, default):
    """CORS_ORIGINS as a tuple of exact origins (no wildcard, path or regex character)."""
    raw = env.get("CORS_ORIGINS")
    if raw is None:
        return default
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        if not ORIGIN_RE.fullmatch(origin):
            raise ConfigError(f"CORS_ORIGINS entries must be exact origins like https://app.test, got {origin!r}")
    return origins


def text(env, name, default, choices=None):
    """Free text, or (with `choices`) one of them, upper-cased."""
    value = env.get(name, "").strip() or default
    if choices and value.upper() not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value.upper() if choices else value


def agent(env, default):
    """AGENT: a built-in agent's name or the user's own as `package.module:callable`."""
    value = env.get("AGENT", "").strip() or default
    if value not in BUILTIN_AGENTS and not IMPORT_REF_RE.fullmatch(value):
        raise ConfigError(f"AGENT must be simulated, openai or package.module:callable, got {value!r}")
    return value


def tools(env, name, default, refs=True):
    """A CSV of tool names (and, with `refs`, the user's tools as `package.module:name`)."""
    raw = env.get(name)
    if raw is None:
        return default
    tools = tuple(t.strip() for t in raw.split(",") if t.strip())
    for tool in tools:
        if not (TOOL_NAME_RE.fullmatch(tool) or (refs and IMPORT_REF_RE.fullmatch(tool))):
            kinds = "tool names or package.module:name" if refs else "tool names"
            raise ConfigError(f"{name} entries must be {kinds}, got {tool!r}")
    return tools
