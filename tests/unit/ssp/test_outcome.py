"""The SSP's OperationOutcome bodies and the XML/JSON choice."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest

from sds_registry.services.ssp import refuse
from sds_registry.ssp.outcome import render, wants_json


@pytest.mark.parametrize(("accept", "query", "expected"), [
    (None, "", False),
    ("application/fhir+xml", "", False),
    ("application/fhir+json", "", True),
    ("application/json", "", True),
    ("application/fhir+xml;q=0.5, application/fhir+json", "", True),
    ("application/fhir+json;q=0.5, application/fhir+xml", "", False),
    ("application/fhir+json;q=0", "", False),
    ("*/*", "", False),
    ("application/fhir+xml", "_format=json", True),
    ("application/fhir+json", "x=1&_format=application/fhir%2Bxml", False),
])
def test_wants_json(accept: str | None, query: str, expected: bool) -> None:
    assert wants_json(accept, query) is expected


def test_json_shape_and_member_order() -> None:
    body, content_type = render(refuse(403, "forbidden", "ASID_CHECK_FAILED_MESSAGESENDER_100000000001"),
                                as_json=True)
    assert content_type == "application/fhir+json;charset=utf-8"
    data = json.loads(body)
    assert list(data) == ["resourceType", "id", "issue"]
    assert list(data["issue"][0]) == ["code", "severity", "details", "diagnostics"]
    assert data["issue"][0]["details"]["coding"][0] == {
        "code": "403", "display": "ASID_CHECK_FAILED_MESSAGESENDER_100000000001",
        "system": "http://fhir.nhs.net/ValueSet/gpconnect-schedule-response-code-1-0"}


def test_xml_escapes_and_follows_fhir_element_order() -> None:
    token = 'ENDPOINT_https://p.test/a_CPAID_S1_VARIES_FROM_TARGETURL_https://p.test/b?x=1&y="2"<'
    body, content_type = render(refuse(400, "invalid", token), as_json=False)
    assert content_type == "application/fhir+xml;charset=utf-8"
    root = ElementTree.fromstring(body)
    ns = "{http://hl7.org/fhir}"
    assert root.tag == ns + "OperationOutcome"
    assert [child.tag for child in root] == [ns + "id", ns + "issue"]
    issue = root.find(ns + "issue")
    assert issue is not None
    assert [child.tag[len(ns):] for child in issue] == ["severity", "code", "details", "diagnostics"]
    assert issue.find(ns + "diagnostics").get("value") == token  # type: ignore[union-attr]
    coding = issue.find(f"{ns}details/{ns}coding")
    assert coding is not None and [c.tag[len(ns):] for c in coding] == ["system", "code", "display"]


def test_405_shape() -> None:
    body, _ = render(refuse(405, "not-supported", "METHOD_NOT_ALLOWED", shape="405"), as_json=True)
    assert json.loads(body) == {"resourceType": "OperationOutcome", "issue": [{
        "code": "forbidden", "severity": "fatal", "details": {"coding": [{
            "code": "405", "system": "https://fhir.nhs.uk/StructureDefinition/spine-operationoutcome-1",
            "display": "405: Method Not Allowed"}]}}]}
