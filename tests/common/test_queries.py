"""common.queries, the loader only: named blocks, comments as docstrings, and a name defined twice
refused. (Each query against a real database is tested through the endpoint that runs it.)"""

import pytest

from common.queries import load, parse

TWO = """
-- name: get_user
-- The user, by id.
SELECT id FROM users
WHERE id = %(user_id)s;

-- name: delete_user
DELETE FROM users WHERE id = %(user_id)s;
"""


def test_each_named_block_is_one_query_without_its_comment_lines():
    assert parse(TWO) == {
        "get_user": "SELECT id FROM users\nWHERE id = %(user_id)s;",
        "delete_user": "DELETE FROM users WHERE id = %(user_id)s;",
    }


def test_a_name_defined_twice_in_one_file_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"users\.sql: query 'get_user' is defined twice"):
        parse(TWO + "\n-- name: get_user\nSELECT 1;\n", "users.sql")


def test_a_name_defined_in_two_files_is_refused_naming_it(tmp_path):
    (tmp_path / "a.sql").write_text(TWO)
    (tmp_path / "b.sql").write_text("-- name: delete_user\nSELECT 1;\n")
    with pytest.raises(ValueError, match=r"b\.sql: query 'delete_user' is already defined"):
        load(tmp_path)


def test_the_shipped_queries_load():
    queries = load()
    assert "get_live_session" in queries and all(sql.strip() for sql in queries.values())
