"""Bulk seeding (sds seed --synthetic) stores the very records the registration services store for a practice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sds_registry.models import AuditEvent
from sds_registry.services import bulk
from sds_registry.services.synthetic import create_practice, practice_ods, seed_practices

_VARYING = {"id", "version", "created_at", "updated_at", "date_requested", "date_approved", "date_dns_approved"}


def _records(session: Session, ods: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for kind in (bulk.ORG, bulk.AS, bulk.MHS):
        for row in bulk.stored(session, kind, kind.table.c.ods_code == ods):
            out.append((kind.name, {k: v for k, v in row.items() if k not in _VARYING}))
    return sorted(out, key=repr)


def test_bulk_seeding_stores_what_the_services_store(session: Session) -> None:
    for n in (3, 4):  # with and without a consumer system
        nested = session.begin_nested()
        create_practice(session, n)
        through_services = _records(session, practice_ods(n))
        nested.rollback()
        nested = session.begin_nested()
        assert seed_practices(session, [n]) == 1
        assert seed_practices(session, [n]) == 0  # already there: skipped
        in_bulk = _records(session, practice_ods(n))
        nested.rollback()
        assert in_bulk == through_services and len(in_bulk) > 3


def test_bulk_seeding_records_one_audit_event(session: Session) -> None:
    before = session.scalar(select(func.count()).select_from(AuditEvent))
    assert seed_practices(session, [10, 11, 12]) == 3
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == (before or 0) + 1
