"""The simulated agent: a believable, deterministic script for a prompt and a step count.

It needs no model and no network, so `make up` and the tests work offline. Its tool calls are
pretend ones (their results are made up); each step waits RUN_STEP_DELAY_MS between events.
"""

import hashlib

TOOLS = [
    ("web_search", "query"),
    ("read_file", "path"),
    ("run_python", "code"),
    ("query_database", "sql"),
]
VERBS = ["Survey", "Gather facts on", "Compare options for", "Check assumptions about", "Draft an answer to"]


def _topic(prompt):
    words = prompt.split()
    return " ".join(words[:8]) + ("…" if len(words) > 8 else "")


def script(prompt, steps):
    """The run's events after `running`, as (type, data) pairs: plan, then per step a tool call, its
    result and a message, then the final answer (the messages joined)."""
    seed = int.from_bytes(hashlib.sha256(prompt.encode("utf-8", "replace")).digest()[:4], "big")
    topic = _topic(prompt)
    plan = [f"{VERBS[(seed + i) % len(VERBS)]} {topic}" for i in range(steps)]
    # The prompt is echoed verbatim, as a model would quote it: text of any shape travels the stream.
    answer = [f"You asked: {prompt}\n"]
    events = [("plan", {"steps": plan}), ("message", {"delta": answer[0]})]
    for i, goal in enumerate(plan, start=1):
        tool, argument = TOOLS[(seed + i) % len(TOOLS)]
        call = f"call_{i}"
        text = f"Step {i}: {goal.lower()} — found what was needed from {tool}.\n"
        answer.append(text)
        events += [
            ("tool_call", {"id": call, "tool": tool, "input": {argument: f"{goal} (step {i})"}}),
            (
                "tool_result",
                {"id": call, "tool": tool, "output": f"{tool} returned {3 + (seed + i) % 7} relevant items."},
            ),
            ("message", {"delta": text}),
        ]
    done = f"Done: {steps} step{'s' * (steps != 1)} on “{topic}”."
    events.append(("message", {"delta": done}))
    events.append(("final", {"text": "".join(answer) + done}))
    return events


class SimulatedAgent:
    """Plays `script` with a delay before each event; stops as soon as the run is cancelled."""

    def __init__(self, step_delay):
        self.step_delay = step_delay

    def __call__(self, run):
        for event in script(run.prompt, run.steps):
            if run.wait(self.step_delay):
                return
            yield event
