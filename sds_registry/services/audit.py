"""The audit: SSP decisions (recorded in batches by a background writer; listed, filtered and followed) and
registry writes (who changed which record, before and after). Queries take a Session and never commit.

Recording: the hot path only does ``queue.put_nowait`` (about a microsecond). The writer thread waits ``linger``
seconds after the first decision of a batch, takes what has queued by then (up to ``batch`` rows) and writes it
with one executemany INSERT in its own transaction (one transaction per decision would cost the worker a fifth
of its CPU). If the database is down, the batch is logged and dropped rather than blocking or growing without
bound; if the queue is full (``max_queued``), new decisions are counted in ``dropped`` and logged.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, insert, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from sds_registry.db import unavailable
from sds_registry.domain import formats
from sds_registry.models import AuditEvent, SspDecision

log = logging.getLogger("sds.ssp.audit")
_LIMITS = {"trace_id": 64, "from_asid": 64, "to_asid": 64, "interaction_id": 255, "method": 10}
_STOP = object()
#: How long a batch of decisions waits for a database that cannot be used before it is given up on.
RETRY_SECONDS = 60.0
T = TypeVar("T")


def decision_row(
    *, trace_id: str | None, from_asid: str | None, to_asid: str | None, interaction_id: str | None,
    method: str | None, target_url: str | None, outcome: str, status: int | None,
    provider_status: int | None = None, latency_ms: float | None = None, at: datetime | None = None,
) -> dict[str, Any]:
    """One ssp_decisions row; header values are cut to their column's length (they may be anything)."""
    row: dict[str, Any] = {
        "at": at or datetime.now(UTC), "trace_id": trace_id, "from_asid": from_asid, "to_asid": to_asid,
        "interaction_id": interaction_id, "method": method, "target_url": target_url, "outcome": outcome,
        "status": status, "provider_status": provider_status, "latency_ms": latency_ms,
    }
    for name, limit in _LIMITS.items():
        if isinstance(row[name], str):
            row[name] = row[name][:limit] or None
    return row


class AuditWriter:
    """A queue and one daemon thread that batch-inserts decisions into ssp_decisions."""

    def __init__(self, engine: Engine, *, batch: int = 200, max_queued: int = 100_000, linger: float = 0.05) -> None:
        self.engine = engine
        self.batch = max(1, batch)
        self.linger = linger
        self._stopping = threading.Event()
        self.dropped = 0
        self._pid = os.getpid()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="sds-ssp-audit", daemon=True)
        self._thread.start()

    def record(self, row: dict[str, Any]) -> None:
        """Queue one decision (never blocks)."""
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.error("SSP audit queue full: %d decisions not recorded", self.dropped)

    def flush(self) -> None:
        """Block until every decision queued so far is written (or given up on)."""
        self._queue.join()

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._stopping.set()
            self._queue.put(_STOP)
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._queue.task_done()
                return
            rows = [item]
            stop = False
            if self.linger and not self._stopping.is_set():
                self._stopping.wait(self.linger)  # let a batch gather (cut short by close())
            while len(rows) < self.batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                rows.append(more)
            self._write(rows)
            for _ in range(len(rows) + (1 if stop else 0)):
                self._queue.task_done()
            if stop:
                return

    def _write(self, rows: list[dict[str, Any]]) -> None:
        """Insert one batch. While the database cannot be used (a restart) the batch is retried, with pauses
        growing to 2 s, for up to RETRY_SECONDS (decisions queue meanwhile, up to max_queued); a database that
        is full, another error, or close() gives up on the batch with one log line."""
        deadline, pause = time.monotonic() + RETRY_SECONDS, 0.1
        while True:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(SspDecision), rows)
                return
            except Exception as exc:  # noqa: BLE001 - the audit must never take the proxy down
                failure = unavailable(exc)
                if failure is None or failure.full or self._stopping.is_set() or time.monotonic() > deadline:
                    log.log(logging.ERROR, "could not record %d SSP decisions%s", len(rows),
                            f": {failure}" if failure else "", exc_info=failure is None)
                    return
                if pause == 0.1:
                    log.warning("%d SSP decisions wait for the database: %s", len(rows), failure)
                self._stopping.wait(pause)
                pause = min(2.0, pause * 2)


_writers: dict[int, AuditWriter] = {}
_writers_lock = threading.Lock()


def writer_for(engine: Engine, *, batch: int = 200) -> AuditWriter:
    """This process's writer for ``engine`` (made on first use, after any fork; closed at exit)."""
    key = id(engine)
    writer = _writers.get(key)
    if writer is not None and writer.engine is engine and writer._pid == os.getpid():
        return writer
    with _writers_lock:
        writer = _writers.get(key)
        if writer is None or writer.engine is not engine or writer._pid != os.getpid():
            writer = AuditWriter(engine, batch=batch)
            _writers[key] = writer
            atexit.register(writer.close)
        return writer


# ---- Reading the SSP decisions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionPage:
    """One page of decisions in id order; ``after`` is the cursor of the next page (None: this is the last)."""

    items: list[SspDecision]
    after: int | None


def _involving(query: Select[SspDecision], asid: str | None) -> Select[SspDecision]:
    """Only decisions ``asid`` sent or received (no filter when None or empty)."""
    if not asid:
        return query
    return query.where(or_(SspDecision.from_asid == asid, SspDecision.to_asid == asid))


def list_decisions(
    session: Session, *, asid: str | None = None, trace_id: str | None = None, since: datetime | None = None,
    until: datetime | None = None, after: int | None = None, limit: int = 100,
) -> DecisionPage:
    """Decisions in id order from ``after`` (exclusive), at most ``limit``; ``since`` inclusive, ``until``
    exclusive."""
    query = _involving(select(SspDecision).order_by(SspDecision.id).limit(limit + 1), asid)
    if after is not None:
        query = query.where(SspDecision.id > after)
    if trace_id:
        query = query.where(SspDecision.trace_id == trace_id)
    if since is not None:
        query = query.where(SspDecision.at >= since)
    if until is not None:
        query = query.where(SspDecision.at < until)
    rows = list(session.scalars(query))
    if len(rows) > limit:
        rows = rows[:limit]
        return DecisionPage(rows, rows[-1].id)
    return DecisionPage(rows, None)


def recent_decisions(session: Session, *, asid: str | None = None, last: int = 20) -> list[SspDecision]:
    """The ``last`` most recent decisions, oldest first."""
    query = _involving(select(SspDecision).order_by(SspDecision.id.desc()).limit(last), asid)
    return list(reversed(session.scalars(query).all()))


def latest_decision_id(session: Session) -> int:
    """The id of the newest decision (0 when there is none): where following starts."""
    return session.scalar(select(func.max(SspDecision.id))) or 0


def decisions_between(session: Session, after: int, up_to: int, *, asid: str | None = None) -> list[SspDecision]:
    """Decisions with ``after`` < id <= ``up_to``, in id order."""
    query = select(SspDecision).where(SspDecision.id > after, SspDecision.id <= up_to)
    return list(session.scalars(_involving(query, asid).order_by(SspDecision.id)))


def follow_decisions(
    sessions: sessionmaker[Session], *, asid: str | None = None, wait: Callable[[], bool] | None = None,
) -> Iterator[list[SspDecision]]:
    """Batches of decisions recorded from now on, one batch (maybe empty) per poll, each read in a Session of
    its own. ``wait()`` is called between polls (it sleeps, and returns True to stop)."""
    return _follow(sessions, latest_decision_id, lambda s, after, top: decisions_between(s, after, top, asid=asid),
                   wait)


def _follow(
    sessions: sessionmaker[Session], latest: Callable[[Session], int],
    between: Callable[[Session, int, int], list[T]], wait: Callable[[], bool] | None,
) -> Iterator[list[T]]:
    """Rows appended from now on (by id): ``latest`` gives the newest id, ``between(s, after, up_to)`` the rows
    with after < id <= up_to. One batch (maybe empty) per poll, each read in a Session of its own."""
    with sessions() as session:
        last = latest(session)
    while True:
        with sessions() as session:
            top = latest(session)
            rows = between(session, last, top)
        yield rows
        last = max(last, top)
        if wait is not None and wait():
            return


# ---- Reading the registry's write audit ----------------------------------------------------------------------
# Events are read in id order (oldest first), paged by the ``after`` cursor, as the SSP decisions are.

RECORD_TYPES = ("organisation", "accredited_system", "message_handling_system", "data_sharing_agreement",
                "api_client", "directory", "ldif")  # the last two: whole-file imports (key: the file's name)
RECORD_ALIASES = {"org": "organisation", "as": "accredited_system", "mhs": "message_handling_system",
                  "agreement": "data_sharing_agreement", "client": "api_client"}
#: The JSON members that name an organisation in a record's before/after (writes.add_audit dumps with
#: json.dumps' default separators, so a member reads ``"ods_code": "A20047"``).
_ODS_MEMBERS = ("ods_code", "consumer_ods", "provider_ods")
_FILTERS = ("record_type", "record_key", "actor", "ods", "since", "until")


def parse_record(value: str) -> tuple[str | None, str | None]:
    """``TYPE``, ``TYPE:KEY`` or ``KEY`` -> (record type, record key). TYPE is one of RECORD_TYPES or an alias
    (``as``, ``mhs``, ``org``, ``agreement``, ``client``); anything else is a key (keys may hold ``:``)."""
    head, sep, rest = value.partition(":")
    kind = RECORD_ALIASES.get(head, head)
    if kind in RECORD_TYPES:
        return kind, (rest or None) if sep else None
    return None, value or None


def _write_filters(
    query: Select[AuditEvent], *, record_type: str | None, record_key: str | None, actor: str | None,
    ods: str | None, since: datetime | None, until: datetime | None,
) -> Select[AuditEvent]:
    if record_type is not None:
        query = query.where(AuditEvent.record_type == record_type)
    if record_key is not None:
        query = query.where(AuditEvent.record_key == record_key)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if ods is not None:
        code = formats.ods_code(ods, "ods")
        needles = [f'"{member}": "{code}"' for member in _ODS_MEMBERS]
        query = query.where(or_(*(column.contains(needle, autoescape=True)
                                  for column in (AuditEvent.before, AuditEvent.after) for needle in needles)))
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return query


def list_write_events(
    session: Session, *, record_type: str | None = None, record_key: str | None = None, actor: str | None = None,
    ods: str | None = None, since: datetime | None = None, until: datetime | None = None, after: int | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Registry writes in id order from ``after`` (exclusive), at most ``limit`` (who, what, which record, the
    record before and after as JSON text). ``ods``: events whose record, before or after, names that
    organisation (``ods_code``, or either side of an agreement). ``since`` inclusive, ``until`` exclusive."""
    query = _write_filters(select(AuditEvent).order_by(AuditEvent.id).limit(limit), record_type=record_type,
                           record_key=record_key, actor=actor, ods=ods, since=since, until=until)
    if after is not None:
        query = query.where(AuditEvent.id > after)
    return list(session.scalars(query))


def recent_write_events(session: Session, *, last: int = 20, **filters: Any) -> list[AuditEvent]:
    """The ``last`` most recent matching writes, oldest first (filters as list_write_events)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(last)
    query = _write_filters(query, **{k: filters.get(k) for k in _FILTERS})
    return list(reversed(session.scalars(query).all()))


def latest_write_event_id(session: Session) -> int:
    return session.scalar(select(func.max(AuditEvent.id))) or 0


def follow_write_events(
    sessions: sessionmaker[Session], *, wait: Callable[[], bool] | None = None, **filters: Any,
) -> Iterator[list[AuditEvent]]:
    """Batches of matching writes recorded from now on, as follow_decisions (filters as list_write_events;
    ``since``/``until`` apply too)."""
    def between(session: Session, after: int, up_to: int) -> list[AuditEvent]:
        query = select(AuditEvent).where(AuditEvent.id > after, AuditEvent.id <= up_to).order_by(AuditEvent.id)
        return list(session.scalars(_write_filters(query, **{k: filters.get(k) for k in _FILTERS})))

    return _follow(sessions, latest_write_event_id, between, wait)


def write_event_dict(row: AuditEvent) -> dict[str, Any]:
    """One write event as /api/changes and ``sds changes --json`` show it (before/after as JSON values)."""
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    return {
        "id": row.id, "at": at.isoformat().replace("+00:00", "Z"), "actor": row.actor, "action": row.action,
        "record_type": row.record_type, "record_key": row.record_key,
        "before": json.loads(row.before) if row.before else None,
        "after": json.loads(row.after) if row.after else None,
    }
