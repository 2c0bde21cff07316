"""One access line per HTTP answer (logger ``sds.http``), 401/403/404/422 included: method, path, route, status,
bytes, duration and X-Correlation-ID. Never the query string or headers (they may carry tokens). Costs one
isEnabledFor check when the level is above INFO."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, request

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
        started = request.environ.get(_STARTED)
        duration_ms = round((time.perf_counter() - started) * 1000.0, 3) if started is not None else None
        rule = request.url_rule
        size = response.content_length
        correlation_id = request.headers.get("X-Correlation-ID")
        log.info("%s %s %s %s B %s ms %s", request.method, request.path, response.status_code, size, duration_ms,
                 correlation_id or "-",
                 extra={"http_method": request.method, "path": request.path,
                        "route": rule.rule if rule is not None else None, "status": response.status_code,
                        "bytes": size, "duration_ms": duration_ms, "correlation_id": correlation_id})
    return response
