"""One JSON error shape for every failure: {"error": {"code": ..., "message": ...}}."""

import logging

import psycopg
from flask import jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

REALM = 'Bearer realm="oneshot"'

# snake_case codes for the HTTP errors werkzeug raises on its own (routing, body limits, ...).
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """A failure the client should see: HTTP status, snake_case code, human message."""

    def __init__(self, status, code, message, headers=None, field=None, details=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.field = field
        self.details = details or {}  # more members of the error object, e.g. {"activeRunId": ...}


def invalid_field(field, message):
    """400 for one bad request field, naming it."""
    return ApiError(400, "invalid_field", f"{field}: {message}", field=field)


def unauthorized(message, invalid_token=True):
    """401 with the WWW-Authenticate challenge; `invalid_token` when a token was presented but bad."""
    challenge = f'{REALM}, error="invalid_token"' if invalid_token else REALM
    code = "invalid_token" if invalid_token else "unauthorized"
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


def error_response(status, code, message, headers=None, field=None, details=None):
    """Build the JSON error response."""
    body = {"code": code, "message": message, **(details or {})}
    if field:
        body["field"] = field
    response = jsonify(error=body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def init_app(app):
    """Register handlers so that every error, expected or not, leaves as JSON without internals."""

    @app.errorhandler(ApiError)
    def handle_api_error(e):
        return error_response(e.status, e.code, e.message, e.headers, e.field, e.details)

    @app.errorhandler(HTTPException)
    def handle_http_exception(e):
        headers = {k: v for k, v in e.get_headers() if k.lower() in ("allow", "retry-after")}
        code = HTTP_CODES.get(e.code, "http_error")
        return error_response(e.code, code, e.description or e.name, headers)

    @app.errorhandler(psycopg.OperationalError)  # PoolTimeout included
    def handle_database_down(e):
        log.error("database unavailable: %s", e)
        return error_response(503, "database_unavailable", "The database is unavailable; try again shortly.")

    @app.errorhandler(Exception)
    def handle_unexpected(e):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")
