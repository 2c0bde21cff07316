"""Cheap probes of the other facades for /healthcheck/deep: LDAP (connect, then an anonymous root-DSE search)
and the SSP (GET /healthcheck). Each answers {"status": "pass"|"fail", "address": ..., "output": ...}.

The HTTP process knows a facade is on from its settings (a non-empty SDS_*_BIND). TLS is not verified here
(the probe asks "is it up", not "is it trusted"); towards an SSP that demands client certificates the probe
presents SDS_SSP_CLIENT_CERT, which that SSP's SDS_SSP_TLS_CLIENT_CA must accept.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from sds_registry.config import Settings

TIMEOUT = 2.0
#: LDAPMessage(id 1, SearchRequest base "" scope base, filter (objectClass=*), all attributes).
ROOT_DSE_SEARCH = (bytes.fromhex("302502010163200400" "0a01000a0100020100020100010100" "870b") + b"objectClass"
                   + b"\x30\x00")


def _target(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port)


def _insecure_context(cert: str = "", key: str = "") -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert, key or None)
    return context


def _connect(bind: str, context: ssl.SSLContext | None) -> socket.socket:
    host, port = _target(bind)
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    if context is None:
        return sock
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def _recv_some(sock: socket.socket, want: int) -> bytes:
    data = b""
    while len(data) < want:
        piece = sock.recv(4096)
        if not piece:
            break
        data += piece
    return data


def probe_ldap(settings: Settings) -> dict[str, Any]:
    tls = not settings.ldap_bind
    bind = settings.ldap_bind or settings.ldaps_bind
    result: dict[str, Any] = {"status": "pass", "address": f"{'ldaps' if tls else 'ldap'}://{bind}"}
    try:
        with _connect(bind, _insecure_context() if tls else None) as sock:
            sock.sendall(ROOT_DSE_SEARCH)
            reply = _recv_some(sock, 8)
        # LDAPMessage SEQUENCE, short or long length, messageID 1, then SearchResultEntry (0x64) or Done (0x65).
        offset = 2 + (reply[1] & 0x7F if len(reply) > 1 and reply[1] & 0x80 else 0)
        if not (reply[:1] == b"\x30" and reply[offset:offset + 3] == b"\x02\x01\x01"
                and reply[offset + 3:offset + 4] in (b"\x64", b"\x65")):
            raise ValueError(f"not an LDAP search answer: {reply[:16].hex()}")
    except (OSError, ValueError) as exc:
        result.update(status="fail", output=f"{type(exc).__name__}: {exc}")
    return result


def probe_ssp(settings: Settings) -> dict[str, Any]:
    tls = bool(settings.ssp_tls_cert)
    result: dict[str, Any] = {"status": "pass", "address": f"{'https' if tls else 'http'}://{settings.ssp_bind}"}
    try:
        context = _insecure_context(settings.ssp_client_cert, settings.ssp_client_key) if tls else None
        with _connect(settings.ssp_bind, context) as sock:
            sock.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: sds-health\r\nConnection: close\r\n\r\n")
            reply = _recv_some(sock, 12)
        if not reply.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
            raise ValueError(f"answered {reply[:32]!r}")
    except (OSError, ValueError) as exc:
        result.update(status="fail", output=f"{type(exc).__name__}: {exc}")
    return result


def facades(settings: Settings) -> dict[str, dict[str, Any]]:
    """The probe of each facade this deployment turns on (HTTP is the one answering)."""
    details: dict[str, dict[str, Any]] = {}
    if settings.ldap_bind or settings.ldaps_bind:
        details["ldap"] = probe_ldap(settings)
    if settings.ssp_bind:
        details["ssp"] = probe_ssp(settings)
    return details
