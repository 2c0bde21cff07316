"""/metrics under a real `sds serve` (2 HTTP workers, 2 LDAP workers, SSP): Prometheus text, counters that move
after HTTP, LDAP and SSP requests (summed over the worker processes), and the directory-size gauge."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import ldap3
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from sds_registry.config import Settings
from sds_registry.models import AccreditedSystem, MessageHandlingSystem, Organisation
from sds_registry.serve import _metrics_folder

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
REQUESTS = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Serve:
    http: int
    ldap: int
    ssp: int
    metrics_dir: Path

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.2)


@pytest.fixture
def serve(seeded: Engine, database_url: str, tmp_path: Path) -> Iterator[Serve]:
    ports = Serve(_free_port(), _free_port(), _free_port(), tmp_path / "metrics")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDS_", "PROMETHEUS_"))}
    env.update({"SDS_DATABASE_URL": database_url, "SDS_HTTP_BIND": f"127.0.0.1:{ports.http}",
                "SDS_LDAP_BIND": f"127.0.0.1:{ports.ldap}", "SDS_SSP_BIND": f"127.0.0.1:{ports.ssp}",
                "SDS_HTTP_WORKERS": "2", "SDS_LDAP_WORKERS": "2", "SDS_SSP_WORKERS": "1",
                "SDS_METRICS_DIR": str(ports.metrics_dir), "SDS_LOG_LEVEL": "WARNING"})
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sds_registry.cli", "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=out)
    try:
        for port in (ports.http, ports.ldap, ports.ssp):
            _wait(port, proc)
        yield ports
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _delta(before: dict, after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    def total(samples: dict) -> float:  # type: ignore[type-arg]
        return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())
    return total(after) - total(before)


@pytest.mark.timeout(180)
def test_counters_move_across_worker_processes(serve: Serve, seeded: Engine) -> None:
    before = serve.scrape()
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
    while _delta(before, after := serve.scrape(), "sds_ssp_decisions_total") < 1 and time.monotonic() < deadline:
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
    pids = {path.stem.rsplit("_", 1)[1] for path in serve.metrics_dir.glob("*.db")}
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


def test_serve_removes_its_temporary_metrics_dir(seeded: Engine, database_url: str) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDS_", "PROMETHEUS_"))}
    env.update({"SDS_DATABASE_URL": database_url, "SDS_HTTP_BIND": f"127.0.0.1:{port}", "SDS_LDAP_BIND": "",
                "SDS_SSP_BIND": "", "SDS_HTTP_WORKERS": "1", "SDS_LOG_LEVEL": "WARNING"})
    proc = subprocess.Popen([sys.executable, "-m", "sds_registry.cli", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port, proc)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        folder = Path(Path(f"/proc/{children[0]}/environ").read_bytes().split(b"PROMETHEUS_MULTIPROC_DIR=")[1]
                      .split(b"\0")[0].decode())
        assert folder.is_dir()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not folder.exists()
