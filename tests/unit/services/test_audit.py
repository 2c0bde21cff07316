"""services.audit's queries: SSP decisions (filters, pages, the recent ones, following) and the write audit."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from sds_registry.models import AuditEvent, SspDecision
from sds_registry.services import audit

A, B, C = "200000000001", "200000000002", "200000000003"


def _decision(at_hour: int, sender: str, receiver: str, trace: str) -> SspDecision:
    return SspDecision(at=datetime(2026, 1, 31, at_hour, tzinfo=UTC), from_asid=sender, to_asid=receiver,
                       trace_id=trace, outcome="ALLOWED", status=200)


def test_decisions_filtered_and_paged(session: Session) -> None:
    session.add_all([_decision(9, A, B, "t1"), _decision(10, B, C, "t2"), _decision(11, C, A, "t3"),
                     _decision(12, B, A, "t4")])
    session.flush()
    first = audit.list_decisions(session, asid=A, limit=2)
    assert [d.trace_id for d in first.items] == ["t1", "t3"] and first.after is not None
    second = audit.list_decisions(session, asid=A, limit=2, after=first.after)
    assert [d.trace_id for d in second.items] == ["t4"] and second.after is None
    window = audit.list_decisions(session, since=datetime(2026, 1, 31, 10, tzinfo=UTC),
                                  until=datetime(2026, 1, 31, 12, tzinfo=UTC))
    assert [d.trace_id for d in window.items] == ["t2", "t3"]
    assert [d.trace_id for d in audit.list_decisions(session, trace_id="t2").items] == ["t2"]
    assert [d.trace_id for d in audit.recent_decisions(session, asid=B, last=2)] == ["t2", "t4"]
    top = audit.latest_decision_id(session)
    assert [d.trace_id for d in audit.decisions_between(session, top - 2, top, asid=C)] == ["t3"]


def test_follow_yields_only_decisions_recorded_after_it_started(committed_session: Session) -> None:
    committed_session.add(_decision(9, A, B, "before"))
    committed_session.commit()
    bind = committed_session.get_bind()
    polls = audit.follow_decisions(sessionmaker(bind=bind), asid=B)
    assert next(polls) == []
    committed_session.add_all([_decision(10, A, B, "mine"), _decision(11, A, C, "not mine")])
    committed_session.commit()
    assert [d.trace_id for d in next(polls)] == ["mine"]
    polls.close()


def test_write_events_by_record(session: Session) -> None:
    at = datetime(2026, 1, 31, 9, tzinfo=UTC)
    session.add_all([
        AuditEvent(at=at, actor="cli:seed", action="create", record_type="mhs", record_key="X:1", after="{}"),
        AuditEvent(at=at, actor="client-a", action="update", record_type="mhs", record_key="X:1", before="{}",
                   after='{"a": 1}'),
        AuditEvent(at=at, actor="client-a", action="create", record_type="as", record_key="200000000001"),
    ])
    session.flush()
    history = audit.list_write_events(session, record_type="mhs", record_key="X:1")
    assert [(e.actor, e.action, e.before, e.after) for e in history] == [
        ("cli:seed", "create", None, "{}"), ("client-a", "update", "{}", '{"a": 1}')]
    assert [e.record_type for e in audit.list_write_events(session, actor="client-a")] == ["mhs", "as"]
    assert len(audit.list_write_events(session, limit=1)) == 1
