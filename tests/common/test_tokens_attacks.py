"""Forged, tampered and misplaced access tokens are refused by GET /me with a proper Bearer challenge.

Every forgery starts from the claims of a genuine token (a real user, a real live session) and
changes exactly one thing, so each case fails if the one check it targets were removed from
common/tokens.py or common/bearer.py. A re-signed copy of the genuine claims is accepted, which shows
the forging helpers themselves produce otherwise valid tokens.
"""

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass

import jwt
import pytest

from common import state

USER_ID = "victim.user"
PASSWORD = "correct horse battery staple"
TOKEN_TYPE = "at+jwt"
CHALLENGE = 'Bearer realm="oneshot"'
INVALID_TOKEN_CHALLENGE = 'Bearer realm="oneshot", error="invalid_token"'
# Attacker-chosen HMAC keys, long enough that PyJWT does not warn about them.
ATTACKER_KEY = b"attacker-controlled-key-0123456789abcdef"
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Genuine:
    """A real access token issued by the API, with its header, claims and the server's settings."""

    token: str
    header: dict
    claims: dict
    secret: str
    issuer: str
    audience: str


def b64url(data):
    """Unpadded base64url, as in JWS compact serialisation."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def hand_built(header, claims, key=None, digest=hashlib.sha256):
    """A compact JWS built without PyJWT: HMAC over the segments with `key`, or no signature at all."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    if key is None:
        return f"{signing_input}."
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def signed(g, claims=None, key=None, algorithm="HS256", **headers):
    """`claims` (default: the genuine ones) signed by PyJWT; `headers` override `typ: at+jwt` (None drops)."""
    return jwt.encode(
        g.claims if claims is None else claims,
        g.secret if key is None else key,
        algorithm=algorithm,
        headers={"typ": TOKEN_TYPE, **headers},
    )


def with_claims(g, **changes):
    """The genuine claims with `changes` applied; a value of None removes that claim."""
    claims = {**g.claims, **changes}
    return {k: v for k, v in claims.items() if v is not None}


def real_header(**changes):
    return {"alg": "HS256", "typ": TOKEN_TYPE, **changes}


def flip_first_signature_byte(token):
    head, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(raw))}"


def altered_payload_keeping_signature(g):
    head, _, signature = g.token.split(".")
    return f"{head}.{b64url_json(with_claims(g, jti='0' * 32))}.{signature}"


def now():
    return int(time.time())


# Each forgery: (id, function of the genuine token). Only the named thing differs from a valid token.
FORGERIES = [
    # alg none, in any spelling, with an empty signature (and once with the genuine signature kept)
    ("alg_none", lambda g: hand_built(real_header(alg="none"), g.claims)),
    ("alg_None", lambda g: hand_built(real_header(alg="None"), g.claims)),
    ("alg_NONE", lambda g: hand_built(real_header(alg="NONE"), g.claims)),
    ("alg_nOnE", lambda g: hand_built(real_header(alg="nOnE"), g.claims)),
    (
        "alg_none_keeping_genuine_signature",
        lambda g: hand_built(real_header(alg="none"), g.claims) + g.token.rsplit(".", 1)[1],
    ),
    # other algorithms, signed with the real secret (RS256: the header swapped over an HS256 signature)
    ("alg_HS384_signed_with_secret", lambda g: signed(g, algorithm="HS384")),
    ("alg_HS512_signed_with_secret", lambda g: signed(g, algorithm="HS512")),
    (
        "alg_RS256_header_over_hs256_signature",
        lambda g: hand_built(real_header(alg="RS256"), g.claims, g.secret.encode()),
    ),
    (
        "alg_hs256_lowercase_signed_with_secret",
        lambda g: hand_built(real_header(alg="hs256"), g.claims, g.secret.encode()),
    ),
    # signatures
    ("signed_with_another_key", lambda g: signed(g, key=ATTACKER_KEY)),
    ("signature_bit_flipped", lambda g: flip_first_signature_byte(g.token)),
    ("payload_altered_signature_kept", altered_payload_keeping_signature),
    ("signature_stripped", lambda g: g.token.rsplit(".", 1)[0] + "."),
    # time claims (leeway is 5 s; these are far outside it)
    ("expired", lambda g: signed(g, with_claims(g, iat=now() - 3600, exp=now() - 60))),
    ("iat_in_future", lambda g: signed(g, with_claims(g, iat=now() + 3600, exp=now() + 3600 + 900))),
    ("nbf_in_future", lambda g: signed(g, with_claims(g, nbf=now() + 3600))),
    # issuer and audience
    ("wrong_iss", lambda g: signed(g, with_claims(g, iss="https://attacker.test"))),
    ("wrong_aud", lambda g: signed(g, with_claims(g, aud="some-other-service"))),
    ("aud_list_without_ours", lambda g: signed(g, with_claims(g, aud=["some-other-service"]))),
    # every claim is required
    ("missing_sub", lambda g: signed(g, with_claims(g, sub=None))),
    ("missing_exp", lambda g: signed(g, with_claims(g, exp=None))),
    ("missing_sid", lambda g: signed(g, with_claims(g, sid=None))),
    ("missing_iat", lambda g: signed(g, with_claims(g, iat=None))),
    ("missing_jti", lambda g: signed(g, with_claims(g, jti=None))),
    ("missing_iss", lambda g: signed(g, with_claims(g, iss=None))),
    ("missing_aud", lambda g: signed(g, with_claims(g, aud=None))),
    ("sid_not_a_uuid", lambda g: signed(g, with_claims(g, sid="not-a-uuid"))),
    ("sub_not_a_string", lambda g: signed(g, with_claims(g, sub=12345))),
    # the typ header is required and must be at+jwt
    ("missing_typ", lambda g: signed(g, typ=None)),
    ("typ_JWT", lambda g: signed(g, typ="JWT")),
    # no key is ever taken from the token
    (
        "kid_path_traversal_empty_key",
        lambda g: hand_built(real_header(kid="../../../../dev/null"), g.claims, b""),
    ),
    (
        "kid_path_traversal_attacker_key",
        lambda g: signed(g, key=ATTACKER_KEY, kid="../../../../dev/null"),
    ),
    ("kid_sql_injection_empty_key", lambda g: hand_built(real_header(kid="' OR 1=1 --"), g.claims, b"")),
    ("kid_sql_injection_attacker_key", lambda g: signed(g, key=ATTACKER_KEY, kid="' OR 1=1 --")),
    (
        "embedded_jwk_attacker_key",
        lambda g: signed(g, key=ATTACKER_KEY, jwk={"kty": "oct", "k": b64url(ATTACKER_KEY), "alg": "HS256"}),
    ),
    ("jku_attacker_url", lambda g: signed(g, key=ATTACKER_KEY, jku="https://attacker.test/.well-known/jwks.json")),
    # not a JWT at all
    ("garbage_not.a.jwt", lambda g: "not.a.jwt"),
    ("garbage_abc", lambda g: "abc"),
    ("garbage_four_segments", lambda g: g.token + ".extra"),
    ("garbage_header_not_json", lambda g: b64url(b"{not json") + "." + g.token.split(".", 1)[1]),
]


@pytest.fixture
def genuine(client, app):
    """Register and sign in through the API; return the real token and its decoded contents."""
    config = state.of(app).config
    r = client.post("/auth/register", json={"userId": USER_ID, "password": PASSWORD})
    assert r.status_code == 201, r.get_json()
    r = client.post("/auth/token", json={"userId": USER_ID, "password": PASSWORD})
    assert r.status_code == 200, r.get_json()
    token = r.get_json()["token"]
    claims = jwt.decode(
        token, config.jwt_secret, algorithms=["HS256"], audience=config.jwt_audience, issuer=config.jwt_issuer
    )
    return Genuine(
        token, jwt.get_unverified_header(token), claims, config.jwt_secret, config.jwt_issuer, config.jwt_audience
    )


def get_me(client, token=None, authorization=None, query_string=None):
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if authorization is not None:
        headers["Authorization"] = authorization
    return client.get("/me", headers=headers, query_string=query_string)


def assert_error_body(r):
    body = r.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert SNAKE_CASE.match(body["error"]["code"]), body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


def assert_invalid_token(r):
    """401 with the invalid_token challenge and the JSON error shape."""
    assert r.status_code == 401, (r.status_code, r.get_json())
    assert r.headers.get("WWW-Authenticate") == INVALID_TOKEN_CHALLENGE
    assert_error_body(r)


def assert_plain_challenge(r):
    """401 asking for credentials, without claiming that a token was bad."""
    assert r.status_code == 401, (r.status_code, r.get_json())
    assert r.headers.get("WWW-Authenticate") == CHALLENGE
    assert "error=" not in r.headers["WWW-Authenticate"]
    assert_error_body(r)


def test_genuine_token_is_accepted(client, genuine):
    assert genuine.header == {"alg": "HS256", "typ": TOKEN_TYPE}
    r = get_me(client, genuine.token)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["userId"] == USER_ID
    assert r.get_json()["sessionId"] == genuine.claims["sid"]


def test_resigned_copy_of_genuine_claims_is_accepted(client, genuine):
    """Control for the forgeries below: the helpers alone do not make a token invalid."""
    for token in (signed(genuine), hand_built(real_header(), genuine.claims, genuine.secret.encode())):
        r = get_me(client, token)
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["userId"] == USER_ID


@pytest.mark.parametrize("forge", [f for _, f in FORGERIES], ids=[name for name, _ in FORGERIES])
def test_forged_token_is_refused_as_invalid_token(client, genuine, forge):
    token = forge(genuine)
    assert token != genuine.token
    assert_invalid_token(get_me(client, token))


def test_token_of_revoked_session_is_refused(client, genuine):
    assert get_me(client, genuine.token).status_code == 200
    r = client.post("/auth/logout", headers={"Authorization": f"Bearer {genuine.token}"})
    assert r.status_code == 204
    assert_invalid_token(get_me(client, genuine.token))
    # A re-signed copy does not help either: the session itself is gone.
    assert_invalid_token(get_me(client, signed(genuine, with_claims(genuine, jti="f" * 32))))


def test_new_sign_in_after_logout_works_while_old_token_stays_refused(client, genuine):
    assert client.post("/auth/logout", headers={"Authorization": f"Bearer {genuine.token}"}).status_code == 204
    r = client.post("/auth/token", json={"userId": USER_ID, "password": PASSWORD})
    assert r.status_code == 200
    assert get_me(client, r.get_json()["token"]).status_code == 200
    assert_invalid_token(get_me(client, genuine.token))


@pytest.mark.parametrize(
    "authorization",
    ["Bearer ", "Bearer", "Bearer    ", "bearer "],
    ids=["bearer_space", "bearer_alone", "bearer_spaces", "lowercase_bearer_space"],
)
def test_empty_bearer_token_is_refused_as_invalid_token(client, genuine, authorization):
    assert_invalid_token(get_me(client, authorization=authorization))


def test_no_credentials_gets_plain_challenge(client, genuine):
    assert_plain_challenge(get_me(client))


@pytest.mark.parametrize("parameter", ["access_token", "token"])
def test_token_in_query_string_is_ignored(client, genuine, parameter):
    assert_plain_challenge(get_me(client, query_string={parameter: genuine.token}))
