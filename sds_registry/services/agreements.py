"""Data-sharing agreements (consumer ODS -> provider ODS, ``*`` for any): create, list, read, delete. Takes a
Session; never commits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sds_registry.domain import formats
from sds_registry.errors import Conflict, Forbidden, InvalidIdentifier, Issue, NotFound
from sds_registry.models import DataSharingAgreement
from sds_registry.services.records import agreement_dict
from sds_registry.services.writes import Actor, add_audit, check_version, flush


def agreement_code(value: object, name: str) -> str:
    """An agreement side as stored: an ODS code, or ``*`` for any organisation."""
    return "*" if value == "*" else formats.ods_code(value, name)


def create_agreement(session: Session, data: Mapping[str, Any], actor: Actor) -> DataSharingAgreement:
    issues: list[Issue] = []
    values: dict[str, Any] = {}
    for name in ("consumer_ods", "provider_ods"):
        try:
            values[name] = agreement_code(data.get(name), name)
        except InvalidIdentifier as exc:
            issues.extend(exc.issues)
    unknown = set(data) - {"consumer_ods", "provider_ods", "description"}
    issues.extend(Issue(n, "unknown-field", f"{n!r} is not a field of data_sharing_agreement") for n in unknown)
    if issues:
        raise InvalidIdentifier(issues)
    actor.check_may_write(*(v for v in values.values() if v != "*"))
    if values["provider_ods"] == "*" and not actor.admin:
        # "*" as the provider is every organisation's records: no ODS binding covers them all.
        raise Forbidden(f"client {actor.name!r} may not create an agreement with every provider ('*'): "
                        "that needs an admin token")
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


def find_agreements(session: Session, *, consumer_ods: str | None = None, provider_ods: str | None = None,
                    limit: int | None = None, after_id: int | None = None) -> list[DataSharingAgreement]:
    """Agreements in id order; ``consumer_ods``/``provider_ods`` match the stored side exactly (``*`` finds
    the wildcard agreements)."""
    query = select(DataSharingAgreement).order_by(DataSharingAgreement.id)
    if consumer_ods is not None:
        query = query.where(DataSharingAgreement.consumer_ods == consumer_ods)
    if provider_ods is not None:
        query = query.where(DataSharingAgreement.provider_ods == provider_ods)
    if after_id is not None:
        query = query.where(DataSharingAgreement.id > after_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def get_agreement(session: Session, agreement_id: int) -> DataSharingAgreement:
    row = session.get(DataSharingAgreement, agreement_id)
    if row is None:
        raise NotFound(f"no data-sharing agreement with id {agreement_id}")
    return row


def get_agreement_pair(session: Session, consumer_ods: str, provider_ods: str) -> DataSharingAgreement:
    consumer, provider = agreement_code(consumer_ods, "consumer_ods"), agreement_code(provider_ods, "provider_ods")
    row = session.scalar(select(DataSharingAgreement).where(
        DataSharingAgreement.consumer_ods == consumer, DataSharingAgreement.provider_ods == provider))
    if row is None:
        raise NotFound(f"no data-sharing agreement from {consumer} to {provider}")
    return row


def delete_agreement(session: Session, row: DataSharingAgreement, expected_version: int | None,
                     actor: Actor) -> None:
    """Delete an agreement. Either party may end it: an admin, or a client bound to the consumer's or the
    provider's ODS code (a ``*`` side is nobody's; ``*`` -> ``*`` needs an admin). Creating one needs both."""
    parties = {row.consumer_ods, row.provider_ods} - {"*"}
    if not actor.admin and not parties & actor.ods_codes:
        raise Forbidden(f"client {actor.name!r} may not delete the agreement from {row.consumer_ods} to "
                        f"{row.provider_ods}: it is bound to neither organisation")
    key = f"{row.consumer_ods}->{row.provider_ods}"
    check_version(row, expected_version, f"data-sharing agreement {key!r}")
    before = agreement_dict(row)
    session.delete(row)
    flush(session, f"data-sharing agreement {key!r}")
    add_audit(session, actor, "delete", "data_sharing_agreement", key, before, None)
