"""A real ``sds serve`` (or any server command) on loopback ports for a test: start, wait, stop, and its log.

Tests that need the wire as a user sees it (several processes, signals, the supervisor) use ``sds_serve``;
tests of one facade in-process use their own fixtures.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A loopback TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = START_TIMEOUT) -> None:
    """Return once 127.0.0.1:port accepts a connection; fail when ``proc`` exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited with status {proc.returncode} before port {port} opened")
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing listened on port {port} within {timeout:.0f} s")
        time.sleep(0.1)


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any SDS_* or PROMETHEUS_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDS_", "PROMETHEUS_"))}
    env.update(extra)
    return env


@dataclass
class Running:
    """A started server: its process, the ports of its facades (0 when off) and the file its output goes to."""

    proc: subprocess.Popen[bytes]
    log: Path
    http: int = 0
    ldap: int = 0
    ssp: int = 0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def children(self, pid: int | None = None) -> list[int]:
        """The direct child processes of ``pid`` (default: the server itself), from /proc."""
        pid = self.proc.pid if pid is None else pid
        try:
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except FileNotFoundError:
            return []

    def facades(self) -> dict[str, int]:
        """The pid of each facade process (``http``, ``ldap``, ``ssp``) the server runs now, from their command
        lines (``serve-facade NAME``); their own children are the workers (``children(pid)``)."""
        out: dict[str, int] = {}
        for pid in self.children():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if b"serve-facade" in argv[:-1]:
                out[argv[argv.index(b"serve-facade") + 1].decode()] = pid
        return out

    def workers(self, facade: str) -> list[int]:
        """The worker processes of ``facade`` (none when it serves in its own process), without the resource
        tracker multiprocessing starts beside spawned ones."""
        pid = self.facades().get(facade)
        if pid is None:
            return []
        out = []
        for child in self.children(pid):
            try:
                if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                    out.append(child)
            except FileNotFoundError:
                continue
        return out

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait; SIGKILL after ``timeout``. Returns the exit status (negative: killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start(command: list[str], env: Mapping[str, str], log: Path, ports: tuple[int, ...],
          timeout: float = START_TIMEOUT) -> subprocess.Popen[bytes]:
    """Start ``command`` with stdout and stderr to ``log``; wait until each of ``ports`` accepts connections."""
    with log.open("ab") as out:
        proc = subprocess.Popen(command, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    try:
        for port in ports:
            wait_for_port(port, proc, timeout)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise AssertionError(f"{' '.join(command)} did not start:\n{log.read_text(errors='replace')}") from None
    return proc


@contextmanager
def sds_serve(database_url: str, folder: Path, *, http: bool = True, ldap: bool = True, ssp: bool = True,
              env: Mapping[str, str] | None = None, expect_status: int | None = 0) -> Iterator[Running]:
    """``sds serve`` on free loopback ports with the facades asked for, one worker each unless ``env`` says
    otherwise, logging at WARNING unless ``env`` says otherwise. On exit it is stopped with SIGTERM and, when
    ``expect_status`` is not None, its exit status is checked (the log is shown when it differs)."""
    ports = {"http": free_port() if http else 0, "ldap": free_port() if ldap else 0,
             "ssp": free_port() if ssp else 0}
    settings = {
        "SDS_DATABASE_URL": database_url,
        "SDS_HTTP_BIND": f"127.0.0.1:{ports['http']}" if http else "",
        "SDS_LDAP_BIND": f"127.0.0.1:{ports['ldap']}" if ldap else "",
        "SDS_SSP_BIND": f"127.0.0.1:{ports['ssp']}" if ssp else "",
        "SDS_HTTP_WORKERS": "1", "SDS_LDAP_WORKERS": "1", "SDS_SSP_WORKERS": "1", "SDS_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    full_env = clean_environment(settings)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "sds-serve.log"
    proc = start([sys.executable, "-m", "sds_registry.cli", "serve"], full_env, log,
                 tuple(port for port in ports.values() if port))
    running = Running(proc, log, env=full_env, **ports)
    try:
        yield running
    finally:
        status = running.stop()
    if expect_status is not None:
        assert status == expect_status, f"sds serve exited with {status}:\n{running.output()}"
