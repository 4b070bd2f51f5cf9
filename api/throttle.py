"""Sign-in throttling per user and per client address, counted in PostgreSQL so every instance agrees.

An attempt is recorded before the password is checked. Rows commit one by one (autocommit), so the
k-th concurrent attempt sees at least k rows: no burst can slip more guesses past the limit.
"""

from common import queries
from common.errors import ApiError


def admit(conn, config, user_key, address):
    """Record a sign-in attempt, or raise 429 with Retry-After when over a limit (the attempt is then
    forgotten). The rows of login_attempts are this module's alone."""
    attempt_id = queries.insert_login_attempt(conn, user_key=user_key, address=address)["id"]
    counts = queries.count_login_attempts(conn, user_key=user_key, address=address, window=config.login_window)
    over_user = counts["by_user"] > config.login_max_failures
    over_address = counts["by_address"] > config.login_max_failures_per_address
    if not (over_user or over_address):
        return
    # A refused attempt is not counted, so a blocked client cannot extend its own block.
    queries.delete_login_attempt(conn, attempt_id=attempt_id)
    retry_after = max(
        counts["user_retry_after"] if over_user else 0,
        counts["address_retry_after"] if over_address else 0,
        1,
    )
    raise ApiError(
        429,
        "too_many_attempts",
        "Too many failed sign-ins; try again later.",
        headers={"Retry-After": str(retry_after)},
    )


def succeeded(conn, config, user_key):
    """A correct password resets the user's count, this attempt included (not the address's: that would
    let any account holder clear it)."""
    queries.clear_user_login_attempts(conn, user_key=user_key, window=config.login_window)
