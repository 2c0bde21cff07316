"""sds import --mode create|upsert|sync, truthful messages, and a lossless export/import round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from sds_registry.cli import main
from sds_registry.db import Base
from sds_registry.models import AccreditedSystem, AuditEvent, DataSharingAgreement, MessageHandlingSystem, Organisation
from tests.support.terminal import on_a_terminal

GPC = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
#: History and catalogue, not the directory's data.
NOT_DATA = {"audit_events", "ssp_decisions", "alembic_version", "interactions", "api_clients", "api_client_ods"}
NATURAL = {"organisations": "ods_code", "accredited_systems": "asid", "message_handling_systems": "unique_identifier"}


def run(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"SDS_DATABASE_URL": database_url}, catch_exceptions=False)


def dump(engine: Engine) -> dict[str, list[str]]:
    """Every data table's rows, surrogate ids and timestamps left out (foreign keys as the parent's key)."""
    keys: dict[str, dict[int, str]] = {}
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in NOT_DATA:
                continue
            rows = [dict(r) for r in conn.execute(select(table)).mappings()]
            if table.name in NATURAL:
                keys[table.name] = {r["id"]: r[NATURAL[table.name]] for r in rows}
            for r in rows:
                for fk in table.foreign_keys:
                    r[fk.parent.name] = keys[fk.column.table.name][r[fk.parent.name]]
                for name in ("id", "created_at", "updated_at"):
                    r.pop(name, None)
            out[table.name] = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    return out


def empty_registry(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in NOT_DATA or table.name == "audit_events":
                conn.execute(table.delete())


def audit_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(model)) or 0)


FLAGGED = {
    "organisations": [{"ods_code": "F12345", "name": "Lenient Practice"}],
    "message_handling_systems": [{
        "ods_code": "F12345", "party_key": "F12345-123456", "interaction_id": GPC, "cpa_id": "flagged0001",
        "endpoints": ["https://gpc.example.nhs.uk/F12345/STU3/1/gpconnect/"]}],  # trailing slash: flagged
}


UNKNOWN_ATTRIBUTE = """dn: uniqueIdentifier=012345678905,ou=Services,o=nhs
objectClass: top
objectClass: nhsAs
uniqueIdentifier: 012345678905
nhsIDCode: F12345
nhsMHSPartyKey: F12345-123456
nhsAsSvcIA: urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1
nhsNotAThing: kept only as a flag
"""


def _directory(database_url: str, tmp_path: Path) -> None:
    """Seed, three synthetic practices and lenient-flagged records (a value breaking a rule; an attribute we
    do not hold, which no export can re-derive)."""
    assert run(database_url, "seed", "--synthetic", "3").exit_code == 0
    flagged = tmp_path / "flagged.json"
    flagged.write_text(json.dumps(FLAGGED))
    result = run(database_url, "import", "--lenient", str(flagged))
    assert result.exit_code == 0, result.output
    assert "1 record(s) stored with flags" in result.output
    unknown = tmp_path / "unknown.ldif"
    unknown.write_text(UNKNOWN_ATTRIBUTE)
    result = run(database_url, "import", "--lenient", str(unknown))
    assert result.exit_code == 0 and "1 record(s) stored with flags" in result.output, result.output


def test_json_round_trip_loses_nothing(db: Engine, database_url: str, tmp_path: Path) -> None:
    _directory(database_url, tmp_path)
    before = dump(db)
    assert len(before["data_sharing_agreements"]) == 4
    assert any("no-trailing-slash" in r for r in before["message_handling_systems"])
    assert any("nhsNotAThing:unknown-attribute" in r for r in before["accredited_systems"])
    exported = tmp_path / "dump.json"
    assert run(database_url, "export", "-o", str(exported)).exit_code == 0
    empty_registry(db)
    strict = run(database_url, "import", str(exported))  # a flagged record needs --lenient, and says so
    assert strict.exit_code == 1 and "(rule: lenient-flags)" in strict.output
    assert "would have created" in strict.output and " created," not in strict.output
    result = run(database_url, "import", "--lenient", str(exported))
    assert result.exit_code == 0, result.output
    assert dump(db) == before


def test_ldif_round_trip_with_the_agreements_side_file(db: Engine, database_url: str, tmp_path: Path) -> None:
    _directory(database_url, tmp_path)
    before = dump(db)
    exported = tmp_path / "dump.ldif"
    assert run(database_url, "export", "--format", "ldif", "-o", str(exported)).exit_code == 0
    side = tmp_path / "dump.agreements.json"
    assert len(json.loads(side.read_text())["data_sharing_agreements"]) == 4
    empty_registry(db)
    result = run(database_url, "import", "--lenient", str(exported))  # reads dump.agreements.json beside it
    assert result.exit_code == 0, result.output
    assert "dataSharingAgreement: 4 created" in result.output
    assert dump(db) == before
    elsewhere = tmp_path / "agreements.json"
    side.rename(elsewhere)
    empty_registry(db)
    assert run(database_url, "import", "--lenient", str(exported)).exit_code == 0
    assert count(db, DataSharingAgreement) == 0  # no side file, none given
    assert not any("unknown-attribute" in r for r in dump(db)["accredited_systems"])  # that flag is the side file's
    empty_registry(db)
    strict = run(database_url, "import", "--with-agreements", str(elsewhere), str(exported))
    assert strict.exit_code == 1 and "(rule: lenient-flags)" in strict.output
    empty_registry(db)
    assert run(database_url, "import", "--lenient", "--with-agreements", str(elsewhere), str(exported)).exit_code == 0
    assert dump(db) == before


@pytest.mark.parametrize("fmt", ["json", "ldif"])
def test_reimporting_the_same_file_is_a_no_op(db: Engine, database_url: str, tmp_path: Path, fmt: str) -> None:
    assert run(database_url, "seed", "--synthetic", "2").exit_code == 0
    exported = tmp_path / f"dump.{fmt}"
    assert run(database_url, "export", "--format", fmt, "-o", str(exported)).exit_code == 0
    before, audited = dump(db), audit_rows(db)
    again = run(database_url, "import", str(exported))
    assert again.exit_code == 1
    assert "already exists in the registry" in again.output and "--mode upsert" in again.output
    assert "nothing was stored" in again.output and "would have created" in again.output
    for mode in ("upsert", "sync"):
        result = run(database_url, "import", "--mode", mode, str(exported))
        assert result.exit_code == 0, result.output
        assert " 0 created, 0 updated, 0 deleted" in result.output
        assert " 1 created" not in result.output and " 1 updated" not in result.output
    assert dump(db) == before and audit_rows(db) == audited


def test_upsert_creates_and_updates_sync_also_deletes_in_scope(db: Engine, database_url: str, tmp_path: Path) -> None:
    assert run(database_url, "seed", "--synthetic", "6").exit_code == 0
    exported = tmp_path / "all.json"
    run(database_url, "export", "-o", str(exported))
    document = json.loads(exported.read_text())
    mine = {"P00003"}  # one synthetic practice (it has a provider and a consumer system)
    part = {s: [r for r in rows if r.get("ods_code") in mine] for s, rows in document.items()
            if s != "data_sharing_agreements"}
    part["organisations"][0]["name"] = "Renamed Practice"
    consumer = next(r for r in part["accredited_systems"] if r["asid"].startswith("8"))
    part["accredited_systems"].remove(consumer)
    part["organisations"].append({"ods_code": "P00099", "name": "Brand New Practice"})
    edited = tmp_path / "part.json"
    edited.write_text(json.dumps(part))
    systems, audited = count(db, AccreditedSystem), audit_rows(db)

    upsert = run(database_url, "import", "--mode", "upsert", str(edited))
    assert upsert.exit_code == 0, upsert.output
    assert "organisations: 1 created, 1 updated, 0 deleted" in upsert.output
    assert count(db, AccreditedSystem) == systems  # upsert never deletes
    assert audit_rows(db) == audited + 2  # one row per record written
    with db.connect() as conn:
        assert conn.scalar(select(Organisation.name).where(Organisation.ods_code == "P00003")) == "Renamed Practice"
        assert conn.scalar(select(Organisation.version).where(Organisation.ods_code == "P00003")) == 2

    other = dump(db)["message_handling_systems"]
    sync = run(database_url, "import", "--mode", "sync", str(edited))
    assert sync.exit_code == 0, sync.output
    assert "accredited_systems: 0 created, 0 updated, 1 deleted" in sync.output
    assert count(db, AccreditedSystem) == systems - 1
    with db.connect() as conn:
        assert conn.scalar(select(AccreditedSystem.id).where(AccreditedSystem.asid == consumer["asid"])) is None
        deleted = conn.scalar(select(AuditEvent.record_key).where(AuditEvent.action == "delete"))
    assert deleted == consumer["asid"]
    assert dump(db)["message_handling_systems"] == other  # nothing outside the file's ODS codes changed
    assert count(db, MessageHandlingSystem) > 0 and count(db, Organisation) == 12 + 6 + 1


def test_sync_and_upsert_refuse_registration_requests(db: Engine, database_url: str, tmp_path: Path) -> None:
    requests = tmp_path / "providers.json"
    requests.write_text(json.dumps({"providers": [{"ods_code": "A12345", "fqdn": "gpc.example.nhs.uk"}]}))
    result = run(database_url, "import", "--mode", "sync", str(requests))
    assert result.exit_code == 1 and "REJECTED providers[0]" in result.output and "registration" in result.output


def test_json_errors_name_the_record_index_and_line(db: Engine, database_url: str, tmp_path: Path) -> None:
    systems = [{"asid": f"{i:012d}", "ods_code": "A12345", "party_key": "A12345-123456", "interactions": [GPC]}
               for i in range(1, 14)]
    systems[12]["asid"] = "12"
    bad = tmp_path / "bad.json"
    bad.write_text("{\n \"accredited_systems\": [\n" + ",\n".join(json.dumps(s) for s in systems) + "\n ]\n}\n")
    result = run(database_url, "import", str(bad))
    assert result.exit_code == 1
    assert "REJECTED accredited_systems[12] (line 15) asid=12: asid:" in result.output
    assert "(rule: asid-format)" in result.output or "(rule: " in result.output
    assert "would have created 12" in result.output and "nothing was stored" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text('{\n "organisations": [\n  {"ods_code": "A12345", "name": }\n ]\n}\n')
    result = run(database_url, "import", str(broken))
    assert result.exit_code == 1 and "line 3 column" in result.output


def test_progress_bars_onlyon_a_terminal(db: Engine, database_url: str, tmp_path: Path) -> None:
    seeded = run(database_url, "seed", "--synthetic", "3")
    assert "[" not in seeded.output and "%" not in seeded.output  # not a terminal: no bar
    exported = tmp_path / "dump.json"
    assert b"exporting" in on_a_terminal(database_url, "export", "-o", str(exported))
    assert b"100%" in on_a_terminal(database_url, "import", "--mode", "upsert", str(exported))


def test_upsert_of_a_system_that_drops_a_middle_interaction(db: Engine, database_url: str, tmp_path: Path) -> None:
    assert run(database_url, "seed", "--synthetic", "1").exit_code == 0
    exported = tmp_path / "all.json"
    run(database_url, "export", "-o", str(exported))
    document = json.loads(exported.read_text())
    system = next(r for r in document["accredited_systems"] if len(r["interactions"]) >= 3)
    kept = system["interactions"][:1] + system["interactions"][2:]  # the rest move up a position
    system["interactions"] = kept
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({"accredited_systems": [system]}))
    with db.connect() as conn:
        before = conn.scalar(select(AccreditedSystem.version).where(AccreditedSystem.asid == system["asid"]))
    upsert = run(database_url, "import", "--mode", "upsert", str(edited))
    assert upsert.exit_code == 0, upsert.output
    assert "accredited_systems: 0 created, 1 updated, 0 deleted" in upsert.output
    with db.connect() as conn:
        after = conn.scalar(select(AccreditedSystem.version).where(AccreditedSystem.asid == system["asid"]))
    assert after == before + 1
    again = tmp_path / "again.json"
    run(database_url, "export", "-o", str(again))
    stored = next(r for r in json.loads(again.read_text())["accredited_systems"] if r["asid"] == system["asid"])
    assert stored["interactions"] == kept
