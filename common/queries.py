"""Named SQL queries loaded from `sql/queries/*.sql`, in the manner of yesql/aiosql.

Each query starts with `-- name: verb_noun`, followed by comment lines (its docstring) and the
SQL, with psycopg's named parameters (`%(user_id)s`). The caller passes the connection, so the
caller owns the transaction.
"""

import re
from functools import cache
from pathlib import Path

QUERIES_DIR = Path(__file__).resolve().parent.parent / "sql" / "queries"
_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse(text, source="<sql>"):
    """Return {name: sql} for every `-- name:` block in `text`."""
    found = {}
    chunks = _NAME.split(text)
    for name, body in zip(chunks[1::2], chunks[2::2], strict=True):
        sql = "\n".join(line for line in body.strip().splitlines() if not line.lstrip().startswith("--"))
        if name in found:
            raise ValueError(f"{source}: query {name!r} is defined twice")
        found[name] = sql.strip()
    return found


@cache
def load(directory=QUERIES_DIR):
    """Every named query in `directory`, read once per process."""
    queries = {}
    for path in sorted(Path(directory).glob("*.sql")):
        for name, sql in parse(path.read_text(), path.name).items():
            if name in queries:
                raise ValueError(f"{path.name}: query {name!r} is already defined in another file")
            queries[name] = sql
    return queries


def one(conn, name, **params):
    """Run query `name` and return its first row (a dict) or None."""
    return conn.execute(load()[name], params).fetchone()


def rows(conn, name, **params):
    """Run query `name` and return every row."""
    return conn.execute(load()[name], params).fetchall()


def execute(conn, name, **params):
    """Run query `name` for its effect; return the number of rows it touched."""
    return conn.execute(load()[name], params).rowcount
