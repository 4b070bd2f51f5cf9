"""Tools an agent may call: a function with a name, a description and a JSON Schema for its input.

    @tool("weather", "Today's weather in a city.", {"type": "object",
          "properties": {"city": {"type": "string"}}, "required": ["city"]})
    def weather(args, context):
        return {"city": args["city"], "sky": "clear"}

A tool receives its parsed arguments and a `ToolContext` (whose user is asking, a database
connection when it needs one) and returns anything JSON can carry. Whatever goes wrong — arguments
that are not JSON or not what the schema asks, an unknown tool, a tool that raises — becomes an
error the model is shown; it never fails the run. `AGENT_TOOLS` names the tools a run may use:
built-in names, or `package.module:name` for a tool of the user's own.
"""

import importlib
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

from common.config import ConfigError
from common.config_parsers import IMPORT_REF_RE

log = logging.getLogger(__name__)

# JSON Schema types as Python sees them after json.loads (bool is not a number here).
JSON_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
    "null": type(None),
}


class ToolError(Exception):
    """Raised by a tool to tell the model what was wrong, in words it may show."""


@dataclass(frozen=True)
class Tool:
    """A callable tool: `function(args, context)` with its name, description and input schema."""

    name: str
    description: str
    parameters: dict
    function: object
    needs_approval: bool = False

    def spec(self):
        """The tool as Chat Completions describes one."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def tool(name, description, parameters, needs_approval=False):
    """Decorator: make `function(args, context)` a `Tool`."""

    def wrap(function):
        return Tool(name, description, parameters, function, needs_approval)

    return wrap


@dataclass
class ToolContext:
    """What a tool may know of the run that calls it."""

    user_id: str
    run_id: str
    pool: object = field(default=None, repr=False)

    @contextmanager
    def connection(self):
        """A database connection for the call (autocommit, dict rows), returned afterwards."""
        with self.pool.connection(timeout=5) as conn:
            yield conn


def schema_problem(schema, value, where="input"):
    """What is wrong with `value` under the (subset of) JSON Schema tools use, or None."""
    expected = schema.get("type")
    if expected and not isinstance(value, JSON_TYPES.get(expected, object)):
        return f"{where} must be of type {expected}"
    if expected in ("integer", "number") and isinstance(value, bool):
        return f"{where} must be of type {expected}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} must be one of {', '.join(map(json.dumps, schema['enum']))}"
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                return f"{where}.{name} is required"
        for name, sub in schema.get("properties", {}).items():
            if name in value and (problem := schema_problem(sub, value[name], f"{where}.{name}")):
                return problem
    return None


class Toolbox:
    """The tools enabled for runs, by name, and which of them a person must approve first."""

    def __init__(self, tools=(), approval=()):
        self.tools = {t.name: t for t in tools}
        self.approval = frozenset(approval) | {t.name for t in tools if t.needs_approval}

    def needs_approval(self, name):
        """Whether a call of `name` waits for a person's yes (AGENT_APPROVAL_TOOLS, or the tool says so)."""
        return name in self.approval and name in self.tools

    @staticmethod
    def parse(arguments):
        """Arguments as the model sent them, parsed when they are JSON (else left as text)."""
        if not isinstance(arguments, str):
            return arguments
        try:
            return json.loads(arguments or "{}")
        except ValueError:
            return arguments

    def specs(self):
        """Every enabled tool as Chat Completions describes it."""
        return [t.spec() for t in self.tools.values()]

    def call(self, name, arguments, context):
        """Run tool `name` on `arguments` (JSON text or already parsed): ("output", x) or ("error", why)."""
        found = self.tools.get(name)
        if found is None:
            return "error", f"unknown tool {name!r}; available: {', '.join(self.tools) or 'none'}"
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError:
                return "error", "the arguments are not valid JSON"
        if problem := schema_problem(found.parameters, arguments):
            return "error", problem
        try:
            return "output", found.function(arguments, context)
        except ToolError as e:
            return "error", str(e)
        except Exception as e:  # a tool's bug is the model's news, not the run's end
            log.warning("tool %s raised %s", name, type(e).__name__, exc_info=True)
            return "error", f"the tool failed ({type(e).__name__})"


def load_tools(names, approval=()):
    """The `Toolbox` for `AGENT_TOOLS` (built-in names and `package.module:name` references), with
    the tools named in `approval` (AGENT_APPROVAL_TOOLS) needing a person's yes."""
    from orchestrator.tools.builtin import BUILTIN

    tools = []
    for name in names:
        if IMPORT_REF_RE.fullmatch(name):
            module, _, attribute = name.partition(":")
            try:
                found = getattr(importlib.import_module(module), attribute)
            except (ImportError, AttributeError) as e:
                raise ConfigError(f"AGENT_TOOLS: cannot load {name} ({type(e).__name__}: {e})") from None
            if not isinstance(found, Tool):
                raise ConfigError(f"AGENT_TOOLS: {name} is not a tool (make it with @tool)")
        elif name in BUILTIN:
            found = BUILTIN[name]
        else:
            raise ConfigError(f"AGENT_TOOLS: no built-in tool {name!r} (there are {', '.join(BUILTIN)})")
        tools.append(found)
    return Toolbox(tools, approval)
