"""Structured logs: ``sds serve`` with SDS_LOG_FORMAT=json writes one JSON access line per HTTP request, LDAP
operation and SSP request, each with its correlation/trace id, and no secret it was sent or configured with."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import ldap3
import pytest
from sqlalchemy.engine import Engine

from sds_registry.config import load_settings
from sds_registry.errors import ConfigError
from tests.support.serving import sds_serve

BEARER = "bearer-secret-6f1d2c9a"
JWT = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzZWNyZXQtand0LTk5In0."
BIND_DN = "cn=reader,o=nhs"
BIND_PASSWORD = "ldap-secret-7b3e"
MIRROR_PASSWORD = "mirror-secret-41aa"


def _get(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(obj, dict) and "message" in obj and "level" in obj for obj in parsed)
    return parsed


@pytest.mark.timeout(120)
def test_json_access_lines_for_every_facade_and_no_secrets(seeded: Engine, database_url: str,
                                                           tmp_path: Path) -> None:
    env = {"SDS_LDAP_WORKERS": "2", "SDS_LOG_FORMAT": "json", "SDS_LOG_LEVEL": "INFO",
           "SDS_LDAP_BIND_DN": BIND_DN, "SDS_LDAP_BIND_PASSWORD": BIND_PASSWORD, "SDS_MIRROR_PASSWORD": MIRROR_PASSWORD}
    with sds_serve(database_url, tmp_path, env=env) as running:
        http, ldap, ssp = running.http, running.ldap, running.ssp
        # HTTP: a refused token (401) and an unknown path (404) are logged too.
        assert _get(f"http://127.0.0.1:{http}/api/clients",
                    {"Authorization": f"Bearer {BEARER}", "X-Correlation-ID": "corr-401"}) == 401
        assert _get(f"http://127.0.0.1:{http}/api/no-such-thing?token={BEARER}",
                    {"X-Correlation-ID": "corr-404"}) == 404
        # LDAP: a simple bind with the password, a search, an unbind.
        server = ldap3.Server("127.0.0.1", port=ldap, get_info=ldap3.NONE)
        conn = ldap3.Connection(server, user=BIND_DN, password=BIND_PASSWORD, auto_bind=True)
        conn.search("o=nhs", "(nhsIDCode=A20047)", search_scope=ldap3.SUBTREE, attributes=["nhsIDCode"])
        conn.unbind()
        # SSP: a request carrying the audit JWT (refused: no such agreement).
        status = _get(f"http://127.0.0.1:{ssp}/https://provider.example/A20047/STU3/1/gpconnect/metadata",
                      {"Authorization": f"Bearer {JWT}", "Ssp-TraceID": "trace-77",
                       "Ssp-From": "200000000001", "Ssp-To": "200000000002",
                       "Ssp-InteractionID": "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"})
        assert status >= 400
        time.sleep(0.5)  # the access lines are written as the answers go
    captured = running.output()
    for secret in (BEARER, JWT, "c2VjcmV0LWp3dC05OSJ9", BIND_PASSWORD, MIRROR_PASSWORD):
        assert secret not in captured
    records = _json_lines(captured)
    http_lines = [r for r in records if r["logger"] == "sds.http"]
    assert [(r["correlation_id"], r["status"]) for r in http_lines] == [("corr-401", 401), ("corr-404", 404)]
    assert all(r["http_method"] == "GET" and r["duration_ms"] >= 0 and "bytes" in r for r in http_lines)
    ldap_lines = [r for r in records if r["logger"] == "sds.ldap.access"]
    assert [(r["operation"], r["result_code"]) for r in ldap_lines] == [("bind", 0), ("search", 0), ("unbind", None)]
    assert ldap_lines[0]["base"] == BIND_DN and ldap_lines[1]["filter"] == "(nhsIDCode=A20047)"
    assert ldap_lines[1]["entries"] >= 1 and len({line["connection_id"] for line in ldap_lines}) == 1
    ssp_lines = [r for r in records if r["logger"] == "sds.ssp.access"]
    assert len(ssp_lines) == 1 and ssp_lines[0]["trace_id"] == "trace-77"
    assert ssp_lines[0]["status"] == status and ssp_lines[0]["from_asid"] == "200000000001"


def test_log_format_is_text_or_json() -> None:
    assert load_settings(environ={}).log_format == "text"
    assert load_settings(environ={"SDS_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="SDS_LOG_FORMAT"):
        load_settings(environ={"SDS_LOG_FORMAT": "xml"})
