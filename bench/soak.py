"""Soak: minutes of mixed load through every facade of one real ``sds serve`` at once, then a check that no write
was lost, duplicated or half-applied and that every lookup answered a state the database held while it ran.

    .venv/bin/python bench/soak.py [--minutes 10] [--backend postgresql|sqlite] [--writers 4] [--practices 20]
                                   [--lookup-rate 25] [--write-rate 5] [--http-workers 2] [--warmup 60]

The script starts everything itself on free loopback ports: a throwaway PostgreSQL (initdb into a temporary
folder) or a SQLite file, ``sds serve`` (HTTP, LDAP, SSP with mutual TLS) and the SSP's provider stub
(bench/ssp.py's). Load, each stream paced at its rate, all at once:

- LDAP (ldap3): the GP Connect two-step lookup, endpoint of a practice then the AS record by party key;
- FHIR: ``/Endpoint`` and ``/Device`` searches; ``/api/resolve``; ``GET /api/mhs?ods_code=`` listings;
- the SSP: a GP Connect read forwarded to the provider stub, with the audit JWT and the consumer's certificate;
- ``--writers`` threads registering, updating and deleting the practices' GP Connect structured-record MHS
  records through ``/api`` with ``If-Match`` (sometimes stale: 409), plus writes the API must refuse (422).

Every write carries a unique marker in its endpoint's host name. Afterwards bench/soakcheck.py compares the
write log with the server's audit rows and the final rows: every acknowledged write applied exactly once,
every refused write left nothing, and every endpoint lookup (LDAP, FHIR, resolve, listing) answered a state
the record held at some instant between the lookup's sending and its answer. Printed: requests and errors per
facade, p50/p99 per facade, lost/duplicated writes, RSS of every server process over time; exit status 1 when
a goal is missed (errors 0, lost or duplicated writes 0, no inconsistent lookup, RSS growth after the warm-up
under ``--rss-growth`` MiB a process).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import ssp as sspbench  # noqa: E402
from bench.procwatch import RssSampler, print_rss  # noqa: E402
from bench.soakcheck import AuditRow, Findings, check, marker_of  # noqa: E402
from bench.soakload import Load, Target  # noqa: E402
from tests.support.serving import Running, free_port, sds_serve, start  # noqa: E402

STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"


def practice(n: int) -> str:
    return f"S{n:05d}"


@dataclass
class Prepared:
    token: str
    party_keys: dict[str, str]
    asids: dict[str, str]
    initial: dict[str, str | None]
    audit_floor: int


def prepare(database_url: str, practices: int) -> Prepared:
    """Migrate, register the SSP's consumer/provider pair and ``practices`` providers (each with its structured
    record MHS, the records the writers change), and an admin token."""
    from sqlalchemy import func, select

    from sds_registry.db import begin_write, make_engine, make_sessionmaker
    from sds_registry.models import AuditEvent
    from sds_registry.services.clients import create_client
    from sds_registry.services.registration import register_provider
    from sds_registry.services.writes import CLI_ACTOR

    sspbench.seed(database_url, 0)
    engine = make_engine(database_url)
    out = Prepared("", {}, {}, {}, 0)
    with make_sessionmaker(engine)() as session:
        begin_write(session)
        for n in range(practices):
            ods = practice(n)
            result = register_provider(session, {"ods_code": ods, "fqdn": f"i{n}.soak.test", "asid": f"5{n:011d}",
                                                 "interactions": [STRUCTURED]}, CLI_ACTOR)
            out.party_keys[ods] = result.accredited_system.party_key
            out.asids[ods] = result.accredited_system.asid
            out.initial[ods] = marker_of(result.message_handling_systems[0].endpoints[0])
        out.token = create_client(session, f"soak-{time.time_ns()}", admin=True)
        session.commit()
        out.audit_floor = int(session.scalar(select(func.max(AuditEvent.id))) or 0)
    engine.dispose()
    return out


def database_facts(database_url: str, prepared: Prepared) -> tuple[list[AuditRow], dict[str, list[str]]]:
    """The MHS audit rows written since ``prepare``, and each practice's structured-record endpoints now (one
    per MHS row: two rows would show as two)."""
    from sqlalchemy import select

    from sds_registry.db import make_engine, make_sessionmaker
    from sds_registry.models import AuditEvent
    from sds_registry.services.directory import find_mhs

    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        rows = session.execute(select(AuditEvent.id, AuditEvent.action, AuditEvent.record_key, AuditEvent.before,
                                      AuditEvent.after)
                               .where(AuditEvent.id > prepared.audit_floor,
                                      AuditEvent.record_type == "message_handling_system").order_by(AuditEvent.id))
        audit = [AuditRow(*row) for row in rows]
        final = {ods: [m.endpoints[0] if m.endpoints else "" for m in
                       find_mhs(session, ods_code=ods, interaction_id=STRUCTURED)] for ods in prepared.initial}
    engine.dispose()
    return audit, final


@dataclass
class Report:
    backend: str
    seconds: float
    load: Load
    findings: Findings
    rss: list[tuple[str, float, float, float]] = field(default_factory=list)
    server_log_problems: list[str] = field(default_factory=list)

    def failures(self, rss_growth_mib: float | None) -> list[str]:
        out = []
        errors = sum(s.errors for s in self.load.stats.values())
        if errors:
            first = [f"{name}: {what}" for name, st in self.load.stats.items() for what in st.first_errors]
            out.append(f"{errors} errors reached clients: {first[:5]}")
        f = self.findings
        for name in ("lost", "duplicated", "refused_but_applied", "unexplained", "final_mismatch", "inconsistent"):
            if getattr(f, name):
                out.append(f"{len(getattr(f, name))} {name.replace('_', ' ')}: {getattr(f, name)[:3]}")
        if self.server_log_problems:
            out.append(f"server log: {self.server_log_problems[:3]}")
        if rss_growth_mib is not None:
            out += [f"RSS of {name} grew {end - start:.1f} MiB after the warm-up"
                    for name, start, end, _ in self.rss if end - start > rss_growth_mib]
        return out

    def print(self, warmup: float) -> None:
        print(f"\nsoak on {self.backend}: {self.seconds:.0f} s of mixed load")
        self.load.print()
        f = self.findings
        print(f"writes: {f.acknowledged} acknowledged, {f.refused} refused, {f.unanswered} unanswered; "
              f"lost {len(f.lost)}, duplicated {len(f.duplicated)}, refused but applied {len(f.refused_but_applied)}, "
              f"unexplained audit rows {len(f.unexplained)}, final rows differing {len(f.final_mismatch)}")
        print(f"lookups checked against the write log: {f.lookups_checked}, inconsistent {len(f.inconsistent)}")
        for problem in (f.lost + f.duplicated + f.refused_but_applied + f.unexplained + f.final_mismatch
                        + f.inconsistent)[:10]:
            print("  ", problem)
        print(f"server log: {len(self.server_log_problems)} problem lines (tracebacks, 'database is locked')")
        print_rss(self.rss, warmup)


@contextlib.contextmanager
def serving(database_url: str, folder: Path, prepared: Prepared, env: dict[str, str] | None = None,
            http_workers: int = 2) -> Iterator[tuple[Running, Target]]:
    """``sds serve`` with every facade (the SSP with mutual TLS in front of bench/ssp.py's provider stub) on
    free ports, and what a client needs to reach it."""
    pki = sspbench.make_pki(folder)
    stub_port = free_port()
    stub = start([sys.executable, str(REPO / "bench" / "ssp.py"), "_stub", str(stub_port), str(pki["provider"]),
                  str(pki["provider_key"])], {}, folder / "stub.log", (stub_port,))
    settings = {
        "SDS_HTTP_WORKERS": str(http_workers), "SDS_SSP_TLS_CERT": str(pki["ssp"]),
        "SDS_SSP_TLS_KEY": str(pki["ssp_key"]), "SDS_SSP_TLS_CLIENT_CA": str(pki["ca"]),
        "SDS_SSP_PROVIDER_CA": str(pki["ca"]), "SDS_SSP_CLIENT_CERT": str(pki["ssp_client"]),
        "SDS_SSP_CLIENT_KEY": str(pki["ssp_client_key"]),
        "SDS_SSP_CONNECT_TO": f"{sspbench.PROVIDER_FQDN}:443:127.0.0.1:{stub_port}", **(env or {}),
    }
    try:
        with sds_serve(database_url, folder, env=settings) as server:
            yield server, Target(http=server.http, ldap=server.ldap, ssp=server.ssp, token=prepared.token,
                                 pki=pki, party_keys=prepared.party_keys, asids=prepared.asids,
                                 interaction=STRUCTURED)
    finally:
        stub.terminate()
        stub.wait(10)


def run_soak(database_url: str, folder: Path, seconds: float, *, writers: int = 4, practices: int = 20,
             lookup_rate: float = 25.0, write_rate: float = 5.0, http_workers: int = 2, warmup: float = 60.0,
             sample_every: float = 5.0) -> Report:
    prepared = prepare(database_url, practices)
    with serving(database_url, folder, prepared, http_workers=http_workers) as (server, target):
        sampler = RssSampler(server.proc.pid, sample_every).start()
        load = Load(target, writers=writers, lookup_rate=lookup_rate, write_rate=write_rate)
        load.run(seconds)
        sampler.stop()
        sampler.sample()
        log = server.output()
    audit, final = database_facts(database_url, prepared)
    findings = check(load.writes, load.lookups, audit, final, prepared.initial, STRUCTURED)
    problems = [line for line in log.splitlines() if "Traceback" in line or "database is locked" in line]
    backend = database_url.split(":", 1)[0].split("+")[0]
    return Report(backend, seconds, load, findings, sampler.summary(warmup), problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--practices", type=int, default=20)
    parser.add_argument("--lookup-rate", type=float, default=25.0, help="requests/s of each lookup stream")
    parser.add_argument("--write-rate", type=float, default=5.0, help="writes/s of each writer")
    parser.add_argument("--http-workers", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before RSS is taken as the baseline")
    parser.add_argument("--rss-growth", type=float, default=10.0, help="most MiB a process may grow after warm-up")
    args = parser.parse_args()
    seconds = args.minutes * 60
    warmup = min(args.warmup, seconds / 2)
    with tempfile.TemporaryDirectory(prefix="sds-soak-") as tmp:
        folder = Path(tmp)
        postgres = None
        if args.backend == "postgresql":
            from tests.support.postgres import TempPostgres

            postgres = TempPostgres()
            database_url = postgres.start()
        else:
            database_url = f"sqlite:///{folder / 'soak.sqlite3'}"
        try:
            report = run_soak(database_url, folder, seconds, writers=args.writers, practices=args.practices,
                              lookup_rate=args.lookup_rate, write_rate=args.write_rate,
                              http_workers=args.http_workers, warmup=warmup,
                              sample_every=max(1.0, min(10.0, seconds / 60)))
        finally:
            if postgres is not None:
                postgres.stop()
    report.print(warmup)
    failures = report.failures(args.rss_growth)
    print("result:", "PASS" if not failures else "FAIL")
    for failure in failures:
        print("  ", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
