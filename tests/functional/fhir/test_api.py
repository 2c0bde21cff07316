"""The SDS FHIR API over the Flask test client: routes, errors, headers, negotiation and the exact request
shapes of the real clients (GP Connect consumer adaptor, MHS adaptor, PSS adaptor, appointment checker)."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fhir.resources.R4B.bundle import Bundle
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from sds_registry import create_app
from sds_registry.config import Settings
from sds_registry.errors import ConfigError
from sds_registry.fhir import json_text, render, search
from sds_registry.services.accredited_systems import create_accredited_system
from sds_registry.services.mhs import create_mhs
from sds_registry.services.synthetic import create_practice
from sds_registry.services.writes import CLI_ACTOR
from sds_registry.web import fhir as views
from tests.functional.fhir.validation import check_fhir, check_response

BASE = "/spine-directory/FHIR/R4"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SVC_SYSTEM = "https://fhir.nhs.uk/Id/nhsServiceInteractionId"
PK_SYSTEM = "https://fhir.nhs.uk/Id/nhsMhsPartyKey"
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
GP2GP = "urn:nhs:names:services:gp2gp:RCMR_IN010000UK05"
GP2GP_FORWARD = "urn:nhs:names:services:gp2gp:COPC_IN000001UK01"
PSIS = "urn:nhs:names:services:psis:REPC_IN150016UK05"
CID = "6d3d3674-7ce5-11ec-90d6-0242ac120003"
UPPER_UUID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$")


@dataclass
class Directory:
    ods: str
    asid: str
    party_key: str
    gp2gp_ods: str = "B86041"
    gp2gp_party_key: str = "B86041-822103"
    gp2gp_asid: str = "200000001329"
    intermediary: str = "https://msg.int.spine2.ncrs.nhs.uk/reliablemessaging/intermediary"


@pytest.fixture
def directory(committed_session: Session) -> Directory:
    practice = create_practice(committed_session, 3)  # every third practice also has a consumer system
    actor = CLI_ACTOR
    create_accredited_system(committed_session, {
        "asid": "200000001329", "ods_code": "B86041", "party_key": "B86041-822103", "manufacturer_org": "YGM24",
        "interactions": [GP2GP, GP2GP_FORWARD, PSIS]}, actor)
    for interaction, cpa in ((GP2GP, "a1b2c3d4e5f6a7b8c9d0"), (GP2GP_FORWARD, "b1b2c3d4e5f6a7b8c9d0"),
                             (PSIS, "c1b2c3d4e5f6a7b8c9d0")):
        create_mhs(committed_session, {
            "ods_code": "B86041", "party_key": "B86041-822103", "interaction_id": interaction, "cpa_id": cpa,
            "endpoints": ["https://gp2gp.tpp.nhs.uk/reliablemessaging/reliablerequest"],
            "fqdn": "gp2gp.tpp.nhs.uk", "sync_reply_mode": "None", "retry_interval": "PT1M", "retries": 2,
            "persist_duration": "PT5M", "duplicate_elimination": "always", "ack_requested": "always",
            "actors": ["urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"]}, actor)
    create_mhs(committed_session, {
        "ods_code": "YES", "party_key": "YES-0000806", "interaction_id": search.RELIABLE_INTERMEDIARY,
        "endpoints": [Directory.intermediary], "cpa_id": "S20001A000999"}, actor)
    committed_session.commit()
    return Directory(practice.ods_code, practice.asid, practice.party_key)


def q(system: str, value: str) -> str:
    return f"{system}|{value}"


def get(client: FlaskClient, path: str, **headers: str) -> TestResponse:
    return client.get(path, headers=headers)


def entries(response: TestResponse) -> list[dict[str, Any]]:
    body = json.loads(response.get_data())
    return [e["resource"] for e in body["entry"]]


def identifier(resource: dict[str, Any], system: str) -> str:
    return next(i["value"] for i in resource["identifier"] if i["system"] == system)


# ---- Routes -------------------------------------------------------------------------------------------------


def test_device_and_endpoint(client: FlaskClient, directory: Directory) -> None:
    device = get(client, f"{BASE}/Device?organization={q(ODS_SYSTEM, directory.ods)}"
                         f"&identifier={q(SVC_SYSTEM, STRUCTURED)}&identifier={q(PK_SYSTEM, directory.party_key)}",
                 **{"X-Correlation-Id": CID})
    assert device.status_code == 200
    assert device.headers["X-Correlation-ID"] == CID
    assert device.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert device.headers["Cache-Control"] == "no-store"
    body = check_response("Device", device)
    assert body["type"] == "searchset" and UPPER_UUID.match(body["id"])
    (resource,) = entries(device)
    assert [i["system"] for i in resource["identifier"]] == [render.ASID_SYSTEM, render.PARTY_KEY_SYSTEM]
    assert identifier(resource, render.ASID_SYSTEM) == directory.asid
    assert resource["owner"]["identifier"]["value"] == directory.ods

    endpoint = get(client, f"{BASE}/Endpoint?organization={q(ODS_SYSTEM, directory.ods)}"
                           f"&identifier={q(SVC_SYSTEM, STRUCTURED)}")
    check_response("Endpoint", endpoint)
    (resource,) = entries(endpoint)
    assert re.fullmatch(rf"https://[a-z0-9.]+/{directory.ods}/STU3/1/gpconnect/structured", resource["address"])
    assert UPPER_UUID.match(endpoint.headers["X-Correlation-ID"])


def test_no_match_is_an_empty_searchset(client: FlaskClient, directory: Directory) -> None:
    response = get(client, f"{BASE}/Endpoint?organization={q(ODS_SYSTEM, 'NOPE1')}"
                           f"&identifier={q(SVC_SYSTEM, METADATA)}")
    body = check_response("Endpoint", response)
    assert response.status_code == 200 and body["total"] == 0 and body["entry"] == []


@pytest.mark.parametrize("path", ["/spine-directory/FHIR/R4/device", f"{BASE}/Device/", f"{BASE}/Device/123",
                                  f"{BASE}/metadata", "/Device", "/spine-directory/Device", f"{BASE}/ENDPOINT"])
def test_unknown_paths_are_404_outcomes(client: FlaskClient, path: str) -> None:
    response = get(client, path, **{"X-Correlation-Id": CID})
    assert response.status_code == 404
    body = check_response("Device", response)
    assert body["id"] == CID and response.headers["X-Correlation-ID"] == CID
    assert body["issue"][0]["diagnostics"] == "HTTP endpoint not found"
    assert body["issue"][0]["details"]["coding"][0]["code"] == "NO_RECORD_FOUND"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
@pytest.mark.parametrize("kind", ["Device", "Endpoint"])
def test_other_methods_are_405(client: FlaskClient, method: str, kind: str) -> None:
    response = client.open(f"{BASE}/{kind}?organization=x", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert UPPER_UUID.match(response.headers["X-Correlation-ID"])
    if method != "HEAD":
        body = check_response(kind, response)
        assert body["issue"][0]["code"] == "not-supported"
        assert body["issue"][0]["diagnostics"] == "HTTP operation not supported"


@pytest.mark.parametrize("fhir_base, path", [("/", "/Device"), ("/spine-directory", "/spine-directory/Device"),
                                             ("spine-directory/", "/spine-directory/Endpoint")])
def test_configurable_base(database_url: str, db: Any, fhir_base: str, path: str) -> None:
    app = create_app({"database_url": database_url, "fhir_base": fhir_base})
    client = app.test_client()
    ok = client.get(f"{path}?organization={q(ODS_SYSTEM, 'A12345')}&identifier={q(SVC_SYSTEM, METADATA)}")
    assert ok.status_code == 200
    assert json.loads(ok.get_data())["link"][0]["url"].startswith(f"http://localhost{path}?organization=")
    assert client.get(f"{BASE}/Device").status_code == 400  # the standard base stays
    assert client.get("/healthcheck").status_code == 200
    app.extensions["sds"]["engine"].dispose()


def test_bad_base_fails_fast() -> None:
    with pytest.raises(ConfigError):
        views.bases("/a b")
    assert views.bases("") == [BASE]
    assert views.bases("/") == [BASE, ""]
    assert Settings().fhir_base == ""


# ---- Parameters and errors ----------------------------------------------------------------------------------


def test_400_texts_over_http(client: FlaskClient, directory: Directory) -> None:
    response = get(client, f"{BASE}/Device?identifier={q(SVC_SYSTEM, METADATA)}", **{"X-Correlation-Id": CID})
    assert response.status_code == 400
    body = check_response("Device", response)
    assert body["id"] == CID
    assert body["issue"][0]["code"] == "required"
    assert body["issue"][0]["diagnostics"] == (
        "HTTP 400: Bad Request (Missing or invalid 'organization' query parameter. "
        "Should be 'organization=https://fhir.nhs.uk/Id/ods-organization-code|value')")
    assert response.get_data(as_text=True).startswith('{\n    "resourceType": "OperationOutcome",\n    "id"')
    illegal = get(client, f"{BASE}/Endpoint?_count=1")
    assert json.loads(illegal.get_data())["issue"][0]["diagnostics"] == (
        "HTTP 400: Bad Request (Illegal query parameter '_count')")
    only_org = get(client, f"{BASE}/Endpoint?organization={q(ODS_SYSTEM, directory.ods)}")
    assert "Should one of following combinations" in json.loads(only_org.get_data())["issue"][0]["diagnostics"]


def test_correlation_id(client: FlaskClient, directory: Directory) -> None:
    url = f"{BASE}/Device?organization={q(ODS_SYSTEM, directory.ods)}&identifier={q(SVC_SYSTEM, METADATA)}"
    upper = CID.upper()
    assert get(client, url, **{"X-Correlation-Id": upper}).headers["X-Correlation-ID"] == upper
    assert get(client, url, **{"x-correlation-id": CID}).headers["X-Correlation-ID"] == CID
    generated = get(client, url).headers["X-Correlation-ID"]
    assert UPPER_UUID.match(generated)
    bad = get(client, url, **{"X-Correlation-Id": "not-a-uuid"})
    assert bad.status_code == 400
    body = check_response("Device", bad)
    assert UPPER_UUID.match(bad.headers["X-Correlation-ID"]) and body["id"] == bad.headers["X-Correlation-ID"]
    assert body["issue"][0]["diagnostics"] == (
        "HTTP 400: Bad Request (Invalid X-Correlation-ID header. Should be an UUIDv4 matching regex "
        "'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')")


@pytest.mark.parametrize("accept, content_type", [
    (None, "application/fhir+json"),
    ("*/*", "application/fhir+json"),
    ("application/fhir+json", "application/fhir+json"),
    ("APPLICATION/FHIR+JSON", "application/fhir+json"),
    ("application/json", "application/json"),
    ("application/json, application/fhir+json", "application/fhir+json"),
    (",  ,  text/plain , application/fhir+JSON", "application/fhir+json"),
    ("text/html, application/json;q=0.9", "application/json"),
    ("application/fhir+json; charset=utf-8", "application/fhir+json"),
    ("application/fhir+xml", "application/fhir+xml"),
    ("text/plain", None),
    ("application/xml;q=0", None),
    ("", None),
])
def test_accept(client: FlaskClient, directory: Directory, accept: str | None, content_type: str | None) -> None:
    url = f"{BASE}/Endpoint?organization={q(ODS_SYSTEM, directory.ods)}&identifier={q(SVC_SYSTEM, METADATA)}"
    response = client.get(url, headers={} if accept is None else {"Accept": accept})
    if content_type is None:
        assert response.status_code == 406
        body = check_response("Endpoint", response)
        assert response.mimetype == "application/fhir+json"
        assert body["issue"][0]["details"]["coding"][0]["code"] == "MISSING_OR_INVALID_HEADER"
        assert body["issue"][0]["diagnostics"] == "Accept type not supported"
        return
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f"{content_type}; charset=utf-8"
    if content_type.endswith("json"):
        check_response("Endpoint", response)


def test_parameters_are_checked_before_accept(client: FlaskClient) -> None:
    assert client.get(f"{BASE}/Device", headers={"Accept": "text/plain"}).status_code == 400


@pytest.mark.parametrize("fmt, mimetype", [("xml", "application/fhir+xml"), ("application/fhir+xml",
                                           "application/fhir+xml"), ("json", "application/fhir+json"),
                                           ("application/json", "application/json")])
def test_format_parameter(client: FlaskClient, directory: Directory, fmt: str, mimetype: str) -> None:
    url = (f"{BASE}/Device?organization={q(ODS_SYSTEM, directory.ods)}&identifier={q(SVC_SYSTEM, METADATA)}"
           f"&_format={quote(fmt)}")
    response = client.get(url, headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.mimetype == mimetype
    if "xml" in mimetype:
        bundle = Bundle.model_validate_xml(response.get_data())
        as_json = json.loads(bundle.model_dump_json())
        assert as_json["total"] == 2 and as_json["entry"][0]["resource"]["resourceType"] == "Device"
        same = client.get(url.split("&_format")[0], headers={"Accept": "application/json"})
        assert [e["resource"]["identifier"] for e in as_json["entry"]] == [r["identifier"] for r in entries(same)]
    assert client.get(url.split("&_format")[0] + "&_format=text/csv").status_code == 406


def test_percent_encoded_and_raw_are_the_same(client: FlaskClient, directory: Directory) -> None:
    raw = f"organization={q(ODS_SYSTEM, directory.ods)}&identifier={q(SVC_SYSTEM, METADATA)}"
    encoded = f"organization={quote(q(ODS_SYSTEM, directory.ods), safe='')}&identifier={quote(q(SVC_SYSTEM, METADATA))}"
    a = get(client, f"{BASE}/Endpoint?{raw}")
    b = get(client, f"{BASE}/Endpoint?{encoded}")
    assert [r["address"] for r in entries(a)] == [r["address"] for r in entries(b)] != []
    assert json.loads(b.get_data())["link"][0]["url"] == f"http://localhost{BASE}/Endpoint?{raw}"


def test_case_rules(client: FlaskClient, directory: Directory) -> None:
    """ODS codes and interactions match case-exactly, party keys case-insensitively (SDS schema)."""
    lower_ods = get(client, f"{BASE}/Device?organization={q(ODS_SYSTEM, directory.ods.lower())}"
                            f"&identifier={q(SVC_SYSTEM, METADATA)}")
    assert json.loads(lower_ods.get_data())["total"] == 0
    lower_key = get(client, f"{BASE}/Endpoint?organization={q(ODS_SYSTEM, directory.ods)}"
                            f"&identifier={q(PK_SYSTEM, directory.party_key.lower())}")
    assert json.loads(lower_key.get_data())["total"] > 10


def test_filters(client: FlaskClient, directory: Directory) -> None:
    base = f"{BASE}/Device?organization={q(ODS_SYSTEM, directory.ods)}&identifier={q(SVC_SYSTEM, METADATA)}"
    assert json.loads(get(client, base).get_data())["total"] == 2  # provider and consumer systems
    by_key = entries(get(client, f"{base}&identifier={q(PK_SYSTEM, directory.party_key)}"))
    assert [identifier(r, render.ASID_SYSTEM) for r in by_key] == [directory.asid]
    consumer = entries(get(client, f"{base}&manufacturing-organization={q(ODS_SYSTEM, 'X09001')}"))
    assert len(consumer) == 1 and consumer[0]["extension"][0]["valueReference"]["identifier"]["value"] == "X09001"


# ---- Real clients -------------------------------------------------------------------------------------------


def test_gp_connect_consumer_adaptor(client: FlaskClient, directory: Directory) -> None:
    """SdsRequestBuilder: %7C-encoded bars, X-Correlation-Id = Ssp-TraceID; reads ASID, address, nhsMHSId."""
    org = f"https://fhir.nhs.uk/Id/ods-organization-code%7C{directory.ods}"
    svc = f"https://fhir.nhs.uk/Id/nhsServiceInteractionId%7C{STRUCTURED}"
    headers = {"apikey": "key", "X-Correlation-Id": CID}
    device = client.get(f"{BASE}/Device?organization={org}&identifier={svc}", headers=headers)
    assert identifier(entries(device)[0], render.ASID_SYSTEM) == directory.asid
    endpoint = client.get(f"{BASE}/Endpoint?organization={org}&identifier={svc}", headers=headers)
    first = entries(endpoint)[0]
    assert first["address"].strip() and identifier(first, render.MHS_ID_SYSTEM)
    own = client.get(f"{BASE}/Device?organization={org}&identifier={svc}"
                     "&manufacturing-organization=https://fhir.nhs.uk/Id/ods-organization-code%7CX09001",
                     headers=headers)
    suppliers = [r["extension"][0]["valueReference"]["identifier"]["value"] for r in entries(device)]
    assert json.loads(own.get_data())["total"] == suppliers.count("X09001") >= 1  # the consumer system
    for response, kind in ((device, "Device"), (endpoint, "Endpoint"), (own, "Device")):
        check_response(kind, response)


def test_mhs_adaptor(client: FlaskClient, directory: Directory) -> None:
    """sds_api_client.py: urllib.parse.quote (':' and '|' encoded, '/' kept); Endpoint without organization;
    every identifier and all six reliability sub-extensions are read with [0] (a missing one raises)."""
    org = quote(f"https://fhir.nhs.uk/Id/ods-organization-code|{directory.gp2gp_ods}")
    svc = quote(f"https://fhir.nhs.uk/Id/nhsServiceInteractionId|{GP2GP}")
    headers = {"X-Correlation-ID": CID.upper(), "apikey": "k"}
    device = client.get(f"{BASE}/Device?organization={org}&identifier={svc}", headers=headers)
    (as_record,) = entries(device)
    party_key = identifier(as_record, render.PARTY_KEY_SYSTEM)
    assert identifier(as_record, render.ASID_SYSTEM) == directory.gp2gp_asid
    pk = quote(f"https://fhir.nhs.uk/Id/nhsMhsPartyKey|{party_key}")
    endpoint = client.get(f"{BASE}/Endpoint?identifier={svc}&identifier={pk}", headers=headers)
    check_response("Endpoint", endpoint)
    (mhs,) = entries(endpoint)
    for system in (render.FQDN_SYSTEM, render.PARTY_KEY_SYSTEM, render.CPA_ID_SYSTEM, render.MHS_ID_SYSTEM):
        assert list(filter(lambda i, s=system: i["system"] == s, mhs["identifier"]))[0]["value"]
    reliability = mhs["extension"][0]["extension"]
    names = [e["url"] for e in reliability]
    assert names == ["nhsMHSSyncReplyMode", "nhsMHSRetryInterval", "nhsMHSRetries", "nhsMHSPersistDuration",
                     "nhsMHSDuplicateElimination", "nhsMHSAckRequested", "nhsMHSActor"]
    assert reliability[2] == {"url": "nhsMHSRetries", "valueInteger": 2}


def test_patient_switching_adaptor(client: FlaskClient, directory: Directory) -> None:
    """SdsRequestBuilder: identifier before organization, Accept: application/json, parsed with HAPI strict
    mode; the persist duration is the first extension's nhsMHSPersistDuration."""
    headers = {"Accept": "application/json", "X-Correlation-Id": CID, "apikey": "k"}
    device = client.get(f"{BASE}/Device?identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId%7C{GP2GP}"
                        f"&organization=https://fhir.nhs.uk/Id/ods-organization-code%7C{directory.gp2gp_ods}",
                        headers=headers)
    assert device.headers["Content-Type"] == "application/json; charset=utf-8"
    check_response("Device", device)
    party_key = identifier(entries(device)[0], render.PARTY_KEY_SYSTEM)
    endpoint = client.get(f"{BASE}/Endpoint?identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId%7C{GP2GP}"
                          f"&identifier=https://fhir.nhs.uk/Id/nhsMhsPartyKey%7C{party_key}", headers=headers)
    first_extension = entries(endpoint)[0]["extension"][0]
    assert first_extension["url"] == render.RELIABILITY_EXTENSION
    persist = [e for e in first_extension["extension"] if e["url"] == "nhsMHSPersistDuration"]
    assert persist == [{"url": "nhsMHSPersistDuration", "valueString": "PT5M"}]


def test_appointment_checker(client: FlaskClient, directory: Directory) -> None:
    endpoint = client.get(f"{BASE}/Endpoint?organization=https://fhir.nhs.uk/Id/ods-organization-code|{directory.ods}"
                          f"&identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|{METADATA}")
    (mhs,) = entries(endpoint)
    party_key = identifier(mhs, render.PARTY_KEY_SYSTEM)
    device = client.get(f"{BASE}/Device?organization=https://fhir.nhs.uk/Id/ods-organization-code|{directory.ods}"
                        f"&identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|{METADATA}"
                        f"&identifier=https://fhir.nhs.uk/Id/nhsMhsPartyKey|{party_key}")
    (as_record,) = entries(device)
    assert identifier(as_record, render.ASID_SYSTEM) == directory.asid
    assert as_record["extension"][0]["url"] == render.MANUFACTURER_EXTENSION


def test_forward_reliable_substitution(client: FlaskClient, directory: Directory) -> None:
    response = client.get(f"{BASE}/Endpoint?organization={q(ODS_SYSTEM, directory.gp2gp_ods)}"
                          f"&identifier={q(PK_SYSTEM, directory.gp2gp_party_key)}")
    by_interaction = {r["extension"][1]["valueReference"]["identifier"]["value"]: r for r in entries(response)}
    assert by_interaction[GP2GP_FORWARD]["address"] == directory.intermediary  # COPC_IN000001UK01
    assert by_interaction[GP2GP]["address"] == directory.intermediary  # RCMR_IN010000UK05 is forward reliable too
    assert by_interaction[PSIS]["address"] == "https://gp2gp.tpp.nhs.uk/reliablemessaging/reliablerequest"
    assert identifier(by_interaction[GP2GP_FORWARD], render.PARTY_KEY_SYSTEM) == directory.gp2gp_party_key


def test_the_spine_core_organisation_is_a_setting(directory: Directory, database_url: str) -> None:
    """SDS_SPINE_CORE_ODS_CODE, as the national backend: with another organisation there, the YES intermediary
    record is not used and forward reliable interactions keep their registered address."""
    app = create_app({"database_url": database_url, "spine_core_ods_code": "X26"})
    try:
        response = app.test_client().get(f"{BASE}/Endpoint?organization={q(ODS_SYSTEM, directory.gp2gp_ods)}"
                                         f"&identifier={q(PK_SYSTEM, directory.gp2gp_party_key)}")
    finally:
        app.extensions["sds"]["read_pool"].dispose()
        app.extensions["sds"]["engine"].dispose()
    by_interaction = {r["extension"][1]["valueReference"]["identifier"]["value"]: r for r in entries(response)}
    registered = "https://gp2gp.tpp.nhs.uk/reliablemessaging/reliablerequest"
    assert by_interaction[GP2GP_FORWARD]["address"] == registered
    assert by_interaction[GP2GP]["address"] == registered


# ---- Large Bundles, compression -----------------------------------------------------------------------------


def test_gzip_on_request(client: FlaskClient, directory: Directory) -> None:
    url = f"{BASE}/Endpoint?organization={q(ODS_SYSTEM, directory.ods)}&identifier={q(PK_SYSTEM, directory.party_key)}"
    plain = client.get(url)
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["Vary"]
    assert len(entries(plain)) == len(json.loads(gzip.decompress(zipped.get_data())).get("entry"))


def test_large_device_bundle_is_streamed(client: FlaskClient, committed_session: Session) -> None:
    interactions = [f"urn:nhs:names:services:psis:REPC_IN{n:06d}UK05" for n in range(480)]
    create_accredited_system(committed_session, {"asid": "928942012545", "ods_code": "YES",
                                       "party_key": "YES-0000806", "manufacturer_org": "YES",
                                       "interactions": interactions}, CLI_ACTOR)
    committed_session.commit()
    url = f"{BASE}/Device?organization={q(ODS_SYSTEM, 'YES')}&identifier={q(SVC_SYSTEM, interactions[7])}"
    response = client.get(url)
    assert response.is_streamed and "Content-Length" not in response.headers
    body = check_response("Device", response)
    assert len(body["entry"][0]["resource"]["extension"]) == 481
    assert response.get_data(as_text=True) == json_text.dumps(body)
    zipped = client.get(url, headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.is_streamed and zipped.headers["Content-Encoding"] == "gzip"
    check_fhir(gzip.decompress(zipped.get_data()))


# ---- Health checks ------------------------------------------------------------------------------------------


def test_healthchecks(client: FlaskClient) -> None:
    shallow = client.get("/healthcheck")
    assert shallow.status_code == 200 and shallow.get_data() == b""
    deep = client.get("/healthcheck/deep")
    assert deep.status_code == 200 and deep.mimetype == "application/json"
    body = json.loads(deep.get_data())
    assert body["status"] == "pass" and body["details"]["database"]["status"] == "pass"
    assert client.get(f"{BASE}/healthcheck/deep").status_code == 200
    assert client.post("/healthcheck").status_code == 405


def test_deep_healthcheck_fails_with_503(tmp_path: Any) -> None:
    broken = tmp_path / "db.sqlite3"
    broken.write_bytes(b"not a database, " * 64)  # the folder exists (settings accept it); the lookup fails
    app: Flask = create_app({"database_url": f"sqlite:///{broken}"})
    response = app.test_client().get("/healthcheck/deep")
    assert response.status_code == 503
    body = json.loads(response.get_data())
    assert body["status"] == "fail" and body["details"]["database"]["output"]
    app.extensions["sds"]["engine"].dispose()
