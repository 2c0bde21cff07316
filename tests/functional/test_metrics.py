"""/metrics under a real `sds serve` (2 HTTP workers, 2 LDAP workers, SSP): Prometheus text, counters that move
after HTTP, LDAP and SSP requests (summed over the worker processes), and the directory-size gauge."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import ldap3
import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from sds_registry.config import Settings
from sds_registry.ldap.ast import DerefAliases, Scope, SearchRequest
from sds_registry.ldap.directory import Directory
from sds_registry.ldap.filterstr import parse_filter
from sds_registry.models import AccreditedSystem, MessageHandlingSystem, Organisation
from sds_registry.serve import _metrics_folder
from tests.support.serving import Running, sds_serve

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
REQUESTS = 8


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(running: Running) -> Samples:
    with urllib.request.urlopen(f"{running.http_url}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def serve(seeded: Engine, database_url: str, tmp_path: Path) -> Iterator[Running]:
    env = {"SDS_HTTP_WORKERS": "2", "SDS_LDAP_WORKERS": "2", "SDS_METRICS_DIR": str(tmp_path / "metrics")}
    with sds_serve(database_url, tmp_path, env=env) as running:
        yield running


def _delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    def total(samples: Samples) -> float:
        return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())
    return total(after) - total(before)


@pytest.mark.timeout(180)
def test_counters_move_across_worker_processes(serve: Running, seeded: Engine) -> None:
    before = scrape(serve)
    for _ in range(REQUESTS):  # a new connection each: both gunicorn workers get some
        url = f"http://127.0.0.1:{serve.http}/api/resolve?ods=A20047&interaction={METADATA}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
    for _ in range(REQUESTS):  # a new connection each: SO_REUSEPORT spreads them over both LDAP workers
        conn = ldap3.Connection(ldap3.Server(f"ldap://127.0.0.1:{serve.ldap}", get_info=ldap3.NONE), auto_bind=True)
        conn.search("o=nhs", "(objectClass=nhsOrg)", search_scope=ldap3.LEVEL, attributes=["nhsIDCode"])
        conn.unbind()
    with httpx.Client(timeout=10) as client:  # no Ssp-* headers: the Gate refuses it
        assert client.get(f"http://127.0.0.1:{serve.ssp}/https://example.org/metadata").status_code >= 400
    deadline = time.monotonic() + 5  # the SSP counts a decision once its answer is written
    while _delta(before, after := scrape(serve), "sds_ssp_decisions_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)

    assert _delta(before, after, "sds_http_requests_total", route="/api/resolve", method="GET",
                  status="200") == REQUESTS
    assert _delta(before, after, "sds_http_request_duration_seconds_count", route="/api/resolve") == REQUESTS
    assert _delta(before, after, "sds_ldap_operations_total", operation="bind", result="0") == REQUESTS
    assert _delta(before, after, "sds_ldap_operations_total", operation="search", result="0") == REQUESTS
    assert _delta(before, after, "sds_ldap_operation_duration_seconds_count", operation="search") == REQUESTS
    assert _delta(before, after, "sds_ssp_decisions_total") == 1
    assert after[("sds_db_query_duration_seconds_count", ())] > 0
    assert any(name == "sds_build_info" for name, _ in after)
    # The scrape sums one samples file per process: two HTTP workers, two LDAP workers and an SSP worker at least.
    pids = {path.stem.rsplit("_", 1)[1] for path in Path(serve.env["SDS_METRICS_DIR"]).glob("*.db")}
    assert len(pids) >= 5, pids

    with seeded.connect() as conn:
        for record, model in (("organisation", Organisation), ("accredited_system", AccreditedSystem),
                              ("message_handling_system", MessageHandlingSystem)):
            count = conn.scalar(select(func.count()).select_from(model))
            assert after[("sds_directory_records", (("type", record),))] == count
            assert count


def test_metrics_dir_setting_is_emptied_of_a_previous_run(tmp_path: Path) -> None:
    stale = tmp_path / "counter_123.db"
    stale.write_bytes(b"old")
    assert _metrics_folder(Settings(metrics_dir=str(tmp_path))) == str(tmp_path)
    assert not stale.exists()


def test_serve_removes_its_temporary_metrics_dir(seeded: Engine, database_url: str, tmp_path: Path) -> None:
    with sds_serve(database_url, tmp_path, ldap=False, ssp=False) as running:
        child = running.children()[0]
        folder = Path(Path(f"/proc/{child}/environ").read_bytes().split(b"PROMETHEUS_MULTIPROC_DIR=")[1]
                      .split(b"\0")[0].decode())
        assert folder.is_dir()
    assert not folder.exists()


def _statements_timed() -> float:
    return REGISTRY.get_sample_value("sds_db_query_duration_seconds_count") or 0.0


def test_raw_cursor_reads_are_timed(seeded: Engine, client: FlaskClient) -> None:
    """The FHIR lookups (a ReadConnection) and the LDAP directory read through raw DBAPI cursors, which the
    engine's statement events never see; they time themselves into the same histogram."""
    org = quote("https://fhir.nhs.uk/Id/ods-organization-code|A20047")
    svc = quote(f"https://fhir.nhs.uk/Id/nhsServiceInteractionId|{METADATA}")
    before = _statements_timed()
    response = client.get(f"/spine-directory/FHIR/R4/Endpoint?organization={org}&identifier={svc}",
                          headers={"X-Correlation-ID": "0f6d3c8e-8d0a-4f0e-9a8e-2b1b7c1d2e3f"})
    assert response.status_code == 200 and response.json["total"] == 1  # type: ignore[index]
    assert _statements_timed() > before

    directory = Directory(seeded, Settings())
    try:
        request = SearchRequest("ou=services,o=nhs", Scope.SUB, DerefAliases.NEVER, 0, 0, False,
                                parse_filter("(&(objectClass=nhsMhs)(nhsIDCode=A20047))"), ())
        before = _statements_timed()
        entries, result = directory.search(request, 0, 0)
        assert result.code == 0 and entries
        assert _statements_timed() > before
    finally:
        directory.close()


@pytest.mark.timeout(120)
def test_a_killed_http_worker_is_marked_dead(seeded: Engine, database_url: str, tmp_path: Path) -> None:
    """gunicorn replaces a worker killed with SIGKILL and the supervisor's child_exit hook drops its live
    gauges (the pool gauge is a ``livesum``): a dead process's checked-out connections stop being counted."""
    folder = tmp_path / "metrics"
    with sds_serve(database_url, tmp_path, ldap=False, ssp=False, env={"SDS_METRICS_DIR": str(folder)}) as running:
        with urllib.request.urlopen(f"{running.http_url}/api/resolve?ods=A20047&interaction={METADATA}",
                                    timeout=10) as response:
            assert response.status == 200
        (gunicorn,) = running.children()
        (worker,) = running.children(gunicorn)
        live = folder / f"gauge_livesum_{worker}.db"
        assert live.exists()
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while (live.exists() or running.children(gunicorn) in ([], [worker])) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not live.exists()
        (replacement,) = running.children(gunicorn)
        assert replacement != worker
        with urllib.request.urlopen(f"{running.http_url}/healthcheck", timeout=10) as response:
            assert response.status == 200
