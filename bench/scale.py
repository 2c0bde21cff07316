"""National scale and beyond: 100, 8,000 and 100,000 practices on SQLite and PostgreSQL, against slapd (issue 12).

    .venv/bin/python bench/scale.py [--sizes 100,8000,100000] [--backends sqlite,postgresql] [--lookups 300]

Per size, one synthetic SDS directory (bench/ldapkit/data.py: a practice is one nhsAs and an nhsMhs per GP
Connect interaction it serves, about 20 entries; 100,000 practices are about two million) is written as LDIF
once (cached under --work) and loaded by ``slapadd`` into slapd's mdb (our schema, the equality indexes of
bench/ldapkit/slapd.py) and by ``sds import`` into each backend. Then one ``sds serve`` (one worker per facade)
answers the lookups a GP Connect consumer makes, each timed over --lookups practices sampled across the
directory: the LDAP lookup (step 1 endpoint and party key, step 2 ASID: one lookup is both searches; the answer
cache off, or a repeated lookup would not touch the directory), the SDS
FHIR API's /Endpoint and /Device searches and /api/resolve. Every answer is checked against the data.

Figures: load wall seconds against slapadd's (goal: at most 2x; CPU seconds beside them for information:
the import checks a big LDIF in worker processes while it stores; beside them the command's fixed start, an
import of an LDIF with no records, which alone is more than 2x slapadd's load of 100 practices), the import's
peak RSS (it streams: flat across sizes), database size against the mdb's pages in use (goal: at most 2x), the
server's CPU microseconds per lookup (all its processes, from /proc: steadier than latency on a shared machine;
goal: the largest size at most 1.2x the smallest) with the median latency beside it, and the largest RSS of any server
process at each size (goal: at most 300 MB at 100,000). PostgreSQL is a throwaway server (tests/support/postgres.py,
fsync off as slapadd -q also skips syncs). The table ends with one line per goal: met or NOT met.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procwatch  # noqa: E402
from bench.ldapkit import data, slapd  # noqa: E402
from tests.support.serving import Running, sds_serve  # noqa: E402

BASE = "/spine-directory/FHIR/R4"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code|"
SVC = "https://fhir.nhs.uk/Id/nhsServiceInteractionId|"
PK = "https://fhir.nhs.uk/Id/nhsMhsPartyKey|"
LOOKUPS = ("ldap", "/Endpoint", "/Device", "/api/resolve")
GOALS = {"load": 2.0, "size": 2.0, "lookup": 1.2, "rss_mb": 300.0}
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Practice:
    ods: str
    party_key: str
    asid: str
    endpoints: dict[str, str]  # interaction -> nhsMHSEndPoint


@dataclass
class Row:
    backend: str
    practices: int
    entries: int = 0
    load_s: float = 0.0
    load_cpu_s: float = 0.0
    start_s: float = 0.0  # the same command on an LDIF with nothing to store: its fixed cost
    import_peak_mb: float = 0.0
    db_mb: float = 0.0
    lookup_us: dict[str, float] = field(default_factory=dict)  # server CPU per lookup
    latency_ms: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    full_scans: list[str] = field(default_factory=list)  # LDAP lookup plans scanning a whole table


# ---- data and slapd -----------------------------------------------------------------------------------------


def directory(practices: int, work: Path, sample: int) -> tuple[Path, int, list[Practice]]:
    """The LDIF of ``practices`` practices (written once, then reused), its entry count and a seeded sample."""
    ldif, meta = work / f"sds-{practices}.ldif", work / f"sds-{practices}.sample.json"
    if not (ldif.exists() and meta.exists()):
        chosen = set(random.Random(7).sample(range(practices), min(sample, practices)))
        found: list[Practice] = []
        position = -1

        def records() -> Iterator[data.Record]:
            nonlocal position
            current: Practice | None = None
            for r in data.stream(practices):
                if r.kind == "as":
                    position += 1
                    current = None
                    if position in chosen:
                        current = Practice(r.first("nhsIDCode"), r.first("nhsMHSPartyKey"),
                                           r.first("uniqueIdentifier"), {})
                        found.append(current)
                elif current is not None:
                    current.endpoints[r.first("nhsMhsSvcIA")] = r.first("nhsMHSEndPoint")
                yield r

        entries = data.write_ldif(records(), ldif.with_suffix(".part"))
        ldif.with_suffix(".part").rename(ldif)
        meta.write_text(json.dumps({"entries": entries, "sample": [p.__dict__ for p in found if p.endpoints]}))
    saved = json.loads(meta.read_text())
    return ldif, saved["entries"], [Practice(**p) for p in saved["sample"]]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def slapadd(ldif: Path, work: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, MiB of mdb pages in use) of loading ``ldif`` into a fresh mdb."""
    cpu, started = children_cpu(), time.perf_counter()
    slapd.prepare(ldif, work, maxsize=1 << 36)
    wall = time.perf_counter() - started
    mdb = work / "mdb" / "data.mdb"
    return wall, children_cpu() - cpu, mdb.stat().st_blocks * 512 / 2**20


# ---- our side -----------------------------------------------------------------------------------------------


def sds(url: str, *args: str) -> tuple[float, float, float]:
    """Run ``sds ARGS`` on ``url``: (wall s, CPU s from its rusage, peak RSS MiB).

    The peak is the child's VmHWM, read from /proc while it runs (its last reading, taken at most 0.2 s before
    the end), plus that of each process under it (the import's LDIF checking workers): the rusage figure would
    not do, as Linux carries the forking process's high-water mark over exec, and this process holds a sample
    and the generator's identifiers of two million entries. CPU seconds include the waited-for processes."""
    env = {**os.environ, "SDS_DATABASE_URL": url, "SDS_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    peaks: dict[int, int] = {}  # pid -> its VmHWM KiB
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen([sys.executable, "-m", "sds_registry.cli", *args], env=env, cwd=ROOT,
                                 stdout=log, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            for p in procwatch.tree(child.pid):
                peaks[p] = max(peaks.get(p, 0), procwatch.peak_kib(p) or 0)
            time.sleep(0.2)
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        if child.returncode != 0:
            log.seek(0)
            raise SystemExit(f"sds {' '.join(args)} failed:\n{log.read().decode(errors='replace')[-3000:]}")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, sum(peaks.values()) / 1024


@contextmanager
def backend_url(backend: str, practices: int, work: Path, postgres: Callable[[], str]) -> Iterator[str]:
    """An empty database for one run; removed afterwards."""
    if backend == "sqlite":
        path = work / f"scale-{practices}.sqlite3"
        for old in work.glob(f"{path.name}*"):
            old.unlink()
        try:
            yield f"sqlite:///{path}"
        finally:
            for old in work.glob(f"{path.name}*"):
                old.unlink()
        return
    import psycopg

    server = postgres()
    name = f"scale_{practices}"
    admin = server.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")


def database_mb(url: str) -> float:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(f"{path.name}*")) / 2**20
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return float(row[0]) / 2**20


# ---- lookups ------------------------------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except FileNotFoundError:
                pass
    return out


def tree_cpu(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(map(int, fields[11:15])) / TICK  # its own and its waited-for children's user and system
    return total


def rss_mb(server: Running) -> dict[str, float]:
    """MiB resident per server process, named by role (the supervisor, each facade, each facade's workers)."""
    names = {server.proc.pid: "supervisor"}
    for facade, pid in server.facades().items():
        names[pid] = facade
        for n, worker in enumerate(server.children(pid)):
            names[worker] = f"{facade} worker {n}"
    out = {}
    for pid, name in names.items():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        out[name] = kib / 1024
    return out


@contextmanager
def clients(server: Running) -> Iterator[dict[str, Callable[[Practice, str], None]]]:
    """One checked lookup per name; each raises AssertionError on a wrong answer."""
    import ldap3

    conn = ldap3.Connection(ldap3.Server(f"ldap://127.0.0.1:{server.ldap}"), auto_bind=True)
    web = http.client.HTTPConnection("127.0.0.1", server.http, timeout=30)

    def get(path: str) -> dict[str, object]:
        try:
            web.request("GET", path)
            response = web.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):  # the server closed an idle keep-alive
            web.close()
            web.request("GET", path)
            response = web.getresponse()
        body = response.read()
        assert response.status == 200, (path, response.status, body[:300])
        out: dict[str, object] = json.loads(body)
        return out

    def ldap(p: Practice, ia: str) -> None:
        conn.search("ou=services,o=nhs", f"(&(nhsIDCode={p.ods})(objectClass=nhsMhs)(nhsMhsSvcIA={ia}))",
                    attributes=["nhsMHSEndPoint", "nhsMHSPartyKey"])
        assert [e.nhsMHSEndPoint.value for e in conn.entries] == [p.endpoints[ia]], (p, ia, conn.entries)
        conn.search("ou=services,o=nhs", f"(&(nhsIDCode={p.ods})(objectClass=nhsAs)(nhsMHSPartyKey={p.party_key}))",
                    attributes=["uniqueIdentifier"])
        assert [e.uniqueIdentifier.value for e in conn.entries] == [p.asid], (p, conn.entries)

    def endpoint(p: Practice, ia: str) -> None:
        bundle = get(f"{BASE}/Endpoint?organization={quote(ODS + p.ods)}&identifier={quote(SVC + ia)}")
        assert p.endpoints[ia] in json.dumps(bundle), (p, ia)

    def device(p: Practice, ia: str) -> None:
        bundle = get(f"{BASE}/Device?organization={quote(ODS + p.ods)}&identifier={quote(SVC + ia)}"
                     f"&identifier={quote(PK + p.party_key)}")
        assert p.asid in json.dumps(bundle), (p, ia)

    def resolve(p: Practice, ia: str) -> None:
        found = get(f"/api/resolve?ods={quote(p.ods)}&interaction={quote(ia)}")
        assert found["asid"] == p.asid and found["party_key"] == p.party_key, (p, found)

    try:
        yield {"ldap": ldap, "/Endpoint": endpoint, "/Device": device, "/api/resolve": resolve}
    finally:
        web.close()
        conn.unbind()


def full_scans(url: str, p: Practice) -> list[str]:
    """The query plans of the LDAP lookup's two searches (Directory.explain) that scan a whole records table."""
    from sds_registry.config import load_settings
    from sds_registry.db import make_engine
    from sds_registry.ldap import ast
    from sds_registry.ldap.directory import Directory
    from sds_registry.ldap.filterstr import parse_filter

    engine = make_engine(url)
    directory = Directory(engine, load_settings({"database_url": url}))
    try:
        ia = sorted(p.endpoints)[0]
        bad = []
        for text in (f"(&(nhsIDCode={p.ods})(objectClass=nhsMhs)(nhsMhsSvcIA={ia}))",
                     f"(&(nhsIDCode={p.ods})(objectClass=nhsAs)(nhsMHSPartyKey={p.party_key}))"):
            request = ast.SearchRequest("ou=Services,o=nhs", ast.Scope.SUB, ast.DerefAliases.NEVER, 0, 0, False,
                                        parse_filter(text), ("nhsMHSEndPoint", "uniqueIdentifier"))
            # prefer_index: PostgreSQL rightly scans a table of 100 rows; the question is whether an index can answer
            for cls, lines in directory.explain(request, prefer_index=True).items():
                plan = " | ".join(lines)
                if any(f"SCAN {t}" in plan.replace("Seq Scan on", "SCAN") and f"SCAN {t} USING" not in plan
                       for t in ("accredited_systems", "message_handling_systems")):
                    bad.append(f"{text} {cls}: {plan}")
        return bad
    finally:
        directory.close()
        engine.dispose()


Figures = dict[str, float]


def measure(url: str, sample: list[Practice], folder: Path, rounds: int,
            seconds: float = 3.0) -> tuple[Figures, Figures, Figures]:
    """(server CPU µs per lookup, median latency ms, RSS MiB per process) with one sds serve on ``url``: each
    round asks every sampled practice's lookup, over and over for at least ``seconds`` (/proc counts CPU in 10 ms
    ticks: a pass must be long enough for them)."""
    # The LDAP answer cache off: a kept answer costs the same at any size, and the lookups repeat the sample
    env = {"SDS_LDAP_WORKERS": "1", "SDS_HTTP_WORKERS": "1", "SDS_HTTP_THREADS": "1", "SDS_LDAP_CACHE_BYTES": "0"}
    with sds_serve(url, folder, ssp=False, env=env) as server, clients(server) as calls:
        asks = [(p, ia) for p in sample for ia in sorted(p.endpoints)[:1]]
        cpu: dict[str, list[float]] = {name: [] for name in calls}
        latency: dict[str, list[float]] = {name: [] for name in calls}
        for call in calls.values():
            for p, ia in asks[:20]:
                call(p, ia)  # warm: caches, pools, the first pages read
        for _ in range(rounds):
            for name, call in calls.items():  # interleaved: every lookup meets the same machine
                before, times = tree_cpu(server.proc.pid), list[float]()
                until = time.perf_counter() + seconds
                while not times or time.perf_counter() < until:
                    for p, ia in asks:
                        started = time.perf_counter()
                        call(p, ia)
                        times.append(time.perf_counter() - started)
                cpu[name].append((tree_cpu(server.proc.pid) - before) / len(times) * 1e6)
                latency[name].append(statistics.median(times) * 1e3)
        rss = rss_mb(server)
    return ({n: statistics.median(v) for n, v in cpu.items()}, {n: statistics.median(v) for n, v in latency.items()},
            rss)


# ---- the run ------------------------------------------------------------------------------------------------


@dataclass
class Reference:
    """slapd's side at one size: slapadd wall and CPU seconds, mdb MiB in use."""

    load_s: float
    load_cpu_s: float
    mdb_mb: float


def run(sizes: list[int], backends: list[str], work: Path, lookups: int, rounds: int,
        say: Callable[[str], None] = print) -> tuple[list[Row], dict[int, Reference]]:
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    refs: dict[int, Reference] = {}
    pg: list[object] = []

    def postgres() -> str:
        if not pg:
            from tests.support.postgres import TempPostgres

            server = TempPostgres()
            pg.extend([server, server.start()])
        return str(pg[1])

    starts: dict[str, float] = {}
    try:
        empty = work / "sds-roots.ldif"
        empty.write_text(data.ROOTS, encoding="utf-8")
        for backend in backends:  # the least of three: the interpreter, the imports, the session, no records
            with backend_url(backend, 0, work, postgres) as url:
                sds(url, "db", "upgrade")
                starts[backend] = min(sds(url, "import", str(empty))[0] for _ in range(3))
            say(f"{backend}: sds import of an LDIF holding no records (the fixed cost) {starts[backend]:.2f} s")
        for n in sizes:
            ldif, entries, sample = directory(n, work, lookups)
            say(f"{n} practices: {entries} entries, LDIF {ldif.stat().st_size / 2**20:.0f} MiB")
            wall, cpu, mdb = slapadd(ldif, work / "slapd")
            refs[n] = Reference(wall, cpu, mdb)
            shutil.rmtree(work / "slapd")
            say(f"  slapadd {wall:.1f} s ({cpu:.1f} s CPU), mdb {mdb:.0f} MiB")
            for backend in backends:
                row = Row(backend, n, entries, start_s=starts[backend])
                with backend_url(backend, n, work, postgres) as url:
                    sds(url, "db", "upgrade")
                    server_cpu = tree_cpu(postmaster(pg)) if backend == "postgresql" else 0.0
                    row.load_s, row.load_cpu_s, row.import_peak_mb = sds(url, "import", str(ldif))
                    if backend == "postgresql":  # COPY and the indexes' upkeep run in the server's processes
                        row.load_cpu_s += tree_cpu(postmaster(pg)) - server_cpu
                    row.db_mb = database_mb(url)
                    synced = time.perf_counter()
                    os.sync()  # the load's dirty pages written out now, not by the kernel while lookups are timed
                    say(f"  {backend}: sync after the load {time.perf_counter() - synced:.1f} s (not in the load time)")
                    if backend == "postgresql":
                        say(f"  postgresql: VACUUM ANALYZE after the load {settle(url):.1f} s (not in the load time)")
                    row.full_scans = full_scans(url, sample[0])
                    say(f"  {backend}: sds import {row.load_s:.1f} s ({row.load_cpu_s:.1f} s CPU, peak "
                        f"{row.import_peak_mb:.0f} MiB), database {row.db_mb:.0f} MiB; lookups...")
                    row.lookup_us, row.latency_ms, row.rss_mb = measure(url, sample, work / "serve", rounds)
                rows.append(row)
    finally:
        if pg:
            pg[0].stop()  # type: ignore[attr-defined]
    return rows, refs


def settle(url: str) -> float:
    """VACUUM ANALYZE a freshly loaded PostgreSQL database; returns its seconds. Autovacuum would otherwise
    start on the new tables (its insert threshold) while the lookups are timed, and its CPU, in the server's
    processes, would count as theirs; a directory in service has been vacuumed."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def postmaster(pg: list[object]) -> int:
    """The PostgreSQL server's pid (its processes are children of it)."""
    folder = Path(pg[0].dir)  # type: ignore[attr-defined]
    return int((folder / "data" / "postmaster.pid").read_text().split()[0])


def goals(rows: list[Row], refs: dict[int, Reference]) -> list[tuple[str, float, float]]:
    """(what, figure, goal) for every goal the rows can show; a figure at most its goal meets it."""
    out = []
    for r in rows:
        ref = refs[r.practices]
        out.append((f"{r.backend} {r.practices}: load / slapadd (wall)", r.load_s / ref.load_s, GOALS["load"]))
        out.append((f"{r.backend} {r.practices}: database / mdb", r.db_mb / ref.mdb_mb, GOALS["size"]))
    for backend in dict.fromkeys(r.backend for r in rows):
        mine = sorted((r for r in rows if r.backend == backend), key=lambda r: r.practices)
        small, large = mine[0], mine[-1]
        if large.practices > small.practices:
            for name in LOOKUPS:
                out.append((f"{backend} {name}: CPU per lookup {large.practices} / {small.practices}",
                            large.lookup_us[name] / small.lookup_us[name], GOALS["lookup"]))
        if large.practices >= 100_000:
            out.append((f"{backend} {large.practices}: largest server process RSS (MB)",
                        max(large.rss_mb.values()) * 1.048576, GOALS["rss_mb"]))
    return out


def report(rows: list[Row], refs: dict[int, Reference]) -> list[str]:
    head = (f"{'backend':<11}{'practices':>10}{'entries':>10}{'load s':>8}{'start':>6}{'slapadd':>8}{'CPU s':>7}"
            f"{'slapadd':>8}{'peak MiB':>9}{'DB MiB':>8}{'mdb MiB':>8}" + "".join(f"{n:>14}" for n in LOOKUPS)
            + f"{'max RSS':>9}")
    lines = [head]
    for r in rows:
        ref = refs[r.practices]
        cells = "".join(f"{r.lookup_us[n]:>7.0f}/{r.latency_ms[n]:<6.2f}" for n in LOOKUPS)
        lines.append(f"{r.backend:<11}{r.practices:>10}{r.entries:>10}{r.load_s:>8.1f}{r.start_s:>6.2f}{ref.load_s:>8.1f}"
                     f"{r.load_cpu_s:>7.1f}{ref.load_cpu_s:>8.1f}{r.import_peak_mb:>9.0f}{r.db_mb:>8.0f}"
                     f"{ref.mdb_mb:>8.0f}{cells}{max(r.rss_mb.values()):>9.0f}")
    lines.append("start: sds import of an LDIF holding no records (part of load s); lookups: server CPU µs per "
                 "lookup / median latency ms (ldap: the two searches of one lookup)")
    for r in rows:
        lines.append(f"RSS MiB {r.backend} {r.practices}: "
                     + ", ".join(f"{k} {v:.0f}" for k, v in sorted(r.rss_mb.items())))
    for r in rows:
        lines += [f"FULL SCAN {r.backend} {r.practices}: {plan}" for plan in r.full_scans]
    if not any(r.full_scans for r in rows):
        lines.append("LDAP lookup plans: index probes at every size (no full scan of a records table)")
    for r in rows:  # the goal is load time; CPU for information (the import checks in worker processes)
        lines.append(f"{r.backend} {r.practices}: load / slapadd (CPU, for information)".ljust(62)
                     + f"{r.load_cpu_s / refs[r.practices].load_cpu_s:>8.2f}")
    for what, figure, goal in goals(rows, refs):
        lines.append(f"{what:<62}{figure:>8.2f}  (goal <= {goal:g}: {'met' if figure <= goal else 'NOT met'})")
    for r in rows:  # a load shorter than the command's start: what no Python command can reach
        if r.start_s > GOALS["load"] * refs[r.practices].load_s:
            lines.append(f"  {r.backend} {r.practices}: the command's fixed start alone ({r.start_s:.2f} s: "
                         f"interpreter, imports, session) is {r.start_s / refs[r.practices].load_s:.1f}x slapadd's "
                         f"whole load ({refs[r.practices].load_s:.2f} s)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,8000,100000", help="practice counts, comma-separated")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--lookups", type=int, default=300, help="practices sampled for the lookups")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per lookup (medians are reported)")
    parser.add_argument("--work", type=Path, default=ROOT / "instance" / "bench" / "scale",
                        help="where the LDIF is cached and the databases are built (removed after each run)")
    args = parser.parse_args()
    started = time.perf_counter()
    load = os.getloadavg()
    rows, refs = run([int(s) for s in args.sizes.split(",")], args.backends.split(","), args.work, args.lookups,
                     args.rounds)
    print(f"\nload average at start {load[0]:.1f}, at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"{time.perf_counter() - started:.0f} s in all")
    print("\n".join(report(rows, refs)))


if __name__ == "__main__":
    main()
