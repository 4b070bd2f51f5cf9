"""Named SQL queries loaded from `sql/queries/*.sql`, each one a function, in the manner of aiosql.

A query is two header lines, comment lines (its docstring), then the SQL with psycopg's named
parameters:

    -- name: get_run
    -- returns: one
    -- One run of one user (another user's run does not exist for them).
    SELECT ... FROM runs WHERE id = %(run_id)s AND user_id = %(user_id)s;

The name is verb_noun. `returns` declares what a call gives back, so no caller picks it:
`one` (the first row, a dict, or None), `rows` (a list of every row) or `rowcount` (how many rows
the statement touched: a query run for its effect). Every query is an attribute of this module:

    from common import queries
    run = queries.get_run(conn, run_id=run_id, user_id=user_id)

A name no file defines raises AttributeError naming it. The caller passes the connection, so the
caller owns the transaction. tests/common/test_queries.py checks that every name the code calls
exists and that every query is called somewhere.
"""

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

QUERIES_DIR = Path(__file__).resolve().parent.parent / "sql" / "queries"
RETURNS = ("one", "rows", "rowcount")
_NAME = re.compile(r"^--\s*name:(.*)$", re.MULTILINE)
_RETURNS = re.compile(r"--\s*returns:\s*(\S*)\s*$")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class Query:
    """One named query: call it with a connection and its parameters."""

    name: str
    returns: str
    sql: str

    def __call__(self, conn, **params):
        """Run the query on `conn` and return what its header declares (a row or None, rows, a count)."""
        cursor = conn.execute(self.sql, params)
        if self.returns == "one":
            return cursor.fetchone()
        if self.returns == "rows":
            return cursor.fetchall()
        return cursor.rowcount


def parse(text, source="<sql>"):
    """Return {name: Query} for every `-- name:` block in `text`; ValueError names a malformed one."""
    found = {}
    chunks = _NAME.split(text)
    for raw_name, body in zip(chunks[1::2], chunks[2::2], strict=True):
        name = raw_name.strip()
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"{source}: {name!r} is not a query name (lower-case verb_noun)")
        first, _, rest = body.lstrip("\n").partition("\n")
        returns = _RETURNS.fullmatch(first.strip())
        if not returns or returns[1] not in RETURNS:
            raise ValueError(f"{source}: query {name!r} needs `-- returns: one|rows|rowcount` under its name")
        sql = "\n".join(line for line in rest.strip().splitlines() if not line.lstrip().startswith("--")).strip()
        if not sql:
            raise ValueError(f"{source}: query {name!r} has no SQL")
        if name in found:
            raise ValueError(f"{source}: query {name!r} is defined twice")
        found[name] = Query(name, returns[1], sql)
    return found


@cache
def load(directory=QUERIES_DIR):
    """Every named query in `directory`, read once per process."""
    queries = {}
    for path in sorted(Path(directory).glob("*.sql")):
        for name, query in parse(path.read_text(), path.name).items():
            if name in queries:
                raise ValueError(f"{path.name}: query {name!r} is already defined in another file")
            if name in globals():  # it would be hidden behind the module's own attribute
                raise ValueError(f"{path.name}: query {name!r} has the name of common.queries.{name}")
            queries[name] = query
    return queries


def __getattr__(name):
    """A named query as an attribute of this module: `queries.get_run(conn, run_id=...)`."""
    if name.startswith("__"):  # import machinery and tools probe for dunders: not queries
        raise AttributeError(name)
    try:
        return load()[name]
    except KeyError:
        raise AttributeError(f"no query named {name!r} in sql/queries/*.sql") from None


def __dir__():
    """The module's own names and every query's, for completion and help()."""
    return sorted([*globals(), *load()])
