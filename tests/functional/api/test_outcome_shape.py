"""/api errors share the FHIR facade's OperationOutcome coding: one client reads both (issue 11)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/Spine-OperationOutcome-1"


def _body(response: Any) -> Any:
    body = response.json
    assert body is not None
    return body


def _coding(body: Any) -> list[tuple[str, str, str]]:
    issues = body["issue"]
    return [(c["system"], c["code"], c["display"]) for i in issues for c in i["details"]["coding"]]


def test_api_and_fhir_facade_use_the_same_coding_for_the_same_situation(
    client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    fhir_404 = client.get("/spine-directory/FHIR/R4/Nothing", headers={"Accept": "application/fhir+json"})
    api_404 = client.get("/api/nothing", headers=admin_headers)
    assert fhir_404.status_code == api_404.status_code == 404
    assert _coding(api_404.json) == _coding(fhir_404.json)
    assert _body(api_404)["meta"] == {"profile": [PROFILE]}

    fhir_405 = client.post("/spine-directory/FHIR/R4/Device", headers={"Accept": "application/fhir+json"})
    api_405 = client.delete("/api/providers", headers=admin_headers)
    assert fhir_405.status_code == api_405.status_code == 405
    assert _coding(api_405.json) == _coding(fhir_405.json)


def test_api_validation_issue_names_the_field_and_the_rule(client: FlaskClient,
                                                           admin_headers: dict[str, str]) -> None:
    response = client.post("/api/providers", headers=admin_headers,
                           json={"ods_code": "A20047", "service_root": "https://x.example.nhs.uk/A20047/STU3/1/"})
    assert response.status_code == 422
    body = _body(response)
    (issue,) = body["issue"]
    assert body["resourceType"] == "OperationOutcome" and body["meta"] == {"profile": [PROFILE]}
    assert issue["severity"] == "error" and issue["code"] == "invalid"
    assert issue["expression"] == ["service_root"] and "rule: no-trailing-slash" in issue["diagnostics"]
    (system, code, _display), = _coding(response.json)
    assert system == "https://fhir.nhs.uk/STU3/ValueSet/Spine-ErrorOrWarningCode-1" and code == "INVALID_RESOURCE"


def test_a_missing_field_or_parameter_is_issue_type_required(client: FlaskClient,
                                                             admin_headers: dict[str, str]) -> None:
    """FHIR's issue types: ``required`` for a missing element, ``invalid`` for a malformed one; the Spine
    coding stays the status's (BAD_REQUEST, INVALID_RESOURCE)."""
    missing = client.get("/api/resolve?interaction=urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1")
    assert missing.status_code == 400
    (issue,) = _body(missing)["issue"]
    assert (issue["code"], issue["expression"]) == ("required", ["ods"]) and "rule: required" in issue["diagnostics"]
    assert _coding(missing.json)[0][1] == "BAD_REQUEST"

    body = client.post("/api/providers", headers=admin_headers, json={"service_root": "https://x.example.nhs.uk/A"})
    assert body.status_code == 422
    by_field = {tuple(i["expression"]): i["code"] for i in _body(body)["issue"]}
    assert by_field[("ods_code",)] == "required"
    assert set(by_field.values()) <= {"required", "invalid"}

    malformed = client.get("/api/organisations?limit=-5", headers=admin_headers)
    assert malformed.status_code == 400 and _body(malformed)["issue"][0]["code"] == "invalid"
