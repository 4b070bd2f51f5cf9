"""common.validation and the one whole-number rule (common.config_parsers.parse_whole_number) it wraps."""

import pytest
from flask import Flask

from common.config_parsers import parse_whole_number
from common.errors import init_app as init_errors
from common.validation import json_body, number_field, query_number


@pytest.mark.parametrize(("raw", "value"), [("0", 0), ("7", 7), ("50", 50), (7, 7), ("-1", -1), ("007", 7)])
def test_whole_numbers_in_range_are_read(raw, value):
    assert parse_whole_number(raw, -1, 50) == value


@pytest.mark.parametrize(
    "raw",
    ["²", "١", "٣", "3²", "1_000", "+5", " 5", "5 ", "1.5", "1e3", "15m", "1\n2", "", "-", "9" * 19, None, 1.0, True],
)
def test_anything_but_ascii_digits_or_an_int_is_refused(raw):
    with pytest.raises(ValueError, match=r"^must be a whole number, got "):
        parse_whole_number(raw, 0, 10**20)


@pytest.mark.parametrize(("raw", "message"), [("0", "got 0"), ("51", "got 51"), (51, "got 51"), ("-1", "got -1")])
def test_out_of_range_is_refused_with_the_range(raw, message):
    with pytest.raises(ValueError, match=f"^must be between 1 and 50, {message}$"):
        parse_whole_number(raw, 1, 50)


@pytest.fixture
def client():
    """A Flask app with the shared error handler and one view per request-level helper."""
    app = Flask("validation-probe")
    init_errors(app)

    @app.post("/steps")
    def steps():
        return {"steps": number_field(json_body(), "steps", 3, 1, 50)}

    @app.get("/page")
    def page():
        return {"limit": query_number("limit", 20, 1, 100)}

    return app.test_client()


@pytest.mark.parametrize(("body", "steps"), [({}, 3), ({"steps": 1}, 1), ({"steps": 50}, 50)])
def test_a_number_field_in_range_or_absent_is_read(client, body, steps):
    assert client.post("/steps", json=body).get_json() == {"steps": steps}


@pytest.mark.parametrize("steps", [0, 51, "3", 3.0, True, None, [3]])
def test_a_bad_number_field_is_a_400_naming_it(client, steps):
    r = client.post("/steps", json={"steps": steps})
    assert r.status_code == 400
    assert r.get_json()["error"]["field"] == "steps"
    assert r.get_json()["error"]["message"].endswith("must be a whole number from 1 to 50")


@pytest.mark.parametrize(("query", "limit"), [("", 20), ("?limit=1", 1), ("?limit=100", 100)])
def test_a_query_number_in_range_or_absent_is_read(client, query, limit):
    assert client.get(f"/page{query}").get_json() == {"limit": limit}


@pytest.mark.parametrize("raw", ["0", "101", "²", "١", "-1", "", "ten"])
def test_a_bad_query_number_is_a_400_naming_it(client, raw):
    r = client.get("/page", query_string={"limit": raw})
    assert r.status_code == 400
    assert r.get_json()["error"]["field"] == "limit"
