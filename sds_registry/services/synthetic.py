"""Deterministic synthetic practices for ``sds seed --synthetic`` and the benchmarks. No randomness but seeded.

Practice ``n`` is a pure function of ``n``: its input dicts are built here as plain data and written only
through the registry services (the same validation as everything else). Never commits: the caller owns the
transaction.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sds_registry.domain.interactions import PROVIDER_DEFAULT, lookup
from sds_registry.errors import Conflict
from sds_registry.models import Organisation
from sds_registry.services import sync
from sds_registry.services.organisations import create_organisation
from sds_registry.services.registration import register_consumer, register_provider
from sds_registry.services.writes import CLI_ACTOR, Actor

_PRACTICE_LETTERS = "PQRSUVWXY"  # synthetic practices: P00000..Y99999, clear of the seeded codes
_TOWNS = ("Leeds", "York", "Hull", "Exeter", "Bath", "Derby", "Truro", "Ely", "Wells", "Ripon", "Lancaster")
_STREETS = ("High Street", "Church Lane", "Station Road", "Mill Lane", "The Green", "Park Road")
_SUPPLIERS = (("YGM24", "SystmOne", "GPC 1.6"), ("X09001", "EMIS Web", "GPC 1.6"),
              ("K81045", "Continuum Health GPC", "Provider AS"), ("LSP04", "Vision", "GPC 1.5"))
_CONSUMER_INTERACTIONS = (
    "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1",
    "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1",
    "urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1",
)


@dataclass(frozen=True)
class PracticeRecords:
    """The service inputs for one synthetic practice; ``consumer`` is None but for every third practice."""

    organisation: dict[str, Any]
    provider: dict[str, Any]
    consumer: dict[str, Any] | None


@dataclass(frozen=True)
class SyntheticPractice:
    ods_code: str
    asid: str
    party_key: str


def practice_ods(n: int) -> str:
    return f"{_PRACTICE_LETTERS[(n // 100000) % len(_PRACTICE_LETTERS)]}{n % 100000:05d}"


def stable_hex(*parts: str, length: int = 20) -> str:
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:length]


def _counter(n: int) -> int:
    """The number the varying fields of practice ``n`` are drawn from.

    Kept equal to what a ``sds seed --synthetic`` run from practice 0 has always stored (each practice before
    ``n`` used two numbers, three with a consumer), so existing synthetic databases and benchmark caches stay
    identical; unlike then, it no longer depends on what ran earlier in the process.
    """
    return 2 * n + (n + 2) // 3


def practice_records(n: int) -> PracticeRecords:
    """The organisation, provider and (every third practice) consumer inputs of practice ``n``."""
    ods, org_k, provider_k = practice_ods(n), _counter(n), _counter(n) + 1
    town = _TOWNS[org_k % len(_TOWNS)]
    organisation: dict[str, Any] = {
        "ods_code": ods,
        "name": f"{town} Medical Practice {org_k}",
        "org_type": "GP Practice",
        "org_type_code": "PR",
        "postal_address": f"{org_k % 200 + 1} {_STREETS[org_k % len(_STREETS)]}${town}",
        "postcode": f"LS{org_k % 30 + 1} {org_k % 9 + 1}AB",
        "locality": town,
    }
    manufacturer, product, version = _SUPPLIERS[provider_k % len(_SUPPLIERS)]
    provider: dict[str, Any] = {
        "ods_code": ods,
        "asid": f"7{n:011d}",
        "party_key": f"{ods}-{800000 + n % 100000}",
        "fqdn": f"gpconnect.provider{provider_k % 50}.thirdparty.nhs.uk",
        "manufacturer_org": manufacturer,
        "product_name": product,
        "product_version": version,
        "product_key": str(6000 + provider_k % 50),
        "cpa_ids": {interaction: stable_hex(ods, interaction) for interaction in PROVIDER_DEFAULT},
    }
    consumer: dict[str, Any] | None = None
    if n % 3 == 0:
        consumer = {
            "ods_code": ods,
            "asid": f"8{n:011d}",
            "party_key": f"{ods}-{900000 + n % 100000}",
            "interactions": list(_CONSUMER_INTERACTIONS),
            "manufacturer_org": "X09001",
            "product_name": "Consumer Portal",
            "product_version": "Consumer AS",
        }
    return PracticeRecords(organisation, provider, consumer)


def create_practice(session: Session, n: int, actor: Actor = CLI_ACTOR) -> SyntheticPractice:
    """Practice number ``n``: its organisation, a GP Connect provider (AS + MHS per interaction) and, for every
    third practice, a consumer system too. Deterministic in ``n`` (any other ids come from ``Random(n)``)."""
    records = practice_records(n)
    rng = random.Random(n)
    create_organisation(session, records.organisation, actor)
    register_provider(session, records.provider, actor, rng=rng)
    if records.consumer is not None:
        register_consumer(session, records.consumer, actor, rng=rng)
    provider = records.provider
    return SyntheticPractice(provider["ods_code"], provider["asid"], provider["party_key"])


_PRODUCT = ("manufacturer_org", "product_name", "product_version", "product_key", "description")


def practice_desired(n: int) -> list[sync.Desired]:
    """Practice ``n`` as the records ``create_practice`` stores (organisation, provider AS, one MHS per
    interaction, consumer AS), for ``services.sync``: what register_provider/register_consumer would build
    from ``practice_records(n)``, with every identifier given (so nothing is drawn at random)."""
    records = practice_records(n)
    where = f"practice {n}"
    out = [sync.Desired("organisation", records.organisation, where)]
    p = records.provider
    ods, interactions = p["ods_code"], list(PROVIDER_DEFAULT)
    product = {k: p[k] for k in _PRODUCT if p.get(k) is not None}
    out.append(sync.Desired("accredited_system", {"asid": p["asid"], "ods_code": ods, "party_key": p["party_key"],
                                                  "interactions": interactions, **product}, where))
    root = f"https://{p['fqdn']}/{ods}/STU3/1"
    for interaction in interactions:
        entry = lookup(interaction)
        assert entry is not None
        out.append(sync.Desired("message_handling_system", {
            "ods_code": ods, "party_key": p["party_key"], "interaction_id": interaction,
            "endpoints": [f"{root}/{entry.routing_segment}" if entry.routing_segment else root],
            **{k: v for k, v in product.items() if k != "description"}, "cpa_id": p["cpa_ids"][interaction],
        }, where))
    if records.consumer is not None:
        out.append(sync.Desired("accredited_system", records.consumer, where))
    return out


def seed_practices(session: Session, numbers: list[int], actor: Actor = CLI_ACTOR) -> int:
    """Add the practices of ``numbers`` whose organisation is not stored yet, in bulk (one plan, records
    inserted together, one ``import`` audit event). Returns how many were added. Never commits."""
    codes = {practice_ods(n): n for n in numbers}
    present = set(session.scalars(select(Organisation.ods_code).where(Organisation.ods_code.in_(list(codes)))))
    desired = [d for code, n in codes.items() if code not in present for d in practice_desired(n)]
    if not desired:
        return 0
    plan = sync.build_plan(session, desired, mode="create")
    if not plan.ok:
        raise Conflict("synthetic practices clash with stored records: "
                           + "; ".join(f"{p.where}: {', '.join(p.reasons)}" for p in plan.rejected[:5]))
    sync.apply_plan(session, plan, actor, audit="summary", source="sds seed --synthetic")
    return len(codes) - len(present)
