"""run_ssp as `sds serve` runs it: plain HTTP with a warning, and a clean stop on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.functional.ssp.conftest import Pki, Provider, free_port, start_ssp
from tests.unit.ssp.fixtures import FOUNDATIONS, PROVIDER_FQDN, seed, ssp_headers


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_plain_http_forwards_and_stops_cleanly(database_url: str, committed_session: Session, pki: Pki,
                                               provider: Provider, tmp_path: Path, stop_signal: signal.Signals) -> None:
    seed(committed_session)
    port = free_port()
    log = tmp_path / "ssp.log"
    process = start_ssp({
        "SDS_DATABASE_URL": database_url, "SDS_SSP_BIND": f"127.0.0.1:{port}",
        "SDS_SSP_PROVIDER_CA": str(pki.ca),
        "SDS_SSP_CLIENT_CERT": str(pki.ssp_client[0]), "SDS_SSP_CLIENT_KEY": str(pki.ssp_client[1]),
        "SDS_SSP_CONNECT_TO": f"{PROVIDER_FQDN}:443:127.0.0.1:{provider.port}", "SDS_SSP_WORKERS": "1",
    }, log, port)
    try:
        trace = str(uuid.uuid4())
        with httpx.Client() as client:
            response = client.get(f"http://127.0.0.1:{port}/{FOUNDATIONS}/metadata",
                                  headers=ssp_headers(trace_id=trace))
        assert response.status_code == 200
        received = {k.lower(): v for k, v in response.json()["headers"]}
        assert received["forwarded"].endswith(";proto=http")
    finally:
        process.send_signal(stop_signal)
        code = process.wait(timeout=20)
    text = log.read_text()
    assert code == 0, text
    assert "plain HTTP" in text
    assert "Traceback" not in text
    # The worker's audit writer flushed on the way out.
    from sqlalchemy import select

    from sds_registry.models import SspDecision

    committed_session.rollback()
    assert committed_session.scalar(select(SspDecision.outcome).where(SspDecision.trace_id == trace)) == "ALLOWED"
