"""A provider that closes its connection right after its answer while the SSP has paused reading from it.

The cause of the "incomplete chunked read" flake of the 10 MB streaming test: the provider stub ends every
answer with a close; when the client was slow, the SSP had paused reading from the provider, the TLS layer
went on buffering the socket's bytes, met the close and dropped them, and the SSP cut the client off. Here a
TLS provider sends its head and a first piece, the sink pauses reading at that piece (as a slow client
does), the provider sends the rest and closes, and only then is reading resumed: the whole answer must
arrive and end normally. Deterministic: the pause happens before the rest is sent.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from sds_registry.ssp.upstream import ProviderConnection, ProviderPool
from sds_registry.workers import new_event_loop
from tests.functional.ssp.conftest import Pki
from tests.unit.ssp.fixtures import PROVIDER_FQDN

REST = b"y" * 200_000  # under the TLS layer's 256 KiB read buffer: all of it is buffered while paused


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def closing_provider(pki: Pki) -> Iterator[tuple[int, threading.Event]]:
    """Answers one request: head and a first chunk, then (once told) the rest, the last chunk, and a close."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.provider[0]), str(pki.provider[1]))
    listener = socket.create_server(("127.0.0.1", 0))
    go_on = threading.Event()

    def serve() -> None:
        raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                         + _chunked(b"first"))
            go_on.wait(10)
            conn.sendall(_chunked(REST) + b"0\r\n\r\n")
        # the with block closes the socket: the TCP close follows the answer's end at once

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], go_on
    listener.close()
    thread.join(timeout=5)


class _SlowClient:
    """A sink that pauses the provider at the first piece, as the client connection does when its write
    buffer is full."""

    def __init__(self) -> None:
        self.received = b""
        self.conn: ProviderConnection | None = None
        self.paused = asyncio.Event()

    def body(self, data: bytes) -> None:
        self.received += data
        if not self.paused.is_set():
            assert self.conn is not None
            self.conn.pause_reading()
            self.paused.set()


def test_an_answer_ended_by_a_close_while_paused_arrives_whole(
    pki: Pki, closing_provider: tuple[int, threading.Event]
) -> None:
    port, go_on = closing_provider
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.ssp_client[0]), str(pki.ssp_client[1]))

    async def exchange() -> tuple[bool, bytes]:
        pool = ProviderPool(context, {(PROVIDER_FQDN, 443): ("127.0.0.1", port)}, size=0)
        conn, _ = await pool.acquire("https", PROVIDER_FQDN, 443)
        sink = _SlowClient()
        sink.conn = conn
        head = await conn.exchange(f"GET / HTTP/1.1\r\nHost: {PROVIDER_FQDN}\r\n\r\n".encode(), sink)
        assert head.status == 200
        await asyncio.wait_for(sink.paused.wait(), 5)
        go_on.set()
        await asyncio.sleep(0.5)  # the rest and the close reach the SSP's socket while it is paused
        conn.resume_reading()
        assert conn.done is not None
        keep = await asyncio.wait_for(conn.done, 5)
        conn.close()
        return keep, sink.received

    def on_own_loop() -> tuple[bool, bytes]:
        loop = new_event_loop()
        try:
            return loop.run_until_complete(exchange())
        finally:
            loop.close()

    # a thread of its own: the browser tests' Playwright keeps an event loop marked running on the main thread
    with ThreadPoolExecutor(max_workers=1) as runner:
        keep, received = runner.submit(on_own_loop).result(timeout=30)
    assert received == b"first" + REST
    assert keep is False


def test_resuming_restarts_the_stall_clock() -> None:
    """Silence while the SSP had paused reading is not the provider's: after a pause longer than the timeout,
    a stall check between the resume and the next read must not find the provider idle."""

    class _Transport:
        def get_extra_info(self, name: str) -> None:
            return None

        def pause_reading(self) -> None:
            pass

        def resume_reading(self) -> None:
            pass

    loop = new_event_loop()
    try:
        conn = ProviderConnection(("https", PROVIDER_FQDN, 443), loop)
        conn.connection_made(_Transport())  # type: ignore[arg-type]
        conn.last_read = loop.time() - 60.0  # the last byte came a minute ago, then the client stopped reading
        conn.pause_reading()
        conn.resume_reading()
        assert loop.time() - conn.last_read < 1.0
    finally:
        loop.close()
