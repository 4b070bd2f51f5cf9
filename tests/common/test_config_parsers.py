"""common.config_parsers: each kind of setting read from an environment mapping, or refused with one line
naming the variable. (`load_config` as a whole, with every variable, is tests/common/test_config.py.)"""

import pytest

from common import config_parsers as cp
from common.config_parsers import PLACEHOLDER_SECRET, ConfigError


def refused(parse, *args):
    """The one-line message `parse(*args)` is refused with."""
    with pytest.raises(ConfigError) as caught:
        parse(*args)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("raw", "expected"), [("", 7), ("  ", 7), ("3", 3), (" 10 ", 10)])
def test_integer_takes_its_default_when_unset_or_blank(raw, expected):
    assert cp.integer({"N": raw}, "N", 7, 1, 10) == expected


@pytest.mark.parametrize("raw", ["0", "11", "1.5", "1_0", "+5", "²", "١", "ten"])
def test_integer_refuses_what_is_not_a_whole_number_in_range_naming_the_variable(raw):
    assert refused(cp.integer, {"N": raw}, "N", 7, 1, 10).startswith("N must be")


@pytest.mark.parametrize(("raw", "expected"), [("TRUE", True), ("yes", True), ("1", True), ("off", False), ("", None)])
def test_boolean_reads_the_usual_spellings(raw, expected):
    assert cp.boolean({"B": raw}, "B", None) is expected


def test_boolean_refuses_anything_else():
    assert refused(cp.boolean, {"B": "maybe"}, "B", False) == "B must be true or false, got 'maybe'"


def test_database_url_is_required_only_when_asked():
    assert cp.database_url({}, required=False) is None
    assert refused(cp.database_url, {}, True).startswith("DATABASE_URL is required")


@pytest.mark.parametrize("raw", ["mysql://h/db", "postgresql:///db", "postgresql://h:99999999/db"])
def test_database_url_must_be_postgresql_with_a_host(raw):
    assert refused(cp.database_url, {"DATABASE_URL": raw}, True).startswith("DATABASE_URL")


def test_database_url_with_a_socket_host_in_the_query_is_taken():
    raw = "postgresql:///db?host=/var/run/postgresql"
    assert cp.database_url({"DATABASE_URL": raw}, True) == raw


def test_upstream_url_loses_its_trailing_slash_and_refuses_credentials_or_a_query():
    assert cp.upstream_url({"U": "http://api:4000/"}, "U", True) == "http://api:4000"
    for raw in ("http://user:pw@api:4000", "http://api:4000/?x=1", "ftp://api", "http://"):
        assert refused(cp.upstream_url, {"U": raw}, "U", True).startswith("U ")


def test_public_url_never_repeats_the_bad_value():
    message = refused(cp.public_url, {"P": "https://user:secret@host"}, "P", True)
    assert "secret" not in message and message.startswith("P must be a plain http(s) URL")


def test_public_url_refuses_characters_that_could_end_a_csp_source():
    for raw in ("https://a.test;script-src", "https://a.test x", "https://a.test/'"):
        refused(cp.public_url, {"P": raw}, "P", True)
    assert cp.public_url({"P": "https://a.test/app/"}, "P", True) == "https://a.test/app"


def test_jwt_secret_refuses_short_and_placeholder_secrets_without_repeating_them():
    assert refused(cp.jwt_secret, {"JWT_SECRET": "x" * 31}, True) == "JWT_SECRET must be at least 32 bytes, got 31"
    assert "placeholder" in refused(cp.jwt_secret, {"JWT_SECRET": PLACEHOLDER_SECRET}, True)
    assert cp.jwt_secret({"JWT_SECRET": "s" * 32}, True) == "s" * 32


def test_origins_are_exact_and_stripped():
    env = {"CORS_ORIGINS": " https://a.test/ , http://localhost:3000 ,"}
    assert cp.origins(env, ()) == ("https://a.test", "http://localhost:3000")
    assert cp.origins({}, ("http://default.test",)) == ("http://default.test",)
    for raw in ("*", "https://.*\\.a\\.test", "https://a.test/path", "null"):
        assert refused(cp.origins, {"CORS_ORIGINS": raw}, ()).startswith("CORS_ORIGINS entries must be exact origins")


def test_text_with_choices_is_upper_cased_or_refused():
    assert cp.text({"LOG_LEVEL": "debug"}, "LOG_LEVEL", "INFO", cp.LOG_LEVELS) == "DEBUG"
    assert refused(cp.text, {"LOG_LEVEL": "loud"}, "LOG_LEVEL", "INFO", cp.LOG_LEVELS).startswith("LOG_LEVEL must be")


def test_agent_is_built_in_or_an_import_reference():
    assert cp.agent({}, "simulated") == "simulated"
    assert cp.agent({"AGENT": "my_pkg.agents:run"}, "simulated") == "my_pkg.agents:run"
    assert refused(cp.agent, {"AGENT": "my_pkg.agents"}, "simulated").startswith("AGENT must be")


def test_tools_take_names_and_with_refs_the_users_own():
    env = {"T": "calculator, my_pkg.tools:shout"}
    assert cp.tools(env, "T", ()) == ("calculator", "my_pkg.tools:shout")
    assert refused(cp.tools, env, "T", (), False) == "T entries must be tool names, got 'my_pkg.tools:shout'"
    assert cp.tools({}, "T", ("calculator",)) == ("calculator",)
