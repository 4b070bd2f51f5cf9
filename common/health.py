"""`GET /health` (liveness) and `GET /ready` (readiness), the same on every service."""

from flask import Blueprint, jsonify

from common import state

bp = Blueprint("health", __name__)


@bp.get("/health")
def live():
    """Liveness: the process answers. No dependency is consulted."""
    return {"ok": True}


@bp.get("/ready")
def ready():
    """Readiness: every dependency the service declared answers."""
    failing = {}
    for name, check in state.of().readiness_checks.items():
        try:
            ok = check()
        except Exception:  # any failure of a dependency means "not ready"
            ok = False
        if not ok:
            failing[name] = "unavailable"
    if failing:
        return jsonify(ok=False, failing=failing), 503
    return {"ok": True}
