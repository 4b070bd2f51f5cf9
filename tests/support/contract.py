"""Helpers for the contract tests: the OpenAPI documents, the routes Flask serves, the fuzzing checks."""

import json
import re

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.services import ROOT, Service

SERVICES = ("api", "orchestrator", "preview")
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # Flask adds them to every route; the document need not list them
CONVERTER_RE = re.compile(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>")
# The one 5xx whose body is not the error shape, on purpose (see the documents): readiness says what fails.
NOT_ERROR_SHAPED = {("GET", "/ready")}


def document_path(service):
    """Where a service's OpenAPI document lives in the repository."""
    return ROOT / service / "openapi.json"


def load_document(service):
    """A service's OpenAPI document as a dict."""
    return json.loads(document_path(service).read_text(encoding="utf-8"))


def documented_operations(document):
    """{(METHOD, "/path/{param}")} of every operation the document describes (HEAD/OPTIONS left out)."""
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS and method.upper() not in IGNORED_METHODS
    }


def routed_operations(app):
    """{(METHOD, "/path/{param}")} of every route the Flask app serves, `<conv:name>` written `{name}`."""
    return {
        (method, CONVERTER_RE.sub(r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        for method in rule.methods - IGNORED_METHODS
    }


def is_error_shape(body):
    """True when `body` is {"error": {"code": <snake_case str>, "message": <str>, "field"?: <str>}}."""
    error = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and re.fullmatch(r"[a-z][a-z0-9_]*", error["code"]) is not None
        and isinstance(error.get("message"), str)
        and isinstance(error.get("field", ""), str)
    )


@schemathesis.check
def error_shape(ctx, response, case):
    """Every 4xx/5xx answer is JSON in the one error shape (readiness's 503 excepted)."""
    if response.status_code < 400 or (case.method.upper(), case.path) in NOT_ERROR_SHAPED:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), f"{response.status_code} with Content-Type {content_type!r}"
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{response.status_code} body is not JSON: {response.content[:200]!r}") from None
    assert is_error_shape(body), f"{response.status_code} body is not the error shape: {body!r}"
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    error_shape,
]


def fuzz_settings(max_examples):
    """Hypothesis settings for fuzzing a live service: bounded, reproducible, no example database on disk."""
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=max_examples,
        deadline=None,  # a real server under gunicorn: latency is not the property tested
        derandomize=True,  # the same examples every run, so CI never fails on a draw it cannot repeat
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


def start_fuzzed_service(module, env, log_dir):
    """Start `module` under gunicorn for a whole test module; the caller stops it."""
    return Service(module, env, log_dir / f"{module}.log").start()
