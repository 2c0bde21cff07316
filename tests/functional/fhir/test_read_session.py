"""FHIR searches read on a db.ReadConnection: no transaction statements, rows committed by others seen at once,
the connection back in its pool after every request (on a SQLite file, the ReadPool's own idle connections,
dropped when the engine is disposed)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from sds_registry.db import ReadPool
from sds_registry.services.accredited_systems import create_accredited_system
from sds_registry.services.mhs import create_mhs
from sds_registry.services.writes import CLI_ACTOR

BASE = "/spine-directory/FHIR/R4"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code|"
SVC = "https://fhir.nhs.uk/Id/nhsServiceInteractionId|"
STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"


def _practice(session: Session, ods: str) -> str:
    """One provider system and its MHS record, with explicit values derived from ``ods``."""
    create_accredited_system(session, {
        "asid": f"90000000{ods[-4:]}", "ods_code": ods, "party_key": f"{ods}-800001", "manufacturer_org": "YGM24",
        "interactions": [STRUCTURED, METADATA]}, CLI_ACTOR)
    create_mhs(session, {
        "ods_code": ods, "party_key": f"{ods}-800001", "interaction_id": STRUCTURED,
        "endpoints": [f"https://{ods.lower()}.example.nhs.uk/{ods}/STU3/1"]}, CLI_ACTOR)
    session.commit()
    return ods


def _statements(app: Flask) -> list[str]:
    """Every statement the app's SQLite connections run from now on (new connections only: dispose first)."""
    engine = app.extensions["sds"]["engine"]
    engine.dispose()
    seen: list[str] = []

    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(seen.append)

    event.listen(engine, "connect", trace)
    return seen


def test_searches_send_no_transaction_statements(app: Flask, client: FlaskClient, committed_session: Session,
                                                 database_url: str) -> None:
    ods = _practice(committed_session, "A10003")
    seen = _statements(app) if database_url.startswith("sqlite") else None
    for path in (f"{BASE}/Endpoint?organization={ODS}{ods}&identifier={SVC}{STRUCTURED}",
                 f"{BASE}/Device?organization={ODS}{ods}&identifier={SVC}{METADATA}"):
        response = client.get(path)
        assert response.status_code == 200 and response.json is not None and response.json["total"] == 1
    assert app.extensions["sds"]["engine"].pool.checkedout() == 0
    if seen is not None:
        selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 2
        assert not [s for s in seen if s.split()[0].upper() in ("BEGIN", "ROLLBACK", "COMMIT")], seen


def test_rows_committed_between_requests_are_seen(client: FlaskClient, committed_session: Session) -> None:
    path = f"{BASE}/Endpoint?organization={ODS}{{ods}}&identifier={SVC}{STRUCTURED}"
    first = _practice(committed_session, "A10001")
    assert client.get(path.format(ods=first)).json["total"] == 1  # type: ignore[index]
    second = _practice(committed_session, "A10002")
    assert client.get(path.format(ods=second)).json["total"] == 1  # type: ignore[index]


def test_read_pool_reuses_sqlite_connections_and_drops_them_on_dispose(app: Flask, client: FlaskClient,
                                                                      committed_session: Session,
                                                                      database_url: str) -> None:
    ods = _practice(committed_session, "A10005")
    path = f"{BASE}/Endpoint?organization={ODS}{ods}&identifier={SVC}{STRUCTURED}"
    pool: ReadPool = app.extensions["sds"]["read_pool"]
    engine = app.extensions["sds"]["engine"]
    assert client.get(path).json["total"] == 1  # type: ignore[index]
    if not database_url.startswith("sqlite"):
        assert not pool._idle and engine.pool.checkedout() == 0  # SQLAlchemy's pool, as any Connection
        return
    [kept] = pool._idle
    assert client.get(path).json["total"] == 1  # type: ignore[index]
    assert list(pool._idle) == [kept] and engine.pool.checkedout() == 0
    engine.dispose()
    assert client.get(path).json["total"] == 1  # type: ignore[index]
    [fresh] = pool._idle
    assert fresh is not kept
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        kept.execute("SELECT 1")


def test_read_pool_does_not_keep_a_connection_whose_read_failed(app: Flask, database_url: str) -> None:
    pool: ReadPool = app.extensions["sds"]["read_pool"]
    with pytest.raises(Exception, match="no_such_table"), pool.connect() as reader:  # noqa: B017 - the driver's
        reader.cursor().execute("SELECT * FROM no_such_table")
    assert not pool._idle and app.extensions["sds"]["engine"].pool.checkedout() == 0
    with pool.connect() as reader:
        cursor = reader.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchall() == [(1,)]
        cursor.close()
    assert len(pool._idle) == (1 if database_url.startswith("sqlite") else 0)
