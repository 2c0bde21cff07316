"""The SSP emulator's HTTP/1.1 server: asyncio (uvloop) with httptools parsing, one protocol per connection.

``https://<ssp>/<provider service root URL>/<FHIR request>``: the prefix is stripped, the Gate answers, a
refusal becomes the SSP's OperationOutcome (XML unless JSON was asked for), an allowed request is forwarded
unchanged (method, headers as the client spelled them, body) with RFC 7239 ``Forwarded`` and
``X-Forwarded-For`` added, over a pooled keep-alive connection; the provider's answer streams back as it
arrives (status and reason, 4xx/5xx passed through, headers, body bytes untouched so gzip passes; an answer
without a length goes on chunked), with flow control both ways so a large body is never held. Unreachable
provider: 502 ``ERROR_COMMUNICATING_TO_ENDPOINT_URL_<url>``; no answer within SDS_SSP_PROVIDER_TIMEOUT: 504
``TIMEOUT_COMMUNICATING_TO_ENDPOINT_URL_<url>``; an answer whose body stops arriving for that long is cut off
(both connections closed). Requests on one connection are answered in order.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import httptools

from sds_registry.services.ssp import Decision, SspRequest, refuse
from sds_registry.ssp import outcome
from sds_registry.ssp.audit import decision_row
from sds_registry.ssp.proxy import NOT_RELAYED, REASONS, forwarded_headers, target_url
from sds_registry.ssp.upstream import Head, ProviderConnection, ProviderError, ProviderPool

if TYPE_CHECKING:
    from sds_registry.ssp.gate import Gate

log = logging.getLogger("sds.ssp")
SERVER = "sds-ssp"
MAX_HEADER_BYTES = 64 * 1024
#: Request body bytes buffered before reading from the client pauses (the provider is slower to take them).
BODY_HIGH_WATER = 1024 * 1024
MAX_PIPELINED = 16
IDLE_SECONDS = 75.0


class _Date:
    """The Date header value, formatted once a second."""

    second = -1
    value = ""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.value = second, formatdate(second, usegmt=True)
        return cls.value


class _Body:
    """A request body on its way from the client to the provider (already de-chunked by the parser)."""

    def __init__(self, conn: ClientConnection, chunked: bool) -> None:
        self.conn = conn
        self.chunked = chunked
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.ended = False
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > BODY_HIGH_WATER:
            self.conn.pause_input()
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes | None:
        """The next piece, or None at the end."""
        while not self.chunks and not self.ended:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        if not self.chunks:
            return None
        data = self.chunks.popleft()
        self.size -= len(data)
        if self.size <= BODY_HIGH_WATER // 2:
            self.conn.resume_input()
        return data


class _Request:
    __slots__ = ("method", "target", "headers", "keep_alive", "body")

    def __init__(self, method: str, target: str, headers: list[tuple[str, str]], keep_alive: bool) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.keep_alive = keep_alive
        self.body: _Body | None = None


class ServerState:
    """What the connections of one serving process share."""

    def __init__(self, gate: Gate, pool: ProviderPool, *, mutual_tls: bool, tls: bool, timeout: float) -> None:
        self.gate = gate
        self.pool = pool
        self.mutual_tls = mutual_tls
        self.proto = "https" if tls else "http"
        self.timeout = timeout
        self.connections: set[ClientConnection] = set()


class ClientConnection(asyncio.Protocol):
    """One client (consumer) connection."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[_Request] = deque()
        self.incoming: _Request | None = None
        self.task: asyncio.Task[None] | None = None
        self.upstream: ProviderConnection | None = None
        self.client_cn: str | None = None
        self.peer = ""
        self.closing = False
        self.broken = False
        self.last_active = self.loop.time()
        self._paused_for: set[str] = set()
        self._write_paused = False
        self._url: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        # the answer being relayed
        self._chunked_out = False
        self._held: list[bytes] | None = None

    # ---- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.state.connections.add(self)
        peer = self.transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""
        if self.state.mutual_tls:
            self.client_cn = _common_name(self.transport.get_extra_info("peercert"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.closing = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # malformed, too large, or an Upgrade
            self._protocol_error()

    def eof_received(self) -> bool | None:
        if self.incoming is not None and self.incoming.body is not None and not self.incoming.body.ended:
            self.broken = True
        if self.task is None:
            return False  # close now
        self.closing = True  # answer what is in flight, then close
        return True

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.upstream is not None:
            self.upstream.resume_reading()

    # ---- httptools callbacks ---------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url, self._headers, self._header_bytes = [], [], 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise ValueError("request head too large")
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = self.parser
        request = _Request(parser.get_method().decode("latin-1"), b"".join(self._url).decode("latin-1"),
                           self._headers, bool(parser.should_keep_alive()))
        chunked = any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in self._headers)
        length = next((v for k, v in self._headers if k.lower() == "content-length"), "0").strip()
        if chunked or (length.isdigit() and int(length) > 0):
            request.body = _Body(self, chunked)
        self.incoming = request
        self.pending.append(request)
        if len(self.pending) > MAX_PIPELINED:
            self.pause_input("pipeline")
        if self.task is None:
            self._next()

    def on_body(self, body: bytes) -> None:
        if self.incoming is not None and self.incoming.body is not None:
            self.incoming.body.feed(body)

    def on_message_complete(self) -> None:
        if self.incoming is not None and self.incoming.body is not None:
            self.incoming.body.end()
        self.incoming = None

    # ---- flow control ----------------------------------------------------------------------------------

    def pause_input(self, reason: str = "body") -> None:
        if not self._paused_for and self.transport is not None:
            self.transport.pause_reading()
        self._paused_for.add(reason)

    def resume_input(self, reason: str = "body") -> None:
        if reason in self._paused_for:
            self._paused_for.discard(reason)
            if not self._paused_for and self.transport is not None and not self.closing:
                self.transport.resume_reading()

    # ---- requests, in order --------------------------------------------------------------------------

    def _next(self) -> None:
        if self.pending and not self.broken:
            request = self.pending.popleft()
            if len(self.pending) <= MAX_PIPELINED // 2:
                self.resume_input("pipeline")
            self.task = self.loop.create_task(self._handle(request))
        else:
            self.task = None
            if self.closing and self.transport is not None:
                self.transport.close()

    def _done(self, request: _Request) -> None:
        unread = request.body is not None and not request.body.ended
        if not request.keep_alive or unread or self.broken:
            self.closing = True
        self.last_active = self.loop.time()
        if self.closing:
            self.task = None
            if self.transport is not None:
                self.transport.close()
            return
        self._next()

    async def _handle(self, request: _Request) -> None:
        started = time.perf_counter()
        target = target_url(request.target)
        ssp_request = SspRequest(method=request.method, target_url=target, headers=dict(request.headers),
                                 client_cn=self.client_cn, mutual_tls=self.state.mutual_tls)
        status: int | None = None
        provider_status: int | None = None
        token = "ALLOWED"
        cancelled = False
        try:
            decision = await self.state.gate.decide(ssp_request)
            if decision.allowed:
                failure, provider_status = await self._forward(request, target)
                status = provider_status
                if failure is not None:
                    decision = failure
            if not decision.allowed:
                token, status = decision.outcome, decision.status
                self._refuse(request, target, decision)
        except asyncio.CancelledError:
            cancelled, status = True, status or 499  # the client went away
            if self.upstream is not None:
                self.upstream.close()
                self.upstream = None
            raise
        except Exception:  # noqa: BLE001 - a bug here must not take the worker down
            log.exception("SSP request failed")
            if self.upstream is not None:
                self.upstream.close()
                self.upstream = None
            if self._held is None and status is None:
                token, status = "INTERNAL_SERVER_ERROR", 500
                self._refuse(request, target, refuse(500, "exception", "INTERNAL_SERVER_ERROR"))
            self.broken = True
        finally:
            self.state.gate.audit.record(decision_row(
                trace_id=ssp_request.header("Ssp-TraceID"), from_asid=ssp_request.header("Ssp-From"),
                to_asid=ssp_request.header("Ssp-To"), interaction_id=ssp_request.header("Ssp-InteractionID"),
                method=request.method, target_url=target, outcome=token, status=status,
                provider_status=provider_status, latency_ms=(time.perf_counter() - started) * 1000.0,
            ))
            if not cancelled:
                self._done(request)

    def _refuse(self, request: _Request, target: str, decision: Decision) -> None:
        accept = next((v for k, v in request.headers if k.lower() == "accept"), None)
        body, content_type = outcome.render(decision, as_json=outcome.wants_json(accept, urlsplit(target).query))
        close = not request.keep_alive or (request.body is not None and not request.body.ended)
        head = (f"HTTP/1.1 {decision.status} {REASONS.get(decision.status, 'Error')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                f"Date: {_Date.now()}\r\nServer: {SERVER}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}"
                "\r\n")
        self._write(head.encode("latin-1") + body)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # ---- forwarding ------------------------------------------------------------------------------------

    async def _forward(self, request: _Request, target: str) -> tuple[Decision | None, int | None]:
        """Relay the exchange: (None, provider status) or (a 502/504 refusal, None) if no answer came."""
        parts = urlsplit(target)
        scheme = parts.scheme.lower()
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            port = 0
        host = parts.hostname or ""
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = forwarded_headers(request.headers, netloc=parts.netloc, client_ip=self.peer, proto=self.state.proto)
        body = request.body
        if body is not None and body.chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        head_bytes = (f"{request.method} {path} HTTP/1.1\r\n"
                      + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")
        if body is not None and any(k.lower() == "expect" and v.lower() == "100-continue" for k, v in request.headers):
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        timeout = self.state.timeout
        unreachable = refuse(502, "transient", f"ERROR_COMMUNICATING_TO_ENDPOINT_URL_{target}")
        timed_out = refuse(504, "timeout", f"TIMEOUT_COMMUNICATING_TO_ENDPOINT_URL_{target}")
        if scheme not in ("http", "https") or not host or not port:
            return unreachable, None
        try:
            async with asyncio.timeout(timeout):  # connecting and the answer's head, together
                for attempt in (0, 1):
                    try:
                        conn, reused = await self.state.pool.acquire(scheme, host, port)
                    except (ProviderError, OSError, ssl.SSLError) as exc:
                        log.warning("provider %s unreachable: %s", target, exc)
                        return unreachable, None
                    self._held, self._chunked_out = [], False
                    self.upstream = conn
                    head_future = conn.exchange(head_bytes, self)
                    try:
                        if body is not None:
                            await self._send_body(conn, body)
                        answer = await head_future
                    except ProviderError as exc:
                        self._abandon(conn)
                        if attempt == 0 and reused and body is None and not conn.received_any:
                            continue  # a kept-alive connection the provider had closed: once more on a new one
                        log.warning("provider %s failed: %s", target, exc)
                        return unreachable, None
                    except BaseException:
                        self._abandon(conn)
                        raise
                    break
        except TimeoutError:
            return timed_out, None
        await self._relay(conn, answer, request)
        return None, answer.status

    async def _send_body(self, conn: ProviderConnection, body: _Body) -> None:
        while (piece := await body.read()) is not None:
            conn.write(b"%x\r\n%s\r\n" % (len(piece), piece) if body.chunked else piece)
            await conn.drain()
        if body.chunked:
            conn.write(b"0\r\n\r\n")

    def _abandon(self, conn: ProviderConnection) -> None:
        conn.close()
        self.upstream, self._held = None, None

    async def _relay(self, conn: ProviderConnection, answer: Head, request: _Request) -> None:
        names = {k.lower() for k, _ in answer.headers}
        chunked = "content-length" not in names and answer.status not in (204, 304)
        lines = [f"HTTP/1.1 {answer.status} {answer.reason or REASONS.get(answer.status, '')}\r\n"]
        lines.extend(f"{k}: {v}\r\n" for k, v in answer.headers if k.lower() not in NOT_RELAYED)
        if chunked:
            lines.append("Transfer-Encoding: chunked\r\n")
        lines.append(f"Date: {_Date.now()}\r\nServer: {SERVER}\r\n")
        if not request.keep_alive:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        held, self._held, self._chunked_out = self._held or [], None, chunked
        head = "".join(lines).encode("latin-1")
        if chunked:  # one write (one TLS record, one send) for the head and what has arrived of the body
            self._write(head + b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in held))
        else:
            self._write(head + b"".join(held))
        stop_watching = self._watch_for_stall(conn)
        try:
            keep = await conn.done if conn.done is not None else False
        except ProviderError:  # cut off mid-body: the client cannot be told, only cut off too
            self._abandon(conn)
            self.broken = True
            if self.transport is not None:
                self.transport.abort()
            return
        finally:
            stop_watching()
        if chunked:
            self._write(b"0\r\n\r\n")
        self.upstream = None
        if self._write_paused:
            conn.resume_reading()
        if keep and not answer.until_close:
            self.state.pool.release(conn)
        else:
            conn.close()

    def _watch_for_stall(self, conn: ProviderConnection) -> Callable[[], None]:
        """Cut the provider off when its answer's body stops arriving for SDS_SSP_PROVIDER_TIMEOUT (not while
        the client is the slow one); returns the function that stops watching. One timer per answer."""
        timeout = self.state.timeout
        handle: asyncio.TimerHandle | None = None

        def check() -> None:
            nonlocal handle
            if conn.done is None or conn.done.done():
                return
            idle = self.loop.time() - conn.last_read
            if self._write_paused or idle < timeout:
                handle = self.loop.call_later(timeout if self._write_paused else timeout - idle, check)
                return
            log.warning("provider stopped sending its answer for %.1f s: cut off", timeout)
            conn.close()  # its connection_lost fails conn.done, and the client is cut off too

        handle = self.loop.call_later(timeout, check)
        return lambda: handle.cancel() if handle is not None else None

    def body(self, data: bytes) -> None:
        """The provider's body, as it arrives (held until the answer's head is written)."""
        if not data:
            return
        if self._held is not None:
            self._held.append(data)
        elif self._chunked_out:
            self._write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._write(data)

    # ---- errors and shutdown ---------------------------------------------------------------------------

    def _protocol_error(self) -> None:
        self.broken = True
        if self.task is None and self.transport is not None:
            self._write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n"
                        + f"Date: {_Date.now()}\r\nServer: {SERVER}\r\n\r\n".encode())
            self.transport.close()
        elif self.transport is not None:
            self.transport.pause_reading()

    def shutdown(self) -> None:
        """Stop after the request in flight (now, if there is none)."""
        self.closing = True
        if self.task is None and self.transport is not None:
            self.transport.close()


def _common_name(cert: Any) -> str | None:
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


async def idle_sweeper(state: ServerState) -> None:
    """Close keep-alive connections idle for IDLE_SECONDS."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(IDLE_SECONDS / 5)
        limit = loop.time() - IDLE_SECONDS
        for conn in list(state.connections):
            if conn.task is None and conn.last_active < limit:
                conn.shutdown()
