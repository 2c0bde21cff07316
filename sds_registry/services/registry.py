"""Registry writes: create, update, delete and the one-call provider/consumer registrations.

Takes a Session and never commits: the view or CLI command owns the transaction, so a failure
anywhere leaves the database as it was. Every write appends an AuditEvent in the same transaction.
Updates check the caller's expected version (optimistic concurrency; the row's version_id_col
catches a concurrent writer that passed the same check).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from sds_registry.db import utcnow
from sds_registry.domain import formats, records
from sds_registry.domain.interactions import PROVIDER_DEFAULT, lookup
from sds_registry.errors import Conflict, Forbidden, InvalidIdentifier, Issue, StaleVersion
from sds_registry.models import (
    AccreditedSystem,
    AuditEvent,
    DataSharingAgreement,
    MessageHandlingSystem,
    Organisation,
)
from sds_registry.services import directory
from sds_registry.services.records import (
    AS_LISTS,
    AS_SCALARS,
    MHS_LISTS,
    MHS_SCALARS,
    ORG_SCALARS,
    accredited_system_dict,
    agreement_dict,
    mhs_dict,
    organisation_dict,
)

_rng = random.SystemRandom()


@dataclass(frozen=True)
class Actor:
    """Who writes: an API client (admin, or bound to ODS codes) or a CLI command (admin)."""

    name: str
    admin: bool = False
    ods_codes: frozenset[str] = field(default_factory=frozenset)

    def check_may_write(self, *ods_codes: str | None) -> None:
        if self.admin:
            return
        for code in ods_codes:
            if code is not None and code not in self.ods_codes:
                raise Forbidden(f"client {self.name!r} may not write records of organisation {code!r}")


CLI_ACTOR = Actor("cli", admin=True)


def _audit(session: Session, actor: Actor, action: str, record_type: str, key: str,
           before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> None:
    session.add(AuditEvent(
        actor=actor.name, action=action, record_type=record_type, record_key=key,
        before=json.dumps(before, sort_keys=True, default=str) if before is not None else None,
        after=json.dumps(after, sort_keys=True, default=str) if after is not None else None,
    ))


def _flush(session: Session, what: str) -> None:
    """Flush, turning a uniqueness violation or a concurrent update into our own errors."""
    try:
        session.flush()
    except StaleDataError:
        raise StaleVersion(f"{what} was changed by another request; fetch it again") from None
    except IntegrityError as exc:
        raise Conflict(f"{what} conflicts with an existing record: {exc.orig}") from None


def _check_version(row: Any, expected: int | None, what: str) -> None:
    if expected is not None and row.version != expected:
        raise StaleVersion(f"{what} is at version {row.version}, not {expected}")


def _apply(row: Any, values: Mapping[str, Any], scalars: tuple[str, ...], lists: tuple[str, ...],
           flags: list[str], replace: bool) -> None:
    for name in scalars:
        if name in values:
            setattr(row, name, values[name])
        elif replace:
            setattr(row, name, None)
    for name in lists:
        if name in values:
            setattr(row, name, list(values[name] or []))
        elif replace:
            setattr(row, name, [])
    row.flags = " ".join(flags) or None
    row.updated_at = utcnow()


def _merge(current: Mapping[str, Any], names: tuple[str, ...], data: Mapping[str, Any], *, partial: bool,
           pinned: Mapping[str, Any]) -> dict[str, Any]:
    """The record an update asks for: PATCH keeps stored values the body leaves out, PUT replaces them all; the
    key stays pinned; None means unset."""
    base = {k: current[k] for k in names} if partial else {}
    return {k: v for k, v in {**base, **data, **pinned}.items() if v is not None}


def _immutable(data: Mapping[str, Any], name: str, current: str) -> None:
    if name in data and data[name] != current:
        raise InvalidIdentifier.single(name, "immutable", f"{name} cannot change (it is {current!r})")


def _service_namespace_free(session: Session, identifier: str, *, exclude_as: int | None = None,
                            exclude_mhs: int | None = None) -> None:
    """ASIDs and MHS unique identifiers share ou=Services (both are uniqueIdentifier=<x>): keep them distinct."""
    lower = identifier.lower()
    as_match = func.lower(AccreditedSystem.asid) == lower
    with session.no_autoflush:
        as_row = session.scalar(select(AccreditedSystem.id).where(as_match))
        mhs_row = session.scalar(
            select(MessageHandlingSystem.id).where(func.lower(MessageHandlingSystem.unique_identifier) == lower)
        )
    if (as_row is not None and as_row != exclude_as) or (mhs_row is not None and mhs_row != exclude_mhs):
        raise Conflict(f"uniqueIdentifier={identifier},ou=Services,o=nhs already exists")


# ---- Organisations ----------------------------------------------------------------------------------------


def create_organisation(session: Session, data: Mapping[str, Any], actor: Actor) -> Organisation:
    cleaned = records.clean_organisation(data)
    values = cleaned.values
    actor.check_may_write(values["ods_code"])
    if session.scalar(select(Organisation.id).where(Organisation.ods_code == values["ods_code"])):
        raise Conflict(f"organisation {values['ods_code']!r} already exists")
    row = Organisation()
    _apply(row, {"org_type": "GP Practice", **values}, ORG_SCALARS, (), cleaned.flags, replace=True)
    session.add(row)
    _flush(session, f"organisation {values['ods_code']!r}")
    _audit(session, actor, "create", "organisation", row.ods_code, None, organisation_dict(row))
    return row


def update_organisation(session: Session, ods_code: str, data: Mapping[str, Any], expected_version: int | None,
                        actor: Actor, *, partial: bool) -> Organisation:
    row = directory.get_organisation(session, ods_code)
    actor.check_may_write(row.ods_code)
    _check_version(row, expected_version, f"organisation {ods_code!r}")
    _immutable(data, "ods_code", row.ods_code)
    before = organisation_dict(row)
    merged = _merge(before, ORG_SCALARS, data, partial=partial, pinned={"ods_code": row.ods_code})
    cleaned = records.clean_organisation(merged)
    _apply(row, {"org_type": "GP Practice", **cleaned.values}, ORG_SCALARS, (), cleaned.flags, replace=True)
    _flush(session, f"organisation {ods_code!r}")
    _audit(session, actor, "update", "organisation", ods_code, before, organisation_dict(row))
    return row


def _delete(session: Session, row: Any, key: str, expected_version: int | None, actor: Actor, record_type: str,
            render: Callable[[Any], dict[str, Any]]) -> None:
    """Delete one versioned record the actor may write, auditing what it was."""
    what = f"{record_type.replace('_', ' ')} {key!r}"
    actor.check_may_write(row.ods_code)
    _check_version(row, expected_version, what)
    before = render(row)
    session.delete(row)
    _flush(session, what)
    _audit(session, actor, "delete", record_type, key, before, None)


def delete_organisation(session: Session, ods_code: str, expected_version: int | None, actor: Actor) -> None:
    row = directory.get_organisation(session, ods_code)
    _delete(session, row, ods_code, expected_version, actor, "organisation", organisation_dict)


# ---- Accredited systems -----------------------------------------------------------------------------------


def _as_defaults(values: dict[str, Any]) -> dict[str, Any]:
    now = utcnow().strftime("%Y%m%d%H%M%S")
    values.setdefault("date_requested", now)
    values.setdefault("date_approved", now)
    values.setdefault("requestor_urp", "System")
    values.setdefault("approver_urp", "System")
    if not values.get("clients"):
        values["clients"] = [values["ods_code"]]
    return values


def create_accredited_system(session: Session, data: Mapping[str, Any], actor: Actor, *,
                             lenient: bool = False) -> AccreditedSystem:
    cleaned = records.clean_accredited_system(data, lenient=lenient)
    values = _as_defaults(dict(cleaned.values))
    actor.check_may_write(values["ods_code"])
    _service_namespace_free(session, values["asid"])
    row = AccreditedSystem()
    _apply(row, values, AS_SCALARS, AS_LISTS, cleaned.flags, replace=True)
    session.add(row)
    _flush(session, f"accredited system {values['asid']!r}")
    _audit(session, actor, "create", "accredited_system", row.asid, None, accredited_system_dict(row))
    return row


def update_accredited_system(session: Session, asid: str, data: Mapping[str, Any], expected_version: int | None,
                             actor: Actor, *, partial: bool) -> AccreditedSystem:
    row = directory.get_accredited_system(session, asid)
    actor.check_may_write(row.ods_code)
    _check_version(row, expected_version, f"accredited system {asid!r}")
    _immutable(data, "asid", row.asid)
    current = accredited_system_dict(row)
    merged = _merge(current, (*AS_SCALARS, *AS_LISTS), data, partial=partial, pinned={"asid": row.asid})
    cleaned = records.clean_accredited_system(merged)
    actor.check_may_write(cleaned.values["ods_code"])
    _apply(row, _as_defaults(dict(cleaned.values)), AS_SCALARS, AS_LISTS, cleaned.flags, replace=True)
    _flush(session, f"accredited system {asid!r}")
    _audit(session, actor, "update", "accredited_system", asid, current, accredited_system_dict(row))
    return row


def delete_accredited_system(session: Session, asid: str, expected_version: int | None, actor: Actor) -> None:
    row = directory.get_accredited_system(session, asid)
    _delete(session, row, asid, expected_version, actor, "accredited_system", accredited_system_dict)


# ---- Message handling systems -----------------------------------------------------------------------------


def new_cpa_id(rng: random.Random = _rng) -> str:
    """A 20-hex-digit CPA id, the form the national SDS gives GP Connect MHS records."""
    return f"{rng.getrandbits(80):020x}"


def _mhs_defaults(values: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    now = utcnow().strftime("%Y%m%d%H%M%S")
    if not values.get("cpa_id"):
        values["cpa_id"] = values.get("unique_identifier") or new_cpa_id(rng)
    values.setdefault("unique_identifier", values["cpa_id"])
    gp_connect = lookup(values["interaction_id"]) is not None or values["interaction_id"].startswith(
        formats.GPCONNECT_PREFIX
    )
    values.setdefault("ep_interaction_type", "FHIR" if gp_connect else "HL7")
    values.setdefault("is_authenticated", "none")
    values.setdefault("sync_reply_mode", "None")
    values.setdefault("ack_requested", "never")
    values.setdefault("duplicate_elimination", "never")
    values.setdefault("date_requested", now)
    values.setdefault("date_approved", now)
    values.setdefault("date_dns_approved", now)
    values.setdefault("requestor_urp", "System")
    values.setdefault("approver_urp", "System")
    values.setdefault("dns_approver", "System")
    values.setdefault("contract_property_template_key", "14")
    values.setdefault("product_key", "0")
    return values


def create_mhs(session: Session, data: Mapping[str, Any], actor: Actor, *, lenient: bool = False,
               rng: random.Random = _rng) -> MessageHandlingSystem:
    cleaned = records.clean_mhs(data, lenient=lenient)
    values = _mhs_defaults(dict(cleaned.values), rng)
    actor.check_may_write(values["ods_code"])
    _service_namespace_free(session, values["unique_identifier"])
    what = f"message handling system {values['unique_identifier']!r}"
    duplicate = session.scalar(select(MessageHandlingSystem.unique_identifier).where(
        func.lower(MessageHandlingSystem.party_key) == values["party_key"].lower(),
        MessageHandlingSystem.interaction_id == values["interaction_id"],
    ))
    if duplicate:
        raise Conflict(f"party key {values['party_key']!r} already has an MHS record ({duplicate}) for "
                       f"{values['interaction_id']!r}")
    row = MessageHandlingSystem()
    _apply(row, values, MHS_SCALARS, MHS_LISTS, cleaned.flags, replace=True)
    session.add(row)
    _flush(session, what)
    _audit(session, actor, "create", "message_handling_system", row.unique_identifier, None, mhs_dict(row))
    return row


def update_mhs(session: Session, unique_identifier: str, data: Mapping[str, Any], expected_version: int | None,
               actor: Actor, *, partial: bool) -> MessageHandlingSystem:
    row = directory.get_mhs(session, unique_identifier)
    actor.check_may_write(row.ods_code)
    _check_version(row, expected_version, f"message handling system {unique_identifier!r}")
    _immutable(data, "unique_identifier", row.unique_identifier)
    current = mhs_dict(row)
    body = data if partial else {"cpa_id": row.cpa_id, **data}  # PUT keeps the CPA id unless the body sets it
    merged = _merge(current, (*MHS_SCALARS, *MHS_LISTS), body, partial=partial,
                    pinned={"unique_identifier": row.unique_identifier})
    if "interaction_id" in data and partial:
        merged.pop("service_name", None)
        merged.pop("interaction_name", None)
    if "endpoints" in data and partial and "fqdn" not in data:
        merged.pop("fqdn", None)
    cleaned = records.clean_mhs(merged)
    values = _mhs_defaults(dict(cleaned.values), _rng)
    actor.check_may_write(values["ods_code"])
    _apply(row, values, MHS_SCALARS, MHS_LISTS, cleaned.flags, replace=True)
    _flush(session, f"message handling system {unique_identifier!r}")
    _audit(session, actor, "update", "message_handling_system", unique_identifier, current, mhs_dict(row))
    return row


def delete_mhs(session: Session, unique_identifier: str, expected_version: int | None, actor: Actor) -> None:
    row = directory.get_mhs(session, unique_identifier)
    _delete(session, row, unique_identifier, expected_version, actor, "message_handling_system", mhs_dict)


# ---- Data-sharing agreements ------------------------------------------------------------------------------


def _agreement_code(value: object, name: str) -> str:
    return "*" if value == "*" else formats.ods_code(value, name)


def create_agreement(session: Session, data: Mapping[str, Any], actor: Actor) -> DataSharingAgreement:
    issues: list[Issue] = []
    values: dict[str, Any] = {}
    for name in ("consumer_ods", "provider_ods"):
        try:
            values[name] = _agreement_code(data.get(name), name)
        except InvalidIdentifier as exc:
            issues.extend(exc.issues)
    unknown = set(data) - {"consumer_ods", "provider_ods", "description"}
    issues.extend(Issue(n, "unknown-field", f"{n!r} is not a field of data_sharing_agreement") for n in unknown)
    if issues:
        raise InvalidIdentifier(issues)
    actor.check_may_write(*(v for v in values.values() if v != "*"))
    existing = session.scalar(select(DataSharingAgreement).where(
        DataSharingAgreement.consumer_ods == values["consumer_ods"],
        DataSharingAgreement.provider_ods == values["provider_ods"],
    ))
    if existing is not None:
        raise Conflict(f"an agreement from {values['consumer_ods']} to {values['provider_ods']} already exists")
    row = DataSharingAgreement(description=data.get("description"), **values)
    session.add(row)
    _flush(session, "data-sharing agreement")
    _audit(session, actor, "create", "data_sharing_agreement", f"{row.consumer_ods}->{row.provider_ods}", None,
           agreement_dict(row))
    return row


# ---- One-call registrations -------------------------------------------------------------------------------


def new_asid(session: Session, rng: random.Random = _rng) -> str:
    """A fresh 12-digit ASID not yet used in ou=Services."""
    while True:
        candidate = f"{rng.randrange(10**11, 10**12):012d}"
        if session.scalar(select(AccreditedSystem.id).where(AccreditedSystem.asid == candidate)) is None:
            return candidate


def new_party_key(session: Session, ods_code: str, rng: random.Random = _rng) -> str:
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
                      rng: random.Random = _rng) -> Registration:
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
                      rng: random.Random = _rng) -> AccreditedSystem:
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
