"""Bulk reads and writes of whole records (organisations, nhsAs, nhsMhs) for imports, seeding and sync.

Records are plain dicts of registry fields (``services.records`` names), already validated. Reads give
every stored field of many records in a few queries (``stored``); writes insert many records with DBAPI
executemany or PostgreSQL COPY, ids taken up front (``insert``); ``clashes`` checks what the services check
one by one (unique keys, one MHS per party key and interaction, ASIDs and MHS identifiers sharing
ou=Services) for a batch at once. A first load (``defer_indexes``/``build_indexes``) builds the secondary
indexes no check of it probes once at its end. Takes a Session; never commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from sds_registry.db import utcnow
from sds_registry.models import (
    AccreditedSystem,
    AsAcf,
    AsCategoryBag,
    AsClient,
    AsInteraction,
    MessageHandlingSystem,
    MhsActor,
    MhsEndpoint,
    Organisation,
)
from sds_registry.services.bloom import KeyFilter

BATCH = 2000
IN_CHUNK = 500
SQLITE_CACHE_KIB = 65536
SQLITE_SORT_KIB = 16384  # the page cache (and so the sorter) while a first load builds its indexes
LOCK_WAIT = "2s"  # how long a first load waits to drop an index a reader holds (PostgreSQL)


@dataclass(frozen=True)
class Kind:
    name: str  # the audit's record_type
    model: Any
    key_field: str
    children: tuple[tuple[str, Any, str, str], ...]  # (field, child model, fk column, value column)

    @property
    def table(self) -> Any:
        return self.model.__table__

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.table.c if c.name not in ("id", "version", "created_at", "updated_at", "flags")]


ORG = Kind("organisation", Organisation, "ods_code", ())
AS = Kind("accredited_system", AccreditedSystem, "asid", (
    ("interactions", AsInteraction, "as_id", "interaction_id"), ("clients", AsClient, "as_id", "ods_code"),
    ("acfs", AsAcf, "as_id", "value"), ("category_bags", AsCategoryBag, "as_id", "value"),
))
MHS = Kind("message_handling_system", MessageHandlingSystem, "unique_identifier", (
    ("endpoints", MhsEndpoint, "mhs_id", "url"), ("actors", MhsActor, "mhs_id", "value"),
))
KINDS = {k.name: k for k in (ORG, AS, MHS)}
KINDS_BY_TABLE = {k.table.name: k for k in (ORG, AS, MHS)}
#: The non-unique indexes ``clashes`` probes while a load runs (with the unique constraints, which always stay).
PROBED = frozenset({"ix_accredited_systems_asid_lower", "ix_message_handling_systems_unique_identifier_lower",
                    "ix_message_handling_systems_party_key_lower"})


@dataclass
class Row:
    """One record to insert: its kind, fields, lenient flags and where it came from (for messages)."""

    kind: Kind
    values: dict[str, Any]
    flags: list[str]
    where: str

    @property
    def key(self) -> str:
        return str(self.values[self.kind.key_field])


def chunks(values: list[Any], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def stored(session: Session, kind: Kind, where: Any,
           params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every stored field (plus ``id``, ``version``, ``flags`` as a list) of the rows ``where`` selects
    (``params``: values for bound parameters ``where`` leaves open)."""
    table = kind.table
    query = select(table).where(where).order_by(table.c.id)
    rows = [dict(r) for r in session.execute(query, dict(params) if params else None).mappings()]
    if not rows:
        return
    by_id = {r["id"]: r for r in rows}
    for name, *_ in kind.children:
        for r in rows:
            r[name] = []
    for name, child_model, fk, value in kind.children:
        child = child_model.__table__
        for ids in chunks(list(by_id)):
            query = select(child.c[fk], child.c[value]).where(child.c[fk].in_(ids)).order_by(child.c[fk],
                                                                                           child.c.position)
            for parent, v in session.execute(query):
                by_id[parent][name].append(v)
    for r in rows:
        r["flags"] = r["flags"].split() if r["flags"] else []
        yield r


def _existing(session: Session, column: Any, values: list[str], fold: bool) -> set[str]:
    found: set[str] = set()
    probe = func.lower(column) if fold else column
    for chunk in chunks(values):
        found.update(v.lower() if fold else v for v in session.scalars(select(column).where(probe.in_(chunk))))
    return found


def last_ids(session: Session) -> dict[str, int]:
    """table name -> the largest id stored now, for ``clashes(since=...)``: rows above it are new."""
    return {k.table.name: int(session.scalar(select(func.coalesce(func.max(k.table.c.id), 0))) or 0)
            for k in (ORG, AS, MHS)}


def clashes(session: Session, batch: Iterable[Row], seen: dict[tuple[str, str], str],
            ignore: frozenset[tuple[str, int]] = frozenset(),
            since: Mapping[str, int] | None = None, stored_keys: KeyFilter | None = None) -> dict[str, list[str]]:
    """where -> reasons, for the rows of ``batch`` clashing with a row seen earlier (``seen``: updated) or with
    the registry. Stored rows in ``ignore`` ((table name, id): about to be deleted or updated) do not count.
    A stored row with an id above ``since`` (table name -> id: what last_ids gave when the input began) was
    stored from earlier chunks of the same input, and is named as such (the caller need not keep their keys).
    ``stored_keys``: when every stored record came from this input (a first load, holding the tables), a filter
    of its keys so far (updated): only a key it may hold is looked for in the database."""
    bad: dict[str, list[str]] = {}

    def earlier(table: str, row_id: int) -> bool:
        return since is not None and row_id > since.get(table, row_id)
    new: dict[str, list[str]] = {}

    def claim(space: str, value: str | None, what: str, r: Row, fold: bool = True) -> None:
        if value is None:
            return
        k = (space, value.lower() if fold else value)
        if k in seen:
            bad.setdefault(r.where, []).append(f"{what}: {value!r} is also used by {seen[k]} (rule: unique)")
        else:
            seen[k] = r.where
            if stored_keys is None or stored_keys.add(k):
                new.setdefault(space, []).append(k[1])

    for r in batch:
        v = r.values
        if r.kind is ORG:
            claim("org", v["ods_code"], "ods_code", r, fold=False)
        else:
            claim("services", v[r.kind.key_field], r.kind.key_field, r)
        if r.kind is MHS:
            claim("cpa", v["cpa_id"], "cpa_id", r, fold=False)  # caseExact, as the unique constraint
            pair = f"{v['party_key'].lower()}\x00{v['interaction_id']}"  # party key caseIgnore
            claim("pk+ia", pair, "party_key+interaction_id", r, fold=False)
    checks = [("services", AS, "asid", True), ("services", MHS, "unique_identifier", True),
              ("cpa", MHS, "cpa_id", False), ("org", ORG, "ods_code", False)]
    for space, kind, name, fold in checks:
        column = kind.table.c[name]
        probe = func.lower(column) if fold else column
        for chunk in chunks(new.get(space, [])):
            for row_id, value in session.execute(select(kind.table.c.id, column).where(probe.in_(chunk))):
                if (kind.table.name, row_id) in ignore:
                    continue
                value = value.lower() if fold else value
                bad.setdefault(seen[(space, value)], []).append(
                    f"{name}: {value!r} is also used by an earlier record of this input (rule: unique)"
                    if earlier(kind.table.name, row_id) else f"{value!r} already exists in the registry (rule: unique)")
    table = MHS.table
    for batch_pairs in chunks(new.get("pk+ia", [])):
        wanted = set(batch_pairs)
        rows = session.execute(select(table.c.id, func.lower(table.c.party_key), table.c.interaction_id,
                                      table.c.unique_identifier).where(
            func.lower(table.c.party_key).in_({p.split("\x00")[0] for p in wanted})))
        for row_id, pk, ia, uid in rows:
            if f"{pk}\x00{ia}" in wanted and (table.name, row_id) not in ignore:
                bad.setdefault(seen[("pk+ia", f"{pk}\x00{ia}")], []).append(
                    f"party_key+interaction_id: also used by an earlier record of this input ({uid}) (rule: unique)"
                    if earlier(table.name, row_id) else
                    f"party key already has an MHS record ({uid}) for this interaction (rule: unique)")
    return bad


def _executemany(session: Session, table: Any, names: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples of the columns ``names``) in the session's transaction.

    PostgreSQL: COPY ... FROM STDIN (psycopg), several times faster than row-by-row INSERTs. SQLite:
    one DBAPI executemany. Not SQLAlchemy's insertmanyvalues: on psycopg its multi-thousand-placeholder
    statements cost more to parse client-side than the insert itself.
    """
    dialect = session.get_bind().dialect
    columns = ", ".join(dialect.identifier_preparer.quote(n) for n in names)
    if dialect.name == "postgresql":
        driver = session.connection().connection.driver_connection
        assert driver is not None
        with driver.cursor() as cur, cur.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        return
    if dialect.paramstyle == "qmark":  # sqlite3: the columns in ``names`` order, rows passed as they are
        marks = ", ".join("?" * len(names))
        session.connection().exec_driver_sql(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", rows)
        return
    compiled = insert(table).values({n: bindparam(n) for n in names}).compile(dialect=dialect)
    order = list(compiled.positiontup or ()) if compiled.positional else names
    if order != names:
        pick = [names.index(n) for n in order]
        rows = [tuple(r[i] for i in pick) for r in rows]
    session.connection().exec_driver_sql(compiled.string, rows)


def _new_ids(session: Session, table: Any, count: int) -> list[int]:
    """Ids for ``count`` new rows: from the serial's sequence (PostgreSQL), or after max(id) (SQLite,
    whose INTEGER PRIMARY KEY goes on from the largest id; writers hold the write lock: BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        seq = session.scalar(select(func.pg_get_serial_sequence(table.name, "id")))
        return list(session.scalars(select(func.nextval(seq)).select_from(func.generate_series(1, count))))
    start = int(session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0) + 1
    return list(range(start, start + count))


def insert_rows(session: Session, rows: list[Row], progress: Callable[[int], None] | None = None) -> None:
    """Insert validated records, organisations first; values are stored as given (no defaults added)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    # sqlite3 would turn the datetime into this text (its default adapter) once per row; done once here
    now: Any = utcnow() if postgres else utcnow().isoformat(" ")
    session.flush()  # pending ORM writes first: the ids below are taken from what the database holds
    if not postgres:
        # A bigger page cache for the load (per connection, a bound: 64 MiB): the tables' indexes take random
        # keys (CPA ids, ASIDs), and with the default 2 MiB nearly every insert reads back an evicted page.
        session.connection().exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    for kind in (ORG, AS, MHS):
        mine = [r for r in rows if r.kind is kind]
        if not mine:
            continue
        table, columns = kind.table, kind.columns
        names = [*columns, "id", "version", "created_at", "updated_at", "flags"]
        org_type = columns.index("org_type") if kind is ORG else -1
        for batch in chunks(mine, BATCH):
            ids = _new_ids(session, table, len(batch))
            out = []
            for row_id, r in zip(ids, batch, strict=True):
                get = r.values.get
                values = [get(c) for c in columns]
                if org_type >= 0 and values[org_type] is None:
                    values[org_type] = "GP Practice"
                out.append((*values, row_id, 1, now, now, " ".join(r.flags) or None))
            _executemany(session, table, names, out)
            for name, child_model, fk, value in kind.children:
                child_rows = [(row_id, pos, v)
                              for row_id, r in zip(ids, batch, strict=True)
                              for pos, v in enumerate(r.values.get(name) or [])]
                if child_rows:
                    _executemany(session, child_model.__table__, [fk, "position", value], child_rows)
            if progress:
                progress(len(batch))
        if postgres and _stale(session, table.name, len(mine)):
            # Fresh statistics for the next batch's checks: without them the planner takes a table it
            # just saw empty for a tiny one, and the uniqueness probes stop using their indexes.
            for name in [table.name, *(c[1].__tablename__ for c in kind.children)]:
                session.connection().exec_driver_sql(f"ANALYZE {name}")


def _stale(session: Session, table: str, added: int) -> bool:
    """Whether ``table``'s statistics need refreshing now that this session added ``added`` more rows: when it
    holds at least twice the rows it held at this session's last ANALYZE of it (or none was run yet). A long
    load is many batches, and ANALYZE after each costs more as the table grows; doubling keeps the estimates
    within 2x at O(log n) analyses."""
    counts: dict[str, tuple[int, int]] = session.info.setdefault("bulk_rows", {})  # table -> (rows, at ANALYZE)
    if table in counts:
        rows, analysed = counts[table]
        rows += added
    else:
        rows, analysed = int(session.scalar(select(func.count()).select_from(KINDS_BY_TABLE[table].table)) or 0), 0
    stale = analysed == 0 or rows >= 2 * analysed
    counts[table] = (rows, rows if stale else analysed)
    return stale


def record_tables() -> list[Any]:
    """The organisation, AS and MHS tables, each followed by its value-list tables."""
    return [t for k in (ORG, AS, MHS) for t in (k.table, *(c[1].__table__ for c in k.children))]


def defer_indexes(session: Session, probed: bool = False) -> list[Any]:
    """On a first load (no organisation, AS or MHS record stored), drop the record tables' secondary indexes that
    no check of the load probes (not unique, not in PROBED unless ``probed``: a load that probes nothing while it
    runs, services.first_load), in the load's transaction, and return them for
    ``build_indexes``: one build over the loaded rows costs a fraction of their upkeep row by row, as random keys
    (ASIDs, CPA ids, hosts) land on random pages. A rollback restores them. None are dropped on a table holding
    rows. PostgreSQL: DROP INDEX locks its table until the commit, so readers of the (empty) directory wait for
    the load to end; when one holds a table now, the indexes stay (the drop waits at most LOCK_WAIT)."""
    if any(session.scalar(select(k.table.c.id).limit(1)) is not None for k in (ORG, AS, MHS)):
        return []
    indexes = [ix for t in record_tables() for ix in sorted(t.indexes, key=lambda i: str(i.name))
               if not ix.unique and (probed or ix.name not in PROBED)]
    postgres = session.get_bind().dialect.name == "postgresql"
    try:
        with session.begin_nested():
            connection = session.connection()  # taken inside: the SAVEPOINT is emitted as it is
            if postgres:
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
            for ix in indexes:
                ix.drop(connection)
    except DBAPIError:  # a reader holds a table: load with the indexes in place
        return []
    if postgres:
        session.connection().exec_driver_sql("SET LOCAL lock_timeout TO DEFAULT")
    return indexes


def build_indexes(session: Session, indexes: list[Any]) -> None:
    """Create the indexes ``defer_indexes`` dropped (before the load commits: a load is all or nothing)."""
    if not indexes:
        return
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")  # the server's, for the sorts
    else:  # SQLite sorts in this process, in memory up to cache_size beside the page cache: both smaller now
        connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_SORT_KIB}")
    for ix in indexes:
        ix.create(connection)
    if postgres:  # the expression indexes' statistics (lower(fqdn), ...), which the load's ANALYZEs lacked
        for name in sorted({ix.table.name for ix in indexes}):
            connection.exec_driver_sql(f"ANALYZE {name}")
