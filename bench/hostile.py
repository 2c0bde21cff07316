"""Hostile clients against a real ``sds serve``: slow headers, slow bodies and connection floods on HTTP, LDAP and
the SSP while a normal client's lookups go on, then a million fuzzed LDAP messages.

    .venv/bin/python bench/hostile.py [--slow 200] [--flood 1500] [--phase-seconds 20] [--drip 2]
                                      [--fuzz-messages 1000000] [--ldap-max-connections 256]

One ``sds serve`` on SQLite (HTTP: gunicorn gthread, 2 workers x 4 threads; LDAP; the SSP with mutual TLS in
front of bench/ssp.py's provider stub), started by the script on free ports. Phases, each ``--phase-seconds``
with the normal client (bench/soakload.py's lookup streams: LDAP, FHIR, /api/resolve, the SSP; 25 req/s each,
connected before the phase's attackers):

1. baseline;
2. slow headers: ``--slow`` connections per facade each send a request head one byte every ``--drip`` s,
   never finishing (LDAP: a message's frame, byte by byte);
3. slow bodies: the same with complete heads announcing a body that trickles (HTTP POST /api/providers, SSP
   POST), and LDAP messages announcing 64 KiB;
4. flood: ``--flood`` idle TCP connections per facade, opened within 2 s (LDAP's limit is set to
   ``--ldap-max-connections``: the extras must be closed at once; the SSP's are not TLS handshakes, whose
   CPU cost would be the test instead);
5. recovery: every attacker gone; lookups as at baseline and the server's open files back where they were;
6. fuzz: ``--fuzz-messages`` malformed LDAP messages (tests/support/ldap_fuzz.py), then a lookup; the LDAP
   process's RSS before and after.

Goals: the normal client's p99 under 50 ms per facade in every phase and no error; attackers closed by the
server or held without harm; no crash (``sds serve`` exits 0 on SIGTERM), no hang, RSS bounded. Exit status 1
when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import ssl
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import ssp as sspbench  # noqa: E402
from bench.procwatch import open_fds, rss_kib, tree  # noqa: E402
from bench.soak import prepare, serving  # noqa: E402
from bench.soakload import Load, Target  # noqa: E402
from tests.support.ldap_fuzz import fuzz  # noqa: E402

P99_GOAL_MS = 50.0


@dataclass
class Attackers:
    """Counts for one kind of hostile connection."""

    opened: int = 0
    failed_to_open: int = 0
    closed_by_server: int = 0
    close_after: list[float] = field(default_factory=list)  # seconds from open to the server's close

    def line(self) -> str:
        held = self.opened - self.closed_by_server
        median = sorted(self.close_after)[len(self.close_after) // 2] if self.close_after else float("nan")
        return (f"opened {self.opened}, not accepted {self.failed_to_open}, closed by the server "
                f"{self.closed_by_server} (median after {median:.1f} s), still held {held}")


@dataclass(frozen=True)
class Spec:
    name: str
    port: int
    tls: bool  # TLS with the consumer's client certificate (the SSP)
    head: bytes  # sent at once
    drip: bytes  # then one byte each interval (cycled); empty: nothing more (an idle connection)


class Attack:
    """Hostile connections on an asyncio loop in a process of their own (so their TLS handshakes and bytes
    do not take the normal client's interpreter lock), driven over a pipe."""

    def __init__(self, pki: dict[str, Path]) -> None:
        self.pipe, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(target=_attacker, args=(child, pki), daemon=True)
        self.process.start()

    def launch(self, spec: Spec, n: int, interval: float) -> None:
        self.pipe.send(("launch", spec, n, interval))

    def stop(self) -> dict[str, Attackers]:
        self.pipe.send(("stop",))
        counts: dict[str, Attackers] = self.pipe.recv()
        return counts

    def close(self) -> None:
        self.pipe.send(("exit",))
        self.process.join(15)


def _attacker(pipe: Any, pki: dict[str, Path]) -> None:
    tls = ssl.create_default_context(cafile=str(pki["ca"]))
    tls.check_hostname = False  # 127.0.0.1; the chain is still verified
    tls.load_cert_chain(str(pki["consumer"]), str(pki["consumer_key"]))
    asyncio.run(_attack_loop(pipe, tls))


async def _attack_loop(pipe: Any, tls: ssl.SSLContext) -> None:
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    counts: dict[str, Attackers] = {}
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "launch":
            _, spec, n, interval = command
            c = counts.setdefault(spec.name, Attackers())
            for i in range(n):  # spread over 2 s: a burst of handshakes is a different test
                tasks.append(loop.create_task(_one(spec, tls if spec.tls else None, interval, c, 2.0 * i / n)))
        elif command[0] == "stop":
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks = []
            pipe.send(counts)
            counts = {}
        else:
            return


async def _one(spec: Spec, tls: ssl.SSLContext | None, interval: float, counts: Attackers, delay: float) -> None:
    await asyncio.sleep(delay)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", spec.port, ssl=tls, server_hostname=None if tls is None else "127.0.0.1"), 30)
    except (TimeoutError, OSError, ssl.SSLError):
        counts.failed_to_open += 1
        return
    counts.opened += 1
    opened = time.monotonic()
    try:
        writer.write(spec.head)
        i = 0
        while True:
            if spec.drip:
                writer.write(spec.drip[i % len(spec.drip):i % len(spec.drip) + 1])
                i += 1
            try:
                data = await asyncio.wait_for(reader.read(65536), interval)
            except TimeoutError:
                continue
            if not data:  # the server closed (it may have answered first)
                counts.closed_by_server += 1
                counts.close_after.append(time.monotonic() - opened)
                return
    except (OSError, ssl.SSLError):
        counts.closed_by_server += 1
        counts.close_after.append(time.monotonic() - opened)
    finally:
        writer.close()


def specs(target: Target, phase: str) -> list[Spec]:
    ssp_path = f"/{sspbench.ROOT}/metadata"
    if phase == "slow headers":
        return [Spec("http", target.http, False, b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n"),
                Spec("ldap", target.ldap, False, b"\x30", b"\x84\x00\x00\x00\x40" + b"\x02\x01\x01" * 30),
                Spec("ssp", target.ssp, True, f"GET {ssp_path} HTTP/1.1\r\nHost: x\r\n".encode(), b"X-Slow: 1\r\n")]
    if phase == "slow bodies":
        return [Spec("http", target.http, False, b"POST /api/providers HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nAuthorization: Bearer " + target.token.encode()
                     + b"\r\nContent-Length: 100000\r\n\r\n", b'{"ods_code": "'),
                Spec("ldap", target.ldap, False, b"\x30\x83\x01\x00\x00\x02\x01\x01", b"\x04\x01a"),
                Spec("ssp", target.ssp, True, f"POST {ssp_path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                     "json\r\nContent-Length: 100000\r\n\r\n".encode(), b"{}")]
    # the flood: idle TCP connections (the SSP's too: a thousand TLS handshakes would measure CPU, not limits)
    return [Spec("http", target.http, False, b"", b""), Spec("ldap", target.ldap, False, b"", b""),
            Spec("ssp", target.ssp, False, b"", b"")]


@dataclass
class Phase:
    name: str
    load: Load
    attackers: dict[str, Attackers]
    fds: dict[int, int]


def run_phase(name: str, target: Target, attack: Attack, seconds: float, count: int, interval: float,
              server_pid: int) -> Phase:
    load = Load(target, writers=0, lookup_rate=25.0, write_rate=1.0, settle=4.0)  # after the attackers' ramp
    runner = threading.Thread(target=load.run, args=(seconds,), daemon=True)
    runner.start()
    time.sleep(1.0)  # the normal client connects first
    if count:
        for spec in specs(target, name):
            attack.launch(spec, count, interval)
    time.sleep(max(0.0, seconds - 3))
    fds = {pid: open_fds(pid) for pid in tree(server_pid)}
    runner.join(seconds + 120)
    return Phase(name, load, attack.stop(), fds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=200, help="slow connections per facade")
    parser.add_argument("--flood", type=int, default=1500, help="idle connections per facade in the flood")
    parser.add_argument("--phase-seconds", type=float, default=20.0)
    parser.add_argument("--drip", type=float, default=2.0, help="seconds between a slow client's bytes")
    parser.add_argument("--fuzz-messages", type=int, default=1_000_000)
    parser.add_argument("--ldap-max-connections", type=int, default=256)
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="sds-hostile-") as tmp:
        folder = Path(tmp)
        database_url = f"sqlite:///{folder / 'hostile.sqlite3'}"
        prepared = prepare(database_url, 10)
        env = {"SDS_LDAP_MAX_CONNECTIONS": str(args.ldap_max_connections)}
        with serving(database_url, folder, prepared, env) as (server, target):
            pid = server.proc.pid
            attack = Attack(target.pki)
            phases = [run_phase("baseline", target, attack, args.phase_seconds, 0, args.drip, pid)]
            phases.append(run_phase("slow headers", target, attack, args.phase_seconds, args.slow, args.drip, pid))
            phases.append(run_phase("slow bodies", target, attack, args.phase_seconds, args.slow, args.drip, pid))
            phases.append(run_phase("flood", target, attack, args.phase_seconds, args.flood, 5.0, pid))
            time.sleep(2.0)
            phases.append(run_phase("recovery", target, attack, args.phase_seconds, 0, args.drip, pid))
            attack.close()
            for phase in phases:
                ok &= report_phase(phase)
            ok &= report_fds(phases[0].fds, phases[-1].fds)
            if args.fuzz_messages:
                ok &= fuzz_phase(server.ldap, server.proc.pid, args.fuzz_messages, target)
        print(f"sds serve stopped cleanly (exit status 0); log problems: {problems(server.output())}")
    print("result:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def problems(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Traceback" in line or "exited with status" in line][:5]


def report_phase(phase: Phase) -> bool:
    print(f"\n== {phase.name}")
    phase.load.print()
    for name, counts in phase.attackers.items():
        print(f"  hostile {name:5} {counts.line()}")
    ok = True
    for name, stats in phase.load.stats.items():
        if stats.errors or not stats.latencies or stats.percentile(0.99) >= P99_GOAL_MS:
            print(f"  MISSED: {name} p99 {stats.percentile(0.99):.1f} ms (goal < {P99_GOAL_MS:.0f}), "
                  f"{stats.errors} errors")
            ok = False
    return ok


def report_fds(before: dict[int, int], after: dict[int, int]) -> bool:
    print("\nopen files per server process, baseline -> after recovery:",
          ", ".join(f"{pid}: {before.get(pid, '-')} -> {n}" for pid, n in sorted(after.items())))
    grown = {pid: n - before.get(pid, n) for pid, n in after.items() if n - before.get(pid, n) > 16}
    if grown:
        print(f"  MISSED: open files grew by {grown}")
    return not grown


def fuzz_phase(port: int, server_pid: int, messages: int, target: Target) -> bool:
    ldap_pid = next((p for p in tree(server_pid) if p != server_pid and _serves(p, "ldap")), None)
    before = rss_kib(ldap_pid) if ldap_pid else None
    peak = [before or 0]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(1.0):
            peak[0] = max(peak[0], rss_kib(ldap_pid) or 0) if ldap_pid else 0

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    sent = fuzz(("127.0.0.1", port), messages, random.Random(20241204))
    elapsed = time.monotonic() - started
    done.set()
    watcher.join(5)
    after = rss_kib(ldap_pid) if ldap_pid else None
    check = Load(target, writers=0, lookup_rate=25.0, write_rate=1.0, settle=0.0)
    check.run(3.0)
    ldap = check.stats.get("ldap")
    answered = ldap is not None and ldap.requests > 0 and ldap.errors == 0
    print(f"\n== fuzz: {sent} malformed LDAP messages in {elapsed:.0f} s ({sent / elapsed:.0f}/s); LDAP process RSS "
          f"{(before or 0) / 1024:.1f} -> {(after or 0) / 1024:.1f} MiB (max {peak[0] / 1024:.1f}); lookups after: "
          f"{'answered' if answered else 'FAILED'}")
    return answered and after is not None and before is not None and after - before < 64 * 1024


def _serves(pid: int, facade: str) -> bool:
    try:
        return f"serve-facade\0{facade}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
