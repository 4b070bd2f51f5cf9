"""The query loader: headers declare name and shape, each query is a function, none is missing or unused."""

import re

import pytest

from common import queries

ROOT = queries.QUERIES_DIR.parent.parent
SOURCES = ("api", "bin", "common", "orchestrator", "preview", "tests", "web")
# `queries.<name>` in code, not in a path such as common/queries.py.
CALLED = re.compile(r"(?<![\w/])queries\.([a-z_][a-z0-9_]*)\b")
OWN_NAMES = {name for name in vars(queries) if not name.startswith("__")}


def python_sources():
    """Every Python file of the services, their tools and their tests."""
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and (path.suffix == ".py" or path.read_bytes().startswith(b"#!/usr/bin/env python")):
                yield path


def names_called():
    """{query name: first file that calls it} for every `queries.<name>` in the sources."""
    found = {}
    for path in python_sources():
        for name in CALLED.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, path.relative_to(ROOT))
    return {name: path for name, path in found.items() if name not in OWN_NAMES}


def test_every_query_the_code_calls_exists():
    called = names_called()
    assert len(called) > 30  # the scan does find the call sites
    missing = {name: str(path) for name, path in called.items() if name not in queries.load()}
    assert missing == {}


def test_every_query_is_called_somewhere():
    assert sorted(set(queries.load()) - set(names_called())) == []


def test_every_query_name_is_verb_noun():
    assert [name for name in queries.load() if "_" not in name] == []


def test_a_query_is_a_module_attribute_and_a_missing_one_is_named():
    assert queries.get_run is queries.load()["get_run"]
    assert "get_run" in dir(queries)
    typo = "get_rn"  # through getattr, so the scan above does not count it as a call
    with pytest.raises(AttributeError, match="no query named 'get_rn'"):
        getattr(queries, typo)


def test_the_header_declares_the_shape_and_comments_are_the_docstring():
    text = """
-- A file-level comment, before any query, belongs to none.

-- name: get_thing
-- returns: one
-- One thing.
SELECT 1 AS one;

-- name: list_things
-- returns: rows
SELECT 2 AS two;

-- name: drop_things
--   returns:   rowcount
-- Forget them.
DELETE FROM things;
"""
    parsed = queries.parse(text)
    assert {name: (q.returns, q.sql) for name, q in parsed.items()} == {
        "get_thing": ("one", "SELECT 1 AS one;"),
        "list_things": ("rows", "SELECT 2 AS two;"),
        "drop_things": ("rowcount", "DELETE FROM things;"),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- name: get_thing\n-- One thing.\nSELECT 1;", "get_thing' needs `-- returns:"),
        ("-- name: get_thing\n-- returns: many\nSELECT 1;", "get_thing' needs `-- returns:"),
        ("-- name: get_thing\n\n-- returns: one\n", "get_thing' has no SQL"),
        ("-- name: get_thing^\n-- returns: one\nSELECT 1;", "'get_thing\\^' is not a query name"),
        ("-- name: Get-Thing\n-- returns: one\nSELECT 1;", "'Get-Thing' is not a query name"),
        ("-- name: get_thing\n-- returns: one\nSELECT 1;\n-- name: get_thing\n-- returns: one\nSELECT 2;", "twice"),
    ],
)
def test_a_malformed_header_is_refused_naming_the_file_and_query(text, message):
    with pytest.raises(ValueError, match=f"^things.sql: .*{message}"):
        queries.parse(text, "things.sql")


def test_a_name_defined_in_two_files_or_shadowing_the_loader_is_refused(tmp_path):
    (tmp_path / "a.sql").write_text("-- name: get_thing\n-- returns: one\nSELECT 1;\n")
    (tmp_path / "b.sql").write_text("-- name: get_thing\n-- returns: rows\nSELECT 2;\n")
    with pytest.raises(ValueError, match="b.sql: query 'get_thing' is already defined in another file"):
        queries.load(tmp_path)
    (tmp_path / "b.sql").write_text("-- name: load\n-- returns: rows\nSELECT 2;\n")
    with pytest.raises(ValueError, match="has the name of common.queries.load"):
        queries.load(tmp_path)


def test_each_shape_returns_what_it_declares(db, tmp_path):
    (tmp_path / "q.sql").write_text(
        "-- name: get_number\n-- returns: one\nSELECT %(n)s::int AS n WHERE %(n)s::int > 0;\n\n"
        "-- name: list_numbers\n-- returns: rows\nSELECT generate_series(1, %(n)s) AS n;\n\n"
        "-- name: count_numbers\n-- returns: rowcount\nSELECT generate_series(1, %(n)s);\n"
    )
    loaded = queries.load(tmp_path)
    assert loaded["get_number"](db, n=7) == {"n": 7}
    assert loaded["get_number"](db, n=0) is None
    assert loaded["list_numbers"](db, n=3) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert loaded["count_numbers"](db, n=4) == 4
    assert queries.ping_database(db) == {"ok": 1}
