"""The SSP emulator: a WSGI app under gunicorn (gthread) that authorises and forwards GP Connect requests.

``https://<ssp>/<provider service root URL>/<FHIR request>``: the prefix is stripped, ``services.ssp.decide``
answers, a refusal becomes the SSP's OperationOutcome (XML unless JSON was asked for), an allowed request is
forwarded unchanged (method, headers, body) with RFC 7239 ``Forwarded`` and ``X-Forwarded-For`` added, over a
pooled keep-alive httpcore connection. The provider's answer streams back as it arrives: status (4xx/5xx
passed through), headers and raw bytes (gzip untouched; no Content-Length means chunked). Unreachable
provider: 502 ``ERROR_COMMUNICATING_TO_ENDPOINT_URL_<url>``; timeout: 504
``TIMEOUT_COMMUNICATING_TO_ENDPOINT_URL_<url>``. Each decision is queued for the audit writer. No Flask here:
the hot path is plain WSGI.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore

from sds_registry.config import Settings, parse_bind
from sds_registry.db import ReadOnlySession, make_engine
from sds_registry.errors import ConfigError
from sds_registry.services.ssp import Decision, SspRequest, decide, refuse
from sds_registry.ssp import outcome
from sds_registry.ssp.audit import decision_row, writer_for

log = logging.getLogger("sds.ssp")

#: RFC 7230 §6.1 hop-by-hop headers: they describe one connection, so a proxy must not pass them on.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade",
})
#: Response headers the server writes itself (gunicorn always sends its own Date and Server); passing the
#: provider's too would duplicate single-valued headers. nginx's proxy drops the same two by default.
SERVER_OWNED = frozenset({"date", "server"})
_NOT_RELAYED = HOP_BY_HOP | SERVER_OWNED
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CANONICAL = {h.lower(): h for h in ("Ssp-TraceID", "Ssp-From", "Ssp-To", "Ssp-InteractionID")}
_READ_SIZE = 64 * 1024
StartResponse = Callable[..., Any]


def parse_connect_to(value: str) -> dict[tuple[str, int], tuple[str, int]]:
    """``host:port:addr:port2,...`` (as curl --connect-to) -> {(host, port): (addr, port2)}."""
    mapping: dict[tuple[str, int], tuple[str, int]] = {}
    for item in filter(None, (v.strip() for v in value.split(","))):
        parts = item.split(":")
        if len(parts) != 4 or not parts[1].isdigit() or not parts[3].isdigit() or not parts[0] or not parts[2]:
            raise ConfigError(f"SDS_SSP_CONNECT_TO: expected host:port:addr:port, got {item!r}")
        mapping[(parts[0].lower(), int(parts[1]))] = (parts[2], int(parts[3]))
    return mapping


class ConnectTo(httpcore.NetworkBackend):
    """Connects to another address for some (host, port) pairs; TLS still names and checks the real host."""

    def __init__(self, mapping: dict[tuple[str, int], tuple[str, int]]) -> None:
        self._inner = httpcore.SyncBackend()
        self._mapping = mapping

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        host, port = self._mapping.get((host.lower(), port), (host, port))
        return self._inner.connect_tcp(host, port, timeout, local_address, socket_options)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def provider_ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ssp_provider_ca or None)
    if settings.ssp_client_cert:
        context.load_cert_chain(settings.ssp_client_cert, settings.ssp_client_key or None)
    return context


def client_cn(environ: dict[str, Any]) -> str | None:
    """The CN of the client certificate on this (gunicorn, mutual TLS) connection."""
    sock = environ.get("gunicorn.socket")
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    cert = getpeercert()
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def target_url(environ: dict[str, Any]) -> str:
    """The provider URL embedded after the SSP's own ``/`` (raw, query included; %-encoded form accepted)."""
    raw: str = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    if not raw:
        raw = environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            raw += "?" + environ["QUERY_STRING"]
    target = raw[1:] if raw.startswith("/") else raw
    if target[:7].lower() == "http%3a" or target[:8].lower() == "https%3a":
        target = unquote(target)  # the older, fully %-encoded form (Spine Core SSP IG)
    return target


def request_headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").title()
            if not value:
                continue
        else:
            continue
        headers.append((_CANONICAL.get(name.lower(), name), value))
    return headers


def _body(stream: Any, remaining: int | None) -> Iterator[bytes]:
    """The request body in pieces (Content-Length bytes, or until the chunked body ends)."""
    while remaining is None or remaining > 0:
        chunk = stream.read(_READ_SIZE if remaining is None else min(_READ_SIZE, remaining))
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


class _Relay:
    """The provider's body as a WSGI iterable; closing it returns the connection and records the decision."""

    def __init__(self, response: httpcore.Response, on_close: Callable[[], None]) -> None:
        self._response = response
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        stream: Iterable[bytes] = self._response.stream  # type: ignore[assignment]
        yield from stream

    def close(self) -> None:
        try:
            self._response.close()
        finally:
            self._on_close()


class SspApp:
    """The SSP as a WSGI callable: one per gunicorn worker (its own engine, provider pool and audit writer)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mutual_tls = bool(settings.ssp_tls_cert and settings.ssp_tls_client_ca)
        memory = settings.database_url in ("sqlite://", "sqlite:///:memory:")
        pool_args = {} if memory else {"pool_size": settings.ssp_threads, "max_overflow": 4}
        self.engine = make_engine(settings.database_url, **pool_args)
        self.audit = writer_for(self.engine, batch=settings.ssp_audit_batch)
        timeout = settings.ssp_provider_timeout
        self.timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        self._ssl_context = provider_ssl_context(settings)
        self._backend = ConnectTo(parse_connect_to(settings.ssp_connect_to))
        self._local = threading.local()
        self._pools: list[httpcore.ConnectionPool] = []
        self._pools_lock = threading.Lock()

    @property
    def pool(self) -> httpcore.ConnectionPool:
        """This thread's keep-alive pool. One per request thread: httpcore's pool scans its connections under
        one lock for every request, which serialises the threads when they share a pool."""
        pool: httpcore.ConnectionPool | None = getattr(self._local, "pool", None)
        if pool is None:
            size = self.settings.ssp_provider_pool_size
            pool = httpcore.ConnectionPool(
                ssl_context=self._ssl_context, max_connections=size, max_keepalive_connections=size,
                keepalive_expiry=60.0, network_backend=self._backend,
            )
            self._local.pool = pool
            with self._pools_lock:
                self._pools.append(pool)
        return pool

    def close(self) -> None:
        self.audit.close()
        with self._pools_lock:
            for pool in self._pools:
                pool.close()
        self.engine.dispose()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET")
        url = target_url(environ)
        headers = request_headers(environ)
        request = SspRequest(
            method=method, target_url=url, headers=dict(headers),
            client_cn=client_cn(environ) if self.mutual_tls else None, mutual_tls=self.mutual_tls,
        )
        try:
            with ReadOnlySession(self.engine) as session:
                decision = decide(session, request, jwt_max_future_seconds=self.settings.ssp_jwt_max_future_seconds)
        except Exception:  # noqa: BLE001 - any failure here is the SSP's own 500
            log.exception("SSP decision failed")
            decision = refuse(500, "exception", "INTERNAL_SERVER_ERROR")

        def record(d_outcome: str, status: int, provider_status: int | None = None) -> None:
            self.audit.record(decision_row(
                trace_id=request.header("Ssp-TraceID"), from_asid=request.header("Ssp-From"),
                to_asid=request.header("Ssp-To"), interaction_id=request.header("Ssp-InteractionID"),
                method=method, target_url=url, outcome=d_outcome, status=status, provider_status=provider_status,
                latency_ms=(time.perf_counter() - started) * 1000.0,
            ))

        if not decision.allowed:
            record(decision.outcome, decision.status)
            return self._refusal(environ, start_response, decision)
        return self._forward(environ, start_response, request, headers, record)

    def _refusal(self, environ: dict[str, Any], start_response: StartResponse, decision: Decision) -> list[bytes]:
        as_json = outcome.wants_json(environ.get("HTTP_ACCEPT"), urlsplit(target_url(environ)).query)
        body, content_type = outcome.render(decision, as_json=as_json)
        reason = _REASONS.get(decision.status, "Error")
        start_response(f"{decision.status} {reason}", [
            ("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
        ])
        return [body]

    def _forward(
        self, environ: dict[str, Any], start_response: StartResponse, request: SspRequest,
        headers: list[tuple[str, str]], record: Callable[..., None],
    ) -> Iterable[bytes]:
        url = request.target_url
        parts = urlsplit(url)
        out = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() != "host"]
        out.insert(0, ("Host", parts.netloc))
        client_ip = environ.get("REMOTE_ADDR", "")
        proto = "https" if environ.get("wsgi.url_scheme") == "https" else "http"
        node = f"[{client_ip}]" if ":" in client_ip else client_ip
        forwarded = ";".join(f"{k}={_forwarded_value(v)}" for k, v in (
            ("for", node), ("host", environ.get("HTTP_HOST", "")), ("proto", proto)))
        _append(out, "Forwarded", forwarded)
        _append(out, "X-Forwarded-For", client_ip)
        content: Iterable[bytes] | bytes = b""
        length = environ.get("CONTENT_LENGTH")
        if length and length.isdigit() and int(length) > 0:
            content = _body(environ["wsgi.input"], int(length))
        elif environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            out.append(("Transfer-Encoding", "chunked"))
            content = _body(environ["wsgi.input"], None)
        try:
            response = self.pool.handle_request(httpcore.Request(
                request.method, url, headers=out, content=content, extensions={"timeout": self.timeouts},
            ))
        except httpcore.TimeoutException:
            failure = refuse(504, "timeout", f"TIMEOUT_COMMUNICATING_TO_ENDPOINT_URL_{url}")
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, ssl.SSLError,
                OSError) as exc:
            log.warning("provider %s unreachable: %s", url, exc)
            failure = refuse(502, "transient", f"ERROR_COMMUNICATING_TO_ENDPOINT_URL_{url}")
        else:
            status = response.status
            reason = response.extensions.get("reason_phrase", b"").decode("latin-1") or _REASONS.get(status, "")
            back = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers
                    if k.decode("latin-1").lower() not in _NOT_RELAYED]
            start_response(f"{status} {reason}", back)
            return _Relay(response, lambda: record("ALLOWED", status, status))
        record(failure.outcome, failure.status)
        return self._refusal(environ, start_response, failure)


def _forwarded_value(value: str) -> str:
    """An RFC 7239 value: a token as is, anything else (an IPv6 node, host:port) as a quoted-string."""
    if _TOKEN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _append(headers: list[tuple[str, str]], name: str, value: str) -> None:
    """Add ``value`` to an existing header (comma-separated list) or add the header."""
    for index, (key, old) in enumerate(headers):
        if key.lower() == name.lower():
            headers[index] = (key, f"{old}, {value}")
            return
    headers.append((name, value))


_REASONS = {
    400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 415: "Unsupported Media Type",
    495: "SSL Certificate Error", 500: "Internal Server Error", 502: "Bad Gateway", 504: "Gateway Timeout",
}


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


def run_ssp(settings: Settings) -> None:
    """Serve the SSP on SDS_SSP_BIND until SIGINT/SIGTERM (gunicorn gthread; graceful stop)."""
    from gunicorn.app.base import BaseApplication

    check_settings(settings)
    host, port = parse_bind(settings.ssp_bind, "SDS_SSP_BIND")

    def worker_exit(_server: Any, worker: Any) -> None:
        app = getattr(worker, "wsgi", None)
        if isinstance(app, SspApp):
            app.close()

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
            self.cfg.set("workers", settings.ssp_workers)
            self.cfg.set("threads", settings.ssp_threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("worker_connections", 1000)
            self.cfg.set("keepalive", 75)
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", settings.log_level.lower())
            self.cfg.set("graceful_timeout", 5)
            self.cfg.set("timeout", max(30, int(settings.ssp_provider_timeout) * 2 + 5))
            self.cfg.set("proc_name", "sds-ssp")
            self.cfg.set("worker_exit", worker_exit)
            if settings.ssp_tls_cert:
                self.cfg.set("certfile", settings.ssp_tls_cert)
                self.cfg.set("keyfile", settings.ssp_tls_key)
                if settings.ssp_tls_client_ca:
                    self.cfg.set("ca_certs", settings.ssp_tls_client_ca)
                    self.cfg.set("cert_reqs", ssl.CERT_REQUIRED)

        def load(self) -> Any:
            return SspApp(settings)

    scheme = "https" if settings.ssp_tls_cert else "http"
    log.info("SSP emulator on %s://%s:%s (mutual TLS: %s)", scheme, host, port,
             bool(settings.ssp_tls_cert and settings.ssp_tls_client_ca))
    Server().run()
