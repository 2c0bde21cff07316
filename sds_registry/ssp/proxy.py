"""What the SSP changes on the way through, and its settings: pure helpers for ssp/server.py.

The target URL is the request-target after the SSP's own ``/`` (the fully %-encoded form of the Spine Core
SSP guide is accepted too); the forwarded request keeps every header as the client spelled it except the
hop-by-hop ones (RFC 7230 §6.1), takes the provider's Host, and gains RFC 7239 ``Forwarded`` and
``X-Forwarded-For``. The provider's Date and Server are replaced by the SSP's own.
"""

from __future__ import annotations

import logging
import re
import ssl
from urllib.parse import unquote

from sds_registry.config import Settings, parse_bind
from sds_registry.errors import ConfigError

log = logging.getLogger("sds.ssp")

#: RFC 7230 §6.1 hop-by-hop headers: they describe one connection, so a proxy must not pass them on.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade",
})
#: Response headers the SSP writes itself; passing the provider's too would duplicate single-valued headers
#: (nginx's proxy drops the same two by default).
SERVER_OWNED = frozenset({"date", "server"})
NOT_RELAYED = HOP_BY_HOP | SERVER_OWNED
#: Not forwarded either: the SSP answers ``Expect: 100-continue`` itself and names the provider's host.
_NOT_FORWARDED = HOP_BY_HOP | {"host", "expect"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

REASONS = {
    200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    415: "Unsupported Media Type", 495: "SSL Certificate Error", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


def parse_connect_to(value: str) -> dict[tuple[str, int], tuple[str, int]]:
    """``host:port:addr:port2,...`` (as curl --connect-to) -> {(host, port): (addr, port2)}."""
    mapping: dict[tuple[str, int], tuple[str, int]] = {}
    for item in filter(None, (v.strip() for v in value.split(","))):
        parts = item.split(":")
        if len(parts) != 4 or not parts[1].isdigit() or not parts[3].isdigit() or not parts[0] or not parts[2]:
            raise ConfigError(f"SDS_SSP_CONNECT_TO: expected host:port:addr:port, got {item!r}")
        mapping[(parts[0].lower(), int(parts[1]))] = (parts[2], int(parts[3]))
    return mapping


def provider_ssl_context(settings: Settings) -> ssl.SSLContext:
    """How the SSP connects to providers: verifying them, presenting its own client certificate."""
    context = ssl.create_default_context(cafile=settings.ssp_provider_ca or None)
    if settings.ssp_client_cert:
        context.load_cert_chain(settings.ssp_client_cert, settings.ssp_client_key or None)
    return context


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The SSP's listener: TLS with its certificate, and client certificates required when a CA is set."""
    if not settings.ssp_tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.ssp_tls_cert, settings.ssp_tls_key or None)
    if settings.ssp_tls_client_ca:
        context.load_verify_locations(cafile=settings.ssp_tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def target_url(request_target: str) -> str:
    """The provider URL embedded after the SSP's own ``/`` (raw, query included; %-encoded form accepted)."""
    target = request_target[1:] if request_target.startswith("/") else request_target
    if target[:7].lower() == "http%3a" or target[:8].lower() == "https%3a":
        target = unquote(target)  # the older, fully %-encoded form (Spine Core SSP IG)
    return target


def forwarded_headers(
    headers: list[tuple[str, str]], *, netloc: str, client_ip: str, proto: str
) -> list[tuple[str, str]]:
    """The headers sent on to the provider: Host first, the client's own (hop-by-hop ones dropped) in their
    order and spelling, then ``Forwarded`` and ``X-Forwarded-For`` appended to any the client sent."""
    out = [("Host", netloc)]
    out.extend((k, v) for k, v in headers if k.lower() not in _NOT_FORWARDED)
    host = next((v for k, v in headers if k.lower() == "host"), "")
    node = f"[{client_ip}]" if ":" in client_ip else client_ip
    forwarded = ";".join(f"{k}={_forwarded_value(v)}" for k, v in (("for", node), ("host", host), ("proto", proto)))
    _append(out, "Forwarded", forwarded)
    _append(out, "X-Forwarded-For", client_ip)
    return out


def _forwarded_value(value: str) -> str:
    """An RFC 7239 value: a token as is, anything else (an IPv6 node, host:port) as a quoted-string."""
    if _TOKEN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _append(headers: list[tuple[str, str]], name: str, value: str) -> None:
    """Add ``value`` to an existing header (comma-separated list) or add the header."""
    lowered = name.lower()
    for index, (key, old) in enumerate(headers):
        if key.lower() == lowered:
            headers[index] = (key, f"{old}, {value}")
            return
    headers.append((name, value))


def check_settings(settings: Settings) -> None:
    """Fail fast on an unusable SSP configuration; warn about a plain-HTTP or one-way-TLS listener."""
    parse_bind(settings.ssp_bind, "SDS_SSP_BIND")
    parse_connect_to(settings.ssp_connect_to)
    if bool(settings.ssp_tls_cert) != bool(settings.ssp_tls_key):
        raise ConfigError("SDS_SSP_TLS_CERT and SDS_SSP_TLS_KEY go together")
    if settings.ssp_tls_client_ca and not settings.ssp_tls_cert:
        raise ConfigError("SDS_SSP_TLS_CLIENT_CA needs SDS_SSP_TLS_CERT and SDS_SSP_TLS_KEY")
    if not settings.ssp_tls_cert:
        log.warning("the SSP is listening on plain HTTP (no TLS, no client certificate checks): local use only")
    elif not settings.ssp_tls_client_ca:
        log.warning("SDS_SSP_TLS_CLIENT_CA is not set: no mutual TLS, so client certificate CNs are not checked")
