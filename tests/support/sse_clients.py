"""A raw-socket SSE client for many simultaneous streams (one thread, `selectors`).

Shared by the scale and shutdown tests and by `make bench`: a thousand threads with `requests`
would measure the client, not the server.
"""

import codecs
import errno
import json
import os
import selectors
import socket
import struct
import sys
import time
import urllib.parse

# Linux stamps each received segment with its arrival time when a socket asks (SO_TIMESTAMPNS): the
# client then times the server, whatever the client itself was busy with when the bytes came.
SO_TIMESTAMPNS = 35 if sys.platform == "linux" else None
STAMP_SPACE = socket.CMSG_SPACE(16)  # one struct timespec


class SseSocket:
    """One HTTP/1.1 GET of an SSE stream on a non-blocking socket, parsed as its bytes arrive.

    `events` holds what the stream sent, in order, each a dict stamped with its arrival time (`at`,
    epoch seconds: the kernel's stamp of its arrival at the socket where there is one, else when the
    client's `select` saw it): `{"retry": ...}`, `{"comment": ...}` or `{"id", "event", "data"}`.
    """

    def __init__(self, address, path, headers):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        if SO_TIMESTAMPNS is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        lines = [f"GET {path} HTTP/1.1", f"Host: {address[0]}:{address[1]}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.outgoing = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.error = None  # why the connection failed, if it did
        self.status, self.headers = None, {}
        self.events = []
        self.last_id = 0  # the id of the newest event received (0 before any)
        self.body = ""  # the body of a response that is not an event stream (a JSON error)
        self.body_done = False  # the response ended: its last chunk, or all of its Content-Length, arrived
        self.eof = False  # the server closed the connection
        self._raw = b""  # received bytes not parsed yet
        self._text = ""  # decoded body text that is not a complete event yet
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._chunked, self._length, self._received = False, None, 0
        self._chunk_left, self._chunk_crlf = 0, False
        code = self.sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            self.error = os.strerror(code)

    def fileno(self):
        return self.sock.fileno()

    @property
    def is_event_stream(self):
        return self.headers.get("content-type", "").startswith("text/event-stream")

    @property
    def ready(self):
        """Done connecting: failed, or its headers arrived and then the `retry:` line (or, for any
        other response, the whole body)."""
        if self.error or self.eof:
            return True
        if self.status is None:
            return False
        if self.is_event_stream:
            return any("retry" in e for e in self.events)
        return self.body_done

    @property
    def finished(self):
        """The response is over and the server closed the connection."""
        return self.error is not None or (self.body_done and self.eof)

    def named_events(self):
        """The events that have an `event:` name (no retry hints, no heartbeat comments)."""
        return [e for e in self.events if "event" in e]

    def send_request(self):
        """Called when the socket is writable: finish connecting and send the request; True once sent."""
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.error = os.strerror(code)
            return False
        try:
            sent = self.sock.send(self.outgoing)
        except BlockingIOError:
            return False
        except OSError as e:
            self.error = str(e)
            return False
        self.outgoing = self.outgoing[sent:]
        return not self.outgoing

    def receive(self, now):
        """Called when the socket is readable: read what arrived and parse it, stamping its events
        with the kernel's arrival time of the last segment read, else `now` (when `select` saw it)."""
        try:
            data, stamps, _, _ = self.sock.recvmsg(65536, STAMP_SPACE)
        except BlockingIOError:
            return
        except OSError as e:
            self.error, self.eof = str(e), True
            return
        if not data:
            self.eof = True
            return
        for level, kind, stamp in stamps:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(stamp) == 16:
                seconds, nanoseconds = struct.unpack("qq", stamp)
                now = seconds + nanoseconds / 1e9
        self._raw += data
        self._parse(now)

    def _parse(self, now):
        if self.status is None:
            end = self._raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self._raw = self._raw[:end].decode("latin-1"), self._raw[end + 4 :]
            status_line, *header_lines = head.split("\r\n")
            self.status = int(status_line.split()[1])
            for line in header_lines:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
            if "content-length" in self.headers:
                self._length = int(self.headers["content-length"])
        text = self._decoder.decode(self._body_bytes())
        if not self.is_event_stream:
            self.body += text
            return
        self._text += text
        *blocks, self._text = self._text.split("\n\n")
        for block in blocks:
            item = {"at": now}
            for line in block.split("\n"):
                if line.startswith(":"):
                    item["comment"] = line[1:].strip()
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    item[name] = json.loads(value) if name == "data" else value
            if item.get("id", "").isdigit():
                self.last_id = int(item["id"])
            self.events.append(item)

    def _body_bytes(self):
        """Take the body bytes out of `_raw`, undoing chunked transfer encoding."""
        if not self._chunked:
            data, self._raw = self._raw, b""
            self._received += len(data)
            if self._length is not None and self._received >= self._length:
                self.body_done = True
            return data
        out = []
        while self._raw and not self.body_done:
            if self._chunk_left:
                piece = self._raw[: self._chunk_left]
                self._raw = self._raw[len(piece) :]
                self._chunk_left -= len(piece)
                self._chunk_crlf = not self._chunk_left
                out.append(piece)
            elif self._chunk_crlf:
                if len(self._raw) < 2:
                    break
                self._raw, self._chunk_crlf = self._raw[2:], False
            else:
                end = self._raw.find(b"\r\n")
                if end < 0:
                    break
                size = int(self._raw[:end].split(b";")[0], 16)
                self._raw = self._raw[end + 2 :]
                if size == 0:
                    self.body_done = True  # the last chunk: the stream is over
                self._chunk_left = size
        return b"".join(out)

    def close(self):
        self.sock.close()


class SseClients:
    """Many `SseSocket`s driven from this thread by one selector. A context manager that closes them all."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.selector = selectors.DefaultSelector()
        self.streams = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self, path, headers, count, timeout=30, window=200):
        """Open `count` streams of `path`, at most `window` connecting at a time, and return them once
        each is `ready` (response headers and the `retry:` line in, or failed). Raises TimeoutError."""
        opened, connecting = [], set()
        deadline = time.monotonic() + timeout
        while len(opened) < count or connecting:
            while len(opened) < count and len(connecting) < window:
                stream = SseSocket(self.address, path, headers)
                self.streams.append(stream)
                opened.append(stream)
                if not stream.error:
                    self.selector.register(stream, selectors.EVENT_WRITE)
                    connecting.add(stream)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(opened) - len(connecting)} of {count} streams ready after {timeout}s")
            self.step(0.05)
            connecting = {s for s in connecting if not s.ready}
        return opened

    def step(self, timeout):
        """Wait up to `timeout` seconds for sockets to be ready, and service those that are.

        What arrived is stamped with the moment `select` returned, not when its socket's turn came:
        with thousands of sockets ready at once, the client's own parsing of the sockets before it
        would otherwise count as the server's delivery time."""
        ready = self.selector.select(timeout)
        now = time.time()
        for key, mask in ready:
            stream = key.fileobj
            if mask & selectors.EVENT_WRITE:
                if stream.send_request():
                    self.selector.modify(stream, selectors.EVENT_READ)
            elif mask & selectors.EVENT_READ:
                stream.receive(now)
            if stream.error or stream.eof:
                self.selector.unregister(stream)

    def pump(self, until, timeout, check_every=0.02):
        """Read from every stream until `until()` is true (return True) or `timeout` seconds pass (False).

        `until` is asked at most every `check_every` seconds: with thousands of streams it is the costly part.
        """
        deadline = time.monotonic() + timeout
        while not until():
            next_check = min(deadline, time.monotonic() + check_every)
            while (remaining := next_check - time.monotonic()) > 0:
                self.step(min(0.05, remaining))
            if time.monotonic() >= deadline:
                return until()
        return True

    def close_stream(self, stream):
        """Hang up one stream, as a client that goes away does."""
        if stream.sock.fileno() >= 0 and not (stream.error or stream.eof):
            self.selector.unregister(stream)
        stream.close()

    def close(self):
        for stream in self.streams:
            stream.close()
        self.selector.close()
