"""`/api/<path>` → `API_URL/<path>`: a streaming reverse proxy that forwards a verified identity.

Bodies stream both ways in pieces of at most 64 KiB, passed on as they arrive (never whole in
memory). Only `API_URL` is ever contacted: the path is rebuilt segment by segment under its prefix,
and `.`/`..`/empty segments are refused.
"""

import logging
import re
import time
import urllib.parse

import requests
import urllib3
from flask import Blueprint, Response, request

from common import state
from common.bearer import bearer_token
from common.errors import ApiError, unauthorized
from common.http import request_id
from common.tokens import InvalidToken, verify_access_token

bp = Blueprint("proxy", __name__)
log = logging.getLogger(__name__)

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "trailers", "transfer-encoding", "upgrade"}
# Never taken from the client: the proxy sets them (Host is the upstream's; X-User-Id is verified).
REPLACED = {
    "host",
    "x-user-id",
    "content-length",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
}
PIECE = 64 * 1024
PCHAR = "!$&'()*+,;=:@-._~"  # characters a path segment may hold unescaped (RFC 3986)
MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def hop_by_hop(headers):
    """Lower-cased names that must not cross a proxy: the standard ones, Proxy-*, and those Connection names."""
    named = {n.strip().lower() for v in headers.getlist("Connection") for n in v.split(",") if n.strip()}
    return HOP_BY_HOP | named | {k.lower() for k in headers.keys() if k.lower().startswith("proxy-")}


def upstream_url(base, path, query):
    """`base` + the request path, each segment re-escaped; 400 for segments that could climb out."""
    segments = path.split("/") if path else []
    inner, last = segments[:-1], segments[-1:] or [""]
    if any(s in ("", ".", "..") for s in inner) or last[0] in (".", "..") or "\\" in path:
        raise ApiError(400, "invalid_path", "The path may not contain empty, '.' or '..' segments.")
    url = base + "/" + "/".join(urllib.parse.quote(s, safe=PCHAR) for s in segments)
    if not query:
        return url
    # One malformed escape would make requests re-escape every "%" and change the other parameters.
    text = MALFORMED_ESCAPE.sub("%25", query.decode("latin-1"))
    return f"{url}?{urllib.parse.quote(text.encode('latin-1'), safe=PCHAR + '/?%')}"


def forwarded_headers(config, claims):
    """The headers sent upstream: the client's, minus hop-by-hop and spoofable ones, plus ours."""
    drop = hop_by_hop(request.headers) | REPLACED
    headers = {}
    for name, value in request.headers.items():
        if name.lower() not in drop:  # a repeated header travels as one, its values comma-joined
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
    peer = request.remote_addr or "unknown"
    trusted = config.trusted_proxy_hops > 0
    # Behind trusted proxies the chain already ends with the client as they saw it. Passed on as it
    # came, the API (with the same TRUSTED_PROXY_HOPS) counts the client this proxy counts; our peer
    # appended would be the proxy in front (nginx), and every client would look like it to the API.
    chain = request.headers.get("X-Forwarded-For") if trusted else None
    headers["X-Forwarded-For"] = chain or peer
    headers["X-Forwarded-Proto"] = (trusted and request.headers.get("X-Forwarded-Proto")) or request.scheme
    headers["X-Forwarded-Host"] = (trusted and request.headers.get("X-Forwarded-Host")) or request.host
    headers["X-Request-Id"] = request_id()
    if claims:
        headers["X-User-Id"] = claims["sub"]
    if request.content_length is not None:
        headers["Content-Length"] = str(request.content_length)
    return headers


class _Body:
    """The request body as a file-like object of known length, so requests streams it as is."""

    def __init__(self, stream, length):
        self.stream, self.length = stream, length

    def __len__(self):
        return self.length

    def read(self, size=PIECE):
        return self.stream.read(size)


def request_body():
    """What to send upstream: nothing, a sized stream, or (chunked from the client) a generator."""
    if request.content_length is not None:
        return _Body(request.stream, request.content_length) if request.content_length else None
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        return iter(lambda: request.stream.read(PIECE), b"")
    return None


def verified_claims(config):
    """The bearer token's claims, None without a bearer token, 401 for an invalid one (never forwarded)."""
    token = bearer_token()
    if token is None:
        return None
    try:
        return verify_access_token(config, token)
    except InvalidToken:
        raise unauthorized("The access token is invalid or expired.") from None


@bp.route("/api/", defaults={"path": ""}, methods=METHODS, provide_automatic_options=False)
@bp.route("/api/<path:path>", methods=METHODS, provide_automatic_options=False)
def forward(path):
    """Relay the request to the API and stream its answer back."""
    config = state.config()
    url = upstream_url(config.api_url, path, request.query_string)
    upstream = send_upstream(config, url, forwarded_headers(config, verified_claims(config)))
    drop = hop_by_hop(upstream.raw.headers)
    # items() keeps repeated headers (several Set-Cookie) apart.
    headers = [(k, v) for k, v in upstream.raw.headers.items() if k.lower() not in drop]
    response = Response(relay(upstream), status=upstream.status_code, headers=headers, direct_passthrough=True)
    response.call_on_close(upstream.close)
    return response


def send_upstream(config, url, headers):
    """The API's streaming response to this request; 504 when it times out, 502 when it can't be reached."""
    held = state.of()
    wants_stream = "text/event-stream" in request.headers.get("Accept", "")
    read_timeout = config.proxy_stream_idle_timeout if wants_stream else config.proxy_read_timeout
    started = time.perf_counter()
    try:
        upstream = held.upstream.request(
            request.method,
            url,
            headers=headers,
            data=request_body(),
            stream=True,
            allow_redirects=False,
            timeout=(config.proxy_connect_timeout, read_timeout),
        )
    except requests.Timeout:
        held.metrics.upstream_errors.labels(kind="timeout").inc()
        raise ApiError(504, "upstream_timeout", "The API did not answer in time.") from None
    except requests.ConnectionError:
        held.metrics.upstream_errors.labels(kind="unreachable").inc()
        raise ApiError(502, "upstream_unavailable", "The API could not be reached.") from None
    held.metrics.upstream_seconds.labels(status=str(upstream.status_code)).observe(time.perf_counter() - started)
    return upstream


def pieces(raw):
    """The raw upstream body in pieces of at most PIECE bytes, each passed on as soon as it arrives."""
    if raw.chunked and raw.supports_chunked_reads():
        yield from raw.read_chunked(PIECE, decode_content=False)  # one piece per chunk, as it arrives
        return
    # Sized or close-delimited (neither Content-Length nor chunked: the body ends at EOF). urllib3's
    # stream(n) would wait for n bytes or EOF, holding a slow stream back; read1 returns what came.
    while piece := raw.read1(PIECE, decode_content=False):
        yield piece


def relay(upstream):
    """The upstream body, piece by piece as it arrives (an SSE event is passed on at once)."""
    try:
        yield from pieces(upstream.raw)
    except (urllib3.exceptions.HTTPError, OSError) as e:
        # Headers are sent already: all that is left is to end the body; the client sees it cut.
        log.warning("upstream body ended early: %s", type(e).__name__)
