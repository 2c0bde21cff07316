"""One-call registrations: a GP Connect provider (AS + one MHS per interaction) or a consumer AS.

Takes a Session and never commits: the caller's one commit makes the whole registration visible, or
nothing of it. Builds on accredited_systems.py and mhs.py; adds no rules of its own to either record.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sds_registry.domain import formats
from sds_registry.domain.interactions import PROVIDER_DEFAULT, lookup
from sds_registry.errors import InvalidIdentifier, Issue
from sds_registry.models import AccreditedSystem, MessageHandlingSystem
from sds_registry.services.accredited_systems import create_accredited_system, new_asid
from sds_registry.services.mhs import create_mhs
from sds_registry.services.writes import RNG, Actor


def new_party_key(session: Session, ods_code: str, rng: random.Random = RNG) -> str:
    """A fresh party key ``<ODS>-<6 digits>`` used by no AS or MHS record yet."""
    while True:
        candidate = f"{ods_code}-{rng.randrange(10**5, 10**6)}"
        taken = session.scalar(select(AccreditedSystem.id).where(
            func.lower(AccreditedSystem.party_key) == candidate.lower())) or session.scalar(
            select(MessageHandlingSystem.id).where(func.lower(MessageHandlingSystem.party_key) == candidate.lower()))
        if not taken:
            return candidate


@dataclass
class Registration:
    accredited_system: AccreditedSystem
    message_handling_systems: list[MessageHandlingSystem]


_PRODUCT_FIELDS = ("manufacturer_org", "product_name", "product_version", "product_key", "description")


def register_provider(session: Session, data: Mapping[str, Any], actor: Actor, *,
                      rng: random.Random = RNG) -> Registration:
    """A GP Connect provider for one practice: its AS record and one MHS record per interaction.

    ``data``: ods_code, and either fqdn (with optional fhir_version, default STU3, and gpc_major_version,
    default 1) or service_root (``https://<fqdn>/<ODS>/<FHIR>/<major>``); optional asid, party_key,
    interactions (default: every current GP Connect provider interaction), cpa_ids (interaction -> CPA id),
    product fields and reliability settings. The endpoint of each MHS record is the service root plus the
    interaction's capability routing segment.
    """
    allowed = {"ods_code", "fqdn", "fhir_version", "gpc_major_version", "service_root", "asid", "party_key",
               "interactions", "cpa_ids", *_PRODUCT_FIELDS}
    issues = [Issue(n, "unknown-field", f"{n!r} is not a field of a provider registration")
              for n in data if n not in allowed]
    ods = data.get("ods_code")
    try:
        ods = formats.ods_code(ods, "ods_code")
    except InvalidIdentifier as exc:
        issues.extend(exc.issues)
    interactions = list(data.get("interactions") or PROVIDER_DEFAULT)
    for index, interaction in enumerate(interactions):
        if not isinstance(interaction, str) or lookup(interaction) is None:
            issues.append(Issue(f"interactions[{index}]", "gpconnect-provider-interaction",
                                f"{interaction!r} is not a GP Connect provider interaction in the catalogue"))
    root = data.get("service_root")
    if root is None:
        if not data.get("fqdn"):
            issues.append(Issue("fqdn", "required", "give fqdn or service_root"))
        else:
            root = (f"https://{data['fqdn']}/{ods}/{data.get('fhir_version', 'STU3')}/"
                    f"{data.get('gpc_major_version', '1')}")
    elif not isinstance(root, str):
        issues.append(Issue("service_root", "type", "must be a string"))
        root = None
    if isinstance(root, str) and isinstance(ods, str):
        issues.extend(formats.check_service_root_url(root, ods, "service_root" if "service_root" in data
                                                     else "fqdn"))
    if issues:
        raise InvalidIdentifier(issues)
    assert isinstance(ods, str) and isinstance(root, str)
    actor.check_may_write(ods)
    asid = data.get("asid") or new_asid(session, rng)
    party_key = data.get("party_key") or new_party_key(session, ods, rng)
    product = {k: data[k] for k in _PRODUCT_FIELDS if data.get(k) is not None}
    system = create_accredited_system(session, {
        "asid": asid, "ods_code": ods, "party_key": party_key, "interactions": interactions, **product,
    }, actor)
    cpa_ids = data.get("cpa_ids") or {}
    mhs_rows = []
    for index, interaction in enumerate(interactions):
        entry = lookup(interaction)
        assert entry is not None
        endpoint = f"{root}/{entry.routing_segment}" if entry.routing_segment else root
        mhs_data: dict[str, Any] = {
            "ods_code": ods, "party_key": party_key, "interaction_id": interaction, "endpoints": [endpoint],
            **{k: v for k, v in product.items() if k != "description"},
        }
        if isinstance(cpa_ids, Mapping) and cpa_ids.get(interaction):
            mhs_data["cpa_id"] = cpa_ids[interaction]
        try:
            mhs_rows.append(create_mhs(session, mhs_data, actor, rng=rng))
        except InvalidIdentifier as exc:
            raise exc.prefixed(f"mhs[{index}].") from None
    return Registration(system, mhs_rows)


def register_consumer(session: Session, data: Mapping[str, Any], actor: Actor, *,
                      rng: random.Random = RNG) -> AccreditedSystem:
    """A consumer AS record for an organisation, accredited for the interactions it may send."""
    allowed = {"ods_code", "asid", "party_key", "interactions", "clients", *_PRODUCT_FIELDS}
    issues = [Issue(n, "unknown-field", f"{n!r} is not a field of a consumer registration")
              for n in data if n not in allowed]
    if issues:
        raise InvalidIdentifier(issues)
    values = dict(data)
    ods = formats.ods_code(values.get("ods_code"), "ods_code")
    if not values.get("interactions"):
        raise InvalidIdentifier.single("interactions", "required", "list the interactions the consumer may send")
    actor.check_may_write(ods)
    if not values.get("asid"):
        values["asid"] = new_asid(session, rng)
    if not values.get("party_key"):
        values["party_key"] = new_party_key(session, ods, rng)
    return create_accredited_system(session, values, actor)
