"""common.access_log: gunicorn's access line gathers the nine fields the JSON line uses, and the JSON
formatter redacts the ones a client wrote. Driven through gunicorn's own `Logger` machinery."""

import datetime
import io
import json
import logging
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from common.access_log import AccessLogger
from common.logs import REDACTED, JsonFormatter

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


@pytest.fixture
def access_lines():
    """`access_lines(accesslog="-")`: an AccessLogger as gunicorn builds it, its access lines in a buffer."""
    loggers = [logging.getLogger("gunicorn.access"), logging.getLogger("gunicorn.error")]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    stream = io.StringIO()

    def make(accesslog="-"):
        cfg = Config()
        cfg.set("accesslog", accesslog)
        logger = AccessLogger(cfg)
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        logger.access_log.handlers = [handler]
        return logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]

    yield make
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers, lg.level, lg.propagate = handlers, level, propagate


def request(status="200 OK", query="", agent="probe/1.0", request_id="req-1"):
    """What gunicorn hands `access`: its response, request, WSGI environ and the time taken."""
    response = SimpleNamespace(status=status, headers=[("Content-Type", "application/json")], sent=42)
    if request_id:
        response.headers.append(("X-Request-Id", request_id))
    environ = {
        "REMOTE_ADDR": "10.0.0.7",
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/me",
        "QUERY_STRING": query,
        "HTTP_USER_AGENT": agent,
        "HTTP_AUTHORIZATION": f"Bearer {JWT}",
    }
    return response, SimpleNamespace(), environ, datetime.timedelta(seconds=1, microseconds=2500)


def test_the_access_line_carries_each_field_of_the_request(access_lines):
    logger, lines = access_lines()
    logger.access(*request(query="page=2"))
    [line] = lines()
    assert line["logger"] == "gunicorn.access" and line["msg"] == "request" and line["level"] == "INFO"
    assert {k: line[k] for k in ("remote", "method", "path", "status", "bytes", "request_id", "user_agent")} == {
        "remote": "10.0.0.7",
        "method": "GET",
        "path": "/me?page=2",
        "status": 200,
        "bytes": 42,
        "request_id": "req-1",
        "user_agent": "probe/1.0",
    }
    assert line["duration_ms"] == 1002.5


def test_what_a_client_wrote_is_redacted_and_request_headers_are_not_logged(access_lines):
    logger, lines = access_lines()
    logger.access(*request(status="401 Unauthorized", query=f"token={JWT}", agent=f"x Bearer {JWT}", request_id=JWT))
    [line] = lines()
    assert line["status"] == 401
    assert line["path"] == f"/me?token={REDACTED}"
    assert line["user_agent"] == f"x Bearer {REDACTED}"
    assert line["request_id"] == REDACTED
    assert JWT not in json.dumps(line) and "authorization" not in json.dumps(line).lower()


def test_a_response_without_a_request_id_logs_none(access_lines):
    logger, lines = access_lines()
    logger.access(*request(request_id=None))
    [line] = lines()
    assert line["request_id"] is None and line["path"] == "/me"


def test_no_line_when_the_access_log_is_off(access_lines):
    logger, lines = access_lines(accesslog=None)
    logger.access(*request())
    assert lines() == []
