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

from sqlalchemy.orm import Session

from sds_registry.domain import records
from sds_registry.errors import InvalidIdentifier, Issue
from sds_registry.ldap import dit, dn, schema
from sds_registry.ldap.dit import EntryClass
from sds_registry.ldap.ldif_store import Pending, Rejection, check_uniqueness, insert_records
from sds_registry.models import AuditEvent
from sds_registry.services.writes import CLI_ACTOR, Actor

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
            if name.lower() in ("version", "search", "result", "text", "matched"):
                continue  # the LDIF version line; the result trailer plain ldapsearch (without -LLL) prints
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


def _to_record(
    cls: EntryClass, entry_dn: str, attrs: list[tuple[str, str]]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Registry fields from LDAP attributes, problems as reason strings, and attributes we do not hold."""
    data: dict[str, Any] = {}
    problems: list[str] = []
    unknown: list[str] = []
    for name, value in attrs:
        f = _field(cls, name)
        if f is _SKIP:
            continue
        if f is None:
            unknown.append(name)
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
        return data, [f"dn: {exc} (rule: dn-syntax)"], unknown
    if rdn_value is None or parent_key != cls.parent_key:
        problems.append(f"dn: must be uniqueIdentifier=<id>,{cls.parent} (rule: dn)")
    else:
        data.setdefault(cls.key_field, rdn_value)
        if data[cls.key_field].lower() != rdn_value.lower():
            problems.append(f"uniqueIdentifier: {data[cls.key_field]!r} differs from the DN (rule: rdn)")
    if cls is dit.MHS and data.get("unique_identifier") and not data.get("cpa_id"):
        data["cpa_id"] = data["unique_identifier"]
    return data, problems, unknown


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


def import_ldif(
    session: Session, source: str | Path | IO[str], lenient: bool = False, actor: Actor = CLI_ACTOR
) -> ImportReport:
    """Validate every nhsAs/nhsMhs/nhsOrg entry of ``source``; store them only if none is rejected.

    Streams: records are checked and inserted a chunk at a time (so memory holds one chunk and the keys
    seen so far); after the first rejection nothing more is inserted, and the caller, seeing
    ``report.ok`` false, rolls back what was. Every entry is still checked, so the report lists them all.
    """
    report = ImportReport()
    if isinstance(source, str | Path):
        with open(source, encoding="utf-8") as stream:
            _run_import(session, stream, report, lenient)
        name = str(source)
    else:
        _run_import(session, source, report, lenient)
        name = getattr(source, "name", "<stream>")
    if report.ok and report.created:
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


CHUNK = 10000


def _run_import(session: Session, stream: IO[str], report: ImportReport, lenient: bool) -> None:
    seen: dict[tuple[str, str], str] = {}
    chunk: list[Pending] = []
    for p in _validate(stream, report, lenient):
        chunk.append(p)
        if len(chunk) >= CHUNK:
            _settle_chunk(session, chunk, seen, report)
            chunk = []
    _settle_chunk(session, chunk, seen, report)


def _settle_chunk(
    session: Session, chunk: list[Pending], seen: dict[tuple[str, str], str], report: ImportReport
) -> None:
    report.rejected += check_uniqueness(session, chunk, seen)
    for p in chunk:
        report.created[p.cls.name] = report.created.get(p.cls.name, 0) + 1
        report.flagged += bool(p.flags)
    if report.ok and chunk:
        insert_records(session, chunk)


def _validate(stream: IO[str], report: ImportReport, lenient: bool) -> Iterator[Pending]:
    try:
        for entry_dn, attrs in read_entries(stream):
            cls = _classify(attrs)
            if cls is None:
                classes = ", ".join(v for a, v in attrs if a.lower() == "objectclass") or "none"
                report.skipped.append((entry_dn, f"not a registry record (objectClass: {classes})"))
                continue
            data, problems, unknown = _to_record(cls, entry_dn, attrs)
            if not lenient:
                problems += [f"{n}: not an attribute of {cls.name} here (rule: unknown-attribute)" for n in unknown]
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
            flags = cleaned.flags + sorted({f"{n}:unknown-attribute" for n in unknown})
            yield Pending(cls, entry_dn, cleaned.values, flags)
    except (ValueError, UnicodeDecodeError) as exc:
        report.rejected.append(Rejection("-", [f"LDIF syntax: {exc}"]))


from sds_registry.ldap.ldif_export import export_ldif, ldif_line  # noqa: E402  (re-exported)

__all__ = ["ImportReport", "Rejection", "export_ldif", "import_ldif", "ldif_line", "read_entries"]
