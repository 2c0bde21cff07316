"""Our LDAP server against OpenLDAP slapd on the same data: differential test, throughput, CPU. Bench-only.

    python -m bench.ldapkit.harness [--practices 1000] [--procs "1 2"] [--rounds 2] [--no-bench] ...

Generates the data, the search set and the load; starts slapd and the target (TARGET_START, a shell
snippet run with DATA_LDIF, PORT, WORK and PYTHON set, which must import the LDIF and serve LDAP on
127.0.0.1:$PORT in the foreground), each as the leader of its own session on a free loopback port;
compares their answers; then, per procs value, interleaved rounds of ldapsearch -f batches on each.
The last line printed is the verdict
    ldap_vs_slapd: diff=<n> throughput_ratio=<target/slapd median q/s> cpu_per_search_ratio=<target/slapd>
Exit status: 0 when diff=0 and every batch had the right entry count; 1 differences; 2 wrong or
timed-out batches; 3 the run could not be done. Both servers are stopped (whole session) on every exit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import data, diff, load, lookups, searches, slapd

DEFAULT_TARGET = (
    "export SDS_DATABASE_URL=sqlite:///$WORK/sds.sqlite3 SDS_HTTP_BIND= SDS_SSP_BIND= SDS_LDAP_BIND=127.0.0.1:$PORT;"
    ' sds db upgrade && sds import "$DATA_LDIF" && exec sds serve'
)
SECOND_SLAPD = 'exec "$PYTHON" -m bench.ldapkit.slapd --ldif "$DATA_LDIF" --port "$PORT" --work "$WORK"'


class RunFailed(Exception):
    """The comparison could not be carried out (exit status 3)."""


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    ready_s: float = 0.0
    size: tuple[int, int] = field(default=(0, 0))

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def wait_ready(self, started: float, timeout: float) -> None:
        """Until an anonymous base search gets any LDAP answer (ldapsearch exit status other than 255)."""
        probe = ["ldapsearch", "-x", "-LLL", "-o", "nettimeout=5", "-H", self.url, "-b", data.BASE, "-s", "base", "1.1"]
        while True:
            if self.proc.poll() is not None:
                raise RunFailed(f"{self.name} exited ({self.proc.returncode}): {self.log.read_text()[-1500:]}")
            done = subprocess.run(probe, capture_output=True, env=dict(os.environ, LDAPNOINIT="1"), timeout=30)
            if done.returncode != 255:
                self.ready_s = time.monotonic() - started
                return
            if time.monotonic() - started > timeout:
                raise RunFailed(f"{self.name} did not answer on port {self.port} within {timeout:.0f}s")
            time.sleep(0.3)

    def stop(self) -> None:
        """TERM the whole session, KILL what is left after 10 s."""
        if self.proc.poll() is None:
            self.size = load.session_size(self.proc.pid)
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue


def _start(name: str, argv: list[str], port: int, work: Path, ldif: Path, logs: Path) -> Server:
    log = logs / f"{name}.log"
    env = dict(os.environ, DATA_LDIF=str(ldif), PORT=str(port), WORK=str(work), PYTHON=sys.executable)
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
    return Server(name, port, proc, log)


def _median_qps(batches: list[load.Batch], server: str, procs: int) -> float:
    values = [b.qps for b in batches if b.server == server and b.procs == procs]
    return statistics.median(values) if values else float("nan")


def _cpu_ms(batches: list[load.Batch], server: str) -> float:
    mine = [b for b in batches if b.server == server]
    total = sum(b.searches for b in mine)
    return 1000 * sum(b.cpu_s for b in mine) / total if total else float("nan")


def report(batches: list[load.Batch], servers: list[Server], searched: int, differing: int) -> list[str]:
    lines = []
    if batches:
        lines.append(f"{'server':<7} {'procs':>5} {'round':>5} {'q/s':>9} {'cpu ms/search':>13} {'steal%':>6}  answers")
        lines += [
            f"{b.server:<7} {b.procs:>5} {b.round:>5} {b.qps:>9.1f} {1000 * b.cpu_s / b.searches:>13.4f} "
            f"{b.steal_pct:>6.1f}  {b.status}"
            for b in batches
        ]
    procs = sorted({b.procs for b in batches})
    for p in procs:
        ref, tgt = _median_qps(batches, "slapd", p), _median_qps(batches, "target", p)
        lines.append(f"procs={p} median q/s: slapd {ref:.1f}  target {tgt:.1f}  ratio {tgt / ref:.3f}")
    ref_cpu, tgt_cpu = _cpu_ms(batches, "slapd"), _cpu_ms(batches, "target")
    if batches:
        lines.append(f"server CPU ms per search: slapd {ref_cpu:.4f}  target {tgt_cpu:.4f}")
    for s in servers:
        lines.append(
            f"{s.name:<6} import+start {s.ready_s:.1f}s, {s.size[0]} process(es), RSS {s.size[1] / 1024:.0f} MiB"
        )
    if any(b.steal_pct > 5 for b in batches):
        lines.append("note: CPU steal above 5% in some rounds; the ratios are noisier than usual")
    lines.append(f"differential: {searched} searches, {differing} different")
    ratio = (
        _median_qps(batches, "target", procs[-1]) / _median_qps(batches, "slapd", procs[-1]) if procs else float("nan")
    )
    cpu_ratio = tgt_cpu / ref_cpu if batches and ref_cpu else float("nan")
    lines.append(f"ldap_vs_slapd: diff={differing} throughput_ratio={ratio:.3f} cpu_per_search_ratio={cpu_ratio:.3f}")
    return lines


def run(args: argparse.Namespace, root: Path) -> int:
    results, generated = root / "results", root / "data"
    results.mkdir(parents=True, exist_ok=True)
    records = data.generate(args.practices, args.seed)
    ldif, _ = data.write(records, generated)
    search_set = searches.build(records)
    searches.write(search_set, generated / "searches.jsonl")
    queries = lookups.consumer_flows(records, 20000)
    print(f"data: {len(records) + 2} entries, {len(search_set)} searches, {len(queries)} load queries", flush=True)
    ports = [slapd.free_port(), slapd.free_port()]
    while ports[1] == ports[0]:
        ports[1] = slapd.free_port()
    servers: list[Server] = []
    try:
        t0 = time.monotonic()
        conf = slapd.prepare(ldif, root / "slapd")
        servers.append(_start("slapd", slapd.command(conf, ports[0]), ports[0], root / "slapd", ldif, results))
        servers[0].wait_ready(t0, args.ready_timeout)
        (root / "target").mkdir()
        t0 = time.monotonic()
        servers.append(_start("target", ["bash", "-c", args.target_start], ports[1], root / "target", ldif, results))
        servers[1].wait_ready(t0, args.ready_timeout)
        ref, target = servers
        print(f"slapd ready in {ref.ready_s:.1f}s, target in {target.ready_s:.1f}s", flush=True)
        differing = diff.compare(ref.url, target.url, search_set)
        text = diff.report(search_set, differing)
        (results / "diff.txt").write_text(text + "\n")
        *body, summary = text.splitlines()
        if body:
            print("\n".join(body[:60] + ([f"... (all of it: {results / 'diff.txt'})"] if len(body) > 60 else [])))
        print(summary, flush=True)
        batches: list[load.Batch] = []
        for procs in [] if args.no_bench else [int(p) for p in args.procs.split()]:
            for round_ in range(1, args.rounds + 1):
                for server in servers:
                    if server.proc.poll() is not None:
                        raise RunFailed(f"{server.name} stopped during the load (log: {server.log})")
                    b = load.run_batch(server.name, server.url, server.proc.pid, queries, procs, args.per_proc, round_,
                                       args.batch_timeout)  # fmt: skip
                    print(f"  {b.server}/p{b.procs}/r{b.round}: {b.qps:.1f} q/s, {b.status}", flush=True)
                    batches.append(b)
    finally:
        for server in reversed(servers):
            server.stop()
    print("\n".join(report(batches, servers, len(search_set), len(differing))))
    return 1 if differing else 2 if any(not b.ok for b in batches) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--practices", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--procs", default="1 2", help="client process counts, e.g. '1 2'")
    parser.add_argument("--per-proc", type=int, default=20000, help="searches per client process and batch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-bench", action="store_true", help="differential test only")
    parser.add_argument("--work", type=Path, help="work directory (default: a temp dir, removed after a clean run)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--target-start", default=os.environ.get("TARGET_START") or DEFAULT_TARGET)
    parser.add_argument("--second-slapd", action="store_true", help="self-test: the target is another slapd")
    parser.add_argument("--ready-timeout", type=float, default=600)
    parser.add_argument("--batch-timeout", type=float, default=300)
    args = parser.parse_args(argv)
    if args.second_slapd:
        args.target_start = SECOND_SLAPD
    if not slapd.available() or shutil.which("ldapsearch") is None:
        print("slapd, slapadd or ldapsearch is missing (Debian: apt-get install slapd ldap-utils)", file=sys.stderr)
        return 3
    root = (args.work or Path(tempfile.mkdtemp(prefix="ldap_vs_slapd."))).resolve()
    if args.work and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    print(f"N={args.practices} seed={args.seed} procs='{args.procs}' rounds={args.rounds} work={root}")
    print(f"target: {args.target_start}", flush=True)
    try:
        status = run(args, root)
    except (RunFailed, subprocess.CalledProcessError, OSError) as failure:
        print(f"error: {failure}", file=sys.stderr)
        print("ldap_vs_slapd: diff=error throughput_ratio=nan cpu_per_search_ratio=nan")
        status = 3
    if status == 0 and not args.keep and args.work is None:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"work files kept in {root}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
