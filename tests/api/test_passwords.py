"""Password hashing runs off the gevent loop, and its parameters meet OWASP's argon2id minimum."""

import subprocess
import sys
import textwrap

from api import passwords
from tests.support.services import ROOT

TICKS_DURING_HASHES = """
from gevent import monkey
monkey.patch_all()
import time, gevent
from argon2 import PasswordHasher
from api import passwords

slow = PasswordHasher(time_cost=3, memory_cost=65_536, parallelism=1)  # ~150 ms a hash
gaps, done = [], False

def ticker():
    last = time.monotonic()
    while not done:
        gevent.sleep(0.005)
        now = time.monotonic()
        gaps.append(now - last)
        last = now

tick = gevent.spawn(ticker)
started = time.monotonic()
gevent.joinall([gevent.spawn(passwords._off_loop, slow.hash, f"pw{n}") for n in range(4)], raise_error=True)
hashing = time.monotonic() - started
done = True
tick.join()
print(f"{max(gaps):.3f} {hashing:.3f}")
"""


def test_hashing_leaves_the_gevent_loop_free():
    """While four slow hashes run, a 5 ms ticker greenlet never waits anywhere near one hash's time."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(TICKS_DURING_HASHES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    longest_gap, hashing = map(float, result.stdout.split())
    assert hashing > 0.2  # the hashes really ran
    assert longest_gap < 0.1, f"the loop stalled {longest_gap:.3f}s while hashing"


def test_verify_accepts_the_password_and_nothing_else():
    stored = passwords.hash_password("correct horse battery")
    assert passwords.verify_password(stored, "correct horse battery")
    assert not passwords.verify_password(stored, "correct horse batterY")
    assert not passwords.verify_password(None, "correct horse battery")
    assert not passwords.verify_password("not-a-hash", "correct horse battery")


def test_weaker_stored_parameters_are_flagged_for_rehash():
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8_192, parallelism=1).hash("correct horse battery")
    assert passwords.needs_rehash(weak)
    assert not passwords.needs_rehash(passwords.hash_password("correct horse battery"))
