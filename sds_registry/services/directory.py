"""Directory reads shared by every facade: indexed lookups by ODS, party key, interaction and ASID.

Takes a Session; never commits. Each lookup is a bounded index probe (see the indexes in models/).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from sds_registry.errors import NotFound
from sds_registry.models import AccreditedSystem, AsInteraction, MessageHandlingSystem, Organisation

MAX_PAGE = 500


@dataclass(frozen=True)
class Resolution:
    """The GP Connect two-step lookup's answer for one practice and interaction."""

    ods_code: str
    interaction_id: str
    service_root_url: str
    party_key: str
    asid: str
    fqdn: str | None
    cpa_id: str


def get_accredited_system(session: Session, asid: str) -> AccreditedSystem:
    row = session.scalar(select(AccreditedSystem).where(AccreditedSystem.asid == asid))
    if row is None:
        raise NotFound(f"no accredited system with ASID {asid!r}")
    return row


def get_mhs(session: Session, unique_identifier: str) -> MessageHandlingSystem:
    row = session.scalar(
        select(MessageHandlingSystem).where(MessageHandlingSystem.unique_identifier == unique_identifier)
    )
    if row is None:
        raise NotFound(f"no message handling system with unique identifier {unique_identifier!r}")
    return row


def get_organisation(session: Session, ods_code: str) -> Organisation:
    row = session.scalar(select(Organisation).where(Organisation.ods_code == ods_code))
    if row is None:
        raise NotFound(f"no organisation with ODS code {ods_code!r}")
    return row


def find_mhs(
    session: Session,
    *,
    ods_code: str | None = None,
    interaction_id: str | None = None,
    party_key: str | None = None,
    limit: int | None = None,
    after_id: int | None = None,
) -> Sequence[MessageHandlingSystem]:
    """MHS records by any of ODS code, interaction and party key (caseIgnore), in id order."""
    query = select(MessageHandlingSystem)
    if ods_code is not None:
        query = query.where(MessageHandlingSystem.ods_code == ods_code)
    if interaction_id is not None:
        query = query.where(MessageHandlingSystem.interaction_id == interaction_id)
    if party_key is not None:
        query = query.where(func.lower(MessageHandlingSystem.party_key) == party_key.lower())
    if after_id is not None:
        query = query.where(MessageHandlingSystem.id > after_id)
    query = query.order_by(MessageHandlingSystem.id)
    if limit is not None:
        query = query.limit(limit)
    return session.scalars(query).all()


def find_accredited_systems(
    session: Session,
    *,
    ods_code: str | None = None,
    interaction_id: str | None = None,
    party_key: str | None = None,
    manufacturer_org: str | None = None,
    limit: int | None = None,
    after_id: int | None = None,
) -> Sequence[AccreditedSystem]:
    """AS records by ODS code, accredited interaction, party key (caseIgnore) and manufacturer, in id order."""
    query: Select[Any] = select(AccreditedSystem)
    if ods_code is not None:
        query = query.where(AccreditedSystem.ods_code == ods_code)
    if party_key is not None:
        query = query.where(func.lower(AccreditedSystem.party_key) == party_key.lower())
    if manufacturer_org is not None:
        query = query.where(AccreditedSystem.manufacturer_org == manufacturer_org)
    if interaction_id is not None:
        query = query.where(
            select(AsInteraction.as_id)
            .where(AsInteraction.as_id == AccreditedSystem.id, AsInteraction.interaction_id == interaction_id)
            .exists()
        )
    if after_id is not None:
        query = query.where(AccreditedSystem.id > after_id)
    query = query.order_by(AccreditedSystem.id)
    if limit is not None:
        query = query.limit(limit)
    return session.scalars(query).all()


def resolve(session: Session, ods_code: str, interaction_id: str) -> Resolution:
    """GP Connect 1.2.3: MHS by (ODS, interaction) for endpoint + party key, then AS by (ODS, party key)."""
    mhs = find_mhs(session, ods_code=ods_code, interaction_id=interaction_id, limit=1)
    if not mhs or not mhs[0].endpoints:
        raise NotFound(f"no endpoint registered for ODS code {ods_code!r} and interaction {interaction_id!r}")
    record = mhs[0]
    systems = find_accredited_systems(session, ods_code=ods_code, party_key=record.party_key, limit=1)
    if not systems:
        raise NotFound(f"no accredited system for ODS code {ods_code!r} and party key {record.party_key!r}")
    return Resolution(
        ods_code=ods_code,
        interaction_id=interaction_id,
        service_root_url=record.endpoints[0],
        party_key=record.party_key,
        asid=systems[0].asid,
        fqdn=record.fqdn,
        cpa_id=record.cpa_id,
    )


def find_organisations(
    session: Session, *, ods_code: str | None = None, limit: int | None = None, after_id: int | None = None
) -> Sequence[Organisation]:
    query = select(Organisation)
    if ods_code is not None:
        query = query.where(Organisation.ods_code == ods_code)
    if after_id is not None:
        query = query.where(Organisation.id > after_id)
    query = query.order_by(Organisation.id)
    if limit is not None:
        query = query.limit(limit)
    return session.scalars(query).all()
