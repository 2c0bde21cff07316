"""``gunicorn wsgi:app`` from the repository root serves the health check and the SDS FHIR API over a socket.

Runs the real commands in subprocesses (sds db upgrade, sds seed, gunicorn) on a SQLite file of its own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status), response.read()


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[str]:
    """gunicorn wsgi:app on a free port over a migrated, seeded SQLite file; yields its base URL once it answers."""
    env = {**os.environ, "SDS_DATABASE_URL": f"sqlite:///{tmp_path / 'wsgi.sqlite3'}"}
    for command in (["db", "upgrade"], ["seed"]):
        subprocess.run([str(BIN / "sds"), *command], env=env, cwd=tmp_path, check=True, capture_output=True)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                             "wsgi:app"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(f"{base}/healthcheck")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not answer within 30 s"
                time.sleep(0.2)
        yield base
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.mark.timeout(120)
def test_gunicorn_serves_healthcheck_and_fhir_endpoint_search(gunicorn: str) -> None:
    status, body = _get(f"{gunicorn}/healthcheck")
    assert status == 200, body
    query = (f"organization={quote('https://fhir.nhs.uk/Id/ods-organization-code|A20047')}"
             f"&identifier={quote('https://fhir.nhs.uk/Id/nhsServiceInteractionId|' + METADATA)}")
    status, body = _get(f"{gunicorn}/spine-directory/FHIR/R4/Endpoint?{query}")
    assert status == 200
    bundle = json.loads(body)
    assert bundle["resourceType"] == "Bundle" and bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["address"] == "https://orange.testlab.nhs.uk/A20047/STU3/1/gpconnect"
