"""The built-in tools: safe, offline, and small enough to read in a minute."""

import ast
import datetime
import math
import operator

from common import queries
from orchestrator.tools import Tool, ToolError, tool

OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
MAX_EXPRESSION = 500
MAX_EXPONENT = 10_000
MAX_DIGITS = 1000
MAX_MAGNITUDE = 10**MAX_DIGITS


def _evaluate(node):
    """The value of an arithmetic expression tree: numbers and + - * / // % ** only; never `eval`."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and (
            abs(right) > MAX_EXPONENT or (abs(left) > 1 and right > 0 and right * math.log10(abs(left)) > MAX_DIGITS)
        ):
            raise ToolError("the result is too large")  # checked before computing: 9**9**9 would stall
        value = OPERATORS[type(node.op)](left, right)
        if (isinstance(value, int) and abs(value) > MAX_MAGNITUDE) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise ToolError("the result is too large")
        return value
    raise ToolError("only numbers and + - * / // % ** ( ) are allowed")


@tool(
    "calculator",
    "Evaluate an arithmetic expression exactly, like (17 + 4) * 3 / 2. Numbers and + - * / // % ** only.",
    {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "The expression to evaluate."}},
        "required": ["expression"],
    },
)
def calculator(args, context):
    """The value of `args["expression"]`."""
    expression = args["expression"]
    if len(expression) > MAX_EXPRESSION:
        raise ToolError(f"the expression is longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise ToolError("the expression is not valid arithmetic") from None
    try:
        return {"expression": expression, "value": _evaluate(tree)}
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError("the result is too large") from None


@tool(
    "current_time",
    "The current date and time in UTC (ISO 8601), with the weekday.",
    {"type": "object", "properties": {}},
)
def current_time(args, context):
    """Now, in UTC."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    return {"utc": now.isoformat(), "weekday": now.strftime("%A")}


@tool(
    "search_runs",
    "Search the user's own earlier runs by words in their prompt; returns prompts, statuses and answers.",
    {
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "Words the prompt contains."},
            "limit": {"type": "integer", "description": "At most this many runs (1-20, default 5)."},
        },
        "required": ["text"],
    },
)
def search_runs(args, context):
    """The caller's runs whose prompt contains `args["text"]`, newest first."""
    limit = args.get("limit", 5)
    if not 1 <= limit <= 20:
        raise ToolError("limit must be from 1 to 20")
    with context.connection() as conn:
        found = queries.search_runs(conn, user_id=context.user_id, text=args["text"], limit=limit)
    return [
        {
            "id": str(r["id"]),
            "prompt": r["prompt"],
            "status": r["status"],
            "createdAt": r["created_at"].isoformat(),
            "answer": r["answer"],
        }
        for r in found
    ]


BUILTIN: dict[str, Tool] = {t.name: t for t in (calculator, current_time, search_runs)}
