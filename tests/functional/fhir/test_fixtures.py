"""Every published SDS FHIR Bundle (national backend outputs, OpenAPI examples, client mocks) reproduced
from equivalent registry records loaded through the registry services."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from sds_registry.fhir import json_text, render
from tests.functional.fhir.fixtures import (
    NATIONAL,
    RESEARCH,
    UUID_UPPER,
    Surrogates,
    bundle_fixtures,
    load_device_records,
    load_endpoint_records,
    load_fixture,
    load_json,
    normalised,
)
from tests.functional.fhir.validation import check_response

#: Client mocks that no directory following the national contract can produce, each for a reason checked
#: in test_excluded_fixtures_are_impossible.
IMPOSSIBLE = {
    RESEARCH / "integration-adaptor-gpc-consumer" / "intTest-sds" / "sds_endpoint_no_address_response.json":
        "an empty-string address (the national API omits absent values; the mock tests a client's guard)",
    RESEARCH / "integration-adaptor-mhs" / "routing-tests-data" / "sds_device_multiple_results_response.json":
        "two Devices with one ASID (the ASID is the DN) owned by two organisations, for one organization query",
    RESEARCH / "integration-adaptor-mhs" / "sds-api-mock-wiremock" / "__files" / "endpoint.json":
        "an Endpoint with several interaction extensions (nhsMhsSvcIA is single-valued)",
}
FIXTURES = [p for p in bundle_fixtures() if p not in IMPOSSIBLE]
#: National outputs whose key order is the current backend's: compared as text (element order included).
ORDERED = {p for p in FIXTURES if NATIONAL in p.parents} - {
    # Written by an older backend that emitted Endpoint keys in another order (extension first).
    NATIONAL / "integration-test-expected" / "endpoint.json",
}


def test_the_fixture_set_is_complete() -> None:
    names = {str(p.relative_to(RESEARCH)) for p in FIXTURES}
    assert len(FIXTURES) >= 25, names
    assert "spine-directory-service-api/integration-test-expected/device.json" in names
    assert "spine-directory-service-api/reference-impl-unit-test-expected/SDS-Endpoint-Example.json" in names


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: str(p.relative_to(RESEARCH)))
def test_fixture_reproduced(path: Path, client: FlaskClient, committed_session: Session) -> None:
    loaded = load_fixture(committed_session, path)
    committed_session.commit()
    url = f"/spine-directory/FHIR/R4/{loaded.path}?{quote(loaded.query, safe='=&:/')}"
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = check_response(loaded.path, response)

    assert UUID_UPPER.match(body["id"])
    assert body["link"] == [{"relation": "self", "url": f"http://localhost/spine-directory/FHIR/R4/{loaded.path}?"
                                                         f"{loaded.query}"}]
    for item in body["entry"]:
        assert UUID_UPPER.match(item["resource"]["id"])
        assert item["fullUrl"] == f"http://localhost/spine-directory/FHIR/R4/{loaded.path}/{item['resource']['id']}"
    actual = [loaded.surrogates.restore(normalised(e["resource"])) for e in body["entry"]]
    expected = [normalised(r) for r in loaded.resources]
    assert body["total"] == len(expected)
    if path in ORDERED:
        assert json_text.dumps(actual) == json_text.dumps(expected)
        fixture = load_json(path)
        if isinstance(fixture, dict):  # the whole Bundle, key order included
            whole = loaded.surrogates.restore(normalised({**body, "entry": body["entry"]}))
            assert json_text.dumps(whole) == json_text.dumps(normalised(fixture))
    else:
        assert actual == expected


def test_excluded_fixtures_are_impossible() -> None:
    empty_address = load_json(next(p for p in IMPOSSIBLE if p.name == "sds_endpoint_no_address_response.json"))
    assert empty_address["entry"][0]["resource"]["address"] == ""
    devices = load_json(next(p for p in IMPOSSIBLE if p.name == "sds_device_multiple_results_response.json"))
    asids = [i["value"] for e in devices["entry"] for i in e["resource"]["identifier"]
             if i["system"] == render.ASID_SYSTEM]
    owners = {e["resource"]["owner"]["identifier"]["value"] for e in devices["entry"]}
    assert len(set(asids)) == 1 < len(asids) and len(owners) == 2
    endpoint = load_json(next(p for p in IMPOSSIBLE if p.name == "endpoint.json"))["entry"][0]["resource"]
    assert sum(e["url"] == render.INTERACTION_EXTENSION for e in endpoint["extension"]) > 1


MAPPER = NATIONAL / "fhir-json-mapper-fixtures"


@pytest.mark.parametrize("kind", ["device", "endpoint"])
def test_mapper_everything_pair_through_the_services(kind: str, client: FlaskClient,
                                                    committed_session: Session) -> None:
    """The mapper pairs whose input is a whole record, as registry records loaded through the services and
    read back over HTTP (the other pairs lack an ASID, party key or ODS code, which the registry requires;
    tests/unit/fhir/test_render.py runs all eleven through the renderer)."""
    expected = json.loads((MAPPER / kind / "everything.out.json").read_text())
    resources = expected if isinstance(expected, list) else [expected]
    surrogates = Surrogates()
    if kind == "device":
        query, path = load_device_records(committed_session, resources, surrogates), "Device"
    else:
        query, path = load_endpoint_records(committed_session, resources, surrogates), "Endpoint"
    committed_session.commit()
    response = client.get(f"/spine-directory/FHIR/R4/{path}?{quote(query, safe='=&:/')}")
    body = check_response(path, response)
    actual = [surrogates.restore(normalised(e["resource"])) for e in body["entry"]]
    assert json_text.dumps(actual) == json_text.dumps(normalised(resources))
