"""Migration 0002_client_lifecycle on a database holding clients from 0001: a revoked client keeps its row and
gets revoked_at, a live one stays live, and a revoked client's name may be taken again. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from sds_registry.cli import main
from sds_registry.db import make_engine
from sds_registry.migrate import upgrade
from tests.conftest import _fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.sqlite3'}"
    return _fresh_postgres_database(request.getfixturevalue("postgres_server_url"))


def test_upgrade_keeps_clients_and_frees_revoked_names(empty_url: str) -> None:
    upgrade(empty_url, "0001")
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO api_clients (name, token_hash, admin, revoked, created_at) VALUES "
                "('old', :h1, :t, :t, CURRENT_TIMESTAMP), ('live', :h2, :t, :f, CURRENT_TIMESTAMP)"),
                {"h1": "1" * 64, "h2": "2" * 64, "t": True, "f": False})
        upgrade(empty_url)
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT name, revoked_at FROM api_clients")).all())
        assert rows["old"] is not None and rows["live"] is None
    finally:
        engine.dispose()
    env = {"SDS_DATABASE_URL": empty_url}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "check"], env=env).exit_code == 0
    assert runner.invoke(main, ["token", "create", "--name", "old", "--admin"], env=env).exit_code == 0
    taken = runner.invoke(main, ["token", "create", "--name", "live", "--admin"], env=env)
    assert taken.exit_code == 1 and "already exists" in taken.output
