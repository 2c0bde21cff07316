"""One access line per HTTP answer (logger ``sds.http``), 401/403/404/422 included: method, path, route, status,
bytes, duration and X-Correlation-ID. Never the query string or headers (they may carry tokens). Costs one
isEnabledFor check when the level is above INFO; at INFO the line goes straight to the stream when only our
handler is on its way (``logs.access_line``)."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, request

from sds_registry.logs import access_line

log = logging.getLogger("sds.http")
_STARTED = "sds.started"


def install(app: Flask) -> None:
    """Register the hooks; call before the other after_request hooks so this one runs last (after gzip)."""
    app.before_request(_start)
    app.after_request(_access_line)


def _start() -> None:
    request.environ[_STARTED] = time.perf_counter()


def _access_line(response: Response) -> Response:
    if log.isEnabledFor(logging.INFO):
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not six
        environ = req.environ
        started = environ.get(_STARTED)
        duration_ms = round((time.perf_counter() - started) * 1000.0, 3) if started is not None else None
        rule = req.url_rule
        size = response.content_length
        correlation_id = environ.get("HTTP_X_CORRELATION_ID")
        method, path, status = req.method, req.path, response.status_code
        fields = {"http_method": method, "path": path, "route": rule.rule if rule is not None else None,
                  "status": status, "bytes": size, "duration_ms": duration_ms, "correlation_id": correlation_id}
        access_line(log, f"{method} {path} {status} {size} B {duration_ms} ms {correlation_id or '-'}", fields)
    return response
