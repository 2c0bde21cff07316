"""Run OpenLDAP slapd (mdb, our SDS schema) on an LDIF, on a loopback port. Bench/test-only; never a daemon.

    python -m bench.ldapkit.slapd --ldif FILE --port P --work DIR [--case-ignore] [--drop-entry K]

prepares DIR (slapd.conf, the schema, a fresh mdb loaded with slapadd) and then *becomes* slapd in the
foreground (`slapd -d 0`), so whoever started it owns its process and session. ``--case-ignore`` (every
caseExact rule made caseIgnore) and ``--drop-entry K`` (the K-th LDIF entry left out, 1-based) make a
deliberately wrong reference, to show the comparison can fail. ``running()`` does the same for tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .rules import SCHEMA

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
SYSTEM_SCHEMA = Path(os.environ.get("SLAPD_SYSTEM_SCHEMA", "/etc/ldap/schema"))
MODULES = Path("/usr/lib/ldap")

_CONF = """\
include {system}/core.schema
include {system}/cosine.schema
include {schema}
pidfile {work}/slapd.pid
argsfile {work}/slapd.args
{modules}
loglevel 0
sizelimit unlimited
timelimit 60
access to * by * read
database mdb
maxsize {maxsize}
suffix "o=nhs"
rootdn "cn=bench,o=nhs"
directory {work}/mdb
{indexes}
"""
INDEXED = (
    "objectClass",
    "uniqueIdentifier",
    "nhsIDCode",
    "nhsMHSPartyKey",
    "nhsAsSvcIA",
    "nhsMhsSvcIA",
    "nhsMhsCPAId",
    "nhsAsClient",
)


def available() -> bool:
    """slapd, slapadd and the core/cosine schema files are installed."""
    return all(Path(p).exists() for p in (SLAPD, SLAPADD, SYSTEM_SCHEMA / "cosine.schema"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def prepare(ldif: Path, work: Path, case_ignore: bool = False, drop_entry: int = 0, maxsize: int = 1 << 32) -> Path:
    """A loaded mdb and its slapd.conf under ``work`` (emptied first); returns the config path. ``maxsize``: the
    mdb map size in bytes (an upper bound, not allocated: a 2-million-entry directory needs more than 4 GiB)."""
    if work.exists():
        shutil.rmtree(work)
    (work / "mdb").mkdir(parents=True)
    schema = work / "nhs-sds.schema"
    text = SCHEMA.read_text()
    schema.write_text(text.replace("caseExact", "caseIgnore") if case_ignore else text)
    if drop_entry:
        entries = [e for e in ldif.read_text().split("\n\n") if e.strip()]
        del entries[drop_entry - 1]
        ldif = work / "data.ldif"
        ldif.write_text("\n\n".join(entries) + "\n\n")
    modules = f"modulepath {MODULES}\nmoduleload back_mdb" if (MODULES / "back_mdb.la").exists() else ""
    conf = work / "slapd.conf"
    conf.write_text(
        _CONF.format(
            system=SYSTEM_SCHEMA,
            schema=schema,
            work=work,
            modules=modules,
            indexes="\n".join(f"index {a} eq" for a in INDEXED),
            maxsize=maxsize,
        )
    )
    subprocess.run([SLAPADD, "-q", "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True)
    return conf


def command(conf: Path, port: int) -> list[str]:
    return [SLAPD, "-d", "0", "-f", str(conf), "-h", f"ldap://127.0.0.1:{port}/"]


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"slapd exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"slapd did not listen on port {port} within {timeout:.0f}s") from None
            time.sleep(0.1)


@contextmanager
def running(ldif: Path, work: Path, case_ignore: bool = False, drop_entry: int = 0) -> Iterator[str]:
    """slapd serving ``ldif`` in its own session on a free loopback port; yields its ldap:// URL."""
    with serving(prepare(ldif, work, case_ignore, drop_entry)) as url:
        yield url


@contextmanager
def serving(conf: Path) -> Iterator[str]:
    """slapd run with a prepared ``conf`` in its own session on a free loopback port; yields its ldap:// URL and
    stops it on exit."""
    port = free_port()
    proc = subprocess.Popen(
        command(conf, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_listening(port, proc)
        yield f"ldap://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ldif", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--case-ignore", action="store_true")
    parser.add_argument("--drop-entry", type=int, default=0)
    args = parser.parse_args(argv)
    conf = prepare(args.ldif, args.work.resolve(), args.case_ignore, args.drop_entry)
    argv_ = command(conf, args.port)
    os.execv(argv_[0], argv_)


if __name__ == "__main__":
    main()
