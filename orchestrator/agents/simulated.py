"""The simulated agent: a believable, deterministic script for a prompt and a step count.

It needs no model and no network, so `make up` and the tests work offline. Its tool calls are
pretend ones (their results are made up); each event comes RUN_STEP_DELAY_MS after the one before.
A prompt that mentions "approve" makes its first tool call a `send_email` that a person must
approve, so the approval flow can be tried without a model.
"""

import hashlib

TOOLS = [
    ("web_search", "query"),
    ("read_file", "path"),
    ("run_python", "code"),
    ("query_database", "sql"),
]
VERBS = ["Survey", "Gather facts on", "Compare options for", "Check assumptions about", "Draft an answer to"]
# The event types the script writes (a resumed run skips as many as are stored already).
SCRIPTED = frozenset({"plan", "message", "tool_call", "tool_result", "final"})


def _topic(prompt):
    words = prompt.split()
    return " ".join(words[:8]) + ("…" if len(words) > 8 else "")


def _approval(call, tool_input, answer):
    """The result of the email a person was asked about."""
    if answer["approve"]:
        return {"id": call, "tool": "send_email", "output": f"Email sent to {tool_input['to']}."}
    comment = (answer.get("comment") or "").strip()
    return {"id": call, "tool": "send_email", "error": "The user refused" + (f": {comment}" if comment else ".")}


def script(prompt, steps, answers=None):
    """The run's events after `running`, as (type, data) pairs: the plan, the prompt echoed, then per
    step a tool call, its result and a message, then the final answer (the messages joined).

    With "approve" in the prompt, step 1 asks first: `input_required`, and nothing more until
    `answers` (request id → answer) holds the answer.
    """
    answers = answers or {}
    seed = int.from_bytes(hashlib.sha256(prompt.encode("utf-8", "replace")).digest()[:4], "big")
    topic = _topic(prompt)
    plan = [f"{VERBS[(seed + i) % len(VERBS)]} {topic}" for i in range(steps)]
    # The prompt is echoed verbatim, as a model would quote it: text of any shape travels the stream.
    answer = [f"You asked: {prompt}\n"]
    yield "plan", {"steps": plan}
    yield "message", {"delta": answer[0]}
    asks = "approve" in prompt.lower()
    for i, goal in enumerate(plan, start=1):
        tool, argument = ("send_email", "to") if asks and i == 1 else TOOLS[(seed + i) % len(TOOLS)]
        call = f"call_{i}"
        tool_input = {argument: "team@example.com" if tool == "send_email" else f"{goal} (step {i})"}
        yield "tool_call", {"id": call, "tool": tool, "input": tool_input}
        if tool == "send_email":
            if call not in answers:
                yield "input_required", {"id": call, "tool": tool, "input": tool_input}
                return
            yield "tool_result", _approval(call, tool_input, answers[call])
        else:
            yield (
                "tool_result",
                {"id": call, "tool": tool, "output": f"{tool} returned {3 + (seed + i) % 7} relevant items."},
            )
        answer.append(f"Step {i}: {goal.lower()} — found what was needed from {tool}.\n")
        yield "message", {"delta": answer[-1]}
    done = f"Done: {steps} step{'s' * (steps != 1)} on “{topic}”."
    yield "message", {"delta": done}
    yield "final", {"text": "".join(answer) + done}


class SimulatedAgent:
    """Plays `script` with a delay before each event; stops as soon as the run is cancelled.

    Resumed after a wait, it skips the events already stored and goes on from the answer.
    """

    def __init__(self, step_delay):
        self.step_delay = step_delay

    def __call__(self, run):
        stored = sum(1 for event_type, _ in run.transcript if event_type in SCRIPTED)
        seen = 0
        for event_type, data in script(run.prompt, run.steps, run.answers):
            if event_type in SCRIPTED:
                seen += 1
                if seen <= stored:
                    continue
            if run.wait(self.step_delay):
                return
            yield event_type, data
