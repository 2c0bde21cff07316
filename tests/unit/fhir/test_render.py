"""The pure renderer: the national mapper's in/out pairs, json.dumps-identical text, streaming, errors, XML."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from sds_registry.fhir import json_text, render, render_xml
from tests.functional.fhir.fixtures import NATIONAL

MAPPER = NATIONAL / "fhir-json-mapper-fixtures"


@dataclass
class AsRecord:
    asid: str | None = None
    party_key: str | None = None
    manufacturer_org: str | None = None
    interactions: list[str | None] = field(default_factory=list)
    clients: list[str | None] = field(default_factory=list)


@dataclass
class MhsRecord:
    ods_code: str | None = None
    party_key: str | None = None
    interaction_id: str | None = None
    unique_identifier: str | None = None
    cpa_id: str | None = None
    fqdn: str | None = None
    sync_reply_mode: str | None = None
    retry_interval: str | None = None
    retries: int | None = None
    persist_duration: str | None = None
    duplicate_elimination: str | None = None
    ack_requested: str | None = None
    endpoints: list[str | None] = field(default_factory=list)
    actors: list[str | None] = field(default_factory=list)


def _single(value: Any) -> Any:
    """LDAP multi-valued attribute holding one value (uniqueIdentifier) -> the value."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def as_from_ldap(attrs: dict[str, Any]) -> AsRecord:
    return AsRecord(asid=_single(attrs.get("uniqueIdentifier")), party_key=attrs.get("nhsMhsPartyKey"),
                    manufacturer_org=attrs.get("nhsMhsManufacturerOrg"),
                    interactions=attrs.get("nhsAsSvcIA") or [], clients=attrs.get("nhsAsClient") or [])


def mhs_from_ldap(attrs: dict[str, Any]) -> MhsRecord:
    return MhsRecord(
        ods_code=attrs.get("nhsIDCode"), party_key=attrs.get("nhsMHSPartyKey"), interaction_id=attrs.get("nhsMhsSvcIA"),
        unique_identifier=_single(attrs.get("uniqueIdentifier")), cpa_id=attrs.get("nhsMhsCPAId"),
        fqdn=attrs.get("nhsMhsFQDN"), sync_reply_mode=attrs.get("nhsMHSSyncReplyMode"),
        retry_interval=attrs.get("nhsMHSRetryInterval"), retries=attrs.get("nhsMHSRetries"),
        persist_duration=attrs.get("nhsMHSPersistDuration"),
        duplicate_elimination=attrs.get("nhsMHSDuplicateElimination"), ack_requested=attrs.get("nhsMHSAckRequested"),
        endpoints=attrs.get("nhsMHSEndPoint") or [], actors=attrs.get("nhsMHSActor") or [])


PAIRS = sorted(MAPPER.glob("*/*.in.json"))


def test_every_mapper_pair_is_here() -> None:
    assert len(PAIRS) == 11 and len(list(MAPPER.glob("*/*.out.json"))) == 11


@pytest.mark.parametrize("path", PAIRS, ids=lambda p: f"{p.parent.name}/{p.name[:-8]}")
def test_mapper_pair(path: Path) -> None:
    """Same text as the national mapper (ids patched to a counter, as its tests do), element order included."""
    attrs = json.loads(path.read_text())
    expected = json.loads(path.with_name(path.name.replace(".in.", ".out.")).read_text())
    counter = (str(n) for n in itertools.count())
    if path.parent.name == "device":
        actual: Any = render.device(as_from_ldap(attrs), next(counter))
    else:
        actual = render.endpoints(mhs_from_ldap(attrs), lambda: next(counter))
    assert json_text.dumps(actual) == json_text.dumps(expected)


def test_absent_values_are_omitted_never_empty() -> None:
    record = MhsRecord(ods_code="", party_key="  ", fqdn=None, endpoints=["", None], actors=[None, ""], retries=None,
                       interaction_id="")
    (resource,) = render.endpoints(record, lambda: "X")
    assert list(resource) == ["resourceType", "id", "status", "connectionType", "payloadType"]
    device = render.device(AsRecord(asid="", interactions=["", None], clients=["", None]), "X")
    assert device == {"resourceType": "Device", "id": "X"}


def test_retries_zero_is_a_value_and_an_integer() -> None:
    (resource,) = render.endpoints(MhsRecord(retries=0, endpoints=["https://a.example"]), lambda: "X")
    assert resource["extension"][0]["extension"] == [{"url": "nhsMHSRetries", "valueInteger": 0}]


def test_first_of_several_clients_and_actors() -> None:
    device = render.device(AsRecord(asid="1", clients=["A1", "B2"]), "X")
    assert device["owner"]["identifier"]["value"] == "A1"
    (resource,) = render.endpoints(MhsRecord(actors=["a", "b"]), lambda: "X")
    assert resource["extension"][0]["extension"] == [{"url": "nhsMHSActor", "valueString": "a"}]


def test_intermediary_address_replaces_every_endpoint() -> None:
    record = MhsRecord(endpoints=["https://a.example", "https://b.example"], interaction_id="urn:x:gp2gp:Y")
    resources = render.endpoints(record, lambda: "X", "https://spine.example/intermediary")
    assert [r["address"] for r in resources] == ["https://spine.example/intermediary"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=30,
)


@given(json_values, st.sampled_from([2, 4]))
def test_dumps_is_json_dumps(value: Any, indent: int) -> None:
    assert json_text.dumps(value, indent) == json.dumps(value, indent=indent)


def test_templated_elements_write_as_json_dumps() -> None:
    record = MhsRecord(ods_code="Y\u00e9S", party_key='P"K', fqdn="f", cpa_id="c", unique_identifier="u",
                       interaction_id="urn:\u2028x", retries=3, endpoints=["https://a.example"])
    device = render.device(AsRecord(asid="1", party_key="k", manufacturer_org="m", interactions=["a", "b\\"],
                                    clients=["c"]), "X")
    for value in (render.endpoints(record, lambda: "X"), device, [[device]], {"a": {"b": [device]}}):
        for indent in (2, 4):
            assert json_text.dumps(value, indent) == json.dumps(value, indent=indent)


def test_dumps_matches_the_national_files() -> None:
    for path in (NATIONAL / "integration-test-expected").glob("*.json"):
        value = json.loads(path.read_text())
        assert json_text.dumps(value) == json.dumps(value, indent=2)


@pytest.mark.parametrize("count", [0, 1, 7, 40])
def test_iter_bundle_joins_to_the_bundle(count: int) -> None:
    resources = [render.device(AsRecord(asid=f"{n:012d}", interactions=[f"urn:x:{i}" for i in range(30)]), f"ID{n}")
                 for n in range(count)]
    head = render.bundle_head("B", count, "http://h/Device?organization=x|y")
    chunks = list(json_text.iter_bundle(head, "http://h/Device", iter(resources), chunk=1000))
    whole = render.bundle("B", "http://h/Device", "http://h/Device?organization=x|y", resources)
    assert "".join(chunks) == json_text.dumps(whole) == json.dumps(whole, indent=2)
    if count == 40:
        assert len(chunks) > 5


def test_operation_outcomes() -> None:
    bad = render.operation_outcome(400, "CID", "Illegal query parameter 'x'")
    assert bad["id"] == "CID"
    assert bad["issue"][0]["code"] == "required"
    assert bad["issue"][0]["diagnostics"] == "HTTP 400: Bad Request (Illegal query parameter 'x')"
    assert bad["issue"][0]["details"]["coding"] == [{
        "system": "https://fhir.nhs.uk/STU3/ValueSet/Spine-ErrorOrWarningCode-1", "code": "BAD_REQUEST",
        "display": "Bad request"}]
    expected = {
        404: ("not-found", "NO_RECORD_FOUND", "HTTP endpoint not found"),
        405: ("not-supported", "NOT_IMPLEMENTED", "HTTP operation not supported"),
        406: ("not-supported", "MISSING_OR_INVALID_HEADER", "Accept type not supported"),
        502: ("exception", "INTERNAL_SERVER_ERROR", "Invalid LDAP response received"),
        504: ("timeout", "INTERNAL_SERVER_ERROR", "LDAP request timed out"),
        500: ("exception", "INTERNAL_SERVER_ERROR", "boom"),
        418: ("exception", "BAD_REQUEST", "teapot"),
    }
    for status, (code, spine, diagnostics) in expected.items():
        issue = render.operation_outcome(status, "C", {500: "boom", 418: "teapot"}.get(status))["issue"][0]
        assert (issue["code"], issue["details"]["coding"][0]["code"], issue["diagnostics"]) == (
            code, spine, diagnostics)


def test_xml_follows_fhir_element_order() -> None:
    record = MhsRecord(ods_code="YES", party_key="YES-0000806", interaction_id="urn:a:b", cpa_id="C", fqdn="f.example",
                       unique_identifier="C", retries=2, endpoints=["https://a.example/x?a=1&b=2"])
    resources = render.endpoints(record, lambda: "ID1")
    text = render_xml.bundle(render.bundle_head("B", 1, "http://h/Endpoint?a=1&b=2"), "http://h/Endpoint", resources)
    root = etree.fromstring(text.encode())
    ns = {"f": render_xml.FHIR_NS}
    assert root.tag == f"{{{render_xml.FHIR_NS}}}Bundle"
    endpoint = root.find("f:entry/f:resource/f:Endpoint", ns)
    assert endpoint is not None
    names = [etree.QName(child).localname for child in endpoint]
    assert names == ["id", "extension", "extension", "identifier", "identifier", "identifier", "identifier", "status",
                     "connectionType", "managingOrganization", "payloadType", "address"]
    assert endpoint.find("f:address", ns).get("value") == "https://a.example/x?a=1&b=2"  # type: ignore[union-attr]
    retries = endpoint.find("f:extension/f:extension[@url='nhsMHSRetries']/f:valueInteger", ns)
    assert retries is not None and retries.get("value") == "2"
