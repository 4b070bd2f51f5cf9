"""common.errors: every failure leaves as {"error": {"code", "message"}} JSON, and nothing of our
internals (a traceback, an exception's text) reaches the client."""

import logging

import psycopg
import pytest
from flask import abort, request

from common.config import load_config
from common.errors import ApiError, invalid_field, unauthorized
from common.service import create_service_app

SECRET_DETAIL = "connection to 10.0.0.5 failed: password authentication failed for user oneshot"


@pytest.fixture(scope="module")
def client():
    """A service skeleton whose routes fail in each way a view can."""
    app = create_service_app(__name__, load_config({"MAX_BODY_BYTES": "1024"}))
    failures = {
        "api-error": lambda: ApiError(409, "run_active", "A run is active.", {"Retry-After": "3"}, None, {"runId": 7}),
        "field": lambda: invalid_field("steps", "must be between 1 and 20"),
        "token": lambda: unauthorized("The access token is invalid or expired."),
        "no-token": lambda: unauthorized("Authentication required.", invalid_token=False),
        "bug": lambda: RuntimeError(f"a bug whose text names {SECRET_DETAIL}"),
        "database": lambda: psycopg.OperationalError(SECRET_DETAIL),
    }

    @app.route("/fail/<kind>", methods=["GET", "POST"])
    def fail(kind):
        if kind == "teapot":
            abort(418)
        if kind == "read":
            return {"bytes": len(request.get_data())}
        raise failures[kind]()

    return app.test_client()


def error_of(response, status):
    """The error object of a JSON error response with `status`."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert list(body) == ["error"]
    return body["error"]


def test_an_api_error_keeps_its_status_code_message_headers_and_details(client):
    response = client.get("/fail/api-error")
    assert error_of(response, 409) == {"code": "run_active", "message": "A run is active.", "runId": 7}
    assert response.headers["Retry-After"] == "3"


def test_an_invalid_field_is_a_400_naming_the_field(client):
    assert error_of(client.get("/fail/field"), 400) == {
        "code": "invalid_field",
        "message": "steps: must be between 1 and 20",
        "field": "steps",
    }


def test_a_bad_token_and_a_missing_one_are_401s_with_their_own_challenge(client):
    bad, missing = client.get("/fail/token"), client.get("/fail/no-token")
    assert error_of(bad, 401)["code"] == "invalid_token"
    assert bad.headers["WWW-Authenticate"] == 'Bearer realm="oneshot", error="invalid_token"'
    assert error_of(missing, 401)["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="oneshot"'


def test_werkzeug_s_own_errors_get_snake_case_codes(client):
    assert error_of(client.get("/no/such/path"), 404)["code"] == "not_found"
    wrong_method = client.delete("/fail/field")
    assert error_of(wrong_method, 405)["code"] == "method_not_allowed"
    assert set(wrong_method.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert error_of(client.post("/fail/read", data="x" * 2048), 413)["code"] == "payload_too_large"
    assert error_of(client.get("/fail/teapot"), 418)["code"] == "http_error"


def test_an_unexpected_exception_is_a_500_without_its_text_or_a_traceback(client, caplog):
    with caplog.at_level(logging.ERROR, logger="common.errors"):
        response = client.get("/fail/bug")
    assert error_of(response, 500) == {"code": "internal_error", "message": "Something went wrong on our side."}
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and "RuntimeError" not in body and SECRET_DETAIL not in body
    [record] = [r for r in caplog.records if r.name == "common.errors"]
    assert record.message == "unhandled error" and record.exc_info  # the operator gets the traceback


def test_a_database_failure_is_a_503_that_names_no_server(client):
    response = client.get("/fail/database")
    assert error_of(response, 503) == {
        "code": "database_unavailable",
        "message": "The database is unavailable; try again shortly.",
    }
    assert "10.0.0.5" not in response.get_data(as_text=True)
