"""`GET /openapi.json`: each service serves the OpenAPI document kept beside its code.

The document is a file in the service's package (`api/openapi.json`, ...), read once at start so a
missing or broken file stops the service at boot rather than on the first request.
"""

import json
from pathlib import Path

from flask import Blueprint

from common import state

bp = Blueprint("openapi", __name__)


def init_app(app, path):
    """Load the document at `path` and serve it, unauthenticated, at `/openapi.json`."""
    state.of(app).openapi_document = json.loads(Path(path).read_text(encoding="utf-8"))
    app.register_blueprint(bp)


@bp.get("/openapi.json")
def openapi_document():
    """This service's OpenAPI 3.1 document."""
    return state.of().openapi_document
