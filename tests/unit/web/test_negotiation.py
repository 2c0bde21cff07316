"""Accept and Accept-Encoding, read with werkzeug's parser by every facade: gzip, FHIR types, the SSP's XML/JSON."""

from __future__ import annotations

import gzip

import pytest
from flask.testing import FlaskClient

from sds_registry.ssp.outcome import wants_json
from sds_registry.web.fhir import FHIR_JSON, FHIR_XML, JSON, negotiate
from sds_registry.web.negotiation import gzip_accepted


@pytest.mark.parametrize(("header", "expected"), [
    ("", False),
    ("gzip", True),
    ("GZIP", True),
    ("x-gzip", True),
    ("gzip, deflate", True),
    ("gzip;q=0.5", True),
    ("gzip;q=0", False),
    ("gzip;Q=0", False),  # q is case-insensitive (RFC 9110 §12.4.2)
    ("gzip; q=0.000", False),
    ("gzip;q=0, *", False),  # an explicit entry beats "*" (RFC 9110 §12.5.3)
    ("*, gzip;q=0", False),
    ("x-gzip;q=0, gzip", True),
    ("*", True),
    ("*;q=0", False),
    ("identity", False),
    ("deflate, br", False),
    ("identity, *;q=0", False),
])
def test_gzip_accepted(header: str, expected: bool) -> None:
    assert gzip_accepted(header) is expected
    assert gzip_accepted(header) is expected  # the memoised answer too


@pytest.mark.parametrize(("accept", "expected"), [
    ("*/*, application/fhir+xml", FHIR_JSON),  # the first recognised type, in the client's order
    ("application/fhir+xml, */*", FHIR_XML),
    ("application/fhir+json;Q=0, */*", FHIR_JSON),
    ("application/xml;q=0, application/json", JSON),
    ("text/xml, application/fhir+json", FHIR_JSON),  # text/xml is not an Accept type we answer with
    ("application/fhir+json;q=0", None),
])
def test_fhir_negotiate(accept: str, expected: str | None) -> None:
    assert negotiate(accept, []) == expected


def test_fhir_format_overrides_accept() -> None:
    assert negotiate("application/fhir+json", ["xml"]) == FHIR_XML
    assert negotiate("application/fhir+xml", ["json", "application/json"]) == JSON


@pytest.mark.parametrize(("accept", "expected"), [
    ("application/fhir+json;Q=0, application/fhir+xml", False),
    ("application/json;q=0.9, application/xml;q=0.8", True),
    ("application/xml, application/json", False),
    ("*/*, application/json;q=0.1", True),
])
def test_ssp_wants_json(accept: str, expected: bool) -> None:
    assert wants_json(accept) is expected


@pytest.mark.parametrize(("header", "zipped"), [
    ("gzip", True), ("gzip;Q=0", False), ("gzip;q=0, *", False), ("*;q=0", False), ("identity", False),
    ("x-gzip", True), ("*", True),
])
def test_api_answer_gzip(client: FlaskClient, header: str, zipped: bool) -> None:
    response = client.get("/api/interactions", headers={"Accept-Encoding": header})
    assert response.status_code == 200
    assert "Accept-Encoding" in response.headers["Vary"]
    assert (response.headers.get("Content-Encoding") == "gzip") is zipped
    body = response.get_data()
    assert (gzip.decompress(body) if zipped else body).startswith(b"{")
