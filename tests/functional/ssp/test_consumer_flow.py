"""The GP Connect consumer flow end to end: resolve the provider's endpoint and ASID through the SDS FHIR API,
build the audit JWT for that endpoint, call the SSP with mutual TLS, and reach the provider."""

from __future__ import annotations

import httpx
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.functional.ssp.conftest import SspServer
from tests.unit.ssp.fixtures import CONSUMER_ASID, METADATA, PROVIDER_ODS, claims, make_jwt, seed, ssp_headers

FHIR = "/spine-directory/FHIR/R4"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code|"
SVC = "https://fhir.nhs.uk/Id/nhsServiceInteractionId|"
ASID_SYSTEM = "https://fhir.nhs.uk/Id/nhsSpineASID"


def test_resolve_over_the_fhir_api_then_call_through_the_ssp(
    ssp: SspServer, committed_session: Session, client: FlaskClient, consumer_client: httpx.Client, audit_settled: None
) -> None:
    seed(committed_session)
    query = {"organization": ODS + PROVIDER_ODS, "identifier": SVC + METADATA}
    endpoints = client.get(f"{FHIR}/Endpoint", query_string=query, headers={"Accept": "application/fhir+json"})
    assert endpoints.status_code == 200, endpoints.text
    (endpoint,) = [e["resource"] for e in endpoints.json["entry"]]
    address = endpoint["address"]
    devices = client.get(f"{FHIR}/Device", query_string=query, headers={"Accept": "application/fhir+json"})
    (device,) = [e["resource"] for e in devices.json["entry"]]
    asid = next(i["value"] for i in device["identifier"] if i["system"] == ASID_SYSTEM)

    token = make_jwt(claims(aud=address))
    headers = {**ssp_headers(METADATA, token=token), "Ssp-From": CONSUMER_ASID, "Ssp-To": asid,
               "Accept": "application/fhir+json"}
    response = consumer_client.get(f"{ssp.url}/{address}/metadata", headers=headers)
    assert response.status_code == 200, response.text
    echo = response.json()
    assert echo["method"] == "GET"
    assert echo["uri"] == "/" + address.split("/", 3)[3] + "/metadata"
    received = {k.lower(): v for k, v in echo["headers"]}
    assert received["ssp-to"] == asid and received["authorization"] == f"Bearer {token}"
