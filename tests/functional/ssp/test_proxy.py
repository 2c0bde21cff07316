"""The SSP end to end: mutual TLS in, TLS to a provider stub out, exact refusal bodies, streaming, audit."""

from __future__ import annotations

import gzip
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from sds_registry import metrics
from sds_registry.models import SspDecision
from tests.functional.ssp.conftest import Pki, Provider, SspServer, free_port, start_ssp, stop_ssp
from tests.unit.ssp.fixtures import (
    BOOK,
    CONSUMER_ASID,
    DOWN_ASID,
    DOWN_ROOT,
    FOUNDATIONS,
    PROVIDER_ASID,
    PROVIDER_FQDN,
    SLOTS,
    STRANGER_ASID,
    STRUCTURED,
    STRUCTURED_RECORD,
    Directory,
    FreshBearer,
    claims,
    make_jwt,
    seed,
    ssp_headers,
)

SYSTEM = "http://fhir.nhs.net/ValueSet/gpconnect-schedule-response-code-1-0"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
JSON_ACCEPT = {"Accept": "application/fhir+json"}


@pytest.fixture
def directory(committed_session: Session, audit_settled: None) -> Directory:
    return seed(committed_session)


def _get(client: httpx.Client, ssp: SspServer, target: str, headers: dict[str, str] | None = None,
         method: str = "GET", **kwargs: Any) -> httpx.Response:
    return client.request(method, f"{ssp.url}/{target}", headers=headers or ssp_headers(), **kwargs)


def _ssp_json(status: int, code: str, token: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{
        "code": code, "severity": "error",
        "details": {"coding": [{"code": str(status), "display": token, "system": SYSTEM}]},
        "diagnostics": token}]}


def _assert_refusal(response: httpx.Response, status: int, code: str, token: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/fhir+json;charset=utf-8"
    body = response.json()
    assert GUID.fullmatch(body.pop("id"))
    if token.startswith("INVALID_JWT_"):  # diagnostics: the token, then the claim and part at fault
        assert body["issue"][0]["diagnostics"].startswith(token + ": ")
        body["issue"][0]["diagnostics"] = token
    assert body == _ssp_json(status, code, token)
    assert list(json.loads(response.text)) == ["resourceType", "id", "issue"]


# ---- Allowed requests are forwarded unchanged --------------------------------------------------------------


def test_allowed_get_is_forwarded_unchanged(ssp: SspServer, directory: Directory,
                                            consumer_client: httpx.Client) -> None:
    headers = {**ssp_headers(), "Accept": "application/fhir+json", "X-Custom": "kept",
               "X-Forwarded-For": "10.9.8.7"}
    response = _get(consumer_client, ssp, f"{FOUNDATIONS}/metadata?_format=json&x=%2F", headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-provider"] == "stub"
    echo = response.json()
    assert echo["method"] == "GET"
    assert echo["uri"] == "/A11111/STU3/1/gpconnect/metadata?_format=json&x=%2F"
    received = {k.lower(): v for k, v in echo["headers"]}
    for name, value in headers.items():
        if name.lower() != "x-forwarded-for":
            assert received[name.lower()] == value
    assert received["host"] == "provider.test"
    assert received["x-forwarded-for"] == "10.9.8.7, 127.0.0.1"
    assert received["forwarded"] == f'for=127.0.0.1;host="127.0.0.1:{ssp.url.rsplit(":", 1)[1]}";proto=https'


def test_forwarded_requests_are_timed_and_refusals_are_not(ssp: SspServer, directory: Directory,
                                                            consumer_client: httpx.Client) -> None:
    """sds_ssp_provider_duration_seconds observes each provider round trip; a refusal never reaches one."""
    name = "sds_ssp_provider_duration_seconds_count"
    # Another worker process may still hold an earlier test's increments (written within BATCH_SECONDS): the
    # counts to start from are the ones that stay put for longer than that.
    def counts() -> tuple[float, float]:
        return ssp.metric(name), ssp.metric("sds_ssp_decisions_total", outcome="ALLOWED")

    before, allowed = now = counts()
    for _ in range(20):
        time.sleep(metrics.BATCH_SECONDS * 1.5)
        if (now := counts()) == (before, allowed):
            break
        before, allowed = now
    assert _get(consumer_client, ssp, f"{FOUNDATIONS}/metadata").status_code == 200
    refused = {**ssp_headers(), "Ssp-InteractionID": SLOTS}
    assert _get(consumer_client, ssp, f"{FOUNDATIONS}/Slot", refused).status_code == 403
    deadline = time.monotonic() + 5  # counted once the answer is written
    while ssp.metric(name) < before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ssp.metric(name) == before + 1
    assert ssp.metric("sds_ssp_decisions_total", outcome="ALLOWED") == allowed + 1
    assert ssp.metric("sds_ssp_provider_duration_seconds_sum") > 0


def test_allowed_post_forwards_the_body(ssp: SspServer, directory: Directory, consumer_client: httpx.Client) -> None:
    token = make_jwt(claims(aud=STRUCTURED, scope="patient/*.read"))
    body = json.dumps({"resourceType": "Parameters", "parameter": []})
    response = _get(consumer_client, ssp, f"{STRUCTURED}/Patient/$gpc.getstructuredrecord",
                    {**ssp_headers(STRUCTURED_RECORD, token=token), "Content-Type": "application/fhir+json"},
                    method="POST", content=body)
    assert response.status_code == 200, response.text
    echo = response.json()
    assert (echo["method"], echo["body"]) == ("POST", body)
    assert echo["uri"] == "/A11111/STU3/1/gpconnect/structured/Patient/$gpc.getstructuredrecord"


def test_chunked_request_body_is_forwarded(ssp: SspServer, directory: Directory,
                                           consumer_client: httpx.Client) -> None:
    token = make_jwt(claims(aud=STRUCTURED, scope="patient/*.read"))
    parts = [b'{"resourceType":', b'"Parameters",', b'"parameter":[]}']
    response = _get(consumer_client, ssp, f"{STRUCTURED}/Patient/$gpc.getstructuredrecord",
                    {**ssp_headers(STRUCTURED_RECORD, token=token), "Content-Type": "application/fhir+json"},
                    method="POST", content=iter(parts))
    assert response.status_code == 200, response.text
    echo = response.json()
    assert echo["body"] == b"".join(parts).decode()
    assert {k.lower(): v for k, v in echo["headers"]}["transfer-encoding"] == "chunked"


def test_provider_with_an_untrusted_certificate_is_502(pki: Pki, tmp_path: Path, database_url: str,
                                                       directory: Directory, provider: Provider) -> None:
    """The SSP verifies providers: trusting another CA, it cannot reach the (real) provider."""
    port = free_port()
    process = start_ssp({
        "SDS_DATABASE_URL": database_url, "SDS_SSP_BIND": f"127.0.0.1:{port}", "SDS_SSP_WORKERS": "1",
        "SDS_SSP_CONNECT_TO": f"{PROVIDER_FQDN}:443:127.0.0.1:{provider.port}",
        "SDS_SSP_CLIENT_CERT": str(pki.ssp_client[0]), "SDS_SSP_CLIENT_KEY": str(pki.ssp_client[1]),
    }, tmp_path / "ssp.log", port)
    try:
        with httpx.Client() as client:
            response = client.get(f"http://127.0.0.1:{port}/{FOUNDATIONS}/metadata",
                                  headers={**ssp_headers(), **JSON_ACCEPT})
    finally:
        stop_ssp(process)
    _assert_refusal(response, 502, "transient", f"ERROR_COMMUNICATING_TO_ENDPOINT_URL_{FOUNDATIONS}/metadata")


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500, 503])
def test_provider_errors_pass_through(ssp: SspServer, directory: Directory, consumer_client: httpx.Client,
                                      status: int) -> None:
    response = _get(consumer_client, ssp, f"{FOUNDATIONS}/metadata?status={status}")
    assert response.status_code == status
    assert response.reason_phrase == f"Status {status}"
    assert response.json()["method"] == "GET"


def test_gzip_passes_through_untouched(ssp: SspServer, directory: Directory, consumer_client: httpx.Client) -> None:
    with consumer_client.stream("GET", f"{ssp.url}/{FOUNDATIONS}/metadata?gzip=1",
                                headers={**ssp_headers(), "Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) == len(raw)
    assert json.loads(gzip.decompress(raw))["method"] == "GET"


def _vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_ten_megabytes_stream_through_chunked_without_being_held(
    ssp: SspServer, directory: Directory, consumer_client: httpx.Client
) -> None:
    (worker,) = ssp.worker_pids()
    size = 10 * 1024 * 1024
    # Warm up the same path (TLS sessions, pools, imports) so only the 10 MB body can move the peak.
    for _ in range(2):
        _get(consumer_client, ssp, f"{FOUNDATIONS}/metadata?big={1024 * 1024}").read()
    peak_before = _vm_kb(worker, "VmHWM")
    received = 0
    with consumer_client.stream("GET", f"{ssp.url}/{FOUNDATIONS}/metadata?big={size}",
                                headers=ssp_headers()) as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        for chunk in response.iter_raw():
            received += len(chunk)
    assert received == size
    growth_kb = _vm_kb(worker, "VmHWM") - peak_before
    assert growth_kb < 4 * 1024, f"the SSP worker's peak RSS grew by {growth_kb} kB for a 10 MB body"


# ---- Refusals: exact status and body -----------------------------------------------------------------------


REFUSALS: list[tuple[str, str, dict[str, str | FreshBearer], str, int, str, str]] = [
    ("missing header", "GET", {"Ssp-TraceID": "<drop>"}, f"{FOUNDATIONS}/metadata", 400, "invalid",
     "MISSING_OR_INVALID_HEADER_Ssp-TraceID"),
    ("unknown interaction", "GET", {"Ssp-InteractionID": "urn:nhs:names:services:gpconnect:fhir:rest:read:x-1"},
     f"{FOUNDATIONS}/metadata", 400, "invalid",
     "INTERACTION_ID_NOT_RECOGNISED_urn:nhs:names:services:gpconnect:fhir:rest:read:x-1"),
    ("sender not accredited", "POST", {"Ssp-InteractionID": BOOK}, f"{FOUNDATIONS}/Appointment", 403,
     "forbidden", f"ASID_CHECK_FAILED_MESSAGESENDER_{CONSUMER_ASID}"),
    ("receiver has no MHS", "GET", {"Ssp-InteractionID": SLOTS}, f"{FOUNDATIONS}/Slot", 403, "forbidden",
     f"PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_{PROVIDER_ASID}"),
    ("target varies", "GET", {}, "https://provider.test/A11111/STU3/1/Patient/1", 400, "invalid",
     "ENDPOINT_https://provider.test/A11111/STU3/1/gpconnect_CPAID_S000000000001_VARIES_FROM_TARGETURL_"
     "https://provider.test/A11111/STU3/1/Patient/1"),
    ("target with :443", "GET", {}, "https://provider.test:443/A11111/STU3/1/gpconnect/metadata", 400, "invalid",
     "ENDPOINT_https://provider.test/A11111/STU3/1/gpconnect_CPAID_S000000000001_VARIES_FROM_TARGETURL_"
     "https://provider.test:443/A11111/STU3/1/gpconnect/metadata"),
    ("no agreement", "GET", {"Ssp-From": STRANGER_ASID}, f"{FOUNDATIONS}/metadata", 403, "forbidden",
     f"FOT_CHECK_FAILED_MESSAGESENDER_{STRANGER_ASID}_MESSAGERECEIVER_{PROVIDER_ASID}"),
    ("JWT broken", "GET", {"Authorization": FreshBearer(scope="patient/*.read")},
     f"{FOUNDATIONS}/metadata", 400, "invalid", "INVALID_JWT_REQUESTED_SCOPE_INVALID_FOR_INTERACTION"),
]


@pytest.mark.parametrize(("method", "changes", "target", "status", "code", "token"), [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])
def test_refusal(ssp: SspServer, directory: Directory, consumer_client: httpx.Client, stranger_client: httpx.Client,
                 method: str, changes: dict[str, str | FreshBearer], target: str, status: int, code: str,
                 token: str) -> None:
    headers = {**ssp_headers(), **JSON_ACCEPT}
    for name, value in changes.items():
        if value == "<drop>":
            del headers[name]
        else:
            headers[name] = value.value() if isinstance(value, FreshBearer) else value
    client = stranger_client if headers["Ssp-From"] == STRANGER_ASID else consumer_client
    _assert_refusal(_get(client, ssp, target, headers, method=method), status, code, token)


@pytest.mark.parametrize(("method", "interaction"), [("DELETE", None), ("POST", None)],
                         ids=["not forwarded", "not the interaction's verb"])
def test_method_not_allowed(ssp: SspServer, directory: Directory, consumer_client: httpx.Client,
                            method: str, interaction: str | None) -> None:
    response = _get(consumer_client, ssp, f"{FOUNDATIONS}/metadata", {**ssp_headers(), **JSON_ACCEPT},
                    method=method)
    assert response.status_code == 405
    assert response.json() == {"resourceType": "OperationOutcome", "issue": [{
        "code": "forbidden", "severity": "fatal", "details": {"coding": [{
            "code": "405", "system": "https://fhir.nhs.uk/StructureDefinition/spine-operationoutcome-1",
            "display": "405: Method Not Allowed"}]}}]}


def test_refusals_are_xml_unless_json_is_asked_for(ssp: SspServer, directory: Directory,
                                                   stranger_client: httpx.Client) -> None:
    response = _get(stranger_client, ssp, f"{FOUNDATIONS}/metadata", ssp_headers(sender=STRANGER_ASID))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/fhir+xml;charset=utf-8"
    token = f"FOT_CHECK_FAILED_MESSAGESENDER_{STRANGER_ASID}_MESSAGERECEIVER_{PROVIDER_ASID}"
    body = GUID.sub("GUID", response.text)
    assert body == (
        "<?xml version='1.0' encoding='utf-8'?>\n"
        '<OperationOutcome xmlns="http://hl7.org/fhir"><id value="GUID" /><issue><severity value="error" />'
        '<code value="forbidden" /><details><coding><system value="' + SYSTEM + '" /><code value="403" />'
        f'<display value="{token}" /></coding></details><diagnostics value="{token}" /></issue></OperationOutcome>'
    )


def test_wrong_certificate_cn(ssp: SspServer, directory: Directory, pki: Pki) -> None:
    with httpx.Client(verify=pki.client_context(pki.wrong_cn)) as client:
        response = _get(client, ssp, f"{FOUNDATIONS}/metadata", {**ssp_headers(), **JSON_ACCEPT})
    _assert_refusal(response, 495, "security", f"FQDN_CHECK_FAILED_MESSAGESENDER_{CONSUMER_ASID}")


def test_no_client_certificate_is_refused_in_the_handshake(ssp: SspServer, directory: Directory, pki: Pki) -> None:
    with httpx.Client(verify=pki.client_context(None)) as client, pytest.raises(httpx.TransportError):
        _get(client, ssp, f"{FOUNDATIONS}/metadata").read()


# ---- Provider failures -----------------------------------------------------------------------------------


def test_unreachable_provider_is_502(ssp: SspServer, directory: Directory, consumer_client: httpx.Client) -> None:
    target = f"{DOWN_ROOT}/metadata"
    token = make_jwt(claims(aud=DOWN_ROOT))
    response = _get(consumer_client, ssp, target, {**ssp_headers(receiver=DOWN_ASID, token=token), **JSON_ACCEPT})
    _assert_refusal(response, 502, "transient", f"ERROR_COMMUNICATING_TO_ENDPOINT_URL_{target}")


def test_provider_timeout_is_504(ssp: SspServer, directory: Directory, consumer_client: httpx.Client) -> None:
    target = f"{FOUNDATIONS}/metadata?sleep=3"
    started = time.monotonic()
    response = _get(consumer_client, ssp, target, {**ssp_headers(), **JSON_ACCEPT})
    assert time.monotonic() - started < 2.9
    _assert_refusal(response, 504, "timeout", f"TIMEOUT_COMMUNICATING_TO_ENDPOINT_URL_{target}")


# ---- Audit ---------------------------------------------------------------------------------------------


def _wait_for_decision(session: Session, trace_id: str) -> SspDecision:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        session.rollback()
        row = session.scalar(select(SspDecision).where(SspDecision.trace_id == trace_id))
        if row is not None:
            return row
        time.sleep(0.05)
    raise AssertionError(f"no audit row for {trace_id}")


def test_decisions_are_audited(ssp: SspServer, directory: Directory, consumer_client: httpx.Client,
                               committed_session: Session) -> None:
    allowed, refused = str(uuid.uuid4()), str(uuid.uuid4())
    _get(consumer_client, ssp, f"{FOUNDATIONS}/metadata?status=404", ssp_headers(trace_id=allowed)).read()
    _get(consumer_client, ssp, f"{FOUNDATIONS}/metadata", ssp_headers(receiver=DOWN_ASID, trace_id=refused)).read()
    row = _wait_for_decision(committed_session, allowed)
    assert (row.outcome, row.status, row.provider_status) == ("ALLOWED", 404, 404)
    assert (row.from_asid, row.to_asid, row.method) == (CONSUMER_ASID, PROVIDER_ASID, "GET")
    assert row.target_url == f"{FOUNDATIONS}/metadata?status=404"
    assert row.latency_ms is not None and row.latency_ms > 0
    row = _wait_for_decision(committed_session, refused)
    assert (row.outcome, row.status, row.provider_status) == (
        f"ENDPOINT_{DOWN_ROOT}_CPAID_{row.outcome.split('_CPAID_')[1].split('_')[0]}_VARIES_FROM_TARGETURL_"
        f"{FOUNDATIONS}/metadata", 400, None)


def test_date_and_server_are_the_ssps_own(ssp: SspServer, directory: Directory, consumer_client: httpx.Client) -> None:
    response = _get(consumer_client, ssp, f"{FOUNDATIONS}/metadata")
    assert response.status_code == 200
    assert len(response.headers.get_list("date")) == 1
    assert len(response.headers.get_list("server")) == 1
