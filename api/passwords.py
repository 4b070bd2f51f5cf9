"""Password hashing with argon2id, run on a thread so the gevent loop keeps serving meanwhile.

Parameters are OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane): about 30 ms of one core
here. The PHC string stores them, so raising them later re-hashes each user at next sign-in.
"""

import functools
import sys

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)


def _off_loop(fn, *args):
    """Run CPU-heavy `fn` on gevent's thread pool when gevent is patched in, else inline.

    argon2 releases the GIL, so other greenlets run while a hash is computed.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey and monkey.is_module_patched("threading"):
        import gevent

        return gevent.get_hub().threadpool.apply(fn, args)
    return fn(*args)


@functools.cache
def _dummy_hash():
    # Verified against for unknown users, so they cost the same time as a wrong password.
    return HASHER.hash("not-a-real-password")


def hash_password(password):
    """Return the argon2id PHC string for `password`."""
    return _off_loop(HASHER.hash, password)


def _verify(stored, password):
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_password(stored, password):
    """True if `password` matches `stored`; with no stored hash, spend the same time and say False."""
    ok = _off_loop(_verify, stored or _dummy_hash(), password)
    return ok and stored is not None


def needs_rehash(stored):
    """True when `stored` was made with weaker parameters than today's."""
    return HASHER.check_needs_rehash(stored)
