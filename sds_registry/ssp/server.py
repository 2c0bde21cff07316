"""The SSP emulator's HTTP/1.1 server: asyncio (uvloop) glue, one protocol per client connection. No framing
(``http11``), no SSP rules and no forwarding (``relay``) here: bytes to the parser, its events to requests,
requests answered one at a time in order, flow control and the connection's lifetime.

``https://<ssp>/<provider service root URL>/<FHIR request>``: the prefix is stripped, the Gate answers, a
refusal becomes the SSP's OperationOutcome (XML unless JSON was asked for), an allowed request is forwarded
unchanged (method, headers as the client spelled them, body) with RFC 7239 ``Forwarded`` and
``X-Forwarded-For`` added, over a pooled keep-alive connection; the provider's answer streams back as it
arrives (status and reason, 4xx/5xx passed through, headers, body bytes untouched so gzip passes), with flow
control both ways so a large body is never held. Requests on one connection are answered in order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from sds_registry.ssp import http11
from sds_registry.ssp.relay import SERVER, Exchange, RelayState, Request, RequestBody

if TYPE_CHECKING:
    from sds_registry.ssp.gate import Gate
    from sds_registry.ssp.upstream import ProviderPool

MAX_PIPELINED = 16
IDLE_SECONDS = 75.0
#: Seconds a request head may take to arrive, from its first byte: a client sending a byte now and then
#: (slowloris) is answered 408 and closed, as the HTTP facade does (web/worker.py).
HEAD_SECONDS = 10.0
SWEEP_SECONDS = 5.0


class ServerState(RelayState):
    """What the connections of one serving process share: the relay's state and the open connections."""

    def __init__(self, gate: Gate, pool: ProviderPool, *, mutual_tls: bool, tls: bool, timeout: float) -> None:
        super().__init__(gate, pool, mutual_tls=mutual_tls, tls=tls, timeout=timeout)
        self.connections: set[ClientConnection] = set()


class ClientConnection(asyncio.Protocol):
    """One client (consumer) connection."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = http11.RequestParser()
        self.pending: deque[Request] = deque()
        self.incoming: Request | None = None
        self.task: asyncio.Task[None] | None = None
        self.exchange: Exchange | None = None
        self.client_cn: str | None = None
        self.peer = ""
        self.closing = False
        self.broken = False
        self.write_paused = False
        self.last_active = self.loop.time()
        self.head_since: float | None = None  # when the request head now arriving began
        self._paused_for: set[str] = set()

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
        if self.head_since is None:
            self.head_since = self.last_active
        for event in self.parser.feed(data):
            if isinstance(event, http11.Data):
                if self.incoming is not None and self.incoming.body is not None:
                    self.incoming.body.feed(event.data)
            elif isinstance(event, http11.RequestHead):
                self._request(event)
            elif isinstance(event, http11.EndOfMessage):
                if self.incoming is not None and self.incoming.body is not None:
                    self.incoming.body.end()
                self.incoming = None
            else:  # malformed, too large, or an Upgrade
                if self.incoming is not None and self.incoming.body is not None and not self.incoming.body.ended:
                    self.incoming.body.fail()  # its exchange answers 400 now, not after the provider timeout
                self._protocol_error()
        if not self.parser.in_head:
            self.head_since = None

    def eof_received(self) -> bool | None:
        if self.incoming is not None and self.incoming.body is not None and not self.incoming.body.ended:
            self.broken = True
            self.incoming.body.fail()  # the body can never end: answer now, not after the provider timeout
        if self.task is None:
            return False  # close now
        self.closing = True  # answer what is in flight, then close
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.exchange is not None and self.exchange.upstream is not None:
            self.exchange.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.exchange is not None and self.exchange.upstream is not None:
            self.exchange.upstream.resume_reading()

    # ---- what the relay uses (relay.Client) ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

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

    def _request(self, head: http11.RequestHead) -> None:
        request = Request(head, RequestBody(self, head.chunked) if head.has_body else None)
        self.incoming = request
        self.pending.append(request)
        if len(self.pending) > MAX_PIPELINED:
            self.pause_input("pipeline")
        if self.task is None:
            self._next()

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

    async def _handle(self, request: Request) -> None:
        self.exchange = Exchange(self.state, self, request)
        await self.exchange.run()  # a CancelledError (the client went away) ends here: nothing follows
        self.exchange = None
        self._done(request)

    def _done(self, request: Request) -> None:
        unread = request.body is not None and not request.body.ended
        if not request.head.keep_alive or unread or self.broken:
            self.closing = True
        self.last_active = self.loop.time()
        if self.closing:
            self.task = None
            if self.transport is not None:
                self.transport.close()
            return
        self._next()

    # ---- errors and shutdown ---------------------------------------------------------------------------

    def _protocol_error(self) -> None:
        self.broken = True
        if self.task is None and self.transport is not None:
            self.write(http11.bad_request(SERVER))
            self.transport.close()
        elif self.transport is not None:
            self.transport.pause_reading()

    def head_timeout(self) -> None:
        """A request head too slow to arrive: 408 once nothing is in flight, and close."""
        self.head_since = None
        self.closing = True
        if self.task is None and self.transport is not None:
            self.write(http11.request_timeout(SERVER))
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
    """Close keep-alive connections idle for IDLE_SECONDS, and answer 408 to a request head still arriving
    HEAD_SECONDS after its first byte (then close)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        now = loop.time()
        for conn in list(state.connections):
            if conn.head_since is not None and now - conn.head_since > HEAD_SECONDS:
                conn.head_timeout()
            elif conn.task is None and conn.last_active < now - IDLE_SECONDS:
                conn.shutdown()
