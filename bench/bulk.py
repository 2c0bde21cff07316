"""Bulk data paths of the sds command: seed, export and import of the same directory, timed, with peak memory.

    .venv/bin/python bench/bulk.py [--practices 2000] [--database-url-template URL]

Builds one directory with ``sds seed --synthetic N`` (the sample directory plus N synthetic practices), writes
it with ``sds export`` as LDIF (with its agreements side file) and as JSON, then loads each file with
``sds import`` into its own empty database. Every step is a separate ``sds`` process; its wall time and peak
RSS (``os.wait4``'s rusage of that child: ``getrusage(RUSAGE_CHILDREN)`` would give the largest child so far)
are printed, then the ratios against the goals: JSON import within 1.5x of LDIF import, seed within 2x of
LDIF import. Databases are SQLite files in a temporary directory unless ``--database-url-template`` gives a
URL with ``{name}`` (e.g. ``postgresql+psycopg://localhost/{name}``; the databases must exist and be empty).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOALS = (("import json / import ldif", "import json", "import ldif", 1.5),
         ("seed / import ldif", "seed", "import ldif", 2.0))


def sds(url: str, *args: str) -> tuple[float, float]:
    """Run ``sds ARGS`` on database ``url``: (wall seconds, peak RSS in MiB). Output is discarded."""
    env = {**os.environ, "SDS_DATABASE_URL": url}
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "sds_registry.cli", *args], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    errors = child.stderr.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"sds {' '.join(args)} failed ({child.returncode}):\n{errors.decode(errors='replace')}")
    peak = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--practices", type=int, default=2000)
    parser.add_argument("--database-url-template", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sds-bulk-") as tmp:
        work = Path(tmp)

        def url(name: str) -> str:
            if args.database_url_template:
                return args.database_url_template.format(name=name)
            return f"sqlite:///{work / name}.sqlite3"

        results: dict[str, tuple[float, float]] = {}
        for name in ("source", "from_ldif", "from_json"):
            sds(url(name), "db", "upgrade")
        n = args.practices
        results["seed"] = sds(url("source"), "seed", "--synthetic", str(n))
        ldif, json_file = work / "directory.ldif", work / "directory.json"
        results["export ldif"] = sds(url("source"), "export", "--format", "ldif", "-o", str(ldif))
        results["export json"] = sds(url("source"), "export", "--format", "json", "-o", str(json_file))
        results["import ldif"] = sds(url("from_ldif"), "import", str(ldif))
        results["import json"] = sds(url("from_json"), "import", str(json_file))
        size = {"export ldif": ldif.stat().st_size, "export json": json_file.stat().st_size}
        print(f"{n} synthetic practices (plus the sample directory); LDIF {size['export ldif'] / 2**20:.1f} MiB, "
              f"JSON {size['export json'] / 2**20:.1f} MiB")
        print(f"{'step':<14}{'seconds':>10}{'peak MiB':>10}")
        for step, (seconds, peak) in results.items():
            print(f"{step:<14}{seconds:>10.2f}{peak:>10.0f}")
        for label, a, b, goal in GOALS:
            ratio = results[a][0] / results[b][0]
            print(f"{label:<28}{ratio:>6.2f}  (goal <= {goal}: {'met' if ratio <= goal else 'NOT met'})")


if __name__ == "__main__":
    main()
