"""The JSON import's fast first load: it stores what the careful path stores, and gives way to it (same
report, nothing kept) on anything the careful path refuses, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bench.ldapkit import data as kit_data
from sds_registry.db import make_sessionmaker
from sds_registry.ldap.ldif import import_ldif
from sds_registry.services import bulk
from sds_registry.services.transfer import export_records, import_directory
from tests.support.first_load import both


@pytest.fixture
def document(db: Engine, tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    """What ``sds export`` writes for a synthetic directory of 12 practices, and one agreement."""
    path = tmp_path / "sds.ldif"
    kit_data.write_ldif(kit_data.stream(12), path)
    out: dict[str, list[dict[str, Any]]] = {}
    with make_sessionmaker(db)() as s:
        assert import_ldif(s, path).ok
        for section, record in export_records(s):
            out.setdefault(section, []).append(record)
        s.rollback()
    ods = out["accredited_systems"][0]["ods_code"]
    out["data_sharing_agreements"] = [{"consumer_ods": ods, "provider_ods": "*", "description": "all"}]
    return out


def test_json_first_load_stores_exactly_what_the_careful_path_stores(
    db: Engine, document: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "BATCH", 7)
    fast, careful, fast_rows, careful_rows = both(db, import_directory, json.dumps(document))
    assert fast.ok and fast.first_load, fast.lines()
    assert careful.ok and not careful.first_load
    assert fast.lines() == careful.lines() and fast.created["data_sharing_agreements"] == 1
    assert fast_rows == careful_rows and len(fast_rows["message_handling_systems"]) > 100


def _broken(document: dict[str, Any], case: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(document))
    mhs, systems = doc["message_handling_systems"], doc["accredited_systems"]
    if case == "ASID twice":
        systems.append({**systems[0], "product_name": "again"})
    elif case == "MHS identifier in another case":
        twin = {**mhs[0], "unique_identifier": mhs[0]["unique_identifier"].upper(), "cpa_id": "X" * 20,
                "interaction_id": "urn:nhs:names:services:psis:MCCI_IN010000UK13"}
        mhs.append(twin)
    elif case == "a record the rules refuse":
        systems[3]["asid"] = "12"
    elif case == "flags without --lenient":
        systems[2]["flags"] = ["asid:format"]
    elif case == "an agreement twice":
        doc["data_sharing_agreements"].append(doc["data_sharing_agreements"][0])
    elif case == "an unknown section":
        doc["elephants"] = [{"n": 1}]
    return doc


@pytest.mark.parametrize("case", ["ASID twice", "MHS identifier in another case", "a record the rules refuse",
                                  "flags without --lenient", "an agreement twice", "an unknown section"])
def test_json_first_load_gives_way_on_anything_refused(db: Engine, document: dict[str, Any], case: str) -> None:
    fast, careful, fast_rows, _ = both(db, import_directory, json.dumps(_broken(document, case)))
    assert all(not rows for rows in fast_rows.values())  # the caller rolls back; the fast load kept nothing
    assert not fast.ok and not fast.first_load and careful.rejected
    assert fast.lines() == careful.lines()


def test_registrations_follow_a_first_load(db: Engine, document: dict[str, Any]) -> None:
    """providers / consumers (registration requests) are registered after the records, as before."""
    ods = "Y99999"
    doc = {**document, "consumers": [{"ods_code": ods, "product_name": "A consumer",
                                      "interactions": ["urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"]}]}
    with make_sessionmaker(db)() as s:
        report = import_directory(s, io.StringIO(json.dumps(doc)))
        s.rollback()
    assert report.first_load and report.ok, report.lines()
    assert report.created.get("consumers") == 1
