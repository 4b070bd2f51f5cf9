"""The agent contract: what executes a run, what it is given, and what it may produce.

An agent is a callable taking a `Run` and returning an iterable of `(event_type, data)` pairs:

    def echo(run):
        yield "message", {"delta": run.prompt}

Types it may produce: `plan {"steps"}`, `message {"delta"}`, `tool_call {"id", "tool", "input"}`,
`tool_result {"id", "tool", "output" | "error"}`, `usage {"inputTokens", "outputTokens"}` and
`final {"text"}` (when it yields none, the run's message deltas joined are its final answer). The
executor around it writes `running` before and `completed` after; it stores, numbers, announces and
leases every event, so an agent never touches the database or a stream. To fail the run with a
reason, raise `AgentError`; any other exception fails it as `agent_error`. An agent that waits
(a model, a tool) should stop when `run.cancelled()` turns true, and hand what it waits on to
`run.closing(...)` so that a cancel or a shutdown closes it at once.

Asking a person: `run.ask(id, tool, input)` returns their answer, or — when there is none yet —
raises `InputRequired`; the executor then writes `input_required`, the run waits (holding no lease,
greenlet or connection), and once answered the agent is called again from the start on whichever
instance claims the run. `run.transcript` then holds the run's events so far and `run.answers` the
answers, so the agent rebuilds its state instead of repeating what it did. `run.call_tool` asks by
itself for tools that need approval.
"""

import contextlib
import importlib
import threading
from dataclasses import dataclass, field

from common.config import ConfigError

EVENT_TYPES = frozenset({"plan", "message", "tool_call", "tool_result", "usage", "final", "input_required"})


class AgentError(Exception):
    """A run failure with a stable `reason` code (model_auth, model_timeout, ...) and a human message."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason, self.message = reason, message


class InputRequired(Exception):  # noqa: N818 - a request, not an error
    """Raised by `Run.ask` while a person has not answered: the run waits for them."""

    def __init__(self, request_id, tool, tool_input):
        super().__init__(f"waiting for an answer to {request_id}")
        self.event = {"id": request_id, "tool": tool, "input": tool_input}


@dataclass
class Run:
    """One run as its agent sees it."""

    id: str
    user_id: str
    prompt: str
    steps: int = 3
    # Earlier turns of the conversation as Chat Completions messages; empty for a run of its own.
    history: list = field(default_factory=list)
    tools: object = None  # a Toolbox
    tool_context: object = field(default=None, repr=False)
    # This run's own stored events so far, as (type, data): empty unless it is resumed after a wait.
    transcript: list = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _open: set = field(default_factory=set, repr=False)

    def cancelled(self):
        """True once the run was cancelled (or its process is shutting down): stop producing."""
        return self._stop.is_set()

    def wait(self, seconds):
        """Sleep up to `seconds`; True (at once) if the run is cancelled meanwhile."""
        return self._stop.wait(seconds)

    @contextlib.contextmanager
    def closing(self, resource):
        """Hold `resource` (anything with close(): an HTTP response) so a cancel can close it at once."""
        self._open.add(resource)
        try:
            if self.cancelled():
                resource.close()
            yield resource
        finally:
            self._open.discard(resource)
            resource.close()

    @property
    def answers(self):
        """The answers people gave to this run's requests: {request id: {"approve", "comment"?}}."""
        return {data["id"]: data for event_type, data in self.transcript if event_type == "input"}

    def ask(self, request_id, tool, tool_input):
        """A person's answer to whether `tool` may run on `tool_input`; raises InputRequired until given."""
        answer = self.answers.get(request_id)
        if answer is None:
            raise InputRequired(request_id, tool, tool_input)
        return answer

    def call_tool(self, call_id, name, arguments):
        """Run a tool the model called; return the `tool_result` event's data (output or error).

        A tool that needs approval runs only once a person approved this call; refused, the model
        is told so (with their comment) instead.
        """
        if self.tools.needs_approval(name):
            answer = self.ask(call_id, name, self.tools.parse(arguments))
            if not answer["approve"]:
                comment = (answer.get("comment") or "").strip()
                refusal = "The user refused this call" + (f": {comment}" if comment else ".")
                return {"id": call_id, "tool": name, "error": refusal}
        outcome, value = self.tools.call(name, arguments, self.tool_context)
        return {"id": call_id, "tool": name, outcome: value}

    def stop(self):
        """Cancel: wake the agent's waits and close what it holds open (called by the executor)."""
        self._stop.set()
        for resource in list(self._open):
            with contextlib.suppress(Exception):  # closing from another greenlet may race its reader
                # shutdown() (urllib3 responses have it) wakes a reader blocked in another thread too
                getattr(resource, "shutdown", lambda: None)()
                resource.close()


def load_agent(config, model_metrics=None):
    """The callable `AGENT` names: the simulated agent, the Chat Completions agent, or the user's own."""
    if config.agent == "simulated":
        from orchestrator.agents.simulated import SimulatedAgent

        return SimulatedAgent(config.run_step_delay_ms / 1000)
    if config.agent == "openai":
        from orchestrator.agents.chat_completions import ChatCompletionsAgent

        return ChatCompletionsAgent(config, model_metrics)
    module, _, attribute = config.agent.partition(":")
    try:
        agent = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"AGENT: cannot load {config.agent} ({type(e).__name__}: {e})") from None
    if not callable(agent):
        raise ConfigError(f"AGENT: {config.agent} is not callable")
    return agent
