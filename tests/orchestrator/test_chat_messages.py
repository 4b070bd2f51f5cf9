"""A resumed run's own turns rebuilt from its events, and streamed SSE data read as it arrives."""

import json

from orchestrator.agents.chat_messages import rebuild, sse_data


def call(call_id, tool="calculator", expression="1 + 1"):
    return "tool_call", {"id": call_id, "tool": tool, "input": {"expression": expression}}


def result(call_id, value=2):
    return "tool_result", {"id": call_id, "tool": "calculator", "output": value}


def test_a_run_waiting_inside_its_second_turn_is_rebuilt_with_the_calls_still_to_run():
    transcript = [
        ("running", {"status": "running"}),
        ("message", {"delta": "Let me "}),
        ("message", {"delta": "check."}),
        ("usage", {"inputTokens": 5, "outputTokens": 2}),
        call("a"),
        result("a"),
        ("usage", {"inputTokens": 9, "outputTokens": 3}),  # the second model call said nothing, then asked
        call("b"),
        call("c"),
        ("input_required", {"id": "b", "tool": "calculator", "input": {"expression": "1 + 1"}}),
        ("input", {"id": "b", "approve": True}),
        ("running", {"status": "running"}),
    ]

    messages, turns, pending = rebuild(transcript)

    args = json.dumps({"expression": "1 + 1"})
    assert turns == 2
    assert [c["id"] for c in pending] == ["b", "c"]
    assert messages == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [{"id": "a", "type": "function", "function": {"name": "calculator", "arguments": args}}],
        },
        {"role": "tool", "tool_call_id": "a", "content": "2"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "b", "type": "function", "function": {"name": "calculator", "arguments": args}},
                {"id": "c", "type": "function", "function": {"name": "calculator", "arguments": args}},
            ],
        },
    ]


def test_a_fresh_run_rebuilds_to_nothing():
    assert rebuild([]) == ([], 0, [])
    assert rebuild([("running", {"status": "running"})]) == ([], 0, [])


class Pieces:
    """A response body arriving in the pieces given (as `read1` hands them over)."""

    def __init__(self, *pieces):
        self.pieces = list(pieces)

    def read1(self, size, decode_content=True):
        return self.pieces.pop(0) if self.pieces else b""


def test_sse_data_is_read_across_pieces_whatever_the_line_endings():
    body = Pieces(b'data: {"a"', b": 1}\r\n\r\ndata: x\ndata: y\n\n: comment\n\ndata: [DONE]", b"\n\n")
    assert list(sse_data(body)) == ['{"a": 1}', "x\ny", "[DONE]"]
