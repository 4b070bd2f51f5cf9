"""PostgreSQL for tests and benchmarks: the server under test, and databases made and dropped on it."""

import subprocess
import urllib.parse
import uuid

import psycopg

from tests.support.services import ROOT


def with_database(url, name):
    """`url` pointing at database `name` instead."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def admin_execute(server_url, sql):
    """Run one statement (CREATE/DROP DATABASE) outside a transaction on the maintenance database."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql)


def fresh_database(pg_server, template, request):
    """Clone the template into a new database, dropped when `request`'s scope ends; return its URL."""
    name = f"oneshot_test_{uuid.uuid4().hex[:12]}"
    if template:
        admin_execute(pg_server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    else:
        admin_execute(pg_server, f'CREATE DATABASE "{name}"')
    request.addfinalizer(lambda: admin_execute(pg_server, f'DROP DATABASE "{name}" WITH (FORCE)'))
    return with_database(pg_server, name)


class Cluster:
    """The PostgreSQL server under test; `datadir` is set only for a throwaway cluster we control."""

    def __init__(self, url, datadir=None, port=None):
        self.url, self.datadir, self.port = url, datadir, port

    def stop(self):
        """Stop the throwaway cluster (a database outage, for the fault tests)."""
        subprocess.run([ROOT / "bin" / "pg-local", "stop", self.datadir], check=True)

    def start(self):
        """Start it again on the same port and data."""
        subprocess.run([ROOT / "bin" / "pg-local", "start", self.datadir, str(self.port)], check=True)
