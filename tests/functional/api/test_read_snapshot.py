"""A reading request sees one snapshot of the database: a record deleted while it reads is read whole or not
at all, never as its row without its endpoints (bench/soak.py found that torn read on PostgreSQL)."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.engine import Engine

from sds_registry.db import begin_write, make_sessionmaker, read_snapshot
from sds_registry.services import directory
from sds_registry.services.registration import register_provider
from sds_registry.services.writes import CLI_ACTOR

STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"


def _register(db: Engine) -> str:
    with make_sessionmaker(db)() as session:
        begin_write(session)
        result = register_provider(session, {"ods_code": "S00001", "fqdn": "p.example.nhs.uk",
                                             "interactions": [STRUCTURED]}, CLI_ACTOR)
        session.commit()
        return result.message_handling_systems[0].unique_identifier


def _delete(db: Engine, uid: str) -> None:
    with make_sessionmaker(db)() as session:
        begin_write(session)
        row = directory.get_mhs(session, uid)
        session.delete(row)
        session.commit()


def test_a_read_snapshot_keeps_what_it_began_with(db: Engine) -> None:
    uid = _register(db)
    with make_sessionmaker(db)() as reader:
        read_snapshot(reader)
        assert directory.find_accredited_systems(reader, ods_code="S00001")  # the snapshot begins here
        _delete(db, uid)  # committed by another connection meanwhile
        found = directory.find_mhs(reader, ods_code="S00001", interaction_id=STRUCTURED)
        assert [(m.unique_identifier, list(m.endpoints)) for m in found] == [
            (uid, ["https://p.example.nhs.uk/S00001/STU3/1/gpconnect/structured"])]
    with make_sessionmaker(db)() as later:
        assert directory.find_mhs(later, ods_code="S00001", interaction_id=STRUCTURED) == []


def test_get_requests_read_a_snapshot_and_writes_do_not(app: Flask, db: Engine) -> None:
    with app.test_request_context("/api/mhs", method="GET"):
        from sds_registry.web import context

        assert context.session().info.get("sds_read_snapshot") is True
    with app.test_request_context("/api/mhs", method="POST"):
        from sds_registry.web import context

        assert not context.session().info.get("sds_read_snapshot")
