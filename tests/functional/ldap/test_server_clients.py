"""A real LDAP server on 127.0.0.1:0 driven by ldap3 and OpenLDAP's ldapsearch: plain, StartTLS, LDAPS + client certs.

Behind it is the real Directory on the test database (SQLite and PostgreSQL, see tests/conftest.py), loaded
through the LDIF importer; each backend is served both on the loop and from the thread pool.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

with warnings.catch_warnings():  # ldap3 2.9 imports names pyasn1 0.6 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3
from sqlalchemy.engine import Engine

from sds_registry.config import Settings
from sds_registry.ldap import codec, responses
from sds_registry.ldap.directory import Directory
from tests.support.ldap import (
    STRUCTURED,
    Pki,
    RunningServer,
    assert_serves,
    base_settings,
    ldapsearch,
    load_sample,
    make_pki,
    raw_socket,
    running_server,
    search_message,
)


@pytest.fixture
def directory(db: Engine) -> Iterator[Directory]:
    load_sample(db)
    d = Directory(db, Settings())
    yield d
    d.close()


@pytest.fixture(params=["inline", "threads"])
def server(request: pytest.FixtureRequest, directory: Directory) -> Iterator[RunningServer]:
    with running_server(base_settings(), directory, inline=request.param == "inline") as s:
        yield s


@contextmanager
def ldap3_connection(server: RunningServer, **kw: object) -> Iterator[ldap3.Connection]:
    """An anonymously bound ldap3 connection, unbound (socket closed) on exit."""
    srv = ldap3.Server(server.host, port=server.port, get_info=ldap3.NONE)
    conn = ldap3.Connection(srv, auto_bind=True, **kw)  # type: ignore[arg-type]
    try:
        yield conn
    finally:
        conn.unbind()


@contextmanager
def ldap3_tls_connection(server: ldap3.Server, start_tls: bool = False) -> Iterator[ldap3.Connection]:
    conn = ldap3.Connection(server, receive_timeout=5)
    try:
        with warnings.catch_warnings():
            # ldap3 2.9 checks the host name with ssl.match_hostname, deprecated since Python 3.7
            warnings.filterwarnings("ignore", "ssl.match_hostname", DeprecationWarning)
            if start_tls:
                conn.open()
                assert conn.start_tls()
            assert conn.bind()
        yield conn
    finally:
        conn.unbind()


# ---- ldap3 ----------------------------------------------------------------------------------------------------


def test_gp_connect_two_step_lookup_with_ldap3(server: RunningServer) -> None:
    with ldap3_connection(server) as conn:  # ldap3 itself refuses the documented "ou=services, o=nhs"
        assert conn.search(
            "ou=Services,o=NHS",
            f"(&(nhsIDCode=T99999) (objectClass=nhsMhs) (nhsMhsSvcIA={STRUCTURED}))",
            attributes=["nhsMhsEndPoint", "nhsMhsPartyKey"],
        )
        (entry,) = conn.response
        assert entry["dn"] == "uniqueIdentifier=472b35d4641b76454b13,ou=Services,o=nhs"
        assert entry["raw_attributes"] == {
            "nhsMHSEndPoint": [b"https://pcs.thirdparty.nhs.uk/T99999/STU3/1/gpconnect/structured"],
            "nhsMHSPartyKey": [b"T99999-9999999"],
        }
        assert conn.search(
            "ou=services,o=nhs",
            "(&(nhsIDCode=T99999) (objectClass=nhsAS) (nhsMHSPartyKey=T99999-9999999))",
            attributes=["uniqueIdentifier"],
        )
        assert [e["raw_attributes"]["uniqueIdentifier"] for e in conn.response] == [[b"999999999999"]]


def test_results_codes_limits_and_whoami_with_ldap3(server: RunningServer) -> None:
    with ldap3_connection(server) as conn:
        assert not conn.search("ou=nowhere,o=nhs", "(objectClass=*)")
        assert (conn.result["result"], conn.result["dn"]) == (32, "o=nhs")
        conn.search("ou=services,o=nhs", "(nhsIDCode=B81001)", size_limit=5)
        assert conn.result["result"] == 4 and len(conn.response) == 5
        assert conn.extend.standard.who_am_i() in (None, "")
        assert conn.compare("uniqueIdentifier=999999999999,ou=services,o=nhs", "nhsIDCode", "T99999") is True
        assert conn.compare("uniqueIdentifier=999999999999,ou=services,o=nhs", "nhsIDCode", "t99999") is False
        assert not conn.delete("uniqueIdentifier=999999999999,ou=services,o=nhs")
        assert conn.result["result"] == 53 and "/api" in conn.result["message"]


def test_paged_search_with_ldap3(server: RunningServer) -> None:
    with ldap3_connection(server) as conn:
        pages = []
        cookie: bytes | None = None
        while True:
            conn.search(
                "ou=services,o=nhs",
                "(nhsIDCode=B81001)",
                attributes=["uniqueIdentifier"],
                paged_size=10,
                paged_cookie=cookie,
            )
            pages.append(len(conn.response))
            cookie = conn.result["controls"]["1.2.840.113556.1.4.319"]["value"]["cookie"]
            if not cookie:
                break
        assert pages == [10, 10, 5]


def test_many_connections_at_once(server: RunningServer) -> None:
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with ldap3_connection(server) as conn:
                for _ in range(20):
                    conn.search("ou=services,o=nhs", "(uniqueIdentifier=999999999999)", attributes=["nhsIDCode"])
                    assert len(conn.response) == 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# ---- OpenLDAP's ldapsearch ----------------------------------------------------------------------------------------


def test_gp_connect_documented_queries_with_ldapsearch(server: RunningServer) -> None:
    """The GPC SDS page's commands as written: spaces between sub-filters, mixed-case attribute names."""
    step1 = ldapsearch(
        [
            "-H",
            server.uri,
            "-b",
            "ou=services, o=nhs",
            f"(&(nhsidcode=T99999) (objectClass=nhsMhs) (nhsMhsSvcIA={STRUCTURED}))",
            "nhsMhsEndPoint",
            "nhsMhsPartyKey",
        ]
    )
    assert step1.returncode == 0, step1.stderr
    assert step1.stdout.split("\n") == [
        # Exactly the GP Connect worked example: the requested names, spelled and ordered as requested.
        "dn: uniqueIdentifier=472b35d4641b76454b13,ou=Services,o=nhs",
        "nhsMhsEndPoint: https://pcs.thirdparty.nhs.uk/T99999/STU3/1/gpconnect/structured",
        "nhsMhsPartyKey: T99999-9999999",
        "",
        "",
    ]
    step2 = ldapsearch(
        [
            "-H",
            server.uri,
            "-b",
            "ou=services, o=nhs",
            "(&(nhsidcode=T99999) (objectclass=nhsAs) (nhsMHSPartyKey=T99999-9999999))",
            "uniqueIdentifier",
        ]
    )
    assert step2.returncode == 0, step2.stderr
    assert "uniqueIdentifier: 999999999999" in step2.stdout


def test_ldapsearch_paging_missing_base_and_whoami(server: RunningServer) -> None:
    paged = ldapsearch(
        ["-H", server.uri, "-b", "ou=services,o=nhs", "-E", "pr=7/noprompt", "(nhsIDCode=B81001)", "1.1"]
    )
    assert paged.returncode == 0, paged.stderr
    assert paged.stdout.count("dn: ") == 25
    missing = ldapsearch(["-H", server.uri, "-b", "ou=other,o=nhs", "(objectClass=*)"])
    assert missing.returncode == 32
    who = subprocess.run(
        [shutil.which("ldapwhoami") or "ldapwhoami", "-x", "-H", server.uri],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, LDAPNOINIT="1"),
    )
    assert who.returncode == 0 and who.stdout.strip() == "anonymous"


def test_ldapsearch_file_of_filters_on_one_connection(server: RunningServer, tmp_path: Path) -> None:
    """The benchmark's way of calling: ldapsearch -f with a filter pattern, many searches per connection."""
    lines = ["(nhsIDCode=T99999)(objectClass=nhsAs)", "(nhsIDCode=X)(objectClass=nhsAs)"] * 50
    path = tmp_path / "filters"
    path.write_text("\n".join(lines) + "\n")
    out = ldapsearch(["-H", server.uri, "-b", "ou=Services,o=nhs", "-f", str(path), "(&%s)", "uniqueIdentifier"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("uniqueIdentifier: 999999999999") == 50


# ---- TLS: StartTLS and LDAPS with mutual authentication -------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(pki: Pki, directory: Directory) -> Iterator[RunningServer]:
    settings = base_settings(
        ldaps_bind="127.0.0.1:0",
        ldap_tls_cert=str(pki.server_cert),
        ldap_tls_key=str(pki.server_key),
        ldap_tls_client_ca=str(pki.ca),
    )
    with running_server(settings, directory) as s:
        yield s


def _tls(pki: Pki, cert: Path | None, key: Path | None) -> ldap3.Tls:
    return ldap3.Tls(
        validate=ssl.CERT_REQUIRED,
        ca_certs_file=str(pki.ca),
        local_certificate_file=str(cert) if cert else None,
        local_private_key_file=str(key) if key else None,
    )


def test_ldaps_with_client_certificate_ldap3(tls_server: RunningServer, pki: Pki) -> None:
    srv = ldap3.Server(
        "127.0.0.1",
        port=tls_server.ldaps_port,
        use_ssl=True,
        tls=_tls(pki, pki.client_cert, pki.client_key),
        get_info=ldap3.NONE,
    )
    with ldap3_tls_connection(srv) as conn:
        conn.search("ou=services,o=nhs", "(uniqueIdentifier=999999999999)", attributes=["nhsIDCode"])
        assert conn.response[0]["raw_attributes"]["nhsIDCode"] == [b"T99999"]


@pytest.mark.parametrize("who", ["no certificate", "certificate from another CA"])
def test_ldaps_refuses_clients_without_a_trusted_certificate(tls_server: RunningServer, pki: Pki, who: str) -> None:
    cert, key = (None, None) if who == "no certificate" else (pki.rogue_cert, pki.rogue_key)
    srv = ldap3.Server(
        "127.0.0.1",
        port=tls_server.ldaps_port,
        use_ssl=True,
        tls=_tls(pki, cert, key),
        get_info=ldap3.NONE,
        connect_timeout=5,
    )
    with pytest.raises(ldap3.core.exceptions.LDAPException), ldap3_tls_connection(srv) as conn:
        conn.search("ou=services,o=nhs", "(objectClass=*)")
    # and the server still serves others
    with ldap3_connection(tls_server) as conn:
        assert conn.search("ou=services,o=nhs", "(uniqueIdentifier=999999999999)")


def test_start_tls_ldap3(tls_server: RunningServer, pki: Pki) -> None:
    srv = ldap3.Server(
        "127.0.0.1", port=tls_server.port, tls=_tls(pki, pki.client_cert, pki.client_key), get_info=ldap3.NONE
    )
    with ldap3_tls_connection(srv, start_tls=True) as conn:
        conn.search("ou=services,o=nhs", "(uniqueIdentifier=999999999999)", attributes=["nhsIDCode"])
        assert conn.response[0]["raw_attributes"]["nhsIDCode"] == [b"T99999"]


def test_ldaps_and_start_tls_with_ldapsearch(tls_server: RunningServer, pki: Pki) -> None:
    env = {
        "LDAPTLS_CACERT": str(pki.ca),
        "LDAPTLS_CERT": str(pki.client_cert),
        "LDAPTLS_KEY": str(pki.client_key),
        "LDAPTLS_REQCERT": "demand",
    }
    flt = f"(&(nhsIDCode=T99999) (objectClass=nhsMhs) (nhsMhsSvcIA={STRUCTURED}))"
    ldaps = ldapsearch(
        ["-H", f"ldaps://127.0.0.1:{tls_server.ldaps_port}", "-b", "ou=services, o=nhs", flt, "nhsMhsEndPoint"], env
    )
    assert ldaps.returncode == 0, ldaps.stderr
    assert "nhsMhsEndPoint: https://pcs.thirdparty.nhs.uk/T99999/STU3/1/gpconnect/structured" in ldaps.stdout
    starttls = ldapsearch(["-ZZ", "-H", tls_server.uri, "-b", "ou=services, o=nhs", flt, "nhsMhsEndPoint"], env)
    assert starttls.returncode == 0, starttls.stderr
    assert "nhsMhsEndPoint:" in starttls.stdout
    no_cert = {k: v for k, v in env.items() if k not in ("LDAPTLS_CERT", "LDAPTLS_KEY")}
    refused = ldapsearch(["-H", f"ldaps://127.0.0.1:{tls_server.ldaps_port}", "-b", "o=nhs", flt], no_cert)
    assert refused.returncode != 0


# ---- limits and robustness with raw sockets -------------------------------------------------------------------------


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_idle_connections_are_closed(directory: Directory) -> None:
    with running_server(base_settings(ldap_idle_timeout=0.3), directory) as server:
        with raw_socket(server) as s:
            t0 = time.monotonic()
            assert _read_until_closed(s) == b""
            assert 0.25 < time.monotonic() - t0 < 3


def test_excess_connections_are_closed_at_once(directory: Directory) -> None:
    with running_server(base_settings(ldap_max_connections=2), directory) as server:
        with raw_socket(server) as a, raw_socket(server) as b:
            a.sendall(search_message(1))
            b.sendall(search_message(1))
            assert a.recv(65536) and b.recv(65536)
            with raw_socket(server) as c:
                notice = _read_until_closed(c)
                assert codec.NOTICE_OF_DISCONNECTION.encode() in notice
        time.sleep(0.2)
        assert_serves(server)


def test_oversized_message_disconnects_only_that_client(directory: Directory) -> None:
    with running_server(base_settings(ldap_max_message_bytes=4096), directory) as server:
        with raw_socket(server) as healthy, raw_socket(server) as bad:
            bad.sendall(b"\x30\x84\x00\x10\x00\x00" + b"\x00" * 1000)
            notice = _read_until_closed(bad)
            assert codec.NOTICE_OF_DISCONNECTION.encode() in notice
            healthy.sendall(search_message(5))
            assert b"T99999" in healthy.recv(65536)


def test_garbage_gets_a_notice_and_the_server_goes_on(server: RunningServer) -> None:
    with raw_socket(server) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        notice = _read_until_closed(s)
        assert codec.NOTICE_OF_DISCONNECTION.encode() in notice
    assert_serves(server)


def test_pipelined_requests_are_answered_in_order(server: RunningServer) -> None:
    with raw_socket(server) as s:
        s.sendall(b"".join(search_message(i) for i in range(1, 201)))
        data = b""
        last = responses.encode_search_done(200)
        while not data.endswith(last):
            chunk = s.recv(65536)
            assert chunk
            data += chunk
        messages, used = codec.split_messages(data, 1 << 20)
        assert used == len(data) and len(messages) == 400


def test_half_closed_client_still_gets_its_answers(server: RunningServer) -> None:
    """A client that sends its searches then shuts down its side (ldapsearch -f < file style) gets every answer."""
    with raw_socket(server) as s:
        s.sendall(b"".join(search_message(i) for i in range(1, 51)))
        s.shutdown(socket.SHUT_WR)
        data = _read_until_closed(s)
    messages, used = codec.split_messages(data, 1 << 20)
    assert used == len(data) and len(messages) == 100
    assert messages[-1] == responses.encode_search_done(50)


def test_stopping_the_server_sends_a_notice_to_open_connections(directory: Directory) -> None:
    with running_server(base_settings(), directory) as server:
        s = raw_socket(server)
        s.sendall(search_message(1))
        assert s.recv(65536)  # the connection is up and served
    with s:
        notice = _read_until_closed(s)
    assert codec.NOTICE_OF_DISCONNECTION.encode() in notice


class _SlowScans:
    """Wraps the real Directory; searches without an equality pin take a second (a big dump, say)."""

    def __init__(self, inner: Directory) -> None:
        self.inner = inner

    def search(self, request: object, size_limit: int, time_limit: float) -> object:
        if "objectClass=*" in repr(request) or "Present(attr='objectClass')" in repr(request):
            time.sleep(1.0)
        return self.inner.search(request, size_limit, time_limit)  # type: ignore[arg-type]

    def compare(self, dn: str, attr: str, value: str) -> object:
        return self.inner.compare(dn, attr, value)


def test_a_large_search_does_not_stall_other_clients(directory: Directory) -> None:
    """On SQLite, pinned lookups run on the loop; a search that may return the whole tree goes to the pool."""
    with running_server(base_settings(), _SlowScans(directory), inline=True) as server:
        big = raw_socket(server)
        body = (
            codec.octets("o=nhs")
            + b"\x0a\x01\x02\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00"
            + codec.tlv(b"\x87", b"objectClass")
            + codec.tlv(b"\x30", codec.octets("1.1"))
        )
        big.sendall(codec.tlv(b"\x30", codec.encode_int(1) + codec.tlv(b"\x63", body)))
        time.sleep(0.1)
        t0 = time.monotonic()
        assert_serves(server)
        assert time.monotonic() - t0 < 0.5
        data = b""
        while not data.endswith(responses.encode_search_done(1)):
            chunk = big.recv(65536)
            assert chunk
            data += chunk
        assert data.count(b"uniqueIdentifier=") == 27
        big.close()


@pytest.mark.parametrize(
    "overrides",
    [
        {"ldaps_bind": "127.0.0.1:0"},  # LDAPS without a certificate
        {"ldap_tls_client_ca": "/nonexistent/ca.pem"},  # client CA without a certificate
        {"ldap_tls_cert": "/nonexistent/cert.pem"},  # a certificate that cannot be read
    ],
)
def test_bad_tls_configuration_fails_fast(overrides: dict[str, str]) -> None:
    from sds_registry.errors import ConfigError
    from sds_registry.ldap.tls import server_context

    with pytest.raises(ConfigError):
        server_context(base_settings(**overrides))
