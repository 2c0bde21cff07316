"""Security refusals of the SSP on the wire (issue 13 point 4): an audit JWT whose ``alg`` is not ``none``, a client
certificate from another CA, an expired client certificate, and TLS below 1.2. None of them reaches the
provider; the SSP keeps serving the right consumer."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy.orm import Session

from sds_registry.config import Settings
from sds_registry.ssp.proxy import server_ssl_context
from tests.functional.ssp.conftest import Pki, SspServer
from tests.support.tls import handshake, issue_client_certificate, legacy_client_context, legacy_tls_works
from tests.unit.ssp.fixtures import CONSUMER_FQDN, FOUNDATIONS, Directory, claims, make_jwt, seed, ssp_headers


@pytest.fixture
def directory(committed_session: Session, audit_settled: None) -> Directory:
    return seed(committed_session)


def _port(ssp: SspServer) -> int:
    return int(ssp.url.rsplit(":", 1)[1])


def _bearer(case: str) -> str:
    header = {"HS256 signed": None, "HS256 unsigned": {"alg": "HS256", "typ": "JWT"},
              "RS256 unsigned": {"alg": "RS256", "typ": "JWT"}, "None capitalised": {"alg": "None", "typ": "JWT"},
              "alg absent": {"typ": "JWT"}, "alg null": {"alg": None, "typ": "JWT"}}[case]
    if header is None:  # a real HMAC signature: the consumer "signs" with a key the SSP must not accept
        return jwt.encode(claims(), "a-shared-secret-of-32-bytes-or-more!", algorithm="HS256")
    return make_jwt(claims(), header=header)


@pytest.mark.parametrize("case", ["HS256 signed", "HS256 unsigned", "RS256 unsigned", "None capitalised",
                                  "alg absent", "alg null"])
def test_an_audit_jwt_with_alg_other_than_none_is_refused(ssp: SspServer, directory: Directory,
                                                          consumer_client: httpx.Client, case: str) -> None:
    token = _bearer(case)
    response = consumer_client.get(f"{ssp.url}/{FOUNDATIONS}/metadata",
                                   headers={**ssp_headers(token=token), "Accept": "application/fhir+json"})
    assert response.status_code == 400, response.text
    diagnostics = response.json()["issue"][0]["diagnostics"]
    expected = ("INVALID_JWT_NOT_THREE_BASE64URL_PARTS_WITH_EMPTY_SIGNATURE" if case == "HS256 signed"
                else "INVALID_JWT_ALG_NOT_NONE")
    assert diagnostics.startswith(expected), diagnostics
    assert "x-provider" not in response.headers  # answered by the SSP, never forwarded
    # The same request with a good token passes: the refusal was the alg.
    good = consumer_client.get(f"{ssp.url}/{FOUNDATIONS}/metadata", headers=ssp_headers(token=make_jwt(claims())))
    assert good.status_code == 200 and good.headers["x-provider"] == "stub"


def _http_answer(port: int, context: ssl.SSLContext) -> bytes | None:
    """The answer to one GET over TLS, or None when the TLS layer refuses (handshake alert, reset, close).
    Under TLS 1.3 the client's handshake completes before the server has checked its certificate, so the
    refusal shows on the first read."""
    request = (f"GET /{FOUNDATIONS}/metadata HTTP/1.1\r\nHost: localhost\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in ssp_headers().items()) + "\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(request)
                answer = tls.recv(65536)
        except (ssl.SSLError, ConnectionError):
            return None
    return answer or None


@pytest.mark.parametrize("who", ["another CA", "expired", "expired, another CA"])
def test_a_client_certificate_the_ssp_does_not_trust_is_refused(ssp: SspServer, directory: Directory, pki: Pki,
                                                                tmp_path: Path, who: str) -> None:
    """The consumer's own CN (so only trust decides): from a CA the SSP does not trust, or expired."""
    ca = None if "another CA" in who else pki.ca_pair
    cert = issue_client_certificate(tmp_path, "client", CONSUMER_FQDN, ca=ca, expired="expired" in who)
    assert _http_answer(_port(ssp), pki.client_context(cert)) is None
    answer = _http_answer(_port(ssp), pki.client_context(pki.consumer))
    assert answer is not None and answer.startswith(b"HTTP/1.1 200 "), answer
    assert ssp.process.poll() is None


def test_tls_below_1_2_is_refused(ssp: SspServer, pki: Pki) -> None:
    """A client offering only TLS 1.0/1.1 (with the right client certificate) fails the handshake, where the
    same client completes one with a permissive server in this process (the control: see tests/support/tls.py).
    Should the platform refuse to offer TLS 1.1 at all, the control fails and the test checks the SSP's
    context instead."""
    settings = Settings(ssp_tls_cert=str(pki.ssp_server[0]), ssp_tls_key=str(pki.ssp_server[1]),
                        ssp_tls_client_ca=str(pki.ca))
    context = server_ssl_context(settings)
    assert context is not None and context.minimum_version >= ssl.TLSVersion.TLSv1_2
    if legacy_tls_works(pki.ssp_server):
        assert handshake(_port(ssp), legacy_client_context(pki.consumer)) is None
    assert handshake(_port(ssp), pki.client_context(pki.consumer)) in ("TLSv1.2", "TLSv1.3")
