"""Serving processes for the asyncio facades (LDAP, SSP): their listening sockets, event loop and supervisor.

No facade logic here: ``run_workers`` starts N processes on one target, forwards SIGINT/SIGTERM to them as
SIGTERM, stops the others when one ends on its own, and then exits non-zero (as when any ended badly).
"""

from __future__ import annotations

import asyncio
import errno
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from sds_registry import metrics
from sds_registry.config import parse_bind
from sds_registry.errors import ConfigError

#: The facade each bind setting serves, for "address in use" messages.
FACADES = {"SDS_HTTP_BIND": "HTTP", "SDS_LDAP_BIND": "LDAP", "SDS_LDAPS_BIND": "LDAPS", "SDS_SSP_BIND": "SSP"}


def _bind_error(exc: OSError, bind: str, label: str) -> ConfigError:
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(f"address in use: {FACADES.get(label, label)} {bind} ({label})")
    return ConfigError(f"cannot listen on {bind} ({label}): {exc.strerror or exc}")


def listen_socket(bind: str, label: str, reuse_port: bool = False) -> socket.socket:
    """A non-blocking listening socket on ``bind`` (host:port; ``label`` names the setting in errors), shared with
    sibling processes through SO_REUSEPORT when asked (the kernel then spreads connections over them).

    SO_REUSEPORT would also share the port with another instance's workers: the supervisor first calls
    ``check_address_free`` (a plain bind), so only one instance's workers ever share a port."""
    host, port = parse_bind(bind, label)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise _bind_error(exc, bind, label) from None
    sock.setblocking(False)
    return sock


def check_address_free(bind: str, label: str) -> None:
    """Raise ConfigError ("address in use: SSP 127.0.0.1:8443 (SDS_SSP_BIND)") when something already listens
    on ``bind``: a bind without SO_REUSEPORT fails on any listening socket, SO_REUSEPORT or not (SO_REUSEADDR
    only lets it pass over connections of a previous run left in TIME_WAIT). Port 0 is always free."""
    host, port = parse_bind(bind, label)
    if port == 0:
        return
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise _bind_error(exc, bind, label) from None
    finally:
        sock.close()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (a good share of the wire CPU), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run_workers(target: Callable[..., None], args: tuple[Any, ...], count: int, name: str,
                start_method: str = "spawn") -> None:
    """Run ``count`` processes of ``target(*args)`` until SIGINT/SIGTERM or until one of them exits."""
    context: Any = multiprocessing.get_context(start_method)  # SpawnContext or ForkContext
    procs = [context.Process(target=target, args=args, name=f"{name}-{i}") for i in range(count)]
    for proc in procs:
        proc.start()
    stopping = False

    def forward(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    died = False
    try:
        while not stopping and all(proc.is_alive() for proc in procs):
            procs[0].join(timeout=0.5)
        died = not stopping
        if died:  # one ended on its own: stop the others (once; a second SIGTERM would cut their clean-up)
            forward(signal.SIGTERM, None)
        for proc in procs:
            proc.join()
            if proc.pid is not None:
                metrics.mark_process_dead(proc.pid)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if died or any(proc.exitcode not in (0, -signal.SIGTERM) for proc in procs):
        raise SystemExit(1)
