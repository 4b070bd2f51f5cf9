"""Chat Completions on the wire and in memory: a streamed answer's SSE data, its tool-call fragments
gathered into calls, and a resumed run's own turns rebuilt from its stored events."""

import json

from orchestrator.agents import AgentError

READ_SIZE = 65536


def sse_data(raw):
    """The `data` of each server-sent event on `raw` (a urllib3 response), as text, as it arrives.

    `read1` hands over what has arrived, whatever the framing (chunked or not), so no delta is held
    back waiting for a buffer to fill.
    """
    buffer, data = b"", []
    while True:
        chunk = raw.read1(READ_SIZE, decode_content=True)
        if not chunk:
            if data:
                yield "\n".join(data)
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:  # a blank line ends an event
                if data:
                    yield "\n".join(data)
                data = []
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" ").decode("utf-8", "replace"))


def tool_message(result):
    """A `tool_result` as the message that tells the model."""
    content = result["output"] if "output" in result else {"error": result["error"]}
    return {"role": "tool", "tool_call_id": result["id"], "content": json.dumps(content)}


def assistant(text, calls):
    asked = [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls
    ]
    return {"role": "assistant", "content": "".join(text) or None, "tool_calls": asked}


def rebuild(transcript):
    """A resumed run's own turns from its stored events: (messages, model calls made, calls to run).

    A model call streams text (`message`), may report `usage`, then asks for tool calls, each
    recorded before any runs; text or usage after a call's results, or a call after results, is the
    next model call. The last turn's calls without a result are the ones still to run.
    """
    messages, turns, text, calls, results = [], 0, [], [], {}
    for event_type, data in transcript:
        new_turn = calls and (event_type in ("message", "usage") or (event_type == "tool_call" and results))
        if new_turn:
            messages += [
                assistant(text, calls),
                *(tool_message(results[c["id"]]) for c in calls if c["id"] in results),
            ]
            turns, text, calls, results = turns + 1, [], [], {}
        if event_type == "message":
            text.append(data["delta"])
        elif event_type == "tool_call":
            arguments = data["input"] if isinstance(data["input"], str) else json.dumps(data["input"])
            calls.append({"id": data["id"], "name": data["tool"], "arguments": arguments, "input": data["input"]})
        elif event_type == "tool_result":
            results[data["id"]] = data
    if not calls:
        return messages, turns, []
    messages += [assistant(text, calls), *(tool_message(results[c["id"]]) for c in calls if c["id"] in results)]
    return messages, turns + 1, [c for c in calls if c["id"] not in results]


def gather(calls, fragment):
    """Add one streamed tool-call fragment to the call its `index` names."""
    if not isinstance(fragment, dict):
        raise AgentError("model_error", "The model's stream has a tool call that is not an object.")
    call = calls.setdefault(fragment.get("index", len(calls)), {"id": None, "name": "", "arguments": []})
    call["id"] = fragment.get("id") or call["id"]
    function = fragment.get("function") or {}
    call["name"] += function.get("name") or ""
    call["arguments"].append(function.get("arguments") or "")


def finish(calls, text):
    """(the assistant message asking for the tool calls, the calls in `index` order), or None when
    the model answered without calling a tool. A call's `input` is its arguments parsed, or their
    text as the model sent it when that is not JSON (the tool then answers with an error)."""
    if not calls:
        return None
    done = []
    for index in sorted(calls):
        call = calls[index]
        arguments = "".join(call["arguments"])
        try:
            parsed = json.loads(arguments or "{}")
        except ValueError:
            parsed = arguments
        done.append(
            {"id": call["id"] or f"call_{index}", "name": call["name"], "arguments": arguments, "input": parsed}
        )
    return assistant([text], done), done
