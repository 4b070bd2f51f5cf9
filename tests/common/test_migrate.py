"""Migrations: idempotent, safe when several processes start at once, unstuck by a stale lock."""

import json
import subprocess
import sys

import psycopg

from common.migrate import MIGRATIONS_DIR, migrate
from tests.support.services import ROOT

MIGRATIONS = len([p for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql")])
TABLES = {"users", "sessions", "refresh_tokens", "login_attempts"}


def tables(url):
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def applied(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM _yoyo_migration").fetchone()[0]


def test_applying_twice_is_a_no_op(empty_database_url):
    assert migrate(empty_database_url) == MIGRATIONS
    assert TABLES <= tables(empty_database_url)
    assert migrate(empty_database_url) == 0
    assert applied(empty_database_url) == MIGRATIONS


def test_three_processes_migrating_at_once_all_succeed(empty_database_url):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": empty_database_url}
    procs = [
        subprocess.Popen([sys.executable, "-m", "common.migrate"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    # Each says so in one JSON log line.
    lines = sorted(json.loads(o)["msg"] for o in outputs)
    assert lines == ["migrations: 0 applied"] * 2 + [f"migrations: {MIGRATIONS} applied"]
    assert applied(empty_database_url) == MIGRATIONS


def test_a_stale_lock_left_by_a_killed_migrator_does_not_block(empty_database_url):
    migrate(empty_database_url)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), 999999)")
    assert migrate(empty_database_url) == 0


def test_an_unreachable_database_fails_with_one_line():
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = subprocess.run([sys.executable, "-m", "common.migrate"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    line = json.loads(result.stderr)
    assert line["level"] == "ERROR" and line["msg"].startswith("migration failed:")
