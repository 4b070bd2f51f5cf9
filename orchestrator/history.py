"""A thread's conversation so far, rebuilt from the stored events of its earlier runs.

The agent of the next run gets it as Chat Completions messages: each earlier run's prompt, the tool
calls it made with their results, and its final answer. Nothing is kept in memory between runs,
so any instance can run the next turn, and a restart loses nothing.
"""

import json

from common import queries


def _arguments(tool_input):
    return tool_input if isinstance(tool_input, str) else json.dumps(tool_input)


def _turn(prompt, events):
    """The messages of one earlier run: its prompt, its answered tool calls, its final answer."""
    messages = [{"role": "user", "content": prompt}]
    results = {data["id"]: data for event_type, data in events if event_type == "tool_result"}
    for event_type, data in events:
        if event_type == "tool_call" and data["id"] in results:  # a call never answered is left out
            function = {"name": data["tool"], "arguments": _arguments(data["input"])}
            call = {"id": data["id"], "type": "function", "function": function}
            result = results[data["id"]]
            content = result["output"] if "output" in result else {"error": result["error"]}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": data["id"], "content": json.dumps(content)})
        elif event_type == "final":
            messages.append({"role": "assistant", "content": data["text"]})
    return messages


def thread_history(conn, thread_id, run_id):
    """The conversation before run `run_id` in its thread, as Chat Completions messages."""
    messages, current, prompt, events = [], None, None, []
    for row in queries.get_thread_history(conn, thread_id=thread_id, run_id=run_id):
        if row["run_id"] != current:
            if current is not None:
                messages += _turn(prompt, events)
            current, prompt, events = row["run_id"], row["prompt"], []
        if row["type"]:
            events.append((row["type"], row["data"]))
    if current is not None:
        messages += _turn(prompt, events)
    return messages


def transcript(conn, run_id):
    """A run's own stored events so far, as (type, data), for an agent resuming after a wait."""
    rows = queries.list_run_events_after(conn, run_id=run_id, after=0, limit=100_000)
    return [(row["type"], row["data"]) for row in rows]
