"""One SSP request's life: the Gate's decision, a refusal's answer, or forwarding to the provider and streaming
its answer back with flow control and timeouts. Knows the client connection only through ``Client``; does no
parsing (``http11``) and owns no socket.

Unreachable provider: 502 ``ERROR_COMMUNICATING_TO_ENDPOINT_URL_<url>``; no answer's head within
SDS_SSP_PROVIDER_TIMEOUT: 504 ``TIMEOUT_COMMUNICATING_TO_ENDPOINT_URL_<url>``; an answer whose body stops
arriving for that long is cut off (both connections closed). An answer without a length goes on chunked.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from sds_registry import metrics
from sds_registry.logs import access_line
from sds_registry.services.audit import decision_row
from sds_registry.services.ssp import Decision, SspRequest, refuse
from sds_registry.ssp import http11, outcome
from sds_registry.ssp.proxy import NOT_RELAYED, REASONS, forwarded_headers, target_url
from sds_registry.ssp.upstream import Head, ProviderConnection, ProviderError, ProviderPool

if TYPE_CHECKING:
    from sds_registry.ssp.gate import Gate

log = logging.getLogger("sds.ssp")
access_log = logging.getLogger("sds.ssp.access")
SERVER = "sds-ssp"
#: Request body bytes buffered before reading from the client pauses (the provider is slower to take them).
BODY_HIGH_WATER = 1024 * 1024


class RelayState:
    """What the requests of one serving process share: the Gate, the provider pool, the timeout."""

    def __init__(self, gate: Gate, pool: ProviderPool, *, mutual_tls: bool, tls: bool, timeout: float) -> None:
        self.gate = gate
        self.pool = pool
        self.mutual_tls = mutual_tls
        self.proto = "https" if tls else "http"
        self.timeout = timeout


class Client(Protocol):
    """What the relay needs of the client connection (``server.ClientConnection``)."""

    peer: str
    client_cn: str | None
    #: The client's write buffer is full: the provider's answer must wait.
    write_paused: bool
    #: The connection cannot carry another request (closed once this one is done).
    broken: bool

    def write(self, data: bytes) -> None: ...
    def abort(self) -> None: ...
    def pause_input(self, reason: str = "body") -> None: ...
    def resume_input(self, reason: str = "body") -> None: ...


class BodyBroken(Exception):
    """The client's request body stopped being HTTP (bad chunk framing): the request cannot be completed."""


class RequestBody:
    """A request body on its way from the client to the provider (already de-chunked by the parser)."""

    def __init__(self, client: Client, chunked: bool) -> None:
        self.client = client
        self.chunked = chunked
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.ended = False
        self.broken = False
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > BODY_HIGH_WATER:
            self.client.pause_input()
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def fail(self) -> None:
        """The rest of the body is malformed: a reader gets BodyBroken (at once, not after a timeout)."""
        self.broken = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes | None:
        """The next piece, or None at the end; BodyBroken once the body turned out malformed."""
        while not self.chunks and not self.ended and not self.broken:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        if self.broken:
            raise BodyBroken
        if not self.chunks:
            return None
        data = self.chunks.popleft()
        self.size -= len(data)
        if self.size <= BODY_HIGH_WATER // 2:
            self.client.resume_input()
        return data


class Request:
    __slots__ = ("head", "body")

    def __init__(self, head: http11.RequestHead, body: RequestBody | None) -> None:
        self.head = head
        self.body = body


class Exchange:
    """One request, from the Gate to the end of the provider's answer; the provider's body ``Sink``."""

    def __init__(self, state: RelayState, client: Client, request: Request) -> None:
        self.state = state
        self.client = client
        self.request = request
        self.loop = asyncio.get_running_loop()
        self.upstream: ProviderConnection | None = None
        self._chunked_out = False
        self._held: list[bytes] | None = None

    async def run(self) -> None:
        """Answer the request (CancelledError if the client went away); the decision is audited either way."""
        request, head = self.request, self.request.head
        if head.method in ("GET", "HEAD") and head.target.split("?", 1)[0] == "/healthcheck":
            self._healthcheck()  # answered here: no Gate, no audit row, no Ssp-* headers needed
            return
        started = time.perf_counter()
        target = target_url(head.target)
        ssp_request = SspRequest(method=head.method, target_url=target, headers=dict(head.headers),
                                 client_cn=self.client.client_cn, mutual_tls=self.state.mutual_tls)
        status: int | None = None
        provider_status: int | None = None
        token = "ALLOWED"
        try:
            decision = await self.state.gate.decide(ssp_request)
            if decision.allowed:
                forwarded = time.perf_counter()
                failure, provider_status = await self._forward(request, target)
                metrics.SSP_PROVIDER_DURATION.observe(time.perf_counter() - forwarded)
                status = provider_status
                if failure is not None:
                    decision = failure
            if not decision.allowed:
                token, status = decision.outcome, decision.status
                self._refuse(target, decision)
        except asyncio.CancelledError:
            status = status or 499  # the client went away
            self._drop_upstream()
            raise
        except Exception:  # noqa: BLE001 - a bug here must not take the worker down
            log.exception("SSP request failed")
            self._drop_upstream()
            if self._held is None and status is None:
                token, status = "INTERNAL_SERVER_ERROR", 500
                self._refuse(target, refuse(500, "exception", "INTERNAL_SERVER_ERROR"))
            self.client.broken = True
        finally:
            metrics.observe_ssp(token)
            self.state.gate.audit.record(decision_row(
                trace_id=ssp_request.header("Ssp-TraceID"), from_asid=ssp_request.header("Ssp-From"),
                to_asid=ssp_request.header("Ssp-To"), interaction_id=ssp_request.header("Ssp-InteractionID"),
                method=head.method, target_url=target, outcome=token, status=status,
                provider_status=provider_status, latency_ms=(time.perf_counter() - started) * 1000.0,
            ))
            if access_log.isEnabledFor(logging.INFO):
                _access_line(ssp_request, target, token, status, provider_status, started)

    def _healthcheck(self) -> None:
        """Load-balancer probe: 200 with a tiny JSON body (none for HEAD)."""
        head, body_in = self.request.head, self.request.body
        body = b'{"status":"pass"}'
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                   ("Cache-Control", "no-store"), ("Date", http11.http_date()), ("Server", SERVER)]
        if not head.keep_alive or (body_in is not None and not body_in.ended):
            headers.append(("Connection", "close"))
        self.client.write(http11.response_head(200, "OK", headers) + (b"" if head.method == "HEAD" else body))

    def _trace_id(self) -> str | None:
        return next((v for k, v in self.request.head.headers if k.lower() == "ssp-traceid"), None)

    def _drop_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    def _refuse(self, target: str, decision: Decision) -> None:
        head, body_in = self.request.head, self.request.body
        accept = next((v for k, v in head.headers if k.lower() == "accept"), None)
        body, content_type = outcome.render(decision, as_json=outcome.wants_json(accept, urlsplit(target).query))
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
                   ("Cache-Control", "no-store"), ("Date", http11.http_date()), ("Server", SERVER)]
        if not head.keep_alive or (body_in is not None and not body_in.ended):
            headers.append(("Connection", "close"))
        self.client.write(http11.response_head(decision.status, REASONS.get(decision.status, "Error"), headers)
                          + body)

    # ---- forwarding ------------------------------------------------------------------------------------

    async def _forward(self, request: Request, target: str) -> tuple[Decision | None, int | None]:
        """Relay the exchange: (None, provider status) or (a 502/504 refusal, None) if no answer came."""
        parts = urlsplit(target)
        scheme = parts.scheme.lower()
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            port = 0
        host = parts.hostname or ""
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = forwarded_headers(request.head.headers, netloc=parts.netloc, client_ip=self.client.peer,
                                    proto=self.state.proto)
        body = request.body
        if body is not None and body.chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        head_bytes = http11.request_head(request.head.method, path, headers)
        if body is not None and request.head.expect_continue:
            self.client.write(http11.CONTINUE)
        unreachable = refuse(502, "transient", f"ERROR_COMMUNICATING_TO_ENDPOINT_URL_{target}")
        timed_out = refuse(504, "timeout", f"TIMEOUT_COMMUNICATING_TO_ENDPOINT_URL_{target}")
        if scheme not in ("http", "https") or not host or not port:
            return unreachable, None
        try:
            async with asyncio.timeout(self.state.timeout):  # connecting and the answer's head, together
                for attempt in (0, 1):
                    try:
                        conn, reused = await self.state.pool.acquire(scheme, host, port)
                    except (ProviderError, OSError, ssl.SSLError) as exc:
                        log.warning("provider %s unreachable (Ssp-TraceID %s): %s", target, self._trace_id(), exc,
                                    extra={"trace_id": self._trace_id()})
                        return unreachable, None
                    self._held, self._chunked_out = [], False
                    self.upstream = conn
                    head_future = conn.exchange(head_bytes, self)
                    try:
                        if body is not None:
                            await self._send_body(conn, body)
                        answer = await head_future
                    except BodyBroken:
                        # Never let the provider take half a request for a whole one: drop its connection.
                        self._abandon(conn)
                        return refuse(400, "invalid", "MALFORMED_REQUEST_BODY"), None
                    except ProviderError as exc:
                        self._abandon(conn)
                        if attempt == 0 and reused and body is None and not conn.received_any:
                            continue  # a kept-alive connection the provider had closed: once more on a new one
                        log.warning("provider %s failed (Ssp-TraceID %s): %s", target, self._trace_id(), exc,
                                    extra={"trace_id": self._trace_id()})
                        return unreachable, None
                    except BaseException:
                        self._abandon(conn)
                        raise
                    break
        except TimeoutError:
            return timed_out, None
        await self._relay(conn, answer)
        return None, answer.status

    async def _send_body(self, conn: ProviderConnection, body: RequestBody) -> None:
        while (piece := await body.read()) is not None:
            conn.write(http11.chunk(piece) if body.chunked else piece)
            await conn.drain()
        if body.chunked:
            conn.write(http11.LAST_CHUNK)

    def _abandon(self, conn: ProviderConnection) -> None:
        conn.close()
        self.upstream, self._held = None, None

    async def _relay(self, conn: ProviderConnection, answer: Head) -> None:
        names = {k.lower() for k, _ in answer.headers}
        chunked = "content-length" not in names and answer.status not in (204, 304)
        headers = [(k, v) for k, v in answer.headers if k.lower() not in NOT_RELAYED]
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        headers += [("Date", http11.http_date()), ("Server", SERVER)]
        if not self.request.head.keep_alive:
            headers.append(("Connection", "close"))
        held, self._held, self._chunked_out = self._held or [], None, chunked
        head = http11.response_head(answer.status, answer.reason or REASONS.get(answer.status, ""), headers)
        if chunked:  # one write (one TLS record, one send) for the head and what has arrived of the body
            self.client.write(head + b"".join(http11.chunk(piece) for piece in held))
        else:
            self.client.write(head + b"".join(held))
        stop_watching = self._watch_for_stall(conn)
        try:
            keep = await conn.done if conn.done is not None else False
        except ProviderError:  # cut off mid-body: the client cannot be told, only cut off too
            self._abandon(conn)
            self.client.broken = True
            self.client.abort()
            return
        finally:
            stop_watching()
        if chunked:
            self.client.write(http11.LAST_CHUNK)
        self.upstream = None
        if self.client.write_paused:
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
            paused = self.client.write_paused
            if paused or idle < timeout:
                handle = self.loop.call_later(timeout if paused else timeout - idle, check)
                return
            log.warning("provider stopped sending its answer for %.1f s: cut off (Ssp-TraceID %s)", timeout,
                        self._trace_id(), extra={"trace_id": self._trace_id()})
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
            self.client.write(http11.chunk(data))
        else:
            self.client.write(data)


def _access_line(req: SspRequest, target: str, outcome: str, status: int | None, provider_status: int | None,
                 started: float) -> None:
    """One line per SSP request (logger ``sds.ssp.access``): never the Authorization header or its JWT."""
    duration_ms = round((time.perf_counter() - started) * 1000.0, 3)
    trace_id, interaction = req.header("Ssp-TraceID"), req.header("Ssp-InteractionID")
    fields = {"trace_id": trace_id, "from_asid": req.header("Ssp-From"), "to_asid": req.header("Ssp-To"),
              "interaction_id": interaction, "http_method": req.method, "target_url": target, "outcome": outcome,
              "status": status, "provider_status": provider_status, "duration_ms": duration_ms}
    access_line(access_log, f"{req.method} {target} {status} {outcome} provider {provider_status} {duration_ms} ms "
                            f"Ssp-TraceID {trace_id}", fields)
