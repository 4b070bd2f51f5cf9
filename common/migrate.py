"""Apply the yoyo migrations in `sql/migrations`, safely when many instances start at once.

Run it as `python -m common.migrate` (`make migrate`), or let gunicorn's start-up run it in a child
process. Never import it into gunicorn's master: psycopg imported there would be inherited by every
worker with its blocking wait function.
"""

import logging
from pathlib import Path

from yoyo import get_backend, read_migrations

from common import queries
from common.config import ConfigError, load_config
from common.db import connect
from common.logs import configure_logging, exit_with_error

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "sql" / "migrations"
# An arbitrary constant naming "oneshot migrations" for pg_advisory_lock.
ADVISORY_LOCK_ID = 0x0E5407
YOYO_LOCK_TIMEOUT = 60

# Named, not __name__: under `python -m common.migrate` that would be "__main__".
log = logging.getLogger("oneshot.migrate")


def yoyo_url(database_url):
    """yoyo needs the psycopg (3) driver named in the scheme; plain postgresql:// means psycopg2."""
    return "postgresql+psycopg://" + database_url.split("://", 1)[1]


def migrate(database_url):
    """Apply every pending migration; return how many were applied.

    A session-level advisory lock serialises concurrent starters. Holding it, a stale yoyo lock row
    (left by a process killed mid-migration) can only be stale, so it is broken before yoyo's own
    lock is taken.
    """
    with connect(database_url) as guard:
        queries.lock_migrations(guard, key=ADVISORY_LOCK_ID)
        backend = get_backend(yoyo_url(database_url))
        try:
            backend.break_lock()
            with backend.lock(timeout=YOYO_LOCK_TIMEOUT):
                pending = backend.to_apply(read_migrations(str(MIGRATIONS_DIR)))
                backend.apply_migrations(pending)
        finally:
            backend.connection.close()
        return len(pending)


def migrate_or_exit(database_url, label="migrations"):
    """Apply pending migrations and log one JSON line; on any failure exit 1 with one line, no traceback."""
    # yoyo narrates every step at INFO; the one summary line below is what an operator needs.
    logging.getLogger("yoyo").setLevel(logging.WARNING)
    try:
        applied = migrate(database_url)
    except Exception as e:  # the operator gets one line, not a traceback
        exit_with_error(f"migration failed: {type(e).__name__}: {' '.join(str(e).split())}", log.name)
    log.info("%s: %d applied", label, applied, extra={"applied": applied})


def main():
    """`python -m common.migrate`: migrate DATABASE_URL."""
    configure_logging()
    try:
        config = load_config(require=("DATABASE_URL",))
    except ConfigError as e:
        exit_with_error(f"config error: {e}", log.name)
    migrate_or_exit(config.database_url)


if __name__ == "__main__":
    main()
