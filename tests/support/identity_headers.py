"""X-User-Id in every spelling a client might try, and a way to send such header lines verbatim.

`http.client` and `requests` normalise or refuse some of these (a space before the colon, a name
repeated), so requests go out over a plain socket, byte for byte.
"""

import json
import socket

# (label, header lines); "{me}" is the token's subject, "admin" someone else.
SPOOFS = [
    ("underscores", ["X_User_Id: admin"]),
    ("underscores_naming_me", ["X_User_Id: {me}"]),
    ("one_underscore", ["X-User_Id: admin"]),
    ("one_underscore_naming_me", ["X-User_Id: {me}"]),
    ("lower_case_twice", ["x-user-id: admin", "x-user-id: admin"]),
    ("me_then_admin", ["x-user-id: {me}", "x-user-id: admin"]),
    ("space_before_colon", ["X-User-Id  : admin"]),
    ("space_before_colon_naming_me", ["X-User-Id  : {me}"]),
    ("trailing_spaces_in_value", ["X-User-Id: admin   "]),
]
SPOOF_IDS = [label for label, _ in SPOOFS]


def send(port, path, token, lines, host="127.0.0.1"):
    """GET `path` with the bearer `token` and exactly `lines` as extra headers; return (status, body
    parsed as JSON or None). The connection is closed after one answer."""
    head = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", f"Authorization: Bearer {token}", "Connection: close"]
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(("\r\n".join(head + lines) + "\r\n\r\n").encode("latin-1"))
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in headers.lower():
        body = _unchunk(body)
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    return int(status_line.split()[1]), parsed


def _unchunk(body):
    """The payload of a chunked body."""
    out = b""
    while body:
        size, _, body = body.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out, body = out + body[:n], body[n + 2 :]
    return out


def lines_for(lines, me):
    """The header lines with "{me}" replaced by the token's subject."""
    return [line.replace("{me}", me) for line in lines]
