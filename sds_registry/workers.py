"""Serving processes for the asyncio facades (LDAP, SSP): their listening sockets, event loop and supervisor.

No facade logic here: ``run_workers`` starts N processes on one target, forwards SIGINT/SIGTERM to them as
SIGTERM, and replaces a worker that dies on its own (killed, crashed, or exited): one log line and
``sds_worker_restarts_total{facade}`` per replacement. A ``RestartGuard`` stops a crash loop: when workers keep
dying soon after they start, the others are stopped and the process exits non-zero. ``sds serve``'s
supervisor uses the same guard for its facade processes.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

from sds_registry import metrics
from sds_registry.config import parse_bind
from sds_registry.errors import ConfigError

log = logging.getLogger("sds.workers")

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


#: A process that dies within this many seconds of its start counts towards a crash loop.
QUICK_DEATH_SECONDS = 5.0
#: This many quick deaths in a row (no process of the group lived longer meanwhile) end the group.
MAX_QUICK_DEATHS = 5


class RestartGuard:
    """Whether a dead process may be replaced: yes, unless ``limit`` processes in a row died within ``quick``
    seconds of their start (a bad setting or a broken database makes every new one die the same way, and
    replacing them for ever would hide it). A process that lived longer resets the count."""

    def __init__(self, limit: int = MAX_QUICK_DEATHS, quick: float = QUICK_DEATH_SECONDS) -> None:
        self.limit = limit
        self.quick = quick
        self.quick_deaths = 0

    def allow(self, lived_seconds: float) -> bool:
        self.quick_deaths = self.quick_deaths + 1 if lived_seconds < self.quick else 0
        return self.quick_deaths < self.limit


def describe_exit(status: int | None) -> str:
    """``status 1`` or ``signal SIGKILL`` for a process's exit code (negative: the signal that ended it)."""
    if status is not None and status < 0:
        try:
            return f"signal {signal.Signals(-status).name}"
        except ValueError:
            return f"signal {-status}"
    return f"status {status}"


def report_death(facade: str, kind: str, pid: int | None, status: int | None, restart: bool) -> None:
    """One structured line for a process that ended on its own: facade, pid, exit status or signal, and
    whether it is being replaced."""
    signum = -status if status is not None and status < 0 else None
    extra = {"facade": facade, "pid": pid, "exit_status": status if signum is None else None,
             "signal": describe_exit(status).removeprefix("signal ") if signum is not None else None,
             "restart": restart}
    what = "starting another" if restart else "it keeps dying soon after it starts: giving up"
    log.log(logging.WARNING if restart else logging.ERROR, "the %s %s %s ended (%s); %s", facade, kind, pid,
            describe_exit(status), what, extra=extra)


PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux; elsewhere nothing), so a worker
    whose supervisor was killed stops instead of serving on beside the replacement's workers (SO_REUSEPORT
    would let both answer). ``parent``: the pid expected; already gone means stop now."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl here
        return
    if os.getppid() != parent if parent is not None else os.getppid() == 1:
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(target: Callable[..., None], args: tuple[Any, ...], parent: int) -> None:
    die_with_parent(parent)
    target(*args)


def run_workers(target: Callable[..., None], args: tuple[Any, ...], count: int, name: str,
                start_method: str = "spawn") -> None:
    """Run ``count`` processes of ``target(*args)`` until SIGINT/SIGTERM, replacing any that dies meanwhile;
    exit non-zero when the RestartGuard gives up or a worker ended badly while stopping."""
    context: Any = multiprocessing.get_context(start_method)  # SpawnContext or ForkContext
    facade = name.removeprefix("sds-")
    started: dict[int, float] = {}

    def spawn(i: int) -> Any:
        proc = context.Process(target=_worker_main, args=(target, args, os.getpid()), name=f"{name}-{i}")
        proc.start()
        started[i] = time.monotonic()
        return proc

    procs = [spawn(i) for i in range(count)]
    signalled: set[int] = set()
    stopping = False

    def forward(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.pid is not None and proc.pid not in signalled and proc.is_alive():
                signalled.add(proc.pid)  # once: a second SIGTERM would cut its clean-up
                os.kill(proc.pid, signal.SIGTERM)

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    gave_up = False
    guard = RestartGuard()
    try:
        while not stopping and not gave_up:
            wait([proc.sentinel for proc in procs], timeout=0.5)
            for i, proc in enumerate(procs):
                if stopping or proc.is_alive():
                    continue
                proc.join()
                metrics.mark_process_dead(proc.pid)
                restart = guard.allow(time.monotonic() - started[i])
                report_death(facade, "worker", proc.pid, proc.exitcode, restart)
                if not restart:
                    gave_up = True
                    break
                metrics.count_restart(facade)
                procs[i] = spawn(i)
                proc.close()  # its sentinel pipe (a descriptor per replacement); after the swap: forward() reads procs
        forward(signal.SIGTERM, None)  # the ones not yet told (all of them when giving up)
        for proc in procs:
            proc.join()
            if proc.pid is not None:
                metrics.mark_process_dead(proc.pid)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if gave_up or any(proc.exitcode not in (0, -signal.SIGTERM) for proc in procs):
        raise SystemExit(1)
