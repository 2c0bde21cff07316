"""``run_ssp``: the SSP emulator's processes. A supervisor starts SDS_SSP_WORKERS serving processes that share
SDS_SSP_BIND (SO_REUSEPORT: the kernel spreads connections); each runs one event loop (uvloop) with its own
engine, Gate (registry facts cache, audit writer) and provider pool. SIGTERM/SIGINT stop them gracefully:
no new connections, requests in flight are answered, the audit is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from sds_registry.config import Settings, parse_bind
from sds_registry.ssp.proxy import check_settings, parse_connect_to, provider_ssl_context, server_ssl_context
from sds_registry.ssp.server import ClientConnection, ServerState, idle_sweeper
from sds_registry.ssp.upstream import ProviderPool
from sds_registry.workers import listen_socket, new_event_loop, run_workers

log = logging.getLogger("sds.ssp")
GRACE_SECONDS = 5.0


async def serve_ssp(
    settings: Settings, stop: asyncio.Event, on_ready: Callable[[tuple[str, int]], None] | None = None
) -> None:
    """Serve the SSP on SDS_SSP_BIND in this process until ``stop`` is set."""
    from sds_registry.db import make_engine
    from sds_registry.ssp.gate import Gate

    loop = asyncio.get_running_loop()
    tls = server_ssl_context(settings)
    engine = make_engine(settings.database_url)
    gate = Gate(settings, engine)
    pool = ProviderPool(provider_ssl_context(settings), parse_connect_to(settings.ssp_connect_to),
                        settings.ssp_provider_pool_size)
    state = ServerState(gate, pool, mutual_tls=bool(tls and settings.ssp_tls_client_ca), tls=tls is not None,
                        timeout=settings.ssp_provider_timeout)
    sock = listen_socket(settings.ssp_bind, "SDS_SSP_BIND", reuse_port=True)
    server = await loop.create_server(lambda: ClientConnection(state), sock=sock, ssl=tls,
                                      ssl_handshake_timeout=30.0 if tls else None)
    sweeper = loop.create_task(idle_sweeper(state))
    try:
        if on_ready is not None:
            on_ready(sock.getsockname()[:2])
        await stop.wait()
    finally:
        server.close()
        sweeper.cancel()
        for conn in list(state.connections):
            conn.shutdown()
        deadline = loop.time() + GRACE_SECONDS
        while state.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(state.connections):
            if conn.transport is not None:
                conn.transport.abort()
        pool.close()
        gate.close()
        engine.dispose()


def _worker(settings: Settings) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor forwards SIGTERM

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await serve_ssp(settings, stop)

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())


def run_ssp(settings: Settings) -> None:
    """Serve the SSP on SDS_SSP_BIND until SIGINT/SIGTERM (what `sds serve` runs)."""
    check_settings(settings)
    server_ssl_context(settings)  # fail fast on a bad certificate before starting workers
    provider_ssl_context(settings)
    host, port = parse_bind(settings.ssp_bind, "SDS_SSP_BIND")
    with contextlib.closing(listen_socket(settings.ssp_bind, "SDS_SSP_BIND", reuse_port=True)):
        pass  # fail fast on a port in use
    scheme = "https" if settings.ssp_tls_cert else "http"
    log.info("SSP emulator on %s://%s:%s (mutual TLS: %s, %d workers)", scheme, host, port,
             bool(settings.ssp_tls_cert and settings.ssp_tls_client_ca), max(1, settings.ssp_workers))
    # fork: no threads or loops exist yet in this process (and no resource tracker process is left beside
    # the workers, as spawn would)
    run_workers(_worker, (settings,), max(1, settings.ssp_workers), "sds-ssp", start_method="fork")
