"""A real full disk under a running ``sds serve`` on SQLite: writes are refused with a clear error, nothing is
half written or corrupted, reads go on, and writes succeed again once there is room.

    .venv/bin/python bench/disk_full.py [--size-mib 32] [--writes 300] [--folder DIR]

The database lives on a filesystem of its own: a tmpfs of ``--size-mib`` mounted for the run (needs root, as
on the Debian machines this project targets), or ``--folder``, a small filesystem you mounted yourself. Steps:
migrate and seed the sample directory there, start ``sds serve`` (HTTP and LDAP, one worker each), register
one provider, then fill the filesystem with a plain file until the kernel says ENOSPC. While it is full, keep
registering providers (``POST /api/providers``, a new organisation each) until ``--writes`` attempts, and
after each one look up a seeded practice through LDAP, FHIR ``/Endpoint`` and ``/api/resolve``. Then free
the space and register one more.

Goals (exit status 1 when one is missed): every refused write is a 507 OperationOutcome whose diagnostics say
the database is full (no 500, no hang); at least one write was refused; every lookup while full answered
normally; ``PRAGMA integrity_check`` is ok; every acknowledged registration is in the database whole (its
system and its MHS record) and no refused one left a row; the server is still the same process tree; the
first write after the space is freed succeeds. SQLite may still take a few writes while "full" (its WAL file
is reused in place once checkpointed), so acknowledged writes while full are counted, not failed.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import ldap3  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench import procwatch  # noqa: E402
from sds_registry.db import make_engine  # noqa: E402
from sds_registry.migrate import upgrade  # noqa: E402
from sds_registry.services.clients import create_client  # noqa: E402
from tests.support.serving import Running, sds_serve  # noqa: E402
from tests.unit.ssp.fixtures import METADATA  # noqa: E402

SEEDED_ODS = "A20047"  # a practice of the sample directory (``sds seed``)
FHIR_ENDPOINT = "/spine-directory/FHIR/R4/Endpoint"
FULL_DIAGNOSTICS = "the registry database is full"


@dataclass
class Report:
    acknowledged_before: int = 0
    acknowledged_full: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    wrong_refusals: list[str] = field(default_factory=list)
    lookups: Counter[str] = field(default_factory=Counter)
    bad_lookups: list[str] = field(default_factory=list)
    integrity: str = ""
    missing: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    restarted: bool = False
    after_freeing: int = 0
    slowest_write: float = 0.0

    def misses(self) -> list[str]:
        out = []
        if not self.refused:
            out.append("no write was refused: the filesystem never filled")
        out += [f"refusal not a clean 507: {w}" for w in self.wrong_refusals]
        out += [f"lookup failed while full: {b}" for b in self.bad_lookups]
        if self.integrity != "ok":
            out.append(f"integrity_check: {self.integrity}")
        out += [f"acknowledged but not whole: {m}" for m in self.missing]
        out += [f"refused but stored: {m}" for m in self.leftovers]
        if self.restarted:
            out.append("the server's processes changed while the disk was full")
        if self.after_freeing != 201:
            out.append(f"the write after freeing the space answered {self.after_freeing}")
        return out


def provider(n: int) -> dict[str, object]:
    return {"ods_code": f"F{n:05d}", "asid": f"7{n:011d}", "fqdn": f"f{n}.full.test", "interactions": [METADATA]}


@contextlib.contextmanager
def small_filesystem(size_mib: int, folder: Path | None) -> Iterator[Path]:
    if folder is not None:
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="sds-disk-full-") as mount_point:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", mount_point],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"cannot mount a {size_mib} MiB tmpfs ({done.stderr.strip() or 'not root?'}); "
                             "run as root or give --folder on a small filesystem")
        try:
            yield Path(mount_point)
        finally:
            subprocess.run(["umount", "-l", mount_point], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem has no block left; returns it."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\0" * size
            try:
                while True:
                    out.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


def lookups(server: Running, http: httpx.Client, report: Report) -> None:
    org = f"https://fhir.nhs.uk/Id/ods-organization-code|{SEEDED_ODS}"
    svc = f"https://fhir.nhs.uk/Id/nhsServiceInteractionId|{METADATA}"
    fhir = http.get(FHIR_ENDPOINT, params={"organization": org, "identifier": svc},
                    headers={"X-Correlation-ID": "0f6d3c8e-8d0a-4f0e-9a8e-2b1b7c1d2e3f"})
    report.lookups[f"fhir {fhir.status_code}"] += 1
    if fhir.status_code != 200 or fhir.json().get("total") != 1:
        report.bad_lookups.append(f"FHIR /Endpoint {fhir.status_code} {fhir.text[:200]}")
    resolve = http.get("/api/resolve", params={"ods": SEEDED_ODS, "interaction": METADATA})
    report.lookups[f"resolve {resolve.status_code}"] += 1
    if resolve.status_code != 200:
        report.bad_lookups.append(f"/api/resolve {resolve.status_code} {resolve.text[:200]}")
    conn = ldap3.Connection(ldap3.Server(f"ldap://127.0.0.1:{server.ldap}"), auto_bind=True)
    try:
        conn.search("ou=services,o=nhs", f"(&(objectClass=nhsMhs)(nhsIDCode={SEEDED_ODS})(nhsMhsSvcIA={METADATA}))",
                    attributes=["nhsMhsEndPoint"])
        found = len(conn.entries)
        report.lookups[f"ldap {conn.result['result']}"] += 1
        if conn.result["result"] != 0 or found != 1:
            report.bad_lookups.append(f"LDAP result {conn.result['result']} entries {found}")
    finally:
        conn.unbind()


def register(http: httpx.Client, token: str, n: int, report: Report) -> int:
    started = time.monotonic()
    answer = http.post("/api/providers", json=provider(n), headers={"Authorization": f"Bearer {token}"})
    report.slowest_write = max(report.slowest_write, time.monotonic() - started)
    if answer.status_code not in (201, 507):
        report.wrong_refusals.append(f"#{n}: {answer.status_code} {answer.text[:300]}")
    elif answer.status_code == 507:
        body = answer.json()
        diagnostics = body.get("issue", [{}])[0].get("diagnostics", "")
        if body.get("resourceType") != "OperationOutcome" or FULL_DIAGNOSTICS not in diagnostics:
            report.wrong_refusals.append(f"#{n}: 507 {answer.text[:300]}")
    return answer.status_code


def check_rows(path: Path, report: Report) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        report.integrity = ", ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
        asids = {row[0] for row in conn.execute("SELECT asid FROM accredited_systems")}
        mhs = {row[0] for row in conn.execute("SELECT ods_code FROM message_handling_systems")}
    acknowledged = [1, *report.acknowledged_full]
    for n in acknowledged:
        if f"7{n:011d}" not in asids or f"F{n:05d}" not in mhs:
            report.missing.append(f"F{n:05d}")
    for n in report.refused:
        if f"7{n:011d}" in asids or f"F{n:05d}" in mhs:
            report.leftovers.append(f"F{n:05d}")


def run(size_mib: int, writes: int, folder: Path | None) -> Report:
    report = Report()
    with small_filesystem(size_mib, folder) as root:
        path = root / "sds.sqlite3"
        url = f"sqlite:///{path}"
        upgrade(url)
        subprocess.run([sys.executable, "-m", "sds_registry.cli", "seed"], check=True, capture_output=True,
                       env={**os.environ, "SDS_DATABASE_URL": url, "SDS_LOG_LEVEL": "WARNING"})
        engine = make_engine(url)
        with Session(engine) as session:
            token = create_client(session, "disk-full bench", admin=True)
            session.commit()
        engine.dispose()
        with tempfile.TemporaryDirectory() as logs, sds_serve(url, Path(logs), ssp=False) as server, \
                httpx.Client(base_url=server.http_url, timeout=30) as http:
            if register(http, token, 1, report) != 201:
                raise SystemExit(f"the first registration failed: {report.wrong_refusals}")
            report.acknowledged_before = 1
            before = sorted(procwatch.tree(server.proc.pid))
            filler = fill(root)
            print(f"filled {root}: {filler.stat().st_size / 2**20:.1f} MiB filler, "
                  f"database {path.stat().st_size / 2**20:.1f} MiB", flush=True)
            for n in range(2, writes + 2):
                status = register(http, token, n, report)
                (report.acknowledged_full if status == 201 else report.refused).append(n)
                lookups(server, http, report)
            report.restarted = sorted(procwatch.tree(server.proc.pid)) != before
            filler.unlink()
            report.after_freeing = register(http, token, writes + 2, report)
            if report.after_freeing == 201:
                report.acknowledged_full.append(writes + 2)
        check_rows(path, report)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=32, help="size of the tmpfs mounted for the run")
    parser.add_argument("--writes", type=int, default=300, help="registrations attempted while the disk is full")
    parser.add_argument("--folder", type=Path, help="an existing small filesystem to use instead of a tmpfs")
    args = parser.parse_args()
    started = time.monotonic()
    report = run(args.size_mib, args.writes, args.folder)
    print(f"writes while full: {len(report.acknowledged_full) - (report.after_freeing == 201)} acknowledged, "
          f"{len(report.refused)} refused (507), {len(report.wrong_refusals)} other answers; "
          f"slowest write {report.slowest_write * 1000:.0f} ms")
    print("lookups while full: " + ", ".join(f"{k} x{v}" for k, v in sorted(report.lookups.items())))
    print(f"integrity_check: {report.integrity}; acknowledged not whole: {len(report.missing)}; "
          f"refused but stored: {len(report.leftovers)}; processes replaced: {report.restarted}; "
          f"write after freeing the space: {report.after_freeing}; {time.monotonic() - started:.0f} s")
    misses = report.misses()
    for miss in misses:
        print(f"  NOT MET: {miss}")
    print(f"disk_full: {'PASS' if not misses else 'FAIL'}")
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
