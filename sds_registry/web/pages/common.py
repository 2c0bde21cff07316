"""What every page view shares: rendering with the navigation, the 404 page, cursors and timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import render_template, request
from werkzeug.wrappers import Response

NAVIGATION = (("pages.search", "Search"), ("pages.interactions", "Interactions"), ("pages.ssp", "SSP activity"),
              ("pages.register", "Register"))


#: The pages load nothing from elsewhere, run no inline script or style, and may not be framed (the forms).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def page(template: str, status: int = 200, **context: Any) -> Response:
    """A page: its template with the navigation, as text/html, with SECURITY_HEADERS."""
    body = render_template(template, navigation=NAVIGATION, **context)
    return Response(body, status=status, mimetype="text/html", headers=SECURITY_HEADERS)


def not_found(what: str) -> Response:
    return page("not_found.html", 404, title="Not found", what=what)


def cursor(name: str) -> int | None:
    """A keyset cursor from the query string (a positive integer), or None when absent or malformed."""
    raw = request.args.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def when(value: datetime | None) -> str:
    """A stored timestamp as UTC, to the second (SQLite hands them back without a zone)."""
    if value is None:
        return ""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
