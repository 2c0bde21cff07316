"""SDS FHIR API throughput: /Endpoint and /Device beside the same server's bare /healthcheck, at 8,000 and 100
synthetic practices, under gunicorn (gthread), driven with keep-alive connections.

    .venv/bin/python bench/fhir.py [--practices 8000] [--small 100] [--seconds 10] [--connections 8]
    .venv/bin/python bench/fhir.py --observability [--practices 8000]

``--observability`` instead compares two servers on the same directory, rounds interleaved: one with access
lines at INFO in JSON (to a file) and multiprocess Prometheus metrics (PROMETHEUS_MULTIPROC_DIR, as under
``sds serve``), one at WARNING with in-process metrics; it prints /Endpoint and /Device requests/s and server
CPU per request of each, and the cost (target: observed >= 0.9 x quiet, i.e. at most 10%).

Databases are built once through the registry services (sds_registry.services.synthetic.create_practice) and cached
under instance/bench/ (keyed by practice count and migration head). The load generator is wrk when it is
installed (one thread: it needs a fraction of a core), else a Python one (threads + http.client keep-alive).
Prints requests/s and p50/p99 latency per route, the FHIR/healthcheck ratios (target >= 0.5) and the same
lookup's requests/s at 100 over 8,000 practices (target <= 1.5; rounds interleave the two servers, so each
pair met the same machine). Every figure is a median over rounds (default 5): gunicorn's workers race to accept
on one shared socket, and now and then one of them takes all 8 new connections of a round, which halves that
round's throughput whatever the route (seen about once in 18 rounds).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.orm import Session  # noqa: E402

from sds_registry.db import make_engine  # noqa: E402
from sds_registry.migrate import sync_catalogue, upgrade  # noqa: E402
from sds_registry.services.synthetic import create_practice, practice_ods  # noqa: E402

BASE = "/spine-directory/FHIR/R4"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code%7C"
SVC = "https://fhir.nhs.uk/Id/nhsServiceInteractionId%7C"
PK = "https://fhir.nhs.uk/Id/nhsMhsPartyKey%7C"
STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"


def migration_head() -> str:
    """A stable key for the schema: the migration files' names and contents."""
    digest = hashlib.sha1()
    for path in sorted((ROOT / "sds_registry" / "migrations" / "versions").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def build_database(practices: int, directory: Path) -> Path:
    """A SQLite file with ``practices`` synthetic practices, built once and reused."""
    path = directory / f"fhir-{practices}-{migration_head()}.sqlite3"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    url = f"sqlite:///{partial}"
    upgrade(url)
    engine = make_engine(url)
    started = time.perf_counter()
    with Session(engine) as session:
        sync_catalogue(session)
        for n in range(practices):
            create_practice(session, n)
            if n % 250 == 249:
                session.commit()
                print(f"  built {n + 1}/{practices} practices ({time.perf_counter() - started:.0f} s)", flush=True)
        session.commit()
    engine.dispose()
    partial.rename(path)
    return path


def request_paths(practices: int, count: int = 400) -> dict[str, list[str]]:
    """Lookups spread over the whole directory, in the two shapes GP Connect consumers send."""
    rng = random.Random(7)
    numbers = [rng.randrange(practices) for _ in range(count)]
    endpoint = [f"{BASE}/Endpoint?organization={ODS}{practice_ods(n)}&identifier={SVC}{STRUCTURED}" for n in numbers]
    device = [f"{BASE}/Device?organization={ODS}{practice_ods(n)}&identifier={SVC}{METADATA}"
              f"&identifier={PK}{practice_ods(n)}-{800000 + n % 100000}" for n in numbers]
    return {"/healthcheck": ["/healthcheck"], "/Endpoint": endpoint, "/Device": device}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """gunicorn (gthread) serving create_app() on the given database."""

    def __init__(self, database: Path, workers: int, threads: int, env: dict[str, str] | None = None,
                 log: Path | None = None) -> None:
        self.port = free_port()
        settings = {"SDS_DATABASE_URL": f"sqlite:///{database}", "SDS_LOG_LEVEL": "WARNING", **(env or {})}
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        out = log.open("ab") if log is not None else None
        self.process = subprocess.Popen(
            [gunicorn, "--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads),
             "--bind", f"127.0.0.1:{self.port}", "--keep-alive", "30", "--log-level", "warning", "wsgi:app"],
            env=dict(os.environ, **settings), cwd=ROOT, start_new_session=True, stderr=out)
        if out is not None:
            out.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthcheck")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)


class Result:
    def __init__(self, rps: float, p50_ms: float, p99_ms: float, errors: int, requests: int) -> None:
        self.rps, self.p50_ms, self.p99_ms, self.errors, self.requests = rps, p50_ms, p99_ms, errors, requests
        self.cpu_us = 0.0  #: server CPU (all gunicorn processes, user + system) per request


def server_cpu_seconds(pgid: int) -> float:
    """utime + stime of every process in the server's process group (Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 (pgrp) of /proc/pid/stat
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / os.sysconf("SC_CLK_TCK")


WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], {["Accept"] = "application/fhir+json"})
end
"""


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(port: int, paths: list[str], seconds: float, connections: int) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "paths.txt").write_text("\n".join(paths) + "\n")
        (Path(tmp) / "rotate.lua").write_text(WRK_SCRIPT)
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
             "-s", str(Path(tmp) / "rotate.lua"), f"http://127.0.0.1:{port}"],
            env=dict(os.environ, WRK_PATHS=str(Path(tmp) / "paths.txt")), capture_output=True, text=True, check=True,
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        print(f"    wrk: socket errors {socket_errors.group(1)}")
    return Result(rps, p50, p99, int(errors.group(1)) if errors else 0, requests)


def run_python(port: int, paths: list[str], seconds: float, connections: int) -> Result:
    """Fallback load generator: one thread per keep-alive connection (GIL-bound: an under-estimate)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        i = offset
        while time.monotonic() < stop:
            started = time.perf_counter()
            conn.request("GET", paths[i % len(paths)])
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                errors[0] += 1
            i += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(n * 37,)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return Result(len(latencies) / seconds, latencies[len(latencies) // 2] * 1000,
                  latencies[int(len(latencies) * 0.99)] * 1000, errors[0], len(latencies))


def measure(databases: dict[int, Path], args: argparse.Namespace) -> dict[int, dict[str, list[Result]]]:
    """Interleaved rounds (healthcheck, Endpoint, Device; each directory size in turn), so that load from
    anything else on the machine hits every figure alike; one gunicorn per directory size."""
    load = run_wrk if shutil.which("wrk") and not args.python_load else run_python
    servers = {n: Server(path, args.workers, args.threads) for n, path in databases.items()}
    table: dict[int, dict[str, list[Result]]] = {n: {} for n in databases}
    try:
        for n, server in servers.items():
            for paths in request_paths(n).values():
                load(server.port, paths, 2, args.connections)  # warm up connections, caches, compiled SQL
        for _ in range(args.rounds):
            for n, server in servers.items():
                for route, paths in request_paths(n).items():
                    cpu_before = server_cpu_seconds(server.process.pid)
                    result = load(server.port, paths, args.seconds, args.connections)
                    result.cpu_us = (server_cpu_seconds(server.process.pid) - cpu_before) / result.requests * 1e6
                    table[n].setdefault(route, []).append(result)
    finally:
        for server in servers.values():
            server.stop()
    return table


def measure_observability(database: Path, args: argparse.Namespace) -> dict[str, dict[str, list[Result]]]:
    """/Endpoint and /Device on two servers over one database, rounds interleaved: ``observed`` (INFO access
    lines in JSON to a file, multiprocess metrics) and ``quiet`` (WARNING, in-process metrics)."""
    load = run_wrk if shutil.which("wrk") and not args.python_load else run_python
    work = Path(tempfile.mkdtemp(prefix="sds-bench-obs-"))
    (work / "metrics").mkdir()
    servers = {
        "observed": Server(database, args.workers, args.threads, log=work / "observed.log", env={
            "SDS_LOG_LEVEL": "INFO", "SDS_LOG_FORMAT": "json", "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics")}),
        "quiet": Server(database, args.workers, args.threads),
    }
    paths = {route: found for route, found in request_paths(args.practices).items() if route != "/healthcheck"}
    table: dict[str, dict[str, list[Result]]] = {name: {} for name in servers}
    try:
        for server in servers.values():
            for found in paths.values():
                load(server.port, found, 2, args.connections)
        for _ in range(args.rounds):
            for name, server in servers.items():
                for route, found in paths.items():
                    cpu_before = server_cpu_seconds(server.process.pid)
                    result = load(server.port, found, args.seconds, args.connections)
                    result.cpu_us = (server_cpu_seconds(server.process.pid) - cpu_before) / result.requests * 1e6
                    table[name].setdefault(route, []).append(result)
    finally:
        for server in servers.values():
            server.stop()
        lines = sum(1 for _ in (work / "observed.log").open("rb"))
        print(f"observed server wrote {lines} log lines, "
              f"{len(list((work / 'metrics').glob('*.db')))} metrics files")
        shutil.rmtree(work, ignore_errors=True)
    return table


def report_observability(table: dict[str, dict[str, list[Result]]]) -> bool:
    print(f"\n{'server':<9} {'route':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'cpu us/req':>10}")
    for name, routes in table.items():
        for route, results in routes.items():
            print(f"{name:<9} {route:<10} {median([r.rps for r in results]):>9.0f} "
                  f"{median([r.p50_ms for r in results]):>8.2f} {median([r.p99_ms for r in results]):>8.2f} "
                  f"{sum(r.errors for r in results):>8} {median([r.cpu_us for r in results]):>10.0f}")
    ok = True
    print("\nobserved / quiet, paired by round (target req/s ratio >= 0.90):")
    for route in table["quiet"]:
        pairs = list(zip(table["observed"][route], table["quiet"][route], strict=True))
        ratio = median([o.rps / q.rps for o, q in pairs])
        cpu = median([o.cpu_us / q.cpu_us for o, q in pairs])
        ok = ok and ratio >= 0.9
        print(f"  {route:<10} req/s {ratio:.3f}  server CPU per request {cpu:.3f}   by round: req/s "
              + " ".join(f"{o.rps / q.rps:.2f}" for o, q in pairs) + "; CPU "
              + " ".join(f"{o.cpu_us / q.cpu_us:.2f}" for o, q in pairs))
    return ok


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--practices", type=int, default=8000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5, help="per route and round")
    parser.add_argument("--rounds", type=int, default=5,
                        help="medians over rounds: now and then gunicorn hands all 8 new connections of a round to"
                             " one of its workers (they race to accept), which halves that round")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--db-dir", type=Path, default=ROOT / "instance" / "bench")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator even with wrk")
    parser.add_argument("--observability", action="store_true",
                        help="compare JSON INFO logs + multiprocess metrics against WARNING (the 10%% cost bar)")
    args = parser.parse_args()

    print(f"cpus={os.cpu_count()} gunicorn gthread workers={args.workers} threads={args.threads} "
          f"connections={args.connections} rounds={args.rounds} x {args.seconds} s "
          f"load={'python' if args.python_load or not shutil.which('wrk') else 'wrk -t1'} "
          f"loadavg before={os.getloadavg()[0]:.2f}")
    if args.observability:
        ok = report_observability(measure_observability(build_database(args.practices, args.db_dir), args))
        print(f"\nloadavg after={os.getloadavg()[0]:.2f}; result:", "PASS" if ok else "FAIL")
        return
    sizes = (args.practices, args.small)
    table = measure({n: build_database(n, args.db_dir) for n in sizes}, args)

    print(f"\n{'practices':>9} {'route':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
          f"{'cpu us/req':>10}  req/s vs /healthcheck (median of rounds); same from server CPU per request")
    ratios: dict[tuple[int, str], float] = {}
    cpu_ratios: dict[tuple[int, str], float] = {}
    for n in sizes:
        health = table[n]["/healthcheck"]
        for route, results in table[n].items():
            rps = median([r.rps for r in results])
            errors = sum(r.errors for r in results)
            cpu = median([r.cpu_us for r in results])
            ratio = ""
            if route != "/healthcheck":
                ratios[(n, route)] = median([r.rps / h.rps for r, h in zip(results, health, strict=True)])
                cpu_ratios[(n, route)] = median([h.cpu_us / r.cpu_us for r, h in zip(results, health, strict=True)])
                ratio = f"{ratios[(n, route)]:.2f}; {cpu_ratios[(n, route)]:.2f}"
            print(f"{n:>9} {route:<12} {rps:>9.0f} {median([r.p50_ms for r in results]):>8.2f} "
                  f"{median([r.p99_ms for r in results]):>8.2f} {errors:>8} {cpu:>10.0f}  {ratio}")
    big, small = args.practices, args.small
    print(f"\nthe same lookup at {big} vs {small} practices: req/s at {small} / req/s at {big}, paired by round"
          f" (target <= 1.5); server CPU per request, {big} / {small}:")
    ok = True
    for route in ("/Endpoint", "/Device"):
        pairs = zip(table[small][route], table[big][route], strict=True)
        cost = median([s_.rps / b_.rps for s_, b_ in pairs])
        cpu_cost = median([r.cpu_us for r in table[big][route]]) / median([r.cpu_us for r in table[small][route]])
        ok = ok and cost <= 1.5 and ratios[(big, route)] >= 0.5
        print(f"  {route:<10} {cost:.2f} (server CPU: {cpu_cost:.2f})   FHIR/healthcheck at {big}: "
              f"{ratios[(big, route)]:.2f} (server CPU: {cpu_ratios[(big, route)]:.2f}); target >= 0.5")
    print(f"\nloadavg after={os.getloadavg()[0]:.2f}; result:", "PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
