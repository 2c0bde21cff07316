"""JSON import/export of the whole directory (also the seed format). Takes a Session; never commits.

Format: one object with optional lists ``organisations``, ``accredited_systems``, ``message_handling_systems``,
``data_sharing_agreements`` (what ``sds export`` writes: every stored field, plus ``flags`` for records a
lenient import let through), and ``providers`` / ``consumers`` (register_provider / register_consumer
inputs, which generate identifiers: create mode only). Every record is validated with the registry's rules.

Import modes (``services.sync``): ``create`` (default; a record already stored is rejected), ``upsert``,
``sync``. ``create`` streams: the file is read item by item (``json_stream``) and stored CHUNK records at a
time (a record clashing with an earlier, stored chunk is found in the database), with one ``import`` audit
event. Into an empty registry, from a stream that can be read again, ``create`` first tries the fast first
load (``services.first_load``; on any rejection it is rolled back and the stream read again this way, so
the report is the same); ``upsert``/``sync`` hold the file's records and audit each change. A record carrying
``flags`` was
stored leniently: it re-imports only with ``lenient`` (and keeps its flags).
The caller commits only when the report has no rejections: all or nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sds_registry.errors import InvalidIdentifier, RegistryError
from sds_registry.models import AuditEvent, DataSharingAgreement
from sds_registry.services import bulk, first_load, json_stream, sync
from sds_registry.services.registration import register_consumer, register_provider
from sds_registry.services.writes import CLI_ACTOR, Actor

RECORD_SECTIONS = {"organisations": "organisation", "accredited_systems": "accredited_system",
                   "message_handling_systems": "message_handling_system",
                   "data_sharing_agreements": sync.AGREEMENT}
SECTION_OF_KIND = {v: k for k, v in RECORD_SECTIONS.items()}
SECTIONS = ("organisations", "providers", "consumers", "accredited_systems", "message_handling_systems",
            "data_sharing_agreements")
_META = ("version", "created_at", "updated_at", "id")
CHUNK = 10000


@dataclass
class Rejection:
    section: str
    index: int
    key: str
    reasons: list[str]
    line: int = 0

    def text(self) -> str:
        where = f"{self.section}[{self.index}]" if self.index >= 0 else self.section
        if self.line:
            where += f" (line {self.line})"
        return f"REJECTED {where} {self.key}: " + "; ".join(self.reasons)


def count_line(name: str, ok: bool, created: int, updated: int, deleted: int, unchanged: int) -> str:
    """One report line of what an import did to one kind of record (or would have done, when it failed)."""
    if not ok:
        return f"{name}: would have created {created}, updated {updated}, deleted {deleted} (nothing stored)"
    return f"{name}: {created} created, {updated} updated, {deleted} deleted, {unchanged} unchanged"


def flagged_line(flagged: int, ok: bool) -> str:
    """The report line for records a lenient import stored with flags (or would have, when it failed)."""
    if ok:
        return f"lenient: {flagged} record(s) stored with flags (values breaking our rules)"
    return f"lenient: {flagged} record(s) would have been stored with flags (nothing stored)"


@dataclass
class ImportReport:
    """Counts per section; ``lines()`` says "created" only when the import is ``ok`` (and so stored)."""

    mode: str = "create"
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # already present (seed: skip_existing)
    rejected: list[Rejection] = field(default_factory=list)
    flagged: int = 0
    first_load: bool = False  # stored by the fast first load (services.first_load), not the careful path

    @property
    def ok(self) -> bool:
        return not self.rejected

    def count(self, section: str, what: str, n: int = 1) -> None:
        target = getattr(self, what)
        target[section] = target.get(section, 0) + n

    def add(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        for kind, c in counts.items():
            for what in ("created", "updated", "deleted", "unchanged"):
                if c.get(what):
                    self.count(SECTION_OF_KIND[kind], what, c[what])

    def lines(self) -> list[str]:
        out = []
        for s in SECTIONS:
            c, u, d, n, k = (t.get(s, 0) for t in (self.created, self.updated, self.deleted, self.unchanged,
                                                    self.skipped))
            if not (c or u or d or n or k or s in self.created):
                continue
            if self.ok and self.mode == "create":
                out.append(f"{s}: {c} created, {k} already present")
            else:
                out.append(count_line(s, self.ok, c, u, d, n))
        if self.flagged:
            out.append(flagged_line(self.flagged, self.ok))
        out += [r.text() for r in self.rejected]
        return out


def _key(item: Mapping[str, Any]) -> str:
    for name in ("asid", "unique_identifier", "cpa_id", "ods_code"):
        if item.get(name):
            return f"{name}={item[name]}"
    if "consumer_ods" in item or "provider_ods" in item:
        return f"{item.get('consumer_ods')}->{item.get('provider_ods')}"
    return "-"


def _items(source: Mapping[str, Any] | IO[str]) -> Iterator[tuple[str, int, int, Any]]:
    if isinstance(source, Mapping):
        for section, value in source.items():
            if isinstance(value, list):
                yield from ((section, i, 0, item) for i, item in enumerate(value))
            else:
                yield section, -1, 0, value
    else:
        yield from json_stream.items(source)


def import_directory(session: Session, source: Any, actor: Actor = CLI_ACTOR, *, lenient: bool = False,
                     skip_existing: bool = False, mode: sync.Mode = "create",
                     progress: Callable[[int], None] | None = None) -> ImportReport:
    """Load every record of ``source`` (a parsed document, or a text stream read incrementally).

    ``skip_existing`` (the seed): records already stored are left as they are, not rejected."""
    report = ImportReport(mode="create" if skip_existing else mode)
    if not (isinstance(source, Mapping) or hasattr(source, "read")):
        report.rejected.append(Rejection("$", -1, "-", ["the file must hold a JSON object"]))
        return report
    plan_mode: sync.Mode = "upsert" if skip_existing else mode
    seekable = getattr(source, "seekable", None)
    if plan_mode == "create" and (isinstance(source, Mapping) or (seekable is not None and seekable())):
        start = 0 if isinstance(source, Mapping) else source.tell()
        fast = _first_load(session, source, actor, lenient, progress)
        if fast is not None:
            return fast
        if not isinstance(source, Mapping):
            source.seek(start)
    seen: dict[tuple[str, str], str] = {}
    since = bulk.last_ids(session) if plan_mode == "create" else None
    deferred = bulk.defer_indexes(session) if plan_mode == "create" else []
    where: dict[str, tuple[str, int, str, int]] = {}
    desired: list[sync.Desired] = []
    registrations: list[tuple[str, int, int, dict[str, Any]]] = []

    def settle(final: bool) -> None:
        plan = sync.build_plan(session, desired, mode=plan_mode, lenient=lenient,
                               seen=seen if plan_mode == "create" else None, since=since)
        for p in plan.rejected:
            section, index, key, line = where[p.where]
            report.rejected.append(Rejection(section, index, key, p.reasons, line))
        if skip_existing:
            for r, _ in plan.updates:
                report.count(SECTION_OF_KIND[r.kind.name], "skipped")
            for kind, n in plan.unchanged.items():
                report.count(SECTION_OF_KIND[kind], "skipped", n)
            plan.updates, plan.unchanged = [], {}
            plan.agreements = [a for a in plan.agreements if a[0] == "create"]
        report.add(plan.counts())
        report.flagged += sum(bool(r.flags) for r in plan.creates) + sum(bool(r.flags) for r, _ in plan.updates)
        if report.ok:
            sync.apply_plan(session, plan, actor, audit="none" if plan_mode == "create" or skip_existing
                            else "record")
            seen.clear()  # stored now: the database finds later chunks' clashes with them (memory stays flat)
        desired.clear()
        where.clear()

    try:
        for section, index, line, item in _items(source):
            if progress:
                progress(1)
            label = f"{section}[{index}]"
            if section not in SECTIONS:
                report.rejected.append(Rejection(section, -1, "-", [f"unknown section; expected one of {SECTIONS}"],
                                                 line))
                continue
            if index < 0:
                report.rejected.append(Rejection(section, -1, "-", ["must be a list"], line))
                continue
            if not isinstance(item, dict):
                report.rejected.append(Rejection(section, index, "-", ["must be an object"], line))
                continue
            clean = {k: v for k, v in item.items() if k not in _META}
            if section in ("providers", "consumers"):
                if plan_mode != "create" and not skip_existing:
                    report.rejected.append(Rejection(section, index, _key(clean), [
                        f"{section} are registration requests (they generate identifiers): --mode {mode} compares "
                        "stored records; give accredited_systems and message_handling_systems (sds export writes "
                        "them)"], line))
                else:
                    registrations.append((section, index, line, clean))
                continue
            flags = clean.pop("flags", None) or []
            if flags and not lenient:
                report.rejected.append(Rejection(section, index, _key(clean), [
                    f"flags: this record was stored leniently ({', '.join(map(str, flags))}); import with --lenient "
                    "to keep it (rule: lenient-flags)"], line))
                continue
            where[label] = (section, index, _key(clean), line)
            desired.append(sync.Desired(RECORD_SECTIONS[section], clean, label, tuple(map(str, flags))))
            if plan_mode == "create" and len(desired) >= CHUNK:
                settle(False)
    except json_stream.JsonFormatError as exc:
        report.rejected.append(Rejection("$", -1, "-", [f"not JSON: {exc}"]))
        bulk.build_indexes(session, deferred)
        return report
    settle(True)
    bulk.build_indexes(session, deferred)  # before the registrations, whose services read through them
    for section, index, line, data in registrations:
        _register(session, report, section, index, line, data, actor, skip_existing)
    if report.ok and (plan_mode == "create" or skip_existing) and (report.created or report.flagged):
        session.add(AuditEvent(actor=actor.name, action="import", record_type="directory",
                               record_key=getattr(source, "name", "json")[-255:],
                               after=json.dumps({"created": report.created, "lenient": lenient}, sort_keys=True)))
        session.flush()
    return report


def _first_load(session: Session, source: Mapping[str, Any] | IO[str], actor: Actor, lenient: bool,
                progress: Callable[[int], None] | None) -> ImportReport | None:
    """``source`` stored by services.first_load in a SAVEPOINT, or None (nothing kept) when the registry
    holds records, the tables cannot be held, or anything in the file would be rejected."""
    report = ImportReport(mode="create")
    registrations: list[tuple[str, int, int, dict[str, Any]]] = []
    agreements: list[sync.Desired] = []
    savepoint = session.begin_nested()
    try:
        load = first_load.FirstLoad(session)
        for section, index, line, item in _items(source):
            if progress:
                progress(1)
            if section not in SECTIONS or index < 0 or not isinstance(item, dict):
                raise first_load.Clash("not a list of records")
            clean = {k: v for k, v in item.items() if k not in _META}
            if section in ("providers", "consumers"):
                registrations.append((section, index, line, clean))
                continue
            flags = clean.pop("flags", None) or []
            if flags and not lenient:
                raise first_load.Clash("flags without lenient")
            d = sync.Desired(RECORD_SECTIONS[section], clean, f"{section}[{index}]", tuple(map(str, flags)))
            if d.kind == sync.AGREEMENT:
                agreements.append(d)
                continue
            try:
                row = sync._prepare(d, lenient, True, "create")
            except (InvalidIdentifier, ValueError) as exc:
                raise first_load.Clash(str(exc)) from exc
            load.add(row.kind, sync._target(row, None, True), row.flags)
        load.finish()
        plan = sync.build_plan(session, agreements, mode="create", lenient=lenient, seen={})
        if not plan.ok:
            raise first_load.Clash("an agreement")
    except (first_load.Clash, json_stream.JsonFormatError):
        savepoint.rollback()
        return None
    sync.apply_plan(session, plan, actor, audit="none")
    report.add(load.counts(CHUNK))
    report.add(plan.counts())
    report.flagged = load.flagged
    report.first_load = True
    savepoint.commit()
    for section, index, line, data in registrations:
        _register(session, report, section, index, line, data, actor, False)
    if report.ok and (report.created or report.flagged):
        session.add(AuditEvent(actor=actor.name, action="import", record_type="directory",
                               record_key=getattr(source, "name", "json")[-255:],
                               after=json.dumps({"created": report.created, "lenient": lenient}, sort_keys=True)))
        session.flush()
    return report


def _register(session: Session, report: ImportReport, section: str, index: int, line: int,
              data: dict[str, Any], actor: Actor, skip_existing: bool) -> None:
    asid = data.get("asid")
    if skip_existing and asid and session.scalar(select(bulk.AS.table.c.id).where(bulk.AS.table.c.asid == asid)):
        report.count(section, "skipped")
        return
    register = register_provider if section == "providers" else register_consumer
    try:
        with session.begin_nested():
            register(session, data, actor)
    except InvalidIdentifier as exc:
        report.rejected.append(Rejection(section, index, _key(data), [
            f"{i.field}: {i.message} (rule: {i.rule})" for i in exc.issues], line))
        return
    except RegistryError as exc:
        report.rejected.append(Rejection(section, index, _key(data), [str(exc)], line))
        return
    report.count(section, "created")


def _public(kind: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    """The record as the import takes it: unset fields left out, but given as null / [] where the import would
    otherwise fill in the services' default (so a record stored without one re-imports without one)."""
    defaulted = sync.DEFAULTED[kind]
    out = {k: v for k, v in stored.items() if k not in _META and (v not in (None, []) or k in defaulted)}
    if not out.get("flags"):
        out.pop("flags", None)
    return out


def export_records(session: Session) -> Iterator[tuple[str, dict[str, Any]]]:
    """(section, record) for everything, section by section in key-independent id order, CHUNK rows at a time
    (keyset on id): memory holds one chunk however big the directory is."""
    for kind in (bulk.ORG, bulk.AS, bulk.MHS):
        table = kind.table
        last = 0
        while True:
            ids = list(session.scalars(select(table.c.id).where(table.c.id > last).order_by(table.c.id)
                                       .limit(CHUNK)))
            if not ids:
                break
            for row in bulk.stored(session, kind, table.c.id.between(ids[0], ids[-1])):
                yield SECTION_OF_KIND[kind.name], _public(kind.name, row)
            last = ids[-1]
    yield from export_agreements(session)


def export_agreements(session: Session) -> Iterator[tuple[str, dict[str, Any]]]:
    """("data_sharing_agreements", record) for every agreement (what an LDIF export's side file holds)."""
    agreements = DataSharingAgreement.__table__
    for a in session.execute(select(agreements).order_by(agreements.c.consumer_ods, agreements.c.provider_ods)):
        record = {"consumer_ods": a.consumer_ods, "provider_ods": a.provider_ods}
        if a.description is not None:
            record["description"] = a.description
        yield "data_sharing_agreements", record


def count_records(session: Session) -> int:
    """How many records an export writes (for a progress bar)."""
    from sqlalchemy import func

    return sum(int(session.scalar(select(func.count()).select_from(t)) or 0)
               for t in (bulk.ORG.table, bulk.AS.table, bulk.MHS.table, DataSharingAgreement.__table__))


def write_json(records: Iterable[tuple[str, dict[str, Any]]], stream: IO[str]) -> int:
    """The import format, one record per line, written as ``records`` come (nothing held). Returns the count."""
    count = 0
    current: str | None = None
    stream.write("{")
    for section, record in records:
        if section != current:
            stream.write("\n ]," if current is not None else "")
            stream.write(f"\n {json.dumps(section)}: [\n  ")
            current = section
        else:
            stream.write(",\n  ")
        stream.write(json.dumps(record, ensure_ascii=False, sort_keys=False))
        count += 1
    stream.write("\n ]\n}\n" if current is not None else "}\n")
    return count


def export_directory(session: Session) -> dict[str, Any]:
    """Everything, in the import format, as one document (small directories and tests; the CLI streams)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for section, record in export_records(session):
        out.setdefault(section, []).append(record)
    return out
