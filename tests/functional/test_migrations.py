"""Migrations: head matches the models (alembic check) on each backend, and downgrade/upgrade round-trips."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from sds_registry.db import Base, make_engine
from sds_registry.migrate import alembic_config, check, upgrade
from tests.conftest import _fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('migrations') / 'm.sqlite3'}"
    return _fresh_postgres_database(request.getfixturevalue("postgres_server_url"))


def test_upgrade_check_downgrade_upgrade(empty_database: str) -> None:
    from alembic import command

    upgrade(empty_database)
    check(empty_database)
    engine = make_engine(empty_database)
    try:
        assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
        command.downgrade(alembic_config(empty_database), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(empty_database)
        assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
    finally:
        engine.dispose()
