"""Unit tests of common.config.load_config: defaults, and one clear line naming the variable for every bad value."""

import re
from pathlib import Path

import pytest

from common.config import Config, ConfigError, load_config
from common.config_parsers import PLACEHOLDER_SECRET

ROOT = Path(__file__).resolve().parent.parent.parent
GOOD_SECRET = "s" * 32
GOOD_URL = "postgresql://oneshot@db.internal:5432/oneshot"
REQUIRED = ("DATABASE_URL", "JWT_SECRET")


def config_error(env, name, require=()):
    """Load `env`, expect a ConfigError, check it is one line naming `name`, and return its message."""
    with pytest.raises(ConfigError) as excinfo:
        load_config(env, require=require)
    message = str(excinfo.value)
    assert "\n" not in message and "\r" not in message, message
    assert name in message, message
    return message


def test_defaults_from_an_empty_environment():
    config = load_config({})
    assert config == Config()
    assert config.database_url is None
    assert config.jwt_secret is None
    assert (config.jwt_issuer, config.jwt_audience) == ("oneshot", "oneshot")
    assert (config.access_ttl, config.refresh_ttl, config.session_max_age) == (900, 1_209_600, 2_592_000)
    assert config.cors_origins == ("http://localhost:3000",)
    assert config.trusted_proxy_hops == 0
    assert (config.login_max_failures, config.login_max_failures_per_address, config.login_window) == (10, 50, 900)
    assert config.max_body_bytes == 1_048_576
    assert config.auth_allow_passwordless is False
    assert config.log_level == "INFO"


def test_blank_values_fall_back_to_defaults():
    config = load_config({"ACCESS_TTL": "", "LOG_LEVEL": "  ", "AUTH_ALLOW_PASSWORDLESS": ""})
    assert (config.access_ttl, config.log_level, config.auth_allow_passwordless) == (900, "INFO", False)


def test_required_settings_present_are_returned():
    config = load_config({"DATABASE_URL": GOOD_URL, "JWT_SECRET": GOOD_SECRET}, require=REQUIRED)
    assert config.database_url == GOOD_URL
    assert config.jwt_secret == GOOD_SECRET


def test_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("ACCESS_TTL", "123")
    assert load_config().access_ttl == 123


@pytest.mark.parametrize("env", [{}, {"JWT_SECRET": ""}], ids=["absent", "empty"])
def test_missing_jwt_secret_when_required(env):
    config_error({"DATABASE_URL": GOOD_URL, **env}, "JWT_SECRET", require=REQUIRED)


def test_missing_jwt_secret_is_fine_when_not_required():
    assert load_config({}).jwt_secret is None


@pytest.mark.parametrize("secret", ["0123456789", "x" * 31], ids=["10_bytes", "31_bytes"])
def test_short_jwt_secret_is_refused(secret):
    config_error({"JWT_SECRET": secret}, "JWT_SECRET")
    config_error({"JWT_SECRET": secret}, "JWT_SECRET", require=REQUIRED[1:])


def test_secret_length_is_counted_in_bytes():
    assert load_config({"JWT_SECRET": "é" * 16}).jwt_secret == "é" * 16  # 32 bytes in UTF-8
    config_error({"JWT_SECRET": "é" * 15}, "JWT_SECRET")


@pytest.mark.parametrize("value", [PLACEHOLDER_SECRET, f" {PLACEHOLDER_SECRET} "], ids=["exact", "padded"])
def test_placeholder_secret_is_refused(value):
    assert len(PLACEHOLDER_SECRET.encode()) >= 32  # refused for being the placeholder, not for its length
    config_error({"JWT_SECRET": value}, "JWT_SECRET", require=REQUIRED[1:])


def test_env_example_ships_the_placeholder_secret():
    example = ROOT / ".env.example"
    if not example.exists():
        pytest.skip(".env.example is not written yet")
    lines = [line.strip() for line in example.read_text().splitlines()]
    assert f"JWT_SECRET={PLACEHOLDER_SECRET}" in lines


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://oneshot@db.internal:5432/oneshot",
        "postgres://user:pw@127.0.0.1/db",
        "postgresql://user@[::1]:5432/db",
        "postgresql:///oneshot?host=/var/run/postgresql",
    ],
)
def test_valid_database_urls_are_accepted(url):
    assert load_config({"DATABASE_URL": url}, require=REQUIRED[:1]).database_url == url


@pytest.mark.parametrize(
    "url",
    ["mysql://x", "not a url", "postgresql://host:notaport/db", "postgresql://host:99999/db", "postgresql:///db"],
    ids=["mysql_scheme", "not_a_url", "port_not_a_number", "port_out_of_range", "no_host"],
)
def test_bad_database_url_is_refused(url):
    config_error({"DATABASE_URL": url}, "DATABASE_URL")


def test_missing_database_url_when_required():
    config_error({"JWT_SECRET": GOOD_SECRET}, "DATABASE_URL", require=REQUIRED)


def test_database_url_error_does_not_echo_the_password():
    message = config_error({"DATABASE_URL": "mysql://user:hunter22@db/x"}, "DATABASE_URL")
    assert "hunter22" not in message


def test_cors_origins_are_parsed_into_exact_stripped_origins():
    config = load_config({"CORS_ORIGINS": " http://a.test:3000 , https://b.test "})
    assert config.cors_origins == ("http://a.test:3000", "https://b.test")


def test_cors_origins_ignore_empty_entries_and_a_trailing_slash():
    config = load_config({"CORS_ORIGINS": "http://a.test:3000/,,https://b.test,"})
    assert config.cors_origins == ("http://a.test:3000", "https://b.test")


@pytest.mark.parametrize(
    "origins",
    [
        "*",
        "null",
        "https://.*\\.example\\.com",
        "https://*.example.com",
        "http://a.test/app",
        "http://a.test:3000/path?x=1",
        "a.test",
        "ftp://a.test",
        "http://a.test,*",
        "http://a.test,null",
        "http://a.test\n/",
        "http://a.test\nhttp://b.test",
    ],
    ids=[
        "star",
        "null",
        "regex",
        "wildcard_subdomain",
        "with_path",
        "with_path_and_query",
        "no_scheme",
        "not_http",
        "star_among_good",
        "null_among_good",
        "newline_before_trailing_slash",
        "embedded_newline",
    ],
)
def test_cors_origins_must_be_exact_origins(origins):
    config_error({"CORS_ORIGINS": origins}, "CORS_ORIGINS")


INTEGERS = [
    ("ACCESS_TTL", "access_ttl", 1, 86_400),
    ("REFRESH_TTL", "refresh_ttl", 1, 31_536_000),
    ("SESSION_MAX_AGE", "session_max_age", 1, 31_536_000),
    ("TRUSTED_PROXY_HOPS", "trusted_proxy_hops", 0, 10),
    ("LOGIN_MAX_FAILURES", "login_max_failures", 1, 10_000),
    ("LOGIN_MAX_FAILURES_PER_ADDRESS", "login_max_failures_per_address", 1, 1_000_000),
    ("LOGIN_WINDOW", "login_window", 1, 86_400),
    ("MAX_BODY_BYTES", "max_body_bytes", 1024, 1 << 30),
    ("DB_POOL_SIZE", "db_pool_size", 1, 1000),
]


@pytest.mark.parametrize("name, attribute, low, high", INTEGERS, ids=[i[0] for i in INTEGERS])
def test_integer_bounds_are_accepted(name, attribute, low, high):
    assert getattr(load_config({name: str(low)}), attribute) == low
    assert getattr(load_config({name: f" {high} "}), attribute) == high


@pytest.mark.parametrize("name, attribute, low, high", INTEGERS, ids=[i[0] for i in INTEGERS])
@pytest.mark.parametrize(
    "make_value",
    [
        lambda low, high: "abc",
        lambda low, high: "1.5",
        lambda low, high: "15m",
        lambda low, high: "1\n2",
        lambda low, high: str(low - 1),
        lambda low, high: str(high + 1),
    ],
    ids=["letters", "decimal", "with_unit", "with_newline", "below_range", "above_range"],
)
def test_bad_integers_are_refused_naming_the_variable(name, attribute, low, high, make_value):
    config_error({name: make_value(low, high)}, name)


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on", " True "])
def test_boolean_true_spellings(raw):
    assert load_config({"AUTH_ALLOW_PASSWORDLESS": raw}).auth_allow_passwordless is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off"])
def test_boolean_false_spellings(raw):
    assert load_config({"AUTH_ALLOW_PASSWORDLESS": raw}).auth_allow_passwordless is False


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "tru"])
def test_bad_boolean_is_refused(raw):
    config_error({"AUTH_ALLOW_PASSWORDLESS": raw}, "AUTH_ALLOW_PASSWORDLESS")


@pytest.mark.parametrize("raw, level", [("debug", "DEBUG"), ("Warning", "WARNING"), ("ERROR", "ERROR")])
def test_log_level_is_normalised(raw, level):
    assert load_config({"LOG_LEVEL": raw}).log_level == level


def test_bad_log_level_is_refused():
    config_error({"LOG_LEVEL": "verbose"}, "LOG_LEVEL")


def test_issuer_and_audience_are_read():
    config = load_config({"JWT_ISSUER": "https://api.example.com", "JWT_AUDIENCE": "oneshot-web"})
    assert (config.jwt_issuer, config.jwt_audience) == ("https://api.example.com", "oneshot-web")


def test_every_config_error_message_is_one_line_naming_its_variable():
    """Whatever the bad value (even one full of newlines), the message is one line with the name in it."""
    nasty = "bad\nvalue\r\nTraceback (most recent call last):"
    for name in ["ACCESS_TTL", "AUTH_ALLOW_PASSWORDLESS", "LOG_LEVEL", "CORS_ORIGINS", "DATABASE_URL"]:
        message = config_error({name: nasty}, name)
        assert re.fullmatch(r"[^\r\n]+", message)


@pytest.mark.parametrize(
    "value",
    ["ftp://api:4000", "api:4000", "http://", "http://user:pw@api:4000", "http://api:4000/?x=1", "http://api:99999"],
)
def test_api_url_must_be_a_plain_http_url(value):
    with pytest.raises(ConfigError, match="API_URL") as error:
        load_config({"API_URL": value})
    assert "\n" not in str(error.value)


def test_api_url_keeps_its_path_prefix_without_a_trailing_slash():
    assert load_config({"API_URL": "https://gw.test:8443/oneshot/"}).api_url == "https://gw.test:8443/oneshot"
    with pytest.raises(ConfigError, match="API_URL is required"):
        load_config({}, require=("API_URL",))


# The browser is given these URLs in HTML attributes, and the web page's CSP lists them as sources.
PUBLIC_URLS = [("PUBLIC_API_URL", "public_api_url"), ("PUBLIC_ORCHESTRATOR_URL", "public_orchestrator_url")]
PUBLIC_URL_IDS = [name for name, _ in PUBLIC_URLS]


@pytest.mark.parametrize("name, attribute", PUBLIC_URLS, ids=PUBLIC_URL_IDS)
@pytest.mark.parametrize(
    "raw, kept",
    [
        ("https://api.example.com", "https://api.example.com"),
        ("http://127.0.0.1:4000", "http://127.0.0.1:4000"),
        ("https://gw.example.com:8443/oneshot/api", "https://gw.example.com:8443/oneshot/api"),
        ("https://api.example.com/", "https://api.example.com"),
        ("https://gw.example.com/oneshot/", "https://gw.example.com/oneshot"),
        (" http://localhost:4001 ", "http://localhost:4001"),
    ],
    ids=["origin", "with_port", "with_path_prefix", "trailing_slash", "path_and_trailing_slash", "padded"],
)
def test_public_urls_are_kept_without_a_trailing_slash(name, attribute, raw, kept):
    assert getattr(load_config({name: raw}), attribute) == kept
    assert getattr(load_config({name: raw}, require=(name,)), attribute) == kept


@pytest.mark.parametrize("name, attribute", PUBLIC_URLS, ids=PUBLIC_URL_IDS)
def test_unset_public_url_is_none_unless_required(name, attribute):
    assert getattr(load_config({}), attribute) is None
    assert getattr(load_config({name: "  "}), attribute) is None
    message = config_error({}, name, require=(name,))
    assert "required" in message
    config_error({name: " "}, name, require=(name,))


@pytest.mark.parametrize("name, attribute", PUBLIC_URLS, ids=PUBLIC_URL_IDS)
@pytest.mark.parametrize(
    "value",
    [
        "javascript:alert(1)",
        "http://a.test x",
        "http://a.test;script-src *",
        "http://a.test,http://b.test",
        "'self'",
        "*",
        'http://a.test"onload=',
        "http://a.test'onload=",
        "http://a.test/><script>",
        "http://a.test\nhttp://b.test",
        "ftp://a.test",
        "a.test",
        "//a.test",
        "http://user:pw@a.test",
        "http://a.test/?q=1",
        "http://a.test/#x",
        "http://a.test:99999",
        "http://a.test:0",
        "http://*.a.test",
        "http://",
    ],
    ids=[
        "javascript_scheme",
        "space",
        "semicolon",
        "comma",
        "csp_keyword",
        "star",
        "double_quote",
        "single_quote",
        "angle_brackets",
        "embedded_newline",
        "not_http",
        "no_scheme",
        "scheme_relative",
        "credentials",
        "query",
        "fragment",
        "port_out_of_range",
        "port_zero",
        "wildcard_host",
        "no_host",
    ],
)
def test_public_url_that_is_not_a_plain_url_is_refused(name, attribute, value):
    config_error({name: value}, name)
    config_error({name: value}, name, require=(name,))


# --- Agents --------------------------------------------------------------------------------------


def test_agent_settings_default_to_the_simulated_agent_and_the_built_in_tools():
    config = load_config({})
    assert config.agent == "simulated"
    assert config.agent_tools == ("calculator", "current_time", "search_runs")
    assert (config.agent_max_turns, config.agent_timeout, config.agent_flush_ms) == (8, 60, 50)
    assert config.run_concurrency == 16


def test_the_openai_agent_is_configured_from_its_settings():
    config = load_config(
        {
            "AGENT": "openai",
            "AGENT_BASE_URL": "http://localhost:11434/v1/",
            "AGENT_MODEL": "llama3.2",
            "AGENT_API_KEY": "sk-abc",
            "AGENT_TOOLS": " calculator , my.tools:weather ",
        }
    )
    assert (config.agent_base_url, config.agent_model, config.agent_api_key) == (
        "http://localhost:11434/v1",
        "llama3.2",
        "sk-abc",
    )
    assert config.agent_tools == ("calculator", "my.tools:weather")
    assert "sk-abc" not in repr(config)  # the key never reaches a log through the config's repr
    assert load_config({"AGENT_TOOLS": ""}).agent_tools == ()


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"AGENT": "gpt"}, "AGENT"),
        ({"AGENT": "my module:agent"}, "AGENT"),
        ({"AGENT": "openai"}, "AGENT_BASE_URL"),
        ({"AGENT": "openai", "AGENT_BASE_URL": "http://localhost:11434/v1"}, "AGENT_MODEL"),
        ({"AGENT": "openai", "AGENT_BASE_URL": "ftp://model", "AGENT_MODEL": "m"}, "AGENT_BASE_URL"),
        ({"AGENT_TOOLS": "calculator,rm -rf"}, "AGENT_TOOLS"),
        ({"AGENT_MAX_TURNS": "0"}, "AGENT_MAX_TURNS"),
        ({"AGENT_TIMEOUT": "soon"}, "AGENT_TIMEOUT"),
        ({"AGENT_FLUSH_MS": "-1"}, "AGENT_FLUSH_MS"),
        ({"RUN_CONCURRENCY": "0"}, "RUN_CONCURRENCY"),
    ],
)
def test_bad_agent_settings_are_refused_naming_the_variable(env, name):
    config_error(env, name)


def test_the_step_delay_rule_is_the_orchestrators_alone():
    """A step slower than half the lease would look like a dead run: only the Orchestrator runs steps."""
    from orchestrator import check_config, create_app

    slow = {"RUN_STEP_DELAY_MS": "1000", "RUN_LEASE_SECONDS": "2"}
    config = load_config(slow)  # the API, the Preview Manager and the Web UI start with it
    assert (config.run_step_delay_ms, config.run_lease_seconds) == (1000, 2)
    with pytest.raises(ConfigError, match="^RUN_STEP_DELAY_MS must be under half of RUN_LEASE_SECONDS"):
        check_config(config)  # what preflight runs for the Orchestrator
    with pytest.raises(ConfigError, match="^RUN_STEP_DELAY_MS must be under half"):
        create_app({**slow, "DATABASE_URL": GOOD_URL, "JWT_SECRET": GOOD_SECRET})  # before any connection
    check_config(load_config({**slow, "RUN_STEP_DELAY_MS": "999"}))
