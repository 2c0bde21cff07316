"""Data-sharing agreement writes (consumer ODS -> provider ODS, ``*`` for any). Takes a Session; never commits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sds_registry.domain import formats
from sds_registry.errors import Conflict, InvalidIdentifier, Issue
from sds_registry.models import DataSharingAgreement
from sds_registry.services.records import agreement_dict
from sds_registry.services.writes import Actor, add_audit, flush


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
    flush(session, "data-sharing agreement")
    add_audit(session, actor, "create", "data_sharing_agreement", f"{row.consumer_ods}->{row.provider_ods}", None,
              agreement_dict(row))
    return row
