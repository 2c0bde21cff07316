"""POST /api/ssp/authorise (the decision as JSON) and GET /api/audit (admin token, filters, pages)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sds_registry.models import SspDecision
from sds_registry.services.audit import writer_for
from sds_registry.services.clients import create_client
from sds_registry.web.api.ssp import audit_bp
from tests.unit.ssp.fixtures import (
    CONSUMER_ASID,
    CONSUMER_FQDN,
    FOUNDATIONS,
    PROVIDER_ASID,
    STRANGER_ASID,
    seed,
    ssp_headers,
)

SYSTEM = "http://fhir.nhs.net/ValueSet/gpconnect-schedule-response-code-1-0"


@pytest.fixture
def api(app: Flask) -> FlaskClient:
    if "ssp_audit" not in app.blueprints:  # web.app mounts it; a bare app would not
        app.register_blueprint(audit_bp, url_prefix="/api/audit")
    return app.test_client()


def _authorise(client: FlaskClient, app: Flask, **body: object) -> dict[str, object]:
    response = client.post("/api/ssp/authorise", json=body)
    writer_for(app.extensions["sds"]["engine"]).flush()  # nothing may land after the tables are emptied
    assert response.status_code == 200, response.get_data(as_text=True)
    result: dict[str, object] = response.get_json()
    return result


def test_authorise_allowed(api: FlaskClient, app: Flask, committed_session: Session) -> None:
    seed(committed_session)
    headers = ssp_headers()
    answer = _authorise(api, app, method="GET", targetUrl=f"{FOUNDATIONS}/metadata", headers=headers,
                        clientCertificateCn=CONSUMER_FQDN)
    assert answer == {"allowed": True, "status": 200, "outcome": "ALLOWED", "endpoint": FOUNDATIONS,
                      "cpaId": "S000000000001"}
    committed_session.rollback()
    row = committed_session.scalar(select(SspDecision).where(SspDecision.trace_id == headers["Ssp-TraceID"]))
    assert row is not None and (row.outcome, row.status, row.from_asid) == ("ALLOWED", 200, CONSUMER_ASID)


def test_authorise_refused_carries_the_ssp_outcome(api: FlaskClient, app: Flask, committed_session: Session) -> None:
    seed(committed_session)
    answer = _authorise(api, app, method="GET", targetUrl=f"{FOUNDATIONS}/metadata",
                        headers=ssp_headers(sender=STRANGER_ASID))
    token = f"FOT_CHECK_FAILED_MESSAGESENDER_{STRANGER_ASID}_MESSAGERECEIVER_{PROVIDER_ASID}"
    outcome = answer.pop("operationOutcome")
    assert answer == {"allowed": False, "status": 403, "outcome": token}
    assert isinstance(outcome, dict)
    outcome.pop("id")
    assert outcome == {"resourceType": "OperationOutcome", "issue": [{
        "code": "forbidden", "severity": "error",
        "details": {"coding": [{"code": "403", "display": token, "system": SYSTEM}]}, "diagnostics": token}]}


def test_authorise_checks_the_cn_only_when_given(api: FlaskClient, app: Flask, committed_session: Session) -> None:
    seed(committed_session)
    answer = _authorise(api, app, method="GET", targetUrl=f"{FOUNDATIONS}/metadata", headers=ssp_headers(),
                        clientCertificateCn="wrong.test")
    assert (answer["status"], answer["outcome"]) == (495, f"FQDN_CHECK_FAILED_MESSAGESENDER_{CONSUMER_ASID}")


@pytest.mark.parametrize(("body", "field"), [
    ({"targetUrl": "https://x.test/", "headers": {}}, "method"),
    ({"method": "GET", "headers": {}}, "targetUrl"),
    ({"method": "GET", "targetUrl": "https://x.test/", "headers": {"Ssp-From": 1}}, "headers"),
    ({"method": "GET", "targetUrl": "https://x.test/", "clientCertificateCn": 5}, "clientCertificateCn"),
])
def test_authorise_bad_input_is_an_operation_outcome(api: FlaskClient, db: object, body: dict[str, object],
                                                     field: str) -> None:
    response = api.post("/api/ssp/authorise", json=body)
    assert response.status_code == 400
    data = response.get_json()
    assert data["resourceType"] == "OperationOutcome"
    assert data["issue"][0]["details"]["coding"][0]["code"] == "BAD_REQUEST"
    assert data["issue"][0]["expression"] == [field]


def test_authorise_needs_a_json_object(api: FlaskClient, db: object) -> None:
    response = api.post("/api/ssp/authorise", data="nope", content_type="text/plain")
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


# ---- /api/audit --------------------------------------------------------------------------------------------


@pytest.fixture
def tokens(committed_session: Session) -> dict[str, str]:
    admin = create_client(committed_session, "audit-admin", admin=True)
    practice = create_client(committed_session, "practice", ods_codes=("A11111",))
    committed_session.commit()
    return {"admin": admin, "practice": practice}


@pytest.fixture
def decisions(committed_session: Session) -> list[int]:
    start = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    rows = [SspDecision(at=start + timedelta(minutes=i), trace_id=f"trace-{i}",
                        from_asid=CONSUMER_ASID if i % 2 == 0 else STRANGER_ASID, to_asid=PROVIDER_ASID,
                        interaction_id="i", method="GET", target_url="https://x.test/", status=200,
                        outcome="ALLOWED", provider_status=200, latency_ms=1.5) for i in range(5)]
    committed_session.add_all(rows)
    committed_session.commit()
    return [r.id for r in rows]


def _get(client: FlaskClient, token: str | None, query: str = "") -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get(f"/api/audit{query}", headers=headers)
    return response.status_code, response.get_json()


def test_audit_needs_an_admin_token(api: FlaskClient, tokens: dict[str, str], decisions: list[int]) -> None:
    assert _get(api, None)[0] == 401
    assert _get(api, "sds_unknown")[0] == 401
    status, body = _get(api, tokens["practice"])
    assert status == 403 and body["resourceType"] == "OperationOutcome"


def test_audit_lists_filters_and_pages(api: FlaskClient, tokens: dict[str, str], decisions: list[int]) -> None:
    status, body = _get(api, tokens["admin"])
    assert status == 200 and body["next"] is None
    items = body["items"]
    assert isinstance(items, list) and [i["traceId"] for i in items] == [f"trace-{i}" for i in range(5)]
    assert items[0] == {"id": decisions[0], "at": "2026-01-01T09:00:00Z", "traceId": "trace-0",
                        "fromAsid": CONSUMER_ASID, "toAsid": PROVIDER_ASID, "interactionId": "i", "method": "GET",
                        "targetUrl": "https://x.test/", "outcome": "ALLOWED", "status": 200, "providerStatus": 200,
                        "latencyMs": 1.5}
    _, body = _get(api, tokens["admin"], f"?asid={STRANGER_ASID}")
    assert [i["traceId"] for i in body["items"]] == ["trace-1", "trace-3"]  # type: ignore[union-attr]
    _, body = _get(api, tokens["admin"], "?trace_id=trace-2")
    assert [i["traceId"] for i in body["items"]] == ["trace-2"]  # type: ignore[union-attr]
    _, body = _get(api, tokens["admin"], "?since=2026-01-01T09:01:00Z&until=2026-01-01T09:03:00Z")
    assert [i["traceId"] for i in body["items"]] == ["trace-1", "trace-2"]  # type: ignore[union-attr]
    _, page = _get(api, tokens["admin"], "?limit=2")
    assert [i["traceId"] for i in page["items"]] == ["trace-0", "trace-1"]  # type: ignore[union-attr]
    assert page["next"] == f"/api/audit?limit=2&after={decisions[1]}"
    _, page = _get(api, tokens["admin"], f"?limit=2&after={decisions[1]}")
    assert [i["traceId"] for i in page["items"]] == ["trace-2", "trace-3"]  # type: ignore[union-attr]


@pytest.mark.parametrize("query", ["?limit=0", "?limit=501", "?after=x", "?since=yesterday"])
def test_audit_bad_parameters(api: FlaskClient, tokens: dict[str, str], query: str) -> None:
    status, body = _get(api, tokens["admin"], query)
    assert status == 400 and body["resourceType"] == "OperationOutcome"
