"""LDIF import: validated records (ldif.py) stored through ``services.sync`` in mode create, upsert or sync.

Records are stored exactly as the LDIF has them: unlike the write services no defaults are added, so every
search answers as slapd does on the same file. A ``create`` into an empty registry from a stream that can be
read again (a file) first tries the fast first load (services.first_load: rows straight in, clashes looked for
once at the end); if the input breaks any rule that load is rolled back (a SAVEPOINT) and the stream read again
the careful way below, so the report is the same either way. The careful ``create`` streams: records are
checked and inserted CHUNK at a time (memory holds one chunk and its keys: a key clashing with an earlier, stored
chunk is found in the database, named as this input's own; into an empty registry only a key a Bloom filter of
the stored ones may hold is looked for); after the first rejection nothing more is inserted (the keys
of the chunks not stored are then kept to find duplicates among them), and the caller, seeing ``report.ok``
false, rolls back what was. Every entry is still checked, so the report lists them all. ``create`` records
one ``import`` audit event; ``upsert`` and ``sync`` hold the file's records in memory (a record is deleted
only when nothing in the file names it) and audit each record they create, update or delete.
Data-sharing agreements, which LDIF cannot carry, come as ``agreements`` (the JSON import's
``data_sharing_agreements`` list, from a side file), and so do the lenient flags of stored records
(``flags``: DN -> flags; an attribute we do not hold is flagged but not exported, so its flag would be lost
otherwise). Takes a Session; never commits (the CLI commits when ``report.ok``).
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from sds_registry.ldap.ldif_store import KIND_OF_CLASS, ImportReport, Pending, Rejection
from sds_registry.ldap.ldif_worker import validated
from sds_registry.models import AuditEvent
from sds_registry.services import bloom, bulk, first_load, sync
from sds_registry.services.writes import CLI_ACTOR, Actor

CHUNK = 5000  # records planned and stored at a time: with the checking worker beside it, 300 MB in all


def _desired(p: Pending) -> sync.Desired:
    return sync.Desired(KIND_OF_CLASS[p.cls.name], p.values, p.dn, tuple(p.flags), cleaned=True)


def agreement_records(agreements: Iterable[Mapping[str, Any]], source: str) -> list[sync.Desired]:
    return [sync.Desired(sync.AGREEMENT, a, f"{source} data_sharing_agreements[{i}]")
            for i, a in enumerate(agreements)]


def import_ldif(
    session: Session, source: str | Path | IO[str], lenient: bool = False, actor: Actor = CLI_ACTOR, *,
    mode: sync.Mode = "create", agreements: list[sync.Desired] | None = None,
    flags: Mapping[str, list[str]] | None = None,
) -> ImportReport:
    """Validate every nhsAs/nhsMhs/nhsOrg entry of ``source`` and store them (``mode``) only if none is rejected."""
    if isinstance(source, str | Path):
        with open(source, encoding="utf-8") as stream:
            report = _import(session, stream, lenient, actor, mode, agreements or [], flags or {})
        name = str(source)
    else:
        report = _import(session, source, lenient, actor, mode, agreements or [], flags or {})
        name = getattr(source, "name", "<stream>")
    if report.ok and mode == "create" and report.created:
        session.add(AuditEvent(
            actor=actor.name, action="import", record_type="ldif", record_key=name[-255:],
            after=json.dumps({"created": report.created, "lenient": lenient, "flagged": report.flagged},
                             sort_keys=True),
        ))
        session.flush()
    return report


def _import(session: Session, stream: IO[str], lenient: bool, actor: Actor, mode: sync.Mode,
            agreements: list[sync.Desired], flags: Mapping[str, list[str]]) -> ImportReport:
    """The fast first load when it applies (a create into an empty registry from a stream that can be read
    again), else (or when the input breaks a rule) the careful path from where the stream began."""
    seekable = getattr(stream, "seekable", None)
    if mode == "create" and seekable is not None and seekable():
        start = stream.tell()
        report = _first_load(session, stream, lenient, actor, agreements, flags)
        if report is not None:
            return report
        stream.seek(start)
    report = ImportReport(mode=mode)
    _run(session, _flagged(stream, report, lenient, flags), report, lenient, mode, agreements, actor)
    return report


def _first_load(session: Session, stream: IO[str], lenient: bool, actor: Actor, agreements: list[sync.Desired],
                flags: Mapping[str, list[str]]) -> ImportReport | None:
    """Load ``stream`` into an empty registry through services.first_load, in a SAVEPOINT; None (and nothing
    kept) when the registry holds records, the tables cannot be held, or the input breaks any rule."""
    report = ImportReport(mode="create")
    records = _flagged(stream, report, lenient, flags)
    savepoint = session.begin_nested()
    try:
        load = first_load.FirstLoad(session)
        kinds = {name: bulk.KINDS[kind] for name, kind in KIND_OF_CLASS.items()}
        for p in records:
            if report.rejected:
                raise first_load.Clash("a rejected record")
            load.add(kinds[p.cls.name], p.values, p.flags)
        if report.rejected:
            raise first_load.Clash("a rejected record")
        load.finish()
    except first_load.Clash:
        records.close()  # ends the checking worker
        savepoint.rollback()
        return None
    report.add(load.counts(CHUNK))
    report.flagged = load.flagged
    report.first_load = True
    if agreements:
        _settle(session, [], agreements, {}, {}, report, lenient, actor, None)
    savepoint.commit()
    return report


def _flagged(stream: IO[str], report: ImportReport, lenient: bool,
             flags: Mapping[str, list[str]]) -> Generator[Pending, None, None]:
    """The valid records of ``stream``, with the flags the side file gives them (only with ``lenient``)."""
    for p in validated(stream, report, lenient):
        extra = flags.get(p.dn)
        if extra and not lenient:
            report.rejected.append(Rejection(p.dn, [
                f"flags: this record was stored leniently ({', '.join(extra)}); import with --lenient to keep it "
                "(rule: lenient-flags)"], p.line))
            continue
        if extra:
            p.flags = sorted(set(p.flags) | set(extra))
        yield p


def _run(session: Session, records: Iterator[Pending], report: ImportReport, lenient: bool, mode: sync.Mode,
         agreements: list[sync.Desired], actor: Actor) -> None:
    if mode == "create":
        seen: dict[tuple[str, str], str] = {}
        since = bulk.last_ids(session)
        deferred = bulk.defer_indexes(session)
        # A first load holding the tables (the indexes dropped): every stored key is this input's, so a filter of
        # them spares the database a probe per key (one or two in a hundred still go, false positives). Checked
        # empty again now that the tables are held: a writer may have committed since ``since`` was read.
        keys = bloom.KeyFilter() if deferred and not any(bulk.last_ids(session).values()) else None
        chunk: list[Pending] = []
        for p in records:
            chunk.append(p)
            if len(chunk) >= CHUNK:
                _settle(session, chunk, [], seen, since, report, lenient, actor, keys)
                chunk = []
        _settle(session, chunk, agreements, seen, since, report, lenient, actor, keys)
        bulk.build_indexes(session, deferred)  # even after a rejection: a caller committing anyway keeps them
        return
    pending = list(records)
    lines = {p.dn: p.line for p in pending}
    plan = sync.build_plan(session, [*map(_desired, pending), *agreements], mode=mode, lenient=lenient,
                           defaults=False)
    report.rejected += [Rejection(r.where, r.reasons, lines.get(r.where, 0)) for r in plan.rejected]
    report.add(plan.counts())
    report.flagged += sum(bool(r.flags) for r in plan.creates) + sum(bool(r.flags) for r, _ in plan.updates)
    if report.ok:
        sync.apply_plan(session, plan, actor, audit="record")


def _settle(session: Session, chunk: list[Pending], agreements: list[sync.Desired],
            seen: dict[tuple[str, str], str], since: dict[str, int], report: ImportReport, lenient: bool,
            actor: Actor, keys: bloom.KeyFilter | None) -> None:
    lines = {p.dn: p.line for p in chunk}
    plan = sync.build_plan(session, [*map(_desired, chunk), *agreements], mode="create", lenient=lenient,
                           defaults=False, seen=seen, since=since, stored_keys=keys)
    report.rejected += [Rejection(r.where, r.reasons, lines.get(r.where, 0)) for r in plan.rejected]
    report.add(plan.counts())
    report.flagged += sum(bool(p.flags) for p in chunk)
    if report.ok and plan.ok:
        sync.apply_plan(session, plan, actor, audit="none")
        seen.clear()  # stored now: the database finds the next chunks' clashes with them (memory stays flat)
