"""Directory reads shared by every facade: indexed lookups by ODS, party key, interaction and ASID.

Takes a Session (the FHIR view lookups also a db.ReadConnection); never writes. Each lookup is a bounded
index probe (see the indexes in models/).
"""

from __future__ import annotations

import json
import json.scanner
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Select, func, literal_column, select
from sqlalchemy.orm import Session

from sds_registry import metrics
from sds_registry.db import ReadConnection
from sds_registry.errors import NotFound
from sds_registry.models import AccreditedSystem, AsInteraction, MessageHandlingSystem, Organisation


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


# ---- Flat reads for the SDS FHIR facade -------------------------------------------------------------------
# One Core query per lookup (no ORM identity map, no selectin round trips): the FHIR API answers every
# GP Connect request twice (Device + Endpoint), so these sit on the hot path. They read on a Session or on a
# db.ReadConnection (the FHIR views: a pool checkout and nothing else). Each statement is built and compiled
# once per filter combination and dialect; rows come straight from the DBAPI cursor. Same indexes as
# find_mhs / find_accredited_systems.


class MhsView(NamedTuple):
    """An nhsMhs record as the FHIR Endpoint mapping needs it."""

    ods_code: str
    party_key: str
    interaction_id: str
    unique_identifier: str
    cpa_id: str
    fqdn: str | None
    sync_reply_mode: str | None
    retry_interval: str | None
    retries: int | None
    persist_duration: str | None
    duplicate_elimination: str | None
    ack_requested: str | None
    endpoints: tuple[str, ...]
    actors: tuple[str, ...]


class AsView(NamedTuple):
    """An nhsAs record as the FHIR Device mapping needs it."""

    asid: str
    ods_code: str
    party_key: str
    manufacturer_org: str | None
    interactions: tuple[str, ...]
    clients: tuple[str, ...]


Reader = Session | ReadConnection

_MHS_VIEW_COLUMNS = (
    "ods_code", "party_key", "interaction_id", "unique_identifier", "cpa_id", "fqdn", "sync_reply_mode",
    "retry_interval", "retries", "persist_duration", "duplicate_elimination", "ack_requested",
)
#: (lookup, dialect name, filters) -> (SQL text, bind names in positional order or None for named binds)
_compiled_sql: dict[tuple[str, str, tuple[str, ...]], tuple[str, tuple[str, ...] | None]] = {}


def _fetch(reader: Reader, lookup: str, params: dict[str, Any]) -> list[Any]:
    """Rows of the ``lookup`` statement for the given (non-None) filters, from a DBAPI cursor: on a Session,
    its own connection (and transaction); no Result or Row objects either way."""
    if type(reader) is ReadConnection:
        dialect = reader.dialect
        cursor = reader.cursor()
    else:
        connection = reader.connection()  # type: ignore[union-attr]
        dialect = connection.dialect
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    filters = tuple(params)
    key = (lookup, dialect.name, filters)
    entry = _compiled_sql.get(key)
    if entry is None:
        stmt = _mhs_view_statement(filters) if lookup == "mhs" else _as_view_statement(filters, dialect.name)
        compiled = stmt.compile(dialect=dialect)
        order = tuple(compiled.positiontup) if compiled.positiontup else None
        entry = _compiled_sql[key] = (str(compiled), order)
    sql, order = entry
    started = time.perf_counter()
    try:
        cursor.execute(sql, tuple([params[name] for name in order]) if order is not None else params)
        return cursor.fetchall()  # type: ignore[no-any-return]
    finally:
        cursor.close()
        metrics.DB_QUERY_DURATION.observe(time.perf_counter() - started)  # raw cursors skip the engine's events


def _mhs_view_statement(filters: tuple[str, ...]) -> Any:
    from sqlalchemy import bindparam

    from sds_registry.models import MhsActor, MhsEndpoint

    m = MessageHandlingSystem.__table__
    e = MhsEndpoint.__table__
    a = MhsActor.__table__
    stmt = select(m.c.id, *(m.c[name] for name in _MHS_VIEW_COLUMNS), e.c.position, e.c.url,
                  a.c.position, a.c.value).select_from(
        m.outerjoin(e, e.c.mhs_id == m.c.id).outerjoin(a, a.c.mhs_id == m.c.id))
    if "ods_code" in filters:
        stmt = stmt.where(m.c.ods_code == bindparam("ods_code"))
    if "interaction_id" in filters:
        stmt = stmt.where(m.c.interaction_id == bindparam("interaction_id"))
    if "party_key" in filters:
        stmt = stmt.where(func.lower(m.c.party_key) == bindparam("party_key"))
    return stmt.order_by(m.c.id, e.c.position, a.c.position)


def _filter_params(**filters: str | None) -> dict[str, Any]:
    """The filters given (None: not filtered), in call order; party keys compare in lower case."""
    params: dict[str, Any] = {name: value for name, value in filters.items() if value is not None}
    if "party_key" in params:
        params["party_key"] = params["party_key"].lower()
    return params


def find_mhs_views(
    reader: Reader, *, ods_code: str | None = None, interaction_id: str | None = None, party_key: str | None = None
) -> list[MhsView]:
    """find_mhs for the FHIR facade: the same filters and order, as flat MhsView values in one query."""
    params = _filter_params(ods_code=ods_code, interaction_id=interaction_id, party_key=party_key)
    rows = _fetch(reader, "mhs", params)
    if len(rows) == 1:  # the usual answer: one record with one endpoint (or none) and no actors
        row = rows[0]
        return [MhsView._make((*row[1:13], (row[14],) if row[13] is not None else (),
                               (row[16],) if row[15] is not None else ()))]
    views: list[MhsView] = []
    current: int | None = None
    scalars: tuple[Any, ...] = ()
    endpoints: dict[int, str] = {}
    actors: dict[int, str] = {}
    for row in rows:
        if row[0] != current:
            if current is not None:
                views.append(MhsView._make((*scalars, tuple(endpoints.values()), tuple(actors.values()))))
            current, scalars, endpoints, actors = row[0], tuple(row[1:13]), {}, {}
        if row[13] is not None:
            endpoints.setdefault(row[13], row[14])
        if row[15] is not None:
            actors.setdefault(row[15], row[16])
    if current is not None:
        views.append(MhsView._make((*scalars, tuple(endpoints.values()), tuple(actors.values()))))
    return views


def _child_values(table: str, fk: str, value: str, parent: str, dialect: str) -> Any:
    """One child table's values for a parent row, as a JSON array in position order, inside the same query."""
    if dialect == "postgresql":
        sql = f"(SELECT json_agg({value} ORDER BY position) FROM {table} WHERE {fk} = {parent})"
    else:  # an ordered inner query: left alone, SQLite may read a covering index and aggregate alphabetically
        sql = (f"(SELECT json_group_array(v) FROM (SELECT {value} AS v FROM {table} WHERE {fk} = {parent} "
               "ORDER BY position))")
    return literal_column(sql)


def _as_view_statement(filters: tuple[str, ...], dialect: str) -> Any:
    from sqlalchemy import bindparam

    s = AccreditedSystem.__table__
    matched = AsInteraction.__table__.alias("matched")
    stmt = select(
        s.c.asid, s.c.ods_code, s.c.party_key, s.c.manufacturer_org,
        _child_values("as_interactions", "as_id", "interaction_id", "accredited_systems.id", dialect),
        _child_values("as_clients", "as_id", "ods_code", "accredited_systems.id", dialect),
    ).select_from(s)
    if "ods_code" in filters:
        stmt = stmt.where(s.c.ods_code == bindparam("ods_code"))
    if "party_key" in filters:
        stmt = stmt.where(func.lower(s.c.party_key) == bindparam("party_key"))
    if "manufacturer_org" in filters:
        stmt = stmt.where(s.c.manufacturer_org == bindparam("manufacturer_org"))
    if "interaction_id" in filters:
        stmt = stmt.where(
            select(matched.c.as_id)
            .where(matched.c.as_id == s.c.id, matched.c.interaction_id == bindparam("interaction_id"))
            .exists()
        )
    return stmt.order_by(s.c.id)


#: The json module's C scanner, called directly: SQLite's json_group_array text needs none of json.loads' checks.
_scan_json = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _json_list(value: Any) -> tuple[str, ...]:
    if value is None:  # PostgreSQL's json_agg over no rows
        return ()
    return tuple(_scan_json(value, 0)[0] if type(value) is str else value)


def find_accredited_system_views(
    reader: Reader,
    *,
    ods_code: str | None = None,
    interaction_id: str | None = None,
    party_key: str | None = None,
    manufacturer_org: str | None = None,
) -> list[AsView]:
    """find_accredited_systems for the FHIR facade: same filters and order, flat AsView values, one query."""
    params = _filter_params(ods_code=ods_code, interaction_id=interaction_id, party_key=party_key,
                            manufacturer_org=manufacturer_org)
    return [AsView(row[0], row[1], row[2], row[3], _json_list(row[4]), _json_list(row[5]))
            for row in _fetch(reader, "as", params)]
