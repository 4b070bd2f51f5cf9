"""What a request sent, read and checked: JSON bodies, string fields and whole numbers.

Each helper returns the value or raises the API's 400 (`invalid_field`, naming the field) — or
415/413 for a body that is not JSON or too large. The whole-number rule itself is
`common.config_parsers.parse_whole_number`, which also reads settings and gunicorn's, so it lives where
gunicorn's master may import it (standard library only); the helpers here wrap it.
"""

import json

from flask import current_app, request

from common.config_parsers import parse_whole_number
from common.errors import ApiError, invalid_field


class _RepeatedKey(ValueError):
    """A JSON object named the same key twice."""

    def __init__(self, key):
        super().__init__(key)
        self.key = json.dumps(key)  # quoted and escaped: it came from the client


def _object_without_repeats(pairs):
    """A JSON object as a dict, refusing a repeated key (json.loads would silently keep the last)."""
    body = dict(pairs)
    if len(body) != len(pairs):
        seen = set()
        raise _RepeatedKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return body


def json_body():
    """The request's JSON object, or a 415 / 400 error saying what is wrong with it.

    A key named twice in one object is refused: another parser on the path (a proxy, a WAF) may
    take the first where Python takes the last, and the two would disagree about what was asked.
    """
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send a JSON body with Content-Type: application/json.")
    data = request.get_data(cache=True)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    # A chunked body has no Content-Length to refuse up front, and werkzeug stops reading at the
    # limit without complaint: a body that filled the limit is taken to have gone past it.
    if request.content_length is None and limit is not None and len(data) >= limit:
        raise ApiError(413, "payload_too_large", f"The request body is larger than {limit} bytes.")
    try:
        body = json.loads(data or b"null", object_pairs_hook=_object_without_repeats)
    except _RepeatedKey as e:
        raise ApiError(400, "malformed_json", f"The request body names the key {e.key} more than once.") from None
    except RecursionError:  # thousands of nested [ or {: the parser's recursion limit, not our fault
        raise ApiError(400, "malformed_json", "The request body is nested too deeply.") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "The request body must be a JSON object.")
    return body


def string_field(body, name, min_len, max_len, pattern=None, hint=""):
    """Return `body[name]` if it is a string of the right length (and shape), else raise 400 naming it."""
    value = body.get(name)
    if not isinstance(value, str):
        raise invalid_field(name, "is required and must be a string")
    if not min_len <= len(value) <= max_len:
        raise invalid_field(name, f"must be {min_len} to {max_len} characters")
    if not value.isprintable() and any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise invalid_field(name, "must be valid Unicode text")  # a lone surrogate from a JSON \u escape
    if "\x00" in value:  # PostgreSQL text cannot hold NUL: refused here, not a 500 at the INSERT
        raise invalid_field(name, "must not contain NUL characters")
    if pattern and not pattern.fullmatch(value):
        raise invalid_field(name, hint or "has characters that are not allowed")
    return value


def whole_number(value, name, low, high):
    """`value` (an int, or text of ASCII digits) as an int in [low, high], else 400 naming `name`."""
    try:
        return parse_whole_number(value, low, high)
    except ValueError:
        raise invalid_field(name, f"must be a whole number from {low} to {high}") from None


def number_field(body, name, default, low, high):
    """`body[name]` as a JSON whole number in [low, high] (`default` when absent), else 400 naming it."""
    value = body.get(name, default)
    if not isinstance(value, int):  # "3" and 3.0 are not whole numbers in JSON
        value = None
    return whole_number(value, name, low, high)


def query_number(name, default, low, high):
    """The query argument `name` as a whole number in [low, high] (`default` when absent), else 400."""
    raw = request.args.get(name)
    return default if raw is None else whole_number(raw, name, low, high)
