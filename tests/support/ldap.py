"""LDAP test helpers shared by tests/functional/ldap: sample data, a real server in a thread, ldapsearch, a PKI.

No fixtures and no tests here (the test modules own those). Only load_sample writes to a database, through
the LDIF importer, on the engine it is given.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import ipaddress
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sds_registry.config import Settings
from sds_registry.ldap import codec, responses
from sds_registry.ldap.ldif import import_ldif
from sds_registry.ldap.server import serve_ldap
from sds_registry.migrate import sync_catalogue, upgrade

IN_CI = os.environ.get("CI", "").lower() == "true"
LDAPSEARCH = shutil.which("ldapsearch")
STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"


SAMPLE_LDIF = f"""dn: uniqueIdentifier=472b35d4641b76454b13,ou=Services,o=nhs
objectClass: top
objectClass: nhsMhs
uniqueIdentifier: 472b35d4641b76454b13
nhsIDCode: T99999
nhsMHSPartyKey: T99999-9999999
nhsMhsSvcIA: {STRUCTURED}
nhsMHsSN: urn:nhs:names:services:gpconnect
nhsMHsIN: fhir:operation:gpc.getstructuredrecord-1
nhsMHSEndPoint: https://pcs.thirdparty.nhs.uk/T99999/STU3/1/gpconnect/structured
nhsMhsFQDN: pcs.thirdparty.nhs.uk
nhsMhsCPAId: 472b35d4641b76454b13
nhsMHSIsAuthenticated: none
nhsEPInteractionType: FHIR
nhsProductKey: 2866
nhsRequestorURP: System
nhsDateRequested: 20180622122201
nhsApproverURP: System
nhsDateApproved: 20180622124804

dn: uniqueIdentifier=999999999999,ou=Services,o=nhs
objectClass: top
objectClass: nhsAs
uniqueIdentifier: 999999999999
nhsIDCode: T99999
nhsMHSPartyKey: T99999-9999999
nhsAsSvcIA: {STRUCTURED}
nhsProductKey: 2866
nhsRequestorURP: System
nhsDateRequested: 20220104231129
nhsApproverURP: System
nhsDateApproved: 20220105001044
"""


def _bulk_as(i: int) -> str:
    return f"""dn: uniqueIdentifier={200000000000 + i},ou=Services,o=nhs
objectClass: top
objectClass: nhsAs
uniqueIdentifier: {200000000000 + i}
nhsIDCode: B81001
nhsMHSPartyKey: B81001-{100000 + i}
nhsAsSvcIA: urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1
nhsProductKey: 2866
nhsRequestorURP: System
nhsDateRequested: 20220104231129
nhsApproverURP: System
nhsDateApproved: 20220105001044
"""


def load_sample(engine: Engine) -> None:
    """The GP Connect worked example (T99999) and 25 AS records of practice B81001, through the LDIF importer."""
    text = SAMPLE_LDIF + "".join("\n" + _bulk_as(i) for i in range(25))
    with Session(engine) as session:
        report = import_ldif(session, io.StringIO(text))
        assert report.ok, report
        session.commit()


# ---- A real server in a thread ------------------------------------------------------------------------------------


@dataclass
class RunningServer:
    host: str
    port: int
    ldaps_port: int | None
    settings: Settings
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @property
    def uri(self) -> str:
        return f"ldap://{self.host}:{self.port}"


@contextmanager
def running_server(settings: Settings, directory: object, inline: bool = True) -> Iterator[RunningServer]:
    """serve_ldap in a thread with its own event loop; stopped and joined on exit."""
    ready = threading.Event()
    box: dict[str, object] = {}

    def target() -> None:
        loop = asyncio.new_event_loop()
        box["loop"] = loop
        stop = asyncio.Event()
        box["stop"] = stop

        def on_ready(addresses: dict[str, tuple[str, int]]) -> None:
            box["addresses"] = addresses
            ready.set()

        try:
            loop.run_until_complete(serve_ldap(settings, directory, stop, inline=inline, on_ready=on_ready))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            box["error"] = exc
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert ready.wait(10), "server did not start"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    addresses: dict[str, tuple[str, int]] = box["addresses"]  # type: ignore[assignment]
    loop: asyncio.AbstractEventLoop = box["loop"]  # type: ignore[assignment]
    host, port = addresses["ldap"]
    server = RunningServer(host, port, addresses.get("ldaps", (None, None))[1], settings, loop, thread)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(box["stop"].set)  # type: ignore[attr-defined]
        thread.join(10)
        assert not thread.is_alive(), "server did not stop"
        assert "error" not in box, box.get("error")


def base_settings(**kw: object) -> Settings:
    return replace(Settings(), **{"ldap_bind": "127.0.0.1:0", "ldaps_bind": "", **kw})  # type: ignore[arg-type]


# ---- OpenLDAP's ldapsearch ----------------------------------------------------------------------------------------


def _need_ldapsearch() -> str:
    if LDAPSEARCH is None:
        if IN_CI:
            pytest.fail("ldapsearch (ldap-utils) is required under CI=true")
        pytest.skip("ldapsearch is not installed")
    return LDAPSEARCH


def ldapsearch(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [_need_ldapsearch(), "-x", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=10", *args]
    if env:  # LDAPNOINIT would also drop the LDAPTLS_* variables; point the config files nowhere instead
        full_env = dict(os.environ, LDAPCONF="/dev/null", LDAPRC="sds-test-no-such-ldaprc", **env)
    else:
        full_env = dict(os.environ, LDAPNOINIT="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=full_env)


# ---- A PKI for StartTLS and LDAPS with mutual authentication --------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path.with_suffix(".crt"), path.with_suffix(".key")


def _issue(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        ).add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(d: Path) -> Pki:
    """A root CA, a server certificate for localhost/127.0.0.1, a client certificate and one from a rogue CA."""
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SDS Test Root CA")])
    ca_cert = _issue("SDS Test Root CA", ca_key, ca_name, ca_key, ca=True)
    ca_path, _ = _write(d / "ca", ca_cert, ca_key)
    skey, ckey, rkey = _key(), _key(), _key()
    scert, skeyp = _write(d / "server", _issue("localhost", skey, ca_name, ca_key, server=True), skey)
    ccert, ckeyp = _write(d / "client", _issue("gpc-consumer", ckey, ca_name, ca_key), ckey)
    rogue_ca = _key()
    rogue_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rogue CA")])
    rcert, rkeyp = _write(d / "rogue", _issue("rogue", rkey, rogue_name, rogue_ca), rkey)
    return Pki(ca_path, scert, skeyp, ccert, ckeyp, rcert, rkeyp)


# ---- Raw sockets ---------------------------------------------------------------------------------------------------


def raw_socket(server: RunningServer) -> socket.socket:
    s = socket.create_connection((server.host, server.port), timeout=5)
    return s


def search_message(message_id: int) -> bytes:
    """(uniqueIdentifier=999999999999) under ou=services,o=nhs, subtree, attribute nhsIDCode; built by hand."""
    body = (
        codec.octets("ou=services,o=nhs")
        + b"\x0a\x01\x02\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00"
        + codec.tlv(b"\xa3", codec.octets("uniqueIdentifier") + codec.octets("999999999999"))
        + codec.tlv(b"\x30", codec.octets("nhsIDCode"))
    )
    return codec.tlv(b"\x30", codec.encode_int(message_id) + codec.tlv(b"\x63", body))


def assert_serves(server: RunningServer) -> None:
    with raw_socket(server) as s:
        s.sendall(search_message(1))
        data = b""
        while not data.endswith(responses.encode_search_done(1)):
            chunk = s.recv(65536)
            assert chunk, "server closed a healthy connection"
            data += chunk
        assert b"T99999" in data


def sample_sqlite_database(directory: Path) -> str:
    """A migrated SQLite file in ``directory`` holding the sample directory (load_sample); returns its URL."""
    from sds_registry.db import make_engine

    url = f"sqlite:///{directory / 'sds.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            sync_catalogue(s)
            s.commit()
        load_sample(engine)
    finally:
        engine.dispose()
    return url
