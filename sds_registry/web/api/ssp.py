"""SSP endpoints on the HTTP app: ``POST /api/ssp/authorise`` (``bp``) and ``GET /api/audit`` (``audit_bp``).

``/authorise`` gives the proxy's decision as JSON without forwarding, for teams running their own proxy.
Body: ``{"method": "GET", "targetUrl": "https://...", "headers": {"Ssp-From": ..., "Authorization": ...},
"clientCertificateCn": "..."}`` (the CN only when the caller's proxy terminates mutual TLS; the FQDN check
then applies). The answer is 200 with the decision; malformed input is a FHIR OperationOutcome (/api table).
``/api/audit`` lists recorded decisions for an admin bearer token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request

from sds_registry.errors import Forbidden, RegistryError, Unauthorized
from sds_registry.models import SspDecision
from sds_registry.services import audit
from sds_registry.services.clients import actor_for_token
from sds_registry.services.ssp import SspRequest, decide, outcome_dict
from sds_registry.web import context
from sds_registry.web.api.errors import BadRequest, registry_error_response
from sds_registry.web.api.views import cursor_like

bp = Blueprint("ssp", __name__)
audit_bp = Blueprint("ssp_audit", __name__)
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


@bp.errorhandler(RegistryError)
@audit_bp.errorhandler(RegistryError)
def _registry_error(exc: RegistryError) -> Response:
    return registry_error_response(exc)


@bp.post("/authorise")
def authorise() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with method, targetUrl and headers")
    method, target, headers = body.get("method"), body.get("targetUrl"), body.get("headers", {})
    cn = body.get("clientCertificateCn")
    if not isinstance(method, str) or not method:
        raise BadRequest("method must be an HTTP method name", "method")
    if not isinstance(target, str) or not target:
        raise BadRequest("targetUrl must be the provider URL the request is for", "targetUrl")
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise BadRequest("headers must be an object of header names to string values", "headers")
    if cn is not None and not isinstance(cn, str):
        raise BadRequest("clientCertificateCn must be a string", "clientCertificateCn")
    ssp_request = SspRequest(method=method, target_url=target, headers=headers, client_cn=cn, mutual_tls=cn is not None)
    settings = context.settings()
    decision = decide(context.session(), ssp_request, jwt_max_future_seconds=settings.ssp_jwt_max_future_seconds)
    audit.writer_for(context.engine(), batch=settings.ssp_audit_batch).record(audit.decision_row(
        trace_id=ssp_request.header("Ssp-TraceID"), from_asid=ssp_request.header("Ssp-From"),
        to_asid=ssp_request.header("Ssp-To"), interaction_id=ssp_request.header("Ssp-InteractionID"),
        method=method, target_url=target, outcome=decision.outcome, status=decision.status,
    ))
    answer: dict[str, Any] = {"allowed": decision.allowed, "status": decision.status, "outcome": decision.outcome}
    if decision.allowed:
        answer.update(endpoint=decision.endpoint, cpaId=decision.cpa_id)
    else:
        answer["operationOutcome"] = outcome_dict(decision)
    return jsonify(answer)


def _require_admin() -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the audit needs 'Authorization: Bearer <admin token>'")
    actor = actor_for_token(context.session(), token.strip())
    if actor is None:
        raise Unauthorized("the bearer token is unknown or revoked")
    if not actor.admin:
        raise Forbidden("the SSP audit needs an admin token")


def _time(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date-time (e.g. 2026-01-31T09:00:00Z)", name) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def decision_dict(row: SspDecision) -> dict[str, Any]:
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    return {
        "id": row.id, "at": at.isoformat().replace("+00:00", "Z"), "traceId": row.trace_id,
        "fromAsid": row.from_asid, "toAsid": row.to_asid, "interactionId": row.interaction_id,
        "method": row.method, "targetUrl": row.target_url, "outcome": row.outcome, "status": row.status,
        "providerStatus": row.provider_status, "latencyMs": row.latency_ms,
    }


@audit_bp.get("")
def list_decisions() -> Response:
    """Decisions in id order; filters ``asid`` (sender or receiver), ``trace_id``, ``since``, ``until``;
    pages with ``limit`` and the ``after`` cursor of the previous page's ``next`` link."""
    _require_admin()
    raw_limit, raw_after = request.args.get("limit", str(DEFAULT_LIMIT)), request.args.get("after")
    if not cursor_like(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", "limit")
    if raw_after is not None and not cursor_like(raw_after):
        raise BadRequest("after must be the cursor from a previous page's 'next' link", "after")
    page = audit.list_decisions(
        context.session(), asid=request.args.get("asid"), trace_id=request.args.get("trace_id"),
        since=_time("since"), until=_time("until"), after=None if raw_after is None else int(raw_after),
        limit=int(raw_limit))
    next_url = None
    if page.after is not None:
        args = {k: v for k, v in request.args.items() if k != "after"}
        args["after"] = str(page.after)
        next_url = f"{request.path}?{urlencode(args)}"
    return jsonify({"items": [decision_dict(r) for r in page.items], "next": next_url})
