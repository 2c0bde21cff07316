"""FHIR searches read on a db.ReadOnlySession: no transaction statements, rows committed by others seen at
once, the Connection back in the pool after every request, and ORM use on it still transactional."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from sds_registry.db import ReadOnlySession
from sds_registry.factories import create_practice
from sds_registry.models import AccreditedSystem

BASE = "/spine-directory/FHIR/R4"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code|"
SVC = "https://fhir.nhs.uk/Id/nhsServiceInteractionId|"
STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"


def _statements(app: Flask) -> list[str]:
    """Every statement the app's SQLite connections run from now on (new connections only: dispose first)."""
    engine = app.extensions["sds"]["engine"]
    engine.dispose()
    seen: list[str] = []

    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(seen.append)

    event.listen(engine, "connect", trace)
    return seen


def test_searches_send_no_transaction_statements(app: Flask, client: FlaskClient, session: Session,
                                                 database_url: str) -> None:
    practice = create_practice(session, 3)
    session.commit()
    seen = _statements(app) if database_url.startswith("sqlite") else None
    for path in (f"{BASE}/Endpoint?organization={ODS}{practice.ods_code}&identifier={SVC}{STRUCTURED}",
                 f"{BASE}/Device?organization={ODS}{practice.ods_code}&identifier={SVC}{METADATA}"):
        response = client.get(path)
        assert response.status_code == 200 and response.json is not None and response.json["total"] >= 1
    assert app.extensions["sds"]["engine"].pool.checkedout() == 0
    if seen is not None:
        selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 2
        assert not [s for s in seen if s.split()[0].upper() in ("BEGIN", "ROLLBACK", "COMMIT")], seen


def test_rows_committed_between_requests_are_seen(client: FlaskClient, session: Session) -> None:
    path = f"{BASE}/Endpoint?organization={ODS}{{ods}}&identifier={SVC}{STRUCTURED}"
    first = create_practice(session, 1)
    session.commit()
    assert client.get(path.format(ods=first.ods_code)).json["total"] == 1  # type: ignore[index]
    second = create_practice(session, 2)
    session.commit()
    assert client.get(path.format(ods=second.ods_code)).json["total"] == 1  # type: ignore[index]


def test_orm_use_is_transactional_and_closes(app: Flask, session: Session) -> None:
    create_practice(session, 4)
    session.commit()
    engine = app.extensions["sds"]["engine"]
    reader = ReadOnlySession(engine)
    try:
        assert reader.connection() is reader.get_bind()
        rows = reader.scalars(select(AccreditedSystem)).all()
        assert rows and reader.in_transaction()
        assert reader.connection() is reader.get_bind()  # the same Connection, inside the ORM's transaction
    finally:
        reader.close()
    assert engine.pool.checkedout() == 0
