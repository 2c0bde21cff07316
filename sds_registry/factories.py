# mypy: disable-error-code="attr-defined,no-untyped-call,misc,name-defined"
"""Deterministic synthetic directory data (factory_boy), shared by ``sds seed --synthetic`` and the tests.

Factories build plain input dicts; ``create_practice`` writes them through the registry services, so
synthetic data passes the same validation as everything else.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import factory
from sqlalchemy.orm import Session

from sds_registry.domain.interactions import PROVIDER_DEFAULT
from sds_registry.services import registry

_PRACTICE_LETTERS = "PQRSUVWXY"  # synthetic practices: P00000..Y99999, clear of the seeded codes
_TOWNS = ("Leeds", "York", "Hull", "Exeter", "Bath", "Derby", "Truro", "Ely", "Wells", "Ripon", "Lancaster")
_STREETS = ("High Street", "Church Lane", "Station Road", "Mill Lane", "The Green", "Park Road")
_SUPPLIERS = (("YGM24", "SystmOne", "GPC 1.6"), ("X09001", "EMIS Web", "GPC 1.6"),
              ("K81045", "Continuum Health GPC", "Provider AS"), ("LSP04", "Vision", "GPC 1.5"))


def practice_ods(n: int) -> str:
    return f"{_PRACTICE_LETTERS[(n // 100000) % len(_PRACTICE_LETTERS)]}{n % 100000:05d}"


def stable_hex(*parts: str, length: int = 20) -> str:
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:length]


class OrganisationFactory(factory.DictFactory):
    ods_code = factory.Sequence(practice_ods)
    name = factory.LazyAttributeSequence(lambda o, n: f"{_TOWNS[n % len(_TOWNS)]} Medical Practice {n}")
    org_type = "GP Practice"
    org_type_code = "PR"
    postal_address = factory.LazyAttributeSequence(
        lambda o, n: f"{n % 200 + 1} {_STREETS[n % len(_STREETS)]}${_TOWNS[n % len(_TOWNS)]}"
    )
    postcode = factory.Sequence(lambda n: f"LS{n % 30 + 1} {n % 9 + 1}AB")
    locality = factory.Sequence(lambda n: _TOWNS[n % len(_TOWNS)])


class ProviderRegistrationFactory(factory.DictFactory):
    """Input for registry.register_provider: a full GP Connect provider for one practice."""

    ods_code = factory.Sequence(practice_ods)
    asid = factory.Sequence(lambda n: f"7{n:011d}")
    party_key = factory.LazyAttributeSequence(lambda o, n: f"{o.ods_code}-{800000 + n % 100000}")
    fqdn = factory.Sequence(lambda n: f"gpconnect.provider{n % 50}.thirdparty.nhs.uk")
    manufacturer_org = factory.Sequence(lambda n: _SUPPLIERS[n % len(_SUPPLIERS)][0])
    product_name = factory.Sequence(lambda n: _SUPPLIERS[n % len(_SUPPLIERS)][1])
    product_version = factory.Sequence(lambda n: _SUPPLIERS[n % len(_SUPPLIERS)][2])
    product_key = factory.Sequence(lambda n: str(6000 + n % 50))


class ConsumerRegistrationFactory(factory.DictFactory):
    """Input for registry.register_consumer: a GP Connect consumer system at one organisation."""

    ods_code = factory.Sequence(practice_ods)
    asid = factory.Sequence(lambda n: f"8{n:011d}")
    party_key = factory.LazyAttributeSequence(lambda o, n: f"{o.ods_code}-{900000 + n % 100000}")
    interactions = factory.LazyFunction(lambda: [
        "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1",
        "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1",
        "urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1",
    ])
    manufacturer_org = "X09001"
    product_name = "Consumer Portal"
    product_version = "Consumer AS"


@dataclass
class SyntheticPractice:
    ods_code: str
    asid: str
    party_key: str


def create_practice(session: Session, n: int, actor: registry.Actor = registry.CLI_ACTOR) -> SyntheticPractice:
    """Practice number ``n``: its organisation, a GP Connect provider (AS + MHS per interaction) and,
    for every third practice, a consumer system too. Deterministic in ``n``."""
    rng = random.Random(n)
    org: dict[str, Any] = OrganisationFactory.build(ods_code=practice_ods(n))
    registry.create_organisation(session, org, actor)
    provider: dict[str, Any] = ProviderRegistrationFactory.build(ods_code=org["ods_code"], asid=f"7{n:011d}",
                                                                 party_key=f"{org['ods_code']}-{800000 + n % 100000}")
    provider["cpa_ids"] = {
        interaction: stable_hex(org["ods_code"], interaction)
        for interaction in PROVIDER_DEFAULT
    }
    registry.register_provider(session, provider, actor, rng=rng)
    if n % 3 == 0:
        consumer: dict[str, Any] = ConsumerRegistrationFactory.build(
            ods_code=org["ods_code"], asid=f"8{n:011d}", party_key=f"{org['ods_code']}-{900000 + n % 100000}")
        registry.register_consumer(session, consumer, actor, rng=rng)
    return SyntheticPractice(org["ods_code"], provider["asid"], provider["party_key"])
