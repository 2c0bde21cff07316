"""TLS helpers for the security tests: client certificates a server must refuse (another CA, expired), and
handshakes pinned to old protocol versions.

Whether a TLS 1.0/1.1 refusal proves anything depends on the local OpenSSL: OpenSSL 3 refuses to *offer*
TLS < 1.2 at its default security level. ``legacy_tls_works`` finds out by a control handshake with a
deliberately permissive server in this process (TLS 1.0+ and security level 0 on both sides): when that
succeeds, a failed handshake with our server is our server's refusal; when it fails, the platform cannot
offer old TLS at all and the tests check the server context's ``minimum_version`` instead.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LEGACY = (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def issue_client_certificate(folder: Path, stem: str, cn: str, *, ca: tuple[Path, Path] | None = None,
                             expired: bool = False) -> tuple[Path, Path]:
    """A client certificate for ``cn`` signed by ``ca`` (certificate and key files) or, without one, by a fresh
    CA nobody trusts; ``expired``: valid for a day that ended an hour ago."""
    now = datetime.datetime.now(datetime.UTC)
    if ca is None:
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        issuer = _name("Rogue CA")
    else:
        loaded = serialization.load_pem_private_key(ca[1].read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        issuer_key, issuer = loaded, x509.load_pem_x509_certificate(ca[0].read_bytes()).subject
    start, end = ((now - datetime.timedelta(days=2), now - datetime.timedelta(hours=1)) if expired
                  else (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1)))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                           critical=False)
            .sign(issuer_key, hashes.SHA256()))
    return _write(folder, stem, cert, key)


def legacy_client_context(client_cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A client that speaks only TLS 1.0 and 1.1, at security level 0, and checks nothing of the server."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # deliberately deprecated versions
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version, context.maximum_version = LEGACY
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if client_cert is not None:
        context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    return context


def handshake(port: int, context: ssl.SSLContext, timeout: float = 10.0) -> str | None:
    """The TLS version agreed with 127.0.0.1:port, or None when the handshake fails (alert, reset, close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.version()
        except (ssl.SSLError, ConnectionError):
            return None


def legacy_tls_works(server_cert: tuple[Path, Path]) -> bool:
    """Whether this platform can complete a TLS 1.1 handshake at all (a permissive server, in a thread)."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server_context.minimum_version = ssl.TLSVersion.TLSv1
    try:
        server_context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        return False
    server_context.load_cert_chain(str(server_cert[0]), str(server_cert[1]))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            with server_context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        version = handshake(listener.getsockname()[1], legacy_client_context())
    finally:
        listener.close()
        thread.join(timeout=10)
    return version in ("TLSv1", "TLSv1.1")
