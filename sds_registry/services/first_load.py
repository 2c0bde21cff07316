"""A first load: records inserted as given into the empty record tables, their clashes looked for once at the end.

Loading a fresh registry from an SDS dump (``sds import --mode create`` into an empty directory) is where the
careful path (``services.sync`` plans every chunk, ``bulk.clashes`` keys each record against all before it)
costs most and finds least. Here records go straight to executemany / COPY, every secondary index dropped
(``bulk.defer_indexes(probed=True)``) and built in one pass at the end. On SQLite the unique constraints stand (a
clash they see raises at once); PostgreSQL can drop constraints, so its unique and foreign keys go too and are
added again at the end (each one sort or one join instead of an index insert or a trigger per row: a load
costs the server half). Then the rules no constraint holds (ASIDs and MHS identifiers compared without case,
sharing ou=Services; a party key and interaction without case) are asked of the built indexes. A broken
rule raises ``Clash`` and nothing here explains it: the caller rolls the load back (it runs in a SAVEPOINT) and
takes the careful path, whose report names every problem. So a good file loads fast and a bad one answers
exactly as it always did. Takes a Session whose transaction holds the tables; never commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ForeignKeyConstraint, UniqueConstraint, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.schema import AddConstraint, DropConstraint

from sds_registry.db import utcnow
from sds_registry.services import bulk


class Clash(Exception):
    """The input broke a rule (or the fast path does not apply): roll back and take the careful path."""


class _Table:
    """One kind's rows waiting to be written, and the next id to give."""

    def __init__(self, kind: bulk.Kind, first_id: int) -> None:
        self.kind = kind
        self.columns = tuple(kind.columns)
        self.org_type = self.columns.index("org_type") if kind is bulk.ORG else -1
        self.children = tuple((name, child.__table__, fk, value) for name, child, fk, value in kind.children)
        self.first_id = self.next_id = first_id
        self.rows: list[tuple[Any, ...]] = []
        self.child_rows: list[list[tuple[Any, int, Any]]] = [[] for _ in self.children]


class FirstLoad:
    """Records in, rows out: ``add`` each record (a Pending's values, as ``sync._as_given`` would store them),
    then ``finish``. Made inside the caller's SAVEPOINT: Clash at once when the registry holds records or its
    tables cannot be held (a reader holds one on PostgreSQL), checked again once they are (a writer may have
    committed in between)."""

    def __init__(self, session: Session) -> None:
        self.indexes = bulk.defer_indexes(session, probed=True)  # none when a table holds rows
        if not self.indexes:
            raise Clash("the registry holds records, or a reader holds its tables")
        if any(bulk.last_ids(session).values()):
            raise Clash("the registry is no longer empty")
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"
        self.constraints = _drop_constraints(session) if self.postgres else []
        # sqlite3 would turn the datetime into this text (its default adapter) once per row; done once here
        self.now: Any = utcnow() if self.postgres else utcnow().isoformat(" ")
        session.flush()
        if not self.postgres:  # as bulk.insert_rows: random keys (CPA ids, ASIDs) on the unique indexes
            session.connection().exec_driver_sql(f"PRAGMA cache_size=-{bulk.SQLITE_CACHE_KIB}")
        self.tables = {k: _Table(k, bulk._new_ids(session, k.table, 1)[0]) for k in (bulk.ORG, bulk.AS, bulk.MHS)}
        self.flagged = 0
        self.first_seen: dict[str, int] = {}  # kind name -> the number of its first record
        self.added = 0
        errors = session.get_bind().dialect.dbapi
        self.integrity: tuple[type[BaseException], ...] = (IntegrityError, errors.IntegrityError) if errors \
            else (IntegrityError,)

    def add(self, kind: bulk.Kind, values: Mapping[str, Any], flags: list[str]) -> None:
        t = self.tables[kind]
        get = values.get
        if kind is bulk.MHS and not get("unique_identifier"):
            raise Clash("an MHS record without a unique identifier")
        row_id = t.next_id
        t.next_id += 1
        row = list(map(get, t.columns))
        if t.org_type >= 0 and row[t.org_type] is None:
            row[t.org_type] = "GP Practice"
        tag = " ".join(sorted(set(flags))) or None
        t.rows.append((*row, row_id, 1, self.now, self.now, tag))
        for (name, *_), out in zip(t.children, t.child_rows, strict=True):
            many = get(name)
            if many:
                out.extend((row_id, pos, v) for pos, v in enumerate(many))
        self.flagged += tag is not None
        self.first_seen.setdefault(kind.name, self.added)
        self.added += 1
        if len(t.rows) >= bulk.BATCH:
            self._write(t)

    def _write(self, t: _Table) -> None:
        names = [*t.columns, "id", "version", "created_at", "updated_at", "flags"]
        try:
            bulk._executemany(self.session, t.kind.table, names, t.rows)
            for (_, table, fk, value), rows in zip(t.children, t.child_rows, strict=True):
                if rows:
                    bulk._executemany(self.session, table, [fk, "position", value], rows)
        except self.integrity as exc:  # a unique constraint: the careful path says which records
            raise Clash(str(exc)) from exc
        t.rows = []
        t.child_rows = [[] for _ in t.children]

    def finish(self) -> None:
        """Write what waits, build the indexes and constraints, then ``check``; on PostgreSQL move each id
        sequence past the ids given (one nextval was taken)."""
        for t in self.tables.values():
            if t.rows:
                self._write(t)
            if self.postgres and t.next_id > t.first_id + 1:
                seq = self.session.scalar(select(func.pg_get_serial_sequence(t.kind.table.name, "id")))
                self.session.execute(select(func.setval(seq, t.next_id - 1)))
        bulk.build_indexes(self.session, self.indexes)
        connection = self.session.connection()
        try:
            for constraint in self.constraints:  # unique ones first: a foreign key's check reads the parents
                connection.execute(AddConstraint(constraint))
        except self.integrity as exc:
            raise Clash(str(exc)) from exc
        self._check()

    def counts(self, chunk: int) -> dict[str, dict[str, int]]:
        """Created counts by kind, ordered as the careful path (``chunk`` records a plan) first reports them."""
        order = {bulk.ORG.name: 0, bulk.AS.name: 1, bulk.MHS.name: 2}
        kinds = sorted(self.first_seen, key=lambda k: (self.first_seen[k] // chunk, order[k]))
        return {k: {"created": self.tables[bulk.KINDS[k]].next_id - self.tables[bulk.KINDS[k]].first_id}
                for k in kinds}

    def _check(self) -> None:
        """Raise Clash if two records share a key no constraint compares (run once the indexes are built)."""
        a, m = bulk.AS.table.c, bulk.MHS.table.c
        doubled = [
            _folded_twice(bulk.AS.table, "asid"),
            _folded_twice(bulk.MHS.table, "unique_identifier"),
            select(m.interaction_id).group_by(m.interaction_id, func.lower(m.party_key)).having(func.count() > 1),
            select(a.id).join(bulk.MHS.table, func.lower(m.unique_identifier) == func.lower(a.asid)),
        ]
        for query in doubled:
            if self.session.execute(query.limit(1)).first() is not None:
                raise Clash("two records share a key")


def _folded_twice(table: Any, name: str) -> Any:
    """A row whose ``name`` equals another row's but for case. The exact values are unique (a constraint), so
    one of the two has a capital letter: only such rows are looked up, read from the exact key's index (no
    row is read: a GROUP BY lower() read all 150,000 MHS rows at 8,000 practices, 0.36 s; this 0.02 s)."""
    key, other = table.c[name], table.alias()
    return select(table.c.id).where(key != func.lower(key), exists().where(
        func.lower(other.c[name]) == func.lower(key), other.c.id != table.c.id))


def _drop_constraints(session: Session) -> list[Any]:
    """PostgreSQL: drop the unique and foreign keys of the record tables and their value lists (in the load's
    transaction: a rollback restores them); returned in the order to add them again."""
    tables = bulk.record_tables()
    unique = [c for t in tables for c in sorted(t.constraints, key=lambda c: str(c.name))
              if isinstance(c, UniqueConstraint)]
    foreign = [c for t in tables for c in sorted(t.constraints, key=lambda c: str(c.name))
               if isinstance(c, ForeignKeyConstraint)]
    connection = session.connection()
    for constraint in (*foreign, *unique):
        connection.execute(DropConstraint(constraint))
    return [*unique, *foreign]
