"""CORS for exactly the origins in CORS_ORIGINS: never `*`, never an unlisted origin, never `null`."""

from flask_cors import CORS


def init_app(app, origins):
    """Allow the configured origins (validated as exact origins by common.config) and no others."""
    if not origins:
        return
    CORS(
        app,
        origins=list(origins),
        # Bearer tokens travel in a header, not in cookies: no credentials mode is needed.
        supports_credentials=False,
        always_send=False,
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-Id"],
        expose_headers=["Retry-After", "X-Request-Id"],
        max_age=600,
        # flask-cors sends Vary only with two or more origins, and only to a listed one; ours below
        # covers every response, so it is turned off here to avoid saying it twice.
        vary_header=False,
    )

    @app.after_request
    def vary_by_origin(response):
        # Every answer of a CORS-enabled app depends on Origin (a listed one gets Allow-Origin, any
        # other none): a shared cache must never hand one origin's answer to another. after_request
        # also runs for error responses, so 4xx and 500 say it too.
        response.vary.add("Origin")
        return response
