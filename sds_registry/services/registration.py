"""One-call registrations: a GP Connect provider (AS + one MHS per interaction) or a consumer AS.

Takes a Session and never commits: the caller's one commit makes the whole registration visible, or
nothing of it. Builds on accredited_systems.py and mhs.py; adds no rules of its own to either record, only two
about registrations: one provider per practice and interaction, one consumer system per organisation and product.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from sds_registry.db import utcnow
from sds_registry.domain import formats
from sds_registry.domain.interactions import PROVIDER_DEFAULT, lookup
from sds_registry.errors import Conflict, InvalidIdentifier, Issue
from sds_registry.models import AccreditedSystem, MessageHandlingSystem
from sds_registry.services.accredited_systems import (
    create_accredited_system,
    delete_accredited_system,
    new_asid,
)
from sds_registry.services.mhs import create_mhs, delete_mhs
from sds_registry.services.records import accredited_system_dict
from sds_registry.services.writes import RNG, Actor, add_audit, flush


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
    default 1) or service_root (``https://<fqdn>/<ODS>/<FHIR>/<major>``, or a URL as /api/resolve returns it,
    ending in a routing segment such as ``/gpconnect/structured``: the segment is recognised and dropped, never
    appended twice); optional asid, party_key, interactions (default: every current GP Connect provider
    interaction), cpa_ids (interaction -> CPA id), product fields, and ``replace``. The endpoint of each MHS
    record is the service root plus the interaction's capability routing segment.

    A practice has at most one provider per interaction (GP Connect: one provider system per organisation): when
    an MHS record of the ODS code already serves one of the interactions, Conflict names its ASID and party key,
    unless ``replace`` is true, which first retires those MHS records (see ``_retire``).
    """
    allowed = {"ods_code", "fqdn", "fhir_version", "gpc_major_version", "service_root", "asid", "party_key",
               "interactions", "cpa_ids", "replace", *_PRODUCT_FIELDS}
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
    replace = data.get("replace", False)
    if not isinstance(replace, bool):
        issues.append(Issue("replace", "type", "must be true or false"))
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
    root, _segment = formats.split_routing_segment(root)
    actor.check_may_write(ods)
    existing = _providers_of(session, ods, interactions)
    if existing and not replace:
        raise Conflict(_provider_conflict(session, ods, existing))
    if existing:
        _retire(session, ods, existing, actor)
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


def _providers_of(session: Session, ods: str, interactions: list[str]) -> list[MessageHandlingSystem]:
    """The ODS code's MHS records for any of ``interactions`` (those a new provider would duplicate)."""
    return list(session.scalars(
        select(MessageHandlingSystem)
        .where(MessageHandlingSystem.ods_code == ods, MessageHandlingSystem.interaction_id.in_(interactions))
        .order_by(MessageHandlingSystem.id)
    ))


def _systems_of(session: Session, ods: str, party_key: str) -> list[AccreditedSystem]:
    return list(session.scalars(
        select(AccreditedSystem)
        .where(AccreditedSystem.ods_code == ods, func.lower(AccreditedSystem.party_key) == party_key.lower())
        .order_by(AccreditedSystem.id)
    ))


def _provider_conflict(session: Session, ods: str, existing: list[MessageHandlingSystem]) -> str:
    first = existing[0]
    asids = [s.asid for s in _systems_of(session, ods, first.party_key)]
    who = f"ASID {', '.join(asids)}, party key {first.party_key}" if asids else f"party key {first.party_key}"
    more = f" and {len(existing) - 1} more of the requested interactions" if len(existing) > 1 else ""
    return (f"{ods} already has a provider for {first.interaction_id!r}{more}: {who} (MHS record "
            f"{first.unique_identifier}); send \"replace\": true to replace it, or change the existing records "
            f"(PUT /api/mhs/<id>, /api/accredited-systems/<asid>)")


def _retire(session: Session, ods: str, existing: list[MessageHandlingSystem], actor: Actor) -> None:
    """Replace: delete the MHS records a new provider supersedes and take their interactions off the AS records of
    the same party key; an AS record left with no interaction is deleted. Other roles survive (a provider that
    is also a consumer keeps its AS record for the interactions it still sends)."""
    by_party_key: dict[str, set[str]] = {}
    for row in existing:
        by_party_key.setdefault(row.party_key, set()).add(row.interaction_id)
        delete_mhs(session, row.unique_identifier, None, actor)
    for party_key, gone in by_party_key.items():
        for system in _systems_of(session, ods, party_key):
            remaining = [i for i in system.interactions if i not in gone]
            if not remaining:
                delete_accredited_system(session, system.asid, None, actor)
            elif len(remaining) != len(system.interactions):
                _drop_interactions(session, system, gone, actor)


def _drop_interactions(session: Session, system: AccreditedSystem, gone: set[str], actor: Actor) -> None:
    """Take ``gone`` off the AS record's interactions (a new version, audited). The rows are deleted where they
    are: rewriting the list (update_accredited_system) renumbers the positions that key the rows, and the unit of
    work then updates a kept interaction onto a position before the row holding it is deleted, breaking the
    (as_id, interaction_id) uniqueness."""
    actor.check_may_write(system.ods_code)
    before = accredited_system_dict(system)
    for row in [r for r in system.interaction_rows if r.interaction_id in gone]:
        session.delete(row)
    flush(session, f"accredited system {system.asid!r}")
    session.expire(system, ["interaction_rows"])
    system.updated_at = utcnow()
    flag_modified(system, "updated_at")  # an UPDATE even within the same second: bumps the version (ETag)
    flush(session, f"accredited system {system.asid!r}")
    add_audit(session, actor, "update", "accredited_system", system.asid, before, accredited_system_dict(system))


#: The interaction of the MHS record a one-call consumer registration adds to carry its FQDN: a Spine message
#: every MHS handles, not a GP Connect interaction (a consumer's MHS records carry none, reference §2.5 2.1-2.2).
CONSUMER_MHS_INTERACTION = "urn:nhs:names:services:psis:MCCI_IN010000UK13"


@dataclass
class ConsumerRegistration:
    accredited_system: AccreditedSystem
    #: The MHS record carrying the client certificate's FQDN (when the registration gave ``fqdn``).
    message_handling_system: MessageHandlingSystem | None = None


def register_consumer(session: Session, data: Mapping[str, Any], actor: Actor, *,
                      rng: random.Random = RNG) -> AccreditedSystem:
    """A consumer AS record for an organisation, accredited for the interactions it may send."""
    return register_consumer_system(session, data, actor, rng=rng).accredited_system


def register_consumer_system(session: Session, data: Mapping[str, Any], actor: Actor, *,
                             rng: random.Random = RNG) -> ConsumerRegistration:
    """A consumer AS record, plus (with ``fqdn``, the CN of its client certificate) the MHS record whose FQDN the
    SSP's check 6 looks up: one call, and the consumer passes the SSP over mutual TLS.

    One system per organisation and product: when the ODS code already has an AS record with the same
    product_name and manufacturer_org, Conflict names it (change it with PUT instead)."""
    allowed = {"ods_code", "asid", "party_key", "interactions", "clients", "fqdn", *_PRODUCT_FIELDS}
    issues = [Issue(n, "unknown-field", f"{n!r} is not a field of a consumer registration")
              for n in data if n not in allowed]
    if issues:
        raise InvalidIdentifier(issues)
    values = dict(data)
    fqdn = values.pop("fqdn", None)
    ods = formats.ods_code(values.get("ods_code"), "ods_code")
    if not values.get("interactions"):
        raise InvalidIdentifier.single("interactions", "required", "list the interactions the consumer may send")
    if fqdn is not None:
        fqdn = formats.fqdn(fqdn, "fqdn")
    actor.check_may_write(ods)
    duplicate = _same_product(session, ods, values.get("product_name"), values.get("manufacturer_org"))
    if duplicate is not None:
        product = values.get("product_name")
        raise Conflict(
            f"{ods} already has an accredited system for product {product!r}"
            f"{' of ' + repr(values['manufacturer_org']) if values.get('manufacturer_org') else ''}: "
            f"ASID {duplicate.asid}, party key {duplicate.party_key}; change it with "
            f"PUT /api/accredited-systems/{duplicate.asid}, or register a different product_name")
    if not values.get("asid"):
        values["asid"] = new_asid(session, rng)
    if not values.get("party_key"):
        values["party_key"] = new_party_key(session, ods, rng)
    system = create_accredited_system(session, values, actor)
    if fqdn is None:
        return ConsumerRegistration(system)
    try:
        mhs = create_mhs(session, {
            "ods_code": ods, "party_key": system.party_key, "interaction_id": CONSUMER_MHS_INTERACTION,
            "endpoints": [f"https://{fqdn}/reliablemessaging"], "fqdn": fqdn,
        }, actor, rng=rng)
    except InvalidIdentifier as exc:
        raise exc.prefixed("mhs.") from None
    return ConsumerRegistration(system, mhs)


def _same_product(session: Session, ods: str, product_name: object,
                  manufacturer_org: object) -> AccreditedSystem | None:
    def same(column: Any, value: object) -> Any:
        return column.is_(None) if value is None else column == value

    return session.scalars(
        select(AccreditedSystem)
        .where(AccreditedSystem.ods_code == ods, same(AccreditedSystem.product_name, product_name),
               same(AccreditedSystem.manufacturer_org, manufacturer_org))
        .order_by(AccreditedSystem.id)
        .limit(1)
    ).first()
