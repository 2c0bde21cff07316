"""Migrations: head matches the models (alembic check) on each backend, and downgrade/upgrade round-trips."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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


def test_a_new_sqlite_database_takes_8_kib_pages_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    from sds_registry.db import SQLITE_PAGE_BYTES

    new, old = tmp_path / "new.sqlite3", tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as made:  # a database made before: 4 KiB pages, in WAL mode
        made.execute("PRAGMA page_size=4096")
        made.execute("PRAGMA journal_mode=WAL")
        made.execute("CREATE TABLE before (a)")
    for path in (new, old):
        upgrade(f"sqlite:///{path}")
    sizes = {}
    for path in (new, old):
        with sqlite3.connect(path) as c:
            sizes[path.name] = c.execute("PRAGMA page_size").fetchone()[0]
            assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sizes == {"new.sqlite3": SQLITE_PAGE_BYTES, "old.sqlite3": 4096} and SQLITE_PAGE_BYTES == 8192
