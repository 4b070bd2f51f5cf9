"""Agents and tools of "the user's own", loaded by the tests through AGENT and AGENT_TOOLS."""

from orchestrator.agents import AgentError
from orchestrator.tools import ToolError, tool


def echo(run):
    """Says the prompt back, word by word, having asked the shout tool for it in capitals."""
    yield "tool_call", {"id": "call_1", "tool": "shout", "input": {"text": run.prompt}}
    yield "tool_result", run.call_tool("call_1", "shout", {"text": run.prompt})
    for word in run.prompt.split():
        if run.wait(0.01):
            return
        yield "message", {"delta": word + " "}


def broken(run):
    """Fails the way a user's agent reports a failure of its own."""
    yield "message", {"delta": "Starting… "}
    raise AgentError("upstream_down", "The service this agent needs is down.")


@tool(
    "shout",
    "The text in capitals.",
    {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
)
def shout(args, context):
    if not args["text"].strip():
        raise ToolError("there is nothing to shout")
    return args["text"].upper()


@tool(
    "record",
    "Write a line to the tests' log of side effects (a stand-in for sending an email).",
    {"type": "object", "properties": {"line": {"type": "string"}}, "required": ["line"]},
)
def record(args, context):
    """Append `args["line"]` to $ONESHOT_TEST_TOOL_LOG: the tests count how often it ran."""
    import os

    with open(os.environ["ONESHOT_TEST_TOOL_LOG"], "a") as log:
        log.write(f"{context.run_id} {args['line']}\n")
    return "recorded"
