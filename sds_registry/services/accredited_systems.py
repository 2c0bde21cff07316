"""Accredited System (nhsAs) writes: create, update, delete, fresh ASIDs. Takes a Session; never commits."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sds_registry.db import utcnow
from sds_registry.domain import records
from sds_registry.models import AccreditedSystem
from sds_registry.services import directory
from sds_registry.services.records import AS_LISTS, AS_SCALARS, accredited_system_dict
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


def _as_defaults(values: dict[str, Any]) -> dict[str, Any]:
    now = utcnow().strftime("%Y%m%d%H%M%S")
    values.setdefault("date_requested", now)
    values.setdefault("date_approved", now)
    values.setdefault("requestor_urp", "System")
    values.setdefault("approver_urp", "System")
    if not values.get("clients"):
        values["clients"] = [values["ods_code"]]
    return values


def new_asid(session: Session, rng: random.Random = RNG) -> str:
    """A fresh 12-digit ASID not yet used in ou=Services."""
    while True:
        candidate = f"{rng.randrange(10**11, 10**12):012d}"
        if session.scalar(select(AccreditedSystem.id).where(AccreditedSystem.asid == candidate)) is None:
            return candidate


def create_accredited_system(session: Session, data: Mapping[str, Any], actor: Actor, *,
                             lenient: bool = False) -> AccreditedSystem:
    cleaned = records.clean_accredited_system(data, lenient=lenient)
    values = _as_defaults(dict(cleaned.values))
    actor.check_may_write(values["ods_code"])
    service_namespace_free(session, values["asid"])
    row = AccreditedSystem()
    apply(row, values, AS_SCALARS, AS_LISTS, cleaned.flags, replace=True)
    session.add(row)
    flush(session, f"accredited system {values['asid']!r}")
    add_audit(session, actor, "create", "accredited_system", row.asid, None, accredited_system_dict(row))
    return row


def update_accredited_system(session: Session, asid: str, data: Mapping[str, Any], expected_version: int | None,
                             actor: Actor, *, partial: bool) -> AccreditedSystem:
    row = directory.get_accredited_system(session, asid)
    actor.check_may_write(row.ods_code)
    check_version(row, expected_version, f"accredited system {asid!r}")
    immutable(data, "asid", row.asid)
    current = accredited_system_dict(row)
    merged = merge(current, (*AS_SCALARS, *AS_LISTS), data, partial=partial, pinned={"asid": row.asid})
    cleaned = records.clean_accredited_system(merged)
    actor.check_may_write(cleaned.values["ods_code"])
    apply(row, _as_defaults(dict(cleaned.values)), AS_SCALARS, AS_LISTS, cleaned.flags, replace=True)
    flush(session, f"accredited system {asid!r}")
    add_audit(session, actor, "update", "accredited_system", asid, current, accredited_system_dict(row))
    return row


def delete_accredited_system(session: Session, asid: str, expected_version: int | None, actor: Actor) -> None:
    row = directory.get_accredited_system(session, asid)
    delete(session, row, asid, expected_version, actor, "accredited_system", accredited_system_dict)
