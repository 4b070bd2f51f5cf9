"""Reading a server-sent event stream with `requests`, one stream at a time (many at once: sse_clients)."""

import json


def read_sse(response, until=None, limit=1000, into=None):
    """Parse an SSE response into [{"id", "event", "data"}] until the stream ends, `until(event)` is
    true, or `limit` events arrived. Comments (heartbeats) are returned as {"comment": text}. Events
    are appended to `into` as they arrive, when given (for a reader on another thread)."""
    events, current = ([] if into is None else into), {}
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith(":"):
            events.append({"comment": line[1:].strip()})
        elif line.startswith(("id:", "event:", "data:")):
            name, _, value = line.partition(":")
            current[name] = json.loads(value.strip()) if name == "data" else value.strip()
            continue
        elif line == "" and current:
            events.append(current)
            current = {}
        else:
            continue
        if (until and until(events[-1])) or len(events) >= limit:
            break
    return events
