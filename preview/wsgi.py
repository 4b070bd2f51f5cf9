"""WSGI entry point: `gunicorn -c gunicorn.conf.py preview.wsgi:app`."""

from preview import create_app

app = create_app()
