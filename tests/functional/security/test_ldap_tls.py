"""LDAPS and StartTLS take TLS 1.2 or later only, and refuse an expired client certificate (issue 13 point 4).

A client offering only TLS 1.0/1.1 fails the handshake, where the same client completes one with a
permissive server in this process (the control, tests/support/tls.py); should the platform refuse to offer
TLS 1.1 at all, the server context's ``minimum_version`` is what is checked. The SSP's side of the same
checks is tests/functional/ssp/test_security_refusals.py; a certificate from another CA is
tests/functional/ldap/test_server_clients.py.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from sds_registry.config import Settings
from sds_registry.ldap import codec
from sds_registry.ldap.directory import Directory
from sds_registry.ldap.tls import server_context
from tests.support.ldap import Pki, RunningServer, base_settings, load_sample, make_pki, running_server, search_message
from tests.support.tls import handshake, issue_client_certificate, legacy_client_context, legacy_tls_works

START_TLS = codec.tlv(b"\x30", codec.encode_int(1) + codec.tlv(b"\x77", b"\x80\x16" + b"1.3.6.1.4.1.1466.20037"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(pki: Pki, db: Engine) -> Iterator[RunningServer]:
    load_sample(db)
    directory = Directory(db, Settings())
    settings = base_settings(ldaps_bind="127.0.0.1:0", ldap_tls_cert=str(pki.server_cert),
                             ldap_tls_key=str(pki.server_key), ldap_tls_client_ca=str(pki.ca))
    try:
        with running_server(settings, directory) as server:
            yield server
    finally:
        directory.close()


def _good_client(pki: Pki, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    certificate = cert or (pki.client_cert, pki.client_key)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


def _start_tls(server: RunningServer, context: ssl.SSLContext) -> str | None:
    """StartTLS on the plain port, then the handshake: the version agreed, or None when it fails."""
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        raw.sendall(START_TLS)
        answer = raw.recv(65536)
        assert answer[:1] == b"\x30" and b"\x78" in answer[:10], answer  # an ExtendedResponse
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.version()
        except (ssl.SSLError, ConnectionError):
            return None


def test_the_server_context_is_tls_1_2_or_later(pki: Pki) -> None:
    settings = base_settings(ldap_tls_cert=str(pki.server_cert), ldap_tls_key=str(pki.server_key))
    context = server_context(settings)
    assert context is not None and context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_tls_below_1_2_is_refused_on_ldaps_and_start_tls(tls_server: RunningServer, pki: Pki) -> None:
    assert tls_server.ldaps_port is not None
    legacy = legacy_client_context((pki.client_cert, pki.client_key))
    if legacy_tls_works((pki.server_cert, pki.server_key)):
        assert handshake(tls_server.ldaps_port, legacy) is None
        assert _start_tls(tls_server, legacy) is None
    assert handshake(tls_server.ldaps_port, _good_client(pki)) in ("TLSv1.2", "TLSv1.3")
    assert _start_tls(tls_server, _good_client(pki)) in ("TLSv1.2", "TLSv1.3")


def test_an_expired_client_certificate_is_refused_on_ldaps(tls_server: RunningServer, pki: Pki,
                                                           tmp_path: Path) -> None:
    """Signed by the right CA but expired: the search never gets an answer (under TLS 1.3 the refusal shows on
    the first read, after the client's side of the handshake)."""
    assert tls_server.ldaps_port is not None
    ca_key = pki.ca.with_suffix(".key")
    expired = issue_client_certificate(tmp_path, "expired", "gpc-consumer", ca=(pki.ca, ca_key), expired=True)
    for cert, answered in ((expired, False), ((pki.client_cert, pki.client_key), True)):
        with socket.create_connection((tls_server.host, tls_server.ldaps_port), timeout=10) as raw:
            try:
                with _good_client(pki, cert).wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(search_message(1))
                    data = tls.recv(65536)
            except (ssl.SSLError, ConnectionError):
                data = b""
        assert bool(data) == answered, (cert, data[:50])
