"""The simulated agent: a believable, deterministic script of events for a prompt and a step count."""

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
    """The events after `running`, up to and including `completed`, as (type, data) pairs."""
    seed = int.from_bytes(hashlib.sha256(prompt.encode("utf-8", "replace")).digest()[:4], "big")
    topic = _topic(prompt)
    plan = [f"{VERBS[(seed + i) % len(VERBS)]} {topic}" for i in range(steps)]
    events = [("plan", {"prompt": prompt, "steps": plan})]
    for i, goal in enumerate(plan, start=1):
        tool, argument = TOOLS[(seed + i) % len(TOOLS)]
        events += [
            ("tool_call", {"step": i, "tool": tool, "input": {argument: f"{goal} (step {i})"}}),
            (
                "tool_result",
                {"step": i, "tool": tool, "output": f"{tool} returned {3 + (seed + i) % 7} relevant items."},
            ),
            ("message", {"step": i, "delta": f"Step {i}: {goal.lower()} — "}),
            ("message", {"step": i, "delta": f"found what was needed from {tool}.\n"}),
        ]
    events += [
        ("final", {"text": f"Done: {steps} step{'s' * (steps != 1)} on “{topic}”. Each result is above."}),
        ("completed", {"status": "completed"}),
    ]
    return events
