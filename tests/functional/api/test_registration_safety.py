"""Safe one-call registrations: service roots as /api/resolve returns them, one provider per practice and
interaction (409 unless "replace"), one consumer per organisation and product, and the consumer's FQDN in the
same call so the SSP's certificate check passes."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sds_registry.models import AccreditedSystem, MessageHandlingSystem
from sds_registry.services.audit import writer_for
from tests.unit.ssp.fixtures import (
    CONSUMER_ASID,
    CONSUMER_ODS,
    FOUNDATIONS,
    PROVIDER_ASID,
    PROVIDER_ODS,
    claims,
    make_jwt,
    ssp_headers,
)

GPC = "urn:nhs:names:services:gpconnect:"
METADATA = GPC + "fhir:rest:read:metadata-1"
STRUCTURED = GPC + "fhir:operation:gpc.getstructuredrecord-1"
BINARY = GPC + "documents:fhir:rest:read:binary-1"
ROOT = "https://gpc.supplier.thirdparty.nhs.uk/B86041/STU3/1"
ENDPOINT_URL = "/spine-directory/FHIR/R4/Endpoint"


def _endpoints(body: dict[str, Any]) -> dict[str, list[str]]:
    return {m["interaction_id"]: m["endpoints"] for m in body["message_handling_systems"]}


def _count(engine: Engine, model: Any, **where: str) -> int:
    with Session(engine) as s:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return s.scalar(query) or 0


@pytest.mark.parametrize("suffix", ["", "/gpconnect", "/gpconnect/structured", "/gpconnect/documents"])
def test_service_root_as_resolve_returns_it_is_not_doubled(
    client: FlaskClient, db: Engine, admin_headers: dict[str, str], suffix: str
) -> None:
    response = client.post("/api/providers", headers=admin_headers, json={
        "ods_code": "B86041", "service_root": ROOT + suffix, "interactions": [METADATA, STRUCTURED, BINARY]})
    assert response.status_code == 201, response.json
    assert _endpoints(response.json) == {
        METADATA: [ROOT + "/gpconnect"],
        STRUCTURED: [ROOT + "/gpconnect/structured"],
        BINARY: [ROOT + "/gpconnect/documents"],
    }


def test_resolve_round_trip_with_replace_keeps_the_endpoints(
    client: FlaskClient, db: Engine, admin_headers: dict[str, str]
) -> None:
    first = client.post("/api/providers", headers=admin_headers, json={
        "ods_code": "B86041", "fqdn": "gpc.supplier.thirdparty.nhs.uk", "interactions": [METADATA, STRUCTURED]})
    assert first.status_code == 201
    resolved = client.get(f"/api/resolve?ods=B86041&interaction={STRUCTURED}").json["service_root_url"]
    again = client.post("/api/providers", headers=admin_headers, json={
        "ods_code": "B86041", "service_root": resolved, "interactions": [METADATA, STRUCTURED], "replace": True})
    assert again.status_code == 201, again.json
    assert _endpoints(again.json) == _endpoints(first.json)
    assert "gpconnect/gpconnect" not in str(again.json)


def test_second_provider_for_a_practice_and_interaction_is_409(
    client: FlaskClient, db: Engine, admin_headers: dict[str, str]
) -> None:
    first = client.post("/api/providers", headers=admin_headers, json={
        "ods_code": "B86041", "fqdn": "one.thirdparty.nhs.uk", "asid": "918000000001", "interactions": [METADATA]})
    assert first.status_code == 201
    party_key = first.json["accredited_system"]["party_key"]
    second = client.post("/api/providers", headers=admin_headers, json={
        "ods_code": "B86041", "fqdn": "two.thirdparty.nhs.uk", "interactions": [METADATA, STRUCTURED]})
    assert second.status_code == 409
    issue = second.json["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "DUPLICATE_REJECTED"
    assert "918000000001" in issue["diagnostics"] and party_key in issue["diagnostics"]
    assert '"replace": true' in issue["diagnostics"]
    assert _count(db, AccreditedSystem) == 1 and _count(db, MessageHandlingSystem) == 1
    bundle = client.get(f"{ENDPOINT_URL}?organization=https://fhir.nhs.uk/Id/ods-organization-code|B86041"
                        f"&identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|{METADATA}",
                        headers={"Accept": "application/fhir+json"}).json
    assert bundle["total"] == 1


def test_replace_retires_the_old_provider(client: FlaskClient, db: Engine, admin_headers: dict[str, str]) -> None:
    client.post("/api/providers", headers=admin_headers, json={
        "ods_code": "B86041", "fqdn": "one.thirdparty.nhs.uk", "asid": "918000000001", "interactions": [METADATA]})
    replaced = client.post("/api/providers", headers=admin_headers, json={
        "ods_code": "B86041", "fqdn": "two.thirdparty.nhs.uk", "asid": "918000000002",
        "interactions": [METADATA, STRUCTURED], "replace": True})
    assert replaced.status_code == 201, replaced.json
    assert client.get("/api/accredited-systems/918000000001").status_code == 404
    assert _count(db, MessageHandlingSystem, ods_code="B86041") == 2
    resolved = client.get(f"/api/resolve?ods=B86041&interaction={METADATA}").json
    assert resolved["asid"] == "918000000002"
    assert resolved["service_root_url"] == "https://two.thirdparty.nhs.uk/B86041/STU3/1/gpconnect"


def test_replace_keeps_the_interactions_an_old_system_still_sends(
    client: FlaskClient, db: Engine, admin_headers: dict[str, str]
) -> None:
    created = client.post("/api/providers", headers=admin_headers, json={
        "ods_code": "B86041", "fqdn": "one.thirdparty.nhs.uk", "asid": "918000000001", "interactions": [METADATA]})
    # The provider is also a consumer (same ASID and party key): it may send the structured record.
    patched = client.patch("/api/accredited-systems/918000000001", headers={**admin_headers, "If-Match": 'W/"1"'},
                           json={"interactions": [METADATA, STRUCTURED]})
    assert patched.status_code == 200, patched.json
    replaced = client.post("/api/providers", headers=admin_headers, json={
        "ods_code": "B86041", "fqdn": "two.thirdparty.nhs.uk", "interactions": [METADATA], "replace": True})
    assert replaced.status_code == 201, replaced.json
    old = client.get("/api/accredited-systems/918000000001").json
    assert old["interactions"] == [STRUCTURED] and old["version"] > patched.json["version"]  # a new version
    assert created.json["accredited_system"]["party_key"] == old["party_key"]


def test_replace_must_be_a_boolean(client: FlaskClient, db: Engine, admin_headers: dict[str, str]) -> None:
    response = client.post("/api/providers", headers=admin_headers, json={
        "ods_code": "B86041", "fqdn": "one.thirdparty.nhs.uk", "replace": "yes"})
    assert response.status_code == 422
    assert response.json["issue"][0]["expression"] == ["replace"]


def test_second_consumer_for_the_same_product_is_409_naming_the_first(
    client: FlaskClient, seeded: Engine, admin_headers: dict[str, str]
) -> None:
    before = _count(seeded, AccreditedSystem, ods_code="K81045")
    response = client.post("/api/consumers", headers=admin_headers, json={
        "ods_code": "K81045", "manufacturer_org": "K81045", "product_name": "Continuum Health GPC",
        "interactions": [METADATA]})
    assert response.status_code == 409
    diagnostics = response.json["issue"][0]["diagnostics"]
    assert "200000042019" in diagnostics and "R3U6M-831547" in diagnostics
    assert _count(seeded, AccreditedSystem, ods_code="K81045") == before
    again = {"ods_code": "Y01234", "interactions": [METADATA]}
    assert client.post("/api/consumers", headers=admin_headers, json=again).status_code == 201
    assert client.post("/api/consumers", headers=admin_headers, json=again).status_code == 409
    other = client.post("/api/consumers", headers=admin_headers, json={**again, "product_name": "Second product"})
    assert other.status_code == 201


def _authorise(client: FlaskClient, app: Flask, cn: str, token: str | None = None) -> dict[str, Any]:
    response = client.post("/api/ssp/authorise", json={
        "method": "GET", "targetUrl": f"{FOUNDATIONS}/metadata", "headers": ssp_headers(token=token),
        "clientCertificateCn": cn})
    writer_for(app.extensions["sds"]["engine"]).flush()  # nothing may land after the tables are emptied
    assert response.status_code == 200, response.get_data(as_text=True)
    answer: dict[str, Any] = response.json
    return answer


def _provider_and_agreement(client: FlaskClient, headers: dict[str, str]) -> None:
    provider = client.post("/api/providers", headers=headers, json={
        "ods_code": PROVIDER_ODS, "fqdn": "provider.test", "asid": PROVIDER_ASID, "interactions": [METADATA]})
    assert provider.status_code == 201, provider.json
    agreement = client.post("/api/data-sharing-agreements", headers=headers,
                            json={"consumer_ods": CONSUMER_ODS, "provider_ods": PROVIDER_ODS})
    assert agreement.status_code == 201, agreement.json


def test_consumer_registered_with_fqdn_in_one_call_passes_the_ssp_certificate_check(
    client: FlaskClient, app: Flask, db: Engine, admin_headers: dict[str, str]
) -> None:
    _provider_and_agreement(client, admin_headers)
    cn = "gpc-consumer.supplier.thirdparty.nhs.uk"
    consumer = client.post("/api/consumers", headers=admin_headers, json={
        "ods_code": CONSUMER_ODS, "asid": CONSUMER_ASID, "interactions": [METADATA], "fqdn": cn})
    assert consumer.status_code == 201, consumer.json
    [mhs] = consumer.json["message_handling_systems"]
    assert mhs["fqdn"] == cn and mhs["party_key"] == consumer.json["party_key"]
    assert not mhs["interaction_id"].startswith(GPC)  # a consumer's MHS record carries no GP Connect interaction
    answer = _authorise(client, app, cn)
    assert (answer["allowed"], answer["outcome"]) == (True, "ALLOWED")
    refused = _authorise(client, app, "someone-else.thirdparty.nhs.uk")
    assert (refused["status"], refused["outcome"]) == (495, f"FQDN_CHECK_FAILED_MESSAGESENDER_{CONSUMER_ASID}")
    # The consumer is no provider: resolve still finds nothing for its organisation.
    assert client.get(f"/api/resolve?ods={CONSUMER_ODS}&interaction={METADATA}").status_code == 404


def test_consumer_without_fqdn_fails_the_certificate_check(
    client: FlaskClient, app: Flask, db: Engine, admin_headers: dict[str, str]
) -> None:
    _provider_and_agreement(client, admin_headers)
    consumer = client.post("/api/consumers", headers=admin_headers, json={
        "ods_code": CONSUMER_ODS, "asid": CONSUMER_ASID, "interactions": [METADATA]})
    assert consumer.status_code == 201 and "message_handling_systems" not in consumer.json
    assert _authorise(client, app, "gpc-consumer.supplier.thirdparty.nhs.uk")["status"] == 495


def test_consumer_fqdn_is_validated(client: FlaskClient, db: Engine, admin_headers: dict[str, str]) -> None:
    response = client.post("/api/consumers", headers=admin_headers, json={
        "ods_code": CONSUMER_ODS, "interactions": [METADATA], "fqdn": "10.0.0.1"})
    assert response.status_code == 422
    assert response.json["issue"][0]["expression"] == ["fqdn"]
    assert _count(db, AccreditedSystem) == 0


def test_jwt_refusal_names_the_claim_and_part_in_the_diagnostics(
    client: FlaskClient, app: Flask, db: Engine, admin_headers: dict[str, str]
) -> None:
    _provider_and_agreement(client, admin_headers)
    cn = "gpc-consumer.supplier.thirdparty.nhs.uk"
    client.post("/api/consumers", headers=admin_headers, json={
        "ods_code": CONSUMER_ODS, "asid": CONSUMER_ASID, "interactions": [METADATA], "fqdn": cn})
    payload = claims()
    del payload["requesting_practitioner"]["identifier"][0]["system"]
    answer = _authorise(client, app, cn, token=make_jwt(payload))
    token = "INVALID_JWT_CLAIM_INVALID_requesting_practitioner"
    assert answer["outcome"] == token
    issue = answer["operationOutcome"]["issue"][0]
    assert issue["details"]["coding"][0]["display"] == token
    assert issue["diagnostics"] == f"{token}: requesting_practitioner.identifier[0].system: missing"
