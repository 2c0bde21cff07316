"""Faults under load: one real ``sds serve`` (2 workers a facade) takes lookups and writes on every facade while
its workers are killed with SIGKILL and its PostgreSQL is restarted; the figures say what clients saw.

    .venv/bin/python bench/faults.py [--short] [--backend postgresql|sqlite] [--outage 5] [--settle 8] [--json FILE]

Everything runs on free loopback ports: a throwaway PostgreSQL (tests/support/postgres.py), ``sds serve`` with
HTTP, LDAP and SSP (plain HTTP; its provider is a port nothing listens on, so a call whose registry lookup
succeeded ends in the SSP's 502 ERROR_COMMUNICATING: that is a served call here). Load, one thread a stream,
all the time: LDAP searches (``ldapsearch``, a new connection each), FHIR ``/Endpoint`` searches,
``/api/resolve``, SSP calls, and ``POST /api/providers`` registrations (a new organisation each: one
accredited system and its MHS records in one transaction). Faults, one after another, each followed by a
settle time:

- ``kill-<facade>-worker``: SIGKILL of one worker of HTTP, LDAP and SSP (the supervisor replaces it);
- ``postgres-restart``: PostgreSQL stopped (fast shutdown) for ``--outage`` seconds, then started again
  (not with ``--backend sqlite``, which runs the kills on a SQLite file: WAL must drop a killed writer's
  transaction whole).

Printed per fault: requests from the fault to recovery by stream and answer (``503``, ``ldap52``, ``refused``
for a connection that failed...), the time to recover (from the kill, or from the database's return, until
every stream has answered normally again), and the descriptor count of every server process that lived
through it, before and after. Then the write check: every acknowledged registration is in the database
whole (its system and all its MHS records), every refused one left nothing. Exit status 1 when a goal is
missed: an answer other than a served one, a 503 OperationOutcome or LDAP 52 (a hang or a 500 among them),
recovery from the database's return over 5 s, a partial or lost write, or a server process holding more
descriptors after than before: files, pipes, listening sockets (TCP connections are counted apart, as
database pools and clients' keep-alive connections move with the load, and so are the metric files a
process opens at its first sample). The SSP's connections to failing providers are counted in
tests/functional/ssp/test_provider_faults.py.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from sds_registry.db import make_engine  # noqa: E402
from sds_registry.migrate import upgrade  # noqa: E402
from sds_registry.models import AccreditedSystem, MessageHandlingSystem  # noqa: E402
from sds_registry.services.clients import create_client  # noqa: E402
from tests.support.postgres import TempPostgres  # noqa: E402
from tests.support.procfs import open_descriptors  # noqa: E402
from tests.support.serving import Running, free_port, sds_serve  # noqa: E402
from tests.unit.ssp.fixtures import FOUNDATIONS, METADATA, PROVIDER_FQDN, PROVIDER_ODS, seed, ssp_headers  # noqa: E402

RECOVERY_GOAL = 5.0
FD_ALLOWANCE = 2  # a first replacement opens the restart counter's file in its supervisor
CONNECTIONS_BOUND = 30  # a process's database pools (SQLAlchemy's 5 + 10 overflow; the LDAP directory's) + clients
FHIR = "/spine-directory/FHIR/R4"
STREAMS = ("ldap", "fhir", "resolve", "ssp", "write")
FACADE_OF = {"ldap": "ldap", "fhir": "http", "resolve": "http", "ssp": "ssp", "write": "http"}


@dataclass
class Call:
    stream: str
    sent: float
    done: float
    answer: str  # "ok", "503", "ldap52", "refused", "timeout", or the unexpected status/code
    served: bool  # a normal answer
    expected: bool  # a normal answer, or the documented one for a database that cannot be used


@dataclass
class Write:
    ods: str
    asid: str
    answer: str  # "201", "503", ...; "unknown" when no answer came


@dataclass
class Load:
    """The load threads and what they saw."""

    running: Running
    token: str
    db_port: int
    db_file: str = ""
    calls: list[Call] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def _record(self, stream: str, sent: float, answer: str, served: bool, expected: bool) -> None:
        with self.lock:
            self.calls.append(Call(stream, sent, time.monotonic(), answer, served, expected))

    def _loop(self, stream: str, once: Callable[[], tuple[str, bool, bool]], pause: float) -> None:
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                answer, served, expected = once()
            except httpx.TimeoutException:
                answer, served, expected = "timeout", False, False
            except httpx.TransportError:
                answer, served, expected = "refused", False, True  # a worker killed mid-call: retried by clients
            self._record(stream, sent, answer, served, expected)
            self.stop.wait(pause)

    def start(self, pause: float = 0.05) -> list[threading.Thread]:
        client = self.client
        org = f"https://fhir.nhs.uk/Id/ods-organization-code|{PROVIDER_ODS}"
        svc = f"https://fhir.nhs.uk/Id/nhsServiceInteractionId|{METADATA}"
        base = self.running.http_url

        def http(path: str, params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                 ok: tuple[int, ...] = (200,)) -> tuple[str, bool, bool]:
            response = client.get(base + path, params=params, headers=headers)
            return _judge(response, ok)

        def ssp() -> tuple[str, bool, bool]:
            response = client.get(f"http://127.0.0.1:{self.running.ssp}/{FOUNDATIONS}/metadata",
                                  headers={**ssp_headers(), "Accept": "application/fhir+json"})
            served = response.status_code == 502 and "ERROR_COMMUNICATING" in response.text
            return _judge(response, (502,)) if not served else ("ok", True, True)

        streams: dict[str, Callable[[], tuple[str, bool, bool]]] = {
            "ldap": lambda: _ldap(self.running.ldap),
            "fhir": lambda: http(f"{FHIR}/Endpoint", {"organization": org, "identifier": svc},
                                 {"X-Correlation-ID": "0f6d3c8e-8d0a-4f0e-9a8e-2b1b7c1d2e3f"}),
            "resolve": lambda: http("/api/resolve", {"ods": PROVIDER_ODS, "interaction": METADATA}),
            "ssp": ssp,
            "write": lambda: self._write(client),
        }
        threads = [threading.Thread(target=self._loop, args=(name, once, pause), daemon=True)
                   for name, once in streams.items()]
        for thread in threads:
            thread.start()
        return threads

    def _write(self, client: httpx.Client) -> tuple[str, bool, bool]:
        n = len(self.writes) + 1
        ods, asid = f"F{n:05d}", f"7{n:011d}"
        write = Write(ods, asid, "unknown")
        with self.lock:
            self.writes.append(write)
        body = {"ods_code": ods, "asid": asid, "fqdn": f"f{n}.faults.test", "interactions": [METADATA]}
        response = client.post(f"{self.running.http_url}/api/providers", json=body,
                               headers={"Authorization": f"Bearer {self.token}"})
        write.answer = str(response.status_code)
        return _judge(response, (201,))


def _judge(response: httpx.Response, ok: tuple[int, ...]) -> tuple[str, bool, bool]:
    """(answer, served, expected): a 503 counts as expected only with an OperationOutcome naming the cause."""
    if response.status_code in ok:
        return "ok", True, True
    if response.status_code == 503:
        try:
            body = response.json()
        except ValueError:
            return "503-not-fhir", False, False
        text = json.dumps(body)
        good = body.get("resourceType") == "OperationOutcome" and "unavailable" in text.lower()
        return ("503", False, True) if good else ("503-no-cause", False, False)
    return str(response.status_code), False, False


def _ldap(port: int) -> tuple[str, bool, bool]:
    """One search on a new connection with ldapsearch (its exit status is the LDAP result code)."""
    done = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "nettimeout=5", "-l", "5", "-H",
                           f"ldap://127.0.0.1:{port}", "-b", "ou=services,o=nhs",
                           f"(nhsIDCode={PROVIDER_ODS})", "dn"], capture_output=True, text=True, timeout=15,
                          env=dict(os.environ, LDAPNOINIT="1"))
    if done.returncode == 0:
        return "ok", True, True
    if done.returncode == 52:
        return "ldap52", False, "unavailable" in done.stderr
    if done.returncode in (254, 255):  # libldap's "can't contact" / local error: the connection was cut
        return "refused", False, True
    return f"ldap{done.returncode}", False, False


def fd_counts(running: Running) -> dict[int, dict[str, str]]:
    """The open descriptors of every server process now (tests/support/procfs.py): the supervisor, facade
    processes, workers."""
    pids = [running.proc.pid]
    for facade in running.facades().values():
        pids.append(facade)
        pids.extend(running.children(facade))
    return {pid: held for pid in pids if (held := open_descriptors(pid))}


@dataclass
class Fault:
    name: str
    started: float
    back: float  # the moment the fault ended (the kill itself; the database's return)
    recovered: float | None = None
    answers: dict[str, Counter[str]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    fds_before: dict[int, dict[str, str]] = field(default_factory=dict)
    fds_after: dict[int, dict[str, str]] = field(default_factory=dict)
    db_file: str = ""  # SQLite: its connections are the file, -wal and -shm

    def split(self, held: dict[str, str]) -> tuple[int, int]:
        """(descriptors other than TCP connections and metric files, TCP connections). Connections come and go
        with the load (database pools grow within their bounds as load shifts to a worker left alone; clients
        keep connections alive), metric files open at a process's first sample; the rest must not grow."""
        connections = sum(1 for what in held.values() if (what.startswith("tcp:") and what != "tcp:0")
                          or (self.db_file and what.startswith(self.db_file)))
        metric_files = sum(1 for what in held.values() if "/sds-metrics-" in what)
        return len(held) - connections - metric_files, connections

    @property
    def recovery(self) -> float | None:
        return None if self.recovered is None else self.recovered - self.back

    def leaked(self) -> dict[int, str]:
        """Processes holding more descriptors after than before (beyond the allowance), or more connections
        than their pools and the load's clients explain: what they hold anew."""
        out = {}
        for pid, held in self.fds_before.items():
            if pid not in self.fds_after:
                continue
            (others, connections), after = self.split(held), self.split(self.fds_after[pid])
            if after[0] - others > FD_ALLOWANCE or after[1] > CONNECTIONS_BOUND:
                new = sorted({w for fd, w in self.fds_after[pid].items() if held.get(fd) != w})
                out[pid] = f"{others}+{connections} -> {after[0]}+{after[1]} (other+connections), new: {new}"
        return out


def _close(load: Load, fault: Fault, until: float) -> None:
    """Count the answers from the fault's start to ``until``; recovered = when every stream (of the facade
    at fault, or all) had answered normally after the fault ended, each answer sent after it ended."""
    calls = [c for c in load.calls if fault.started <= c.sent <= until]
    facade = fault.name.split("-")[1] if fault.name.startswith("kill-") else None
    for call in calls:
        fault.answers.setdefault(call.stream, Counter())[call.answer] += 1
        # a connection cut is what a client of a killed worker sees; with every worker alive it is a failure
        if not call.expected or (facade is None and call.answer == "refused"):
            fault.unexpected.append(f"{call.stream}: {call.answer}")
    firsts = []
    for stream in STREAMS:
        if facade is not None and FACADE_OF[stream] != facade:
            continue
        done = [c.done for c in calls if c.stream == stream and c.served and c.sent >= fault.back]
        firsts.append(min(done) if done else None)
    fault.recovered = None if None in firsts else max(f for f in firsts if f is not None)


def _clients(pid: int, db_port: int) -> int:
    """Client connections a worker holds now (the load's keep-alive ones among them)."""
    return sum(1 for what in open_descriptors(pid).values()
               if what.startswith("tcp:") and what not in ("tcp:0", f"tcp:{db_port}"))


def kill_worker(load: Load, facade: str, settle: float) -> Fault:
    running = load.running
    deadline = time.monotonic() + 30
    while len(running.workers(facade)) < 2:  # both up (a previous fault's replacement may still be starting)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {facade} facade has workers {running.workers(facade)}, not 2:\n"
                               f"{running.output()[-3000:]}")
        time.sleep(0.2)
    before = fd_counts(running)
    victim = max(running.workers(facade), key=lambda pid: _clients(pid, load.db_port))  # the one at work
    fault = Fault(f"kill-{facade}-worker", time.monotonic(), time.monotonic(), db_file=load.db_file)
    os.kill(victim, signal.SIGKILL)
    time.sleep(settle)
    fault.fds_before = {p: n for p, n in before.items() if p != victim}
    fault.fds_after = fd_counts(running)
    _close(load, fault, time.monotonic())
    return fault


def restart_database(load: Load, postgres: TempPostgres, outage: float, settle: float) -> Fault:
    before = fd_counts(load.running)
    fault = Fault("postgres-restart", time.monotonic(), 0.0)
    postgres.halt()
    time.sleep(outage)
    postgres.resume()
    fault.back = time.monotonic()
    time.sleep(settle)
    fault.fds_before, fault.fds_after = before, fd_counts(load.running)
    _close(load, fault, time.monotonic())
    return fault


@dataclass
class WriteCheck:
    acknowledged: int = 0
    refused: int = 0
    unknown: int = 0
    problems: list[str] = field(default_factory=list)


def check_writes(database_url: str, writes: list[Write]) -> WriteCheck:
    """Acknowledged (201): the system and its MHS record are there; anything else: both or neither."""
    result = WriteCheck()
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            for write in writes:
                systems = session.scalar(select(func.count()).select_from(AccreditedSystem)
                                         .where(AccreditedSystem.asid == write.asid)) or 0
                mhs = session.scalar(select(func.count()).select_from(MessageHandlingSystem)
                                     .where(MessageHandlingSystem.ods_code == write.ods)) or 0
                whole, none = systems == 1 and mhs >= 1, systems == 0 and mhs == 0
                if write.answer == "201":
                    result.acknowledged += 1
                    if not whole:
                        result.problems.append(f"{write.ods}: acknowledged but {systems} systems, {mhs} MHS")
                elif write.answer == "unknown":
                    result.unknown += 1
                    if not (whole or none):
                        result.problems.append(f"{write.ods}: half applied ({systems} systems, {mhs} MHS)")
                else:
                    result.refused += 1
                    if not none:
                        result.problems.append(f"{write.ods}: refused ({write.answer}) but applied")
    finally:
        engine.dispose()
    return result


@dataclass
class Report:
    faults: list[Fault]
    writes: WriteCheck
    calls: int

    def failures(self) -> list[str]:
        out = []
        for fault in self.faults:
            out.extend(f"{fault.name}: unexpected answer {u}" for u in sorted(set(fault.unexpected)))
            if fault.recovery is None:
                out.append(f"{fault.name}: did not recover")
            elif fault.name == "postgres-restart" and fault.recovery > RECOVERY_GOAL:
                out.append(f"{fault.name}: recovered {fault.recovery:.1f} s after the database's return")
            out.extend(f"{fault.name}: process {pid} descriptors {n}" for pid, n in fault.leaked().items())
        out.extend(self.writes.problems)
        return out

    def print(self) -> None:
        for fault in self.faults:
            recovery = "never" if fault.recovery is None else f"{fault.recovery:.2f} s"
            print(f"{fault.name}: recovered in {recovery}")
            for stream, answers in sorted(fault.answers.items()):
                print(f"  {stream:8} " + " ".join(f"{a}={n}" for a, n in sorted(answers.items())))
            after = {pid: fault.split(held) for pid, held in fault.fds_after.items()}
            pairs = [f"{pid}:{o}+{d}->" + (f"{after[pid][0]}+{after[pid][1]}" if pid in after else "-")
                     for pid, (o, d) in sorted((p, fault.split(h)) for p, h in fault.fds_before.items())]
            print("  fds (pid:other+connections before->after) " + " ".join(pairs))
        w = self.writes
        print(f"writes: acknowledged={w.acknowledged} refused={w.refused} unknown={w.unknown} "
              f"problems={len(w.problems)}")
        print(f"calls: {self.calls}; failures: {len(self.failures())}")
        for failure in self.failures():
            print(f"  FAIL {failure}")

    def as_dict(self) -> dict[str, Any]:
        return {"faults": [{"name": f.name, "recovery": f.recovery, "answers": {s: dict(a) for s, a in
                                                                                  f.answers.items()},
                            "fds_before": {pid: f.split(h) for pid, h in f.fds_before.items()},
                            "fds_after": {pid: f.split(h) for pid, h in f.fds_after.items()}} for f in self.faults],
                "writes": vars(self.writes), "calls": self.calls, "failures": self.failures()}


def prepare(database_url: str) -> str:
    """Migrate, register the SSP pair (tests/unit/ssp/fixtures.seed) and return an admin token."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            seed(session)
            token = create_client(session, "faults-bench", admin=True)
            session.commit()
    finally:
        engine.dispose()
    return token


def run_faults(folder: Path, outage: float = 5.0, settle: float = 8.0, warmup: float = 3.0,
               postgres: tuple[TempPostgres, str] | None = None, backend: str = "postgresql") -> Report:
    """The faults on a fresh database: on ``postgres`` (a started TempPostgres and its URL; default: one of its
    own, stopped at the end) the worker kills and the database restart; on ``backend="sqlite"`` a SQLite file
    in ``folder`` and the worker kills only (a killed writer's transaction must vanish whole)."""
    server = None
    if backend == "sqlite":
        database_url = f"sqlite:///{folder / 'faults.sqlite3'}"
    else:
        server = TempPostgres() if postgres is None else postgres[0]
        database_url = server.start() if postgres is None else postgres[1]
    try:
        token = prepare(database_url)
        env = {"SDS_HTTP_WORKERS": "2", "SDS_LDAP_WORKERS": "2", "SDS_SSP_WORKERS": "2",
               "SDS_SSP_CACHE_SECONDS": "0", "SDS_SSP_CONNECT_TO": f"{PROVIDER_FQDN}:443:127.0.0.1:{free_port()}",
               "SDS_SSP_PROVIDER_TIMEOUT": "2"}
        with sds_serve(database_url, folder, env=env) as running:
            load = Load(running, token, server.port if server is not None else 0,
                        "" if server is not None else str(folder / "faults.sqlite3"))
            threads = load.start()
            time.sleep(warmup)
            faults = [kill_worker(load, facade, settle) for facade in ("http", "ldap", "ssp")]
            if server is not None:
                faults.append(restart_database(load, server, outage, settle))
            load.stop.set()
            for thread in threads:
                thread.join(timeout=30)
            load.client.close()
        return Report(faults, check_writes(database_url, load.writes), len(load.calls))
    finally:
        if server is not None and postgres is None:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the CI version: 2 s outage, 5 s settle")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds watched after each fault")
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql",
                        help="sqlite: a SQLite file, the worker kills only (no database restart)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    outage, settle = (2.0, 5.0) if args.short else (args.outage, args.settle)
    with tempfile.TemporaryDirectory(prefix="sds-faults-") as folder:
        started = time.monotonic()
        report = run_faults(Path(folder), outage, settle, backend=args.backend)
        report.print()
        print(f"ran {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report.as_dict(), indent=2))
    return 1 if report.failures() else 0


if __name__ == "__main__":
    raise SystemExit(main())
