"""The tool registry and the built-in tools, called as the agent calls them."""

import datetime

import pytest

from orchestrator.tools import Tool, Toolbox, ToolContext, load_tools, schema_problem
from orchestrator.tools.builtin import BUILTIN, calculator


def call(name, arguments, toolbox=None):
    return (toolbox or Toolbox(BUILTIN.values())).call(name, arguments, ToolContext("ada", "run-1"))


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(17 + 4) * 3 / 2", 31.5),
        ("2 ** 10 - 24", 1000),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("0.1 + 0.2", 0.1 + 0.2),
        ("10 ** 999", 10**999),
    ],
)
def test_the_calculator_evaluates_arithmetic(expression, value):
    assert call("calculator", {"expression": expression}) == ("output", {"expression": expression, "value": value})


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("__import__('os').system('true')", "only numbers and + - * / // % ** ( ) are allowed"),
        ("x + 1", "only numbers and + - * / // % ** ( ) are allowed"),
        ("'a' * 3", "only numbers and + - * / // % ** ( ) are allowed"),
        ("[1][0]", "only numbers and + - * / // % ** ( ) are allowed"),
        ("1 +", "the expression is not valid arithmetic"),
        ("1 / 0", "division by zero"),
        ("9 ** 9 ** 9", "the result is too large"),
        ("10 ** 1001", "the result is too large"),
        ("1e308 * 10", "the result is too large"),
        ("1" * 501, "the expression is longer than 500 characters"),
    ],
)
def test_the_calculator_refuses_anything_but_bounded_arithmetic(expression, why):
    assert call("calculator", {"expression": expression}) == ("error", why)


def test_current_time_is_now_in_utc():
    outcome, value = call("current_time", "{}")
    assert outcome == "output"
    now = datetime.datetime.fromisoformat(value["utc"])
    assert now.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.UTC) - now).total_seconds()) < 5
    assert value["weekday"] == now.strftime("%A")


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        ('{"expression": "1 +', "the arguments are not valid JSON"),
        ("[1, 2]", "input must be of type object"),
        ("{}", "input.expression is required"),
        ('{"expression": 12}', "input.expression must be of type string"),
    ],
)
def test_arguments_that_do_not_fit_the_schema_are_an_error_not_a_call(arguments, why):
    assert call("calculator", arguments) == ("error", why)


def test_an_unknown_tool_and_a_tool_that_raises_are_errors_naming_what_happened():
    def explode(args, context):
        raise KeyError("boom")

    toolbox = Toolbox([calculator, Tool("explode", "Fails.", {"type": "object"}, explode)])
    assert call("teleport", "{}", toolbox) == ("error", "unknown tool 'teleport'; available: calculator, explode")
    assert call("explode", "{}", toolbox) == ("error", "the tool failed (KeyError)")


def test_schema_checks_cover_types_enums_and_nested_properties():
    schema = {
        "type": "object",
        "properties": {
            "unit": {"enum": ["c", "f"]},
            "days": {"type": "integer"},
            "at": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]},
        },
    }
    assert schema_problem(schema, {"unit": "c", "days": 3, "at": {"lat": 1.5}}) is None
    assert schema_problem(schema, {"unit": "k"}) == 'input.unit must be one of "c", "f"'
    assert schema_problem(schema, {"days": True}) == "input.days must be of type integer"
    assert schema_problem(schema, {"at": {}}) == "input.at.lat is required"


def test_load_tools_takes_built_in_names_and_a_users_tools():
    toolbox = load_tools(("calculator", "tests.support.agents:shout"))
    assert [spec["function"]["name"] for spec in toolbox.specs()] == ["calculator", "shout"]
    assert toolbox.specs()[1]["function"]["parameters"]["required"] == ["text"]
    assert call("shout", {"text": "hi"}, toolbox) == ("output", "HI")
    assert call("shout", {"text": " "}, toolbox) == ("error", "there is nothing to shout")
