"""Request plumbing every service shares: request ids, security headers, JSON bodies, client address."""

import ipaddress
import json
import re
import uuid

from flask import current_app, g, request

from common.errors import ApiError, invalid_field
from common.logs import request_id_var

# An inbound X-Request-Id is kept only if it is short and plain: it ends up in logs and headers.
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # JSON services render nothing: forbid every fetch and any framing.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}
# Added to every response that does not set them itself; responses here carry tokens or per-user
# data, so no cache may keep them either.
_DEFAULT_HEADERS = [*SECURITY_HEADERS.items(), ("Cache-Control", "no-store")]


def init_app(app):
    """Attach request-id and security-header hooks."""

    @app.before_request
    def assign_request_id():
        # Read from the WSGI environ: werkzeug's `headers.get` raises and catches an error when absent.
        inbound = request.environ.get("HTTP_X_REQUEST_ID", "")
        g.request_id = inbound if REQUEST_ID_RE.match(inbound) else uuid.uuid4().hex
        g.request_id_token = request_id_var.set(g.request_id)

    @app.after_request
    def add_headers(response):
        headers = response.headers
        headers["X-Request-Id"] = g.get("request_id") or uuid.uuid4().hex
        # One pass over the headers the view set, instead of a search per default header.
        present = {name.lower() for name in headers.keys()}
        headers.extend([(name, value) for name, value in _DEFAULT_HEADERS if name.lower() not in present])
        return response

    @app.teardown_request
    def forget_request_id(_exc):
        if "request_id_token" in g:
            request_id_var.reset(g.pop("request_id_token"))


class _RepeatedKey(ValueError):
    """A JSON object named the same key twice."""

    def __init__(self, key):
        super().__init__(key)
        self.key = json.dumps(key)  # quoted and escaped: it came from the client


def _object_without_repeats(pairs):
    """A JSON object as a dict, refusing a repeated key (json.loads would silently keep the last)."""
    body = dict(pairs)
    if len(body) != len(pairs):
        seen = set()
        raise _RepeatedKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return body


def json_body():
    """The request's JSON object, or a 415 / 400 error saying what is wrong with it.

    A key named twice in one object is refused: another parser on the path (a proxy, a WAF) may
    take the first where Python takes the last, and the two would disagree about what was asked.
    """
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send a JSON body with Content-Type: application/json.")
    data = request.get_data(cache=True)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    # A chunked body has no Content-Length to refuse up front, and werkzeug stops reading at the
    # limit without complaint: a body that filled the limit is taken to have gone past it.
    if request.content_length is None and limit is not None and len(data) >= limit:
        raise ApiError(413, "payload_too_large", f"The request body is larger than {limit} bytes.")
    try:
        body = json.loads(data or b"null", object_pairs_hook=_object_without_repeats)
    except _RepeatedKey as e:
        raise ApiError(400, "malformed_json", f"The request body names the key {e.key} more than once.") from None
    except RecursionError:  # thousands of nested [ or {: the parser's recursion limit, not our fault
        raise ApiError(400, "malformed_json", "The request body is nested too deeply.") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "The request body must be a JSON object.")
    return body


def string_field(body, name, min_len, max_len, pattern=None, hint=""):
    """Return `body[name]` if it is a string of the right length (and shape), else raise 400 naming it."""
    value = body.get(name)
    if not isinstance(value, str):
        raise invalid_field(name, "is required and must be a string")
    if not min_len <= len(value) <= max_len:
        raise invalid_field(name, f"must be {min_len} to {max_len} characters")
    if not value.isprintable() and any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise invalid_field(name, "must be valid Unicode text")  # a lone surrogate from a JSON \u escape
    if "\x00" in value:  # PostgreSQL text cannot hold NUL: refused here, not a 500 at the INSERT
        raise invalid_field(name, "must not contain NUL characters")
    if pattern and not pattern.fullmatch(value):
        raise invalid_field(name, hint or "has characters that are not allowed")
    return value


def client_address(trusted_hops):
    """The client's address: the socket peer, or the entry `trusted_hops` proxies back in X-Forwarded-For.

    Entries left of the trusted ones are written by the client and never used, so a forged header
    cannot choose the address that rate limits count against.
    """
    peer = request.remote_addr or "unknown"
    if trusted_hops <= 0:
        return peer
    chain = [a.strip() for h in request.headers.getlist("X-Forwarded-For") for a in h.split(",") if a.strip()]
    if len(chain) < trusted_hops:
        return peer
    try:
        return str(ipaddress.ip_address(chain[-trusted_hops]))
    except ValueError:
        return peer  # not an address: a misconfigured proxy, never something to key a limit on
