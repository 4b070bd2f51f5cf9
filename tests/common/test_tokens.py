"""Unit tests of common.tokens' claims cache: it only ever answers for a token that passed in full.

The attack cases (forgeries, wrong algorithms, revoked sessions) run through GET /me in
tests/common/test_tokens_attacks.py; these pin what the cache adds: expiry is checked on every use, a
cached token is tied to the secret, issuer and audience it passed under, failures are not cached,
callers get copies, and the cache is bounded.
"""

import secrets
import time
import uuid

import jwt
import pytest

from common import tokens
from common.config import load_config
from common.tokens import LEEWAY, ClaimsCache, InvalidToken, issue_access_token, verify_access_token


def make_config(**overrides):
    env = {"JWT_SECRET": secrets.token_urlsafe(48), "DATABASE_URL": "postgresql://unused/none", **overrides}
    return load_config(env, require=("JWT_SECRET",))


@pytest.fixture
def config():
    return make_config()


def issue(config, issued_at=None):
    token, _ = issue_access_token(config, "alice", uuid.uuid4(), now=issued_at)
    return token


def test_an_issued_token_is_the_jws_pyjwt_makes_and_reads(config):
    # Tokens are signed by hand (common.tokens._encode): PyJWT must read them as its own, and make
    # the same claims and signature from them.
    session_id = uuid.uuid4()
    token, _ = issue_access_token(config, "alice", session_id)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "at+jwt"}
    claims = jwt.decode(token, config.jwt_secret, algorithms=["HS256"], audience=config.jwt_audience)
    assert claims["sub"] == "alice" and claims["sid"] == str(session_id) and claims["iss"] == config.jwt_issuer
    again = jwt.encode(claims, config.jwt_secret, algorithm="HS256", headers={"typ": "at+jwt"})
    assert again.split(".")[1:] == token.split(".")[1:]  # same payload bytes, same signature
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(InvalidToken):
        verify_access_token(config, forged)


def test_a_token_verified_twice_gives_the_same_claims_and_is_cached(config):
    token = issue(config)
    first = verify_access_token(config, token)
    cached = len(tokens._verified)
    second = verify_access_token(config, token)
    assert first == second and first["sub"] == "alice"
    assert len(tokens._verified) == cached  # the second answer came from the cache


def test_callers_get_copies_they_may_change(config):
    token = issue(config)
    verify_access_token(config, token)["sub"] = "mallory"
    assert verify_access_token(config, token)["sub"] == "alice"


def test_a_cached_token_is_refused_once_it_expires(config):
    token = issue(config)
    claims = verify_access_token(config, token)
    assert verify_access_token(config, token, now=claims["exp"] + LEEWAY - 1)["sub"] == "alice"
    with pytest.raises(InvalidToken):
        verify_access_token(config, token, now=claims["exp"] + LEEWAY)
    with pytest.raises(InvalidToken):  # and stays refused from then on
        verify_access_token(config, token, now=claims["exp"] + LEEWAY + 3600)


def test_an_expired_token_is_refused_on_first_sight_and_never_cached(config):
    token = issue(config, issued_at=time.time() - config.access_ttl - LEEWAY - 1)
    before = len(tokens._verified)
    for _ in range(2):
        with pytest.raises(InvalidToken):
            verify_access_token(config, token)
    assert len(tokens._verified) == before


@pytest.mark.parametrize(
    "other",
    [
        {"JWT_SECRET": secrets.token_urlsafe(48)},
        {"JWT_ISSUER": "someone-else"},
        {"JWT_AUDIENCE": "another-audience"},
    ],
    ids=["other_secret", "other_issuer", "other_audience"],
)
def test_a_token_cached_under_one_configuration_is_refused_under_another(config, other):
    token = issue(config)
    verify_access_token(config, token)
    elsewhere = make_config(**{"JWT_SECRET": config.jwt_secret, **other})
    with pytest.raises(InvalidToken):
        verify_access_token(elsewhere, token)


def test_a_tampered_copy_of_a_cached_token_is_refused(config):
    token = issue(config)
    verify_access_token(config, token)
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (f"{head}.{payload}.{flipped}", f"{head}.{payload}.", token + " ", token[:-1]):
        with pytest.raises(InvalidToken):
            verify_access_token(config, forged)


def test_the_cache_is_bounded_and_drops_the_least_recently_used():
    cache = ClaimsCache(size=2)
    far = time.time() + 3600
    cache.put("a", {"exp": far})
    cache.put("b", {"exp": far})
    assert cache.get("a", time.time()) is not None  # "a" is now the most recently used
    cache.put("c", {"exp": far})
    assert len(cache) == 2
    assert cache.get("b", time.time()) is None
    assert cache.get("a", time.time()) is not None and cache.get("c", time.time()) is not None


def test_an_expired_entry_is_dropped_from_the_cache():
    cache = ClaimsCache()
    cache.put("a", {"exp": 1000})
    assert cache.get("a", 1000 + LEEWAY - 1) is not None
    assert cache.get("a", 1000 + LEEWAY) is None
    assert len(cache) == 0
