"""Message Handling System (nhsMhs) writes: create, update, delete, CPA ids. Takes a Session; never commits."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sds_registry.db import utcnow
from sds_registry.domain import formats, records
from sds_registry.domain.interactions import lookup
from sds_registry.errors import Conflict
from sds_registry.models import MessageHandlingSystem
from sds_registry.services import directory
from sds_registry.services.records import MHS_LISTS, MHS_SCALARS, mhs_dict
from sds_registry.services.writes import (
    RNG,
    Actor,
    add_audit,
    apply,
    check_version,
    delete,
    flush,
    immutable,
    merge,
    service_namespace_free,
)


def new_cpa_id(rng: random.Random = RNG) -> str:
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
               rng: random.Random = RNG) -> MessageHandlingSystem:
    cleaned = records.clean_mhs(data, lenient=lenient)
    values = _mhs_defaults(dict(cleaned.values), rng)
    actor.check_may_write(values["ods_code"])
    service_namespace_free(session, values["unique_identifier"])
    what = f"message handling system {values['unique_identifier']!r}"
    duplicate = session.scalar(select(MessageHandlingSystem.unique_identifier).where(
        func.lower(MessageHandlingSystem.party_key) == values["party_key"].lower(),
        MessageHandlingSystem.interaction_id == values["interaction_id"],
    ))
    if duplicate:
        raise Conflict(f"party key {values['party_key']!r} already has an MHS record ({duplicate}) for "
                       f"{values['interaction_id']!r}")
    row = MessageHandlingSystem()
    apply(row, values, MHS_SCALARS, MHS_LISTS, cleaned.flags, replace=True)
    session.add(row)
    flush(session, what)
    add_audit(session, actor, "create", "message_handling_system", row.unique_identifier, None, mhs_dict(row))
    return row


def update_mhs(session: Session, unique_identifier: str, data: Mapping[str, Any], expected_version: int | None,
               actor: Actor, *, partial: bool) -> MessageHandlingSystem:
    row = directory.get_mhs(session, unique_identifier)
    actor.check_may_write(row.ods_code)
    check_version(row, expected_version, f"message handling system {unique_identifier!r}")
    immutable(data, "unique_identifier", row.unique_identifier)
    current = mhs_dict(row)
    body = data if partial else {"cpa_id": row.cpa_id, **data}  # PUT keeps the CPA id unless the body sets it
    merged = merge(current, (*MHS_SCALARS, *MHS_LISTS), body, partial=partial,
                   pinned={"unique_identifier": row.unique_identifier})
    if "interaction_id" in data and partial:
        merged.pop("service_name", None)
        merged.pop("interaction_name", None)
    if "endpoints" in data and partial and "fqdn" not in data:
        merged.pop("fqdn", None)
    cleaned = records.clean_mhs(merged)
    values = _mhs_defaults(dict(cleaned.values), RNG)
    actor.check_may_write(values["ods_code"])
    apply(row, values, MHS_SCALARS, MHS_LISTS, cleaned.flags, replace=True)
    flush(session, f"message handling system {unique_identifier!r}")
    add_audit(session, actor, "update", "message_handling_system", unique_identifier, current, mhs_dict(row))
    return row


def delete_mhs(session: Session, unique_identifier: str, expected_version: int | None, actor: Actor) -> None:
    row = directory.get_mhs(session, unique_identifier)
    delete(session, row, unique_identifier, expected_version, actor, "message_handling_system", mhs_dict)
