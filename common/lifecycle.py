"""Process lifecycle hooks: what runs when a gunicorn worker is ready, and when the process stops."""

import logging

from flask import Flask

from common import state

log = logging.getLogger(__name__)


def on_shutdown(app, hook):
    """Run `hook()` when the app's process stops (gunicorn's worker_exit, or a test's teardown)."""
    state.of(app).shutdown_hooks.append(hook)


def on_worker_start(app, hook):
    """Run `hook(worker)` once gunicorn's worker is ready (its `alive` flag turns false on SIGTERM)."""
    state.of(app).worker_hooks.append(hook)


def shutdown(app):
    """Run the shutdown hooks, newest first (streams and runs before the pool they use)."""
    for hook in reversed(state.of(app).shutdown_hooks):
        try:
            hook()
        except Exception:  # one failing hook must not keep the others from running
            log.exception("shutdown hook failed")


def worker_started(app, worker):
    """Run the worker hooks (none when the WSGI app is not a Flask app of ours)."""
    if isinstance(app, Flask):
        for hook in state.of(app).worker_hooks:
            hook(worker)
