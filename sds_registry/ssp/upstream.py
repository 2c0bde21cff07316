"""Keep-alive connections from the SSP to providers: an asyncio protocol per connection (httptools parses the
answers) and a pool per (scheme, host, port). No SSP rules here: it moves bytes and reports what arrived.

A connection carries one exchange at a time. ``exchange`` returns a future for the response head; the body
goes straight to the ``Sink`` given (the client connection), which can pause and resume this connection's
reading for flow control; ``done`` resolves when the answer has ended, and the connection goes back to the
pool only if both sides agreed to keep it alive.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

import httptools

#: The host:port pairs to dial instead of the registered ones (SDS_SSP_CONNECT_TO), as curl --connect-to.
ConnectTo = dict[tuple[str, int], tuple[str, int]]


class ProviderError(Exception):
    """The provider could not be reached, or broke the exchange before its answer's head."""


class Sink(Protocol):
    def body(self, data: bytes) -> None: ...


@dataclass
class Head:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: True when the answer's body is delimited by the connection closing (no length, not chunked).
    until_close: bool = False


class ProviderConnection(asyncio.Protocol):
    """One keep-alive connection to a provider."""

    def __init__(self, key: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.parser = httptools.HttpResponseParser(self)
        self._head: asyncio.Future[Head] | None = None
        self.done: asyncio.Future[bool] | None = None
        self._sink: Sink | None = None
        self._headers: list[tuple[str, str]] = []
        self._reason = b""
        self.received_any = False
        self.last_read = 0.0
        self._writable: asyncio.Future[None] | None = None
        self._until_close = False
        #: The TLS layer's ``set_read_buffer_limits`` (None over plain TCP, where pausing stops the socket).
        self._tls_limits: Callable[..., None] | None = None

    # ---- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if transport.get_extra_info("ssl_object") is not None:
            self._tls_limits = getattr(transport, "set_read_buffer_limits", None)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProviderError(f"malformed answer: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._until_close and self.done is not None and not self.done.done():
            self.done.set_result(False)  # an answer delimited by the close ends here; anything else was cut short
        self._fail(ProviderError(f"connection closed: {exc}" if exc else "connection closed"))
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # ---- httptools callbacks -----------------------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: wait for the final one
            self._headers, self._reason = [], b""
            return
        names = {k.lower() for k, _ in self._headers}
        until_close = ("content-length" not in names and "transfer-encoding" not in names
                       and status not in (204, 304))
        head = Head(status, self._reason.decode("latin-1"), self._headers, until_close)
        self._until_close = until_close
        if self._head is not None and not self._head.done():
            self._head.set_result(head)

    def on_body(self, body: bytes) -> None:
        if self._sink is not None:
            self._sink.body(body)

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(self.parser.should_keep_alive())

    # ---- the exchange ---------------------------------------------------------------------------------------

    def exchange(self, head: bytes, sink: Sink) -> asyncio.Future[Head]:
        """Send a request head; the answer's head arrives on the returned future, its body at ``sink``."""
        loop = self.loop
        self._head, self.done = loop.create_future(), loop.create_future()
        self._sink, self._headers, self._reason, self.received_any = sink, [], b"", False
        self._until_close = False
        assert self.transport is not None
        self.transport.write(head)
        return self._head

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self._writable is not None:
            await self._writable

    def pause_reading(self) -> None:
        """Stop taking the answer (the client is slower), without losing its end if the provider closes now.

        Over TLS, pausing only stops delivery: the TLS layer (uvloop's and asyncio's alike) goes on reading
        the socket into its buffer (up to 256 KiB), and when it then meets the provider's TCP close it
        tears the connection down and drops what it buffered, "treating a low-level EOF as a broken
        connection". A provider that closes right after its answer (``Connection: close``, or a body
        delimited by the close) would lose its last bytes and its end. So the TLS layer is also told to
        stop reading the socket as soon as it holds anything: the close then stays in the kernel until
        the buffered answer has been delivered.
        """
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()
            if self._tls_limits is not None:
                self._tls_limits(high=1, low=0)

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            if self._tls_limits is not None:
                self._tls_limits()  # the TLS layer's defaults again
            self.transport.resume_reading()
            # The stall timer measures the provider's silence since ``last_read``; while paused the SSP was
            # not listening, so the provider gets a full timeout from now (else a timer firing between this
            # resume and the next read would cut off an answer that was only waiting on a slow client).
            self.last_read = self.loop.time()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: Exception) -> None:
        for future in (self._head, self.done):
            if future is not None and not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: the caller may already have stopped waiting


class ProviderPool:
    """Idle keep-alive connections per (scheme, host, port), at most ``size`` kept for each."""

    def __init__(self, ssl_context: ssl.SSLContext, connect_to: ConnectTo, size: int) -> None:
        self.ssl_context = ssl_context
        self.connect_to = connect_to
        self.size = max(0, size)
        self._idle: dict[tuple[str, str, int], list[ProviderConnection]] = {}

    async def acquire(self, scheme: str, host: str, port: int) -> tuple[ProviderConnection, bool]:
        """(a connection, whether it was reused). Raises ProviderError (or OSError/ssl.SSLError)."""
        key = (scheme, host.lower(), port)
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
        address, address_port = self.connect_to.get((host.lower(), port), (host, port))
        loop = asyncio.get_running_loop()
        factory: Callable[[], ProviderConnection] = lambda: ProviderConnection(key, loop)  # noqa: E731
        if scheme == "https":
            _, conn = await loop.create_connection(factory, address, address_port, ssl=self.ssl_context,
                                                   server_hostname=host)
        else:
            _, conn = await loop.create_connection(factory, address, address_port)
        return conn, False

    def release(self, conn: ProviderConnection) -> None:
        conn._sink = None
        idle = self._idle.setdefault(conn.key, [])
        if conn.closed or len(idle) >= self.size:
            conn.close()
            return
        idle.append(conn)

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
