"""A SQLite database that has no room for a write: the write is refused with a clear error (HTTP 507 with an
OperationOutcome naming the cause; the CLI one line), nothing is half written or corrupted (``PRAGMA
integrity_check`` is ok), and reads go on; and bench/disk_full.py in short, on a real full tmpfs.

How "full" is made: ``PRAGMA max_page_count`` on every connection caps the database file at a few pages more
than it holds, so SQLite fails the write with SQLITE_FULL ("database or disk is full") - the very error, and
the same code path in SQLite's pager, as a disk with no free block (SQLite reports both as SQLITE_FULL). A
small tmpfs would need root to mount, and filling the machine's disk is not for a shared test run. The cap is
set by a "connect" listener on the app's engine (and, for the CLI, on every engine in this process): it only
configures SQLite; every part of the server runs as it does in production.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.disk_full import FHIR_ENDPOINT, provider, run
from sds_registry import create_app
from sds_registry.cli import main
from sds_registry.migrate import upgrade
from sds_registry.services.clients import create_client
from tests.unit.ssp.fixtures import METADATA

SPARE_PAGES = 3


@pytest.fixture
def full_app(tmp_path: Path) -> Iterator[tuple[Flask, str, Path]]:
    """The HTTP app on a migrated SQLite file holding one provider, capped at SPARE_PAGES pages more."""
    path = tmp_path / "full.sqlite3"
    url = f"sqlite:///{path}"
    upgrade(url)
    app = create_app({"database_url": url, "ldap_bind": "", "ssp_bind": ""})
    engine: Engine = app.extensions["sds"]["engine"]
    with Session(engine) as session:
        token = create_client(session, "full", admin=True)
        session.commit()
    client = app.test_client()
    first = client.post("/api/providers", json=provider(1), headers={"Authorization": f"Bearer {token}"})
    assert first.status_code == 201
    with sqlite3.connect(path) as conn:
        cap = conn.execute("PRAGMA page_count").fetchone()[0] + SPARE_PAGES

    def limit(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {cap}")

    event.listen(engine, "connect", limit)
    app.extensions["sds"]["read_pool"].dispose()
    engine.dispose()  # every connection from now on is capped
    yield app, token, path
    app.extensions["sds"]["read_pool"].dispose()
    engine.dispose()


def test_a_full_database_refuses_the_write_with_507_and_stays_whole(full_app: tuple[Flask, str, Path]) -> None:
    app, token, path = full_app
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    answers = [client.post("/api/providers", json=provider(n), headers=headers) for n in range(2, 40)]
    statuses = [a.status_code for a in answers]
    assert 507 in statuses, statuses
    refused = statuses.index(507)
    assert set(statuses[:refused]) <= {201} and set(statuses[refused:]) == {507}  # no 500, no half answer
    body = answers[refused].get_json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "INSUFFICIENT_STORAGE"
    assert issue["diagnostics"] == ("the registry database is full (database or disk is full): "
                                    "the write was not applied")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        asids = {row[0] for row in conn.execute("SELECT asid FROM accredited_systems")}
        mhs = {row[0] for row in conn.execute("SELECT ods_code FROM message_handling_systems")}
    accepted = {f"7{n:011d}" for n in range(1, refused + 2)}
    assert asids == accepted  # the refused registrations left no system ...
    assert mhs == {f"F{n:05d}" for n in range(1, refused + 2)}  # ... and no MHS record
    resolve = client.get("/api/resolve", query_string={"ods": "F00001", "interaction": METADATA})
    assert resolve.status_code == 200  # reads go on
    org = "https://fhir.nhs.uk/Id/ods-organization-code|F00001"
    svc = f"https://fhir.nhs.uk/Id/nhsServiceInteractionId|{METADATA}"
    search = client.get(FHIR_ENDPOINT, query_string={"organization": org, "identifier": svc},
                        headers={"X-Correlation-ID": "0f6d3c8e-8d0a-4f0e-9a8e-2b1b7c1d2e3f"})
    assert search.status_code == 200 and search.get_json()["total"] == 1


def test_the_cli_says_the_database_is_full_in_one_line(full_app: tuple[Flask, str, Path]) -> None:
    _app, _token, path = full_app
    with sqlite3.connect(path) as conn:
        cap = conn.execute("PRAGMA page_count").fetchone()[0]

    def limit(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {cap}")

    event.listen(Engine, "connect", limit)  # the CLI makes its own engine
    try:
        outputs = [CliRunner().invoke(main, ["token", "create", "--name", f"t{n}", "--admin"],
                                      env={"SDS_DATABASE_URL": f"sqlite:///{path}"}) for n in range(40)]
    finally:
        event.remove(Engine, "connect", limit)
    failed = [r for r in outputs if r.exit_code != 0]
    assert failed, [r.output for r in outputs]
    assert failed[0].exit_code == 1 and failed[0].exception is not None and isinstance(failed[0].exception, SystemExit)
    assert failed[0].output == ("Error: the registry database is full (database or disk is full): "
                                "the write was not applied\n")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


@pytest.mark.slow
def test_a_real_full_disk_under_sds_serve_refuses_writes_and_keeps_serving() -> None:
    """bench/disk_full.py in short: a tmpfs filled to ENOSPC under a running ``sds serve`` (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    report = run(size_mib=16, writes=15, folder=None)
    assert report.misses() == []
    assert report.refused and report.lookups["ldap 0"] == 15
