"""WSGI entry point of the test upstream: `gunicorn -c gunicorn.conf.py tests.upstream.wsgi:app`."""

from tests.upstream import app

__all__ = ["app"]
