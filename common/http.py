"""Request plumbing every service shares: request ids, security headers, the client's address.

Reading and checking what a request sent (JSON bodies, fields, numbers) is common.validation's.
"""

import ipaddress
import re
import uuid

from flask import g, request

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
