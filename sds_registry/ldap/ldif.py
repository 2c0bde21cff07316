"""LDIF import (what ``ldapsearch -LLL`` prints from SDS) and export (loads into slapd and back into us).

The import is all or nothing and validates every record with the registry's own rules
(``domain.records.clean_*``: the same checks the write services run), plus the cross-record rules the
services check (unique ASIDs, MHS identifiers and CPA ids, one MHS per party key and interaction,
ASIDs and MHS identifiers sharing ou=Services). It stores the records exactly as the LDIF has them:
unlike the services it adds no defaults, so every search answers as slapd does on the same file.
Rows go in with Core executemany (a bulk path: ~160k entries in seconds instead of minutes) and one
audit event records the import. Takes a Session; never commits (the CLI commits when ``report.ok``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.orm import Session

from sds_registry.db import utcnow
from sds_registry.domain import records
from sds_registry.errors import InvalidIdentifier, Issue
from sds_registry.ldap import dit, dn, schema
from sds_registry.ldap.dit import EntryClass
from sds_registry.models import AuditEvent
from sds_registry.services.registry import CLI_ACTOR, Actor

#: Attributes an ldapsearch '+' dump carries that the registry keeps itself (or not at all): ignored.
IGNORED = frozenset(
    a.lower()
    for a in (
        "entryUUID",
        "creatorsName",
        "modifiersName",
        "createTimestamp",
        "modifyTimestamp",
        "entryCSN",
        "etag",
        "numSubordinates",
        "hasSubordinates",
        "structuralObjectClass",
        "subschemaSubentry",
        "entryDN",
        "pwdPolicySubentry",
        "isMemberOf",
        "contextCSN",
    )
)
_CLEAN = {"nhsAs": records.clean_accredited_system, "nhsMhs": records.clean_mhs}
BATCH = 2000


@dataclass
class Rejection:
    dn: str
    reasons: list[str]


@dataclass
class ImportReport:
    created: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (dn, why): entries that are not records
    rejected: list[Rejection] = field(default_factory=list)
    flagged: int = 0

    @property
    def ok(self) -> bool:
        return not self.rejected

    def lines(self) -> list[str]:
        out = [f"{name}: {n} {'created' if self.ok else 'valid (nothing stored)'}" for name, n in self.created.items()]
        if self.flagged:
            out.append(f"lenient: {self.flagged} record(s) stored with flags (values breaking our rules)")
        out += [f"skipped {d}: {why}" for d, why in self.skipped]
        out += [f"REJECTED {r.dn}: " + "; ".join(r.reasons) for r in self.rejected]
        return out


# ---- reading ----------------------------------------------------------------------------------------------


def _logical_lines(stream: IO[str]) -> Iterator[str]:
    current: str | None = None
    for raw in stream:
        line = raw.rstrip("\n").rstrip("\r")
        if line.startswith(" ") and current is not None:
            current += line[1:]
            continue
        if current is not None:
            yield current
        current = line
    if current is not None:
        yield current


def read_entries(stream: IO[str]) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """(dn, [(attribute as written, value)]) per record; comments, ``version:`` and folding handled."""
    dn_text: str | None = None
    attrs: list[tuple[str, str]] = []
    for line in _logical_lines(stream):
        if line.startswith("#"):
            continue
        if not line.strip():
            if dn_text is not None:
                yield dn_text, attrs
            dn_text, attrs = None, []
            continue
        name, sep, rest = line.partition(":")
        if not sep:
            raise ValueError(f"not an LDIF line: {line[:80]!r}")
        if rest.startswith(":"):
            value = base64.b64decode(rest[1:].strip()).decode("utf-8")
        elif rest.startswith("<"):
            raise ValueError(f"URL values are not supported: {line[:80]!r}")
        else:
            value = rest.lstrip(" ")
        if dn_text is None:
            if name.lower() == "version":
                continue
            if name.lower() != "dn":
                raise ValueError(f"record does not start with dn: {line[:80]!r}")
            dn_text = value
        elif name.lower() == "changetype":
            raise ValueError(f"change records are not supported ({dn_text})")
        else:
            attrs.append((name.strip(), value))
    if dn_text is not None:
        yield dn_text, attrs


def _classify(attrs: list[tuple[str, str]]) -> EntryClass | None:
    classes = {v.strip().lower() for a, v in attrs if a.lower() == "objectclass"}
    for cls in dit.ENTRY_CLASSES:
        if cls.name.lower() in classes:
            return cls
    return None


_SKIP = dit.Field("", "")
_FIELDS: dict[tuple[str, str], dit.Field | None] = {}


def _field(cls: EntryClass, name: str) -> dit.Field | None:
    """The field an attribute (as written in the file) goes to; _SKIP for ignored ones. Memoised."""
    try:
        return _FIELDS[(cls.name, name)]
    except KeyError:
        pass
    low = name.lower()
    at = schema.lookup(name)
    found: dit.Field | None
    if low == "objectclass" or low in IGNORED:
        found = _SKIP
    else:
        found = next((f for f in cls.fields if at is not None and f.attr == at.name), None)
    if len(_FIELDS) < 10000:
        _FIELDS[(cls.name, name)] = found
    return found


def _to_record(cls: EntryClass, entry_dn: str, attrs: list[tuple[str, str]]) -> tuple[dict[str, Any], list[str]]:
    """Registry fields from LDAP attributes; problems are returned as reason strings."""
    data: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in attrs:
        f = _field(cls, name)
        if f is _SKIP:
            continue
        if f is None:
            problems.append(f"{name}: not an attribute of {cls.name} here (rule: unknown-attribute)")
            continue
        if value == "":
            continue  # SDS dumps print some empty values (e.g. nhsMHSRetries); LDAP has no empty strings
        if f.child is not None:
            data.setdefault(f.field, []).append(value)
        elif f.field in data:
            if data[f.field] != value:
                problems.append(f"{f.attr}: more than one value (rule: single-value)")
        else:
            data[f.field] = value
    try:
        rdn_value, parent_key = _split_dn(entry_dn)
    except dn.InvalidDN as exc:
        return data, [f"dn: {exc} (rule: dn-syntax)"]
    if rdn_value is None or parent_key != cls.parent_key:
        problems.append(f"dn: must be uniqueIdentifier=<id>,{cls.parent} (rule: dn)")
    else:
        data.setdefault(cls.key_field, rdn_value)
        if data[cls.key_field].lower() != rdn_value.lower():
            problems.append(f"uniqueIdentifier: {data[cls.key_field]!r} differs from the DN (rule: rdn)")
    if cls is dit.MHS and data.get("unique_identifier") and not data.get("cpa_id"):
        data["cpa_id"] = data["unique_identifier"]
    return data, problems


def _split_dn(entry_dn: str) -> tuple[str | None, tuple[Any, ...]]:
    """(uniqueIdentifier value of the RDN or None, normalised parent DN); the parent parse is cached."""
    leaf, _, parent = entry_dn.partition(",")
    if "\\" in leaf or "+" in leaf:
        rdns = dn.parse(entry_dn)
        ok = rdns and len(rdns[0]) == 1 and rdns[0][0][0] == "uniqueIdentifier"
        return (rdns[0][0][1] if ok else None), dn.normalise(rdns[1:])
    name, eq, value = leaf.partition("=")
    value = value.strip(" ")
    if not eq or not value:
        raise dn.InvalidDN(f"{entry_dn!r}: RDN {leaf!r} is not attribute=value")
    at = schema.lookup(name.strip())
    return (value if at is not None and at.name == "uniqueIdentifier" else None), dn.normalised_key(parent)


def _issue_text(cls: EntryClass, issue: Issue) -> str:
    base = issue.field.split("[")[0]
    attr = next((f.attr for f in cls.fields if f.field == base), base)
    where = attr if attr == issue.field else f"{attr} ({issue.field})"
    return f"{where}: {issue.message} (rule: {issue.rule})"


# ---- import -----------------------------------------------------------------------------------------------


@dataclass
class _Pending:
    cls: EntryClass
    dn: str
    values: dict[str, Any]
    flags: list[str]


def import_ldif(
    session: Session, source: str | Path | IO[str], lenient: bool = False, actor: Actor = CLI_ACTOR
) -> ImportReport:
    """Validate every nhsAs/nhsMhs/nhsOrg entry of ``source``; store them all only if none is rejected."""
    report = ImportReport()
    if isinstance(source, str | Path):
        with open(source, encoding="utf-8") as stream:
            pending = _validate(stream, report, lenient)
        name = str(source)
    else:
        pending = _validate(source, report, lenient)
        name = getattr(source, "name", "<stream>")
    _check_uniqueness(session, pending, report)
    for p in pending:
        report.created[p.cls.name] = report.created.get(p.cls.name, 0) + 1
        report.flagged += bool(p.flags)
    if report.ok and pending:
        _insert(session, pending)
        session.add(
            AuditEvent(
                actor=actor.name,
                action="import",
                record_type="ldif",
                record_key=name[-255:],
                after=json.dumps(
                    {"created": report.created, "lenient": lenient, "flagged": report.flagged}, sort_keys=True
                ),
            )
        )
        session.flush()
    return report


def _validate(stream: IO[str], report: ImportReport, lenient: bool) -> list[_Pending]:
    pending: list[_Pending] = []
    try:
        for entry_dn, attrs in read_entries(stream):
            cls = _classify(attrs)
            if cls is None:
                classes = ", ".join(v for a, v in attrs if a.lower() == "objectclass") or "none"
                report.skipped.append((entry_dn, f"not a registry record (objectClass: {classes})"))
                continue
            data, problems = _to_record(cls, entry_dn, attrs)
            try:
                if cls is dit.ORG:
                    cleaned = records.clean_organisation(data)
                else:
                    cleaned = _CLEAN[cls.name](data, lenient=lenient)
            except InvalidIdentifier as exc:
                problems += [_issue_text(cls, i) for i in exc.issues]
                cleaned = None
            if problems or cleaned is None:
                report.rejected.append(Rejection(entry_dn, problems))
                continue
            pending.append(_Pending(cls, entry_dn, cleaned.values, cleaned.flags))
    except (ValueError, UnicodeDecodeError) as exc:
        report.rejected.append(Rejection("-", [f"LDIF syntax: {exc}"]))
    return pending


def _existing(session: Session, column: Any, values: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(values), 500):
        chunk = values[i : i + 500]
        found.update(
            v.lower() for v in session.scalars(select(column).where(func.lower(column).in_([c.lower() for c in chunk])))
        )
    return found


def _check_uniqueness(session: Session, pending: list[_Pending], report: ImportReport) -> None:
    """What the services check one by one, for the whole file at once (within it and against the DB)."""
    seen: dict[tuple[str, str], str] = {}
    bad: dict[str, list[str]] = {}

    def claim(space: str, value: str | None, what: str, p: _Pending) -> None:
        if value is None:
            return
        k = (space, value.lower())
        if k in seen:
            bad.setdefault(p.dn, []).append(f"{what}: {value!r} is also used by {seen[k]} (rule: unique)")
        else:
            seen[k] = p.dn

    for p in pending:
        v = p.values
        if p.cls is dit.ORG:
            claim("org", v["ods_code"], "uniqueIdentifier", p)
        else:
            claim("services", v[p.cls.key_field], "uniqueIdentifier", p)
        if p.cls is dit.MHS:
            claim("cpa", v["cpa_id"], "nhsMhsCPAId", p)
            claim("pk+ia", f"{v['party_key']}\x00{v['interaction_id']}".lower(), "nhsMHSPartyKey+nhsMhsSvcIA", p)
    checks = [
        ("services", dit.AS.model.__table__.c.asid),
        ("services", dit.MHS.model.__table__.c.unique_identifier),
        ("cpa", dit.MHS.model.__table__.c.cpa_id),
        ("org", dit.ORG.model.__table__.c.ods_code),
    ]
    for space, column in checks:
        wanted = [value for (s, value) in seen if s == space]
        for value in _existing(session, column, wanted) if wanted else ():
            owner = seen[(space, value)]
            bad.setdefault(owner, []).append(f"{value!r} already exists in the registry (rule: unique)")
    pk_ia = [p for p in pending if p.cls is dit.MHS]
    if pk_ia and session.scalar(select(func.count()).select_from(dit.MHS.model.__table__)):
        table = dit.MHS.model.__table__
        for p in pk_ia:
            hit = session.scalar(
                select(table.c.unique_identifier).where(
                    func.lower(table.c.party_key) == p.values["party_key"].lower(),
                    table.c.interaction_id == p.values["interaction_id"],
                )
            )
            if hit:
                bad.setdefault(p.dn, []).append(
                    f"party key already has an MHS record ({hit}) for this interaction (rule: unique)"
                )
    report.rejected += [Rejection(d, reasons) for d, reasons in bad.items()]


def _executemany(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """One DBAPI executemany of a plain INSERT (every row has every key of the first).

    Not SQLAlchemy's insertmanyvalues: on psycopg its multi-thousand-placeholder statements cost more
    to parse client-side than the insert itself; psycopg's own executemany pipelines one statement.
    """
    names = list(rows[0])
    compiled = insert(table).values({n: bindparam(n) for n in names}).compile(dialect=session.get_bind().dialect)
    if compiled.positional:
        order = list(compiled.positiontup or ())
        params: list[Any] = [tuple(r[n] for n in order) for r in rows]
    else:
        params = rows
    session.connection().exec_driver_sql(compiled.string, params)


def _new_ids(session: Session, table: Any, count: int) -> list[int]:
    """Ids for ``count`` new rows: from the serial's sequence (PostgreSQL), or after max(id) (SQLite,
    whose INTEGER PRIMARY KEY goes on from the largest id; the CLI holds the write lock: BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        seq = session.scalar(select(func.pg_get_serial_sequence(table.name, "id")))
        return list(session.scalars(select(func.nextval(seq)).select_from(func.generate_series(1, count))))
    start = int(session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0) + 1
    return list(range(start, start + count))


def _insert(session: Session, pending: list[_Pending]) -> None:
    now = utcnow()
    for cls in dit.ENTRY_CLASSES:
        mine = [p for p in pending if p.cls is cls]
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


from sds_registry.ldap.ldif_export import export_ldif, ldif_line  # noqa: E402  (re-exported)

__all__ = ["ImportReport", "Rejection", "export_ldif", "import_ldif", "ldif_line", "read_entries"]
