"""Throughput and CPU per search of our LDAP server under the GP Connect consumer load (ldapsearch -f).

    .venv/bin/python bench/ldap_server_bench.py run [--practices 1000] [--procs "1 2"] [--per-proc 20000]
                                                    [--directory real|fake] [--workers 1] [--rounds 2]
    .venv/bin/python bench/ldap_server_bench.py serve --port P (--jsonl FILE --directory fake | --directory real)

Uses bench/ldapkit for the data, the query set (GP Connect consumer flows), the ldapsearch -f load and the
server session's CPU (bench/ldap_vs_slapd.sh compares with slapd; this looks inside our own server).
``--directory real`` loads the LDIF through the registry (`sds db upgrade && sds import`) and serves it with
run_ldap, the path `sds serve` takes.
``--directory fake`` serves the same records from a dict (an ideal, zero-cost directory) so the wire
layer's own cost can be read off: codec, protocol, asyncio.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class DictDirectory:
    """Benchmark-only Directory: answers the two GP Connect lookups from a dict, nothing else."""

    def __init__(self, jsonl: Path) -> None:
        from sds_registry.ldap.ast import SearchEntry

        self.mhs: dict[tuple[str, str], list[SearchEntry]] = {}
        self.as_: dict[tuple[str, str], list[SearchEntry]] = {}
        from bench.ldapkit.data import load

        for r in load(jsonl):
            entry = SearchEntry(r.dn, [("objectClass", ["top", "nhsMhs" if r.kind == "mhs" else "nhsAs"]),
                                       *r.attrs.items()])  # fmt: skip
            if r.kind == "mhs":
                self.mhs.setdefault((r.first("nhsIDCode"), r.first("nhsMhsSvcIA")), []).append(entry)
            else:
                self.as_.setdefault((r.first("nhsIDCode"), r.first("nhsMHSPartyKey").lower()), []).append(entry)

    def search(self, request, size_limit, time_limit):  # type: ignore[no-untyped-def]
        from sds_registry.ldap.ast import And, Equality, Result, SearchEntry

        eq = {}
        if isinstance(request.filter, And):
            eq = {f.attr.lower(): f.value for f in request.filter.filters if isinstance(f, Equality)}
        oc = eq.get("objectclass", "").lower()
        if oc == "nhsmhs":
            found = self.mhs.get((eq.get("nhsidcode", ""), eq.get("nhsmhssvcia", "")), [])
        elif oc == "nhsas":
            found = self.as_.get((eq.get("nhsidcode", ""), eq.get("nhsmhspartykey", "").lower()), [])
        else:
            found = []
        wanted = {a.lower() for a in request.attributes}
        out = [SearchEntry(e.dn, [(n, v) for n, v in e.attributes if n.lower() in wanted]) for e in found]
        return out, Result(0)

    def compare(self, dn, attr, value):  # type: ignore[no-untyped-def]
        from sds_registry.ldap.ast import Result

        return Result(53)


def serve(args: argparse.Namespace) -> None:
    from sds_registry.config import load_settings

    if args.no_uvloop:
        sys.modules["uvloop"] = None  # type: ignore[assignment]  # the server then falls back to asyncio's loop

    from sds_registry.logs import setup_logging

    overrides: dict[str, object] = {"ldap_bind": f"127.0.0.1:{args.port}", "ldap_workers": args.workers}
    settings = load_settings(overrides)
    setup_logging(settings.log_level, settings.log_format)  # as `sds serve` does: INFO access lines by default
    if args.directory == "real" and args.mode == "auto":
        from sds_registry.ldap.server import run_ldap

        run_ldap(settings)  # what `sds serve` runs: inline on SQLite, thread pool on PostgreSQL
        return
    import asyncio

    from sds_registry.ldap.server import serve_ldap
    from sds_registry.workers import new_event_loop

    if args.directory == "real":
        from sds_registry.db import make_engine
        from sds_registry.ldap.directory import Directory

        directory: Any = Directory(make_engine(settings.database_url), settings)
    else:
        directory = DictDirectory(Path(args.jsonl))
    inline = args.mode != "threads"

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_ldap(replace(settings, ldap_bind=f"127.0.0.1:{args.port}"), directory, stop, inline=inline)

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        r = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-H", f"ldap://127.0.0.1:{port}", "-b", "ou=Services,o=nhs", "-s", "base",
             "(objectClass=*)", "1.1"],
            capture_output=True, env=dict(os.environ, LDAPNOINIT="1"),
        )  # fmt: skip
        if r.returncode not in (255, 124):
            return
        time.sleep(0.3)
    raise SystemExit("server did not answer in time")


def run(args: argparse.Namespace) -> None:
    from bench.ldapkit import data, load, lookups

    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="ldapbench.") as tmp:
        work = Path(tmp)
        records = data.generate(args.practices, 42)
        ldif, jsonl = data.write(records, work)
        queries = lookups.consumer_flows(records, 20000)
        port = _free_port()
        url = f"sqlite:///{work}/sds.sqlite3"
        pg = None
        if args.postgres:
            from tests.support.postgres import TempPostgres

            pg = TempPostgres()
            url = pg.start()
        env = dict(os.environ, SDS_DATABASE_URL=url, SDS_HTTP_BIND="", SDS_SSP_BIND="")
        cmd = [py, __file__, "serve", "--port", str(port), "--directory", args.directory, "--workers",
               str(args.workers), "--mode", args.mode, "--jsonl", str(jsonl)]  # fmt: skip
        if args.no_uvloop:
            cmd.append("--no-uvloop")
        if args.directory == "real":
            sds = str(Path(py).with_name("sds"))
            t0 = time.monotonic()
            subprocess.run([sds, "db", "upgrade"], env=env, check=True, capture_output=True)
            subprocess.run([sds, "import", str(ldif)], env=env, check=True, capture_output=True)
            print(f"imported {args.practices} practices in {time.monotonic() - t0:.1f}s", flush=True)
        if args.profile:
            cmd = [str(Path(py).with_name("py-spy")), "record", "-r", "500", "-o", args.profile, "-f", "raw",
                   "--", *cmd]  # fmt: skip
        with (work / "server.log").open("ab") as log:  # its access lines (SDS_LOG_LEVEL, INFO by default)
            server = subprocess.Popen(cmd, env=env, start_new_session=True, stderr=log)
        try:
            _wait_ready(port, server)
            results = []
            for procs in args.procs.split():
                for r in range(args.rounds):
                    b = load.run_batch(args.directory, f"ldap://127.0.0.1:{port}", server.pid, queries, int(procs),
                                       args.per_proc, r + 1)  # fmt: skip
                    ms = 1000 * b.cpu_s / b.searches
                    print(f"{args.directory} r{r + 1} procs={procs}: {b.qps:.1f} q/s, {ms:.4f} server CPU ms/search, "
                          f"{b.status}", flush=True)  # fmt: skip
                    results.append(b)
            for p in sorted({b.procs for b in results}):
                rows = [b for b in results if b.procs == p]
                qps = sorted(b.qps for b in rows)[len(rows) // 2]
                cpu = sum(b.cpu_s for b in rows) * 1000 / sum(b.searches for b in rows)
                ok = all(b.ok for b in rows)
                db = "postgresql" if args.postgres else "sqlite"
                print(f"ldap_server_bench: directory={args.directory} db={db} mode={args.mode} "
                      f"workers={args.workers} procs={p} median_qps={qps:.0f} "
                      f"server_cpu_ms_per_search={cpu:.4f} ok={ok}")  # fmt: skip
        finally:
            # py-spy writes its profile on SIGINT; the server stops cleanly on either
            os.killpg(server.pid, signal.SIGINT if args.profile else signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
            with (work / "server.log").open("rb") as log:
                print(f"the server wrote {sum(1 for _ in log)} log lines")
            if pg is not None:
                pg.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--practices", type=int, default=1000)
    r.add_argument("--procs", default="1 2")
    r.add_argument("--per-proc", type=int, default=20000)
    r.add_argument("--rounds", type=int, default=2)
    r.add_argument("--directory", choices=["real", "fake"], default="real")
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--mode", choices=["auto", "inline", "threads"], default="auto")
    r.add_argument("--no-uvloop", action="store_true", help="serve on asyncio's own event loop")
    r.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL server instead of SQLite")
    r.add_argument("--profile", help="record the server with py-spy into this collapsed-stack (raw) file")
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--directory", choices=["real", "fake"], default="real")
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--mode", choices=["auto", "inline", "threads"], default="auto")
    s.add_argument("--no-uvloop", action="store_true")
    s.add_argument("--jsonl")
    args = ap.parse_args()
    (run if args.cmd == "run" else serve)(args)


if __name__ == "__main__":
    main()
