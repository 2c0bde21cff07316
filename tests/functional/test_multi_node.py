"""Several nodes on one PostgreSQL: two `sds serve` instances on their own ports, one database. A provider
registered through node A's /api is answered by node B's LDAP, SDS FHIR API and SSP within 1 s, though node B
answered each of them for that provider (from its caches, where it keeps any) just before."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import ldap3
import pytest
from sqlalchemy.orm import Session

from sds_registry.db import make_engine
from sds_registry.migrate import sync_catalogue, upgrade
from sds_registry.services.agreements import create_agreement
from sds_registry.services.registration import register_consumer
from sds_registry.services.writes import CLI_ACTOR
from tests.conftest import _fresh_postgres_database, make_token
from tests.functional.ssp.conftest import Pki, Provider, pki, provider  # noqa: F401 - fixtures used below
from tests.support.serving import Running, sds_serve
from tests.unit.ssp.fixtures import (
    CONSUMER_ASID,
    CONSUMER_INTERACTIONS,
    CONSUMER_ODS,
    METADATA,
    PROVIDER_FQDN,
    claims,
    make_jwt,
)

NEW_ODS, NEW_ASID = "Y71001", "200000000071"
NEW_ROOT = f"https://{PROVIDER_FQDN}/{NEW_ODS}/STU3/1/gpconnect"
WITHIN = 1.0


@pytest.fixture
def shared_postgres(postgres_server_url: str) -> str:
    """A fresh migrated PostgreSQL database with a consumer and an agreement it may call any provider under."""
    url = _fresh_postgres_database(postgres_server_url)
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            sync_catalogue(s)
            register_consumer(s, {"ods_code": CONSUMER_ODS, "asid": CONSUMER_ASID,
                                  "interactions": CONSUMER_INTERACTIONS}, CLI_ACTOR)
            create_agreement(s, {"consumer_ods": CONSUMER_ODS, "provider_ods": "*"}, CLI_ACTOR)
            s.commit()
    finally:
        engine.dispose()
    return url


@pytest.fixture
def nodes(shared_postgres: str, pki: Pki, provider: Provider, tmp_path: Path) -> Iterator[tuple[Running, Running]]:  # noqa: F811
    env = {"SDS_SSP_PROVIDER_CA": str(pki.ca), "SDS_SSP_CLIENT_CERT": str(pki.ssp_client[0]),
           "SDS_SSP_CLIENT_KEY": str(pki.ssp_client[1]),
           "SDS_SSP_CONNECT_TO": f"{PROVIDER_FQDN}:443:127.0.0.1:{provider.port}"}
    with sds_serve(shared_postgres, tmp_path / "a", env=env) as a:
        with sds_serve(shared_postgres, tmp_path / "b", env=env) as b:
            yield a, b


def ldap_endpoints(conn: ldap3.Connection) -> list[str]:
    conn.search("ou=services,o=nhs", f"(&(nhsIDCode={NEW_ODS})(objectClass=nhsMhs)(nhsMhsSvcIA={METADATA}))",
                attributes=["nhsMHSEndPoint"])
    assert conn.result["result"] == 0, conn.result
    return [str(v) for e in conn.entries for v in e.nhsMHSEndPoint.values]


def fhir_endpoints(node: Running) -> list[str]:
    response = httpx.get(f"{node.http_url}/spine-directory/FHIR/R4/Endpoint", timeout=10, params={
        "organization": f"https://fhir.nhs.uk/Id/ods-organization-code|{NEW_ODS}",
        "identifier": f"https://fhir.nhs.uk/Id/nhsServiceInteractionId|{METADATA}"})
    assert response.status_code == 200, response.text
    return [e["resource"]["address"] for e in response.json().get("entry", [])]


def ssp_status(node: Running) -> int:
    headers = {"Ssp-TraceID": str(uuid.uuid4()), "Ssp-From": CONSUMER_ASID, "Ssp-To": NEW_ASID,
               "Ssp-InteractionID": METADATA, "Authorization": f"Bearer {make_jwt(claims(aud=NEW_ROOT))}"}
    return httpx.get(f"http://127.0.0.1:{node.ssp}/{NEW_ROOT}/metadata", headers=headers, timeout=10).status_code


def seconds_until(check: Callable[[], bool], registered: float) -> float:
    """Poll ``check`` until it holds; the seconds from ``registered`` (fails after 10 s)."""
    while not check():
        assert time.monotonic() - registered < 10, "node B never saw the registration"
        time.sleep(0.02)
    return time.monotonic() - registered


@pytest.mark.timeout(240)
def test_a_registration_on_node_a_is_answered_by_node_b_within_a_second(
    nodes: tuple[Running, Running], shared_postgres: str
) -> None:
    a, b = nodes
    engine = make_engine(shared_postgres)
    try:
        token = make_token(engine, "node-test-admin", admin=True)
    finally:
        engine.dispose()
    ldap_b = ldap3.Connection(ldap3.Server(f"ldap://127.0.0.1:{b.ldap}", get_info=ldap3.NONE), auto_bind=True)
    try:
        for _ in range(2):  # asked twice: node B's caches, where it keeps answers, hold "none" now
            assert ldap_endpoints(ldap_b) == []
            assert fhir_endpoints(b) == []
            assert ssp_status(b) == 403

        response = httpx.post(f"{a.http_url}/api/providers", headers={"Authorization": f"Bearer {token}"}, json={
            "ods_code": NEW_ODS, "fqdn": PROVIDER_FQDN, "asid": NEW_ASID, "interactions": [METADATA]}, timeout=30)
        registered = time.monotonic()
        assert response.status_code == 201, response.text

        took = {
            "ldap": seconds_until(lambda: ldap_endpoints(ldap_b) == [NEW_ROOT], registered),
            "fhir": seconds_until(lambda: fhir_endpoints(b) == [NEW_ROOT], registered),
            "ssp": seconds_until(lambda: ssp_status(b) == 200, registered),
        }
        assert all(seconds <= WITHIN for seconds in took.values()), took
    finally:
        ldap_b.unbind()
