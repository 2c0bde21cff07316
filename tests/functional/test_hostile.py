"""Hostile clients (bench/hostile.py) in short, against a real ``sds serve``: 50 slow-header and 50 slow-body
connections per facade, then a flood past the LDAP connection limit, while a normal client's lookups go on;
then 20,000 fuzzed LDAP messages. The normal client gets no error and no answer slower than a second (the
bench holds the 50 ms p99 goal; a timed test on a shared machine would not), floods past the limit are closed
at once, a slow HTTP or SSP request head is answered 408 and closed, the LDAP process's memory stays put, and the server
stops with status 0.
"""

from __future__ import annotations

import random
import socket
import ssl
import time
from pathlib import Path

import pytest

from bench.hostile import Attack, run_phase
from bench.procwatch import rss_kib, tree
from bench.soak import prepare, serving
from bench.soakload import Load
from sds_registry.ssp.server import HEAD_SECONDS, SWEEP_SECONDS
from sds_registry.web.worker import REQUEST_READ_SECONDS
from tests.support.ldap_fuzz import fuzz

LDAP_LIMIT = 64


def _tls(pki: dict[str, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    context.check_hostname = False  # 127.0.0.1; the chain is still verified
    context.load_cert_chain(str(pki["consumer"]), str(pki["consumer_key"]))
    return context


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_slow_clients_floods_and_fuzz_leave_lookups_answered(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'hostile.sqlite3'}"
    prepared = prepare(database_url, 5)
    env = {"SDS_LDAP_MAX_CONNECTIONS": str(LDAP_LIMIT)}
    with serving(database_url, tmp_path, prepared, env) as (server, target):
        slow = socket.create_connection(("127.0.0.1", server.http), timeout=30)
        slow.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        opened = time.monotonic()
        slow_ssp = _tls(target.pki).wrap_socket(socket.create_connection(("127.0.0.1", server.ssp), timeout=30))
        slow_ssp.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):  # a byte now and then: the head never completes
            time.sleep(1.0)
            slow_ssp.sendall(b"X")
        attack = Attack(target.pki)
        try:
            phases = [run_phase(name, target, attack, 8.0, count, 1.0, server.proc.pid)
                      for name, count in (("slow headers", 50), ("slow bodies", 50), ("flood", 150))]
        finally:
            attack.close()
        for phase in phases:
            for facade, stats in phase.load.stats.items():
                assert stats.errors == 0, (phase.name, facade, stats.first_errors)
                assert stats.requests > 20 and stats.percentile(1.0) < 1000, (phase.name, facade, stats.latencies)
        flood = phases[-1].attackers
        assert flood["ldap"].closed_by_server >= 150 - LDAP_LIMIT
        assert max(sorted(flood["ldap"].close_after)[:150 - LDAP_LIMIT]) < 1.0  # the extras were closed at once
        assert flood["http"].opened == 150 and flood["ssp"].opened == 150  # held, not refused

        time.sleep(max(0.0, opened + REQUEST_READ_SECONDS + 1.5 - time.monotonic()))
        assert slow.recv(200).startswith(b"HTTP/1.1 408 ")
        assert slow.recv(200) == b""  # and closed
        slow.close()
        time.sleep(max(0.0, opened + HEAD_SECONDS + SWEEP_SECONDS + 1.0 - time.monotonic()))
        assert slow_ssp.recv(200).startswith(b"HTTP/1.1 408 ")
        slow_ssp.close()

        ldap_pid = next(p for p in tree(server.proc.pid)[1:] if
                        b"serve-facade\0ldap" in Path(f"/proc/{p}/cmdline").read_bytes())
        before = rss_kib(ldap_pid) or 0
        assert fuzz(("127.0.0.1", server.ldap), 20_000, random.Random(13)) >= 20_000
        assert (rss_kib(ldap_pid) or 0) - before < 32 * 1024
        after = Load(target, writers=0, lookup_rate=25.0, write_rate=1.0, settle=0.0)
        after.run(2.0)
        assert after.stats["ldap"].requests > 10 and after.stats["ldap"].errors == 0
