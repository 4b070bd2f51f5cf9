"""One request to a Chat Completions server, and what its failures mean.

`post_chat` returns the streaming response of a 200, or raises: `Retry` for what is worth trying
again (429, 5xx, no connection), `AgentError` for what is not (`model_auth` for 401/403,
`model_timeout`, `model_error` with the server's own words). AGENT_API_KEY is sent in the
Authorization header only, and `said` takes it out of anything the server says back.
"""

import requests

from orchestrator.agents import AgentError

RETRIES = 3  # further attempts after a 429, a 5xx or a refused connection
BACKOFF = 0.5  # seconds before the first retry, doubled each time (when no Retry-After says otherwise)
MAX_RETRY_AFTER = 30


class Retry(Exception):
    """A model call worth trying again: `message` if it never succeeds, `delay` before the next try."""

    def __init__(self, message, delay=None):
        super().__init__(message)
        self.message, self.delay = message, delay


def retry_after(response):
    """The server's Retry-After in seconds (capped at MAX_RETRY_AFTER), or None when it sent none."""
    raw = response.headers.get("Retry-After", "").strip()
    return min(int(raw), MAX_RETRY_AFTER) if raw.isascii() and raw.isdigit() else None


def said(message, key):
    """The server's own words: one line, at most 300 characters, never the key."""
    message = " ".join(str(message).split())[:300]
    return message.replace(key, "[REDACTED]") if key else message


def detail(response, key):
    """`: <the server's own error message>`, or nothing when it gave none."""
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        return ""
    return f": {said(message, key)}" if isinstance(message, str) and message.strip() else ""


def post_chat(http, url, key, body, timeout):
    """POST `body` to `url` with `stream: true`; the response of a 200, else `Retry` or `AgentError`."""
    headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        response = http.post(url, json=body, headers=headers, stream=True, timeout=(min(10, timeout), timeout))
    except requests.ConnectTimeout:
        raise Retry("The model server could not be reached in time") from None
    except requests.Timeout:
        raise AgentError("model_timeout", f"The model sent nothing for {timeout} s (AGENT_TIMEOUT).") from None
    except requests.ConnectionError:
        raise Retry("The model server could not be reached") from None
    status = response.status_code
    if status == 200:
        return response
    why = detail(response, key)
    response.close()
    if status in (401, 403):
        raise AgentError(
            "model_auth", f"The model server refused the credentials (HTTP {status}): check AGENT_API_KEY."
        )
    if status == 429 or status >= 500:
        raise Retry(f"The model server answered HTTP {status}", retry_after(response))
    raise AgentError("model_error", f"The model server answered HTTP {status}{why}")
