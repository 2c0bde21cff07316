"""SSP test data: a small directory (provider, consumers, agreements) and audit JWTs built as consumers build them."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from sds_registry.db import begin_write
from sds_registry.domain.interactions import GPC
from sds_registry.services.agreements import create_agreement
from sds_registry.services.mhs import create_mhs
from sds_registry.services.registration import register_consumer, register_provider
from sds_registry.services.writes import CLI_ACTOR

PROVIDER_ODS = "A11111"
PROVIDER_ASID = "200000000001"
PROVIDER_FQDN = "provider.test"
PROVIDER_ROOT = f"https://{PROVIDER_FQDN}/{PROVIDER_ODS}/STU3/1"
FOUNDATIONS = f"{PROVIDER_ROOT}/gpconnect"
STRUCTURED = f"{PROVIDER_ROOT}/gpconnect/structured"
#: A second provider whose host the tests point at a closed port (502).
DOWN_ODS = "D44444"
DOWN_ASID = "200000000004"
DOWN_FQDN = "down.test"
DOWN_ROOT = f"https://{DOWN_FQDN}/{DOWN_ODS}/STU3/1/gpconnect"

CONSUMER_ODS = "B22222"
CONSUMER_ASID = "100000000001"
CONSUMER_FQDN = "consumer.test"
#: A consumer with no data-sharing agreement.
STRANGER_ODS = "C33333"
STRANGER_ASID = "100000000002"
STRANGER_FQDN = "stranger.test"
#: Not registered at all.
UNKNOWN_ASID = "999999999990"

METADATA = GPC + "fhir:rest:read:metadata-1"
READ_PATIENT = GPC + "fhir:rest:read:patient-1"
STRUCTURED_RECORD = GPC + "fhir:operation:gpc.getstructuredrecord-1"
BOOK = GPC + "fhir:rest:create:appointment-1"
SLOTS = GPC + "fhir:rest:search:slot-1"
MIGRATE_STRUCTURED = GPC + "fhir:operation:gpc.migratestructuredrecord-1"
#: The consumer may send these (not BOOK: the sender-accreditation refusal uses it).
CONSUMER_INTERACTIONS = [METADATA, READ_PATIENT, STRUCTURED_RECORD, SLOTS, MIGRATE_STRUCTURED]
#: The provider serves every current interaction but SLOTS (the receiver refusal uses it).
PROVIDER_INTERACTIONS = [METADATA, READ_PATIENT, STRUCTURED_RECORD, BOOK, MIGRATE_STRUCTURED]


@dataclass(frozen=True)
class Directory:
    provider_party_key: str
    consumer_party_key: str
    metadata_cpa_id: str


def seed(session: Session) -> Directory:
    """Register the providers, consumers and the agreement the SSP tests use, and commit."""
    actor = CLI_ACTOR
    begin_write(session)  # SQLite: take the write lock first (an SSP process may be writing its audit)
    provider = register_provider(session, {
        "ods_code": PROVIDER_ODS, "fqdn": PROVIDER_FQDN, "asid": PROVIDER_ASID,
        "interactions": PROVIDER_INTERACTIONS, "cpa_ids": {METADATA: "S000000000001"},
    }, actor)
    register_provider(session, {
        "ods_code": DOWN_ODS, "fqdn": DOWN_FQDN, "asid": DOWN_ASID, "interactions": [METADATA],
    }, actor)
    parties = {}
    for ods, asid, fqdn in ((CONSUMER_ODS, CONSUMER_ASID, CONSUMER_FQDN), (STRANGER_ODS, STRANGER_ASID, STRANGER_FQDN)):
        consumer = register_consumer(session, {
            "ods_code": ods, "asid": asid, "interactions": CONSUMER_INTERACTIONS,
        }, actor)
        # A consumer's own MHS record carries its FQDN (and no GP Connect interaction).
        create_mhs(session, {
            "ods_code": ods, "party_key": consumer.party_key,
            "interaction_id": "urn:nhs:names:services:psis:MCCI_IN010000UK13",
            "endpoints": [f"https://{fqdn}/reliablemessaging"],
        }, actor)
        parties[ods] = consumer.party_key
    for provider_ods in (PROVIDER_ODS, DOWN_ODS):
        create_agreement(session, {"consumer_ods": CONSUMER_ODS, "provider_ods": provider_ods}, actor)
    session.commit()
    return Directory(provider.accredited_system.party_key, parties[CONSUMER_ODS], "S000000000001")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(aud: str = FOUNDATIONS, scope: str = "organization/*.read", now: int | None = None) -> dict[str, Any]:
    """GP Connect 1.6 audit claims (the spec's example values)."""
    iat = int(time.time()) if now is None else now
    return {
        "iss": "https://consumersupplier.thirdparty.nhs.uk/",
        "sub": "10019",
        "aud": aud,
        "exp": iat + 300,
        "iat": iat,
        "reason_for_request": "directcare",
        "requested_scope": scope,
        "requesting_device": {
            "resourceType": "Device",
            "identifier": [{"system": "https://consumersupplier.com/Id/device-identifier", "value": "CONS-APP-4"}],
            "model": "Consumer product name", "version": "5.3.0",
        },
        "requesting_organization": {
            "resourceType": "Organization",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": CONSUMER_ODS}],
            "name": "Test Consumer",
        },
        "requesting_practitioner": {
            "resourceType": "Practitioner", "id": "10019",
            "identifier": [
                {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "111222333444"},
                {"system": "https://fhir.nhs.uk/Id/sds-role-profile-id", "value": "444555666777"},
            ],
            "name": [{"family": "Jones", "given": ["Claire"], "prefix": ["Dr"]}],
        },
    }


def make_jwt(payload: dict[str, Any] | None = None, header: dict[str, Any] | None = None, signature: str = "") -> str:
    """An unsecured JWT (alg none, empty signature) as GP Connect consumers send it."""
    return f"{_b64(header or {'alg': 'none', 'typ': 'JWT'})}.{_b64(payload or claims())}.{signature}"


@dataclass(frozen=True)
class FreshBearer:
    """An Authorization value minted when the test runs, not when it is collected.

    A GP Connect audit JWT lives five minutes, and a whole suite takes longer: a token built into a parametrize
    table at import time has expired by the time a late test uses it.
    """

    aud: str = FOUNDATIONS
    scope: str = "organization/*.read"

    def value(self) -> str:
        return "Bearer " + make_jwt(claims(aud=self.aud, scope=self.scope))


def ssp_headers(
    interaction: str = METADATA, *, sender: str = CONSUMER_ASID, receiver: str = PROVIDER_ASID,
    token: str | None = None, trace_id: str | None = None,
) -> dict[str, str]:
    return {
        "Ssp-TraceID": trace_id or str(uuid.uuid4()),
        "Ssp-From": sender,
        "Ssp-To": receiver,
        "Ssp-InteractionID": interaction,
        "Authorization": f"Bearer {token or make_jwt()}",
    }
