"""Storing validated LDIF records: cross-record uniqueness (within the file and against the registry)
and bulk inserts (DBAPI executemany, ids taken up front). Takes a Session; never commits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.orm import Session

from sds_registry.db import utcnow
from sds_registry.ldap import dit
from sds_registry.ldap.dit import EntryClass

BATCH = 2000


@dataclass
class Rejection:
    dn: str
    reasons: list[str]


@dataclass
class Pending:
    cls: EntryClass
    dn: str
    values: dict[str, Any]
    flags: list[str]


def _existing(session: Session, column: Any, values: list[str], fold: bool) -> set[str]:
    """Which of ``values`` the column already holds (``fold``: compared lower-cased, through the
    lower() expression index; otherwise exactly, through the unique index)."""
    found: set[str] = set()
    probe = func.lower(column) if fold else column
    for i in range(0, len(values), 500):
        chunk = values[i : i + 500]
        found.update(v.lower() if fold else v for v in session.scalars(select(column).where(probe.in_(chunk))))
    return found


def check_uniqueness(session: Session, pending: list[Pending], seen: dict[tuple[str, str], str]) -> list[Rejection]:
    """What the services check one by one, for a chunk at once: against the keys seen earlier in the file
    (``seen``, updated) and against the registry (only keys new in this chunk: earlier chunks' rows are
    the file's own, and a key seen twice is already reported)."""
    bad: dict[str, list[str]] = {}
    new: dict[str, list[str]] = {}

    def claim(space: str, value: str | None, what: str, p: Pending, fold: bool = True) -> None:
        if value is None:
            return
        k = (space, value.lower() if fold else value)
        if k in seen:
            bad.setdefault(p.dn, []).append(f"{what}: {value!r} is also used by {seen[k]} (rule: unique)")
        else:
            seen[k] = p.dn
            new.setdefault(space, []).append(k[1])

    for p in pending:
        v = p.values
        if p.cls is dit.ORG:
            claim("org", v["ods_code"], "uniqueIdentifier", p, fold=False)  # ODS codes are upper case
        else:
            claim("services", v[p.cls.key_field], "uniqueIdentifier", p)
        if p.cls is dit.MHS:
            claim("cpa", v["cpa_id"], "nhsMhsCPAId", p, fold=False)  # caseExact, as the unique constraint
            pair = f"{v['party_key'].lower()}\x00{v['interaction_id']}"  # party key caseIgnore, interaction exact
            claim("pk+ia", pair, "nhsMHSPartyKey+nhsMhsSvcIA", p, fold=False)
    checks = [
        ("services", dit.AS.model.__table__.c.asid, True),
        ("services", dit.MHS.model.__table__.c.unique_identifier, True),
        ("cpa", dit.MHS.model.__table__.c.cpa_id, False),
        ("org", dit.ORG.model.__table__.c.ods_code, False),
    ]
    for space, column, fold in checks:
        for value in _existing(session, column, new.get(space, []), fold):
            bad.setdefault(seen[(space, value)], []).append(f"{value!r} already exists in the registry (rule: unique)")
    table = dit.MHS.model.__table__
    pairs = new.get("pk+ia", [])
    for i in range(0, len(pairs), 500):
        batch = set(pairs[i : i + 500])
        rows = session.execute(
            select(func.lower(table.c.party_key), table.c.interaction_id, table.c.unique_identifier).where(
                func.lower(table.c.party_key).in_({pair.split("\x00")[0] for pair in batch})
            )
        )
        for pk, ia, uid in rows:
            if f"{pk}\x00{ia}" in batch:
                bad.setdefault(seen[("pk+ia", f"{pk}\x00{ia}")], []).append(
                    f"party key already has an MHS record ({uid}) for this interaction (rule: unique)"
                )
    return [Rejection(d, reasons) for d, reasons in bad.items()]


def _executemany(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (every row has every key of the first) in the session's transaction.

    PostgreSQL: COPY ... FROM STDIN (psycopg), several times faster than row-by-row INSERTs. SQLite:
    one DBAPI executemany. Not SQLAlchemy's insertmanyvalues: on psycopg its multi-thousand-placeholder
    statements cost more to parse client-side than the insert itself.
    """
    names = list(rows[0])
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        driver = session.connection().connection.driver_connection
        assert driver is not None
        columns = ", ".join(dialect.identifier_preparer.quote(n) for n in names)
        with driver.cursor() as cur, cur.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(tuple(r[n] for n in names))
        return
    compiled = insert(table).values({n: bindparam(n) for n in names}).compile(dialect=dialect)
    order = list(compiled.positiontup or ()) if compiled.positional else names
    session.connection().exec_driver_sql(compiled.string, [tuple(r[n] for n in order) for r in rows])


def _new_ids(session: Session, table: Any, count: int) -> list[int]:
    """Ids for ``count`` new rows: from the serial's sequence (PostgreSQL), or after max(id) (SQLite,
    whose INTEGER PRIMARY KEY goes on from the largest id; the CLI holds the write lock: BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        seq = session.scalar(select(func.pg_get_serial_sequence(table.name, "id")))
        return list(session.scalars(select(func.nextval(seq)).select_from(func.generate_series(1, count))))
    start = int(session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0) + 1
    return list(range(start, start + count))


def insert_records(session: Session, pending: list[Pending]) -> None:
    now = utcnow()
    postgres = session.get_bind().dialect.name == "postgresql"
    for cls in dit.ENTRY_CLASSES:
        mine = [p for p in pending if p.cls is cls]
        if not mine:
            continue
        table = cls.model.__table__
        columns = [c.name for c in table.c if c.name not in ("id", "version", "created_at", "updated_at", "flags")]
        children = [f for f in cls.fields if f.child is not None]
        for i in range(0, len(mine), BATCH):
            batch = mine[i : i + BATCH]
            ids = _new_ids(session, table, len(batch))
            rows = []
            for row_id, p in zip(ids, batch, strict=True):
                row = {c: p.values.get(c) for c in columns}
                if cls is dit.ORG and row.get("org_type") is None:
                    row["org_type"] = "GP Practice"
                row.update(id=row_id, version=1, created_at=now, updated_at=now, flags=" ".join(p.flags) or None)
                rows.append(row)
            _executemany(session, table, rows)
            for f in children:
                assert f.child is not None
                child, fk, value = f.child[0].__table__, f.child[1], f.child[2]
                child_rows = [
                    {fk: row_id, "position": pos, value: v}
                    for row_id, p in zip(ids, batch, strict=True)
                    for pos, v in enumerate(p.values.get(f.field) or [])
                ]
                if child_rows:
                    _executemany(session, child, child_rows)
        if postgres:
            # Fresh statistics for the next chunk's checks: without them the planner takes a table it
            # just saw empty for a tiny one, and the uniqueness probes stop using their indexes.
            for name in [table.name, *(f.child[0].__tablename__ for f in children if f.child is not None)]:
                session.connection().exec_driver_sql(f"ANALYZE {name}")
