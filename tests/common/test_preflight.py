"""common.preflight, as gunicorn.conf.py runs it before binding (`python -m common.preflight <service>`):
a bad setting exits 1 with one JSON line naming it; good settings migrate the database and exit 0."""

import json
import os
import subprocess
import sys

import psycopg
import pytest

from tests.support.services import ROOT, service_env


def preflight(service, env):
    """Run the check in a child process with exactly `env` (and PATH); (exit code, JSON lines it wrote)."""
    result = subprocess.run(
        [sys.executable, "-m", "common.preflight", service],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in (result.stdout + result.stderr).splitlines()]  # each must be JSON
    return result.returncode, lines


@pytest.mark.parametrize(
    ("service", "change", "named"),
    [
        ("api", {"JWT_SECRET": None}, "JWT_SECRET"),
        ("api", {"ACCESS_TTL": "fifteen minutes"}, "ACCESS_TTL"),
        ("orchestrator", {"AGENT": "no_such_agent"}, "AGENT"),
    ],
    ids=["missing_secret", "bad_number", "unknown_agent"],
)
def test_a_bad_setting_exits_1_with_one_json_line_naming_it(service, change, named):
    env = {k: v for k, v in {**service_env("postgresql://nobody@127.0.0.1:1/none"), **change}.items() if v}
    code, lines = preflight(service, env)
    assert code == 1
    [line] = lines
    assert line["level"] == "ERROR" and line["logger"] == "oneshot.preflight"
    assert line["msg"].startswith("config error: ") and named in line["msg"], line


def count(database_url, sql):
    """The one number `sql` selects on `database_url`."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchone()[0]


def test_good_settings_migrate_the_database_and_exit_0(empty_database_url):
    code, lines = preflight("api", service_env(empty_database_url))
    assert code == 0, lines
    [line] = [e for e in lines if e["msg"].startswith("api: migrations")]
    assert line["level"] == "INFO" and line["applied"] > 0
    assert count(empty_database_url, "SELECT count(*) FROM users") == 0  # the tables are there


def test_migrate_on_start_false_leaves_the_database_alone(empty_database_url):
    code, lines = preflight("api", {**service_env(empty_database_url), "MIGRATE_ON_START": "false"})
    assert (code, lines) == (0, [])
    assert count(empty_database_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
