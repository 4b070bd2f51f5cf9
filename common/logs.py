"""JSON logging with redaction, configured once for every service and for gunicorn.

Redaction lives in the formatter, so no call site can forget it. Only the standard library is
imported here: gunicorn's master loads this module through `logconfig_dict`.
"""

import contextvars
import json
import logging
import re
import sys
import time

REDACTED = "[REDACTED]"

# The request id of the request being served, set by common.http; greenlets each have their own.
request_id_var = contextvars.ContextVar("request_id", default=None)

# Keys whose values never reach a log: authorization, cookie, password, token, refreshToken, and
# their relatives (access_token, set-cookie, jwt_secret), in any case.
_KEY = r"[\w-]*(?:authorization|cookie|password|passwd|token|secret|api[_-]?key)[\w-]*"
_SENSITIVE_KEY = re.compile(rf"^{_KEY}$", re.IGNORECASE)
_PATTERNS = [
    # "password": "..." or 'password': '...' (JSON text, a dict's repr), and unquoted JSON values
    (
        re.compile(rf"""(["']{_KEY}["']\s*:\s*)(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,}}\s]+)""", re.I),
        rf'\1"{REDACTED}"',
    ),
    # a header line: "Cookie: session=abc", "Authorization: Bearer abc"
    (re.compile(rf"(^|[\r\n])([ \t]*{_KEY}[ \t]*:)[^\r\n]*", re.IGNORECASE), rf"\1\2 {REDACTED}"),
    # password=... in query strings, forms and key=value text
    (re.compile(rf"(\b{_KEY}=)[^&\s,;\"']*", re.IGNORECASE), rf"\1{REDACTED}"),
    # Bearer abc / Basic abc wherever they stand
    (re.compile(r"\b(Bearer|Basic)\s+[\w.~+/=-]+", re.IGNORECASE), rf"\1 {REDACTED}"),
    # any JWT, wherever it stands
    (re.compile(r"\beyJ[\w-]*\.[\w-]*\.[\w-]*"), REDACTED),
]

# Every pattern above needs one of these to match (a quote, ':', '=', whitespace, or a JWT's start):
# text with none of them is returned as it is, without running the patterns.
_MAY_HOLD_SECRET = re.compile(r"[\"':=\s]|eyJ")

# One encoder for every line: json.dumps(..., default=str) builds a new one per call.
_ENCODER = json.JSONEncoder(default=str)

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def redact(value):
    """Return `value` with secrets replaced by [REDACTED]: mapping keys by name, text by pattern."""
    if isinstance(value, dict) or (hasattr(value, "items") and hasattr(value, "keys")):
        return {k: REDACTED if _SENSITIVE_KEY.match(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)  # anything else is logged as its text, so its text is what gets redacted
    if not _MAY_HOLD_SECRET.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _message(record):
    """The record's message with its %-arguments redacted before they are interpolated."""
    if not record.args:
        return str(record.msg)
    args = record.args
    safe = redact(args) if isinstance(args, dict) else tuple(redact(list(args)))
    try:
        return str(record.msg) % safe
    except (TypeError, ValueError):
        return record.getMessage()


def _access_fields(atoms):
    """Structured fields from a gunicorn access-log record (its args are the log atoms).

    Built field by field rather than redacted by the generic walk: only the fields a client writes
    (path and query, user agent, request id) can hold a secret, so only they are redacted; the rest
    are numbers, the method and the peer address.
    """
    query = atoms.get("q", "")
    status = atoms.get("s")
    request_id = atoms.get("{x-request-id}o")
    return {
        "msg": "request",
        "remote": atoms.get("h"),
        "method": atoms.get("m"),
        "path": redact(atoms.get("U", "") + (f"?{query}" if query else "")),
        "status": int(status) if str(status).isdigit() else status,
        "bytes": atoms.get("B"),
        "duration_ms": round(float(atoms.get("D", 0)) / 1000, 1),
        "request_id": redact(request_id) if request_id and request_id != "-" else None,
        "user_agent": redact(atoms.get("a")),
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras; all redacted."""

    def format(self, record):
        entry = {
            "ts": f"{self._second(int(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
        }
        if record.name == "gunicorn.access" and isinstance(record.args, dict) and not record.exc_info:
            entry.update(_access_fields(record.args))  # redacted field by field
            return _ENCODER.encode(entry)
        entry["msg"] = _message(record)
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _ENCODER.encode(redact(entry))

    _last_second = (None, "")

    def _second(self, second):
        """`second` (epoch) as UTC ISO 8601 to the second; formatted once per second, not once per line."""
        if self._last_second[0] != second:
            self._last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return self._last_second[1]


def exit_with_error(message, logger="oneshot"):
    """Stop the process with status 1 after one JSON line on stderr saying why (level ERROR).

    For start-up checks, which run before or outside gunicorn's logging: a log shipper reading the
    service's output still gets one JSON object per line, and the operator one clear message.
    """
    configure_logging()
    logging.getLogger(logger).error("%s", message)
    sys.exit(1)


def configure_logging(level="INFO"):
    """Send every log record to stderr as redacted JSON; safe to call more than once."""
    root = logging.getLogger()
    root.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.handlers = [handler]
