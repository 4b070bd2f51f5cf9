"""The `openai` agent: any server speaking OpenAI Chat Completions with `stream: true`.

OpenAI, Ollama, vLLM, llama.cpp's server and LM Studio all do. Each model call streams its text as
`message` deltas and reports `usage`; tool calls (their arguments arriving in fragments, several
told apart by `index`) are run and their results sent back, for at most AGENT_MAX_TURNS calls.
Failures become run failures with a reason: `model_auth` (401/403), `model_unavailable` (429, 5xx
or no connection, after a few retries honouring Retry-After), `model_timeout` (no byte for
AGENT_TIMEOUT seconds) and `model_error` (anything else, garbage included). AGENT_API_KEY never
appears in an event, a reason, a message or a log line.
"""

import json
import logging
import random
import time

import requests
import urllib3

from orchestrator.agents import AgentError
from orchestrator.agents.chat_messages import finish, gather, rebuild, sse_data, tool_message
from orchestrator.agents.model_server import BACKOFF, RETRIES, Retry, post_chat, said

log = logging.getLogger(__name__)

# Whatever we were reading when the connection failed or was closed under us (a cancel).
STREAM_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError)


class ChatCompletionsAgent:
    """Runs a prompt through the model and its tool loop."""

    def __init__(self, config, metrics=None):
        self.url = f"{config.agent_base_url}/chat/completions"
        self.model, self.system = config.agent_model, config.agent_system_prompt
        self.max_turns, self.timeout = config.agent_max_turns, config.agent_timeout
        self.key = config.agent_api_key
        self.metrics = metrics
        self.http = requests.Session()

    def __call__(self, run):
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages += [*run.history, {"role": "user", "content": run.prompt}]
        tools = run.tools.specs() if run.tools else []
        # Resumed after a wait: what this run already said and did, and the calls still to run.
        done, turns, pending = rebuild(run.transcript)
        messages += done
        yield from self._run_tools(run, pending, messages)
        for _ in range(turns, self.max_turns):
            asked = yield from self._call(run, messages, tools)
            if not asked or run.cancelled():
                return
            assistant, calls = asked
            messages.append(assistant)
            for call in calls:  # all of a turn's calls are on record before any runs (or waits)
                yield "tool_call", {"id": call["id"], "tool": call["name"], "input": call["input"]}
            yield from self._run_tools(run, calls, messages)
        raise AgentError(
            "max_turns", f"The model was still calling tools after {self.max_turns} calls (AGENT_MAX_TURNS)."
        )

    @staticmethod
    def _run_tools(run, calls, messages):
        """Run each call (a call needing approval may make the run wait here) and record its result."""
        for call in calls:
            result = run.call_tool(call["id"], call["name"], call["arguments"])
            yield "tool_result", result
            messages.append(tool_message(result))

    def _call(self, run, messages, tools):
        """One model call, retried while it fails before streaming anything; returns its tool calls."""
        body = {"model": self.model, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}
        if tools:
            body["tools"] = tools
        for attempt in range(RETRIES + 1):
            started = time.monotonic()
            try:
                response = post_chat(self.http, self.url, self.key, body, self.timeout)
                with run.closing(response.raw):
                    return (yield from self._stream(run, response, started))
            except Retry as e:
                if attempt == RETRIES:
                    self._count("unavailable")
                    raise AgentError("model_unavailable", f"{e.message}; gave up after {RETRIES + 1} tries.") from None
                delay = e.delay if e.delay is not None else BACKOFF * 2**attempt * random.uniform(0.8, 1.2)
                log.warning("model call failed (%s), retrying in %.1f s", e.message, delay)
                if run.wait(delay):
                    return None
            except AgentError as e:
                self._count({"model_auth": "auth", "model_timeout": "timeout"}.get(e.reason, "error"))
                raise
        return None

    def _stream(self, run, response, started):
        """Read one streamed answer, yielding its deltas and usage; return its tool calls (or None)."""
        text, calls, usage, first = [], {}, None, None
        try:
            for data in sse_data(response.raw):
                if data.strip() == "[DONE]":
                    break
                chunk = self._parse(data)
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or ():
                    delta = (choice.get("delta") if isinstance(choice, dict) else None) or {}
                    if isinstance(delta.get("content"), str) and delta["content"]:
                        first = first or time.monotonic()
                        text.append(delta["content"])
                        yield "message", {"delta": delta["content"]}
                    for fragment in delta.get("tool_calls") or ():
                        first = first or time.monotonic()
                        gather(calls, fragment)
        except STREAM_ERRORS as e:
            if run.cancelled():
                self._count("cancelled")
                return None
            if isinstance(e, urllib3.exceptions.ReadTimeoutError | requests.Timeout | TimeoutError):
                raise AgentError(
                    "model_timeout", f"The model stopped sending for {self.timeout} s (AGENT_TIMEOUT)."
                ) from None
            if not text and not calls:
                raise Retry("The model's connection broke") from None
            raise AgentError("model_unavailable", "The model's connection broke mid-answer.") from None
        self._observe(started, first, usage)
        if usage:
            yield "usage", {"inputTokens": usage.get("prompt_tokens"), "outputTokens": usage.get("completion_tokens")}
        return finish(calls, "".join(text))

    def _parse(self, data):
        """One chunk of the stream as a dict; a chunk that is not one, or that reports an error, fails the run."""
        try:
            chunk = json.loads(data)
        except ValueError:
            chunk = None
        if not isinstance(chunk, dict):
            raise AgentError("model_error", "The model's stream is not Chat Completions JSON.")
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise AgentError("model_error", f"The model reported an error: {said(message, self.key)}")
        return chunk

    def _count(self, outcome):
        if self.metrics:
            self.metrics.model_calls.labels(outcome=outcome).inc()

    def _observe(self, started, first, usage):
        if not self.metrics:
            return
        now = time.monotonic()
        self._count("ok")
        self.metrics.model_seconds.observe(now - started)
        if first:
            self.metrics.model_first_token_seconds.observe(first - started)
        if usage:
            self.metrics.model_tokens.labels(direction="input").inc(usage.get("prompt_tokens") or 0)
            self.metrics.model_tokens.labels(direction="output").inc(usage.get("completion_tokens") or 0)
