"""The FHIR API on a real socket: the app under werkzeug's threaded WSGI server, spoken to with http.client.
Large Bundles go out chunked (gzipped as they stream when asked); small ones with a Content-Length."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sds_registry.services.accredited_systems import create_accredited_system
from sds_registry.services.mhs import create_mhs
from sds_registry.services.writes import CLI_ACTOR
from tests.functional.fhir.validation import check_fhir

BASE = "/spine-directory/FHIR/R4"
INTERACTIONS = [f"urn:nhs:names:services:psis:REPC_IN{n:06d}UK05" for n in range(480)]
DEVICE = (f"{BASE}/Device?organization=https://fhir.nhs.uk/Id/ods-organization-code%7CYES"
          f"&identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId%7C{INTERACTIONS[0]}")
ENDPOINT = (f"{BASE}/Endpoint?organization=https://fhir.nhs.uk/Id/ods-organization-code%7CYES"
            f"&identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId%7C{INTERACTIONS[0]}")


class Http11Handler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked transfer for bodies without a length

    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


@pytest.fixture
def server(app: Flask, committed_session: Session) -> Iterator[BaseWSGIServer]:
    create_accredited_system(committed_session, {"asid": "928942012545", "ods_code": "YES", "party_key": "YES-0000806",
                                       "manufacturer_org": "YES", "interactions": INTERACTIONS},
                             CLI_ACTOR)
    create_mhs(committed_session, {"ods_code": "YES", "party_key": "YES-0000806", "interaction_id": INTERACTIONS[0],
                         "endpoints": ["https://msg.int.spine2.ncrs.nhs.uk/reliablemessaging/reliablerequest"],
                         "cpa_id": "S20001A000182", "retries": 2}, CLI_ACTOR)
    committed_session.commit()
    srv = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Http11Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        thread.join(5)
        srv.server_close()


def request(srv: BaseWSGIServer, path: str, **headers: str) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_port, timeout=30)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def test_large_bundle_is_chunked(server: BaseWSGIServer) -> None:
    response, body = request(server, DEVICE)
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked" and response.getheader("Content-Length") is None
    assert response.getheader("Content-Type") == "application/fhir+json; charset=utf-8"
    assert response.getheader("Cache-Control") == "no-store"
    bundle = check_fhir(body)
    assert len(bundle.entry[0].resource.extension) == 481
    assert f"http://127.0.0.1:{server.server_port}{BASE}/Device?organization=https://fhir.nhs.uk/Id/" \
           "ods-organization-code|YES&identifier=" in json.loads(body)["link"][0]["url"]


def test_large_bundle_is_gzipped_as_it_streams(server: BaseWSGIServer) -> None:
    response, body = request(server, DEVICE, **{"Accept-Encoding": "gzip"})
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Content-Encoding") == "gzip"
    assert "Accept-Encoding" in (response.getheader("Vary") or "")
    plain = gzip.decompress(body)
    assert len(body) < len(plain) / 5
    check_fhir(plain)


def test_small_bundle_has_a_length_and_is_gzipped_whole(server: BaseWSGIServer) -> None:
    response, body = request(server, ENDPOINT)
    assert response.getheader("Content-Length") == str(len(body))
    assert response.getheader("Transfer-Encoding") is None
    check_fhir(body)
    zipped, zbody = request(server, ENDPOINT, **{"Accept-Encoding": "gzip"})
    assert zipped.getheader("Content-Encoding") == "gzip" and gzip.decompress(zbody) != b""
    cid = "6d3d3674-7ce5-11ec-90d6-0242ac120003"
    errors, _ = request(server, f"{BASE}/Device?x=1", **{"X-Correlation-Id": cid})
    assert errors.status == 400 and errors.getheader("X-Correlation-ID") == cid


def test_keep_alive(server: BaseWSGIServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    for _ in range(3):
        conn.request("GET", ENDPOINT)
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["total"] == 1
    conn.request("GET", DEVICE)
    chunked = conn.getresponse()
    assert json.loads(chunked.read())["total"] == 1
    conn.close()


def test_hsts_only_over_tls(client: FlaskClient) -> None:
    secure = client.get("/healthcheck", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" not in client.get("/healthcheck").headers
