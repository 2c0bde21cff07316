"""One access line per HTTP answer (logger ``sds.http``), 401/403/404/422 included: method, path, route, status,
bytes, duration and X-Correlation-ID. Never the query string or headers (they may carry tokens). Costs one
isEnabledFor check when the level is above INFO; at INFO the line goes straight to the stream when only our
handler is on its way (``logs.access_line``)."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, request

from sds_registry.logs import access_line

log = logging.getLogger("sds.http")
#: perf_counter() when the request began (one stamp: the metrics hook reads it too).
STARTED = "sds.started"


def install(app: Flask) -> None:
    """Register the hooks; call before the other after_request hooks so this one runs last (after gzip)."""
    app.before_request(_start)
    app.after_request(_access_line)


def _start() -> None:
    request.environ[STARTED] = time.perf_counter()


def _access_line(response: Response) -> Response:
    if log.isEnabledFor(logging.INFO):
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not six
        environ = req.environ
        started = environ.get(STARTED)
        rule = req.url_rule
        entry = _Line(req.method, req.path, rule.rule if rule is not None else None, response.status_code,
                      response.content_length, time.perf_counter() - started if started is not None else None,
                      environ.get("HTTP_X_CORRELATION_ID"))
        access_line(log, entry, entry.fields)
    return response


class _Line:
    """One request's access line, made into text (str()) or JSON fields only when its batch is written."""

    __slots__ = ("method", "path", "route", "status", "size", "seconds", "correlation_id")

    def __init__(self, method: str, path: str, route: str | None, status: int, size: int | None,
                 seconds: float | None, correlation_id: str | None) -> None:
        self.method, self.path, self.route, self.status, self.size = method, path, route, status, size
        self.seconds, self.correlation_id = seconds, correlation_id

    def duration_ms(self) -> float | None:
        return round(self.seconds * 1000.0, 3) if self.seconds is not None else None

    def __str__(self) -> str:
        return (f"{self.method} {self.path} {self.status} {self.size} B {self.duration_ms()} ms "
                f"{self.correlation_id or '-'}")

    def fields(self) -> dict[str, Any]:
        return {"http_method": self.method, "path": self.path, "route": self.route, "status": self.status,
                "bytes": self.size, "duration_ms": self.duration_ms(), "correlation_id": self.correlation_id}
