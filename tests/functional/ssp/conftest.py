"""SSP functional fixtures: a test PKI, a TLS provider FHIR stub in a thread and the SSP (run_ssp) in a process.

The PKI is made in the run with ``cryptography``: one CA signs the provider's and the SSP's server
certificates and the clients' certificates (the consumer's right CN, a wrong CN, the SSP's own).
``SDS_SSP_CONNECT_TO`` points the registered provider FQDNs at the stub on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sds_registry.models import SspDecision
from tests.unit.ssp.fixtures import CONSUMER_FQDN, DOWN_FQDN, PROVIDER_FQDN, STRANGER_FQDN

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Pki:
    ca: Path
    provider: tuple[Path, Path]
    ssp_server: tuple[Path, Path]
    ssp_client: tuple[Path, Path]
    consumer: tuple[Path, Path]
    stranger: tuple[Path, Path]
    wrong_cn: tuple[Path, Path]
    #: The CA's own certificate and key, for tests that issue more certificates (expired ones, say).
    ca_pair: tuple[Path, Path]

    def client_context(self, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        return context


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("SDS Test Root CA")).issuer_name(_name("SDS Test Root CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    ca_path, _ = _write(directory, "ca", ca, ca_key)

    def leaf(stem: str, cn: str, names: list[x509.GeneralName], usage: x509.ObjectIdentifier) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return _write(directory, stem, builder.sign(ca_key, hashes.SHA256()), key)

    server, client = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    return Pki(
        ca=ca_path,
        provider=leaf("provider", PROVIDER_FQDN, [x509.DNSName(PROVIDER_FQDN), x509.DNSName(DOWN_FQDN)], server),
        ssp_server=leaf("ssp", "localhost", [x509.DNSName("localhost"),
                                             x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], server),
        ssp_client=leaf("ssp-client", "ssp.test", [], client),
        consumer=leaf("consumer", CONSUMER_FQDN, [], client),
        stranger=leaf("stranger", STRANGER_FQDN, [], client),
        wrong_cn=leaf("wrong", "wrong.test", [], client),
        ca_pair=(ca_path, directory / "ca.key"),
    )


# ---- The provider stub ----------------------------------------------------------------------------------


def provider_app(environ: dict[str, Any], start_response: Any) -> Any:
    """Echoes the request as JSON; query switches: status=N, gzip=1, big=<bytes> (chunked), sleep=<s>."""
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if "sleep" in query:
        time.sleep(float(query["sleep"]))
    if "big" in query:
        total = int(query["big"])

        def chunks() -> Iterator[bytes]:
            block = b"x" * 65536
            sent = 0
            while sent < total:
                piece = block[: min(len(block), total - sent)]
                sent += len(piece)
                yield piece

        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Cache-Control", "no-store")])
        return chunks()
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        body = environ["wsgi.input"].read(length)
    elif environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        body = environ["wsgi.input"].read()  # werkzeug has decoded the chunks
    else:
        body = b""
    headers = [[k[5:].replace("_", "-").title(), v] for k, v in environ.items() if k.startswith("HTTP_")]
    if environ.get("CONTENT_TYPE"):
        headers.append(["Content-Type", environ["CONTENT_TYPE"]])
    echo = json.dumps({
        "method": environ["REQUEST_METHOD"], "uri": environ.get("REQUEST_URI") or environ.get("RAW_URI"),
        "headers": headers, "body": body.decode("utf-8", "replace"),
    }).encode()
    status = int(query.get("status", "200"))
    out = [("Content-Type", "application/fhir+json;charset=utf-8"), ("Cache-Control", "no-store"),
           ("X-Provider", "stub")]
    if query.get("gzip") == "1":
        echo = gzip.compress(echo)
        out.append(("Content-Encoding", "gzip"))
    out.append(("Content-Length", str(len(echo))))
    start_response(f"{status} Status {status}", out)
    return [echo]


class _Http11(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, *args: Any, **kwargs: Any) -> None:  # quiet
        pass


@dataclass(frozen=True)
class Provider:
    port: int


@pytest.fixture(scope="session")
def provider(pki: Pki) -> Iterator[Provider]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.verify_mode = ssl.CERT_REQUIRED  # providers accept only the SSP (its client certificate)
    context.load_cert_chain(str(pki.provider[0]), str(pki.provider[1]))
    server: BaseWSGIServer = make_server("127.0.0.1", 0, provider_app, threaded=True, ssl_context=context,
                                         request_handler=_Http11)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Provider(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---- The SSP process ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the SSP exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the SSP did not listen on {port}:\n{log.read_text()}")


@dataclass
class SspServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    metrics_dir: Path | None = None

    def metric(self, name: str, **labels: str) -> float:
        """A sample summed over the SSP's worker processes (prometheus_client multiprocess files)."""
        assert self.metrics_dir is not None, "this SSP runs without PROMETHEUS_MULTIPROC_DIR"
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.metrics_dir))  # type: ignore[no-untyped-call]
        return registry.get_sample_value(name, labels) or 0.0

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in path.read_text().split()]


def start_ssp(env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    code = ("import logging; logging.basicConfig(level='INFO'); from sds_registry.config import load_settings; "
            "from sds_registry.ssp.service import run_ssp; run_ssp(load_settings())")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SDS_")}
    full_env.update(env)
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=full_env, stdout=out,
                                   stderr=subprocess.STDOUT)
    wait_for_port(port, process, log)
    return process


def stop_ssp(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def dead_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def ssp(database_url: str, pki: Pki, provider: Provider, dead_port: int,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[SspServer]:
    """The SSP with mutual TLS, one worker (so its memory can be measured), a 1.5 s provider timeout, and no
    registry facts cache (every test seeds its own directory)."""
    port = free_port()
    folder = tmp_path_factory.mktemp("ssp")
    log = folder / "ssp.log"
    (folder / "metrics").mkdir()
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "metrics"),
        "SDS_DATABASE_URL": database_url,
        "SDS_SSP_BIND": f"127.0.0.1:{port}",
        "SDS_SSP_TLS_CERT": str(pki.ssp_server[0]), "SDS_SSP_TLS_KEY": str(pki.ssp_server[1]),
        "SDS_SSP_TLS_CLIENT_CA": str(pki.ca),
        "SDS_SSP_PROVIDER_CA": str(pki.ca),
        "SDS_SSP_CLIENT_CERT": str(pki.ssp_client[0]), "SDS_SSP_CLIENT_KEY": str(pki.ssp_client[1]),
        "SDS_SSP_CONNECT_TO": f"{PROVIDER_FQDN}:443:127.0.0.1:{provider.port},{DOWN_FQDN}:443:127.0.0.1:{dead_port}",
        "SDS_SSP_PROVIDER_TIMEOUT": "1.5",
        "SDS_SSP_WORKERS": "1", "SDS_SSP_CACHE_SECONDS": "0",
        "SDS_LOG_LEVEL": "WARNING",
    }
    process = start_ssp(env, log, port)
    try:
        yield SspServer(f"https://127.0.0.1:{port}", process, log, folder / "metrics")
    finally:
        stop_ssp(process)


@pytest.fixture
def consumer_client(pki: Pki) -> Iterator[httpx.Client]:
    with httpx.Client(verify=pki.client_context(pki.consumer), timeout=30) as client:
        yield client


@pytest.fixture
def stranger_client(pki: Pki) -> Iterator[httpx.Client]:
    """The consumer organisation with no data-sharing agreement (its own certificate)."""
    with httpx.Client(verify=pki.client_context(pki.stranger), timeout=30) as client:
        yield client



@pytest.fixture
def audit_settled(db: Engine) -> Iterator[None]:
    """Tear down (before ``db`` empties the tables) once the SSP's audit writer is idle, so the next test's
    setup (a read-then-write SQLite transaction) does not meet a concurrent insert and no row lands late."""
    yield
    last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + 5
    while time.monotonic() < deadline:
        with db.connect() as conn:
            count = conn.scalar(select(func.count()).select_from(SspDecision))
        if count != last:
            last, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since > 0.3:
            return
        time.sleep(0.05)
