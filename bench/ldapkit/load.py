"""Throughput with the C client (``ldapsearch -f``) and a server session's CPU from /proc. Linux; bench-only.

Each client process binds once and runs its share of the query set back to back over one connection.
A server's CPU is the sum of utime+stime+cutime+cstime over every process whose session id is the
server's, so a server that forks workers (or exec'd after an import step) is counted whole.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .lookups import ATTRIBUTES, Query

TICK = os.sysconf("SC_CLK_TCK")


def session_cpu_seconds(sid: int) -> float:
    """CPU seconds so far of every process in session ``sid`` (threads and reaped children included)."""
    ticks = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is proc(5) field 3
        if int(fields[3]) == sid:
            ticks += sum(int(x) for x in fields[11:15])
    return ticks / TICK


def session_size(sid: int) -> tuple[int, int]:
    """(processes, total RSS in KiB) of session ``sid``."""
    count = rss = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[3]) != sid:
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        count += 1
        rss += sum(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return count, rss


def _machine() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def _inside_and(flt: str) -> str:
    """``(&A(B))`` -> ``A(B)``: ldapsearch takes a pattern only if it looks like a filter, so ``(&%s)`` it is."""
    if not (flt.startswith("(&") and flt.endswith(")")):
        raise ValueError(f"load queries are AND filters, not {flt}")
    return flt[2:-1]


@dataclass(frozen=True)
class Batch:
    server: str
    procs: int
    round: int
    searches: int
    wall_s: float
    qps: float
    cpu_s: float
    steal_pct: float
    expected: int
    got: int
    status: str  # "ok", or what went wrong

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_batch(server: str, url: str, sid: int, queries: list[Query], procs: int, per_proc: int, round_: int,
              timeout: float = 300) -> Batch:  # fmt: skip
    """``procs`` ldapsearch processes, ``per_proc`` searches each, each starting at its own offset."""
    expected = 0
    with tempfile.TemporaryDirectory(prefix="ldapkit-load.") as tmp:
        inputs = []
        for p in range(procs):
            path = Path(tmp) / f"filters.{p}"
            start = p * len(queries) // procs
            chosen = [queries[(start + i) % len(queries)] for i in range(per_proc)]
            expected += sum(q.expect for q in chosen)
            path.write_text("".join(_inside_and(q.filter) + "\n" for q in chosen))
            inputs.append(path)
        outputs = [open(Path(tmp) / f"out.{p}", "w+b") for p in range(procs)]
        env = dict(os.environ, LDAPNOINIT="1")
        cpu0, m0, t0 = session_cpu_seconds(sid), _machine(), time.perf_counter()
        clients = [
            subprocess.Popen(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", url, "-b", "ou=Services,o=nhs",
                              "-f", str(path), "(&%s)", *ATTRIBUTES], stdout=out, stderr=subprocess.STDOUT, env=env)
            for path, out in zip(inputs, outputs, strict=True)
        ]  # fmt: skip
        expired = threading.Event()

        def stop() -> None:
            expired.set()
            for c in clients:
                c.kill()

        watchdog = threading.Timer(timeout, stop)
        watchdog.start()
        codes = [c.wait() for c in clients]  # blocks without polling, unlike wait(timeout=...)
        wall = time.perf_counter() - t0
        watchdog.cancel()
        cpu, m1 = session_cpu_seconds(sid) - cpu0, _machine()
        got = 0
        for out in outputs:
            out.seek(0)
            got += sum(1 for line in out if line.startswith(b"dn: "))
            out.close()
    delta = [b - a for a, b in zip(m0, m1, strict=True)]
    steal = 100.0 * delta[7] / sum(delta) if sum(delta) else 0.0
    status = "ok"
    if expired.is_set():
        status = f"timed out after {timeout:.0f}s"
    elif any(codes):
        status = f"ldapsearch exit status {codes}"
    elif got != expected:
        status = f"{got} entries, expected {expected}"
    total = procs * per_proc
    qps = 0.0 if expired.is_set() else total / wall
    return Batch(server, procs, round_, total, wall, qps, cpu, steal, expected, got, status)
