"""The asyncio LDAP server: sockets, TLS, timeouts and connection limits around protocol.LDAPConnection.

Everything LDAP-specific is in protocol.py and codec.py; this module only moves bytes and schedules
directory work. On SQLite a pinned lookup (the GP Connect ones) is an in-process index probe cheaper than
a thread hop, so it runs on the loop ("inline"); a search that may return much of the directory runs in
a small thread pool so it cannot stall other clients; on a networked database everything runs in the pool.
Each connection's requests run one at a time so answers keep their order. A failure in one connection
never reaches another.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

from sds_registry.config import Settings
from sds_registry.ldap import responses
from sds_registry.ldap.answers import AnswerCache
from sds_registry.ldap.protocol import (
    Close,
    CompareWork,
    DirectoryLike,
    Event,
    LDAPConnection,
    SearchWork,
    Send,
    StartTLS,
)
from sds_registry.ldap.results import ResultCode
from sds_registry.ldap.search import may_be_large
from sds_registry.ldap.tls import server_context
from sds_registry.logs import setup_logging
from sds_registry.workers import listen_socket, new_event_loop, run_workers

log = logging.getLogger(__name__)

#: Requests queued per connection (thread mode) before we stop reading from it.
_MAX_PENDING = 32
_HANDSHAKE_TIMEOUT = 30.0


class _Server:
    """What all connections of one process share."""

    def __init__(
        self,
        settings: Settings,
        directory: DirectoryLike,
        tls: ssl.SSLContext | None,
        executor: ThreadPoolExecutor,
        inline: bool,
        answers: AnswerCache | None = None,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.tls = tls
        self.executor = executor
        self.inline = inline
        self.answers = answers
        self.connections: set[_LDAPProtocol] = set()


class _LDAPProtocol(asyncio.Protocol):
    """One client connection: feeds bytes to LDAPConnection, writes what it produces, in order."""

    def __init__(self, server: _Server, over_tls: bool) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.conn = LDAPConnection(server.directory, server.settings, server.answers,
                                   tls_available=server.tls is not None, tls_active=over_tls)
        self.transport: asyncio.Transport | None = None
        self.inline = server.inline
        self.pending: deque[Event] = deque()
        self.busy = False  # a work item is in the thread pool, or StartTLS is in progress
        self.reading_paused = False
        self.writing_paused = False
        self.last_activity = 0.0
        self.eof = False  # the client half-closed while answers were still due
        self.idle_handle: asyncio.TimerHandle | None = None

    # ---- asyncio callbacks ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.transport = transport
        settings = self.server.settings
        if len(self.server.connections) >= settings.ldap_max_connections:
            log.warning("LDAP connection refused: %d connections open", len(self.server.connections))
            transport.write(responses.encode_notice_of_disconnection(ResultCode.BUSY, "too many connections"))
            transport.close()
            self.conn.closed = True
            return
        self.server.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.last_activity = self.loop.time()
        if settings.ldap_idle_timeout > 0:
            self.idle_handle = self.loop.call_later(settings.ldap_idle_timeout, self._idle_check)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.conn.closed = True
        self.pending.clear()
        if self.idle_handle is not None:
            self.idle_handle.cancel()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        try:
            events = self.conn.receive_data(data)
            if self.inline and not self.busy and not self.pending:
                self._run_inline(events)
            else:
                self.pending.extend(events)
                self._drain()
        except Exception:  # noqa: BLE001 - never let one client's input reach the loop
            log.exception("LDAP connection failed; closing it")
            self._abort()

    def eof_received(self) -> bool | None:
        """The client half-closed: answer what it already sent, then close (TLS transports close at once)."""
        if (self.busy or self.pending) and not self.conn.tls_active:
            self.eof = True
            return True
        return None

    # ---- internals ------------------------------------------------------------------------------------

    def _run_inline(self, events: list[Event]) -> None:
        """Fast path: everything on the loop, one write per batch of events."""
        out: list[bytes] = []
        conn = self.conn
        transport = self.transport
        assert transport is not None
        for i, ev in enumerate(events):
            t = type(ev)
            if t is SearchWork or t is CompareWork:
                if _may_be_large(ev):  # type: ignore[arg-type]
                    if out:
                        transport.write(b"".join(out))
                    self.pending.extend(events[i:])
                    self._drain()
                    return
                out.append(conn.perform(ev))  # type: ignore[arg-type]
            elif t is Send:
                out.append(ev.data)  # type: ignore[union-attr]
            elif t is Close:
                out.append(ev.data)  # type: ignore[union-attr]
                transport.write(b"".join(out))
                self._close()
                return
            elif t is StartTLS:
                transport.write(b"".join(out))
                self.pending.extend(events[i:])
                self._drain()
                return
        if out:
            transport.write(b"".join(out) if len(out) > 1 else out[0])

    def _drain(self) -> None:
        """Process queued events in order; stops while a work item or a TLS upgrade is in flight."""
        transport = self.transport
        assert transport is not None
        while self.pending and not self.busy:
            ev = self.pending.popleft()
            if isinstance(ev, Send):
                transport.write(ev.data)
            elif isinstance(ev, (SearchWork, CompareWork)):
                if self.inline and not _may_be_large(ev):
                    transport.write(self.conn.perform(ev))
                else:
                    self.busy = True
                    fut = self.server.executor.submit(self.conn.perform, ev)
                    fut.add_done_callback(self._work_done_threadsafe)
            elif isinstance(ev, Close):
                transport.write(ev.data)
                self._close()
                return
            elif isinstance(ev, StartTLS):
                transport.write(ev.data)
                self.busy = True
                asyncio.ensure_future(self._start_tls())
        if self.eof and not self.pending and not self.busy:
            self._close()
            return
        self._update_reading()

    def _work_done_threadsafe(self, fut: Future[bytes]) -> None:
        try:
            self.loop.call_soon_threadsafe(self._work_done, fut)
        except RuntimeError:  # the loop has closed: the server is stopping
            pass

    def _work_done(self, fut: Future[bytes]) -> None:
        self.busy = False
        if self.transport is None or self.transport.is_closing():
            return
        try:
            data = fut.result()
        except Exception:  # noqa: BLE001
            log.exception("LDAP work item failed; closing the connection")
            self._abort()
            return
        if data:
            self.transport.write(data)
        self.last_activity = self.loop.time()
        self._drain()

    async def _start_tls(self) -> None:
        assert self.transport is not None and self.server.tls is not None
        try:
            new = await self.loop.start_tls(
                self.transport, self, self.server.tls, server_side=True, ssl_handshake_timeout=_HANDSHAKE_TIMEOUT
            )
        except Exception as exc:  # noqa: BLE001 - a failed handshake ends this connection only
            log.info("StartTLS handshake failed: %s", exc)
            self._abort()
            return
        if new is None:
            self._abort()
            return
        self.transport = new
        self.busy = False
        self.last_activity = self.loop.time()
        self._drain()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        should_pause = self.writing_paused or len(self.pending) > _MAX_PENDING
        if should_pause and not self.reading_paused:
            transport.pause_reading()
            self.reading_paused = True
        elif not should_pause and self.reading_paused:
            transport.resume_reading()
            self.reading_paused = False

    def _idle_check(self) -> None:
        self.idle_handle = None
        if self.transport is None or self.transport.is_closing():
            return
        timeout = self.server.settings.ldap_idle_timeout
        idle = self.loop.time() - self.last_activity
        if idle >= timeout and not self.busy:
            log.debug("closing idle LDAP connection")
            self._close()
        else:
            self.idle_handle = self.loop.call_later(max(timeout - idle, 0.05), self._idle_check)

    def shutdown(self) -> None:
        """Server stopping: tell the client (RFC 4511 §4.4.1 notice, unavailable) and close."""
        if self.transport is not None and not self.transport.is_closing():
            notice = responses.encode_notice_of_disconnection(ResultCode.UNAVAILABLE, "server shutting down")
            self.transport.write(notice)
        self._close()

    def _close(self) -> None:
        self.conn.closed = True
        self.pending.clear()
        if self.transport is not None:
            self.transport.close()

    def _abort(self) -> None:
        self.conn.closed = True
        self.pending.clear()
        if self.transport is not None:
            self.transport.abort()


def _may_be_large(work: SearchWork | CompareWork) -> bool:
    return isinstance(work, SearchWork) and may_be_large(work.request, work.size_limit)


async def serve_ldap(
    settings: Settings,
    directory: DirectoryLike,
    stop: asyncio.Event,
    *,
    inline: bool = True,
    on_ready: Callable[[dict[str, tuple[str, int]]], None] | None = None,
    reuse_port: bool = False,
    answers: AnswerCache | None = None,
) -> None:
    """Serve LDAP (and LDAPS) until ``stop`` is set, then close every connection.

    ``inline``: run pinned lookups on the loop (right for SQLite); otherwise every directory call goes to
    the thread pool (right for a networked database, whose round trips would block the loop).
    ``answers``: the process's answer cache (answers.py), or None.
    ``on_ready`` gets the bound addresses, e.g. {"ldap": ("127.0.0.1", 40123)}, once listening.
    """
    loop = asyncio.get_running_loop()
    tls = server_context(settings)
    executor = ThreadPoolExecutor(max_workers=4 if inline else 8, thread_name_prefix="ldap-db")
    state = _Server(settings, directory, tls, executor, inline, answers)
    servers: list[asyncio.AbstractServer] = []
    addresses: dict[str, tuple[str, int]] = {}
    try:
        if settings.ldap_bind:
            sock = listen_socket(settings.ldap_bind, "SDS_LDAP_BIND", reuse_port)
            servers.append(await loop.create_server(lambda: _LDAPProtocol(state, False), sock=sock))
            addresses["ldap"] = sock.getsockname()[:2]
        if settings.ldaps_bind and tls is not None:
            sock = listen_socket(settings.ldaps_bind, "SDS_LDAPS_BIND", reuse_port)
            servers.append(
                await loop.create_server(
                    lambda: _LDAPProtocol(state, True), sock=sock, ssl=tls, ssl_handshake_timeout=_HANDSHAKE_TIMEOUT
                )
            )
            addresses["ldaps"] = sock.getsockname()[:2]
        log.info("LDAP listening on %s", ", ".join(f"{k}://{h}:{p}" for k, (h, p) in addresses.items()))
        if on_ready is not None:
            on_ready(addresses)
        await stop.wait()
    finally:
        for srv in servers:
            srv.close()
        for proto in list(state.connections):
            proto.shutdown()
        deadline = loop.time() + 2.0
        while state.connections and loop.time() < deadline:  # let the notices reach the clients
            await asyncio.sleep(0.05)
        for proto in list(state.connections):
            proto._abort()
        for srv in servers:
            await srv.wait_closed()
        executor.shutdown(wait=False, cancel_futures=True)


def _serve_process(settings: Settings, reuse_port: bool) -> None:
    """One serving process: engine, Directory, loop, signal handling."""
    from sds_registry.db import make_engine
    from sds_registry.ldap.directory import Directory
    from sds_registry.services.generation import Generation

    engine = make_engine(settings.database_url)
    directory = Directory(engine, settings)
    inline = engine.dialect.name == "sqlite"
    generation = Generation(engine)
    answers = AnswerCache(generation.current, settings.ldap_cache_bytes, inline) if settings.ldap_cache_bytes else None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_ldap(settings, directory, stop, inline=inline, reuse_port=reuse_port, answers=answers)

    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(main())
    finally:
        generation.close()
        directory.close()
        engine.dispose()


def _worker_entry(settings: Settings) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards SIGTERM
    setup_logging(settings.log_level, settings.log_format)  # a spawned process starts with no handlers
    _serve_process(settings, reuse_port=True)


def run_ldap(settings: Settings) -> None:
    """Serve LDAP/LDAPS in the foreground until SIGINT or SIGTERM (what `sds serve` calls).

    With ``ldap_workers`` > 1 this process supervises that many serving processes sharing the port
    (SO_REUSEPORT); the kernel spreads connections over them.
    """
    server_context(settings)  # fail fast on a bad certificate before forking
    workers = max(1, settings.ldap_workers)
    if workers == 1:
        _serve_process(settings, reuse_port=False)
        return
    run_workers(_worker_entry, (settings,), workers, "sds-ldap")
