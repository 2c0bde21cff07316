"""Organisation writes (ou=Organisations): create, update, delete. Takes a Session; never commits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sds_registry.domain import records
from sds_registry.errors import Conflict
from sds_registry.models import Organisation
from sds_registry.services import directory
from sds_registry.services.records import ORG_SCALARS, organisation_dict
from sds_registry.services.writes import Actor, add_audit, apply, check_version, delete, flush, immutable, merge


def create_organisation(session: Session, data: Mapping[str, Any], actor: Actor) -> Organisation:
    cleaned = records.clean_organisation(data)
    values = cleaned.values
    actor.check_may_write(values["ods_code"])
    if session.scalar(select(Organisation.id).where(Organisation.ods_code == values["ods_code"])):
        raise Conflict(f"organisation {values['ods_code']!r} already exists")
    row = Organisation()
    apply(row, {"org_type": "GP Practice", **values}, ORG_SCALARS, (), cleaned.flags, replace=True)
    session.add(row)
    flush(session, f"organisation {values['ods_code']!r}")
    add_audit(session, actor, "create", "organisation", row.ods_code, None, organisation_dict(row))
    return row


def update_organisation(session: Session, ods_code: str, data: Mapping[str, Any], expected_version: int | None,
                        actor: Actor, *, partial: bool) -> Organisation:
    row = directory.get_organisation(session, ods_code)
    actor.check_may_write(row.ods_code)
    check_version(row, expected_version, f"organisation {ods_code!r}")
    immutable(data, "ods_code", row.ods_code)
    before = organisation_dict(row)
    merged = merge(before, ORG_SCALARS, data, partial=partial, pinned={"ods_code": row.ods_code})
    cleaned = records.clean_organisation(merged)
    apply(row, {"org_type": "GP Practice", **cleaned.values}, ORG_SCALARS, (), cleaned.flags, replace=True)
    flush(session, f"organisation {ods_code!r}")
    add_audit(session, actor, "update", "organisation", ods_code, before, organisation_dict(row))
    return row


def delete_organisation(session: Session, ods_code: str, expected_version: int | None, actor: Actor) -> None:
    row = directory.get_organisation(session, ods_code)
    delete(session, row, ods_code, expected_version, actor, "organisation", organisation_dict)
