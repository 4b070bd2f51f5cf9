"""Who am I: the verified identity, and the identity a proxy in front claimed to forward."""

from flask import Blueprint, g, request

from common.bearer import require_auth
from common.errors import ApiError

bp = Blueprint("me", __name__)


@bp.get("/me")
@require_auth
def me():
    """The caller's userId and sessionId; a forwarded X-User-Id must match the token's subject."""
    # The WSGI environ holds every X-User-Id line joined by ","; werkzeug's getlist gives that same
    # single value, at the price of raising and catching an error when the header is absent.
    value = request.environ.get("HTTP_X_USER_ID")
    forwarded = [] if value is None else [value]
    if any(value != g.user_id for value in forwarded):
        raise ApiError(403, "identity_mismatch", "X-User-Id does not match the access token.")
    return {"userId": g.user_id, "sessionId": g.session_id, "forwardedUserId": forwarded[0] if forwarded else None}
