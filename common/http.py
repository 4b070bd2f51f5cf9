"""Request plumbing every service shares: request ids, security headers, the client's address.

Reading and checking what a request sent (JSON bodies, fields, numbers) is common.validation's.
"""

import ipaddress
import re
import secrets

from flask import request

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


def request_id():
    """The id of the request being served (None outside a request)."""
    return request_id_var.get()


def init_app(app, metrics=None, vary_origin=False):
    """Wrap the app in `RequestEdge`: request ids, default headers, Vary: Origin and request metrics."""
    app.wsgi_app = RequestEdge(app.wsgi_app, metrics, vary_origin)


class RequestEdge:
    """The WSGI layer every request of a service passes through, in one place and one pass.

    It gives the request its id (a well-formed inbound X-Request-Id, else a new one) for the log lines
    written while it runs, and adds to the response's header list X-Request-Id, the security headers
    and Cache-Control the view did not set, and (`vary_origin`, for CORS-enabled services) Vary:
    Origin: every answer depends on Origin, errors too. `metrics` (common.metrics.RequestMetrics)
    times the request. Done here rather than in Flask's before/after/teardown hooks, which cost a
    `g` or werkzeug `Headers` round per hook and measured ~45 us of a /health under gevent (py-spy).
    """

    def __init__(self, wsgi_app, metrics=None, vary_origin=False):
        self.wsgi_app, self.metrics, self.vary_origin = wsgi_app, metrics, vary_origin

    def __call__(self, environ, start_response):
        """Serve one request with its id set for logging, and finish its headers on the way out."""
        inbound = environ.get("HTTP_X_REQUEST_ID")
        rid = inbound if inbound and REQUEST_ID_RE.match(inbound) else secrets.token_hex(16)
        token = request_id_var.set(rid)
        metrics = self.metrics
        started = metrics.start(environ) if metrics is not None else None

        def start(status, headers, exc_info=None):
            self._finish_headers(headers, rid)
            if started is not None:
                metrics.observe(environ, status, started)
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, start)
        except BaseException:
            if started is not None:  # an exception no error handler turned into a response
                metrics.failed(environ)
            raise
        finally:
            request_id_var.reset(token)

    def _finish_headers(self, headers, rid):
        """Add the request id and the default headers to a WSGI header list, in place."""
        present = {name.lower() for name, _ in headers}
        if "x-request-id" in present:  # ours wins: it is the one in the logs
            headers[:] = [(name, value) for name, value in headers if name.lower() != "x-request-id"]
        headers.append(("X-Request-Id", rid))
        headers.extend([(name, value) for name, value in _DEFAULT_HEADERS if name.lower() not in present])
        if self.vary_origin:
            if "vary" not in present:
                headers.append(("Vary", "Origin"))
            else:
                _add_vary_origin(headers)


def _add_vary_origin(headers):
    """Name Origin in the (first) Vary header of a WSGI header list, unless it is already there."""
    for i, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            tokens = {token.strip().lower() for token in value.split(",")}
            if "origin" not in tokens and "*" not in tokens:
                headers[i] = (name, f"{value}, Origin" if value.strip() else "Origin")
            return


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
