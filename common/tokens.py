"""Access tokens: short-lived HS256 JWTs (`typ: at+jwt`) issued and verified the same way everywhere.

Verification pins the algorithm, requires every claim and the `typ` header, checks issuer and
audience, and never takes a key or algorithm from the token itself (`kid`, `jwk`, `jku` are ignored).
"""

import time
import uuid

import jwt

ALGORITHM = "HS256"
TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "jti", "iat", "exp"]
LEEWAY = 5  # seconds of clock skew tolerated between instances


class InvalidToken(Exception):
    """The token is not one this deployment issued, or it has expired."""


def issue_access_token(config, user_id, session_id, now=None):
    """Return (token, lifetime in seconds) for `user_id` in session `session_id`."""
    now = int(time.time() if now is None else now)
    claims = {
        "iss": config.jwt_issuer,
        "aud": config.jwt_audience,
        "sub": user_id,
        "sid": str(session_id),
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + config.access_ttl,
    }
    token = jwt.encode(claims, config.jwt_secret, algorithm=ALGORITHM, headers={"typ": TOKEN_TYPE})
    return token, config.access_ttl


def verify_access_token(config, token):
    """Return the claims of a valid access token, or raise `InvalidToken`."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM or str(header.get("typ", "")).lower() not in (
            TOKEN_TYPE,
            f"application/{TOKEN_TYPE}",
        ):
            raise InvalidToken("wrong algorithm or token type")
        claims = jwt.decode(
            token,
            config.jwt_secret,
            algorithms=[ALGORITHM],
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
            leeway=LEEWAY,
            options={"require": REQUIRED_CLAIMS},
        )
        claims["sid"] = str(uuid.UUID(str(claims["sid"])))
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError) as e:
        raise InvalidToken(str(e)) from None
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise InvalidToken("subject must be a non-empty string")
    return claims
