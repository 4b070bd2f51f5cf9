"""A small OpenAI-compatible Chat Completions server for the tests, on loopback.

It answers `POST /v1/chat/completions` with `stream: true` the way OpenAI, Ollama and vLLM do
(chunked `text/event-stream`, `data: {...}` lines, `data: [DONE]`), scripted per prompt: each test
names the replies the model gives to the requests whose last user message is its prompt, in order.
It records every request it receives, how many were in flight at once, and when a client hung up.
"""

import json
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "fake-model"


@dataclass
class Reply:
    """One scripted answer: an HTTP status, and for 200 the SSE `data` payloads with a delay before each."""

    status: int = 200
    events: list = field(default_factory=list)  # [(delay seconds, data text)]
    headers: dict = field(default_factory=dict)
    body: dict | None = None  # the JSON body of an error answer
    stall: bool = False  # after the events, send nothing more and keep the connection open
    done: bool = True  # end with `data: [DONE]`


def chunk(delta=None, finish=None, usage=None):
    """One `chat.completion.chunk` object."""
    choices = [] if delta is None and finish is None else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    body = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": MODEL, "choices": choices}
    if usage:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return json.dumps(body)


def pieces(text, count):
    """`text` cut into `count` pieces (some may be empty when text is short) that join to it."""
    size = -(-len(text) // count)
    return [text[i * size : (i + 1) * size] for i in range(count)]


def answer(text, chunks=30, delay=0.0, usage=(17, 30)):
    """The model answers `text`, streamed in `chunks` pieces, then reports `usage` (prompt, completion)."""
    events = [(delay, chunk({"role": "assistant", "content": ""}))]
    events += [(delay, chunk({"content": piece})) for piece in pieces(text, chunks) if piece]
    events.append((0, chunk(finish="stop")))
    if usage:
        events.append((0, chunk(usage=usage)))
    return Reply(events=events)


def call_tools(*calls, split=5, usage=(25, 12), text=""):
    """The model calls tools: `calls` are (id, name, arguments text), each call's arguments streamed
    in `split` fragments, told apart by `index` (fragments of different calls interleaved)."""
    events = [(0, chunk({"role": "assistant", "content": text or None}))]
    fragments = [[] for _ in calls]
    for index, (call_id, name, arguments) in enumerate(calls):
        parts = pieces(arguments, split)
        fragments[index].append(
            {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": parts[0]}}
        )
        fragments[index] += [{"index": index, "function": {"arguments": part}} for part in parts[1:] if part]
    for round_ in range(max(len(f) for f in fragments)):  # interleave: a fragment of each call in turn
        for per_call in fragments:
            if round_ < len(per_call):
                events.append((0, chunk({"tool_calls": [per_call[round_]]})))
    events.append((0, chunk(finish="tool_calls")))
    if usage:
        events.append((0, chunk(usage=usage)))
    return Reply(events=events)


def error(status, message="scripted failure", headers=None):
    """The model server refuses with `status` and an OpenAI-style error body."""
    return Reply(status=status, body={"error": {"message": message, "type": "fake_error"}}, headers=headers or {})


def stall_after(text):
    """The model starts answering `text`, then stops sending without closing the connection."""
    reply = answer(text, chunks=3, usage=None)
    reply.events = reply.events[:-1]  # no finish chunk
    reply.stall, reply.done = True, False
    return reply


def slow(text, chunks, delay):
    """The model answers slowly: `chunks` pieces with `delay` seconds before each."""
    return answer(text, chunks=chunks, delay=delay)


class FakeModel:
    """The server: `url` for AGENT_BASE_URL, `script(prompt, *replies)`, and what it recorded."""

    def __init__(self):
        self.scripts, self.requests = {}, []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def script(self, prompt, *replies):
        """Answer the requests for `prompt` with `replies` in order (the last one repeats)."""
        with self.lock:
            self.scripts[prompt] = list(replies)

    def received(self, prompt):
        """The requests received for `prompt`, in order."""
        with self.lock:
            return [r for r in self.requests if r["prompt"] == prompt]

    def reset_counts(self):
        with self.lock:
            self.in_flight = self.max_in_flight = 0

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def _next_reply(self, record):
        with self.lock:
            self.requests.append(record)
            replies = self.scripts.get(record["prompt"]) or [answer(f"No script for {record['prompt']!r}.")]
            n = sum(1 for r in self.requests if r["prompt"] == record["prompt"]) - 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return replies[min(n, len(replies) - 1)]

    def _done(self):
        with self.lock:
            self.in_flight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that hung up mid-answer is what cancel tests do: no traceback for that alone."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _last_user_message(body):
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return message.get("content")
    return None


def _hung_up(sock, seconds):
    """Wait up to `seconds`; True as soon as the client has closed the connection."""
    readable, _, _ = select.select([sock], [], [], seconds)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _handler(model):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the tests read `requests`
            pass

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.loads(raw or b"{}")
            record = {
                "path": self.path,
                "headers": dict(self.headers),
                "body": body,
                "prompt": _last_user_message(body),
                "at": time.monotonic(),
                "closed_at": None,
            }
            reply = model._next_reply(record)
            try:
                self._answer(reply, record)
            except OSError:
                record["closed_at"] = record["closed_at"] or time.monotonic()
            finally:
                model._done()

        def _answer(self, reply, record):
            if reply.status != 200:
                payload = json.dumps(reply.body or {}).encode()
                self.send_response(reply.status)
                for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for delay, data in reply.events:
                if delay and _hung_up(self.connection, delay):
                    record["closed_at"] = time.monotonic()
                    return
                self._chunk(f"data: {data}\n\n")
            if reply.stall:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    if _hung_up(self.connection, 0.05):
                        record["closed_at"] = time.monotonic()
                        return
                return
            if reply.done:
                self._chunk("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _chunk(self, text):
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler
