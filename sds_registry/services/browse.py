"""Reads for the web pages: what a search box names (ODS code, ASID, party key, interaction ID or FQDN), the
records it finds a page at a time, an organisation's records and a system's write history.

Takes a Session; never writes. Every query is an index probe or an index range read bounded by ``limit`` and
keyed on ``id`` (keyset paging: ``after`` is the last id of the page before), so a page costs the same at 100 and
at 100,000 practices (indexes: models/, and migration 0003 for interaction and FQDN).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, lazyload

from sds_registry.domain import formats
from sds_registry.errors import InvalidIdentifier
from sds_registry.models import AccreditedSystem, AsInteraction, AuditEvent, MessageHandlingSystem, Organisation

T = TypeVar("T")
PAGE = 50
#: The most records an organisation page lists of each kind (a practice has a dozen; a supplier's hub, more).
ORGANISATION_LIMIT = 500
HISTORY_LIMIT = 50

_ASID = re.compile(r"\d{12}")
_PARTY_KEY = re.compile(r"[A-Za-z0-9]{1,9}-\d{5,9}")
_ODS = re.compile(r"[A-Za-z0-9]{3,9}")
_CPA_ID = re.compile(r"[A-Za-z0-9:_-]{10,64}")


@dataclass(frozen=True)
class Query:
    """What a search names: ``kind`` is one of ods, asid, party_key, interaction, fqdn."""

    kind: str
    value: str


KINDS = {"ods": "ODS code", "asid": "ASID", "party_key": "party key", "interaction": "interaction ID",
         "fqdn": "FQDN", "cpa_id": "CPA id"}


def classify(text: str) -> Query:
    """The kind of identifier ``text`` is, by its shape: 12 digits an ASID, ``ODS-digits`` a party key, ``urn:...``
    an interaction ID, a dotted DNS name an FQDN, 3-9 letters and digits an ODS code (upper-cased), a longer run of
    letters, digits, ``:``, ``_`` and ``-`` an MHS record's CPA id or unique identifier (as SSP refusals name them)."""
    value = text.strip()
    if not value:
        raise InvalidIdentifier.single("q", "required", "type an ODS code, ASID, party key, interaction ID or FQDN")
    if _ASID.fullmatch(value):
        return Query("asid", value)
    if _PARTY_KEY.fullmatch(value):
        return Query("party_key", value.upper())
    if value.lower().startswith("urn:"):
        return Query("interaction", value)
    if "." in value:
        return Query("fqdn", formats.fqdn(value.lower().rstrip("."), "q"))
    if _ODS.fullmatch(value):
        return Query("ods", value.upper())
    if _CPA_ID.fullmatch(value):
        return Query("cpa_id", value)
    raise InvalidIdentifier.single(
        "q", "search-form",
        f"{value!r} is none of: an ODS code (3-9 letters and digits), an ASID (12 digits), a party key "
        "(ODS-digits), an interaction ID (urn:...), an FQDN (a dotted host name) or a CPA id (10-64 letters, digits, "
        "':', '_' or '-')")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of records in id order; ``after`` is the cursor of the next page (None: this is the last)."""

    items: list[T]
    after: int | None


def _page(session: Session, query: Select[Any], limit: int) -> Page[Any]:
    rows = list(session.scalars(query.limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, rows[-1].id)
    return Page(rows, None)


def find_systems(session: Session, query: Query, *, after: int | None = None,
                 limit: int = PAGE) -> Page[AccreditedSystem]:
    """The accredited systems a search names: by ODS code, ASID, party key or accredited interaction (an FQDN
    and a CPA id name MHS records only: an empty page). Their lists (interactions, clients, ...) load only when read: a
    provider's two dozen interactions, times a page, cost more than the page's own query."""
    s = AccreditedSystem
    stmt: Select[Any]
    if query.kind == "interaction":
        # The (interaction_id, as_id) index read in as_id order: no sort of every system accredited for it.
        stmt = (select(s).options(lazyload("*")).join(AsInteraction, AsInteraction.as_id == s.id)
                .where(AsInteraction.interaction_id == query.value).order_by(AsInteraction.as_id))
        if after is not None:
            stmt = stmt.where(AsInteraction.as_id > after)
        return _page(session, stmt, limit)
    stmt = select(s).options(lazyload("*")).order_by(s.id)
    if query.kind == "ods":
        stmt = stmt.where(s.ods_code == query.value)
    elif query.kind == "asid":
        stmt = stmt.where(s.asid == query.value)
    elif query.kind == "party_key":
        stmt = stmt.where(func.lower(s.party_key) == query.value.lower())
    else:
        return Page([], None)
    if after is not None:
        stmt = stmt.where(s.id > after)
    return _page(session, stmt, limit)


def find_mhs_records(session: Session, query: Query, *, after: int | None = None,
                     limit: int = PAGE) -> Page[MessageHandlingSystem]:
    """The MHS records a search names: by ODS code, party key, interaction or FQDN (an ASID names the MHS
    records of its party key)."""
    m = MessageHandlingSystem
    stmt = select(m).order_by(m.id)
    if query.kind == "ods":
        stmt = stmt.where(m.ods_code == query.value)
    elif query.kind == "party_key":
        stmt = stmt.where(func.lower(m.party_key) == query.value.lower())
    elif query.kind == "interaction":
        stmt = stmt.where(m.interaction_id == query.value)
    elif query.kind == "fqdn":
        stmt = stmt.where(func.lower(m.fqdn) == query.value.lower())
    elif query.kind == "cpa_id":  # two unique indexes
        stmt = stmt.where(or_(m.cpa_id == query.value, func.lower(m.unique_identifier) == query.value.lower()))
    else:
        system = session.scalar(select(AccreditedSystem).where(AccreditedSystem.asid == query.value))
        if system is None:
            return Page([], None)
        stmt = stmt.where(func.lower(m.party_key) == system.party_key.lower())
    if after is not None:
        stmt = stmt.where(m.id > after)
    return _page(session, stmt, limit)


def find_organisation(session: Session, ods_code: str) -> Organisation | None:
    return session.scalar(select(Organisation).where(Organisation.ods_code == ods_code))


@dataclass(frozen=True)
class OrganisationRecords:
    """An organisation's registry entry (None when only its systems are registered) and its records."""

    ods_code: str
    organisation: Organisation | None
    systems: list[AccreditedSystem]
    mhs_records: list[MessageHandlingSystem]
    #: True when either list stopped at ORGANISATION_LIMIT.
    truncated: bool


def organisation_records(session: Session, ods_code: str, *, limit: int = ORGANISATION_LIMIT) -> OrganisationRecords:
    """Everything registered under one ODS code (systems in id order, MHS records by interaction)."""
    systems = list(session.scalars(select(AccreditedSystem).where(AccreditedSystem.ods_code == ods_code)
                                   .order_by(AccreditedSystem.id).limit(limit + 1)))
    mhs = list(session.scalars(select(MessageHandlingSystem).where(MessageHandlingSystem.ods_code == ods_code)
                               .order_by(MessageHandlingSystem.interaction_id, MessageHandlingSystem.id)
                               .limit(limit + 1)))
    truncated = len(systems) > limit or len(mhs) > limit
    return OrganisationRecords(ods_code, find_organisation(session, ods_code), systems[:limit], mhs[:limit],
                               truncated)


def system_history(session: Session, asid: str, *, limit: int = HISTORY_LIMIT) -> list[AuditEvent]:
    """The write audit of one accredited system, newest first (the (record_type, record_key) index)."""
    return list(session.scalars(
        select(AuditEvent)
        .where(AuditEvent.record_type == "accredited_system", AuditEvent.record_key == asid)
        .order_by(AuditEvent.id.desc()).limit(limit)))
