"""Shared fixtures: a migrated database per backend (SQLite file and a real PostgreSQL), the app, a client.

Tests that touch the database run once per backend, in any order (pytest-randomly), each alone as well:
- ``session``: service-layer tests in this process. Everything is rolled back after the test (savepoints).
- ``db`` / ``committed_session``: rows committed for real, for tests whose app, servers or subprocesses read
  them on other connections; every table is emptied after the test.
Factory sequences (tests/factories.py) restart in every test. Nothing here may depend on another test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from sds_registry import create_app
from sds_registry.db import WRITE_OPTION, Base, begin_write, make_engine, make_sessionmaker
from sds_registry.migrate import sync_catalogue, upgrade
from tests.factories import reset_sequences
from tests.support.postgres import TempPostgres

IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ["sqlite", "postgresql"]

# Hypothesis draws from its own unseeded Random (pytest-randomly does not seed it) and replays failures kept in
# .hypothesis/. Under CI each property test runs fixed examples derived from its own code instead: the same in
# every run and in any order, so a red build reruns red. Locally the default profile keeps exploring.
hypothesis.settings.register_profile("ci", derandomize=True, database=None)
if IN_CI:
    hypothesis.settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _factory_sequences_restart() -> None:
    """Every test sees factory sequences from 0, whatever ran before it."""
    reset_sequences()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("SDS_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        server = TempPostgres()
        url = server.start()
    except Exception as exc:  # noqa: BLE001 - any failure to start means "no PostgreSQL here"
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL available: {exc}")
    try:
        yield url
    finally:
        server.stop()


def _fresh_postgres_database(server_url: str) -> str:
    import psycopg

    name = f"sds_test_{uuid.uuid4().hex[:10]}"
    url = make_url(server_url)
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database or "postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated (alembic upgrade head) database URL, one per backend for the whole run."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "sds.sqlite3"
        url = f"sqlite:///{path}"
    else:
        url = _fresh_postgres_database(request.getfixturevalue("postgres_server_url"))
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def _empty_tables(eng: Engine) -> None:
    with eng.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        if eng.dialect.name == "postgresql":
            conn.execute(text("SELECT 1"))


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    """The engine, for rows committed for real: the catalogue synced before the test, every table emptied after.

    For tests whose app, servers or subprocesses read on other connections; otherwise use ``session``.
    """
    with Session(engine) as s:
        begin_write(s)  # read-then-write: take SQLite's write lock first (other processes may be writing)
        sync_catalogue(s)
        s.commit()
    try:
        yield engine
    finally:
        _empty_tables(engine)


@pytest.fixture
def committed_session(db: Engine) -> Iterator[Session]:
    """A Session on ``db``; commit what other connections (the app, a server) must see."""
    factory = make_sessionmaker(db)
    with factory() as s:
        yield s


@pytest.fixture
def session(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Session]:
    """A Session whose work is all rolled back after the test, for tests on the service layer in this process.

    SQLAlchemy 2's "Joining a Session into an External Transaction": one connection, an outer transaction,
    the Session joined with join_transaction_mode="create_savepoint", so its commit() and rollback() act on
    SAVEPOINTs and the outer transaction is rolled back at the end. Nothing it writes reaches another
    connection: tests with the app, a server or a subprocess use ``db`` and ``committed_session``. SQLite needs
    SQLAlchemy's documented pysqlite workaround for SAVEPOINT (driver in autocommit, BEGIN emitted on begin):
    make_engine installs it on every SQLite engine (sds_registry.db._sqlite_pragmas and _sqlite_begin).
    """
    if "db" in request.fixturenames:
        pytest.fail("'session' rolls back and holds its connection's write lock: with 'db' (the app, servers) "
                    "use 'committed_session'", pytrace=False)
    with engine.connect() as connection:
        # SQLite: BEGIN IMMEDIATE (the write lock up front), as a writing Session does after begin_write.
        outer = connection.execution_options(**{WRITE_OPTION: True}).begin()
        try:
            with Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False,
                         autoflush=True) as s:
                sync_catalogue(s)
                s.commit()
                yield s
        finally:
            outer.rollback()


@pytest.fixture
def app(db: Engine, database_url: str) -> Iterator[Flask]:
    application = create_app({"database_url": database_url, "ldap_bind": "", "ssp_bind": ""})  # facades not running
    application.config["TESTING"] = True
    yield application
    application.extensions["sds"]["read_pool"].dispose()
    application.extensions["sds"]["engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true a skipped test is a failed test: CI must exercise everything."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true: {report.longrepr}"


def make_token(engine: Engine, name: str, *, admin: bool = False, ods: tuple[str, ...] = ()) -> str:
    from sds_registry.services.clients import create_client

    with Session(engine) as s:
        token = create_client(s, name, admin=admin, ods_codes=ods)
        s.commit()
    return token


@pytest.fixture
def admin_token(db: Engine) -> str:
    return make_token(db, "test-admin", admin=True)


@pytest.fixture
def admin_headers(admin_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token}"}


SEED_FILE = Path(__file__).resolve().parent.parent / "sds_registry" / "seed_data" / "directory.json"


@pytest.fixture
def seeded(db: Engine) -> Engine:
    """The sample directory from seed_data/, loaded through the same path as 'sds seed'."""
    import json

    from sds_registry.services.transfer import import_directory

    with Session(db) as s:
        report = import_directory(s, json.loads(SEED_FILE.read_text()))
        assert report.ok, report.lines()
        s.commit()
    return db


@pytest.fixture(scope="session")
def postgres_engine(postgres_server_url: str) -> Iterator[Engine]:
    """A migrated PostgreSQL database alone, for the few tests about PostgreSQL-only behaviour."""
    url = _fresh_postgres_database(postgres_server_url)
    upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()
