"""The sds command: db upgrade, seed (idempotent), resolve, tokens, JSON import/export, serve."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sds_registry.cli import main
from sds_registry.models import AccreditedSystem, DataSharingAgreement, MessageHandlingSystem, Organisation
from tests.support.serving import sds_serve

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"


def run(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"SDS_DATABASE_URL": database_url}, catch_exceptions=False)


def rows(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) or 0  # type: ignore[return-value]
                     for m in (Organisation, AccreditedSystem, MessageHandlingSystem))


def test_upgrade_seed_is_idempotent_and_resolve(db: Engine, database_url: str) -> None:
    assert run(database_url, "db", "upgrade").exit_code == 0
    first = run(database_url, "seed", "--synthetic", "2")
    assert first.exit_code == 0, first.output
    after_first = rows(db)
    second = run(database_url, "seed", "--synthetic", "2")
    assert second.exit_code == 0
    assert "0 created, 12 already present" in second.output
    assert "synthetic practices: 0 added, 2 already present" in second.output
    assert rows(db) == after_first
    resolved = run(database_url, "resolve", "A20047", METADATA)
    assert resolved.exit_code == 0
    assert json.loads(resolved.output)["asid"] == "918999198993"
    missing = run(database_url, "resolve", "Z99999", METADATA)
    assert missing.exit_code == 1 and "no endpoint registered" in missing.output


def test_synthetic_practices_are_deterministic(db: Engine, database_url: str) -> None:
    run(database_url, "seed", "--synthetic", "1", "--start", "5")
    out = json.loads(run(database_url, "resolve", "P00005", METADATA).output)
    assert out["asid"] == "700000000005" and out["party_key"] == "P00005-800005"
    assert out["service_root_url"].endswith("/P00005/STU3/1/gpconnect")


def test_token_create(db: Engine, database_url: str) -> None:
    created = run(database_url, "token", "create", "--name", "supplier", "--ods", "A20047")
    assert created.exit_code == 0 and created.output.startswith("sds_")
    assert run(database_url, "token", "create", "--name", "x").exit_code == 2
    assert run(database_url, "token", "create", "--name", "supplier", "--admin").exit_code == 1


def test_json_export_reimports_identically(db: Engine, database_url: str, tmp_path: Path) -> None:
    run(database_url, "seed", "--synthetic", "1")
    exported = tmp_path / "dump.json"
    assert run(database_url, "export", "--format", "json", "-o", str(exported)).exit_code == 0
    before = rows(db)
    with Session(db) as s:  # empty the registry, then load the dump back
        for model in (MessageHandlingSystem, AccreditedSystem, Organisation, DataSharingAgreement):
            s.query(model).delete()
        s.commit()
    imported = run(database_url, "import", str(exported))
    assert imported.exit_code == 0, imported.output
    assert rows(db) == before
    again = tmp_path / "again.json"
    run(database_url, "export", "-o", str(again))
    assert json.loads(again.read_text()) == json.loads(exported.read_text())


def test_import_rejects_bad_records_and_stores_nothing(db: Engine, database_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "organisations": [{"ods_code": "A20047", "name": "fine"}],
        "message_handling_systems": [{
            "ods_code": "A20047", "party_key": "A20047-123456", "interaction_id": METADATA,
            "endpoints": ["https://x.example.nhs.uk/A20047/stu3/1/"]}],
    }))
    result = run(database_url, "import", str(bad))
    assert result.exit_code == 1
    assert "REJECTED message_handling_systems[0]" in result.output
    assert "no-trailing-slash" in result.output and "fhir-version-uppercase" in result.output
    assert "nothing was stored" in result.output
    assert rows(db) == (0, 0, 0)
    lenient = run(database_url, "import", "--lenient", str(bad))
    assert lenient.exit_code == 0
    with Session(db) as s:
        flags = s.scalar(select(MessageHandlingSystem.flags))
    assert flags is not None and "no-trailing-slash" in flags
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\xff\xfe{")
    assert run(database_url, "import", str(garbage)).exit_code == 1


@pytest.mark.timeout(120)
def test_serve_answers_http_and_stops_cleanly_on_sigterm(seeded: Engine, database_url: str, tmp_path: Path) -> None:
    with sds_serve(database_url, tmp_path, ldap=False, ssp=False) as running:  # checks exit status 0 on SIGTERM
        url = f"{running.http_url}/api/resolve?ods=A20047&interaction={METADATA}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["service_root_url"] == "https://orange.testlab.nhs.uk/A20047/STU3/1/gpconnect"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", running.http)) != 0


def test_audit_prints_recent_ssp_decisions(db: Engine, database_url: str) -> None:
    from sds_registry.models import SspDecision

    with Session(db) as s:
        s.add_all([
            SspDecision(trace_id="t1", from_asid="200000000359", to_asid="918999198993", method="GET",
                        interaction_id=METADATA, outcome="ALLOWED", status=200, provider_status=200,
                        latency_ms=3.5, target_url="https://orange.testlab.nhs.uk/A20047/STU3/1/gpconnect/metadata"),
            SspDecision(trace_id="t2", from_asid="100000000001", to_asid="918999198993", method="GET",
                        interaction_id=METADATA, outcome="ASID_CHECK_FAILED_MESSAGESENDER_100000000001", status=403),
        ])
        s.commit()
    everything = run(database_url, "audit")
    assert everything.exit_code == 0
    lines = everything.output.splitlines()
    assert len(lines) == 2 and "trace=t1" in lines[0] and "ALLOWED" in lines[0]
    assert "ASID_CHECK_FAILED_MESSAGESENDER_100000000001" in lines[1]
    only = run(database_url, "audit", "--asid", "100000000001").output.splitlines()
    assert len(only) == 1 and "trace=t2" in only[0]
