"""Process lifecycle hooks: what runs when a gunicorn worker is ready, and when the process stops."""

import logging

log = logging.getLogger(__name__)


def on_shutdown(app, hook):
    """Run `hook()` when the app's process stops (gunicorn's worker_exit, or a test's teardown)."""
    app.extensions.setdefault("shutdown_hooks", []).append(hook)


def on_worker_start(app, hook):
    """Run `hook(worker)` once gunicorn's worker is ready (its `alive` flag turns false on SIGTERM)."""
    app.extensions.setdefault("worker_hooks", []).append(hook)


def shutdown(app):
    """Run the shutdown hooks, newest first (streams and runs before the pool they use)."""
    for hook in reversed(app.extensions.get("shutdown_hooks", [])):
        try:
            hook()
        except Exception:  # one failing hook must not keep the others from running
            log.exception("shutdown hook failed")


def worker_started(app, worker):
    """Run the worker hooks."""
    for hook in getattr(app, "extensions", {}).get("worker_hooks", []):
        hook(worker)
