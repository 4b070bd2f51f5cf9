"""gunicorn's logger with a cheaper access line: only the atoms the JSON line uses are gathered.

gunicorn's own `Logger.access` builds every atom for every request (each request and response header,
every environ variable, two time formats) and routes them through `Logger.info`, which also looks up
the caller's frame. The JSON formatter in `common.logs` reads nine of them, so this logger gathers only
those and hands the record straight to the `gunicorn.access` logger's handlers. The line and its
redaction are unchanged: `common.logs.JsonFormatter` still writes it.

Loaded by gunicorn's master (`logger_class` in gunicorn.conf.py): standard library and gunicorn only.
"""

import logging

from gunicorn.glogging import Logger


def _request_id(headers):
    for name, value in headers:
        if len(name) == 12 and name.lower() == "x-request-id":
            return value
    return None


class AccessLogger(Logger):
    """gunicorn's Logger, except that `access` gathers only the atoms `common.logs` uses."""

    def setup(self, cfg):
        """gunicorn's setup; the access format is read here once (each `cfg.` read is a settings lookup)."""
        super().setup(cfg)
        self._access_format = cfg.access_log_format

    def access(self, resp, req, environ, request_time):
        """Log one request: peer, method, path and query, status, bytes, duration, request id, agent."""
        if not self.access_log_enabled or not self.access_log.isEnabledFor(logging.INFO):
            return
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        headers = resp.headers.items() if hasattr(resp.headers, "items") else resp.headers
        atoms = {
            "h": environ.get("REMOTE_ADDR", "-"),
            "m": environ.get("REQUEST_METHOD"),
            "U": environ.get("PATH_INFO"),
            "q": environ.get("QUERY_STRING"),
            "s": status,
            "B": getattr(resp, "sent", None),
            "D": request_time.seconds * 1_000_000 + request_time.microseconds,
            "a": environ.get("HTTP_USER_AGENT", "-"),
            "{x-request-id}o": _request_id(headers),
        }
        try:
            # What Logger.info would make, without its search of the stack for the caller's line.
            record = self.access_log.makeRecord(
                self.access_log.name, logging.INFO, __file__, 0, self._access_format, (atoms,), None
            )
            self.access_log.handle(record)
        except Exception:
            self.error(f"Failed to log the request {environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}")
