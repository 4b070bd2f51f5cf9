"""Unit tests of common.logs: secrets never reach a log line, and every record is one JSON line.

`redact` is checked on structures (by key name) and on text (JSON, query strings, header lines,
bearer tokens, bare JWTs); `JsonFormatter` through real loggers, including the request id, extras,
exceptions and gunicorn's access records.
"""

import io
import json
import logging

import pytest
from gunicorn.glogging import SafeAtoms
from werkzeug.datastructures import Headers

from common.logs import REDACTED, JsonFormatter, configure_logging, redact, request_id_var

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
SECRETS = ("hunter22", "abc123secret", JWT, "eyJ")


class Captured:
    """The JSON lines one logger wrote."""

    def __init__(self, stream):
        self.stream = stream

    @property
    def text(self):
        return self.stream.getvalue()

    @property
    def lines(self):
        return self.text.splitlines()

    @property
    def entries(self):
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def capture():
    """`capture(name)` sends logger `name` to a JsonFormatter over a buffer; undone when the test ends."""
    undo = []

    def attach(name):
        logger = logging.getLogger(name)
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        saved = (logger.level, logger.propagate)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        undo.append((logger, handler, saved))
        return logger, Captured(stream)

    yield attach
    for logger, handler, (level, propagate) in undo:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def assert_no_secret(text):
    for secret in SECRETS:
        assert secret not in text, text


# --- redact: structures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "PASSWORD",
        "Authorization",
        "authorization",
        "refreshToken",
        "refresh_token",
        "REFRESHTOKEN",
        "access_token",
        "token",
        "Cookie",
        "cookie",
        "Set-Cookie",
        "jwt_secret",
    ],
)
def test_redact_replaces_values_of_sensitive_keys_in_any_case(key):
    assert redact({key: "hunter22", "userId": "alice"}) == {key: REDACTED, "userId": "alice"}


def test_redact_replaces_sensitive_values_whatever_their_type():
    assert redact({"password": 12345678, "token": None, "cookie": ["a", "b"], "Authorization": {"x": 1}}) == {
        "password": REDACTED,
        "token": REDACTED,
        "cookie": REDACTED,
        "Authorization": REDACTED,
    }


def test_redact_walks_nested_dicts_lists_and_tuples():
    value = {
        "user": "alice",
        "body": {"password": "hunter22", "items": [{"Cookie": "session=abc123secret", "n": 1}]},
        "headers": ({"Authorization": f"Bearer {JWT}"}, {"Accept": "application/json"}),
        "note": "token=abc123secret&page=2",
    }
    assert redact(value) == {
        "user": "alice",
        "body": {"password": REDACTED, "items": [{"Cookie": REDACTED, "n": 1}]},
        "headers": [{"Authorization": REDACTED}, {"Accept": "application/json"}],
        "note": f"token={REDACTED}&page=2",
    }


def test_redact_leaves_ordinary_values_and_its_input_alone():
    value = {"userId": "alice", "status": 401, "path": "/me", "ok": True, "ratio": 0.5, "none": None}
    original = json.loads(json.dumps(value))
    assert redact(value) == original
    secret = {"password": "hunter22"}
    redact(secret)
    assert secret == {"password": "hunter22"}
    assert redact("GET /health 200") == "GET /health 200"
    assert redact(42) == 42


# --- redact: text ----------------------------------------------------------------------------------


def test_redact_json_text():
    assert redact('{"password": "hunter22"}') == f'{{"password": "{REDACTED}"}}'
    text = redact('{"userId":"alice","refreshToken":"abc123secret","note":"x"}')
    assert text == f'{{"userId":"alice","refreshToken":"{REDACTED}","note":"x"}}'


def test_redact_json_text_with_escaped_quotes_in_the_value():
    text = redact(r'{"password": "hun\"ter22", "userId": "alice"}')
    assert "ter22" not in text and '"userId": "alice"' in text


def test_redact_query_strings():
    assert redact("?token=abc&x=1") == f"?token={REDACTED}&x=1"
    assert redact("/me?access_token=abc123secret&y=2") == f"/me?access_token={REDACTED}&y=2"
    assert redact("userId=alice&password=hunter22") == f"userId=alice&password={REDACTED}"
    assert redact("refreshToken=abc123secret") == f"refreshToken={REDACTED}"


@pytest.mark.parametrize(
    "text, secret",
    [
        (f"Authorization: Bearer {JWT}", JWT),
        ("authorization: bearer opaque-token_123", "opaque-token_123"),
        ("Authorization: Basic YWxpY2U6aHVudGVyMjI=", "YWxpY2U6aHVudGVyMjI="),
        (f"sent Bearer {JWT} twice", JWT),
    ],
    ids=["bearer_jwt", "bearer_opaque_lowercase", "basic", "bearer_in_text"],
)
def test_redact_bearer_and_basic_credentials(text, secret):
    redacted = redact(text)
    assert secret not in redacted and REDACTED in redacted, redacted


def test_redact_bare_jwt_anywhere():
    assert redact(JWT) == REDACTED
    assert redact(f"rejected {JWT} at login") == f"rejected {REDACTED} at login"


@pytest.mark.parametrize(
    "text, secret",
    [
        ('{"userId": "alice", "password": 12345678}', "12345678"),
        ("Cookie: session=abc123secret", "abc123secret"),
        ("{'userId': 'alice', 'password': 'hunter22'}", "hunter22"),
    ],
    ids=["json_number_password", "cookie_header_line", "python_dict_repr"],
)
def test_redact_other_text_forms_of_secrets(text, secret):
    """Secrets in text that is not key=value: a JSON number, a raw header line, a dict's repr."""
    redacted = redact(text)
    assert secret not in redacted, redacted


# --- JsonFormatter -------------------------------------------------------------------------------


def test_formatter_writes_one_json_object_per_record(capture):
    logger, out = capture("t")
    logger.info("hello %s", "world")
    logger.warning("two\nlines")
    assert len(out.lines) == 2
    first, second = out.entries
    assert (first["level"], first["logger"], first["msg"]) == ("INFO", "t", "hello world")
    assert first["ts"].endswith("Z")
    assert (second["level"], second["msg"]) == ("WARNING", "two\nlines")


def test_formatter_includes_the_request_id_when_set(capture):
    logger, out = capture("t")
    logger.info("outside")
    token = request_id_var.set("req-abc-123")
    try:
        logger.info("inside")
    finally:
        request_id_var.reset(token)
    outside, inside = out.entries
    assert outside.get("request_id") is None
    assert inside["request_id"] == "req-abc-123"


def test_formatter_includes_extras_redacted(capture):
    logger, out = capture("t")
    logger.info(
        "signed in",
        extra={
            "user": "alice",
            "status": 200,
            "password": "hunter22",
            "body": {"refreshToken": "abc123secret", "userId": "alice"},
            "auth_header": f"Bearer {JWT}",
        },
    )
    (entry,) = out.entries
    assert entry["user"] == "alice" and entry["status"] == 200
    assert entry["password"] == REDACTED
    assert entry["body"] == {"refreshToken": REDACTED, "userId": "alice"}
    assert JWT not in entry["auth_header"] and REDACTED in entry["auth_header"]
    assert_no_secret(out.text)


def test_formatter_redacts_the_formatted_message(capture):
    logger, out = capture("t")
    logger.info("login %s", "password=hunter22")
    logger.info("presented %s", JWT)
    logger.info("request %s", "/auth/token?token=abc123secret")
    assert len(out.lines) == 3
    assert out.entries[0]["msg"] == f"login password={REDACTED}"
    assert_no_secret(out.text)


def test_formatter_redacts_a_dict_logged_through_percent_s(capture):
    logger, out = capture("t")
    logger.info("body %s", {"userId": "alice", "password": "hunter22"})
    assert len(out.lines) == 1
    assert "alice" in out.text
    assert_no_secret(out.text)


def test_formatter_redacts_request_headers_in_extras(capture):
    """A werkzeug Headers object (what `request.headers` is) logged as an extra leaks nothing."""
    logger, out = capture("t")
    headers = Headers({"Authorization": f"Bearer {JWT}", "Cookie": "session=abc123secret", "Accept": "*/*"})
    logger.info("request", extra={"headers": headers})
    assert len(out.lines) == 1
    assert_no_secret(out.text)


def test_formatter_keeps_exceptions_on_one_line_and_redacted(capture):
    logger, out = capture("t")
    try:
        raise ValueError("bad login password=hunter22 token=abc123secret")
    except ValueError:
        logger.exception("unhandled error")
    assert len(out.lines) == 1
    (entry,) = out.entries
    assert entry["level"] == "ERROR" and entry["msg"] == "unhandled error"
    assert "Traceback" in entry["exc"] and "ValueError" in entry["exc"]
    assert_no_secret(out.text)


ACCESS_ATOMS = {
    "h": "127.0.0.1",
    "m": "GET",
    "U": "/me",
    "q": f"access_token={JWT}",
    "r": f"GET /me?access_token={JWT} HTTP/1.1",
    "s": "401",
    "B": "10",
    "D": "1234",
    "a": "curl/8.5.0",
    "{authorization}i": f"Bearer {JWT}",
    "{cookie}i": "session=abc123secret",
    "{x-request-id}o": "abc",
}


@pytest.mark.parametrize("wrap", [dict, SafeAtoms], ids=["plain_dict", "gunicorn_safe_atoms"])
def test_gunicorn_access_record_becomes_structured_json_without_the_token(capture, wrap):
    logger, out = capture("gunicorn.access")
    # What gunicorn's Logger.access does: the format string, with the atoms as the only argument.
    logger.info('%(h)s "%(r)s" %(s)s %(b)s "%(a)s"', wrap(ACCESS_ATOMS))
    assert len(out.lines) == 1
    (entry,) = out.entries
    assert entry["logger"] == "gunicorn.access"
    assert entry["method"] == "GET"
    assert entry["path"].startswith("/me")
    assert entry["path"] == f"/me?access_token={REDACTED}"
    assert entry["status"] == 401
    assert entry["request_id"] == "abc"
    assert entry["remote"] == "127.0.0.1"
    assert entry["duration_ms"] == pytest.approx(1.2)
    assert_no_secret(out.text)


def test_gunicorn_access_record_without_query_string(capture):
    logger, out = capture("gunicorn.access")
    logger.info("%(h)s", {**ACCESS_ATOMS, "U": "/health", "q": "", "s": "200"})
    (entry,) = out.entries
    assert (entry["path"], entry["status"]) == ("/health", 200)


def test_configure_logging_installs_one_json_handler_on_the_root_logger():
    root = logging.getLogger()
    saved = (root.level, root.handlers[:])
    try:
        configure_logging("WARNING")
        configure_logging("WARNING")
        json_handlers = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
        assert len(json_handlers) == 1
        assert root.level == logging.WARNING
    finally:
        root.setLevel(saved[0])
        root.handlers = saved[1]


def test_text_no_pattern_can_match_skips_the_patterns_and_every_pattern_needs_the_precheck():
    """redact() returns text without any of `"':=`, whitespace or `eyJ` untouched, unscanned. That is
    only safe while every pattern needs one of them: a new pattern must be added to this list, and to
    `_MAY_HOLD_SECRET` if it can match text without them."""
    from common import logs

    needs = ["quote", "colon", "equals", "whitespace", "eyJ"]  # what each of _PATTERNS needs, in order
    assert len(logs._PATTERNS) == len(needs), "a new redaction pattern: check it against _MAY_HOLD_SECRET"
    for text in ("/me", "python-requests/2.32.3", "req-abc_123.x", "curl/8.5.0"):
        assert not logs._MAY_HOLD_SECRET.search(text) and redact(text) == text
    for text in ('"token"', "Cookie:", "token=", "Bearer\tabc", "xeyJ"):
        assert logs._MAY_HOLD_SECRET.search(text)
