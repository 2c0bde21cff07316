"""run_ldap as `sds serve` runs it: its own process, SQLite file, SO_REUSEPORT workers, clean SIGTERM/SIGINT stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sds_registry.ldap import responses
from tests.support.ldap import sample_sqlite_database, search_message

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def database_file(tmp_path: Path) -> Iterator[str]:
    yield sample_sqlite_database(tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _search(port: int, message_id: int = 1) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(search_message(message_id))
        data = b""
        while not data.endswith(responses.encode_search_done(message_id)):
            chunk = s.recv(65536)
            assert chunk, "connection closed before the answer"
            data += chunk
        return data


def _start(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SDS_DATABASE_URL=url, SDS_LDAP_BIND=f"127.0.0.1:{port}", SDS_LDAP_WORKERS=str(workers))
    code = "from sds_registry.config import load_settings; from sds_registry.ldap.server import run_ldap; " \
           "run_ldap(load_settings())"  # fmt: skip
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO, stderr=subprocess.PIPE)


def _wait_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            _search(port)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("run_ldap did not answer within 30 s")


@pytest.mark.parametrize(("workers", "sig"), [(1, signal.SIGTERM), (1, signal.SIGINT), (2, signal.SIGTERM)])
def test_run_ldap_serves_and_stops_cleanly(database_file: str, workers: int, sig: signal.Signals) -> None:
    port = _free_port()
    proc = _start(database_file, port, workers)
    try:
        _wait_ready(proc, port)
        for i in range(1, 21):  # several connections: with two workers the kernel spreads them
            assert b"T99999" in _search(port, i)
        proc.send_signal(sig)
        assert proc.wait(20) == 0
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert "Traceback" not in stderr, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
