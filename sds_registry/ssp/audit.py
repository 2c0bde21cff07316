"""The SSP decision audit writer: decisions queue up in memory and a background thread inserts them in batches.

The hot path only does ``queue.put_nowait`` (about a microsecond). The writer thread waits ``linger``
seconds after the first decision of a batch, takes what has queued by then (up to ``batch`` rows) and
writes it with one executemany INSERT in its own transaction (one transaction per decision would cost the
worker a fifth of its CPU). If the
database is down, the batch is logged and dropped rather than blocking or growing without bound; if the
queue is full (``max_queued``), new decisions are counted in ``dropped`` and logged.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from sds_registry.models import SspDecision

log = logging.getLogger("sds.ssp.audit")
_LIMITS = {"trace_id": 64, "from_asid": 64, "to_asid": 64, "interaction_id": 255, "method": 10}
_STOP = object()


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
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(SspDecision), rows)
        except Exception:  # noqa: BLE001 - the audit must never take the proxy down
            log.exception("could not record %d SSP decisions", len(rows))


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
