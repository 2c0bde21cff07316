"""Structure-aware HTTP/1.1 fuzz of the SSP over a real socket: request-smuggling shapes and mutations.

    python bench/ssp_fuzz.py [--cases 2000] [--seed 13] [--seconds 600]

Starts the SSP (run_ssp, one worker, plain HTTP in front, TLS to the provider) on a seeded SQLite directory,
with a recording provider behind it (h11, strict: a request it cannot parse is counted as malformed). Each
case is a fresh connection carrying one shape built around a valid, allowed request: CL+TE and TE+CL,
duplicate or list Content-Length, obs-fold continuations (of Transfer-Encoding too), odd Transfer-Encoding
values, huge and negative chunk sizes, invalid chunk extensions, pipelined garbage after a valid request,
bare LF and bare CR, NUL in the target, a header name or value, over-long request lines and heads, bad
Content-Length values, and random byte mutations of a chunked request. Each shape hides a whole valid
request (target ``?smuggled=1``) where only a mis-framing parser would read it as a request of its own (in
the body, or after a framing the SSP must refuse): the provider must never see that target in a request line,
and no case may forward more than one request.

Per case: the client sends, waits for the SSP to close (1.5 s), half-closes, and allows the provider timeout
plus 3 s more; a connection still open then is a hang. Printed: cases by shape and outcome (first status, or
``closed`` for a close without an answer), hangs, smuggled requests, malformed requests the provider got,
cases that forwarded more than one request, provider requests cut short (a body that broke mid-way), the
slowest case, the SSP's RSS before and after, tracebacks in its log, and whether it still answers a valid
request. Exit status 1 when any goal is missed (no hang, nothing smuggled or malformed forwarded, SSP alive
and answering, no traceback).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.ssp import PROVIDER_FQDN, free_port, jwt_token, make_pki, seed, wait_port  # noqa: E402
from bench.ssp_fuzz_shapes import SHAPES, SMUGGLED, TRACE, head  # noqa: E402

PROVIDER_TIMEOUT = 2.0


# ---- the recording provider ------------------------------------------------------------------------------


@dataclass
class Provider:
    """Parses what the SSP forwards with h11 and answers each request 200 ``ok``."""

    port: int = 0
    #: (Ssp-TraceID, target) of every request head received; each case has its own trace id.
    seen: list[tuple[bytes, bytes]] = field(default_factory=list)
    malformed: int = 0
    aborted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, cert: Path, key: Path) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        listener = socket.create_server(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]

        def accept() -> None:
            while True:
                raw, _ = listener.accept()
                threading.Thread(target=self._connection, args=(context, raw), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()

    def _connection(self, context: ssl.SSLContext, raw: socket.socket) -> None:
        import h11

        conn = h11.Connection(h11.SERVER)
        try:
            with context.wrap_socket(raw, server_side=True) as tls:
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(tls.recv(65536))
                    elif isinstance(event, h11.Request):
                        trace = next((v for k, v in event.headers if k == b"ssp-traceid"), b"")
                        with self.lock:
                            self.seen.append((trace, event.target))
                    elif isinstance(event, h11.EndOfMessage):
                        tls.sendall(conn.send(h11.Response(status_code=200, headers=[("Content-Length", "2")]))
                                    + conn.send(h11.Data(data=b"ok")) + conn.send(h11.EndOfMessage()))
                        conn.start_next_cycle()
                    elif isinstance(event, h11.ConnectionClosed):
                        return
        except h11.RemoteProtocolError as exc:
            with self.lock:
                if "closed" in str(exc):  # the SSP cut a request short (its client broke the body)
                    self.aborted += 1
                else:
                    self.malformed += 1
        except (OSError, ssl.SSLError, h11.LocalProtocolError):
            return

    def by_trace(self) -> dict[bytes, list[bytes]]:
        out: dict[bytes, list[bytes]] = {}
        with self.lock:
            for trace, target in self.seen:
                out.setdefault(trace, []).append(target)
        return out


# ---- running -----------------------------------------------------------------------------------------------


@dataclass
class Report:
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    hangs: list[tuple[str, bytes]] = field(default_factory=list)
    over_forwarded: list[tuple[str, int, bytes]] = field(default_factory=list)
    smuggled: int = 0
    provider_malformed: int = 0
    provider_aborted: int = 0
    slowest: float = 0.0
    rss_kib: tuple[int, int] = (0, 0)
    tracebacks: int = 0
    alive: bool = False
    cases: int = 0

    @property
    def ok(self) -> bool:
        return (not self.hangs and not self.over_forwarded and not self.smuggled and not self.provider_malformed
                and self.alive and not self.tracebacks)


def send_case(port: int, data: bytes, open_wait: float = 1.5) -> tuple[str, float, bool]:
    """(outcome, seconds until the SSP closed, whether it closed in time); ``open_wait``: how long the client
    waits for a close before half-closing (an SSP waiting for the rest of a request waits that long)."""
    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the SSP may close while a long case is still being sent
        closed = False
        for phase, wait in (("open", open_wait), ("half-closed", PROVIDER_TIMEOUT + 3.0)):
            if phase == "half-closed":
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    piece = sock.recv(65536)
                except TimeoutError:
                    break
                except OSError:
                    piece = b""
                if not piece:
                    closed = True
                    break
                received += piece
            if closed:
                break
    statuses = re.findall(rb"(?:^|\r\n)HTTP/1\.1 (\d{3}) ", received)
    outcome = statuses[0].decode() if statuses else "closed"
    if len(statuses) > 1:
        outcome += "+" + statuses[-1].decode()
    return outcome, time.monotonic() - started, closed


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and its children (the SSP's worker), in KiB."""
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        pass
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def run(cases: int, seed_value: int, seconds: float, folder: Path, log: Callable[[str], None] = print,
        open_wait: float = 1.5) -> Report:
    """Start the pieces in ``folder``, run up to ``cases`` cases (or until ``seconds`` pass), stop, report."""
    pki = make_pki(folder)
    database_url = f"sqlite:///{folder / 'fuzz.sqlite3'}"
    seed(database_url, 0)
    provider = Provider()
    provider.serve(pki["provider"], pki["provider_key"])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDS_", "PROMETHEUS_"))}
    env.update({
        "SDS_DATABASE_URL": database_url, "SDS_SSP_BIND": f"127.0.0.1:{port}", "SDS_SSP_WORKERS": "1",
        "SDS_SSP_PROVIDER_CA": str(pki["ca"]), "SDS_SSP_CLIENT_CERT": str(pki["ssp_client"]),
        "SDS_SSP_CLIENT_KEY": str(pki["ssp_client_key"]),
        "SDS_SSP_CONNECT_TO": f"{PROVIDER_FQDN}:443:127.0.0.1:{provider.port}",
        "SDS_SSP_PROVIDER_TIMEOUT": str(PROVIDER_TIMEOUT), "SDS_LOG_LEVEL": "WARNING",
    })
    code = ("from sds_registry.config import load_settings; from sds_registry.ssp.service import run_ssp; "
            "run_ssp(load_settings())")
    log_path = folder / "ssp.log"
    with log_path.open("wb") as out:
        ssp = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    report = Report()
    try:
        wait_port(port, ssp)
        token = jwt_token()
        report.alive = send_case(port, head(token=token))[0] == "200"
        report.rss_kib = (rss_kib(ssp.pid), 0)
        rng = random.Random(seed_value)
        names = sorted(SHAPES)
        names_by_trace: dict[bytes, tuple[str, bytes]] = {}
        until = time.monotonic() + seconds
        for number in range(cases):
            if time.monotonic() > until:
                break
            if number % 500 == 499:
                token = jwt_token()  # audit JWTs live five minutes
            name = names[number % len(names)]
            trace = f"{TRACE[:24]}{number:012d}".encode()
            data = SHAPES[name](rng, token).replace(TRACE.encode(), trace)
            names_by_trace[trace] = (name, data[:200])
            outcome, took, closed = send_case(port, data, open_wait)
            report.cases += 1
            report.slowest = max(report.slowest, took)
            report.outcomes[(name, outcome)] += 1
            if not closed:
                report.hangs.append((name, data[:200]))
            if number % 200 == 199:
                log(f"  {number + 1} cases, {len(report.hangs)} hangs, RSS {rss_kib(ssp.pid)} KiB")
        time.sleep(1.0)  # the provider's threads record the last heads
        for trace, targets in provider.by_trace().items():
            report.smuggled += sum(SMUGGLED in target for target in targets)
            if len(targets) > 1 and trace in names_by_trace:  # one request at most: hidden ones are body bytes
                report.over_forwarded.append((names_by_trace[trace][0], len(targets), names_by_trace[trace][1]))
        report.provider_malformed, report.provider_aborted = provider.malformed, provider.aborted
        report.alive = report.alive and ssp.poll() is None and send_case(port, head(token=jwt_token()))[0] == "200"
        report.rss_kib = (report.rss_kib[0], rss_kib(ssp.pid))
    finally:
        if ssp.poll() is None:
            ssp.send_signal(signal.SIGTERM)
            try:
                ssp.wait(timeout=20)
            except subprocess.TimeoutExpired:
                ssp.kill()
                ssp.wait()
    report.tracebacks = log_path.read_text(errors="replace").count("Traceback")
    return report


def print_report(report: Report) -> None:
    print(f"cases: {report.cases}")
    for (shape, outcome), count in sorted(report.outcomes.items()):
        print(f"  {shape:18} {outcome:10} {count}")
    by_outcome: Counter[str] = Counter()
    for (_, outcome), count in report.outcomes.items():
        by_outcome[outcome] += count
    print("by outcome: " + ", ".join(f"{o}={c}" for o, c in sorted(by_outcome.items())))
    print(f"hangs: {len(report.hangs)}  smuggled: {report.smuggled}  provider saw malformed: "
          f"{report.provider_malformed}  more than one forwarded: {len(report.over_forwarded)}  "
          f"provider requests cut short: {report.provider_aborted}")
    for name, data in report.hangs[:5]:
        print(f"  hang: {name} {data!r}")
    for name, forwarded, data in report.over_forwarded[:5]:
        print(f"  forwarded {forwarded}: {name} {data!r}")
    print(f"slowest case: {report.slowest:.2f} s  SSP RSS: {report.rss_kib[0]} -> {report.rss_kib[1]} KiB  "
          f"tracebacks: {report.tracebacks}  still answering: {report.alive}")
    print(f"ssp_fuzz: {'PASS' if report.ok else 'FAIL'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--seconds", type=float, default=600.0, help="stop starting new cases after this long")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssp-fuzz-") as folder:
        report = run(args.cases, args.seed, args.seconds, Path(folder))
    print_report(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
