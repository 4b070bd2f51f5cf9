"""CORS for exactly the origins in CORS_ORIGINS: never `*`, never an unlisted origin, never `null`."""

from flask import request
from flask_cors import CORS


def init_app(app, origins):
    """Allow the configured origins (validated as exact origins by common.config) and no others.

    Returns whether CORS is on: responses must then say `Vary: Origin` (see common.http).
    """
    if not origins:
        return False
    CORS(
        app,
        origins=list(origins),
        # Bearer tokens travel in a header, not in cookies: no credentials mode is needed.
        supports_credentials=False,
        always_send=False,
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-Id"],
        expose_headers=["Retry-After", "X-Request-Id"],
        max_age=600,
        # flask-cors sends Vary only with two or more origins, and only to a listed one. Every answer
        # of a CORS-enabled app depends on Origin (a listed one gets Allow-Origin, any other none), so
        # common.http adds Vary: Origin to every response, errors included, and this one is off.
        vary_header=False,
    )
    _only_with_origin(app)
    return True


def _only_with_origin(app):
    """Run flask-cors's after-request hook only for requests that carry an Origin header.

    Without Origin it adds nothing (always_send is off), but finding that out cost ~10 % of a GET
    /health (py-spy): path unquoting, a regex, and werkzeug raising and catching KeyError for the
    absent header. Its wrapping of the error handlers is left as it is.
    """
    hooks = app.after_request_funcs[None]
    cors_after_request = hooks[-1]
    if cors_after_request.__name__ != "cors_after_request":  # a flask-cors that registers differently
        raise RuntimeError(f"unexpected flask-cors hook {cors_after_request.__name__}")

    def cors_headers(response):
        if "HTTP_ORIGIN" in request.environ:
            return cors_after_request(response)
        return response

    hooks[-1] = cors_headers
