"""The SSP activity page (/ssp): the newest decisions under filters (ASID, outcome, trace id), each refusal in
words, and a chart of decisions per minute by kind of outcome over the last hour (SVG drawn here)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import request
from markupsafe import Markup
from werkzeug.wrappers import Response

from sds_registry.services import activity
from sds_registry.web import context
from sds_registry.web.pages import bp
from sds_registry.web.pages.chart import COLOURS, per_minute_svg
from sds_registry.web.pages.common import page, when
from sds_registry.web.pages.explain import refusal


def _before() -> tuple[datetime, int] | None:
    """The (at, id) cursor of an older page: ``before=<ISO time>~<id>``; None when absent or malformed."""
    at, _, row_id = request.args.get("before", "").partition("~")
    try:
        stamp = datetime.fromisoformat(at)
    except ValueError:
        return None
    if not row_id.isdigit() or len(row_id) > 18:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC), int(row_id))


def _text(name: str) -> str | None:
    """A text filter, trimmed; None when empty or holding a NUL (no stored value has one; PostgreSQL refuses it)."""
    value = request.args.get(name, "").strip()
    return value if value and "\x00" not in value else None


@bp.get("/ssp")
def ssp() -> Response:
    outcome = request.args.get("outcome", "")
    filters = activity.DecisionFilters(
        asid=_text("asid"), outcome=outcome if outcome in activity.OUTCOME_FILTERS else None,
        trace_id=_text("trace_id"),
    )
    session = context.session()
    found = activity.recent_decisions(session, filters, before=_before())
    rows = [{"row": d, "words": refusal(d.outcome), "allowed": d.outcome == activity.ALLOWED, "at": when(d.at)}
            for d in found.items]
    older = None
    if found.before is not None:
        at, row_id = found.before
        stamp = (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()
        older = {k: v for k, v in (("asid", filters.asid), ("outcome", filters.outcome),
                                   ("trace_id", filters.trace_id)) if v} | {"before": f"{stamp}~{row_id}"}
    chart = activity.decisions_per_minute(session)
    svg = Markup(per_minute_svg(chart.start, chart.counts, chart.minutes))  # noqa: S704 (built escaped, chart.py)
    return page("ssp.html", title="SSP activity", filters=filters, rows=rows, older=older, chart=chart, svg=svg,
                colours=COLOURS, outcome_kinds=[k for k in activity.OUTCOME_FILTERS if k not in ("allowed", "refused")])
