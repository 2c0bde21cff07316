"""Fuzz ``sds import`` with mutated real exports: no crash, no hang, bounded memory, a failed import changes nothing.

    python bench/import_fuzz.py [--cases 200] [--seed 13] [--seconds 900] [--timeout 60]

The seeds are real files: the sample directory (``sds seed``) exported by ``sds export`` as JSON and as LDIF
(with its agreements side file). Each case mutates one of them with a seeded random mutator (bytes flipped,
inserted or deleted; lines dropped, doubled, swapped or cut; the file truncated; base64 values damaged;
re-encoded as Latin-1 or UTF-16, a BOM or invalid UTF-8 added; a 5 MB line; LDIF folding, ``:<`` URL values,
changetype lines and missing DNs; JSON nesting 100,000 deep, huge numbers, NaN, duplicate keys) and runs the
real ``sds import`` in a subprocess, with ``--mode create`` into an empty database or ``upsert``/``sync`` into
the seeded one (SQLite, restored from a pristine copy before every case).

Per case the outcome is its exit status and whether the output names a line. Goals (exit status 1 when one is
missed): no crash (status 0, 1 or 2 only, and no traceback), no hang (``--timeout`` seconds), bounded memory
(peak RSS of each import under 512 MiB), and every failed import leaves every table's rows as they were.
Printed: outcomes by mutator, the largest peak RSS, the slowest case, and each goal missed with the case.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import procwatch  # noqa: E402

MAX_RSS_KIB = 512 * 1024

Mutator = Callable[[random.Random, bytes, str], bytes]


# ---- mutators ------------------------------------------------------------------------------------------------


def _bytes(rng: random.Random, data: bytes, _: str) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(buf))
        choice = rng.random()
        if choice < 0.4:
            buf[at] = rng.getrandbits(8)
        elif choice < 0.7:
            buf[at:at] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4)))
        else:
            del buf[at:at + rng.randint(1, 16)]
    return bytes(buf)


def _lines(rng: random.Random, data: bytes, _: str) -> bytes:
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(lines))
        op = rng.choice(["drop", "double", "swap", "cut", "blank"])
        if op == "drop":
            del lines[at]
        elif op == "double":
            lines.insert(at, lines[at])
        elif op == "swap":
            other = rng.randrange(len(lines))
            lines[at], lines[other] = lines[other], lines[at]
        elif op == "cut":
            lines[at] = lines[at][: rng.randint(0, len(lines[at]))]
        else:
            lines.insert(at, b"")
    return b"\n".join(lines)


def _truncate(rng: random.Random, data: bytes, _: str) -> bytes:
    return data[: rng.randrange(len(data))]


def _base64(rng: random.Random, data: bytes, kind: str) -> bytes:
    if kind != "ldif":
        return _bytes(rng, data, kind)
    lines = data.split(b"\n")
    coded = [i for i, line in enumerate(lines) if b":: " in line]
    if not coded:
        return _bytes(rng, data, kind)
    at = rng.choice(coded)
    name, _, value = lines[at].partition(b":: ")
    damage = rng.choice([b"!!!not base64!!!", value[:-1], value + b"=", b"/w==", b"gICA", b"AA==", b""])
    lines[at] = name + b":: " + damage  # /w== and gICA are invalid UTF-8; AA== is NUL
    return b"\n".join(lines)


def _encoding(rng: random.Random, data: bytes, _: str) -> bytes:
    text = data.decode("utf-8")
    op = rng.choice(["latin-1", "utf-16", "bom", "invalid"])
    if op == "latin-1":
        return (text + "\n# \u00e9\u00e8\n").encode("latin-1", "replace")
    if op == "utf-16":
        return text.encode("utf-16")
    if op == "bom":
        return b"\xef\xbb\xbf" + data
    at = rng.randrange(len(data))
    return data[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]) + data[at:]


def _huge_line(rng: random.Random, data: bytes, kind: str) -> bytes:
    lines = data.split(b"\n")
    at = rng.randrange(len(lines))
    big = b"x" * (5 * 1024 * 1024)
    lines.insert(at, b"description: " + big if kind == "ldif" else b'"' + big + b'",')
    return b"\n".join(lines)


def _structure(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Format-aware damage: LDIF folding, URL values, change records, missing DNs; JSON nesting and numbers."""
    lines = data.split(b"\n")
    at = rng.randrange(len(lines))
    if kind == "ldif":
        piece = rng.choice([b" folded onto nothing", b"description:< file:///etc/passwd", b"changetype: delete",
                            b"-", b"version: 1", b"dn:", b"dn:: !!", b"objectClass: nhsAs\n uniqueIdentifier: 1",
                            b"nhsMHSPartyKey:: " + b"QQ" * 40_000, b": no name", b"\x00: nul"])
        if rng.random() < 0.3:
            lines = [line for line in lines if not line.startswith(b"dn:")] or lines
        else:
            lines.insert(at, piece)
        return b"\n".join(lines)
    piece = rng.choice([b"[" * 100_000 + b"]" * 100_000 + b",", b"1e999999,", b"NaN,", b"-Infinity,",
                        b'"ods_code": "A", "ods_code": "B",', b"9" * 50_000 + b",", b'"\\ud800",', b"{},", b"null,",
                        b'{"asid": {"$gt": ""}},'])
    lines.insert(at, piece)
    return b"\n".join(lines)


MUTATORS: dict[str, Mutator] = {
    "bytes": _bytes, "lines": _lines, "truncate": _truncate, "base64": _base64, "encoding": _encoding,
    "huge-line": _huge_line, "structure": _structure,
}


# ---- running -------------------------------------------------------------------------------------------------


@dataclass
class Report:
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    too_big: list[str] = field(default_factory=list)
    #: The last output line of failed imports that named no line (to judge whether they are clear).
    unlocated: list[str] = field(default_factory=list)
    peak_rss_kib: int = 0
    slowest: float = 0.0
    cases: int = 0

    @property
    def ok(self) -> bool:
        return not (self.crashes or self.hangs or self.changed or self.too_big)


def _sds(folder: Path, database: Path, *args: str) -> None:
    env = _env(database)
    done = subprocess.run([sys.executable, "-m", "sds_registry.cli", *args], cwd=folder, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"sds {' '.join(args)} failed: {done.stdout}{done.stderr}")


def _env(database: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDS_", "PROMETHEUS_"))}
    env["SDS_DATABASE_URL"] = f"sqlite:///{database}"
    env["PYTHONPATH"] = str(REPO)
    return env


def digest(database: Path) -> str:
    """Every row of every table, sorted, hashed: equal digests mean the same content."""
    sha = hashlib.sha256()
    with sqlite3.connect(database) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            sha.update(table.encode())
            for row in sorted(repr(r) for r in conn.execute(f'SELECT * FROM "{table}"')):
                sha.update(row.encode())
    conn.close()
    return sha.hexdigest()


def _restore(pristine: Path, work: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(pristine, work)


def _import(folder: Path, database: Path, case_file: Path, mode: str, timeout: float) -> tuple[int | None, str, int,
                                                                                                float]:
    """(exit status or None on a hang, output, peak RSS in KiB, seconds) of one ``sds import``."""
    log = folder / "case.out"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sds_registry.cli", "import", str(case_file), "--mode", mode],
                                cwd=folder, env=_env(database), stdout=out, stderr=subprocess.STDOUT)
    deadline = started + timeout
    peak = 0  # the child's own VmHWM: wait4's ru_maxrss would carry this process's high-water mark over exec
    while True:
        pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, log.read_text(errors="replace"), peak, time.monotonic() - started
        peak = max(peak, procwatch.peak_kib(proc.pid) or 0)
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            return None, log.read_text(errors="replace"), 0, time.monotonic() - started
        time.sleep(0.02)


def run(cases: int, seed_value: int, seconds: float, folder: Path, timeout: float = 60.0,
        log: Callable[[str], None] = print) -> Report:
    empty, seeded, work = folder / "empty.sqlite3", folder / "seeded.sqlite3", folder / "work.sqlite3"
    _sds(folder, empty, "db", "upgrade")
    shutil.copyfile(empty, seeded)
    _sds(folder, seeded, "seed")
    _sds(folder, seeded, "export", "--format", "json", "-o", str(folder / "seed.json"))
    _sds(folder, seeded, "export", "--format", "ldif", "-o", str(folder / "seed.ldif"))
    sources = {"json": (folder / "seed.json").read_bytes(), "ldif": (folder / "seed.ldif").read_bytes()}
    side = (folder / "seed.agreements.json").read_bytes()
    pristine = {"create": (empty, digest(empty)), "upsert": (seeded, digest(seeded)), "sync": (seeded, digest(seeded))}
    rng = random.Random(seed_value)
    names = sorted(MUTATORS)
    report = Report()
    until = time.monotonic() + seconds
    for number in range(cases):
        if time.monotonic() > until:
            break
        name, kind = names[number % len(names)], ("json", "ldif")[(number // len(names)) % 2]
        mode = rng.choice(["create", "create", "upsert", "sync"])
        data = MUTATORS[name](rng, sources[kind], kind)
        case_file = folder / f"case.{kind}"
        case_file.write_bytes(data)
        if kind == "ldif":
            (folder / "case.agreements.json").write_bytes(side)
        source, before = pristine[mode]
        _restore(source, work)
        status, output, rss, took = _import(folder, work, case_file, mode, timeout)
        label = f"{kind} {name} {mode} #{number}"
        report.cases += 1
        report.slowest = max(report.slowest, took)
        report.peak_rss_kib = max(report.peak_rss_kib, rss)
        if status is None:
            report.hangs.append(label)
            report.outcomes[(name, "hang")] += 1
            continue
        named_line = re.search(r"\bline \d+|\(line \d+\)|:\d+:", output) is not None
        report.outcomes[(name, f"exit {status}" + (" line" if named_line and status else ""))] += 1
        if status and not named_line:
            report.unlocated.append(f"{label}: {output.strip().splitlines()[-1][:300] if output.strip() else ''}")
        if status not in (0, 1, 2) or "Traceback" in output:
            report.crashes.append(f"{label}: status {status}: {output[-600:]}")
        if status != 0 and digest(work) != before:
            report.changed.append(label)
        if rss > MAX_RSS_KIB:
            report.too_big.append(f"{label}: {rss} KiB")
        if number % 50 == 49:
            log(f"  {number + 1} cases, {len(report.crashes)} crashes, peak RSS {report.peak_rss_kib} KiB")
    return report


def print_report(report: Report) -> None:
    print(f"cases: {report.cases}")
    for (mutator, outcome), count in sorted(report.outcomes.items()):
        print(f"  {mutator:10} {outcome:14} {count}")
    print(f"crashes: {len(report.crashes)}  hangs: {len(report.hangs)}  failed imports that changed the database: "
          f"{len(report.changed)}  over {MAX_RSS_KIB // 1024} MiB: {len(report.too_big)}")
    for line in (report.crashes + report.hangs + report.changed + report.too_big)[:8]:
        print(f"  {line}")
    for line in report.unlocated[:6]:
        print(f"  no line named: {line}")
    print(f"peak RSS of an import: {report.peak_rss_kib / 1024:.0f} MiB  slowest case: {report.slowest:.1f} s")
    print(f"import_fuzz: {'PASS' if report.ok else 'FAIL'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--seconds", type=float, default=900.0, help="stop starting new cases after this long")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one import may take")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-fuzz-") as folder:
        report = run(args.cases, args.seed, args.seconds, Path(folder), args.timeout)
    print_report(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
