"""WSGI entry point: `gunicorn -c gunicorn.conf.py orchestrator.wsgi:app`."""

from orchestrator import create_app

app = create_app()
