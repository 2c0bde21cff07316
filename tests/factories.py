# mypy: disable-error-code="attr-defined,misc,name-defined,no-untyped-call"
"""factory_boy factories for test data: registry service inputs, and records created through the services.

Deterministic: no Faker and no unseeded randomness; every sequence restarts at 0 in each test (conftest's
autouse fixture calls reset_sequences). Test-only: runtime synthetic data is sds_registry.services.synthetic.

    OrganisationFactory.build()                      -> the input dict
    ProviderFactory.create(session=s, fqdn="x.test") -> Registration, written by registry services (no commit)
"""

from __future__ import annotations

import random
from typing import Any

import factory
from sqlalchemy.orm import Session

from sds_registry.models import AccreditedSystem, Organisation
from sds_registry.services.organisations import create_organisation
from sds_registry.services.registration import Registration, register_consumer, register_provider
from sds_registry.services.writes import CLI_ACTOR, Actor

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"


def factory_ods(n: int) -> str:
    """ODS codes Z00000..Z99999: clear of the seed data and of the synthetic practices (P..Y)."""
    return f"Z{n % 100000:05d}"


class _ServiceFactory(factory.Factory):
    """Builds a dict; ``create(session=...)`` passes it to one registry service as the CLI actor.

    Its own model-less base, so every concrete factory keeps its own sequence counter.
    """

    class Meta:
        abstract = True

    @classmethod
    def _build(cls, model_class: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return dict(kwargs)

    @classmethod
    def _create(cls, model_class: Any, *args: Any, session: Session, actor: Actor = CLI_ACTOR,
                **kwargs: Any) -> Any:
        return cls._write(session, dict(kwargs), actor)

    @classmethod
    def _write(cls, session: Session, data: dict[str, Any], actor: Actor) -> Any:
        raise NotImplementedError


class OrganisationFactory(_ServiceFactory):
    class Meta:
        model = dict

    ods_code = factory.Sequence(factory_ods)
    name = factory.Sequence(lambda n: f"Test Practice {n}")
    org_type = "GP Practice"
    org_type_code = "PR"
    postcode = factory.Sequence(lambda n: f"LS{n % 30 + 1} {n % 9 + 1}AB")

    @classmethod
    def _write(cls, session: Session, data: dict[str, Any], actor: Actor) -> Organisation:
        return create_organisation(session, data, actor)


class ProviderFactory(_ServiceFactory):
    """A GP Connect provider for one practice: AS record plus one MHS record per interaction."""

    class Meta:
        model = dict

    ods_code = factory.Sequence(factory_ods)
    asid = factory.Sequence(lambda n: f"{910000000000 + n:012d}")
    party_key = factory.LazyAttributeSequence(lambda o, n: f"{o.ods_code}-{810000 + n}")
    fqdn = factory.Sequence(lambda n: f"provider{n}.test")
    interactions = factory.LazyFunction(lambda: [METADATA, STRUCTURED])
    manufacturer_org = "YGM24"

    @classmethod
    def _write(cls, session: Session, data: dict[str, Any], actor: Actor) -> Registration:
        # CPA ids the data leaves out come from a Random seeded by the ASID: the same in every run.
        return register_provider(session, data, actor, rng=random.Random(data.get("asid")))


class ConsumerFactory(_ServiceFactory):
    """A GP Connect consumer system at one organisation, accredited for the interactions it may send."""

    class Meta:
        model = dict

    ods_code = factory.Sequence(lambda n: factory_ods(50000 + n))
    asid = factory.Sequence(lambda n: f"{920000000000 + n:012d}")
    party_key = factory.LazyAttributeSequence(lambda o, n: f"{o.ods_code}-{820000 + n}")
    interactions = factory.LazyFunction(lambda: [METADATA, STRUCTURED])
    manufacturer_org = "X09001"

    @classmethod
    def _write(cls, session: Session, data: dict[str, Any], actor: Actor) -> AccreditedSystem:
        return register_consumer(session, data, actor, rng=random.Random(data.get("asid")))


FACTORIES: tuple[type[_ServiceFactory], ...] = (OrganisationFactory, ProviderFactory, ConsumerFactory)


def reset_sequences() -> None:
    """Start every factory's sequence at 0 again: what a test builds never depends on the tests before it."""
    for each in FACTORIES:
        each.reset_sequence()
