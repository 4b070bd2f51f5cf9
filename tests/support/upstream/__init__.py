"""A tiny upstream for the Preview Manager's tests (never deployed): `start_service("tests.support.upstream", env)`.

It runs under the project's gunicorn.conf.py with gevent workers, like the real services, and serves
everything under PREFIX so that the proxy can be tested with an `API_URL` that has a path prefix:

- `/health` and `/prefix/health`: 200 (gunicorn's start-up wait and the proxy's /ready ask these).
- `/prefix/echo/...`: the request as this server saw it — method, raw request target, decoded path,
  query and every header — as JSON; `?status=N` answers with status N.
- `/prefix/cookies`: two `Set-Cookie` headers through the ordinary WSGI path.
- `/prefix/hop`: a response written straight to the socket, because gunicorn strips hop-by-hop
  headers from a WSGI app's answer: `Connection` naming `X-Secret`, `Keep-Alive`, `Proxy-*`,
  `Trailer`, `Upgrade`, a chunked body with a trailer, and two `Set-Cookie`.
- `/prefix/stall?seconds=S`: answers only after S seconds (3 by default).
- `/prefix/download?mb=N`: N MiB of PATTERN, in 64 KiB pieces, with a Content-Length.
- `/prefix/upload`: reads the body in 64 KiB pieces; answers its size and sha256.

gunicorn runs it as `tests.support.upstream.wsgi:app`, like the services.
"""

import hashlib
import json
import time
import urllib.parse

from gunicorn.workers.base_async import ALREADY_HANDLED

# gunicorn.conf.py's start-up check reads this; the upstream needs no settings.
REQUIRED_SETTINGS = ()

PREFIX = "/prefix"
PIECE = 64 * 1024
PATTERN = bytes(range(256)) * (PIECE // 256)  # one 64 KiB piece of a download; every piece is the same

HOP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Connection: close, X-Secret, Upgrade\r\n"
    b"X-Secret: upstream-secret\r\n"
    b"Keep-Alive: timeout=5, max=100\r\n"
    b"Proxy-Authenticate: Basic realm=upstream\r\n"
    b"Proxy-Foo: bar\r\n"
    b"Upgrade: example/1\r\n"
    b"TE: trailers\r\n"
    b"Trailer: X-Checksum\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"X-Kept: kept\r\n"
    b"Set-Cookie: first=1; Path=/; HttpOnly\r\n"
    b"Set-Cookie: second=2; Path=/; HttpOnly\r\n"
    b"\r\n"
    b"8\r\n"
    b'{"hop": \r\n'
    b"5\r\n"
    b"true}\r\n"
    b"0\r\n"
    b"X-Checksum: abc\r\n"
    b"\r\n"
)


def _json(start_response, body, status="200 OK", headers=()):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers])
    return [data]


def _headers(environ):
    """The request headers as gunicorn passed them (repeated ones arrive joined with commas)."""
    found = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            found[key.replace("_", "-").title()] = environ[key]
    return found


def echo(environ, start_response, query):
    status = int(query.get("status", ["200"])[0])
    body = {
        "method": environ["REQUEST_METHOD"],
        "rawUri": environ.get("RAW_URI"),
        "path": environ.get("PATH_INFO"),
        "query": environ.get("QUERY_STRING"),
        "headers": _headers(environ),
    }
    return _json(start_response, body, f"{status} Echo")


def hop(environ, start_response):
    """Write the response ourselves (gunicorn would drop its hop-by-hop headers) and close."""
    environ["gunicorn.socket"].sendall(HOP_RESPONSE)
    return ALREADY_HANDLED


def download(start_response, query):
    pieces = int(query.get("mb", ["1"])[0]) * (1024 * 1024 // PIECE)
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(pieces * PIECE))])
    return (PATTERN for _ in range(pieces))


def upload(environ, start_response):
    digest, size, stream = hashlib.sha256(), 0, environ["wsgi.input"]
    while piece := stream.read(PIECE):
        digest.update(piece)
        size += len(piece)
    chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
    return _json(start_response, {"size": size, "sha256": digest.hexdigest(), "chunked": chunked})


def route(environ, start_response):
    """Route by path; anything outside PREFIX is 404."""
    path = environ.get("PATH_INFO", "")
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if path in ("/health", f"{PREFIX}/health"):
        return _json(start_response, {"ok": True})
    if path == f"{PREFIX}/echo" or path.startswith(f"{PREFIX}/echo/"):
        return echo(environ, start_response, query)
    if path == f"{PREFIX}/cookies":
        cookies = [("Set-Cookie", "first=1; Path=/"), ("Set-Cookie", "second=2; Path=/")]
        return _json(start_response, {"cookies": 2}, headers=cookies)
    if path == f"{PREFIX}/hop":
        return hop(environ, start_response)
    if path == f"{PREFIX}/stall":
        time.sleep(float(query.get("seconds", ["3"])[0]))  # gevent's sleep: the worker keeps serving
        return _json(start_response, {"stalled": True})
    if path == f"{PREFIX}/download":
        return download(start_response, query)
    if path == f"{PREFIX}/upload":
        return upload(environ, start_response)
    return _json(start_response, {"error": {"code": "not_found", "message": path}}, "404 Not Found")


app = route
