"""Checks run once before gunicorn binds: settings, then migrations (services with a database).

gunicorn.conf.py runs `python -m common.preflight <service>` in a child process, so neither psycopg
nor the app is ever imported into gunicorn's master. Everything it writes is a JSON log line; a
failure writes one (level ERROR) and exits 1.
"""

import importlib
import os
import sys

from common.config import ConfigError, load_config
from common.logs import configure_logging, exit_with_error


def main(service):
    """Validate `service`'s settings; apply migrations when it needs a database."""
    configure_logging()  # before anything can log: yoyo and psycopg lines are JSON too
    module = importlib.import_module(service)
    required = module.REQUIRED_SETTINGS
    try:
        config = load_config(require=required)
        if hasattr(module, "check_config"):  # a service's own checks (the orchestrator's agent and tools)
            module.check_config(config)
    except ConfigError as e:
        exit_with_error(f"config error: {e}", "oneshot.preflight")
    configure_logging(config.log_level)
    if "DATABASE_URL" in required and os.environ.get("MIGRATE_ON_START", "true").lower() != "false":
        from common.migrate import migrate_or_exit

        migrate_or_exit(config.database_url, label=f"{service}: migrations")


if __name__ == "__main__":
    main(sys.argv[1])
