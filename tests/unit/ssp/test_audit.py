"""The audit writer (batched background inserts) and ``follow`` (sds audit --follow)."""

from __future__ import annotations

import io
import threading
import time

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from sds_registry.config import load_settings
from sds_registry.models import SspDecision
from sds_registry.services.audit import AuditWriter, decision_row
from sds_registry.ssp.follow import follow


def _row(trace: str, sender: str = "100000000001", outcome: str = "ALLOWED") -> dict[str, object]:
    return decision_row(trace_id=trace, from_asid=sender, to_asid="200000000001", interaction_id="urn:x",
                        method="GET", target_url="https://p.test/x", outcome=outcome, status=200,
                        provider_status=200, latency_ms=2.25)


def _count(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(SspDecision)) or 0)


def test_writer_batches_and_flushes(db: Engine) -> None:
    writer = AuditWriter(db, batch=50)
    try:
        for i in range(420):
            writer.record(_row(f"t{i}"))
        writer.flush()
        assert _count(db) == 420
    finally:
        writer.close()


def test_writer_cuts_header_values_to_their_columns(db: Engine) -> None:
    writer = AuditWriter(db)
    try:
        writer.record(decision_row(trace_id="x" * 500, from_asid="1" * 100, to_asid="", interaction_id="i" * 400,
                                   method="VERYLONGMETHOD", target_url="u" * 5000, outcome="T", status=400))
        writer.flush()
    finally:
        writer.close()
    with db.connect() as conn:
        row = conn.execute(select(SspDecision)).one()
    assert (len(row.trace_id), len(row.from_asid), row.to_asid, len(row.interaction_id), row.method) == (
        64, 64, None, 255, "VERYLONGME")
    assert len(row.target_url) == 5000


def test_a_full_queue_drops_instead_of_blocking(db: Engine) -> None:
    writer = AuditWriter(db, max_queued=1)
    gate = threading.Event()
    original = writer._write

    def slow(rows: list[dict[str, object]]) -> None:
        gate.wait(5)
        original(rows)

    writer._write = slow  # type: ignore[method-assign]
    try:
        writer.record(_row("a"))
        time.sleep(0.05)  # the thread has taken "a" and waits at the gate
        writer.record(_row("b"))
        started = time.perf_counter()
        writer.record(_row("c"))
        assert time.perf_counter() - started < 0.05
        assert writer.dropped == 1
    finally:
        gate.set()
        writer.flush()
        writer.close()
    assert _count(db) == 2


def test_a_failed_batch_is_logged_and_the_writer_goes_on(db: Engine) -> None:
    writer = AuditWriter(db)
    try:
        writer.record({"outcome": None})  # NOT NULL violation: this batch is lost
        writer.flush()
        writer.record(_row("after"))
        writer.flush()
    finally:
        writer.close()
    assert _count(db) == 1


def test_follow_prints_new_decisions(db: Engine, database_url: str) -> None:
    with db.begin() as conn:
        conn.execute(insert(SspDecision), [_row("old")])
    out = io.StringIO()
    stop = threading.Event()
    thread = threading.Thread(target=follow, args=(load_settings({"database_url": database_url}, environ={}),),
                              kwargs={"asid": "100000000001", "interval": 0.05, "out": out, "stop": stop})
    thread.start()
    try:
        time.sleep(0.3)
        with db.begin() as conn:
            conn.execute(insert(SspDecision), [_row("new-1"), _row("other", sender="100000000009"),
                                               _row("new-2", outcome="ASID_CHECK_FAILED_MESSAGESENDER_1")])
        deadline = time.monotonic() + 5
        while out.getvalue().count("\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "trace=new-1" in lines[0] and " 200 ALLOWED from=100000000001 to=200000000001 GET urn:x " in lines[0]
    assert lines[0].endswith("provider=200 2.2ms https://p.test/x")
    assert "ASID_CHECK_FAILED_MESSAGESENDER_1" in lines[1] and "trace=new-2" in lines[1]
