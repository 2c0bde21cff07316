"""The test fixtures keep tests independent: savepoint sessions leave nothing behind, factories restart."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sds_registry.models import AccreditedSystem, Organisation
from sds_registry.services import directory
from sds_registry.services.synthetic import create_practice
from tests.factories import OrganisationFactory, ProviderFactory


def _count(session: Session, model: type[AccreditedSystem] | type[Organisation]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_starts_empty_with_fresh_sequences(session: Session, run: int) -> None:
    """Two tests writing the same factory records: either would fail on the other's leftovers, in any order."""
    assert _count(session, AccreditedSystem) == 0
    registration = ProviderFactory.create(session=session)
    session.commit()  # releases a SAVEPOINT only: rolled back with the test
    system = registration.accredited_system
    assert (system.asid, system.ods_code, len(registration.message_handling_systems)) == ("910000000000", "Z00000", 2)
    assert _count(session, AccreditedSystem) == 1


def test_commit_is_not_seen_by_other_connections(session: Session, engine: Engine) -> None:
    OrganisationFactory.create(session=session)
    session.commit()
    with engine.connect() as other:
        assert other.scalar(select(func.count()).select_from(Organisation)) == 0
    assert _count(session, Organisation) == 1


def test_nested_savepoints_roll_back_alone(session: Session) -> None:
    """SQLite needs the pysqlite workaround (make_engine's) for this; PostgreSQL does it natively."""
    OrganisationFactory.create(session=session)
    nested = session.begin_nested()
    OrganisationFactory.create(session=session)
    assert _count(session, Organisation) == 2
    nested.rollback()
    assert [o.ods_code for o in session.scalars(select(Organisation))] == ["Z00000"]


def test_synthetic_practice_through_the_services(session: Session) -> None:
    practice = create_practice(session, 3)
    session.commit()
    assert (practice.ods_code, practice.asid, practice.party_key) == ("P00003", "700000000003", "P00003-800003")
    systems = directory.find_accredited_system_views(session, ods_code="P00003")
    assert sorted(s.asid for s in systems) == ["700000000003", "800000000003"]
