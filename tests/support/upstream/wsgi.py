"""WSGI entry point of the test upstream: `gunicorn -c gunicorn.conf.py tests.support.upstream.wsgi:app`."""

from tests.support.upstream import app

__all__ = ["app"]
