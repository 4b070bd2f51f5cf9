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
    )
