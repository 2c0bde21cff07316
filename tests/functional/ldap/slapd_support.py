"""Run the bench kit's slapd on an LDIF and compare our Directory's answers with it (test support)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(os.environ.get("SDS_BENCH_DIR", "/work/shared/bench"))
SLAPD = Path("/usr/sbin/slapd")


def available() -> bool:
    return SLAPD.exists() and (BENCH / "slapd_run.sh").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def slapd(ldif: Path, work: Path) -> Iterator[str]:
    """slapd serving ``ldif`` (bench schema) on a free loopback port; yields its ldap:// URL."""
    port = _free_port()
    env = dict(
        os.environ,
        DATA_LDIF=str(ldif),
        PORT=str(port),
        WORK=str(work),
        PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin",
    )
    proc = subprocess.Popen(
        ["bash", str(BENCH / "slapd_run.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"slapd exited: {out[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("slapd did not listen") from None
                time.sleep(0.1)
        yield f"ldap://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def gen_data(out: Path, practices: int, seed: int = 42) -> None:
    subprocess.run(
        [
            sys.executable,
            str(BENCH / "gen_data.py"),
            "--practices",
            str(practices),
            "--seed",
            str(seed),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )


def gen_filters(data: Path, out: Path) -> None:
    subprocess.run(
        [sys.executable, str(BENCH / "gen_filters.py"), "--data", str(data), "--out", str(out)],
        check=True,
        capture_output=True,
        cwd=BENCH,
    )


def norm_dn(text: str) -> str:
    rdns = re.split(r"(?<!\\)[,+]", text)
    return ",".join("=".join(x.strip().lower() for x in r.split("=", 1)) for r in rdns if r.strip())


def normalise(entries: list[tuple[str, dict[str, list[str]]]]) -> dict[str, dict[str, frozenset[str]]]:
    out = {}
    for entry_dn, attrs in entries:
        vals: dict[str, set[str]] = {}
        for name, vs in attrs.items():
            vs = [v.lower() for v in vs] if name.lower() == "objectclass" else vs
            vals.setdefault(name.lower(), set()).update(vs)
        out[norm_dn(entry_dn)] = {k: frozenset(v) for k, v in vals.items() if v}
    return out


def slapd_search(conn: Any, s: dict[str, Any]) -> tuple[int, list[tuple[str, dict[str, list[str]]]]]:
    import ldap3

    scope = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}[s["scope"]]
    conn.search(
        s["base"],
        s["filter"],
        search_scope=scope,
        attributes=s["attrs"] or [ldap3.ALL_ATTRIBUTES],
        size_limit=s.get("sizelimit") or 0,
    )
    entries = [
        (e["dn"], {k: [v.decode() for v in vs] for k, vs in e["raw_attributes"].items()})
        for e in conn.response or ()
        if e.get("type") == "searchResEntry"
    ]
    return conn.result["result"], entries
