"""The soak (bench/soak.py) in short: 20 s of mixed load on every facade of a real ``sds serve``, with 4 writers,
on each backend; no error reaches a client, no write is lost, duplicated or half-applied, and every lookup
answered a state the database held while it ran. Also: the check itself finds each kind of fault it names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bench.soak import run_soak
from bench.soakcheck import AuditRow, Lookup, Write, check

INTERACTION = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_short_soak_keeps_every_write_and_answers_consistently(db: Engine, database_url: str,
                                                                tmp_path: Path) -> None:
    report = run_soak(database_url, tmp_path, 20.0, writers=4, practices=10, warmup=5.0, sample_every=1.0)
    report.print(5.0)
    assert report.failures(None) == []
    assert set(report.load.stats) == {"ldap", "fhir", "resolve", "ssp", "api-read", "api-write"}
    assert all(s.requests > 20 for s in report.load.stats.values()), report.load.stats.keys()
    findings = report.findings
    assert findings.acknowledged > 20 and findings.refused > 5  # the load both wrote and was refused
    assert findings.lookups_checked > 300
    assert report.rss, "no server process was sampled"


def _endpoint(marker: str) -> str:
    return f"https://{marker}.soak.test/S00000/STU3/1/gpconnect/structured"


def _audit(n: int, action: str, before: str | None, after: str | None, version: int = 1) -> AuditRow:
    def record(marker: str | None) -> str | None:
        if marker is None:
            return None
        return json.dumps({"ods_code": "S00000", "interaction_id": INTERACTION, "version": version,
                           "endpoints": [_endpoint(marker)]})

    return AuditRow(n, action, "uid", record(before), record(after))


def test_the_check_finds_lost_duplicated_refused_and_stale() -> None:
    writes = [
        Write("patch", "S00000", "w0-1", "uid", 1, sent=1.0, answered=2.0, status=200),
        Write("patch", "S00000", "w0-2", "uid", 2, sent=3.0, answered=4.0, status=200),  # lost: no audit row
        Write("patch", "S00000", "w0-3", "uid", 2, sent=5.0, answered=6.0, status=409),  # refused, yet applied
    ]
    audit = [_audit(1, "update", "i0", "w0-1"), _audit(2, "update", "w0-1", "w0-3"),
             _audit(3, "update", "w0-3", "w0-3"), _audit(4, "update", "w0-3", "w9-9")]
    lookups = [
        Lookup("ldap", "S00000", 0.0, 0.5, ("i0",)),  # before any write: fine
        Lookup("ldap", "S00000", 1.5, 1.8, ("i0",)),  # during w0-1: either state is fine
        Lookup("fhir", "S00000", 2.5, 2.6, ("i0",)),  # after w0-1 was acknowledged: stale
        Lookup("resolve", "S00000", 2.5, 2.6, ("w0-1", "w0-1")),  # two records answered
    ]
    found = check(writes, lookups, audit, {"S00000": [_endpoint("w9-9")]}, {"S00000": "i0"}, INTERACTION)
    assert [p.split(" ", 2)[1] for p in found.lost] == ["w0-2"]
    assert len(found.refused_but_applied) == 2 and len(found.duplicated) == 1  # w0-3 applied twice
    assert len(found.unexplained) == 1 and "audit 4" in found.unexplained[0]  # w9-9: nobody sent it
    assert [p.split(":")[0] for p in found.inconsistent] == ["fhir S00000", "resolve S00000"]
    assert found.final_mismatch  # the database holds w9-9, the acknowledged writes end at w0-3
    assert not found.ok
