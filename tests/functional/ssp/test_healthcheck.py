"""The SSP answers load-balancer probes itself: GET /healthcheck is 200 without Ssp-* headers, never reaches
the Gate and leaves no row in the decision audit; other requests are still audited. The HTTP facade's
/healthcheck/deep probes the real LDAP server (root DSE) and SSP (/healthcheck), up and down."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from sds_registry import create_app
from sds_registry.config import Settings
from sds_registry.ldap.directory import Directory
from sds_registry.models import SspDecision
from tests.functional.ssp.conftest import Pki, SspServer
from tests.support.ldap import base_settings, running_server


def _rows(db: Engine) -> list[str]:
    with db.connect() as conn:
        return list(conn.scalars(select(SspDecision.target_url)))


def test_healthcheck_is_answered_and_not_audited(ssp: SspServer, consumer_client: httpx.Client, db: Engine,
                                                 audit_settled: None) -> None:
    before = len(_rows(db))
    for _ in range(3):
        response = consumer_client.get(f"{ssp.url}/healthcheck")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "pass"}
    assert consumer_client.head(f"{ssp.url}/healthcheck").status_code == 200
    refused = consumer_client.get(f"{ssp.url}/https://nowhere.test/metadata")  # no Ssp-* headers: refused
    assert refused.status_code == 400
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(_rows(db)) < before + 1:
        time.sleep(0.05)
    time.sleep(0.3)  # a late healthcheck row would land by now (the audit writer batches within this)
    rows = _rows(db)
    assert len(rows) == before + 1, rows
    assert not [r for r in rows if "healthcheck" in (r or "")]
    with db.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(SspDecision)
                           .where(SspDecision.target_url.like("%nowhere.test%"))) == 1


# ---- /healthcheck/deep on the HTTP facade probes the LDAP and SSP facades ------------------------------


def _deep(overrides: dict[str, object]) -> tuple[int, dict[str, Any]]:
    app = create_app(overrides)
    try:
        response = app.test_client().get("/healthcheck/deep")
        return response.status_code, json.loads(response.get_data())
    finally:
        app.extensions["sds"]["read_pool"].dispose()
        app.extensions["sds"]["engine"].dispose()


def test_deep_healthcheck_probes_the_enabled_facades(ssp: SspServer, pki: Pki, db: Engine, database_url: str,
                                                     dead_port: int) -> None:
    directory = Directory(db, Settings())
    ssp_bind = ssp.url.removeprefix("https://")
    ssp_tls = {"ssp_tls_cert": str(pki.ssp_server[0]), "ssp_tls_key": str(pki.ssp_server[1]),
               "ssp_client_cert": str(pki.ssp_client[0]), "ssp_client_key": str(pki.ssp_client[1])}
    try:
        with running_server(base_settings(), directory) as ldap:
            ldap_bind = f"{ldap.host}:{ldap.port}"
            status, body = _deep({"database_url": database_url, "ldap_bind": ldap_bind, "ssp_bind": ssp_bind,
                                  **ssp_tls})
            assert status == 200, body
            assert body["status"] == "pass" and body["details"]["database"]["status"] == "pass"
            assert body["details"]["ldap"] == {"status": "pass", "address": f"ldap://{ldap_bind}"}
            assert body["details"]["ssp"] == {"status": "pass", "address": f"https://{ssp_bind}"}

            status, body = _deep({"database_url": database_url, "ldap_bind": ldap_bind,
                                  "ssp_bind": f"127.0.0.1:{dead_port}", **ssp_tls})
            assert status == 503 and body["status"] == "fail"
            assert body["details"]["ldap"]["status"] == "pass" and body["details"]["database"]["status"] == "pass"
            assert body["details"]["ssp"]["status"] == "fail" and body["details"]["ssp"]["output"]

            status, body = _deep({"database_url": database_url, "ldap_bind": ldap_bind, "ssp_bind": ""})
            assert status == 200 and set(body["details"]) == {"database", "ldap"}  # the SSP is off: not probed
        status, body = _deep({"database_url": database_url, "ldap_bind": ldap_bind, "ssp_bind": ssp_bind, **ssp_tls})
        assert status == 503 and body["details"]["ldap"]["status"] == "fail"  # the LDAP server has stopped
        assert body["details"]["ssp"]["status"] == "pass"
    finally:
        directory.close()
