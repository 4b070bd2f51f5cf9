"""gunicorn settings shared by every oneshot service.

    gunicorn -c gunicorn.conf.py api.wsgi:app

The same command runs in Docker, on a VM under systemd, on Render/Railway and in the tests. This
file is loaded by gunicorn's master process: it must never import psycopg or an app (workers would
inherit psycopg's blocking wait function), so start-up checks run in a child process.
"""

import os
import shutil
import subprocess
import sys
import tempfile

# Standard library only (gunicorn's master loads these: the one rule for numbers, and the JSON log lines).
from common import config_parsers
from common.logs import exit_with_error

# --- Where to listen --------------------------------------------------------------------------
# PORT is set by Render, Railway and Compose; 8000 is only a local fallback. BIND_HOST=127.0.0.1 on
# a VM keeps the service reachable only through the nginx on the same machine.
bind = f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# Pending connections the kernel queues while workers are busy; raised for bursts of SSE clients.
backlog = 2048
# Each worker listens on its own SO_REUSEPORT socket and the kernel spreads new connections over
# them. With one shared socket, whichever worker woke first took most connections: GET /me at 32
# connections with 2 workers had p99 141 ms without it, 24 ms with it (STACK-NOTES). The price: a
# second gunicorn of the same user on the same port shares it instead of failing to bind.
reuse_port = True

# --- Workers ------------------------------------------------------------------------------------
# gevent: one greenlet per connection, so a held SSE stream costs a greenlet, not a thread.
worker_class = "gevent"


def _whole_number(name, default, high):
    """Setting `name` as a whole number from 1 to `high` (the services' one rule for numbers)."""
    try:
        return config_parsers.integer(os.environ, name, default, 1, high)
    except config_parsers.ConfigError as e:
        # Logging is not set up yet: one JSON line all the same, through the services' formatter.
        exit_with_error(f"config error: {e}", "gunicorn.error")


# Processes per service: about one per core (WEB_CONCURRENCY is the Heroku/Render convention).
workers = _whole_number("WEB_CONCURRENCY", 2, 256)
# Simultaneous connections per worker. Past it new clients (health checks too) wait in the backlog,
# so it is sized for thousands of idle streams; also raise the open-file limit (ulimit -n).
worker_connections = _whole_number("WORKER_CONNECTIONS", 10000, 1_000_000)
# Never preload: the app (and psycopg) must be imported after gevent patches each worker.
preload_app = False
# gunicorn's control socket lives at one fixed path per user: two services on one host would fight
# over it, and nothing here uses it.
control_socket_disable = True

# Addresses whose X-Forwarded-Proto gunicorn believes (it sets the request scheme from it): only a
# proxy we were told about (TRUSTED_PROXY_HOPS > 0, e.g. nginx on the same host), never a client.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or (
    "127.0.0.1,::1" if os.environ.get("TRUSTED_PROXY_HOPS", "0").strip() not in ("", "0") else ""
)

# A header name with an underscore (X_User_Id) lands in the same WSGI variable as its dashed twin
# (HTTP_X_USER_ID): it is dropped, as nginx does by default, so no spelling of X-User-Id can pass
# for the one a proxy sets. "refuse" would answer 400 to the whole request instead; gunicorn's own
# default is "drop" today, pinned here (and by tests/api/test_me.py) so that a change shows.
header_map = "drop"

# Of the scheme headers gunicorn knows, only X-Forwarded-Proto (what nginx, Render and Railway send).
# With its default three, a client adding X-Forwarded-Ssl made a trusted proxy's request a 400.
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# --- Timeouts -----------------------------------------------------------------------------------
# A worker whose event loop is blocked this long is restarted (idle streams do not trip it).
timeout = 30
# On SIGTERM, in-flight requests get this long to finish; keep it above 1 + keepalive.
graceful_timeout = 25
# Idle keep-alive seconds (gunicorn's default). A SIGTERM waits for idle keep-alive connections too,
# so this stays short; a proxy's upstream keepalive_timeout must be below it (1 s) to avoid 502s.
keepalive = 2

# --- Logging: JSON lines on stderr, through the same redacting formatter as the apps -----------
accesslog = "-"
errorlog = "-"
# gunicorn's logger, except that the access line gathers only the fields the JSON line uses.
logger_class = "common.access_log.AccessLogger"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "common.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["stderr"], "level": loglevel.upper()},
}


# --- Hooks --------------------------------------------------------------------------------------
def on_starting(server):
    """Before binding: check settings and migrate in a child process; prepare the metrics folder."""
    service = server.app.app_uri.split(":")[0].rsplit(".", 1)[0]
    here = os.path.dirname(os.path.abspath(__file__))
    checked = subprocess.run([sys.executable, "-m", "common.preflight", service], cwd=here, check=False)
    if checked.returncode != 0:
        sys.exit(checked.returncode)  # the child already logged one line saying why
    # Workers write their metric samples here; stale files from a previous run would be summed in.
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:  # one of our own, removed again on exit
        folder = server.oneshot_metrics_dir = tempfile.mkdtemp(prefix=f"oneshot-{service}-metrics-")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def on_exit(server):
    """Remove the metrics folder on_starting made (one given in PROMETHEUS_MULTIPROC_DIR is kept)."""
    folder = getattr(server, "oneshot_metrics_dir", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def post_worker_init(worker):
    """Let the app watch this worker (streams close as soon as SIGTERM clears `worker.alive`)."""
    from common.lifecycle import worker_started

    worker_started(worker.wsgi, worker)


def worker_exit(server, worker):
    """Close what the worker's app opened: streams, runs in flight, the database pool."""
    from common.lifecycle import shutdown

    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        shutdown(app)


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the aggregated metrics."""
    from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
