"""Faults on a real ``sds serve`` over its own throwaway PostgreSQL (stopped and started on the same data and port):

- while the database is down, each facade answers at once with its documented refusal, not a hang or a
  traceback: /api and the FHIR API 503 with an OperationOutcome naming the cause (and Retry-After), the SSP
  its own 503 OperationOutcome, LDAP result 52 ``unavailable`` with a diagnostic; a write is refused and
  leaves nothing; every facade serves again within 5 s of the database's return, on its old connections'
  replacements; the SSP's audit of a decision made in the gap is written once the database is back;
- bench/faults.py in short: workers of every facade killed under load and the database restarted under load
  (and the kills alone on SQLite), with its goals (recovery, answers, writes whole or absent, no descriptor
  growth).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.faults import RECOVERY_GOAL, prepare, run_faults
from sds_registry.db import make_engine
from sds_registry.models import AccreditedSystem, SspDecision
from tests.support.ldap import ldapsearch
from tests.support.postgres import TempPostgres
from tests.support.serving import Running, free_port, sds_serve
from tests.unit.ssp.fixtures import FOUNDATIONS, METADATA, PROVIDER_FQDN, PROVIDER_ODS, ssp_headers

FHIR_ENDPOINT = "/spine-directory/FHIR/R4/Endpoint"
SSP_SYSTEM = "http://fhir.nhs.net/ValueSet/gpconnect-schedule-response-code-1-0"


@pytest.fixture
def postgres() -> Iterator[tuple[TempPostgres, str]]:
    try:
        server = TempPostgres()
        url = server.start()
    except Exception as exc:  # noqa: BLE001 - no initdb here (as tests/conftest.py: a skip, but never under CI)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"these tests restart their own PostgreSQL, which needs initdb: {exc}")
        pytest.skip(f"these tests restart their own PostgreSQL, which needs initdb: {exc}")
    try:
        yield server, url
    finally:
        server.stop()


def calls(running: Running, token: str, n: int, trace_id: str | None = None) -> dict[str, httpx.Response | str]:
    """One call a facade (LDAP: ldapsearch's exit status and stderr) and one registration."""
    org = f"https://fhir.nhs.uk/Id/ods-organization-code|{PROVIDER_ODS}"
    svc = f"https://fhir.nhs.uk/Id/nhsServiceInteractionId|{METADATA}"
    with httpx.Client(timeout=10) as client:
        out: dict[str, httpx.Response | str] = {
            "resolve": client.get(f"{running.http_url}/api/resolve",
                                  params={"ods": PROVIDER_ODS, "interaction": METADATA}),
            "fhir": client.get(f"{running.http_url}{FHIR_ENDPOINT}", params={"organization": org, "identifier": svc}),
            "ssp": client.get(f"http://127.0.0.1:{running.ssp}/{FOUNDATIONS}/metadata",
                              headers={**ssp_headers(trace_id=trace_id), "Accept": "application/fhir+json"}),
            "write": client.post(f"{running.http_url}/api/providers", headers={"Authorization": f"Bearer {token}"},
                                 json={"ods_code": f"F{n:05d}", "asid": f"7{n:011d}", "fqdn": f"f{n}.faults.test",
                                       "interactions": [METADATA]}),
        }
    done = ldapsearch(["-H", f"ldap://127.0.0.1:{running.ldap}", "-b", "ou=services,o=nhs",
                       f"(nhsIDCode={PROVIDER_ODS})", "dn"])
    out["ldap"] = f"{done.returncode} {done.stderr.strip()}"
    return out


def served(answers: dict[str, httpx.Response | str]) -> bool:
    ssp = answers["ssp"]
    return (all(isinstance(a, httpx.Response) and a.status_code in (200, 201)
                for k, a in answers.items() if k not in ("ssp", "ldap"))
            and isinstance(ssp, httpx.Response) and "ERROR_COMMUNICATING" in ssp.text  # looked up, then forwarded
            and str(answers["ldap"]).startswith("0"))


def systems_of(url: str, asid: str) -> int:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return session.scalar(select(func.count()).select_from(AccreditedSystem)
                                  .where(AccreditedSystem.asid == asid)) or 0
    finally:
        engine.dispose()


def decision_of(url: str, trace_id: str, wait: float = 15.0) -> str | None:
    """The outcome the SSP audited for ``trace_id`` (its writer inserts in batches: waited for)."""
    engine = make_engine(url)
    deadline = time.monotonic() + wait
    try:
        while True:
            with Session(engine) as session:
                outcome = session.scalar(select(SspDecision.outcome).where(SspDecision.trace_id == trace_id))
            if outcome is not None or time.monotonic() > deadline:
                return outcome
            time.sleep(0.2)
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_database_outage_is_refused_clearly_and_recovered_from(postgres: tuple[TempPostgres, str],
                                                                  tmp_path: Path) -> None:
    server, url = postgres
    token = prepare(url)
    env = {"SDS_SSP_CACHE_SECONDS": "0", "SDS_SSP_CONNECT_TO": f"{PROVIDER_FQDN}:443:127.0.0.1:{free_port()}",
           "SDS_SSP_PROVIDER_TIMEOUT": "2"}
    with sds_serve(url, tmp_path, env=env) as running:
        assert served(calls(running, token, 1))  # every facade has pooled connections now
        server.halt()
        started = time.monotonic()
        trace_id = str(uuid.uuid4())
        down = calls(running, token, 2, trace_id)
        assert time.monotonic() - started < 10  # no hang
        for name in ("resolve", "fhir", "write"):
            response = down[name]
            assert isinstance(response, httpx.Response)
            assert response.status_code == 503, (name, response.text)
            assert response.headers["Retry-After"] == "1"
            issue = response.json()["issue"][0]
            assert response.json()["resourceType"] == "OperationOutcome"
            assert issue["details"]["coding"][0]["code"] == "SERVICE_UNAVAILABLE"
            assert "the registry database is unavailable" in issue["diagnostics"]
        ssp = down["ssp"]
        assert isinstance(ssp, httpx.Response) and ssp.status_code == 503
        coding = ssp.json()["issue"][0]["details"]["coding"][0]
        assert coding == {"code": "503", "display": "SERVICE_UNAVAILABLE", "system": SSP_SYSTEM}
        assert "the registry database is unavailable" in ssp.json()["issue"][0]["diagnostics"]
        assert str(down["ldap"]).startswith("52 ") and "the registry database is unavailable" in str(down["ldap"])
        server.resume()
        back = time.monotonic()
        n = 3
        while not served(calls(running, token, n)):
            n += 1
            assert time.monotonic() - back < RECOVERY_GOAL, "not serving again within 5 s of the database's return"
        log = running.output()
    assert decision_of(url, trace_id) == "SERVICE_UNAVAILABLE"  # audited once the database was back
    assert systems_of(url, f"7{2:011d}") == 0  # the refused write left nothing
    assert systems_of(url, f"7{1:011d}") == 1
    assert "Traceback" not in log


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_short_fault_bench_meets_its_goals(postgres: tuple[TempPostgres, str], tmp_path: Path) -> None:
    report = run_faults(tmp_path, outage=2.0, settle=4.0, warmup=2.0, postgres=postgres)
    report.print()
    assert report.failures() == []
    assert [f.name for f in report.faults] == ["kill-http-worker", "kill-ldap-worker", "kill-ssp-worker",
                                               "postgres-restart"]
    outage = report.faults[-1].answers
    assert outage["resolve"]["503"] and outage["fhir"]["503"] and outage["ssp"]["503"] and outage["ldap"]["ldap52"]
    assert report.writes.acknowledged > 10 and report.writes.refused > 0 and report.writes.problems == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_short_fault_bench_on_sqlite_keeps_writes_whole(tmp_path: Path) -> None:
    """The worker kills on a SQLite file: a writer killed mid-transaction leaves nothing of it (WAL)."""
    report = run_faults(tmp_path, settle=4.0, warmup=2.0, backend="sqlite")
    report.print()
    assert report.failures() == []
    assert [f.name for f in report.faults] == ["kill-http-worker", "kill-ldap-worker", "kill-ssp-worker"]
    assert report.writes.acknowledged > 10 and report.writes.problems == []
