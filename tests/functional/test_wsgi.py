"""``gunicorn wsgi:app`` from the repository root serves the health check and the SDS FHIR API over a socket.

Runs the real commands in subprocesses (sds db upgrade, sds seed, gunicorn) on a SQLite file of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.serving import Running, clean_environment, free_port, start

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
CORRELATION = "5c8f2a9e-0c6b-4d0e-9a53-7d1f0b1e2c3d"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
        return int(response.status), response.read()


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Running]:
    """gunicorn wsgi:app on a free port over a migrated, seeded SQLite file, logging JSON at INFO."""
    env = clean_environment({"SDS_DATABASE_URL": f"sqlite:///{tmp_path / 'wsgi.sqlite3'}", "SDS_LOG_FORMAT": "json",
                             "SDS_LOG_LEVEL": "INFO"})
    for command in (["db", "upgrade"], ["seed"]):
        subprocess.run([str(BIN / "sds"), *command], env=env, cwd=tmp_path, check=True, capture_output=True)
    port = free_port()
    log = tmp_path / "gunicorn.log"
    proc = start([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                  "--chdir", str(ROOT), "wsgi:app"], env, log, (port,))
    running = Running(proc, log, http=port, env=env)
    try:
        yield running
    finally:
        assert running.stop() == 0, running.output()


@pytest.mark.timeout(120)
def test_gunicorn_serves_healthcheck_and_fhir_endpoint_search(gunicorn: Running) -> None:
    status, body = _get(f"{gunicorn.http_url}/healthcheck")
    assert status == 200, body
    query = (f"organization={quote('https://fhir.nhs.uk/Id/ods-organization-code|A20047')}"
             f"&identifier={quote('https://fhir.nhs.uk/Id/nhsServiceInteractionId|' + METADATA)}")
    status, body = _get(f"{gunicorn.http_url}/spine-directory/FHIR/R4/Endpoint?{query}",
                        {"X-Correlation-ID": CORRELATION})
    assert status == 200
    bundle = json.loads(body)
    assert bundle["resourceType"] == "Bundle" and bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["address"] == "https://orange.testlab.nhs.uk/A20047/STU3/1/gpconnect"

    # The app's own access line reaches stderr as one JSON object, with the correlation id.
    deadline = time.monotonic() + 5
    while not (lines := [json.loads(line) for line in gunicorn.output().splitlines()
                         if line.startswith("{") and CORRELATION in line]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(lines) == 1, gunicorn.output()
    assert lines[0]["logger"] == "sds.http" and lines[0]["status"] == 200
